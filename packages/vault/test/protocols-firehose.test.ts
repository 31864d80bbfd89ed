/**
 * Amazon Data Firehose HTTP endpoint delivery with the real request bodies in
 * ../shared/samples (CloudWatch Logs subscription and Direct PUT) and hostile ones: records are
 * stored byte for byte (CloudWatch Logs events one by one), control messages are acknowledged,
 * a bad record never sinks the good ones, a retried request stores nothing twice, and every
 * answer is Firehose's {"requestId","timestamp"[,"errorMessage"]}.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { startInProc, type InProcVault } from './support/inproc.js';
import { ROOT } from './support/server.js';
import { logSize, readEntries, gzipBomb, truncatedGzip, assertStillServing } from './support/protocols.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples');
const sample = (rel: string) => readFileSync(join(SAMPLES, rel));
const ARN = 'arn:aws:firehose:eu-west-1:111122223333:deliverystream/custody-logs';

let v: InProcVault;
before(async () => {
  v = await startInProc();
});
after(async () => v.close());

let seq = 0;
const newId = () => `test-request-${++seq}-${process.pid}`;

const deliver = (target: InProcVault, payload: string | Buffer, opts: { id: string; key?: string | null; headers?: Record<string, string>; url?: string }) =>
  target.app.inject({
    method: 'POST',
    url: opts.url ?? '/firehose',
    headers: {
      'content-type': 'application/json',
      'x-amz-firehose-protocol-version': '1.0',
      'x-amz-firehose-request-id': opts.id,
      'x-amz-firehose-source-arn': ARN,
      ...(opts.key === null ? {} : { 'x-amz-firehose-access-key': opts.key ?? target.tokens.writer }),
      ...(opts.headers ?? {}),
    },
    payload,
  });

type Answer = { requestId: string; timestamp: number; errorMessage?: string };

function checkAnswer(r: { statusCode: number; headers: Record<string, unknown>; body: string; json: <T>() => T }, status: number, requestId: string): Answer {
  assert.equal(r.statusCode, status, r.body);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  assert.equal(r.headers['content-encoding'], undefined, 'the answer is never compressed');
  const a = r.json<Answer>();
  assert.equal(a.requestId, requestId);
  assert.equal(typeof a.timestamp, 'number');
  assert.ok(Math.abs(a.timestamp - Date.now()) < 60_000);
  if (status === 200) assert.equal(a.errorMessage, undefined);
  else assert.ok(a.errorMessage && a.errorMessage.length > 10, 'a failure says why');
  return a;
}

const body = (records: unknown[], requestId = 'body-id') => JSON.stringify({ requestId, timestamp: Date.now(), records });
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

interface CwlPayload {
  messageType: string;
  logGroup: string;
  logEvents: Array<{ id: string; timestamp: number; message: string }>;
}
const payloadOf = (rel: string, n: number): { json: string; parsed: CwlPayload } => {
  const data = (JSON.parse(sample(rel).toString()) as { records: Array<{ data: string }> }).records[n]!.data;
  const json = gunzipSync(Buffer.from(data, 'base64')).toString('utf8');
  return { json, parsed: JSON.parse(json) as CwlPayload };
};

test('Direct PUT sample: 3 records stored byte for byte with the stream ARN; a retry (same request id) stores nothing twice', async () => {
  const raw = sample('cloudwatch-subscription/firehose_http_direct_put.json');
  const want = (JSON.parse(raw.toString()) as { records: Array<{ data: string }> }).records.map((r) => Buffer.from(r.data, 'base64'));
  const id = newId();
  const from = logSize(v);
  checkAnswer(await deliver(v, raw, { id }), 200, id);
  assert.equal(logSize(v), from + 3);
  const stored = await readEntries(v, from, from + 3);
  stored.forEach((s, i) => {
    assert.ok(s.bytes.equals(want[i]!), `record ${i + 1} is stored exactly`);
    assert.equal(s.source, 'firehose');
    assert.equal(s.attrs['firehoseSource'], ARN);
  });
  checkAnswer(await deliver(v, raw, { id }), 200, id);
  assert.equal(logSize(v), from + 3, 'the retry stored nothing');
  // Another request id is another delivery (and /v1/firehose is the same endpoint).
  const id2 = newId();
  checkAnswer(await deliver(v, raw, { id: id2, url: '/v1/firehose' }), 200, id2);
  assert.equal(logSize(v), from + 6);
});

test('a gzip-encoded request body is inflated; a source ARN that is not a Firehose stream ARN is not kept', async () => {
  const raw = sample('cloudwatch-subscription/firehose_http_direct_put.json');
  const id = newId();
  const from = logSize(v);
  checkAnswer(await deliver(v, gzipSync(raw), { id, headers: { 'content-encoding': 'gzip', 'x-amz-firehose-source-arn': 'not an arn' } }), 200, id);
  assert.equal(logSize(v), from + 3);
  assert.deepEqual((await readEntries(v, from, from + 1))[0]!.attrs, {});
});

test('CloudWatch Logs control message only: acknowledged with 200, nothing stored', async () => {
  const id = newId();
  const from = logSize(v);
  checkAnswer(await deliver(v, sample('cloudwatch-subscription/firehose_http_cwlogs_control_only.json'), { id }), 200, id);
  assert.equal(logSize(v), from);
});

test('edge case: a control message beside an undecodable record: non-200 naming record 2, nothing stored', async () => {
  const id = newId();
  const from = logSize(v);
  const a = checkAnswer(await deliver(v, sample('edge-cases/firehose_http_cwlogs_control_and_bad_record.json'), { id }), 400, id);
  assert.match(a.errorMessage!, /records 2\b/);
  assert.doesNotMatch(a.errorMessage!, /records 1\b/);
  assert.equal(logSize(v), from);
});

test('CloudWatch Logs data sample: one record per logEvent, its exact bytes, log group kept; a retry stores nothing twice', async (t) => {
  const fresh = await startInProc();
  t.after(() => fresh.close());
  const { json, parsed } = payloadOf('cloudwatch-subscription/firehose_http_cwlogs_data.json', 0);
  assert.equal(parsed.logEvents.length, 13);
  const id = newId();
  checkAnswer(await deliver(fresh, sample('cloudwatch-subscription/firehose_http_cwlogs_data.json'), { id }), 200, id);
  assert.equal(logSize(fresh), 13);
  const stored = await readEntries(fresh, 0, 13);
  stored.forEach((s, i) => {
    const text = s.bytes.toString('utf8');
    assert.ok(json.includes(text), `event ${i + 1} is an exact slice of the payload`);
    assert.deepEqual(JSON.parse(text), parsed.logEvents[i]);
    assert.equal(s.attrs['logGroup'], parsed.logGroup);
    assert.equal(s.attrs['firehoseSource'], ARN);
  });
  checkAnswer(await deliver(fresh, sample('cloudwatch-subscription/firehose_http_cwlogs_data.json'), { id }), 200, id);
  assert.equal(logSize(fresh), 13);
});

test('CloudWatch Logs mixed sample: the control message is acknowledged, the data message stored event by event', async (t) => {
  const fresh = await startInProc();
  t.after(() => fresh.close());
  const { parsed } = payloadOf('cloudwatch-subscription/firehose_http_cwlogs_mixed.json', 1);
  const id = newId();
  checkAnswer(await deliver(fresh, sample('cloudwatch-subscription/firehose_http_cwlogs_mixed.json'), { id }), 200, id);
  assert.equal(logSize(fresh), parsed.logEvents.length);
  const stored = await readEntries(fresh, 0, parsed.logEvents.length);
  assert.deepEqual(
    stored.map((s) => JSON.parse(s.bytes.toString()) as unknown),
    parsed.logEvents,
  );
});

test('bad records never sink the good ones: they are stored, the answer is 400 naming the bad ones, and the retry stores nothing twice', async () => {
  const good1 = '{"user":"alice","action":"login"}';
  const good2 = 'plain text line, not JSON';
  const zipped = 'a gzip record that is not a CloudWatch Logs payload';
  const records = [
    { data: b64(good1) },
    { data: '!!not base64!!' },
    { data: b64(truncatedGzip('x'.repeat(1000))) },
    { data: b64(gzipBomb(9 * 1024 * 1024)) },
    { data: b64(good2) },
    { data: '' },
    { nodata: true },
    { data: b64(gzipSync(zipped)) },
    { data: b64(gzipSync('{"messageType":"DATA_MESSAGE", broken')) },
    'not an object',
  ];
  const id = newId();
  const from = logSize(v);
  const a = checkAnswer(await deliver(v, body(records), { id }), 400, id);
  assert.match(a.errorMessage!, /^6 of 10 records could not be stored: records 2, 3, 4, 7, 9, 10\./);
  assert.equal(logSize(v), from + 3);
  assert.deepEqual((await readEntries(v, from, from + 3)).map((s) => s.bytes.toString()), [good1, good2, zipped]);
  const again = checkAnswer(await deliver(v, body(records), { id }), 400, id);
  assert.equal(again.errorMessage, a.errorMessage);
  assert.equal(logSize(v), from + 3, 'the retry stored nothing twice');
  await assertStillServing(v);
});

test('credentials: a wrong or missing access key is 401, an auditor token 403, a Bearer header is not the Firehose credential; always the JSON answer', async () => {
  const raw = sample('cloudwatch-subscription/firehose_http_direct_put.json');
  const from = logSize(v);
  for (const [key, status] of [['wrong-key', 401], [null, 401], [v.tokens.auditor, 403], [v.tokens.admin, 403]] as const) {
    const id = newId();
    checkAnswer(await deliver(v, raw, { id, key }), status, id);
  }
  const id = newId();
  checkAnswer(await deliver(v, raw, { id, key: null, headers: { authorization: `Bearer ${v.tokens.writer}` } }), 401, id);
  assert.equal(logSize(v), from);
});

test('hostile requests: not JSON, no records array, truncated gzip body, a gzip bomb body, 10,001 records → the JSON answer, nothing stored', async () => {
  const from = logSize(v);
  const cases: Array<[string | Buffer, Record<string, string>, number]> = [
    ['this is not json', {}, 400],
    ['{"requestId":"x","timestamp":1}', {}, 400],
    ['{"records":{"data":"eA=="}}', {}, 400],
    [truncatedGzip(sample('cloudwatch-subscription/firehose_http_direct_put.json')), { 'content-encoding': 'gzip' }, 400],
    [gzipBomb(97 * 1024 * 1024), { 'content-encoding': 'gzip' }, 413],
    [body(Array.from({ length: 10_001 }, () => ({ data: 'eA==' }))), {}, 413],
  ];
  for (const [payload, headers, status] of cases) {
    const id = newId();
    checkAnswer(await deliver(v, payload, { id, headers }), status, id);
  }
  assert.equal(logSize(v), from);
  // 10,000 records is the limit, not over it.
  const id = newId();
  checkAnswer(await deliver(v, body(Array.from({ length: 10_000 }, (_, i) => ({ data: b64(`r${i}`) }))), { id }), 200, id);
  assert.equal(logSize(v), from + 10_000);
  await assertStillServing(v);
});

test('a record a source parser knows (a CloudTrail event) keeps its own dedupe key across requests and goes to its region\'s log', async () => {
  const ct = JSON.stringify((JSON.parse(sample('cloudtrail/clo_cloudtrail_records.json').toString()) as { Records: unknown[] }).Records[2]);
  const region = (JSON.parse(ct) as { awsRegion: string }).awsRegion;
  const before = v.vault.logForRegion(region) ? logSize(v, region) : 0;
  for (const id of [newId(), newId()]) checkAnswer(await deliver(v, body([{ data: b64(ct) }]), { id }), 200, id);
  assert.equal(logSize(v, region), before + 1, 'two requests, one record');
  assert.equal((await readEntries(v, before, before + 1, region))[0]!.bytes.toString(), ct);
});

test('without a request id header the body requestId is used for the answer and the dedupe key', async () => {
  const from = logSize(v);
  const payload = body([{ data: b64('{"only":"body id"}') }], 'id-from-the-body-' + process.pid);
  for (let i = 0; i < 2; i++) {
    const r = await v.app.inject({ method: 'POST', url: '/firehose', headers: { 'x-amz-firehose-access-key': v.tokens.writer, 'content-type': 'application/json' }, payload });
    checkAnswer(r, 200, 'id-from-the-body-' + process.pid);
  }
  assert.equal(logSize(v), from + 1);
});

test('when the vault pushes back: 503 with Retry-After and the JSON answer; the retry completes the delivery without duplicates', async (t) => {
  const busy = await startInProc({ checkpointIntervalMs: 3_000, maxPendingEntries: 50, admissionTimeoutMs: 200 });
  t.after(() => busy.close());
  const send = (n: number, id: string) => deliver(busy, body(Array.from({ length: n }, (_, i) => ({ data: b64(`{"i":${i}}`) }))), { id });
  checkAnswer(await send(40, 'first'), 200, 'first');
  const r = await send(30, 'second');
  checkAnswer(r, 503, 'second');
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(busy.vault.sequencer('local').sequencedSize, 40);
  await busy.vault.sequencer('local').waitForCheckpoint(40, 10_000);
  checkAnswer(await send(30, 'second'), 200, 'second');
  checkAnswer(await send(30, 'second'), 200, 'second');
  assert.equal(busy.vault.sequencer('local').sequencedSize, 70);
});
