/** Splitting request bodies into records: byte-exact, and robust to anything JSON allows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { splitJson, splitNdjson, parseBatch } from '../../src/ingest/batch.js';
import { CustodyError } from '../../src/errors.js';

const ws = fc.constantFrom('', ' ', '\n', '\t', ' \r\n ');

test('a JSON array splits into the exact bytes of each element (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.jsonValue(), ws, ws), { minLength: 1, maxLength: 20 }), ws, (items, outer) => {
      const texts = items.map(([v]) => JSON.stringify(v));
      const body = `${outer}[${items.map(([, a, b], i) => `${a}${texts[i]}${b}`).join(',')}]${outer}`;
      const recs = splitJson(Buffer.from(body));
      assert.deepEqual(recs.map((r) => r.toString()), texts);
    }),
    { numRuns: 300 },
  );
});

test('NDJSON splits into the exact lines, skipping blank ones (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.jsonValue(), { minLength: 1, maxLength: 30 }), fc.boolean(), fc.boolean(), (values, crlf, trailing) => {
      const lines = values.map((v) => JSON.stringify(v));
      const body = lines.join(crlf ? '\r\n' : '\n') + (trailing ? '\n\n' : '');
      assert.deepEqual(splitNdjson(Buffer.from(body)).map((r) => r.toString()), lines);
    }),
    { numRuns: 300 },
  );
});

test('random bytes never crash the parser: a result or a CustodyError', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('application/x-ndjson', 'application/json'), async (bytes, type) => {
      try {
        const recs = await parseBatch(Buffer.from(bytes), type, undefined);
        for (const r of recs) JSON.parse(r.toString());
      } catch (e) {
        assert.ok(e instanceof CustodyError, String(e));
      }
    }),
    { numRuns: 500 },
  );
});

test('deeply nested JSON is handled without blowing the stack', async () => {
  const deep = '['.repeat(5000) + ']'.repeat(5000);
  const r = await parseBatch(Buffer.from(`[${deep}]`), 'application/json', undefined).catch((e: unknown) => e);
  assert.ok(Array.isArray(r) || r instanceof CustodyError);
});
