/** The entry envelope (docs/FORMAT.md): build, parse, and refuse anything malformed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildEnvelopes, envelopePrefix, parseEntry, inlineLimit, MAX_ENTRY_SIZE } from '../../src/log/entry.js';
import { CustodyError } from '../../src/errors.js';

const fields = { origin: 'custody.example/eu-west-1', region: 'eu-west-1', source: 'aws.cloudtrail', producer: 'vector-prod', received: '2026-12-04T20:01:02.123Z' };

test('envelopes bind the record byte for byte with its metadata and a fresh salt', () => {
  const recs = [Buffer.from('{"a":1}'), Buffer.from('\u00e9\n\u0000 binary-ish'), Buffer.alloc(0)];
  const env = buildEnvelopes(envelopePrefix(fields), recs);
  assert.equal(env.length, 3);
  const parsed = env.map(parseEntry);
  parsed.forEach((p, i) => {
    assert.deepEqual(p.record, recs[i]);
    assert.equal(p.origin, fields.origin);
    assert.equal(p.region, fields.region);
    assert.equal(p.source, fields.source);
    assert.equal(p.producer, fields.producer);
    assert.equal(p.received, fields.received);
    assert.equal(p.salt.length, 16);
    assert.equal(p.blob, null);
  });
  assert.notDeepEqual(parsed[0]!.salt, parsed[1]!.salt);
  assert.equal(env[0]!.toString(), `custody-entry/v1\nlog ${fields.origin}\nregion eu-west-1\nsource aws.cloudtrail\nproducer vector-prod\nreceived ${fields.received}\nsalt ${parsed[0]!.salt.toString('base64')}\n\n{"a":1}`);
});

test('the same record twice gives two different entries (salted)', () => {
  const [a, b] = buildEnvelopes(envelopePrefix(fields), [Buffer.from('x'), Buffer.from('x')]);
  assert.notDeepEqual(a, b);
});

test('blob references and the inline limit', () => {
  const prefix = envelopePrefix(fields);
  const limit = inlineLimit(prefix);
  const [max] = buildEnvelopes(prefix, [Buffer.alloc(limit, 0x61)]);
  assert.ok(max!.length <= MAX_ENTRY_SIZE);
  const [ref] = buildEnvelopes(prefix, [Buffer.alloc(10)], [{ sha256: 'ab'.repeat(32), size: 200000 }]);
  const p = parseEntry(ref!);
  assert.deepEqual(p.blob, { sha256: 'ab'.repeat(32), size: 200000 });
  assert.equal(p.record, null);
});

test('metadata with spaces or newlines cannot forge header lines', () => {
  for (const bad of ['two words', 'line\nsalt AAAA', '', 'x'.repeat(257), 'caf\u00e9']) {
    assert.throws(() => envelopePrefix({ ...fields, source: bad }), (e: unknown) => e instanceof CustodyError && e.code === 'BAD_REQUEST');
  }
});

test('malformed envelopes are refused', () => {
  const [good] = buildEnvelopes(envelopePrefix(fields), [Buffer.from('{}')]);
  const s = good!.toString('latin1');
  const variants = [
    s.replace('custody-entry/v1', 'custody-entry/v2'),
    s.replace('\nregion ', '\nzone '),
    s.replace(/salt [^\n]+/, 'salt short'),
    s.replace('\n\n', '\n'),
    s.replace('\n\n{}', '\nblob sha256:xyz 1\n\n'),
    s.replace('\n\n{}', `\nblob sha256:${'a'.repeat(64)} 5\n\n{}`),
    s.replace('\n\n', '\nextra line\nmore\n\n'),
  ];
  for (const v of variants) {
    assert.throws(() => parseEntry(Buffer.from(v, 'latin1')), (e: unknown) => e instanceof CustodyError && e.code === 'STORAGE_CORRUPT', v.slice(0, 80));
  }
});
