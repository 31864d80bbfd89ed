/**
 * Auditors' trust on first use, the vault side: a client that finds a log disagreeing with the
 * checkpoint it verified before reports it (POST /v1/trust/report) and the vault records it as
 * an alarm in its audit log. `custody verify` does this by itself when a log forks under it.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startInProc, bearer, auditRecords } from './support/inproc.js';
import { startServer, runCli, makeTempDir, cleanup, appendNdjson, waitForCheckpoint, getJson } from './support/server.js';

after(cleanup);

const root = Buffer.alloc(32, 7).toString('base64');

test('POST /v1/trust/report: auditors only, checked for shape, recorded as alarm.trust', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const body = { log: 'local', reason: 'NOT_A_PREFIX', trusted: { size: 10, root }, seen: { size: 12, root }, message: 'forked', client: 'test' };
  const ok = await v.app.inject({ method: 'POST', url: '/v1/trust/report', headers: bearer(v.tokens.auditor), payload: body });
  assert.equal(ok.statusCode, 202, ok.body);
  for (const [name, tok, status] of [['writer', v.tokens.writer, 403], ['admin', v.tokens.admin, 403], ['none', '', 401]] as const) {
    const r = await v.app.inject({ method: 'POST', url: '/v1/trust/report', headers: tok ? bearer(tok) : {}, payload: body });
    assert.equal(r.statusCode, status, name);
  }
  const bad = [
    { ...body, reason: 'BECAUSE' },
    { ...body, trusted: { size: -1, root } },
    { ...body, seen: { size: 1, root: 'short' } },
    { ...body, log: 'nope' },
  ];
  for (const b of bad) {
    const r = await v.app.inject({ method: 'POST', url: '/v1/trust/report', headers: bearer(v.tokens.auditor), payload: b });
    assert.ok(r.statusCode === 400 || r.statusCode === 404, `${JSON.stringify(b).slice(0, 80)} → ${r.statusCode}`);
  }
  const alarms = (await auditRecords(v)).filter((e) => e['type'] === 'alarm.trust');
  assert.equal(alarms.length, 1, 'only the valid report is recorded');
  assert.equal(alarms[0]!['reason'], 'NOT_A_PREFIX');
  assert.deepEqual(alarms[0]!['trusted'], { size: 10, root });
  assert.equal((alarms[0]!['principal'] as { role: string }).role, 'auditor');
});

test('custody verify reports a log that no longer extends the checkpoint it trusted', async (t) => {
  const s = await startServer({ checkpointIntervalMs: 20 });
  t.after(() => s.stop());
  await appendNdjson(s.url, s.tokens.writer, Array.from({ length: 20 }, (_, i) => JSON.stringify({ i })));
  await waitForCheckpoint(s, 'local', 20);
  const trustFile = join(makeTempDir('trust'), 'trust.json');
  const env = { CUSTODY_URL: s.url, CUSTODY_TOKEN: s.tokens.auditor, CUSTODY_TRUST_FILE: trustFile };
  const first = await runCli(['verify', '--log', 'local', '--json'], env);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  // The auditor's client remembers a different root at that size: as if the log it verified
  // then and the log it sees now had forked.
  const tf = JSON.parse(readFileSync(trustFile, 'utf8')) as { logs: Record<string, { rootHash: string }> };
  for (const k of Object.keys(tf.logs)) tf.logs[k]!.rootHash = root;
  writeFileSync(trustFile, JSON.stringify(tf));
  await appendNdjson(s.url, s.tokens.writer, ['{"more":1}']);
  const second = await runCli(['verify', '--log', 'local', '--json'], env);
  assert.equal(second.code, 1, 'verification fails');
  const j = JSON.parse(second.stdout) as { ok: boolean; reported: string[] };
  assert.equal(j.ok, false);
  assert.match(j.reported[0]!, /reported to the vault as an alarm/);
  const human = await runCli(['verify', '--log', 'local'], env);
  assert.match(human.stdout, /NOT_A_PREFIX/);
  assert.match(human.stdout, /reported to the vault as an alarm/);
  // The alarm is in the audit log, readable by every auditor.
  const { logs } = await getJson<{ logs: Array<{ name: string; size: number }> }>(s.url, s.tokens.auditor, '/v1/logs');
  const auditSize = logs.find((l) => l.name === 'audit')!.size;
  let found = false;
  for (let i = auditSize - 1; i >= 0 && !found; i--) {
    const e = await getJson<{ record: string }>(s.url, s.tokens.auditor, `/v1/logs/audit/entries/${i}`);
    const rec = JSON.parse(e.record) as { type: string; reason?: string; log?: string };
    if (rec.type === 'alarm.trust' && rec.reason === 'NOT_A_PREFIX' && rec.log === 'local') found = true;
  }
  assert.ok(found, 'alarm.trust recorded');
});

test('checkTrust: pins on first use, proves consistency on later visits, refuses and reports a fork', async (t) => {
  const { CustodyClient } = await import('../src/cli/client.js');
  const { TrustStore, checkTrust } = await import('../src/cli/trust.js');
  const { CustodyError } = await import('../src/errors.js');
  const s = await startServer({ checkpointIntervalMs: 20 });
  t.after(() => s.stop());
  const client = new CustodyClient({ url: s.url, token: s.tokens.auditor });
  const file = join(makeTempDir('trust-light'), 'trust.json');
  const trust = new TrustStore(file);
  await appendNdjson(s.url, s.tokens.writer, ['{"a":1}', '{"a":2}']);
  await waitForCheckpoint(s, 'local', 2);
  const first = await checkTrust(client, trust, 'local');
  assert.equal(first.firstUse, true);
  assert.equal(first.size, 2);
  await appendNdjson(s.url, s.tokens.writer, ['{"a":3}']);
  await waitForCheckpoint(s, 'local', 3);
  const second = await checkTrust(client, new TrustStore(file), 'local');
  assert.equal(second.firstUse, false);
  assert.equal(second.trustedSize, 2);
  assert.equal(second.size, 3);
  // A light check never stands in for full verification: custody verify's resume point is untouched.
  assert.equal(new TrustStore(file).get(first.origin), undefined);
  // The client remembers another root at size 3: the log it sees now is a fork of that one.
  const tf = JSON.parse(readFileSync(file, 'utf8')) as { seen: Record<string, { rootHash: string }> };
  tf.seen[first.origin]!.rootHash = root;
  writeFileSync(file, JSON.stringify(tf));
  await appendNdjson(s.url, s.tokens.writer, ['{"a":4}']);
  await waitForCheckpoint(s, 'local', 4);
  await assert.rejects(checkTrust(client, new TrustStore(file), 'local'), (e: unknown) => e instanceof CustodyError && e.code === 'VERIFY_FAILED' && /forked|rewritten/.test(e.message) && /reported to the vault/.test(e.message));
});
