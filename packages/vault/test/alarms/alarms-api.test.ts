/**
 * GET /v1/alarms and `custody alarms`: newest first, filtered by kind and time, paged; readable
 * by auditors and admins only; bad filters are a clear 400. Alarms here come from real
 * traffic (trust reports from an auditor's client) and from the alarm center.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bearer, startInProc } from '../support/inproc.js';
import { runCli, cleanup } from '../support/server.js';
import type { Alarm } from '../../src/alarms/index.js';

const ROOT = 'A'.repeat(43) + '=';

test('alarms: listing, filters, paging, roles and bad input', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const report = (reason: string) =>
    v.app.inject({ method: 'POST', url: '/v1/trust/report', headers: bearer(v.tokens.auditor), payload: { log: 'local', reason, trusted: { size: 5, root: ROOT }, seen: { size: 3, root: ROOT } } });
  for (const reason of ['ROLLBACK', 'KEY_CHANGED', 'NOT_A_PREFIX']) assert.equal((await report(reason)).statusCode, 202);
  await v.vault.alarms.raise({ kind: 'silence', rule: 'test.silence', severity: 'medium', title: 'source x went quiet', details: {} });
  for (let i = 0; i < 3; i++) await v.vault.alarms.raise({ kind: 'auth', rule: 'test.burst', severity: 'high', title: 'failed logins from 10.0.0.9', details: {}, groupKey: 'burst|10.0.0.9' });

  const get = (q: string, token = v.tokens.auditor) => v.app.inject({ method: 'GET', url: `/v1/alarms${q}`, headers: bearer(token) });
  const all = (await get('')).json<{ alarms: Alarm[]; next: number | null }>();
  assert.equal(all.alarms.length, 5, 'three trust alarms, one silence, one grouped auth alarm');
  assert.deepEqual(all.alarms.map((a) => a.id), [...all.alarms.map((a) => a.id)].sort((a, b) => b - a), 'newest first');
  assert.equal(all.next, null);
  const auth = all.alarms.find((a) => a.kind === 'auth')!;
  assert.equal(auth.count, 3);
  const trust = all.alarms.filter((a) => a.kind === 'trust');
  assert.equal(trust.length, 3);
  assert.equal(trust[0]!.severity, 'critical');
  assert.match(trust[0]!.title, /rewritten or forked/);

  assert.equal((await get('?kind=trust,silence')).json<{ alarms: Alarm[] }>().alarms.length, 4);
  assert.equal((await get('?since=2999-01-01')).json<{ alarms: Alarm[] }>().alarms.length, 0);
  assert.equal((await get('?until=2000-01-01')).json<{ alarms: Alarm[] }>().alarms.length, 0);
  const p1 = (await get('?limit=2')).json<{ alarms: Alarm[]; next: number }>();
  assert.equal(p1.alarms.length, 2);
  const p2 = (await get(`?limit=2&before=${p1.next}`)).json<{ alarms: Alarm[] }>();
  assert.ok(p2.alarms.every((a) => a.id < p1.next));
  assert.equal((await get(`/${auth.id}`)).json<{ alarm: Alarm }>().alarm.count, 3);
  assert.equal((await get('/999999')).json<{ error: { code: string } }>().error.code, 'NOT_FOUND');

  assert.equal((await get('', v.tokens.admin)).statusCode, 200);
  const w = await get('', v.tokens.writer);
  assert.equal(w.statusCode, 403);
  for (const q of ['?kind=nope', '?since=yesterday-ish', '?limit=0', '?limit=501', '?before=-1', '?kind=' + 'x'.repeat(5000)]) {
    const r = await get(q);
    assert.equal(r.statusCode, 400, q);
    assert.equal(r.json<{ error: { code: string } }>().error.code, 'BAD_REQUEST');
  }
  // Every sighting of every alarm is one audit record: the five raised and two repeats here,
  // plus what the detectors raised from the refusals above (the writer reading alarms).
  await new Promise((r) => setTimeout(r, 100));
  const now = (await get('?limit=500')).json<{ alarms: Alarm[] }>().alarms;
  assert.ok(now.some((a) => a.kind === 'tamper'), 'the writer reading alarms is a tamper alarm');
  const audit = v.vault.sequencer('audit');
  await audit.waitForCheckpoint(audit.sequencedSize);
  let raised = 0;
  for (let i = 0; i < audit.size; i++) {
    const e = await v.app.inject({ method: 'GET', url: `/v1/logs/audit/entries/${i}`, headers: bearer(v.tokens.auditor) });
    const rec = JSON.parse(e.json<{ record: string }>().record) as { type: string };
    if (rec.type === 'alarm.raised' || rec.type === 'alarm.repeated') raised++;
  }
  assert.equal(raised, now.reduce((n, a) => n + a.count, 0));
});

test('custody alarms prints a table and --json, following pages', async (t) => {
  const v = await startInProc();
  t.after(async () => {
    await v.close();
    await cleanup();
  });
  for (let i = 0; i < 7; i++) await v.vault.alarms.raise({ kind: 'tamper', rule: 'test.tamper', severity: 'high', title: `writer w${i} tried to read`, details: { i } });
  await v.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = v.app.server.address() as { port: number };
  const env = { CUSTODY_URL: `http://127.0.0.1:${addr.port}`, CUSTODY_TOKEN: v.tokens.auditor };
  const j = await runCli(['alarms', '--json', '--limit', '600', '--kind', 'tamper'], env);
  assert.equal(j.code, 0, j.stderr);
  const out = JSON.parse(j.stdout) as { alarms: Alarm[] };
  assert.equal(out.alarms.length, 7);
  assert.equal(out.alarms[0]!.title, 'writer w6 tried to read');
  const h = await runCli(['alarms', '--since', 'now-1h'], env);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /HIGH\s+tamper/);
  assert.match(h.stdout, /writer w0 tried to read/);
  const none = await runCli(['alarms', '--kind', 'integrity'], env);
  assert.match(none.stdout, /No alarms\./);
  const bad = await runCli(['alarms', '--kind', 'bogus'], env);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /not an alarm kind/);
  const wrong = await runCli(['alarms'], { ...env, CUSTODY_TOKEN: v.tokens.writer });
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /FORBIDDEN/);
});
