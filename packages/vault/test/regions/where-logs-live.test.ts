/**
 * "A vault serving several regions says where each log lives" (issue 6): GET /v1/logs gives each
 * log its region, its storage location and the key its new bundles are sealed under (ids only,
 * never key material); `custody logs` prints them as a table and as JSON, from the API and
 * offline from a data directory.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startInProc, bearer } from '../support/inproc.js';
import { startServer, runCli, cleanup, appendNdjson, ROOT } from '../support/server.js';
import { ingestRecords } from '../../src/ingest/pipeline.js';

after(cleanup);

interface Described {
  name: string;
  region: string;
  kind: string;
  size: number;
  storage: { kind: string; path: string };
  key: { provider: string; kekId: number; keyArn?: string };
}

test('GET /v1/logs says per log its region, storage location and key; key ids follow a rotation', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const writer = v.vault.auth.authenticate(v.tokens.writer)!;
  const rec = (body: string, region?: string) => ({ bytes: Buffer.from(body), position: 1, source: 'test.where', fields: {}, ...(region ? { region } : {}) });
  const s = await ingestRecords(v.vault, [rec('{"a":1}', 'eu-west-1'), rec('{"b":1}', 'ap-south-1'), rec('{"c":1}')], { principal: writer });
  assert.equal(s.stored, 3);

  const get = async (): Promise<Described[]> => {
    const r = await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(v.tokens.auditor) });
    assert.equal(r.statusCode, 200, r.body);
    return r.json<{ logs: Described[] }>().logs;
  };
  const logs = await get();
  assert.deepEqual(logs.map((l) => l.name).sort(), ['ap-south-1', 'audit', 'eu-west-1', 'local']);
  for (const l of logs) {
    assert.deepEqual(l.storage, { kind: 'posix', path: `logs/${l.name}` }, `${l.name}: relative to the data directory`);
    assert.deepEqual(l.key, { provider: 'local', kekId: 1 });
  }
  assert.equal(logs.find((l) => l.name === 'eu-west-1')!.region, 'eu-west-1');
  assert.equal(logs.find((l) => l.name === 'ap-south-1')!.region, 'ap-south-1');
  // No key material in the answer: none of the log's keys, in any encoding.
  const body = (await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(v.tokens.admin) })).body;
  for (const name of ['eu-west-1', 'local', 'audit']) {
    const k = v.vault.keyring.forLog(name).exportForWorker();
    for (const secret of [k.signingSeed, k.blobNameKey, ...k.keks.map((x) => x.key)]) {
      assert.ok(!body.includes(secret.toString('base64')) && !body.includes(secret.toString('hex')) && !body.includes(secret.toString('base64url')), `no key of ${name} in the answer`);
    }
  }

  // A KEK rotation of one log: its description names the new key, the others keep theirs.
  v.vault.keyring.rotateKek('eu-west-1');
  const after = await get();
  assert.equal(after.find((l) => l.name === 'eu-west-1')!.key.kekId, 2);
  assert.equal(after.find((l) => l.name === 'ap-south-1')!.key.kekId, 1);

  // Writers do not get the list at all.
  const w = await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(v.tokens.writer) });
  assert.equal(w.statusCode, 403);
});

test('custody logs: a table and --json, from the API and offline from the data directory', async () => {
  const s = await startServer({ checkpointIntervalMs: 20 });
  // A record for a second region (CloudTrail names its region), through the public API.
  await appendNdjson(s.url, s.tokens.writer, ['{"hello":"world"}']);
  const ct = readFileSync(join(ROOT, '..', 'shared', 'samples', 'cloudtrail', 'clo_cloudtrail_records.json'));
  const r = await fetch(`${s.url}/v1/ingest?source=auto&name=clo_cloudtrail_records.json`, { method: 'POST', headers: { authorization: `Bearer ${s.tokens.writer}` }, body: ct });
  assert.equal(r.status, 200, await r.text());

  const env = { CUSTODY_URL: s.url, CUSTODY_TOKEN: s.tokens.auditor };
  const json = await runCli(['logs', '--json'], env);
  assert.equal(json.code, 0, json.stderr);
  const logs = (JSON.parse(json.stdout) as { logs: Described[] }).logs;
  const south = logs.find((l) => l.name === 'ap-south-1');
  assert.ok(south, `the CloudTrail records made a log for their region: ${logs.map((l) => l.name).join(', ')}`);
  assert.deepEqual([south.region, south.storage, south.key.provider, south.key.kekId], ['ap-south-1', { kind: 'posix', path: 'logs/ap-south-1' }, 'local', 1]);

  const table = await runCli(['logs'], env);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0]!, /^NAME\s+REGION\s+KIND\s+ENTRIES\s+STORAGE\s+KEY\s+VERIFIER KEY$/);
  const row = lines.find((l) => l.startsWith('ap-south-1 '));
  assert.ok(row, table.stdout);
  assert.match(row, /^ap-south-1\s+ap-south-1\s+region\s+\d+\s+posix logs\/ap-south-1\s+local kek 1\s+\S+\+[0-9a-f]{8}\+\S+$/);

  // Offline, from the data directory: the same locations and keys.
  const offline = await runCli(['logs', '--data', s.dataDir, '--json']);
  assert.equal(offline.code, 0, offline.stderr);
  const off = (JSON.parse(offline.stdout) as { logs: Described[] }).logs;
  assert.deepEqual(
    off.map((l) => [l.name, l.region, l.kind, l.storage, l.key]).sort(),
    logs.map((l) => [l.name, l.region, l.kind, l.storage, l.key]).sort(),
  );
  // Hostile: no token, or a writer's token, gets no list.
  const noToken = await runCli(['logs', '--json'], { CUSTODY_URL: s.url, CUSTODY_TOKEN: '' });
  assert.notEqual(noToken.code, 0);
  const asWriter = await runCli(['logs', '--json'], { CUSTODY_URL: s.url, CUSTODY_TOKEN: s.tokens.writer });
  assert.notEqual(asWriter.code, 0);
  assert.match(asWriter.stdout + asWriter.stderr, /FORBIDDEN/);
});
