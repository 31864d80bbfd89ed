/**
 * Splunk HEC with the real splunk-logging client over a socket, and with good and hostile
 * bodies: events are stored byte for byte, a bad event never sinks the good ones, every answer
 * is HEC's {"text","code"} with HEC's status, and the vault keeps serving.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { startInProc, auditRecords, type InProcVault } from './support/inproc.js';
import { ROOT } from './support/server.js';
import { listen, logSize, readEntries, readEntry, gzipBomb, truncatedGzip, assertStillServing, ofType } from './support/protocols.js';

interface SplunkLoggerT {
  send(ctx: { message: unknown; metadata?: Record<string, string> }, cb?: (err: Error | null, resp: { statusCode: number } | undefined, body: unknown) => void): void;
  flush(cb?: (err: Error | null, resp: { statusCode: number } | undefined, body: unknown) => void): void;
  serializedContextQueue: string[];
  error: (err: Error & { code?: number }, ctx: unknown) => void;
}
const require = createRequire(import.meta.url);
const SplunkLogger = (require('splunk-logging') as { Logger: new (cfg: Record<string, unknown>) => SplunkLoggerT }).Logger;

let v: InProcVault;
let base: string;
before(async () => {
  v = await startInProc();
  base = await listen(v);
});
after(async () => v.close());

const hec = (payload: string | Buffer, opts: { url?: string; auth?: string | null; headers?: Record<string, string>; method?: 'POST' | 'GET' } = {}) =>
  v.app.inject({
    method: opts.method ?? 'POST',
    url: opts.url ?? '/services/collector/event',
    headers: { ...(opts.auth === null ? {} : { authorization: opts.auth ?? `Splunk ${v.tokens.writer}` }), ...(opts.headers ?? {}) },
    payload,
  });

type HecBody = { text: string; code: number; 'invalid-event-number'?: number };

/** Sends events with the real client (batched: the last send flushes), capturing the exact bytes it sent. */
function sendBatch(logger: SplunkLoggerT, events: Array<{ message: unknown; metadata?: Record<string, string> }>): Promise<{ sent: string[]; err: Error | null; status?: number; body: unknown }> {
  const sent: string[] = [];
  const flush = logger.flush.bind(logger);
  logger.flush = (cb) => {
    sent.push(...logger.serializedContextQueue);
    flush(cb);
  };
  return new Promise((resolve) => {
    events.forEach((e, i) => {
      if (i < events.length - 1) logger.send(e);
      else logger.send(e, (err, resp, body) => resolve({ sent, err, status: resp?.statusCode, body }));
    });
  });
}

test('splunk-logging over a socket: a batch of concatenated events is stored event by event, byte for byte', async () => {
  const logger = new SplunkLogger({ token: v.tokens.writer, url: base, maxBatchCount: 3, maxRetries: 0 });
  const errors: unknown[] = [];
  logger.error = (err) => errors.push(err);
  const from = logSize(v);
  const r = await sendBatch(logger, [
    { message: { action: 'login', user: 'alice', ok: true }, metadata: { sourcetype: 'App:Audit Log', host: 'web-1' } },
    { message: 'plain text event ✓', metadata: { sourcetype: 'App:Audit Log', host: 'web-1' } },
    { message: { nested: { a: [1, 2, { b: '}{"' }] } }, metadata: { sourcetype: 'App:Audit Log', host: 'web-1' } },
  ]);
  assert.equal(r.err, null);
  assert.deepEqual(errors, []);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { text: 'Success', code: 0 });
  assert.equal(r.sent.length, 3);
  assert.equal(logSize(v), from + 3);
  const stored = await readEntries(v, from, from + 3);
  stored.forEach((s, i) => {
    assert.equal(s.bytes.toString('utf8'), r.sent[i], `event ${i} is stored exactly as the client sent it`);
    assert.equal(s.source, 'hec.app:audit_log');
    assert.equal(s.producer, 'initial-writer');
  });
  assert.deepEqual((JSON.parse(stored[2]!.bytes.toString()) as { event: { message: unknown } }).event.message, { nested: { a: [1, 2, { b: '}{"' }] } });
});

test('splunk-logging with a token that is not valid gets HEC code 4 (403) and nothing is stored', async () => {
  const logger = new SplunkLogger({ token: 'not-a-custody-token', url: base, maxRetries: 0 });
  const errors: Array<{ code?: number }> = [];
  logger.error = (err) => errors.push(err);
  const from = logSize(v);
  const r = await sendBatch(logger, [{ message: 'x' }]);
  assert.equal(r.status, 403);
  assert.deepEqual(r.body, { text: 'Invalid token', code: 4 });
  assert.equal(errors[0]?.code, 4);
  assert.equal(logSize(v), from);
});

test('events with and without whitespace between them, on every event URL and credential form, are stored exactly', async () => {
  const events = [
    '{"event":"a","sourcetype":"access_combined","time":1700000000.5,"host":"web1"}',
    '{"event":{"user":"bob","n":[1,2]},"fields":{"env":"prod","tags":["x","y"]}}',
    '{ "event" : "ünïcödé \\" } {\\" ✓" , "index":"main" }',
  ];
  const body = events[0]! + events[1]! + '\r\n\n  ' + events[2]! + '\n';
  const auths = [`Splunk ${v.tokens.writer}`, `Bearer ${v.tokens.writer}`, `Basic ${Buffer.from('x:' + v.tokens.writer).toString('base64')}`];
  for (const [i, url] of ['/services/collector/event', '/services/collector', '/services/collector/event/1.0'].entries()) {
    const from = logSize(v);
    const r = await hec(body, { url, auth: auths[i], headers: { 'content-type': 'application/json', 'x-splunk-request-channel': '11111111-2222-3333-4444-555555555555' } });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { text: 'Success', code: 0 });
    const stored = await readEntries(v, from, from + 3);
    assert.deepEqual(stored.map((s) => s.bytes.toString('utf8')), events);
    assert.deepEqual(stored.map((s) => s.source), ['hec.access_combined', 'hec', 'hec']);
  }
});

test('gzip bodies are inflated', async () => {
  const from = logSize(v);
  const events = ['{"event":"zipped one"}', '{"event":"zipped two"}'];
  const r = await hec(gzipSync(events.join('\n')), { headers: { 'content-encoding': 'gzip' } });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual((await readEntries(v, from, from + 2)).map((s) => s.bytes.toString()), events);
});

test('a bad event never sinks the good ones: they are stored and the reply names the first bad event (0-based)', async () => {
  const cases: Array<{ events: string[]; good: number[]; code: number; text: string; bad: number }> = [
    { events: ['{"event":"ok 1"}', '{"nope":1}', '{"event":"ok 2"}', '{"event":""}', '{"event":"ok 3"}'], good: [0, 2, 4], code: 12, text: 'Event field is required', bad: 1 },
    { events: ['{"event":"ok 1"}', '{"event":null}', '{"event":"   "}'], good: [0], code: 13, text: 'Event field cannot be blank', bad: 1 },
    { events: ['{"event":"ok 1"}', '{"event":"ok 2"}', '{"event": tru}', '{"event":"ok 3"}'], good: [0, 1, 3], code: 6, text: 'Invalid data format', bad: 2 },
    { events: ['{"event":"x","fields":{"a":{"b":1}}}', '{"event":"ok"}'], good: [1], code: 15, text: 'Error in handling indexed fields', bad: 0 },
  ];
  for (const c of cases) {
    const from = logSize(v);
    const r = await hec(c.events.join(''));
    assert.equal(r.statusCode, 400, r.body);
    assert.deepEqual(r.json<HecBody>(), { text: c.text, code: c.code, 'invalid-event-number': c.bad });
    assert.equal(logSize(v), from + c.good.length);
    assert.deepEqual((await readEntries(v, from, from + c.good.length)).map((s) => s.bytes.toString()), c.good.map((i) => c.events[i]));
  }
});

test('where the body stops being JSON objects, the events before are stored and the reply names the first unreadable one', async () => {
  for (const tail of ['garbage {"event":"lost"}', '["an","array"]', '{"event":"unterminated"']) {
    const from = logSize(v);
    const r = await hec('{"event":"kept 1"} {"event":"kept 2"}\n' + tail);
    assert.equal(r.statusCode, 400, r.body);
    assert.deepEqual(r.json<HecBody>(), { text: 'Invalid data format', code: 6, 'invalid-event-number': 2 });
    assert.deepEqual((await readEntries(v, from, from + 2)).map((s) => s.bytes.toString()), ['{"event":"kept 1"}', '{"event":"kept 2"}']);
    assert.equal(logSize(v), from + 2);
  }
});

test('/services/collector/raw: one record per line, exact bytes, blank lines skipped, sourcetype and channel from the query', async () => {
  const from = logSize(v);
  const lines = ['Jan 12 10:00:01 host sshd[1]: Accepted publickey for alice', '  indented line with trailing space ', '{"json":"line"}'];
  const r = await hec(lines[0] + '\r\n\n' + lines[1] + '\n' + lines[2], { url: '/services/collector/raw?channel=0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba&sourcetype=linux_secure&host=h1', headers: { 'content-type': 'text/plain' } });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { text: 'Success', code: 0 });
  const stored = await readEntries(v, from, from + 3);
  assert.deepEqual(stored.map((s) => s.bytes.toString()), lines);
  assert.ok(stored.every((s) => s.source === 'hec.linux_secure'));
  const empty = await hec('\n \n', { url: '/services/collector/raw' });
  assert.equal(empty.statusCode, 400);
  assert.deepEqual(empty.json(), { text: 'No data', code: 5 });
  const bad = await hec(Buffer.concat([Buffer.from('good line\n'), Buffer.from([0xff, 0xfe]), Buffer.from('\n')]), { url: '/services/collector/raw' });
  assert.equal(bad.statusCode, 400);
  assert.deepEqual(bad.json(), { text: 'Invalid data format', code: 6, 'invalid-event-number': 1 });
});

test('an event a source parser knows (a CloudTrail record) goes to its region\'s log with the HEC envelope kept', async () => {
  const ct = JSON.stringify((JSON.parse(readFileSync(join(ROOT, '..', 'shared', 'samples', 'cloudtrail', 'clo_cloudtrail_records.json'), 'utf8')) as { Records: unknown[] }).Records[1]);
  const ev = `{"time":1646146814,"sourcetype":"aws:cloudtrail","event":${ct}}`;
  const region = (JSON.parse(ct) as { awsRegion: string }).awsRegion;
  const local = logSize(v);
  const r = await hec(ev);
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(logSize(v), local, 'not in the default log');
  const size = logSize(v, region);
  const stored = await readEntries(v, size - 1, size, region);
  assert.equal(stored[0]!.bytes.toString(), ev);
  assert.equal(stored[0]!.source, 'hec.aws:cloudtrail');
});

test('more than 100,000 events in one request: 413, nothing stored', async () => {
  const from = logSize(v);
  const r = await hec('{"event":1}'.repeat(100_001));
  assert.equal(r.statusCode, 413);
  assert.deepEqual(r.json(), { text: 'Content too large', code: 6 });
  const raw = await hec('x\n'.repeat(100_001), { url: '/services/collector/raw' });
  assert.equal(raw.statusCode, 413);
  assert.equal(logSize(v), from);
});

test('health answers without a token', async () => {
  for (const method of ['GET', 'POST'] as const) {
    for (const url of ['/services/collector/health', '/services/collector/health/1.0']) {
      const r = await hec('', { method, url, auth: null });
      assert.equal(r.statusCode, 200);
      assert.deepEqual(r.json(), { text: 'HEC is healthy', code: 17 });
    }
  }
});

test('credentials: missing → 401 code 2, unreadable → 401 code 3, unknown → 403 code 4, revoked → 403 code 1, auditor → 403 code 4; nothing stored', async () => {
  const { principal, token } = await v.vault.createPrincipal({ name: 'hec-revoked', role: 'writer', createdBy: 'test' });
  await v.vault.revokePrincipal(principal.id, 'test');
  const from = logSize(v);
  const cases: Array<[string | null, number, number, string]> = [
    [null, 401, 2, 'Token is required'],
    ['Splunk', 401, 3, 'Invalid authorization'],
    [`Token ${v.tokens.writer}`, 401, 3, 'Invalid authorization'],
    ['Splunk 00000000-0000-0000-0000-000000000000', 403, 4, 'Invalid token'],
    [`Splunk ${token}`, 403, 1, 'Token disabled'],
    [`Splunk ${v.tokens.auditor}`, 403, 4, 'Invalid token'],
    [`Splunk ${v.tokens.admin}`, 403, 4, 'Invalid token'],
  ];
  for (const [auth, status, code, text] of cases) {
    for (const url of ['/services/collector/event', '/services/collector/raw']) {
      const r = await hec('{"event":"should not be stored"}', { auth, url });
      assert.equal(r.statusCode, status, `${auth}: ${r.body}`);
      assert.deepEqual(r.json(), { text, code });
    }
  }
  assert.equal(logSize(v), from);
  const audit = await auditRecords(v);
  assert.ok(ofType(audit, 'request.refused').some((e) => (e['principal'] as { role?: string } | null)?.role === 'auditor' && e['path'] === '/services/collector/event'), 'the auditor token on the write route was recorded');
  await assertStillServing(v);
});

test('hostile bodies: truncated gzip, a gzip bomb, an oversized body, an empty body, an unknown encoding', async () => {
  const from = logSize(v);
  const trunc = await hec(truncatedGzip('{"event":"x"}'.repeat(100)), { headers: { 'content-encoding': 'gzip' } });
  assert.equal(trunc.statusCode, 400);
  assert.deepEqual(trunc.json(), { text: 'Invalid data format', code: 6 });
  const bomb = await hec(gzipBomb(17 * 1024 * 1024), { headers: { 'content-encoding': 'gzip' } });
  assert.equal(bomb.statusCode, 413);
  assert.deepEqual(bomb.json(), { text: 'Content too large', code: 6 });
  const huge = await hec(Buffer.alloc(16 * 1024 * 1024 + 10, 0x20));
  assert.equal(huge.statusCode, 413);
  assert.deepEqual(huge.json(), { text: 'Content too large', code: 6 });
  const empty = await hec('');
  assert.equal(empty.statusCode, 400);
  assert.deepEqual(empty.json(), { text: 'No data', code: 5 });
  const spaces = await hec(' \n\t ');
  assert.deepEqual(spaces.json(), { text: 'No data', code: 5 });
  const br = await hec('{"event":"x"}', { headers: { 'content-encoding': 'br' } });
  assert.equal(br.statusCode, 400);
  assert.deepEqual(br.json(), { text: 'Invalid data format', code: 6 });
  const tooBigEvent = await hec(`{"event":"${'a'.repeat(1024 * 1024)}"}{"event":"small"}`);
  assert.equal(tooBigEvent.statusCode, 400);
  assert.deepEqual(tooBigEvent.json(), { text: 'Invalid data format', code: 6, 'invalid-event-number': 0 });
  assert.equal(logSize(v), from + 1);
  assert.equal((await readEntry(v, from)).bytes.toString(), '{"event":"small"}');
  // Still serving: a normal request works.
  const ok = await hec('{"event":"after the storm"}');
  assert.equal(ok.statusCode, 200);
  await assertStillServing(v);
});

test('fuzz: any body gets an HEC answer (200, 400 or 413 with a code), never a crash', async () => {
  const piece = fc.oneof(
    fc.constantFrom('{"event":"e"}', '{"event":{}}', '{', '}', '"', '\\', '{"event":', '[', ']', ' ', '\n', '{"fields":{}}', '{"event":""}'),
    fc.string({ maxLength: 20 }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(piece, { maxLength: 12 }), async (parts) => {
      const r = await hec(parts.join(''));
      assert.ok([200, 400, 413].includes(r.statusCode), `${r.statusCode} ${r.body}`);
      const b = r.json<HecBody>();
      assert.equal(typeof b.code, 'number');
      assert.equal(typeof b.text, 'string');
    }),
    { numRuns: 60 },
  );
  await assertStillServing(v);
});

test('when the vault pushes back, HEC answers 503 code 9 "Server is busy" with Retry-After', async (t) => {
  const busy = await startInProc({ checkpointIntervalMs: 3_000, maxPendingEntries: 50, admissionTimeoutMs: 200 });
  t.after(() => busy.close());
  const send = (n: number) =>
    busy.app.inject({
      method: 'POST',
      url: '/services/collector/event',
      headers: { authorization: `Splunk ${busy.tokens.writer}` },
      payload: Array.from({ length: n }, (_, i) => `{"event":${i}}`).join(''),
    });
  assert.equal((await send(40)).statusCode, 200);
  const r = await send(30);
  assert.equal(r.statusCode, 503);
  assert.deepEqual(r.json(), { text: 'Server is busy', code: 9 });
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(busy.vault.sequencer('local').sequencedSize, 40);
});
