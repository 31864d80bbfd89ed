/**
 * Elasticsearch _bulk with the official @elastic/elasticsearch client over a socket, and with
 * good and hostile bodies: index/create store the document bytes exactly, delete/update are
 * refused per item and recorded as tamper attempts, the good items of the same request are
 * stored, and every answer has Elasticsearch's shape and product header.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync, deflateSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { Client, errors } from '@elastic/elasticsearch';
import { startInProc, bearer, auditRecords, type InProcVault } from './support/inproc.js';
import { ROOT } from './support/server.js';
import { listen, logSize, readEntries, gzipBomb, truncatedGzip, assertStillServing, ofType } from './support/protocols.js';

let v: InProcVault;
let base: string;
before(async () => {
  v = await startInProc();
  base = await listen(v);
});
after(async () => v.close());

const bulk = (payload: string | Buffer, opts: { url?: string; method?: 'POST' | 'PUT'; headers?: Record<string, string>; token?: string | null } = {}) =>
  v.app.inject({
    method: opts.method ?? 'POST',
    url: opts.url ?? '/_bulk',
    headers: { ...(opts.token === null ? {} : bearer(opts.token ?? v.tokens.writer)), 'content-type': 'application/x-ndjson', ...(opts.headers ?? {}) },
    payload,
  });

type ItemBody = { _index: string; _id: string | null; status: number; result?: string; error?: { type: string; reason: string }; _seq_no?: number; _custody?: { log: string; index: number } };
type BulkAnswer = { took: number; errors: boolean; items: Array<Record<string, ItemBody>> };
const item = (a: BulkAnswer, i: number): [string, ItemBody] => Object.entries(a.items[i]!)[0]! as [string, ItemBody];

test('the official client: info, helpers.bulk of documents stored byte for byte, basic and bearer credentials', async () => {
  const client = new Client({ node: base, auth: { bearer: v.tokens.writer } });
  const info = await client.info();
  assert.equal(info.version.number.split('.')[0], '8');
  assert.equal(info.tagline, 'You Know, for Search');
  assert.equal(await client.ping(), true);

  const docs = [
    { '@timestamp': '2024-05-01T10:00:00Z', message: 'user alice logged in', user: { name: 'alice' } },
    { '@timestamp': '2024-05-01T10:00:01Z', message: 'quotes " and \\ and ünïcödé ✓' },
    { '@timestamp': '2024-05-01T10:00:02Z', message: 'three', tags: ['a', 'b'], n: 1.5 },
    { message: 'four' },
    { message: 'five', nested: { deep: { deeper: [null, true, false] } } },
  ];
  const from = logSize(v);
  const dropped: unknown[] = [];
  const stats = await client.helpers.bulk({ datasource: docs, onDocument: () => ({ create: { _index: 'app-logs' } }), onDrop: (d) => dropped.push(d) });
  assert.equal(stats.successful, 5);
  assert.equal(stats.failed, 0);
  assert.deepEqual(dropped, []);
  const stored = await readEntries(v, from, from + 5);
  assert.deepEqual(
    stored.map((s) => s.bytes.toString()),
    docs.map((d) => JSON.stringify(d)),
  );
  assert.ok(stored.every((s) => s.source === 'es.app-logs'));

  const basic = new Client({ node: base, auth: { username: 'logstash_writer', password: v.tokens.writer } });
  const r = await basic.bulk({ operations: [{ index: { _index: 'basic-auth' } }, { ok: 1 }] });
  assert.equal(r.errors, false);
  assert.equal(r.items[0]!.index!.status, 201);
  // Beats / Logstash style: api_key "custody:<token>", sent as Authorization: ApiKey base64(id:key).
  const apiKey = new Client({ node: base, auth: { apiKey: Buffer.from(`custody:${v.tokens.writer}`).toString('base64') } });
  const k = await apiKey.bulk({ operations: [{ create: { _index: 'api-key' } }, { ok: 2 }] });
  assert.equal(k.errors, false);
  assert.equal(k.items[0]!.create!.status, 201);
  await client.close();
  await basic.close();
  await apiKey.close();
});

test('the official client: delete and update are refused per item and recorded as tamper attempts; the good items are stored', async () => {
  const client = new Client({ node: base, auth: { bearer: v.tokens.writer } });
  const from = logSize(v);
  const r = await client.bulk({
    operations: [
      { index: { _index: 'app-logs', _id: 'doc-1' } },
      { message: 'good one' },
      { delete: { _index: 'app-logs', _id: 'doc-1' } },
      { update: { _index: 'app-logs', _id: 'doc-1' } },
      { doc: { message: 'rewritten' } },
      { create: { _index: 'app-logs' } },
      { message: 'good two' },
    ],
  });
  assert.equal(r.errors, true);
  assert.equal(r.items.length, 4);
  assert.equal(r.items[0]!.index!.status, 201);
  assert.equal(r.items[0]!.index!._id, 'doc-1');
  assert.equal(r.items[1]!.delete!.status, 403);
  assert.equal(r.items[1]!.delete!.error!.type, 'security_exception');
  assert.equal(r.items[2]!.update!.status, 403);
  assert.equal(r.items[2]!.update!.error!.type, 'security_exception');
  assert.equal(r.items[3]!.create!.status, 201);
  assert.match(String(r.items[3]!.create!._id), /^[A-Za-z0-9_-]{20}$/);
  assert.equal(logSize(v), from + 2);
  assert.deepEqual((await readEntries(v, from, from + 2)).map((s) => s.bytes.toString()), ['{"message":"good one"}', '{"message":"good two"}']);
  const tamper = ofType(await auditRecords(v), 'tamper.attempt');
  const del = tamper.find((e) => e['kind'] === 'bulk-delete' && e['id'] === 'doc-1');
  const upd = tamper.find((e) => e['kind'] === 'bulk-update' && e['id'] === 'doc-1');
  assert.ok(del, 'the delete was recorded');
  assert.ok(upd, 'the update was recorded');
  assert.equal(del['index'], 'app-logs');
  assert.equal((del['principal'] as { name: string }).name, 'initial-writer');
  await client.close();
});

test('the official client with an auditor token or a wrong token gets 403/401 security_exception', async () => {
  for (const [token, status] of [[v.tokens.auditor, 403], ['wrong', 401]] as const) {
    const client = new Client({ node: base, auth: { bearer: token }, maxRetries: 0 });
    await assert.rejects(
      () => client.bulk({ operations: [{ index: { _index: 'x' } }, { a: 1 }] }),
      (e: unknown) => e instanceof errors.ResponseError && e.statusCode === status && (e.body as { error: { type: string } }).error.type === 'security_exception',
    );
    await client.close();
  }
});

test('index and create keep the source line exactly: URL index, _index, PUT, CRLF, no final newline, the index called "logs"', async () => {
  const docs = ['{"a":1}', '  { "b" : "two" , "c":[1, 2] }  ', '{"c":"ünïcödé \\" {"}', '{"d":null}'];
  const from = logSize(v);
  const body = `{"index":{}}\r\n${docs[0]}\r\n{ "create" : { "_index" : "other-index" } }\n${docs[1]}\n\n{"index":{"_id":"x1"}}\n${docs[2]}\n{"create":{}}\n${docs[3]}`;
  const r = await bulk(body, { url: '/my-index/_bulk', method: 'PUT' });
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(r.headers['x-elastic-product'], 'Elasticsearch');
  const a = r.json<BulkAnswer>();
  assert.equal(a.errors, false);
  assert.deepEqual(a.items.map((it) => Object.keys(it)[0]), ['index', 'create', 'index', 'create']);
  assert.deepEqual(a.items.map((it) => Object.values(it)[0]!._index), ['my-index', 'other-index', 'my-index', 'my-index']);
  assert.equal(item(a, 2)[1]._id, 'x1');
  assert.deepEqual(a.items.map((it) => Object.values(it)[0]!.status), [201, 201, 201, 201]);
  // Each item says where its document is (records of one source are appended together).
  const at = a.items.map((it) => Object.values(it)[0]!._custody!.index);
  assert.deepEqual([...at].sort((x, y) => x - y), [from, from + 1, from + 2, from + 3]);
  const stored = await readEntries(v, from, from + 4);
  assert.deepEqual(at.map((i) => stored[i - from]!.bytes.toString()), docs);
  assert.deepEqual(at.map((i) => stored[i - from]!.source), ['es.my-index', 'es.other-index', 'es.my-index', 'es.my-index']);
  assert.deepEqual(a.items.map((it) => Object.values(it)[0]!._seq_no), at);

  const logs = await bulk('{"index":{}}\n{"e":1}\n', { url: '/logs/_bulk' });
  assert.equal(logs.statusCode, 200, logs.body);
  assert.equal(item(logs.json<BulkAnswer>(), 0)[1]._index, 'logs');
  assert.equal((await readEntries(v, from + 4, from + 5))[0]!.source, 'es.logs');
});

test('bad items are refused in their item, the good ones of the same request are stored', async () => {
  const from = logSize(v);
  const body = [
    '{"index":{"_index":"ok"}}',
    '{"fine":1}',
    '{"index":{"_index":"ok"}}',
    '{"broken": tru}',
    '{"index":{"_index":"ok"}}',
    '[1,2,3]',
    '{"index":{}}',
    '{"no":"index"}',
    '{"index":{"_index":"Bad*Name"}}',
    '{"x":1}',
    '{"create":{"_index":"ok"}}',
    '{"fine":2}',
  ].join('\n');
  const r = await bulk(body + '\n');
  assert.equal(r.statusCode, 200);
  const a = r.json<BulkAnswer>();
  assert.equal(a.errors, true);
  assert.deepEqual(
    a.items.map((it) => Object.values(it)[0]!.status),
    [201, 400, 400, 400, 400, 201],
  );
  assert.equal(item(a, 1)[1].error!.type, 'document_parsing_exception');
  assert.equal(item(a, 2)[1].error!.type, 'document_parsing_exception');
  assert.equal(item(a, 3)[1].error!.type, 'action_request_validation_exception');
  assert.equal(item(a, 4)[1].error!.type, 'invalid_index_name_exception');
  assert.equal(logSize(v), from + 2);
  assert.deepEqual((await readEntries(v, from, from + 2)).map((s) => s.bytes.toString()), ['{"fine":1}', '{"fine":2}']);
});

test('a client-chosen _id is stored once: a second create is a 409 conflict, a second index a noop', async () => {
  const from = logSize(v);
  const once = '{"create":{"_index":"ids","_id":"same"}}\n{"v":1}\n{"create":{"_index":"ids","_id":"same"}}\n{"v":2}\n{"index":{"_index":"ids","_id":"same"}}\n{"v":3}\n';
  const r = await bulk(once);
  const a = r.json<BulkAnswer>();
  assert.deepEqual(a.items.map((it) => Object.values(it)[0]!.status), [201, 409, 200]);
  assert.equal(item(a, 1)[1].error!.type, 'version_conflict_engine_exception');
  assert.equal(item(a, 2)[1].result, 'noop');
  const again = (await bulk('{"create":{"_index":"ids","_id":"same"}}\n{"v":4}\n')).json<BulkAnswer>();
  assert.equal(item(again, 0)[1].status, 409);
  assert.equal(logSize(v), from + 1);
  assert.equal((await readEntries(v, from, from + 1))[0]!.bytes.toString(), '{"v":1}');
  // The same _id in another index is another document.
  const other = (await bulk('{"create":{"_index":"ids-2","_id":"same"}}\n{"v":5}\n')).json<BulkAnswer>();
  assert.equal(item(other, 0)[1].status, 201);
});

test('many deletes: the first 20 are recorded one by one, the rest in one summary event', async () => {
  const before = ofType(await auditRecords(v), 'tamper.attempt', 'bulk-delete').length;
  const ops = Array.from({ length: 25 }, (_, i) => `{"delete":{"_index":"wipe","_id":"d${i}"}}`).join('\n') + '\n{"index":{"_index":"wipe"}}\n{"kept":true}\n';
  const from = logSize(v);
  const r = await bulk(ops);
  assert.equal(r.statusCode, 200);
  const a = r.json<BulkAnswer>();
  assert.equal(a.items.length, 26);
  assert.ok(a.items.slice(0, 25).every((it) => it['delete']?.status === 403));
  assert.equal(item(a, 25)[1].status, 201);
  assert.equal(logSize(v), from + 1);
  const audit = await auditRecords(v);
  assert.equal(ofType(audit, 'tamper.attempt', 'bulk-delete').length - before, 20);
  const summary = ofType(audit, 'tamper.attempt.suppressed', 'bulk').at(-1);
  assert.ok(summary);
  assert.equal(summary['count'], 5);
  assert.equal(summary['deletes'], 5);
});

test('a malformed action line refuses the whole request (nothing stored): framing is lost after it', async () => {
  const from = logSize(v);
  for (const body of ['{"index":{}}\n{"a":1}\nnot json\n{"b":2}\n', '{"index":{}}\n{"a":1}\n{"upsert":{}}\n{"b":2}\n', '{"index":{},"delete":{}}\n{"a":1}\n', '[]\n', '{"index":"x"}\n{}\n']) {
    const r = await bulk(body, { url: '/idx/_bulk' });
    assert.equal(r.statusCode, 400, body);
    const e = r.json<{ error: { type: string; reason: string; root_cause: unknown[] }; status: number }>();
    assert.equal(e.status, 400);
    assert.equal(e.error.type, 'x_content_parse_exception');
    assert.match(e.error.reason, /Malformed action\/metadata line \[\d+\]/);
    assert.equal(r.headers['x-elastic-product'], 'Elasticsearch');
  }
  assert.equal(logSize(v), from);
});

test('credentials and the handshake: 401 with WWW-Authenticate, 403 for the auditor, GET / needs a token, HEAD / works', async () => {
  const from = logSize(v);
  const none = await bulk('{"index":{"_index":"x"}}\n{"a":1}\n', { token: null });
  assert.equal(none.statusCode, 401);
  assert.match(String(none.headers['www-authenticate']), /Basic realm="security"/);
  assert.equal(none.headers['x-elastic-product'], 'Elasticsearch');
  assert.equal(none.json<{ error: { type: string } }>().error.type, 'security_exception');
  const wrong = await bulk('{"index":{"_index":"x"}}\n{"a":1}\n', { token: 'wrong' });
  assert.equal(wrong.statusCode, 401);
  const basicWrong = await bulk('{"index":{"_index":"x"}}\n{"a":1}\n', { token: null, headers: { authorization: `Basic ${Buffer.from('elastic:changeme').toString('base64')}` } });
  assert.equal(basicWrong.statusCode, 401);
  const auditor = await bulk('{"index":{"_index":"x"}}\n{"a":1}\n', { token: v.tokens.auditor });
  assert.equal(auditor.statusCode, 403);
  assert.equal(auditor.json<{ error: { type: string } }>().error.type, 'security_exception');
  assert.equal(logSize(v), from);
  const anon = await v.app.inject({ method: 'GET', url: '/' });
  assert.equal(anon.statusCode, 401);
  assert.doesNotMatch(anon.body, /version/);
  const head = await v.app.inject({ method: 'HEAD', url: '/', headers: bearer(v.tokens.auditor) });
  assert.equal(head.statusCode, 200);
  assert.equal(head.headers['x-elastic-product'], 'Elasticsearch');
});

test('hostile bodies: truncated gzip, a gzip bomb, an oversized body, an empty body; deflate works; the vault keeps serving', async () => {
  const from = logSize(v);
  const trunc = await bulk(truncatedGzip('{"index":{"_index":"z"}}\n{"a":1}\n'.repeat(50)), { headers: { 'content-encoding': 'gzip' } });
  assert.equal(trunc.statusCode, 400);
  assert.equal(trunc.json<{ status: number }>().status, 400);
  const bomb = await bulk(gzipBomb(33 * 1024 * 1024), { headers: { 'content-encoding': 'gzip' } });
  assert.equal(bomb.statusCode, 413);
  assert.equal(bomb.json<{ status: number }>().status, 413);
  const huge = await bulk(Buffer.alloc(32 * 1024 * 1024 + 1, 0x0a));
  assert.equal(huge.statusCode, 413);
  const empty = await bulk('');
  assert.equal(empty.statusCode, 400);
  assert.equal(empty.json<{ error: { type: string } }>().error.type, 'action_request_validation_exception');
  assert.equal(logSize(v), from);
  const deflated = await bulk(deflateSync('{"index":{"_index":"z"}}\n{"deflated":true}\n'), { headers: { 'content-encoding': 'deflate' } });
  assert.equal(deflated.statusCode, 200, deflated.body);
  const gz = await bulk(gzipSync('{"index":{"_index":"z"}}\n{"gzipped":true}\n'), { headers: { 'content-encoding': 'gzip' } });
  assert.equal(gz.statusCode, 200, gz.body);
  assert.deepEqual((await readEntries(v, from, from + 2)).map((s) => s.bytes.toString()), ['{"deflated":true}', '{"gzipped":true}']);
  await assertStillServing(v);
});

test('a document a source parser knows (a CloudTrail event) is routed to its region\'s log and deduplicated by its event id', async (t) => {
  const ct = JSON.stringify((JSON.parse(readFileSync(join(ROOT, '..', 'shared', 'samples', 'cloudtrail', 'clo_cloudtrail_records.json'), 'utf8')) as { Records: unknown[] }).Records[0]);
  const r = await bulk(`{"index":{}}\n${ct}\n{"create":{}}\n${ct}\n`, { url: '/cloudtrail/_bulk' });
  const a = r.json<BulkAnswer>();
  assert.equal(a.errors, true, 'a 409 item is an error, as in Elasticsearch');
  assert.equal(item(a, 0)[1].status, 201);
  assert.equal(item(a, 0)[1]._custody!.log, 'ap-south-1');
  assert.equal(item(a, 1)[1].status, 409, 'the same CloudTrail event again is not stored twice');
  assert.equal(item(a, 1)[1].error!.type, 'version_conflict_engine_exception');
  const stored = await readEntries(v, item(a, 0)[1]._custody!.index, item(a, 0)[1]._custody!.index + 1, 'ap-south-1');
  assert.equal(stored[0]!.bytes.toString(), ct);
  assert.equal(stored[0]!.source, 'es.cloudtrail');
  // A vault that does not keep that region refuses the item (400: retrying cannot help) and stores the rest.
  const eu = await startInProc({ regions: ['eu-west-1'] });
  t.after(() => eu.close());
  const e = await eu.app.inject({ method: 'POST', url: '/_bulk', headers: bearer(eu.tokens.writer), payload: `{"index":{"_index":"ct"}}\n${ct}\n{"index":{"_index":"ct"}}\n{"plain":1}\n` });
  const ea = e.json<BulkAnswer>();
  assert.deepEqual(ea.items.map((it) => Object.values(it)[0]!.status), [400, 201]);
  assert.match(item(ea, 0)[1].error!.reason, /ap-south-1/);
});

test('more than 100,000 actions in one request: 413, nothing stored or recorded', async () => {
  const from = logSize(v);
  const r = await bulk('{"index":{"_index":"many"}}\n{}\n'.repeat(100_001));
  assert.equal(r.statusCode, 413);
  assert.match(r.json<{ error: { reason: string } }>().error.reason, /100000 actions/);
  assert.equal(logSize(v), from);
});

test('fuzz: any body gets an Elasticsearch answer (200 with items, or 400), never a crash', async () => {
  const line = fc.oneof(
    fc.constantFrom('{"index":{"_index":"f"}}', '{"create":{}}', '{"delete":{"_index":"f","_id":"1"}}', '{"update":{"_index":"f","_id":"1"}}', '{"a":1}', '', '{', '"x"', '[]'),
    fc.string({ maxLength: 16 }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(line, { maxLength: 10 }), async (lines) => {
      const r = await bulk(lines.join('\n'), { url: '/fz/_bulk' });
      assert.ok(r.statusCode === 200 || r.statusCode === 400, `${r.statusCode} ${r.body}`);
      const a = r.json<Record<string, unknown>>();
      if (r.statusCode === 200) assert.ok(Array.isArray(a['items']));
      else assert.equal(a['status'], 400);
    }),
    { numRuns: 60 },
  );
  await assertStillServing(v);
});

test('when the vault pushes back: 429 es_rejected_execution_exception with Retry-After', async (t) => {
  const busy = await startInProc({ checkpointIntervalMs: 3_000, maxPendingEntries: 50, admissionTimeoutMs: 200 });
  t.after(() => busy.close());
  const send = (n: number) =>
    busy.app.inject({
      method: 'POST',
      url: '/busy/_bulk',
      headers: { ...bearer(busy.tokens.writer), 'content-type': 'application/x-ndjson' },
      payload: Array.from({ length: n }, (_, i) => `{"index":{}}\n{"i":${i}}\n`).join(''),
    });
  assert.equal((await send(40)).statusCode, 200);
  const r = await send(30);
  assert.equal(r.statusCode, 429);
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(r.json<{ error: { type: string } }>().error.type, 'es_rejected_execution_exception');
});
