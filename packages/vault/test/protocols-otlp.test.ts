/**
 * OTLP/HTTP logs with the real OpenTelemetry SDK exporters (JSON and protobuf) over a socket,
 * and with good and hostile bodies: one record per LogRecord, the client's JSON bytes kept,
 * partial success for bad records, google.rpc.Status for refused requests, the vault keeps
 * serving.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { LoggerProvider, BatchLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { OTLPLogExporter as JsonLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { startInProc, bearer, type InProcVault } from './support/inproc.js';
import { listen, logSize, readEntries, gzipBomb, truncatedGzip, assertStillServing } from './support/protocols.js';
import { ExportLogsServiceRequest, ExportLogsServiceResponse, RpcStatus } from '../src/ingest/protocols/otlp-proto.js';

let v: InProcVault;
let base: string;
before(async () => {
  v = await startInProc();
  base = await listen(v);
});
after(async () => v.close());

const post = (payload: string | Buffer, opts: { type?: string; encoding?: string; token?: string | null } = {}) =>
  v.app.inject({
    method: 'POST',
    url: '/v1/logs',
    headers: {
      ...(opts.token === null ? {} : bearer(opts.token ?? v.tokens.writer)),
      'content-type': opts.type ?? 'application/json',
      ...(opts.encoding ? { 'content-encoding': opts.encoding } : {}),
    },
    payload,
  });

interface KV {
  key: string;
  value: Record<string, unknown>;
}
interface OtlpRecord {
  resourceLogs: Array<{
    resource?: { attributes?: KV[] };
    scopeLogs: Array<{ scope?: { name?: string; version?: string }; logRecords: Array<Record<string, unknown>>; schemaUrl?: string }>;
    schemaUrl?: string;
  }>;
}
const parse = (b: Buffer) => JSON.parse(b.toString('utf8')) as OtlpRecord;
const attr = (kvs: KV[] | undefined, key: string) => kvs?.find((a) => a.key === key)?.value;

async function emitWith(exporter: JsonLogExporter | ProtoLogExporter, service: string): Promise<void> {
  const provider = new LoggerProvider({ resource: resourceFromAttributes({ 'service.name': service }), processors: [new BatchLogRecordProcessor({ exporter })] });
  const logger = provider.getLogger('custody-test', '1.2.3');
  logger.emit({ severityNumber: SeverityNumber.WARN, severityText: 'WARN', body: 'card declined', attributes: { 'user.id': 'alice', attempt: 3, ok: false } });
  logger.emit({ severityNumber: SeverityNumber.ERROR, body: { reason: 'timeout', ms: 1500 }, attributes: { tags: ['a', 'b'] } });
  await provider.forceFlush();
  await provider.shutdown();
}

function checkSdkRecords(stored: Array<{ bytes: Buffer; source: string }>, service: string): void {
  assert.equal(stored.length, 2);
  for (const s of stored) {
    const rec = parse(s.bytes);
    assert.equal(rec.resourceLogs.length, 1);
    assert.equal(rec.resourceLogs[0]!.scopeLogs.length, 1);
    assert.equal(rec.resourceLogs[0]!.scopeLogs[0]!.logRecords.length, 1, 'one LogRecord per stored record');
    assert.deepEqual(attr(rec.resourceLogs[0]!.resource?.attributes, 'service.name'), { stringValue: service });
    assert.equal(rec.resourceLogs[0]!.scopeLogs[0]!.scope?.name, 'custody-test');
    assert.equal(rec.resourceLogs[0]!.scopeLogs[0]!.scope?.version, '1.2.3');
    assert.equal(s.source, 'otlp.' + service.toLowerCase().replace(/[^a-z0-9._:-]/g, '_'));
  }
  const [a, b] = stored.map((s) => parse(s.bytes).resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!);
  assert.deepEqual(a!['body'], { stringValue: 'card declined' });
  assert.equal(a!['severityNumber'], 13);
  assert.equal(a!['severityText'], 'WARN');
  const attrs = a!['attributes'] as KV[];
  assert.deepEqual(attr(attrs, 'user.id'), { stringValue: 'alice' });
  assert.equal(String(attr(attrs, 'attempt')?.['intValue']), '3');
  assert.deepEqual(attr(attrs, 'ok'), { boolValue: false });
  assert.match(String(a!['timeUnixNano']), /^\d{19}$/);
  assert.equal(b!['severityNumber'], 17);
  const kv = (b!['body'] as { kvlistValue: { values: KV[] } }).kvlistValue.values;
  assert.deepEqual(attr(kv, 'reason'), { stringValue: 'timeout' });
  assert.equal(String(attr(kv, 'ms')?.['intValue']), '1500');
  assert.deepEqual(attr(b!['attributes'] as KV[], 'tags'), { arrayValue: { values: [{ stringValue: 'a' }, { stringValue: 'b' }] } });
}

test('OpenTelemetry SDK, OTLP/HTTP JSON exporter (gzip) over a socket: each log record arrives with body, attributes and severity', async () => {
  const from = logSize(v);
  const exporter = new JsonLogExporter({ url: `${base}/v1/logs`, headers: { Authorization: `Bearer ${v.tokens.writer}` }, compression: 'gzip' as never });
  await emitWith(exporter, 'Checkout API');
  assert.equal(logSize(v), from + 2);
  checkSdkRecords(await readEntries(v, from, from + 2), 'Checkout API');
});

test('OpenTelemetry SDK, OTLP/HTTP protobuf exporter over a socket: stored as canonical OTLP JSON', async () => {
  const from = logSize(v);
  const exporter = new ProtoLogExporter({ url: `${base}/v1/logs`, headers: { Authorization: `Bearer ${v.tokens.writer}` } });
  await emitWith(exporter, 'billing');
  assert.equal(logSize(v), from + 2);
  const stored = await readEntries(v, from, from + 2);
  checkSdkRecords(stored, 'billing');
  // Canonical: 64-bit integers as strings, default values left out.
  const lr = parse(stored[0]!.bytes).resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!;
  assert.equal(typeof lr['timeUnixNano'], 'string');
  assert.equal(lr['droppedAttributesCount'], undefined);
  assert.deepEqual(Object.keys(lr), ['timeUnixNano', 'observedTimeUnixNano', 'severityNumber', 'severityText', 'body', 'attributes']);
});

test('JSON input: each record is the client bytes of its logRecord, resource, scope and schemaUrls in a fixed wrapper', async () => {
  const res1 = '{ "attributes" : [ {"key":"service.name","value":{"stringValue":"svc one"}} ], "unknownField": {"kept": true} }';
  const scope1 = '{"name":"lib","version":"9"}';
  const lr1 = '{"timeUnixNano":"1700000000123456789","severityNumber":9,  "body":{"stringValue":"first ✓"},"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","someFutureField":1}';
  const lr2 = '{ "observedTimeUnixNano": 1700000000000000000, "body": {"kvlistValue":{"values":[{"key":"k","value":{"intValue":"-5"}}]}} }';
  const lr3 = '{"body":{"stringValue":"second resource"},"attributes":[{"key":"a","value":{"doubleValue":"NaN"}}]}';
  const body = `{"resourceLogs":[
    {"resource":${res1},"scopeLogs":[{"scope":${scope1},"logRecords":[ ${lr1} ,\n${lr2}],"schemaUrl":"https://opentelemetry.io/schemas/1.21.0"}],"schemaUrl":"https://example.com/r"},
    {"scopeLogs":[{"logRecords":[${lr3}]}]}
  ]}`;
  const from = logSize(v);
  const r = await post(body);
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), {});
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const stored = await readEntries(v, from, from + 3);
  const wrap = (lr: string) =>
    `{"resourceLogs":[{"resource":${res1},"scopeLogs":[{"scope":${scope1},"logRecords":[${lr}],"schemaUrl":"https://opentelemetry.io/schemas/1.21.0"}],"schemaUrl":"https://example.com/r"}]}`;
  assert.equal(stored[0]!.bytes.toString(), wrap(lr1));
  assert.equal(stored[1]!.bytes.toString(), wrap(lr2));
  assert.equal(stored[2]!.bytes.toString(), `{"resourceLogs":[{"scopeLogs":[{"logRecords":[${lr3}]}]}]}`);
  for (const s of stored) JSON.parse(s.bytes.toString()); // each one is a valid ExportLogsServiceRequest in JSON
  assert.deepEqual(stored.map((s) => s.source), ['otlp.svc_one', 'otlp.svc_one', 'otlp']);
});

test('partial success: bad log records are counted and named, the good ones are stored (JSON and protobuf)', async () => {
  const good = '{"body":{"stringValue":"good"}}';
  const bads = ['{"traceId":"not hex"}', '{"severityNumber":"WARN"}', '[1,2]', '{"body":{"stringValue":1}}', '{"timeUnixNano":"-1"}'];
  const from = logSize(v);
  const r = await post(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[${good},${bads.join(',')},${good}]}]}]}`);
  assert.equal(r.statusCode, 200, r.body);
  const ps = r.json<{ partialSuccess: { rejectedLogRecords: string; errorMessage: string } }>().partialSuccess;
  assert.equal(ps.rejectedLogRecords, '5');
  assert.match(ps.errorMessage, /log records 2, 3, 4, 5, 6/);
  assert.equal(logSize(v), from + 2);
  assert.ok((await readEntries(v, from, from + 2)).every((s) => s.bytes.includes(good)));

  // Protobuf: a trace id of the wrong length is refused; the response is an ExportLogsServiceResponse.
  const pb = ExportLogsServiceRequest.encode({
    resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: { stringValue: 'pb good' } }, { traceId: Buffer.from([1, 2, 3]) }, { body: { bytesValue: Buffer.from([0, 255]) }, spanId: Buffer.alloc(8, 7) }] }] }],
  }).finish();
  const from2 = logSize(v);
  const p = await post(Buffer.from(pb), { type: 'application/x-protobuf' });
  assert.equal(p.statusCode, 200);
  assert.equal(p.headers['content-type'], 'application/x-protobuf');
  const resp = ExportLogsServiceResponse.toObject(ExportLogsServiceResponse.decode(p.rawPayload), { longs: String }) as { partialSuccess: { rejectedLogRecords: string; errorMessage: string } };
  assert.equal(resp.partialSuccess.rejectedLogRecords, '1');
  assert.match(resp.partialSuccess.errorMessage, /log records 2\b/);
  const stored = await readEntries(v, from2, from2 + 2);
  assert.deepEqual(parse(stored[0]!.bytes), { resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: { stringValue: 'pb good' } }] }] }] });
  assert.deepEqual(parse(stored[1]!.bytes).resourceLogs[0]!.scopeLogs[0]!.logRecords[0], { body: { bytesValue: 'AP8=' }, spanId: '0707070707070707' });
});

test('an empty request is a success; a full success answers {} (JSON) or an empty message (protobuf)', async () => {
  for (const body of ['{}', '{"resourceLogs":[]}', '{"resourceLogs":[{"scopeLogs":[]}]}']) {
    const r = await post(body);
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), {});
  }
  const p = await post(Buffer.alloc(0), { type: 'application/x-protobuf' });
  assert.equal(p.statusCode, 200);
  assert.equal(p.rawPayload.length, 0);
});

function statusOf(r: { headers: Record<string, unknown>; rawPayload: Buffer; body: string }): { code?: number; message?: string } {
  if (String(r.headers['content-type']).startsWith('application/x-protobuf')) return RpcStatus.toObject(RpcStatus.decode(r.rawPayload)) as { code?: number; message?: string };
  return JSON.parse(r.body) as { code?: number; message?: string };
}

test('refused requests carry a google.rpc.Status in the request content type: 400, 401, 403, 413, 415', async () => {
  const from = logSize(v);
  const cases: Array<[Parameters<typeof post>[0], Parameters<typeof post>[1], number, number]> = [
    ['{"resourceLogs":[', {}, 400, 3],
    ['{"resourceLogs":5}', {}, 400, 3],
    ['{"resourceLogs":[{"scopeLogs":[{"logRecords":{}}]}]}', {}, 400, 3],
    ['{"resourceLogs":[{"resource":"x","scopeLogs":[]}]}', {}, 400, 3],
    ['[]', {}, 400, 3],
    [Buffer.from([0x0a, 0xff, 0xff, 0xff]), { type: 'application/x-protobuf' }, 400, 3],
    [Buffer.from([0xff, 0xfe, 0x00]), {}, 400, 3],
    ['{}', { token: null }, 401, 16],
    [Buffer.alloc(0), { token: null, type: 'application/x-protobuf' }, 401, 16],
    ['{}', { token: 'nope' }, 401, 16],
    ['{}', { token: v.tokens.auditor }, 403, 7],
    ['{}', { type: 'text/plain' }, 415, 3],
    ['{}', { type: 'application/json', encoding: 'br' }, 400, 3],
    [truncatedGzip('{"resourceLogs":[]}'.repeat(50)), { encoding: 'gzip' }, 400, 3],
    [gzipBomb(21 * 1024 * 1024), { encoding: 'gzip' }, 413, 8],
    [Buffer.alloc(20 * 1024 * 1024 + 1, 0x20), {}, 413, 8],
  ];
  for (const [payload, opts, status, code] of cases) {
    const r = await post(payload, opts);
    assert.equal(r.statusCode, status, `${String(payload).slice(0, 40)}: ${r.body.slice(0, 200)}`);
    const wantType = opts?.type === 'application/x-protobuf' ? 'application/x-protobuf' : 'application/json';
    assert.ok(String(r.headers['content-type']).startsWith(wantType), String(r.headers['content-type']));
    const s = statusOf(r);
    assert.equal(s.code, code);
    assert.ok(s.message && s.message.length > 10, 'a plain message says what is wrong');
  }
  assert.equal(logSize(v), from);
  await assertStillServing(v);
});

test('hostile nesting: a deeply nested body is refused per record (JSON) or as undecodable (protobuf); the process stays up', async () => {
  const deep = (n: number) => '{"arrayValue":{"values":['.repeat(n) + '{"stringValue":"x"}' + ']}}'.repeat(n);
  const from = logSize(v);
  const r = await post(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":${deep(100)}},{"body":${deep(10)}}]}]}]}`);
  assert.equal(r.statusCode, 200);
  assert.equal(r.json<{ partialSuccess: { rejectedLogRecords: string } }>().partialSuccess.rejectedLogRecords, '1');
  assert.equal(logSize(v), from + 1);
  // Protobuf: 30 levels are fine; the decoder refuses messages nested more than 100 deep
  // (protobufjs's recursion limit, as protoc's), so deeper bodies are refused whole.
  let any: Record<string, unknown> = { stringValue: 'x' };
  for (let i = 0; i < 30; i++) any = { arrayValue: { values: [any] } };
  const from2 = logSize(v);
  const pb = ExportLogsServiceRequest.encode({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: any }] }] }] }).finish();
  const p = await post(Buffer.from(pb), { type: 'application/x-protobuf' });
  assert.equal(p.statusCode, 200);
  assert.equal(p.rawPayload.length, 0, 'full success');
  assert.equal(logSize(v), from2 + 1);
  assert.match((await readEntries(v, from2, from2 + 1))[0]!.bytes.toString(), /^\{"resourceLogs":\[\{"scopeLogs":\[\{"logRecords":\[\{"body":\{"arrayValue":\{"values":\[\{"arrayValue"/);
  // Hand-made: AnyValue{array_value: ArrayValue{values: AnyValue{…}}} nested 100,000 times (each
  // level a tag and a length), written outside in.
  const inner = nestedAnyValue(100_000);
  const lr = Buffer.concat([Buffer.from([0x2a]), varint(inner.length), inner]); // LogRecord.body
  const sl = Buffer.concat([Buffer.from([0x12]), varint(lr.length), lr]); // ScopeLogs.log_records
  const rl = Buffer.concat([Buffer.from([0x12]), varint(sl.length), sl]); // ResourceLogs.scope_logs
  const req = Buffer.concat([Buffer.from([0x0a]), varint(rl.length), rl]); // ExportLogsServiceRequest.resource_logs
  const q = await post(req, { type: 'application/x-protobuf' });
  assert.equal(q.statusCode, 400);
  assert.match(String(statusOf(q).message), /cannot be decoded/);
  await assertStillServing(v);
  const ok = await post('{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"after"}}]}]}]}');
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(ok.json(), {});
});

function nestedAnyValue(levels: number): Buffer {
  const leaf = Buffer.from([0x0a, 0x01, 0x78]); // string_value "x"
  const sizes = [leaf.length]; // sizes[k]: bytes of the AnyValue k levels up
  const valuesSize = (k: number) => 1 + varint(sizes[k - 1]!).length + sizes[k - 1]!;
  for (let k = 1; k <= levels; k++) sizes.push(1 + varint(valuesSize(k)).length + valuesSize(k));
  const parts: Buffer[] = [];
  for (let k = levels; k >= 1; k--) {
    parts.push(Buffer.from([0x2a]), varint(valuesSize(k)), Buffer.from([0x0a]), varint(sizes[k - 1]!));
  }
  parts.push(leaf);
  return Buffer.concat(parts);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

test('more than 100,000 log records in one request: 413 before anything is stored (JSON and protobuf)', async () => {
  const from = logSize(v);
  const json = await post(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[${Array(100_001).fill('{}').join(',')}]}]}]}`);
  assert.equal(json.statusCode, 413);
  assert.match(String(statusOf(json).message), /100000 log records/);
  const pb = ExportLogsServiceRequest.encode({ resourceLogs: [{ scopeLogs: [{ logRecords: Array.from({ length: 100_001 }, () => ({})) }] }] }).finish();
  const p = await post(Buffer.from(pb), { type: 'application/x-protobuf' });
  assert.equal(p.statusCode, 413);
  assert.match(String(statusOf(p).message), /100000 log records/);
  assert.equal(logSize(v), from);
});

test('gzip JSON bodies are inflated', async () => {
  const from = logSize(v);
  const r = await post(gzipSync('{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"zipped"}}]}]}]}'), { encoding: 'gzip' });
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(logSize(v), from + 1);
});

test('when the vault pushes back: 503 with Retry-After and a Status body', async (t) => {
  const busy = await startInProc({ checkpointIntervalMs: 3_000, maxPendingEntries: 50, admissionTimeoutMs: 200 });
  t.after(() => busy.close());
  const send = (n: number) =>
    busy.app.inject({
      method: 'POST',
      url: '/v1/logs',
      headers: { ...bearer(busy.tokens.writer), 'content-type': 'application/json' },
      payload: JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords: Array.from({ length: n }, (_, i) => ({ body: { intValue: String(i) } })) }] }] }),
    });
  assert.equal((await send(40)).statusCode, 200);
  const r = await send(30);
  assert.equal(r.statusCode, 503);
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(r.json<{ code: number }>().code, 14);
});
