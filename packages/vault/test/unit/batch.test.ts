/** Splitting JSON bodies into records (sources/generic.ts): byte-exact, and robust to anything JSON allows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseJsonBody, parseNdjson } from '../../src/ingest/sources/generic.js';
import { CustodyError } from '../../src/errors.js';

const splitJson = (b: Buffer): Buffer[] => parseJsonBody(b, 'json').records.map((r) => r.bytes);
const splitNdjson = (b: Buffer): Buffer[] => parseNdjson(b, 'json').records.map((r) => r.bytes);

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

test('random bytes never crash the parser: valid records and per-line errors, nothing half-parsed', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const body = Buffer.from(bytes);
      try {
        const r = parseJsonBody(body, 'json');
        for (const rec of r.records) {
          JSON.parse(rec.bytes.toString());
          assert.ok(body.indexOf(rec.bytes) >= 0, 'a record is a slice of the body');
        }
        for (const e of r.errors) assert.ok(e.position >= 1 && e.code.length > 0);
      } catch (e) {
        assert.ok(e instanceof CustodyError, String(e));
      }
    }),
    { numRuns: 500 },
  );
});

test('deeply nested JSON is handled without blowing the stack', () => {
  const deep = '['.repeat(5000) + ']'.repeat(5000);
  const r = parseJsonBody(Buffer.from(`[${deep}]`), 'json');
  assert.equal(r.records.length + r.errors.length, 1);
});

test('topLevelValueRange finds a member whatever its kind, also as the last member', async () => {
  const { topLevelValueRange } = await import('../../src/ingest/sources/generic.js');
  const cases: Array<[string, string, string | null]> = [
    ['{"a":5}', 'a', '5'],
    ['{"a":true}', 'a', 'true'],
    ['{"b":1,"a":null }', 'a', 'null'],
    ['{"a":[1,{"x":"}"}],"b":2}', 'a', '[1,{"x":"}"}]'],
    ['{"a":"s\\"}"}', 'a', '"s\\"}"'],
    ['{"x":{"a":1}}', 'a', null],
  ];
  for (const [json, key, want] of cases) {
    const b = Buffer.from(json);
    const r = topLevelValueRange(b, key);
    assert.equal(r ? b.toString('utf8', r.start, r.end) : null, want, json);
  }
});
