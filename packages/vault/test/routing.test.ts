/**
 * Region routing, writer scope and duplicates (ingest/pipeline.ts) on a real vault: records
 * that name a region land in that region's log and nowhere else; an explicit region list
 * refuses other regions per record; dedupe keys store a record once, also across concurrent
 * requests; envelope attributes are written and read back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startInProc, bearer, auditRecords, type InProcVault } from './support/inproc.js';
import { ingestRecords } from '../src/ingest/pipeline.js';
import type { ParsedRecord } from '../src/ingest/types.js';

function rec(body: string, position: number, extra: Partial<ParsedRecord> = {}): ParsedRecord {
  return { bytes: Buffer.from(body), position, source: 'test.routing', fields: {}, ...extra };
}

async function readEntry(v: InProcVault, log: string, index: number): Promise<{ record: string; envelope: Record<string, unknown> }> {
  const seq = v.vault.sequencer(log);
  await seq.waitForCheckpoint(index + 1);
  const r = await v.app.inject({ method: 'GET', url: `/v1/logs/${log}/entries/${index}`, headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, r.body);
  return r.json();
}

test('auto region mode: a new region gets its own log, keys and directory on first sight', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const writer = v.vault.auth.authenticate(v.tokens.writer)!;
  const s = await ingestRecords(v.vault, [rec('{"n":1}', 1, { region: 'eu-west-1' }), rec('{"n":2}', 2), rec('{"n":3}', 3, { region: 'eu-west-1' }), rec('{"n":4}', 4, { region: 'sa-east-1' })], { principal: writer });
  assert.equal(s.stored, 4);
  assert.deepEqual(
    s.outcomes.map((o) => (o.status === 'stored' ? [o.log, o.index] : o.status)),
    [['eu-west-1', 0], ['local', 0], ['eu-west-1', 1], ['sa-east-1', 0]],
  );
  assert.ok(existsSync(join(v.dataDir, 'logs', 'eu-west-1')) && existsSync(join(v.dataDir, 'logs', 'sa-east-1')));
  const logs = (await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(v.tokens.auditor) })).json<{ logs: Array<{ name: string; origin: string; region: string; verifierKey: string }> }>().logs;
  const eu = logs.find((l) => l.name === 'eu-west-1')!;
  assert.equal(eu.region, 'eu-west-1');
  assert.ok(eu.origin.endsWith('/eu-west-1'));
  assert.notEqual(eu.verifierKey, logs.find((l) => l.name === 'local')!.verifierKey, 'each region log has its own signing key');
  const e = await readEntry(v, 'eu-west-1', 1);
  assert.equal(e.record, '{"n":3}');
  assert.equal(e.envelope['region'], 'eu-west-1');
  // Nothing of eu-west-1 reached another region's storage.
  assert.equal(v.vault.sequencer('local').sequencedSize, 1);
  const audit = await auditRecords(v);
  assert.ok(audit.some((a) => a['type'] === 'log.created' && a['log'] === 'sa-east-1'), 'creating a log is audited');
});

test('region names that are not AWS regions are refused per record, never stored elsewhere', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const writer = v.vault.auth.authenticate(v.tokens.writer)!;
  const s = await ingestRecords(v.vault, [rec('{"ok":1}', 1), rec('{"x":1}', 2, { region: '../../etc' }), rec('{"x":2}', 3, { region: 'Local Region' })], { principal: writer });
  assert.equal(s.stored, 1);
  assert.deepEqual(s.outcomes.slice(1).map((o) => o.status === 'rejected' && o.code), ['REGION_NOT_ALLOWED', 'REGION_NOT_ALLOWED']);
  assert.deepEqual(readdirSync(join(v.dataDir, 'logs')).sort(), ['audit', 'local']);
});

test('fixed region list: a record for another region is refused with REGION_NOT_ALLOWED; the others are stored', async (t) => {
  const v = await startInProc({ regions: ['eu-west-1', 'eu-central-1'] });
  t.after(() => v.close());
  const body = ['{"region":"eu-west-1"}', '{"region":"us-east-1"}'].join('\n');
  // Through the API: the generic JSON source names no region, so both go to the URL's log …
  const plain = await v.app.inject({ method: 'POST', url: '/v1/logs/eu-central-1/entries', headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: body });
  assert.equal(plain.statusCode, 200, plain.body);
  assert.deepEqual(plain.json<{ appends: unknown }>().appends, [{ log: 'eu-central-1', first: 0, count: 2 }]);
  // … while records that name their region are routed, and a region the vault does not keep is refused.
  const writer = v.vault.auth.authenticate(v.tokens.writer)!;
  const s = await ingestRecords(v.vault, [rec('{"a":1}', 1, { region: 'eu-west-1' }), rec('{"a":2}', 2, { region: 'us-east-1' }), rec('{"a":3}', 3)], { principal: writer, defaultLog: 'eu-central-1' });
  assert.equal(s.stored, 2);
  const bad = s.outcomes[1]!;
  assert.equal(bad.status, 'rejected');
  assert.equal(bad.status === 'rejected' && bad.code, 'REGION_NOT_ALLOWED');
  assert.match(bad.status === 'rejected' ? bad.error : '', /us-east-1/);
  assert.ok(!existsSync(join(v.dataDir, 'logs', 'us-east-1')));
  assert.equal(v.vault.logForRegion('us-east-1'), undefined);
});

test('a scoped writer cannot reach another region through a record', async (t) => {
  const v = await startInProc({ regions: ['eu-west-1', 'us-east-1'] });
  t.after(() => v.close());
  const { principal } = await v.vault.createPrincipal({ name: 'eu-only', role: 'writer', logs: ['eu-west-1'], createdBy: 'test' });
  const s = await ingestRecords(v.vault, [rec('{"a":1}', 1, { region: 'eu-west-1' }), rec('{"a":2}', 2, { region: 'us-east-1' }), rec('{"a":3}', 3, { region: 'ap-south-1' })], { principal });
  assert.equal(s.stored, 1);
  assert.deepEqual(s.outcomes.map((o) => (o.status === 'rejected' ? o.code : o.status)), ['stored', 'FORBIDDEN', 'REGION_NOT_ALLOWED']);
  assert.equal(v.vault.sequencer('us-east-1').sequencedSize, 0);
});

test('dedupe keys: stored once within a batch, across batches and across concurrent requests', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const writer = v.vault.auth.authenticate(v.tokens.writer)!;
  const a = await ingestRecords(v.vault, [rec('{"e":"A"}', 1, { dedupeKey: 'k:A' }), rec('{"e":"A"}', 2, { dedupeKey: 'k:A' }), rec('{"e":"B"}', 3, { dedupeKey: 'k:B' }), rec('{"e":"nokey"}', 4)], { principal: writer });
  assert.equal(a.stored, 3);
  assert.equal(a.duplicates, 1);
  const first = a.outcomes[0]!;
  assert.deepEqual(a.outcomes[1], { status: 'duplicate', log: 'local', index: first.status === 'stored' ? first.index : -1 });
  const b = await ingestRecords(v.vault, [rec('{"e":"B"}', 1, { dedupeKey: 'k:B' }), rec('{"e":"C"}', 2, { dedupeKey: 'k:C' })], { principal: writer });
  assert.deepEqual(b.outcomes.map((o) => o.status), ['duplicate', 'stored']);
  // Twenty concurrent requests carrying the same keys: each key is stored exactly once.
  const before = v.vault.sequencer('local').sequencedSize;
  const batch = Array.from({ length: 50 }, (_, i) => rec(`{"c":${i}}`, i + 1, { dedupeKey: `conc:${i}` }));
  const results = await Promise.all(Array.from({ length: 20 }, () => ingestRecords(v.vault, batch, { principal: writer })));
  assert.equal(results.reduce((n, r) => n + r.stored, 0), 50);
  assert.equal(results.reduce((n, r) => n + r.duplicates, 0), 50 * 19);
  assert.equal(v.vault.sequencer('local').sequencedSize - before, 50);
});

test('dedupe survives a restart: keys are remembered once records are durable', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { pino } = await import('pino');
  const { initVault, Vault } = await import('../src/vault.js');
  const dir = mkdtempSync(join(tmpdir(), 'custody-dedupe-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const init = initVault(dir);
  const token = init.tokens.find((x) => x.role === 'writer')!.token;
  const logger = pino({ level: 'silent' });
  let vault = await Vault.open(dir, { logger, checkpointIntervalMs: 20 });
  let s = await ingestRecords(vault, [rec('{"id":1}', 1, { dedupeKey: 'restart:1' })], { principal: vault.auth.authenticate(token)! });
  assert.equal(s.stored, 1);
  await vault.close();
  vault = await Vault.open(dir, { logger, checkpointIntervalMs: 20 });
  s = await ingestRecords(vault, [rec('{"id":1}', 1, { dedupeKey: 'restart:1' })], { principal: vault.auth.authenticate(token)! });
  assert.deepEqual(s.outcomes, [{ status: 'duplicate', log: 'local', index: 0 }]);
  await vault.close();
});

test('/v1/ingest with ?object= is idempotent and writes the file name into each envelope', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const body = 'line one\nline two\n\nline three\n';
  const url = '/v1/ingest?source=text&name=' + encodeURIComponent('exports/app 1/000000.gz') + '&object=file:abc';
  const first = await v.app.inject({ method: 'POST', url, headers: bearer(v.tokens.writer), payload: Buffer.from(body) });
  assert.equal(first.statusCode, 200, first.body);
  assert.deepEqual(first.json<{ stored: number; ignored: number }>().stored, 3);
  assert.equal(first.json<{ ignored: number }>().ignored, 1);
  const again = await v.app.inject({ method: 'POST', url, headers: bearer(v.tokens.writer), payload: Buffer.from(body) });
  assert.equal(again.json<{ stored: number; duplicates: number }>().stored, 0);
  assert.equal(again.json<{ duplicates: number }>().duplicates, 3);
  const e = await readEntry(v, 'local', 2);
  assert.equal(e.record, 'line three');
  assert.deepEqual(e.envelope['attrs'], { file: 'exports/app%201/000000.gz' });
  // Without ?object= the same file is stored again (no natural identity to dedupe on).
  const third = await v.app.inject({ method: 'POST', url: '/v1/ingest?source=text', headers: bearer(v.tokens.writer), payload: Buffer.from(body) });
  assert.equal(third.json<{ stored: number }>().stored, 3);
});

test('writers can use HTTP Basic auth (Vector, Fluent Bit) and a HEAD health check', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const basic = { authorization: 'Basic ' + Buffer.from(`vector:${v.tokens.writer}`).toString('base64') };
  const r = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries', headers: { ...basic, 'content-type': 'application/x-ndjson' }, payload: '{"from":"vector"}\n' });
  assert.equal(r.statusCode, 200, r.body);
  const h = await v.app.inject({ method: 'HEAD', url: '/v1/logs/local/entries', headers: basic });
  assert.equal(h.statusCode, 200);
  const wrong = { authorization: 'Basic ' + Buffer.from('vector:cst_wrong').toString('base64') };
  const w = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries', headers: { ...wrong, 'content-type': 'application/x-ndjson' }, payload: '{"a":1}\n' });
  assert.equal(w.statusCode, 401);
  // Basic auth is a writer convenience: the auditor's read API still wants a bearer token.
  const ab = { authorization: 'Basic ' + Buffer.from(`x:${v.tokens.auditor}`).toString('base64') };
  const read = await v.app.inject({ method: 'GET', url: '/v1/logs', headers: ab });
  assert.equal(read.statusCode, 401);
});
