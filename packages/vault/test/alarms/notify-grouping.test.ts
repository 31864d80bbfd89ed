/**
 * Grouping of repeats, filters, the Slack body, the bounded queue, and catching up on alarms
 * raised while the notifiers were stopped. Repeats of one alarm are
 * raised with vault.alarms.raise and a group key (as the detectors do); trust alarms come from
 * real requests (POST /v1/trust/report).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, bearer } from '../support/inproc.js';
import { cleanup, freePort } from '../support/server.js';
import { pino } from 'pino';
import { NotifierHub } from '../../src/alarms/notify/index.js';
import { startReceiver, verifyWebhook, enrollTotp, addNotifier, trustReport, auditOf, eventually, sleep, FAST } from './notify-support.js';

after(cleanup);

const SECRET = 'whsec-grouping-0123456789';

test('10 sightings of one grouped alarm: one delivery at once, one "repeated 9 more times" at the end of the window, then quiet', async (t) => {
  const rx = await startReceiver();
  const v = await startInProc({ timing: { ...FAST, notifyGroupMs: 400 } });
  t.after(async () => {
    await v.close();
    await rx.close();
  });
  const admin = await enrollTotp(v);
  const id = await addNotifier(v, admin, { type: 'webhook', url: rx.url, secret: SECRET });
  const raise = () => v.vault.alarms.raise({ kind: 'auth', rule: 'auth.burst', severity: 'high', title: 'Failed logins from 203.0.113.9', details: { address: '203.0.113.9' }, groupKey: 'auth-burst|203.0.113.9' });
  const first = await raise();
  const started = Date.now();
  for (let i = 0; i < 9; i++) {
    const a = await raise();
    assert.equal(a.id, first.id, 'the alarm center counts repeats on one alarm');
  }
  await eventually('the first delivery', () => rx.got.length >= 1);
  await sleep(150);
  assert.equal(rx.got.length, 1, 'repeats inside the window are not sent one by one');
  await eventually('the summary', () => rx.got.length >= 2, 5_000);
  assert.ok(rx.got[1]!.at - started >= 350, 'the summary waits for the end of the window');
  const bodies = rx.got.map((g) => JSON.parse(g.raw.toString('utf8')) as { event: string; repeats?: number; alarm: { id: number; count: number } });
  assert.equal(bodies[0]!.event, 'raised');
  assert.equal(bodies[0]!.alarm.count, 1);
  assert.equal(bodies[1]!.event, 'repeated');
  assert.equal(bodies[1]!.repeats, 9);
  assert.equal(bodies[1]!.alarm.id, first.id);
  assert.equal(bodies[1]!.alarm.count, 10);
  for (const g of rx.got) assert.ok(verifyWebhook(SECRET, g.headers, g.raw));
  await sleep(1_000); // two more windows without repeats
  assert.equal(rx.got.length, 2, 'a window without repeats sends nothing');

  // After a quiet window the next sighting goes out at once again.
  await raise();
  await eventually('the next sighting', () => rx.got.length >= 3, 1_000);
  const third = JSON.parse(rx.got[2]!.raw.toString('utf8')) as { event: string; repeats: number; alarm: { count: number } };
  assert.equal(third.event, 'repeated');
  assert.equal(third.alarm.count, 11);
  const delivered = await eventually('three audit records', async () => {
    const d = (await auditOf(v, 'alarm.delivered')).filter((e) => e['notifier'] === id);
    return d.length >= 3 ? d : undefined;
  });
  assert.deepEqual(delivered.map((d) => d['event']), ['raised', 'repeated', 'repeated']);
  assert.equal(delivered[1]!['repeats'], 9);
});

test('filters by severity and kind; Slack mode posts a plain-text summary with severity, title and alarm id', async (t) => {
  const rx = await startReceiver();
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await rx.close();
  });
  const admin = await enrollTotp(v);
  const slackUrl = rx.url.replace('/hook', '/services/T000/B000/XXXX');
  const slack = await addNotifier(v, admin, { type: 'slack', url: slackUrl, minSeverity: 'high', kinds: ['trust', 'integrity'] });
  const hook = await addNotifier(v, admin, { type: 'webhook', url: rx.url, secret: SECRET });
  const quiet = await addNotifier(v, admin, { type: 'webhook', url: rx.url.replace('/hook', '/quiet'), secret: SECRET, minSeverity: 'critical', kinds: ['integrity'] });

  await v.vault.alarms.raise({ kind: 'content', rule: 'demo.rule', severity: 'medium', title: 'A content rule matched <script>', details: {} });
  await v.vault.alarms.raise({ kind: 'resumed', rule: 'silence', severity: 'info', title: 'Source came back', details: {} });
  const trustId = await trustReport(v);
  await eventually('three deliveries', () => rx.got.length >= 3);
  await sleep(300);
  const paths = rx.got.map((g) => g.url).sort();
  assert.deepEqual(paths, ['/hook', '/hook', '/services/T000/B000/XXXX'], 'info is below the default "low"; the Slack one takes only high trust/integrity; the quiet one nothing');
  const s = rx.got.find((g) => g.url.startsWith('/services/'))!;
  assert.equal(s.headers['content-type'], 'application/json');
  assert.equal(s.headers['x-custody-signature'], undefined, 'Slack bodies are not signed (the URL is the secret)');
  const body = JSON.parse(s.raw.toString('utf8')) as { text: string; blocks: Array<{ type: string }> };
  const title = (await v.vault.alarms.get(trustId))!.title;
  assert.ok(body.text.startsWith('[Custody CRITICAL] '), body.text);
  assert.ok(body.text.includes(title), 'the title');
  assert.match(body.text, new RegExp(`Alarm #${trustId}\\b`));
  assert.ok(body.text.includes(`GET /v1/alarms/${trustId}`));
  assert.ok(Array.isArray(body.blocks) && body.blocks[0]!.type === 'section');
  const audit = await auditOf(v, 'alarm.delivered');
  assert.equal(audit.filter((d) => d['notifier'] === slack).length, 1);
  assert.equal(audit.filter((d) => d['notifier'] === hook).length, 2);
  assert.equal(audit.filter((d) => d['notifier'] === quiet).length, 0);
  // Slack escapes what it would read as markup.
  await v.vault.alarms.raise({ kind: 'integrity', rule: 'self-audit', severity: 'critical', title: 'Bundle <3> & tile differ', details: {} });
  await eventually('the Slack integrity alarm', () => rx.got.filter((g) => g.url.startsWith('/services/')).length >= 2);
  const esc = JSON.parse(rx.got.filter((g) => g.url.startsWith('/services/'))[1]!.raw.toString('utf8')) as { text: string };
  assert.ok(esc.text.includes('Bundle &lt;3&gt; &amp; tile differ'), esc.text);
});

test('the queue is bounded: beyond notifyMaxQueue the oldest deliveries are dropped and counted; what is left at shutdown is recorded too', async (t) => {
  const port = await freePort();
  const v = await startInProc({ timing: { ...FAST, notifyMaxQueue: 3, notifyRetryBaseMs: 5_000, notifyRetryMaxMs: 5_000 } });
  t.after(() => v.close());
  const admin = await enrollTotp(v);
  await addNotifier(v, admin, { type: 'webhook', url: `http://127.0.0.1:${port}/hook`, secret: SECRET });
  for (let i = 0; i < 8; i++) await v.vault.alarms.raise({ kind: 'tamper', rule: 'test.flood', severity: 'high', title: `flood ${i}`, details: { i } });
  const dropped = await eventually('the dropped record', async () => (await auditOf(v, 'alarm.delivery.dropped'))[0], 5_000);
  assert.equal(dropped['reason'], 'queue full');
  assert.equal(dropped['maxQueue'], 3);
  const queued = v.services.notifiers!.queued;
  assert.ok(queued <= 3, `at most 3 wait (${queued})`);
  assert.equal((dropped['count'] as number) + queued, 8, 'every delivery is either waiting or counted as dropped');
  const list = (await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(v.tokens.admin) })).json<{ notifiers: Array<{ deliveries: { pending: number } }> }>().notifiers;
  assert.equal(list[0]!.deliveries.pending, queued);

  const t0 = Date.now();
  await v.services.notifiers!.close();
  assert.ok(Date.now() - t0 < 2_500, 'close waits at most ~2 s');
  const all = await auditOf(v, 'alarm.delivery.dropped');
  assert.equal(all.length, 2);
  assert.equal(all[1]!['reason'], 'shutdown');
  assert.equal(all[1]!['count'], queued);
});

test('alarms raised while the notifiers were stopped go out when they start again, oldest first', async (t) => {
  const rx = await startReceiver();
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await rx.close();
  });
  const admin = await enrollTotp(v);
  await addNotifier(v, admin, { type: 'webhook', url: rx.url, secret: SECRET });
  const before = await trustReport(v, 'before the stop');
  await eventually('the first delivery', () => rx.got.length >= 1);
  await v.services.notifiers!.close();
  const missed = [await trustReport(v, 'while stopped 1'), await trustReport(v, 'while stopped 2')];
  await sleep(200);
  assert.equal(rx.got.length, 1, 'nothing is sent while stopped');

  const hub = await NotifierHub.start(v.vault, { logger: pino({ level: 'silent' }), timing: FAST });
  t.after(() => hub.close());
  await eventually('the missed alarms', () => rx.got.length >= 3);
  const ids = rx.got.map((g) => (JSON.parse(g.raw.toString('utf8')) as { alarm: { id: number } }).alarm.id);
  assert.deepEqual(ids, [before, ...missed]);
  for (const g of rx.got) assert.ok(verifyWebhook(SECRET, g.headers, g.raw));
  const after = await trustReport(v, 'after the restart');
  await eventually('the next alarm', () => rx.got.length >= 4);
  await sleep(200);
  assert.equal(rx.got.length, 4, 'sent once, by the running notifiers only');
  assert.equal((JSON.parse(rx.got[3]!.raw.toString('utf8')) as { alarm: { id: number } }).alarm.id, after);
});
