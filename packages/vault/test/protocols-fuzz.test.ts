/**
 * Hostile bodies for the OTLP and Firehose endpoints (HEC, _bulk and syslog have their own
 * fuzz properties): random bytes, random JSON and mutated valid requests never crash the
 * server, always get a protocol answer (never a 500), and never store anything the answer does
 * not account for.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { startInProc, type InProcVault } from './support/inproc.js';

let v: InProcVault;
before(async () => {
  v = await startInProc();
});
after(async () => {
  await v?.close();
});

const stored = (): number => v.vault.regionLogs().reduce((n, l) => n + v.vault.sequencer(l).sequencedSize, 0);

function otlpJson(body: string): string {
  return JSON.stringify({ resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'fuzz' } }] }, scopeLogs: [{ logRecords: [{ timeUnixNano: '1700000000000000000', body: { stringValue: body } }] }] }] });
}

function mutate(s: Buffer, at: number, byte: number, cut: number): Buffer {
  const b = Buffer.from(s);
  if (b.length > 0) b[at % b.length] = byte;
  return cut > 0 ? b.subarray(0, Math.max(0, b.length - cut)) : b;
}

test('OTLP /v1/logs: random and mutated bodies get 200/400/413/415 and the count of stored records adds up', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }).map((u) => Buffer.from(u)),
        fc.jsonValue().map((j) => Buffer.from(JSON.stringify(j))),
        fc.tuple(fc.string(), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 20 })).map(([s, at, byte, cut]) => mutate(Buffer.from(otlpJson(s)), at, byte, cut)),
      ),
      fc.constantFrom('application/json', 'application/x-protobuf'),
      fc.boolean(),
      async (body, type, gz) => {
        const before = stored();
        const r = await v.app.inject({
          method: 'POST',
          url: '/v1/logs',
          headers: { authorization: `Bearer ${v.tokens.writer}`, 'content-type': type, ...(gz ? { 'content-encoding': 'gzip' } : {}) },
          payload: gz ? gzipSync(body) : body,
        });
        assert.ok([200, 400, 413, 415].includes(r.statusCode), `status ${r.statusCode}: ${r.body.slice(0, 200)}`);
        const grew = stored() - before;
        if (r.statusCode !== 200) assert.equal(grew, 0, 'a refused request stores nothing');
      },
    ),
    { numRuns: 300 },
  );
  const ok = await v.app.inject({ method: 'POST', url: '/v1/logs', headers: { authorization: `Bearer ${v.tokens.writer}`, 'content-type': 'application/json' }, payload: otlpJson('still up') });
  assert.equal(ok.statusCode, 200, ok.body);
});

test('Firehose: random and mutated bodies always get the Firehose JSON answer, never a 500', async () => {
  const good = (data: string[]): Buffer => Buffer.from(JSON.stringify({ requestId: 'r', timestamp: 1, records: data.map((d) => ({ data: d })) }));
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }).map((u) => Buffer.from(u)),
        fc.jsonValue().map((j) => Buffer.from(JSON.stringify(j))),
        fc.array(fc.oneof(fc.base64String({ maxLength: 80 }), fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 60 }).map((u) => Buffer.from(gzipSync(u)).toString('base64'))), { maxLength: 5 }).map(good),
        fc.tuple(fc.array(fc.string(), { maxLength: 3 }), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 10 })).map(([d, at, byte, cut]) => mutate(good(d.map((x) => Buffer.from(x).toString('base64'))), at, byte, cut)),
      ),
      async (body) => {
        const id = `fuzz-${n++}`;
        const r = await v.app.inject({
          method: 'POST',
          url: '/firehose',
          headers: { 'x-amz-firehose-access-key': v.tokens.writer, 'x-amz-firehose-request-id': id, 'content-type': 'application/json' },
          payload: body,
        });
        assert.ok(r.statusCode < 500, `status ${r.statusCode}: ${r.body.slice(0, 200)}`);
        const a = r.json<{ requestId: string; timestamp: number; errorMessage?: string }>();
        assert.equal(typeof a.timestamp, 'number');
        if (r.statusCode !== 200) assert.ok(typeof a.errorMessage === 'string' && a.errorMessage.length > 0);
      },
    ),
    { numRuns: 300 },
  );
});
