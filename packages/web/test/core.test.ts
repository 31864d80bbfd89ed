/**
 * The UI's pure core, in Node: the envelope parser, JSON pretty-printing that keeps literals,
 * the in-browser entry verification and the trust-on-first-use decisions. The end-to-end
 * browser tests (packages/vault/test/web.test.ts) run the same code against a real vault.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Ed25519NoteSigner,
  formatCheckpoint,
  signNote,
  hashLeaf,
  naiveRoot,
  proveInclusion,
  proveConsistency,
  toBase64,
  utf8Encode,
  type NodeReader,
} from '@custody/verify';
import { parseEnvelope, EnvelopeError } from '../src/core/envelope.js';
import { prettyJson } from '../src/core/pretty.js';
import { verifyEntryAnswer, type EntryAnswerLike } from '../src/core/entry-proof.js';
import { checkLog, TrustStore, type KeyValueStore } from '../src/core/trust.js';
import { unzipBundle, BundleReadError } from '../src/core/bundle.js';
import { zipSync } from 'fflate';

const ORIGIN = 'custody-test/eu-west-1';

function entryBytes(record: string, opts: { origin?: string; attrs?: string[]; blob?: string } = {}): Uint8Array {
  const head = ['custody-entry/v1', `log ${opts.origin ?? ORIGIN}`, 'region eu-west-1', 'source aws.cloudtrail', 'producer vector', 'received 2026-01-02T03:04:05.678Z', ...(opts.attrs ?? []), 'salt AAECAwQFBgcICQoLDA0ODw==', ...(opts.blob ? [opts.blob] : [])];
  return utf8Encode(`${head.join('\n')}\n\n${record}`);
}

class MemoryKv implements KeyValueStore {
  readonly m = new Map<string, string>();
  getItem(k: string): string | null {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.m.set(k, v);
  }
  removeItem(k: string): void {
    this.m.delete(k);
  }
}

/** A toy log: leaves, a node reader over them, signed checkpoints. */
class ToyLog {
  readonly leaves: Uint8Array[] = [];
  readonly entries: Uint8Array[] = [];
  constructor(
    readonly signer = new Ed25519NoteSigner(ORIGIN, new Uint8Array(32).fill(7)),
    readonly origin = ORIGIN,
  ) {}
  add(e: Uint8Array): void {
    this.entries.push(e);
    this.leaves.push(hashLeaf(e));
  }
  reader(): NodeReader {
    return (level, index) => naiveRoot(this.leaves.slice(index * 2 ** level, (index + 1) * 2 ** level));
  }
  root(size = this.leaves.length): Uint8Array {
    return naiveRoot(this.leaves.slice(0, size));
  }
  checkpoint(size = this.leaves.length, signer = this.signer): string {
    return signNote(formatCheckpoint({ origin: this.origin, size, rootHash: this.root(size), extensions: [] }), [signer]);
  }
  consistency(from: number, to: number): string[] {
    const sub = new ToyLog(this.signer);
    for (const e of this.entries.slice(0, to)) sub.add(e);
    return proveConsistency(from, to, sub.reader()).map(toBase64);
  }
  answer(index: number, record?: string): EntryAnswerLike {
    const e = this.entries[index]!;
    const env = parseEnvelope(e);
    return {
      log: 'eu-west-1',
      index,
      leafHash: toBase64(this.leaves[index]!),
      record: record ?? new TextDecoder().decode(env.body),
      recordEncoding: 'utf8',
      entry: toBase64(e),
      inclusionProof: proveInclusion(index, this.leaves.length, this.reader()).map(toBase64),
      checkpoint: this.checkpoint(),
    };
  }
}

test('envelope: the header fields, attributes, body and blob line are read from the bytes', () => {
  const e = parseEnvelope(entryBytes('{"a":1}', { attrs: ['attr file x.json.gz', 'attr logGroup /aws/x'] }));
  assert.equal(e.origin, ORIGIN);
  assert.equal(e.source, 'aws.cloudtrail');
  assert.deepEqual(e.attrs, { file: 'x.json.gz', logGroup: '/aws/x' });
  assert.equal(new TextDecoder().decode(e.body), '{"a":1}');
  assert.equal(e.blob, null);
  const b = parseEnvelope(entryBytes('', { blob: `blob sha256:${'ab'.repeat(32)} 70000` }));
  assert.deepEqual(b.blob, { sha256: 'ab'.repeat(32), size: 70000 });
  // records may hold blank lines and any bytes: only the first blank line ends the header
  assert.equal(new TextDecoder().decode(parseEnvelope(entryBytes('x\n\ny')).body), 'x\n\ny');
});

test('envelope: malformed headers are refused with a reason, never crash', () => {
  const bad = [
    utf8Encode('custody-entry/v2\nlog a\n\n'),
    utf8Encode('no blank line'),
    entryBytes('x', { attrs: ['attr b 1', 'attr a 2'] }), // unsorted
    entryBytes('x', { blob: 'blob sha256:zz 1' }),
    entryBytes('not empty', { blob: `blob sha256:${'ab'.repeat(32)} 1` }),
    utf8Encode('custody-entry/v1\nlog a b\nregion r\nsource s\nproducer p\nreceived t\nsalt AAECAwQFBgcICQoLDA0ODw==\n\n'),
  ];
  for (const b of bad) assert.throws(() => parseEnvelope(b), EnvelopeError);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        parseEnvelope(bytes);
      } catch (e) {
        assert.ok(e instanceof EnvelopeError);
      }
    }),
  );
});

test('prettyJson: indents without touching a literal (big integers, escapes, unicode)', () => {
  const src = '{"n":12345678901234567890,"s":"a\\u0041\\"b","e":[],"o":{},"f":1.50,"u":"ü"}';
  const out = prettyJson(src)!;
  assert.match(out, /12345678901234567890/);
  assert.match(out, /"a\\u0041\\"b"/);
  assert.match(out, /1\.50/);
  assert.match(out, /"e": \[\]/);
  assert.equal(out.replace(/\s+/g, ''), src.replace(/\s+/g, ''));
  assert.equal(prettyJson('plain text'), null);
  assert.equal(prettyJson('{"broken":'), null);
  fc.assert(
    fc.property(fc.json(), (j) => {
      const p = prettyJson(j);
      if (p !== null) assert.deepEqual(JSON.parse(p), JSON.parse(j));
    }),
  );
});

test('entry verification: every check passes for an honest answer', () => {
  const log = new ToyLog();
  for (let i = 0; i < 7; i++) log.add(entryBytes(`{"i":${i}}`));
  const v = verifyEntryAnswer(log.answer(5), { origin: ORIGIN, verifierKey: log.signer.verifierKey });
  assert.equal(v.ok, true, JSON.stringify(v.checks));
  assert.deepEqual(v.checks.map((c) => c.id), ['envelope', 'leaf', 'record', 'signature', 'inclusion']);
  assert.equal(v.checkpoint?.size, 7);
  assert.equal(v.checkpoint?.rootHash, toBase64(log.root()));
  assert.equal(new TextDecoder().decode(v.record!), '{"i":5}');
});

test('entry verification: each kind of lie fails the check that catches it', () => {
  const log = new ToyLog();
  for (let i = 0; i < 7; i++) log.add(entryBytes(`{"i":${i}}`));
  const pin = { origin: ORIGIN, verifierKey: log.signer.verifierKey };
  const failed = (a: EntryAnswerLike, p = pin): string[] => verifyEntryAnswer(a, p).checks.filter((c) => !c.ok).map((c) => c.id);

  // a changed record in the answer (the entry is still the logged one)
  assert.deepEqual(failed(log.answer(3, '{"i":999}')), ['record']);
  // a changed entry: its leaf is no longer in the tree
  const a = log.answer(3);
  const e = Buffer.from(a.entry, 'base64');
  e[e.length - 2] = e[e.length - 2]! ^ 1;
  assert.deepEqual(failed({ ...a, entry: e.toString('base64'), leafHash: toBase64(hashLeaf(e)) }), ['record', 'inclusion']);
  // a proof for another index
  assert.deepEqual(failed({ ...log.answer(3), inclusionProof: log.answer(4).inclusionProof }), ['inclusion']);
  // a checkpoint signed by another key
  const other = new Ed25519NoteSigner(ORIGIN, new Uint8Array(32).fill(9));
  assert.deepEqual(failed({ ...log.answer(3), checkpoint: log.checkpoint(7, other) }), ['signature', 'inclusion']);
  // the entry of another log
  const foreign = new ToyLog();
  for (let i = 0; i < 2; i++) foreign.add(entryBytes(`{"i":${i}}`, { origin: 'custody-test/us-east-1' }));
  assert.ok(failed(foreign.answer(1)).includes('envelope'));
  // the server's leaf hash claim differs from the bytes
  assert.deepEqual(failed({ ...log.answer(3), leafHash: toBase64(new Uint8Array(32)) }), ['leaf']);
});

test('trust on first use: pin, unchanged, proven growth, then rollback, fork, rewrite and key change are failures', async () => {
  const kv = new MemoryKv();
  const store = new TrustStore(kv);
  const log = new ToyLog();
  for (let i = 0; i < 5; i++) log.add(entryBytes(`{"i":${i}}`));
  const id = { name: 'eu-west-1', origin: ORIGIN, verifierKey: log.signer.verifierKey };
  const opts = { consistency: async (from: number, to: number) => log.consistency(from, to), now: '2026-01-01T00:00:00Z' };

  const first = await checkLog(store, id, log.checkpoint(), opts);
  assert.equal(first.status, 'pinned');
  assert.equal(store.get(ORIGIN)?.size, 5);
  assert.equal((await checkLog(store, id, log.checkpoint(), opts)).status, 'unchanged');
  for (let i = 5; i < 13; i++) log.add(entryBytes(`{"i":${i}}`));
  const grown = await checkLog(store, id, log.checkpoint(), opts);
  assert.equal(grown.status, 'extended');
  assert.equal(store.get(ORIGIN)?.size, 13);
  // an older checkpoint that came with an entry is fine when it is a prefix
  assert.equal((await checkLog(store, id, log.checkpoint(9), { ...opts, allowOlder: true })).status, 'older');

  // rollback: the current checkpoint is smaller than the pinned one
  const rb = await checkLog(store, id, log.checkpoint(9), opts);
  assert.equal(rb.status === 'failed' && rb.failure.reason, 'ROLLBACK');

  // a fork: same size, other history
  const fork = new ToyLog();
  for (let i = 0; i < 13; i++) fork.add(entryBytes(`{"i":${i === 2 ? 'x' : i}}`));
  const nf = await checkLog(store, id, fork.checkpoint(), { ...opts, consistency: async (f, t) => fork.consistency(f, t) });
  assert.equal(nf.status === 'failed' && nf.failure.reason, 'NOT_A_PREFIX');
  // a rewritten history that grew: no consistency proof can link it
  for (let i = 13; i < 20; i++) fork.add(entryBytes(`{"i":${i}}`));
  const cf = await checkLog(store, id, fork.checkpoint(), { ...opts, consistency: async (f, t) => fork.consistency(f, t) });
  assert.ok(cf.status === 'failed');
  assert.equal(cf.failure.reason, 'CONSISTENCY_FAILED');
  assert.deepEqual(cf.failure.trusted, { size: 13, root: toBase64(log.root(13)) });
  assert.deepEqual(cf.failure.seen, { size: 20, root: toBase64(fork.root()) });
  // the pin is kept as evidence, not moved
  assert.equal(store.get(ORIGIN)?.size, 13);

  // another key
  const other = new Ed25519NoteSigner(ORIGIN, new Uint8Array(32).fill(3));
  const kc = await checkLog(store, { ...id, verifierKey: other.verifierKey }, log.checkpoint(13, other), opts);
  assert.equal(kc.status === 'failed' && kc.failure.reason, 'KEY_CHANGED');
  // same key announced, checkpoint signed by another
  const ci = await checkLog(store, id, log.checkpoint(13, other), opts);
  assert.equal(ci.status === 'failed' && ci.failure.reason, 'CHECKPOINT_INVALID');

  // each failure is reported once
  assert.equal(store.wasReported(cf.failure), false);
  store.markReported(cf.failure);
  assert.equal(store.wasReported(cf.failure), true);
  assert.equal(store.wasReported(nf.status === 'failed' ? nf.failure : cf.failure), false, 'another failure is reported on its own');
  // forgetting starts trust anew
  store.forget(ORIGIN);
  assert.equal(store.get(ORIGIN), undefined);
});

test('bundle zips: files come out by path; what is not a readable zip is a clear BundleReadError', () => {
  const zip = zipSync({ 'manifest.json': utf8Encode('{}'), 'records/x/0': new Uint8Array([1, 2, 3]) });
  const files = unzipBundle(zip);
  assert.deepEqual([...files.keys()].sort(), ['manifest.json', 'records/x/0']);
  assert.deepEqual([...files.get('records/x/0')!], [1, 2, 3]);
  assert.throws(() => unzipBundle(utf8Encode('hello')), (e: unknown) => e instanceof BundleReadError && /not a zip/.test(e.message));
  assert.throws(() => unzipBundle(zip.subarray(0, zip.length - 30)), BundleReadError);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 200 }), (junk) => {
      junk[0] = 0x50;
      junk[1] = 0x4b;
      try {
        unzipBundle(junk);
      } catch (e) {
        assert.ok(e instanceof BundleReadError, String(e));
      }
    }),
  );
});
