/**
 * Webhook deliveries against a real local HTTP receiver: the alarm of a real request
 * (POST /v1/trust/report) arrives signed, the test verifies the HMAC over the raw body the way a
 * receiver must (timing-safe, fresh timestamp), and the audit log records each delivery. Then
 * the failure modes: receiver down, 5xx, 4xx, 429 with Retry-After, a receiver that hangs.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc } from '../support/inproc.js';
import { cleanup, freePort } from '../support/server.js';
import { startReceiver, verifyWebhook, enrollTotp, addNotifier, trustReport, auditOf, eventually, sleep, FAST } from './notify-support.js';

after(cleanup);

const SECRET = 'whsec-0123456789abcdef-test';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('an alarm from real traffic reaches the webhook signed; the HMAC verifies over the raw body; the delivery is audited', async (t) => {
  const rx = await startReceiver();
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await rx.close();
  });
  const admin = await enrollTotp(v);
  const id = await addNotifier(v, admin, { type: 'webhook', url: rx.url, secret: SECRET, name: 'SOC' });
  assert.match(id, /^ntf_[0-9a-f]{16}$/);

  const alarmId = await trustReport(v, 'the log forked under me');
  await eventually('the delivery', () => rx.got.length >= 1);
  const got = rx.got[0]!;
  assert.equal(got.method, 'POST');
  assert.equal(got.url, '/hook');
  assert.equal(got.headers['content-type'], 'application/json');
  assert.ok(verifyWebhook(SECRET, got.headers, got.raw), 'the signature verifies with the shared secret');
  assert.equal(verifyWebhook('another-secret-of-16+chars', got.headers, got.raw), false, 'and not with another secret');
  const flipped = Buffer.from(got.raw);
  flipped[flipped.length - 2]! ^= 1;
  assert.equal(verifyWebhook(SECRET, got.headers, flipped), false, 'a changed body does not verify');
  assert.equal(verifyWebhook(SECRET, { ...got.headers, 'x-custody-timestamp': String(Number(got.headers['x-custody-timestamp']) - 1) }, got.raw), false, 'the timestamp is signed too');
  const ts = Number(got.headers['x-custody-timestamp']);
  assert.ok(Math.abs(ts - Date.now() / 1000) < 30, 'the timestamp is now, in Unix seconds');
  assert.match(String(got.headers['x-custody-delivery']), UUID_RE);
  assert.match(String(got.headers['x-custody-signature']), /^sha256=[0-9a-f]{64}$/);

  const body = JSON.parse(got.raw.toString('utf8')) as { event: string; alarm: Record<string, unknown>; vault: { id: string; prefix: string }; sentAt: string };
  assert.equal(body.event, 'raised');
  assert.equal(body.alarm['id'], alarmId);
  assert.equal(body.alarm['kind'], 'trust');
  assert.equal(body.alarm['rule'], 'trust.report');
  assert.equal(body.alarm['severity'], 'critical');
  assert.match(String(body.alarm['title']), /inconsistent/);
  assert.equal((body.alarm['details'] as Record<string, unknown>)['message'], 'the log forked under me');
  assert.equal(body.alarm['count'], 1);
  assert.equal(body.alarm['log'], v.vault.regionLogs()[0]);
  for (const k of ['time', 'lastTime', 'entry']) assert.ok(k in body.alarm, k);
  assert.equal(body.vault.id, v.vault.config.vaultId);
  assert.equal(body.vault.prefix, v.vault.config.prefix);
  assert.ok(!Number.isNaN(Date.parse(body.sentAt)));

  const delivered = await eventually('the audit record', async () => {
    const d = await auditOf(v, 'alarm.delivered');
    return d.length > 0 ? d : undefined;
  });
  assert.equal(delivered.length, 1);
  assert.equal(delivered[0]!['alarm'], alarmId);
  assert.equal(delivered[0]!['notifier'], id);
  assert.equal(delivered[0]!['notifierType'], 'webhook');
  assert.equal(delivered[0]!['attempt'], 1);
  assert.equal(delivered[0]!['status'], 200);
  assert.equal(delivered[0]!['delivery'], got.headers['x-custody-delivery']);
  await sleep(200);
  assert.equal(rx.got.length, 1, 'one alarm, one delivery');
});

test('receiver down (connection refused), then up: retried with backoff and delivered; the audit shows attempt > 1', async (t) => {
  const port = await freePort();
  const v = await startInProc({ timing: FAST });
  let rx: Awaited<ReturnType<typeof startReceiver>> | undefined;
  t.after(async () => {
    await v.close();
    await rx?.close();
  });
  const admin = await enrollTotp(v);
  const id = await addNotifier(v, admin, { type: 'webhook', url: `http://127.0.0.1:${port}/hook`, secret: SECRET });
  const alarmId = await trustReport(v);
  await sleep(400); // a few refused attempts (50 ms, 100 ms, 200 ms …)
  assert.equal((await auditOf(v, /^alarm\.deliver/)).length, 0, 'nothing recorded while retrying');
  rx = await startReceiver({ port });
  await eventually('the delivery', () => rx!.got.length >= 1);
  assert.ok(verifyWebhook(SECRET, rx.got[0]!.headers, rx.got[0]!.raw));
  const d = await eventually('the audit record', async () => (await auditOf(v, 'alarm.delivered'))[0]);
  assert.equal(d['notifier'], id);
  assert.equal(d['alarm'], alarmId);
  assert.ok((d['attempt'] as number) > 1, `attempt ${String(d['attempt'])}`);
  assert.equal(d['failedAttempts'], (d['attempt'] as number) - 1);
  assert.match(String(d['lastError']), /ECONNREFUSED/);
  assert.equal((await auditOf(v, 'alarm.delivery.failed')).length, 0);
});

test('500 then 200: retried with the same delivery id and a fresh signature; 400: one final failure, never retried', async (t) => {
  const flaky = await startReceiver({ answers: [{ status: 500, body: 'boom' }, { status: 503 }], path: '/flaky' });
  const refusing = await startReceiver({ fallback: { status: 400, body: 'unknown event type' }, path: '/refusing' });
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await flaky.close();
    await refusing.close();
  });
  const admin = await enrollTotp(v);
  const flakyId = await addNotifier(v, admin, { type: 'webhook', url: flaky.url, secret: SECRET });
  const refusingId = await addNotifier(v, admin, { type: 'webhook', url: refusing.url, secret: SECRET });
  const alarmId = await trustReport(v);

  await eventually('three attempts at the flaky receiver', () => flaky.got.length >= 3);
  const ids = new Set(flaky.got.map((g) => g.headers['x-custody-delivery']));
  assert.equal(ids.size, 1, 'one delivery id over the retries (receivers drop duplicates by it)');
  for (const g of flaky.got) assert.ok(verifyWebhook(SECRET, g.headers, g.raw), 'every attempt is signed');
  const d = await eventually('the delivery record', async () => (await auditOf(v, 'alarm.delivered')).find((e) => e['notifier'] === flakyId));
  assert.equal(d['attempt'], 3);
  assert.equal(d['status'], 200);
  assert.match(String(d['lastError']), /HTTP 503/);

  const f = await eventually('the final failure', async () => (await auditOf(v, 'alarm.delivery.failed')).find((e) => e['notifier'] === refusingId));
  assert.equal(f['final'], true);
  assert.equal(f['status'], 400);
  assert.equal(f['attempts'], 1);
  assert.equal(f['alarm'], alarmId);
  assert.match(String(f['error']), /400: unknown event type/);
  await sleep(600); // time for many retries, were there any
  assert.equal(refusing.got.length, 1, 'a 4xx is not retried');
  assert.equal((await auditOf(v, 'alarm.delivery.failed')).length, 1);
  assert.equal(flaky.got.length, 3, 'delivered once, not again');
  const list = (await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: { authorization: `Bearer ${v.tokens.admin}` } })).json<{ notifiers: Array<{ id: string; deliveries: { delivered: number; failed: number; lastFailure: { error: string } | null } }> }>().notifiers;
  assert.equal(list.find((n) => n.id === flakyId)!.deliveries.delivered, 1);
  assert.equal(list.find((n) => n.id === refusingId)!.deliveries.failed, 1);
  assert.match(list.find((n) => n.id === refusingId)!.deliveries.lastFailure!.error, /HTTP 400/);
});

test('429 with Retry-After is honoured; a receiver that never answers times out and is retried; 503 forever gives up after the last attempt', async (t) => {
  const limited = await startReceiver({ answers: [{ status: 429, headers: { 'retry-after': '1' } }], path: '/limited' });
  const hanging = await startReceiver({ answers: ['hang'], path: '/hanging' });
  const down = await startReceiver({ fallback: { status: 503 }, path: '/down' });
  const v = await startInProc({ timing: { ...FAST, notifyTimeoutMs: 300, notifyMaxAttempts: 4 } });
  t.after(async () => {
    await v.close();
    await limited.close();
    await hanging.close();
    await down.close();
  });
  const admin = await enrollTotp(v);
  const limitedId = await addNotifier(v, admin, { type: 'webhook', url: limited.url, secret: SECRET });
  const hangingId = await addNotifier(v, admin, { type: 'webhook', url: hanging.url, secret: SECRET });
  const downId = await addNotifier(v, admin, { type: 'webhook', url: down.url, secret: SECRET });
  await trustReport(v);

  await eventually('two attempts after the 429', () => limited.got.length >= 2);
  const gap = limited.got[1]!.at - limited.got[0]!.at;
  assert.ok(gap >= 950, `the second attempt waited for Retry-After (1 s), not the 50 ms backoff: ${gap} ms`);
  const hung = await eventually('the hanging receiver retried', async () => (await auditOf(v, 'alarm.delivered')).find((e) => e['notifier'] === hangingId));
  assert.equal(hung['attempt'], 2);
  assert.match(String(hung['lastError']), /no answer within 0.3 s/);
  assert.ok((await auditOf(v, 'alarm.delivered')).some((e) => e['notifier'] === limitedId));

  const gaveUp = await eventually('the final failure', async () => (await auditOf(v, 'alarm.delivery.failed')).find((e) => e['notifier'] === downId));
  assert.equal(gaveUp['attempts'], 4);
  assert.equal(gaveUp['final'], true);
  assert.equal(gaveUp['status'], 503);
  assert.match(String(gaveUp['reason']), /gave up/);
  await sleep(300);
  assert.equal(down.got.length, 4, 'exactly notifyMaxAttempts attempts');
});
