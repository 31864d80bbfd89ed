/**
 * The writer's API with good and hostile input: every bad request gets a clear 4xx with a
 * code, nothing of a refused batch is appended, and the vault keeps serving.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync, deflateSync } from 'node:zlib';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { verifyInclusion, fromBase64, openCheckpoint, parseVerifierKey, hashLeaf, verifyProofFile } from '@custody/verify';
import { startInProc, bearer, auditRecords, type InProcVault } from './support/inproc.js';
import { enrollTotp, useFakeClock, type TotpDevice } from './support/totp.js';

let v: InProcVault;
let totp: TotpDevice; // creating and revoking principals needs the admin's TOTP code (docs/ADMIN.md)
before(async () => {
  v = await startInProc();
  totp = await enrollTotp(v.app, v.tokens.admin, useFakeClock(v.vault));
});
after(async () => v.close());

const post = (payload: string | Buffer, opts: { type?: string; encoding?: string; token?: string; url?: string } = {}) =>
  v.app.inject({
    method: 'POST',
    url: opts.url ?? '/v1/logs/local/entries',
    headers: {
      ...bearer(opts.token ?? v.tokens.writer),
      'content-type': opts.type ?? 'application/x-ndjson',
      ...(opts.encoding ? { 'content-encoding': opts.encoding } : {}),
    },
    payload,
  });

const size = () => v.vault.sequencer('local').sequencedSize;
const errorOf = (r: { json: <T>() => T }) => r.json<{ error: { code: string; message: string; details?: Record<string, unknown> } }>().error;

async function readRecord(index: number): Promise<string> {
  const seq = v.vault.sequencer('local');
  await seq.waitForCheckpoint(index + 1);
  const r = await v.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${index}`, headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<{ record: string }>().record;
}

test('NDJSON: indices come back in order, records are stored byte for byte', async () => {
  const lines = ['{"a":1}', '  {"b" : "two" }  ', '{"c":"\\u00e9t\\u00e9 ✓"}'];
  const before = size();
  const r = await post(lines.join('\r\n')); // CRLF endings; last line without newline
  assert.equal(r.statusCode, 200, r.body);
  const a = r.json<{ first: number; count: number; indices: number[] }>();
  assert.equal(a.count, 3);
  assert.equal(a.first, before);
  assert.deepEqual(a.indices, [before, before + 1, before + 2]);
  for (let i = 0; i < 3; i++) assert.equal(await readRecord(before + i), lines[i]);
});

test('a JSON array keeps each element exactly as sent', async () => {
  const body = '[ {"x": [1, 2, {"y": "]\\""}]} ,\n "str,ing" , 42,{"z":null}]';
  const r = await post(body, { type: 'application/json' });
  assert.equal(r.statusCode, 200, r.body);
  const a = r.json<{ first: number; count: number }>();
  assert.equal(a.count, 4);
  assert.deepEqual(
    await Promise.all([0, 1, 2, 3].map((i) => readRecord(a.first + i))),
    ['{"x": [1, 2, {"y": "]\\""}]}', '"str,ing"', '42', '{"z":null}'],
  );
  const single = await post('{"only":"one"}\n', { type: 'application/json; charset=utf-8' });
  assert.equal(single.statusCode, 200);
  assert.equal(await readRecord(single.json<{ first: number }>().first), '{"only":"one"}');
});

test('gzip and deflate bodies are accepted', async () => {
  const lines = Array.from({ length: 500 }, (_, i) => JSON.stringify({ i, msg: 'compressed' }));
  for (const [enc, data] of [['gzip', gzipSync(lines.join('\n'))], ['deflate', deflateSync(lines.join('\n'))]] as const) {
    const r = await post(data, { encoding: enc });
    assert.equal(r.statusCode, 200, r.body);
    const a = r.json<{ first: number; count: number }>();
    assert.equal(a.count, 500);
    assert.equal(await readRecord(a.first + 499), lines[499]);
  }
});

test('malformed lines are refused one by one, named by line, and never sink the good ones', async () => {
  const before = size();
  const r = await post('{"ok":1}\n{"bad":\n{"ok":2}\nnot json\n\n{"ok":3}');
  assert.equal(r.statusCode, 200, r.body);
  const a = r.json<{ stored: number; rejected: number; indices: number[]; errors: Array<{ line: number; code: string; error: string }> }>();
  assert.equal(a.stored, 3);
  assert.equal(a.rejected, 2);
  assert.deepEqual(a.errors.map((l) => [l.line, l.code]), [[2, 'BAD_JSON'], [4, 'BAD_JSON']]);
  assert.ok(a.errors.every((l) => l.error.length > 15));
  assert.deepEqual(await Promise.all(a.indices.map(readRecord)), ['{"ok":1}', '{"ok":2}', '{"ok":3}']);
  assert.equal(size(), before + 3);
});

test('a batch in which no line is valid is refused whole, naming each line', async () => {
  const before = size();
  const r = await post('{"bad":\nnot json\n');
  assert.equal(r.statusCode, 400);
  const e = errorOf(r);
  assert.equal(e.code, 'BAD_JSON_LINES');
  assert.deepEqual((e.details!.lines as Array<{ line: number }>).map((l) => l.line), [1, 2]);
  assert.equal(e.details!.badLines, 2);
  assert.equal(size(), before, 'nothing of a refused batch is appended');
});

test('hostile bodies get a clear 4xx with a code', async () => {
  const before = size();
  const cases: Array<[string, Promise<{ statusCode: number; json: <T>() => T }>, number, string]> = [
    ['invalid UTF-8', post(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])), 400, 'BAD_ENCODING'],
    ['wrong content type', post('{"a":1}', { type: 'application/xml' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['unknown source parser on /v1/ingest', v.app.inject({ method: 'POST', url: '/v1/ingest?source=nope', headers: bearer(v.tokens.writer), payload: Buffer.from('{"a":1}') }), 400, 'UNKNOWN_SOURCE'],
    ['no content type', v.app.inject({ method: 'POST', url: '/v1/logs/local/entries', headers: bearer(v.tokens.writer), payload: Buffer.from('{"a":1}') }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['corrupt gzip', post(Buffer.from('this is not gzip'), { encoding: 'gzip' }), 400, 'BAD_ENCODING'],
    ['unknown encoding', post('{"a":1}', { encoding: 'br-unknown' }), 400, 'BAD_ENCODING'],
    ['empty body', post(''), 400, 'EMPTY_BATCH'],
    ['only blank lines', post('\n\n  \n'), 400, 'EMPTY_BATCH'],
    ['unknown log', post('{"a":1}', { url: '/v1/logs/nope/entries' }), 404, 'LOG_NOT_FOUND'],
    ['bad source', post('{"a":1}', { url: '/v1/logs/local/entries?source=Has%20Space' }), 400, 'BAD_REQUEST'],
    ['bad wait', post('{"a":1}', { url: '/v1/logs/local/entries?wait=forever' }), 400, 'BAD_REQUEST'],
    ['malformed token', post('{"a":1}', { token: 'not-a-token' }), 401, 'UNAUTHENTICATED'],
  ];
  for (const [name, p, status, code] of cases) {
    const r = await p;
    assert.equal(r.statusCode, status, name);
    assert.equal(errorOf(r).code, code, name);
    assert.ok(errorOf(r).message.length > 15, `${name}: the message tells what to do`);
  }
  assert.equal(size(), before);
});

test('a 100 MB single record is refused on every writer route and the server keeps serving', async () => {
  const huge = Buffer.alloc(100 * 1024 * 1024, 0x61);
  huge[0] = 0x22;
  huge[huge.length - 1] = 0x22;
  for (const url of ['/v1/logs/local/entries', '/v1/ingest?source=json']) {
    const r = await v.app.inject({ method: 'POST', url, headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: huge });
    assert.equal(r.statusCode, 413, url);
    assert.equal(errorOf(r).code, 'BODY_TOO_LARGE', url);
  }
  // The same as a gzip file on /v1/ingest: it inflates past nothing but the 1 MiB record limit.
  const gz = gzipSync(huge, { level: 1 });
  const r = await v.app.inject({ method: 'POST', url: '/v1/ingest?source=json', headers: bearer(v.tokens.writer), payload: gz });
  assert.equal(r.statusCode, 413, r.body);
  assert.equal(errorOf(r).code, 'RECORD_TOO_LARGE');
  const ok = await post('{"after":"huge"}');
  assert.equal(ok.statusCode, 200);
});

test('a gzip bomb is stopped at the 16 MiB cap', async () => {
  const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024, 0x20), { level: 9 }); // 200 MiB of spaces, ~200 KB compressed
  assert.ok(bomb.length < 1024 * 1024);
  const rssBefore = process.memoryUsage().rss;
  const r = await post(bomb, { encoding: 'gzip' });
  assert.equal(r.statusCode, 413);
  assert.equal(errorOf(r).code, 'BODY_TOO_LARGE');
  assert.ok(process.memoryUsage().rss - rssBefore < 150 * 1024 * 1024, 'inflating stopped at the cap');
});

test('bodies over 16 MiB and records over 1 MiB are refused', async () => {
  const line = JSON.stringify({ pad: 'x'.repeat(1000) });
  const big = Array.from({ length: 17 * 1024 }, () => line).join('\n');
  const r = await post(big);
  assert.equal(r.statusCode, 413);
  assert.equal(errorOf(r).code, 'BODY_TOO_LARGE');
  const huge = JSON.stringify({ pad: 'y'.repeat(1024 * 1024) });
  const r2 = await post(`{"fine":1}\n${huge}\n`);
  assert.equal(r2.statusCode, 200, 'the good record beside a too-large one is stored');
  const a2 = r2.json<{ stored: number; errors: Array<{ line: number; code: string }> }>();
  assert.equal(a2.stored, 1);
  assert.deepEqual(a2.errors.map((e) => [e.line, e.code]), [[2, 'RECORD_TOO_LARGE']]);
  const r3 = await post(`${huge}\n`);
  assert.equal(r3.statusCode, 413);
  assert.equal(errorOf(r3).code, 'RECORD_TOO_LARGE');
  assert.equal((errorOf(r3).details as { lines: Array<{ line: number }> }).lines[0]!.line, 1);
});

test('records larger than one entry become sealed blobs, read back byte for byte', async () => {
  const rec = JSON.stringify({ big: 'z'.repeat(300 * 1024), marker: 'BLOBMARKER-7f3a' });
  const r = await post(rec + '\n');
  assert.equal(r.statusCode, 200, r.body);
  const index = r.json<{ first: number }>().first;
  assert.equal(await readRecord(index), rec);
  const e = await v.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${index}`, headers: bearer(v.tokens.auditor) });
  const body = e.json<{ envelope: { blob: { sha256: string; size: number } } }>();
  assert.equal(body.envelope.blob.size, Buffer.byteLength(rec));
  assert.equal(body.envelope.blob.sha256, createHash('sha256').update(rec).digest('hex'));
  // On disk the blob is sealed and not named after the record's hash.
  const blobDir = join(v.dataDir, 'logs', 'local', 'blobs');
  const files = readdirSync(blobDir, { recursive: true }).map(String).filter((f) => statSync(join(blobDir, f)).isFile());
  assert.equal(files.length, 1);
  assert.ok(!files[0]!.includes(body.envelope.blob.sha256));
  assert.ok(!readFileSync(join(blobDir, files[0]!)).includes('BLOBMARKER-7f3a'));
});

test('wait=checkpoint returns a receipt that verifies with the log key alone', async () => {
  const lines = ['{"receipt":1}', '{"receipt":2}'];
  const r = await post(lines.join('\n'), { url: '/v1/logs/local/entries?wait=checkpoint&source=app.test' });
  assert.equal(r.statusCode, 200, r.body);
  const a = r.json<{
    checkpoint: string;
    envelope: { origin: string; region: string; source: string; producer: string; received: string };
    receipts: Array<{ index: number; leafHash: string; salt: string; inclusionProof: string[] }>;
  }>();
  const logs = await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(v.tokens.auditor) });
  const vkey = logs.json<{ logs: Array<{ name: string; verifierKey: string }> }>().logs.find((l) => l.name === 'local')!.verifierKey;
  const cp = openCheckpoint(a.checkpoint, parseVerifierKey(vkey)).checkpoint;
  assert.equal(a.envelope.source, 'app.test');
  assert.equal(a.envelope.producer, 'initial-writer');
  a.receipts.forEach((rc, i) => {
    // The producer can rebuild its entry from its own record, the envelope fields and the salt.
    const e = a.envelope;
    const entry = `custody-entry/v1\nlog ${e.origin}\nregion ${e.region}\nsource ${e.source}\nproducer ${e.producer}\nreceived ${e.received}\nsalt ${rc.salt}\n\n${lines[i]}`;
    const leaf = hashLeaf(new TextEncoder().encode(entry));
    assert.equal(Buffer.from(leaf).toString('base64'), rc.leafHash);
    verifyInclusion(leaf, rc.index, cp.size, rc.inclusionProof.map((p) => fromBase64(p, 32)), cp.rootHash);
  });
  // The entry API hands out the same proof as a C2SP tlog-proof file.
  const e = await v.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${a.receipts[0]!.index}`, headers: bearer(v.tokens.auditor) });
  const eb = e.json<{ proofFile: string; entry: string }>();
  const res = verifyProofFile(eb.proofFile, hashLeaf(Buffer.from(eb.entry, 'base64')), parseVerifierKey(vkey));
  assert.equal(res.index, a.receipts[0]!.index);
});

test('revoked tokens stop working at once, and say so', async () => {
  const created = await v.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...(await totp.headers(v.tokens.admin)), 'content-type': 'application/json' }, payload: { name: 'short-lived', role: 'writer' } });
  assert.equal(created.statusCode, 201);
  const { principal, token } = created.json<{ principal: { id: string }; token: string }>();
  assert.equal((await post('{"a":1}', { token })).statusCode, 200);
  const rv = await v.app.inject({ method: 'POST', url: `/v1/principals/${principal.id}/revoke`, headers: await totp.headers(v.tokens.admin) });
  assert.equal(rv.statusCode, 200);
  const r = await post('{"a":2}', { token });
  assert.equal(r.statusCode, 401);
  assert.match(errorOf(r).message, /revoked/);
  const list = await v.app.inject({ method: 'GET', url: '/v1/principals', headers: bearer(v.tokens.admin) });
  assert.ok(!list.body.includes(token), 'tokens are never listed');
  assert.ok(!list.body.includes('token_hash'));
  const audit = await auditRecords(v);
  assert.ok(audit.some((a) => a.type === 'admin.principal.revoked'));
  assert.ok(audit.some((a) => a.type === 'auth.failed' && a.reason === 'revoked token'));
});

test('principal input is validated', async () => {
  const mk = async (payload: unknown) => v.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...(await totp.headers(v.tokens.admin)), 'content-type': 'application/json' }, payload: payload as object });
  assert.equal((await mk({ name: 'x y', role: 'writer' })).statusCode, 400);
  assert.equal((await mk({ name: 'ok', role: 'root' })).statusCode, 400);
  assert.equal((await mk({ name: 'ok2', role: 'auditor', logs: ['local'] })).statusCode, 400);
  assert.equal((await mk({ name: 'ok3', role: 'writer', logs: ['nope'] })).statusCode, 404);
  assert.equal((await mk({ name: 'dup', role: 'writer' })).statusCode, 201);
  const dup = await mk({ name: 'dup', role: 'writer' });
  assert.equal(dup.statusCode, 409);
  assert.equal(errorOf(dup).code, 'PRINCIPAL_EXISTS');
  const unknown = await v.app.inject({ method: 'POST', url: '/v1/principals/p_nope/revoke', headers: await totp.headers(v.tokens.admin) });
  assert.equal(unknown.statusCode, 404);
});

test('after all of that the vault still serves and the log still verifies', async () => {
  const r = await post('{"still":"alive"}', { url: '/v1/logs/local/entries?wait=checkpoint' });
  assert.equal(r.statusCode, 200);
  const ready = await v.app.inject({ method: 'GET', url: '/readyz' });
  assert.equal(ready.statusCode, 200);
  const metrics = await v.app.inject({ method: 'GET', url: '/metrics' });
  assert.match(metrics.body, /custody_log_size\{log="local"\} [1-9]/);
  assert.ok(!metrics.body.includes(v.tokens.writer));
});
