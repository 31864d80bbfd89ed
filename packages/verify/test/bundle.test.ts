/**
 * verifyBundle on bundles built here from first principles (envelopes, RFC 6962 proofs,
 * signed and cosigned checkpoints): what it accepts, what it reports and naming the file, and
 * that no single-byte change to any file of a bundle goes unnoticed (fast-check).
 * The vault's own bundles are checked end to end (and by Go) in packages/vault/test/evidence*.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  Ed25519CosignatureSigner,
  Ed25519NoteSigner,
  MANIFEST_CHECKSUM_FILE,
  MANIFEST_FILE,
  VerifyError,
  bundleItemPaths,
  bundleLogPaths,
  formatCheckpoint,
  formatProofFile,
  hashLeaf,
  manifestChecksumText,
  naiveRoot,
  parseEnvelope,
  proveInclusion,
  signNote,
  toBase64,
  utf8Encode,
  verifyBundle,
  type BundleManifest,
  type BundleProblemKind,
  type BundleReport,
} from '../src/index.js';
import { leavesReader } from './support/helpers.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const enc = (s: string): Uint8Array => utf8Encode(s);

interface TestLog {
  name: string;
  signer: Ed25519NoteSigner;
  entries: Uint8Array[];
  records: Uint8Array[];
  cpText: string;
  size: number;
  root: Uint8Array;
}

function envelope(origin: string, i: number, record: Uint8Array, blob: boolean): Uint8Array {
  const salt = toBase64(randomBytes(16));
  const head =
    `custody-entry/v1\nlog ${origin}\nregion eu-west-1\nsource app.test\nproducer writer-1\nreceived 2025-01-0${1 + (i % 9)}T00:00:00.000Z\n` +
    (i % 3 === 0 ? 'attr logGroup /aws/lambda/x\n' : '') +
    `salt ${salt}\n` +
    (blob ? `blob sha256:${sha(record)} ${record.length}\n\n` : '\n');
  return blob ? enc(head) : new Uint8Array([...enc(head), ...record]);
}

function makeLog(name: string, size: number, witnesses: Ed25519CosignatureSigner[] = []): TestLog {
  const origin = `example.test/${name}`;
  const signer = new Ed25519NoteSigner(origin, randomBytes(32));
  const entries: Uint8Array[] = [];
  const records: Uint8Array[] = [];
  for (let i = 0; i < size; i++) {
    const blob = i === 5;
    const rec = blob ? randomBytes(70_000) : enc(JSON.stringify({ i, msg: `record ${i} of ${name}`, ok: i % 2 === 0 }));
    records.push(rec);
    entries.push(envelope(origin, i, rec, blob));
  }
  const root = naiveRoot(entries.map((e) => hashLeaf(e)));
  const body = formatCheckpoint({ origin, size, rootHash: root, extensions: [] });
  const cpText = signNote(body, [signer, ...witnesses.map((w) => ({ sign: (b: string) => w.sign(b, 1_750_000_000) }))]);
  return { name, signer, entries, records, cpText, size, root };
}

/** A bundle of the given items, built exactly as docs/EVIDENCE.md describes. */
function makeBundle(logs: TestLog[], picks: Record<string, number[]>): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const m: BundleManifest = { format: 'custody-evidence/v1', created: '2025-02-01T00:00:00.000Z', vault: 'example.test', query: 'source:app.test', from: null, to: null, count: 0, logs: {}, items: [], sha256: {} };
  const put = (path: string, b: Uint8Array): void => {
    files.set(path, b);
    m.sha256[path] = sha(b);
  };
  put('README.txt', enc('Custody evidence bundle, for tests.\n'));
  for (const l of logs) {
    const lp = bundleLogPaths(l.name);
    put(lp.key, enc(`${l.signer.verifierKey}\n`));
    put(lp.checkpoint, enc(l.cpText));
    m.logs[l.name] = { origin: l.signer.name, verifierKey: l.signer.verifierKey, key: lp.key, checkpoint: lp.checkpoint, size: l.size, rootHash: toBase64(l.root) };
    const reader = leavesReader(l.entries.map((e) => hashLeaf(e)));
    for (const i of picks[l.name] ?? []) {
      const p = bundleItemPaths(l.name, i);
      put(p.entry, l.entries[i]!);
      put(p.record, l.records[i]!);
      put(p.proof, enc(formatProofFile({ index: i, proof: proveInclusion(i, l.size, reader), checkpoint: l.cpText })));
      m.items.push({ log: l.name, index: i, source: 'app.test', time: '2025-01-01T00:00:00.000Z', ...p });
    }
  }
  m.count = m.items.length;
  return seal(files, m);
}

/** Writes manifest.json and its checksum (after a test changed the manifest on purpose). */
function seal(files: Map<string, Uint8Array>, m: BundleManifest): Map<string, Uint8Array> {
  const mb = enc(JSON.stringify(m, null, 1));
  files.set(MANIFEST_FILE, mb);
  files.set(MANIFEST_CHECKSUM_FILE, enc(manifestChecksumText(sha(mb))));
  return files;
}

function manifestOf(files: Map<string, Uint8Array>): BundleManifest {
  return JSON.parse(Buffer.from(files.get(MANIFEST_FILE)!).toString('utf8')) as BundleManifest;
}

/** Replaces a file and re-lists its hash: a forger who rewrites the manifest consistently. */
function forge(files: Map<string, Uint8Array>, path: string, bytes: Uint8Array): Map<string, Uint8Array> {
  const out = new Map(files);
  out.set(path, bytes);
  const m = manifestOf(out);
  m.sha256[path] = sha(bytes);
  return seal(out, m);
}

function kinds(r: BundleReport): Array<[string, BundleProblemKind]> {
  return r.problems.map((p) => [p.file, p.kind]);
}

const W1 = new Ed25519CosignatureSigner('witness.test/w1', randomBytes(32));
const W2 = new Ed25519CosignatureSigner('witness.test/w2', randomBytes(32));
const A = makeLog('eu-west-1', 21, [W1]);
const B = makeLog('local', 9);
const PICKS = { 'eu-west-1': [0, 5, 7, 20], local: [0, 8] };
const BUNDLE = makeBundle([A, B], PICKS);
const KEYS = [A.signer.verifierKey, B.signer.verifierKey];

describe('verifyBundle', () => {
  test('a complete bundle verifies against the pinned keys, blob record included', () => {
    const r = verifyBundle(BUNDLE, { keys: KEYS });
    assert.deepEqual(r.problems, []);
    assert.equal(r.ok, true);
    assert.equal(r.items, 6);
    assert.equal(r.verified, 6);
    assert.deepEqual(
      r.logs.map((l) => [l.log, l.items, l.trusted, l.verifiedBy, l.size]),
      [
        ['eu-west-1', 4, true, A.signer.verifierKey, 21],
        ['local', 2, true, B.signer.verifierKey, 9],
      ],
    );
    assert.deepEqual(r.manifest, { created: '2025-02-01T00:00:00.000Z', vault: 'example.test', query: 'source:app.test', from: null, to: null });
    assert.equal(BUNDLE.get('records/eu-west-1/5')!.length, 70_000);
  });

  test('the keys shipped in the bundle are never trusted on their own', () => {
    const r = verifyBundle(BUNDLE, { keys: [] });
    assert.equal(r.ok, false);
    assert.equal(r.verified, 0);
    assert.deepEqual(kinds(r), [
      ['checkpoints/eu-west-1.checkpoint', 'KEY_NOT_PINNED'],
      ['checkpoints/local.checkpoint', 'KEY_NOT_PINNED'],
    ]);
    assert.match(r.problems[0]!.message, /signed by the key in the bundle \(example\.test\/eu-west-1\+[0-9a-f]{8}\+.*\), which you have not pinned/);
    // One log pinned: its items verify, the other log's do not.
    const half = verifyBundle(BUNDLE, { keys: [B.signer.verifierKey] });
    assert.equal(half.ok, false);
    assert.equal(half.verified, 2);
    assert.deepEqual(kinds(half), [['checkpoints/eu-west-1.checkpoint', 'KEY_NOT_PINNED']]);
  });

  test('a pinned key of the same name that did not sign is a KEY_MISMATCH', () => {
    const other = new Ed25519NoteSigner(A.signer.name, randomBytes(32));
    const r = verifyBundle(BUNDLE, { keys: [other.verifierKey, B.signer.verifierKey] });
    assert.equal(r.ok, false);
    assert.deepEqual(kinds(r), [['checkpoints/eu-west-1.checkpoint', 'KEY_MISMATCH']]);
    assert.match(r.problems[0]!.message, /not by the key you pinned/);
    // The bundle's key file swapped for the attacker's own key changes nothing for the trust.
    const attacker = new Ed25519NoteSigner(A.signer.name, randomBytes(32));
    const swapped = forge(BUNDLE, 'keys/eu-west-1.vkey', enc(`${attacker.verifierKey}\n`));
    const r2 = verifyBundle(swapped, { keys: KEYS });
    assert.deepEqual(kinds(r2), [['keys/eu-west-1.vkey', 'KEY_FILE']]);
    assert.equal(r2.verified, 6, 'the pinned key still verifies every item');
  });

  test('witness cosignatures: quorum met with trusted witnesses, refused otherwise', () => {
    const ok = verifyBundle(BUNDLE, { keys: KEYS, witnesses: [W1.verifierKey], quorum: 0 });
    assert.equal(ok.ok, true);
    assert.deepEqual(ok.logs.map((l) => l.cosigners), [['witness.test/w1'], []]);
    const onlyA = verifyBundle(BUNDLE, { keys: [A.signer.verifierKey], witnesses: [W1.verifierKey, W2.verifierKey], quorum: 1 });
    assert.equal(onlyA.logs[0]!.trusted, true);
    const both = verifyBundle(BUNDLE, { keys: KEYS, witnesses: [W1.verifierKey], quorum: 1 });
    assert.equal(both.ok, false, 'log "local" has no cosignature');
    assert.deepEqual(kinds(both), [['checkpoints/local.checkpoint', 'CHECKPOINT_INVALID']]);
    assert.match(both.problems[0]!.message, /signed by the key you trust, but 0 of the required 1 witness cosignatures verify/);
    const w2 = verifyBundle(BUNDLE, { keys: [A.signer.verifierKey], witnesses: [W2.verifierKey], quorum: 1 });
    assert.equal(w2.logs[0]!.trusted, false);
  });

  test('added, missing and swapped files are named', () => {
    const extra = new Map(BUNDLE).set('notes.txt', enc('hello'));
    assert.deepEqual(kinds(verifyBundle(extra, { keys: KEYS })), [['notes.txt', 'UNLISTED_FILE']]);
    const missing = new Map(BUNDLE);
    missing.delete('proofs/local/8.tlog-proof');
    assert.deepEqual(kinds(verifyBundle(missing, { keys: KEYS })), [['proofs/local/8.tlog-proof', 'MISSING_FILE']]);
    const noManifest = new Map(BUNDLE);
    noManifest.delete(MANIFEST_FILE);
    const r = verifyBundle(noManifest, { keys: KEYS });
    assert.equal(r.ok, false);
    assert.deepEqual(kinds(r), [[MANIFEST_FILE, 'MISSING_FILE']]);
    const noSum = new Map(BUNDLE);
    noSum.delete(MANIFEST_CHECKSUM_FILE);
    assert.deepEqual(kinds(verifyBundle(noSum, { keys: KEYS })), [[MANIFEST_CHECKSUM_FILE, 'MISSING_FILE']]);
  });

  test('a forger who rewrites the manifest consistently is still caught by the proofs', () => {
    // A changed record (inline): it is no longer the record inside its entry.
    const rec = forge(BUNDLE, 'records/local/8', enc('{"i":8,"msg":"nothing happened"}'));
    assert.deepEqual(kinds(verifyBundle(rec, { keys: KEYS })), [['records/local/8', 'RECORD_MISMATCH']]);
    // A changed blob record: no longer the blob its entry names.
    const blob = new Uint8Array(BUNDLE.get('records/eu-west-1/5')!);
    blob[100] = blob[100]! ^ 1;
    assert.deepEqual(kinds(verifyBundle(forge(BUNDLE, 'records/eu-west-1/5', blob), { keys: KEYS })), [['records/eu-west-1/5', 'RECORD_MISMATCH']]);
    // A changed entry, with its record changed to match: the proof no longer holds.
    const entry = new Uint8Array(A.entries[7]!);
    entry[entry.length - 2] = entry[entry.length - 2]! ^ 0x20;
    let f = forge(BUNDLE, 'entries/eu-west-1/7.entry', entry);
    f = forge(f, 'records/eu-west-1/7', parseEnvelope(entry).body!);
    assert.deepEqual(kinds(verifyBundle(f, { keys: KEYS })), [['entries/eu-west-1/7.entry', 'PROOF_INVALID']]);
    // Another log's entry presented as this one: right proof, wrong origin and root.
    const moved = forge(forge(BUNDLE, 'entries/local/0.entry', A.entries[0]!), 'records/local/0', A.records[0]!);
    const rm = verifyBundle(moved, { keys: KEYS });
    assert.deepEqual(kinds(rm), [
      ['entries/local/0.entry', 'PROOF_INVALID'],
      ['entries/local/0.entry', 'ENTRY_MISMATCH'],
    ]);
    // A proof against a different (validly signed) checkpoint of the same log.
    const older = makeLog('local', 9);
    const otherCp = signNote(formatCheckpoint({ origin: B.signer.name, size: 9, rootHash: older.root, extensions: [] }), [B.signer]);
    const proof = formatProofFile({ index: 0, proof: proveInclusion(0, 9, leavesReader(older.entries.map((e) => hashLeaf(e)))), checkpoint: otherCp });
    assert.deepEqual(kinds(verifyBundle(forge(BUNDLE, 'proofs/local/0.tlog-proof', enc(proof)), { keys: KEYS })), [['proofs/local/0.tlog-proof', 'PROOF_MISMATCH']]);
    // A proof for another index.
    const p7 = Buffer.from(BUNDLE.get('proofs/eu-west-1/7.tlog-proof')!).toString('utf8').replace('index 7\n', 'index 6\n');
    assert.deepEqual(kinds(verifyBundle(forge(BUNDLE, 'proofs/eu-west-1/7.tlog-proof', enc(p7)), { keys: KEYS })), [['proofs/eu-west-1/7.tlog-proof', 'PROOF_MISMATCH']]);
  });

  test('the manifest must say what the files say', () => {
    const m = manifestOf(BUNDLE);
    const cases: Array<[string, (x: BundleManifest) => void]> = [
      ['count', (x) => (x.count = 5)],
      ['size', (x) => (x.logs['local']!.size = 8)],
      ['source', (x) => (x.items[0]!.source = 'aws.cloudtrail')],
      ['path', (x) => (x.items[1]!.record = 'records/eu-west-1/0')],
      ['duplicate', (x) => x.items.push({ ...x.items[0]! })],
      ['unknown log', (x) => (x.items[0]!.log = 'us-east-1')],
      ['format', (x) => ((x as { format: string }).format = 'custody-evidence/v2')],
    ];
    for (const [what, change] of cases) {
      const copy = structuredClone(m);
      change(copy);
      if (what === 'duplicate') copy.count = copy.items.length;
      const r = verifyBundle(seal(new Map(BUNDLE), copy), { keys: KEYS });
      assert.equal(r.ok, false, what);
      assert.ok(r.problems.some((p) => p.file === MANIFEST_FILE && p.kind === 'MANIFEST'), `${what}: ${JSON.stringify(r.problems)}`);
    }
  });

  test('any single-byte change to any file is caught and the report names the file', () => {
    const names = [...BUNDLE.keys()];
    const pair = new Set([MANIFEST_FILE, MANIFEST_CHECKSUM_FILE]);
    fc.assert(
      fc.property(fc.nat(names.length - 1), fc.nat(), fc.integer({ min: 1, max: 255 }), (fi, off, x) => {
        const name = names[fi]!;
        const bytes = new Uint8Array(BUNDLE.get(name)!);
        const at = off % bytes.length;
        bytes[at] = bytes[at]! ^ x;
        const r = verifyBundle(new Map(BUNDLE).set(name, bytes), { keys: KEYS });
        assert.equal(r.ok, false, `${name} byte ${at} ^ ${x} went unnoticed`);
        const named = r.problems.some((p) => p.file === name || (pair.has(name) && pair.has(p.file)));
        assert.ok(named, `${name} byte ${at} ^ ${x}: problems name other files: ${JSON.stringify(kinds(r))}`);
      }),
      { numRuns: 600 },
    );
  });

  test('hostile manifests and envelopes are reported, never thrown', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const r = verifyBundle(seal(new Map(BUNDLE), v as unknown as BundleManifest), { keys: KEYS });
        assert.equal(r.ok, false);
        assert.ok(r.problems.length > 0);
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          parseEnvelope(b);
        } catch (e) {
          assert.ok(e instanceof VerifyError && e.code === 'MALFORMED_BUNDLE', String(e));
        }
      }),
      { numRuns: 500 },
    );
    assert.throws(() => verifyBundle(BUNDLE, { keys: ['not a key'] }), (e: unknown) => e instanceof VerifyError && e.code === 'MALFORMED_KEY');
    assert.throws(() => verifyBundle(BUNDLE, { keys: KEYS, quorum: 2, witnesses: [W1.verifierKey] }), (e: unknown) => e instanceof VerifyError && e.code === 'INVALID_ARGUMENT');
  });

  test('parseEnvelope reads the custody-entry/v1 header', () => {
    const e = parseEnvelope(A.entries[3]!);
    assert.equal(e.origin, 'example.test/eu-west-1');
    assert.equal(e.source, 'app.test');
    assert.deepEqual(e.attrs, { logGroup: '/aws/lambda/x' });
    assert.deepEqual(Buffer.from(e.body!), Buffer.from(A.records[3]!));
    const b = parseEnvelope(A.entries[5]!);
    assert.equal(b.body, null);
    assert.deepEqual(b.blob, { sha256: sha(A.records[5]!), size: 70_000 });
  });
});
