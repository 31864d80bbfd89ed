/**
 * `custody cloudtrail validate` on a folder copy of a bucket: a digest chain in CloudTrail's
 * exact format (signing string, metadata, gzip, key layout — chain.ts, written from AWS's
 * documentation), signed with a test RSA key, whose log files are the real CloudTrail samples
 * in ../shared/samples; then each kind of tampering, which must be detected and named.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FolderStore, validateCloudTrail, parsePublicKeysText, readPublicKeysFile, PublicKeySet, type Finding, type ValidationReport } from '../../src/cloudtrail/index.js';
import { CustodyError } from '../../src/errors.js';
import { ROOT, cleanup, makeTempDir, runProcess } from '../support/server.js';
import { TRAIL, buildChain, keysFileText, makeDigest, makeTestKey, writeFolder, iso, type BuiltChain, type ChainOptions, type Trail } from './chain.js';

after(cleanup);

const SAMPLES = resolve(ROOT, '..', 'shared', 'samples', 'cloudtrail', 'grycap_974349055189');
/** Real CloudTrail log files (gzip, as delivered), used as the chain's log files. */
const REAL_LOGS = readdirSync(SAMPLES).sort().map((f) => readFileSync(join(SAMPLES, f)));
const KEY = makeTestKey();
const OTHER_KEY = makeTestKey();
const KEYS = parsePublicKeysText(keysFileText([KEY]), 'keys.json');

interface Setup {
  dir: string;
  chain: BuiltChain;
  path: (key: string) => string;
  run: (keys?: PublicKeySet, extra?: { fromMs?: number }) => Promise<ValidationReport>;
}

function setup(opts: Partial<ChainOptions> = {}, label = 'ct'): Setup {
  const dir = makeTempDir(label);
  const chain = buildChain({ key: KEY, hours: 6, logsPerHour: 3, logBodies: REAL_LOGS, ...opts });
  writeFolder(dir, chain.objects);
  const path = (key: string): string => join(dir, ...key.split('/'));
  return { dir, chain, path, run: (keys = KEYS, extra = {}) => validateCloudTrail(new FolderStore(dir, TRAIL.bucket), { keys, concurrency: 4, ...extra }) };
}

const kinds = (fs: Finding[]): string[] => fs.map((f) => f.kind).sort();
const only = (r: ValidationReport, kind: string): Finding[] => r.problems.filter((p) => p.kind === kind);

test('the untouched chain validates: every digest signature, chain link and log file hash checks out', async () => {
  const s = setup();
  const r = await s.run();
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, []);
  assert.equal(r.valid, true);
  assert.equal(r.summary.digests, 6);
  assert.equal(r.summary.digestsValid, 6);
  assert.equal(r.summary.logFiles, 18);
  assert.equal(r.summary.logFilesValid, 18);
  assert.equal(r.summary.objectsListed, 24, 'sidecars are not objects');
  assert.equal(r.chains.length, 1);
  assert.equal(r.chains[0]!.trail, 'org-trail');
  assert.equal(r.chains[0]!.from, '2024-03-01T00:00:31Z');
  assert.equal(r.chains[0]!.to, '2024-03-01T06:00:31Z');
  // The log files are the real samples, byte for byte.
  assert.ok(readFileSync(s.path(s.chain.logs[0]![0]!)).equals(REAL_LOGS[0]!));
});

test('sidecars in the `aws s3api head-object` shape work too, and several trails are separate chains', async () => {
  const dir = makeTempDir('ct-multi');
  const eu: Trail = { ...TRAIL, region: 'eu-west-1', prefix: 'trail-prefix/' };
  const a = buildChain({ key: KEY, hours: 3, logsPerHour: 2 });
  const b = buildChain({ key: KEY, hours: 4, logsPerHour: 1, trail: eu, start: new Date(Date.UTC(2024, 2, 5, 10, 0, 7)) });
  writeFolder(dir, a.objects, { headObject: true });
  writeFolder(dir, b.objects);
  rmSync(join(dir, ...b.logs[2]![0]!.split('/')));
  const r = await validateCloudTrail(new FolderStore(dir, TRAIL.bucket), { keys: KEYS });
  assert.equal(r.chains.length, 2);
  assert.deepEqual(r.chains.map((c) => `${c.region} ${c.trail} ${c.digests}`).sort(), ['eu-west-1 org-trail 4', 'us-east-1 org-trail 3']);
  assert.ok(r.chains.some((c) => c.id.startsWith('trail-prefix/AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/')));
  assert.deepEqual(kinds(r.problems), ['log-deleted']);
  assert.equal(r.problems[0]!.key, b.logs[2]![0]);
  assert.equal(r.summary.digestsValid, 7);
});

test('a modified log file is named, with the hash the digest expects and the one found', async () => {
  const s = setup();
  const key = s.chain.logs[2]![1]!;
  const records = JSON.parse(gunzipSync(readFileSync(s.path(key))).toString()) as { Records: Array<Record<string, unknown>> };
  const original = createHash('sha256').update(gunzipSync(readFileSync(s.path(key)))).digest('hex');
  records.Records.pop(); // an attacker removes one event from the file
  const edited = Buffer.from(JSON.stringify(records));
  writeFileSync(s.path(key), gzipSync(edited));
  const r = await s.run();
  assert.equal(r.valid, false);
  assert.deepEqual(kinds(r.problems), ['log-modified']);
  const p = r.problems[0]!;
  assert.equal(p.key, key);
  assert.equal(p.digest, s.chain.digests[2]);
  assert.equal(p.expected, original);
  assert.equal(p.actual, createHash('sha256').update(edited).digest('hex'));
  assert.match(p.message, /was modified after CloudTrail delivered it/);
  assert.equal(r.summary.logFilesValid, 17);
});

test('a deleted log file is named', async () => {
  const s = setup();
  const key = s.chain.logs[4]![0]!;
  rmSync(s.path(key));
  const r = await s.run();
  assert.deepEqual(kinds(r.problems), ['log-deleted']);
  assert.equal(r.problems[0]!.key, key);
  assert.equal(r.problems[0]!.digest, s.chain.digests[4]);
  assert.match(r.problems[0]!.message, /was deleted/);
});

test('a moved log file (the same bytes at another key) is named with where it went', async () => {
  const s = setup();
  const key = s.chain.logs[1]![2]!;
  const to = key.replace('/2024/03/01/', '/2024/03/09/');
  mkdirSync(dirname(s.path(to)), { recursive: true });
  renameSync(s.path(key), s.path(to));
  // A second move, to a name that does not even look like CloudTrail's.
  const key2 = s.chain.logs[3]![0]!;
  renameSync(s.path(key2), join(s.dir, 'stash.bin'));
  const r = await s.run();
  assert.deepEqual(kinds(r.problems), ['log-moved', 'log-moved']);
  const byKey = new Map(r.problems.map((p) => [p.key, p]));
  assert.equal(byKey.get(key)!.movedTo, to);
  assert.equal(byKey.get(key2)!.movedTo, 'stash.bin');
  assert.deepEqual(r.warnings, [], 'the moved-to keys are not also reported as unlisted');
});

test('a modified digest fails its signature, and the next digest\'s link to it breaks', async () => {
  const s = setup();
  // The attacker edits a log file and rewrites the digest's hash to match, re-gzipping it.
  const dkey = s.chain.digests[2]!;
  const lkey = s.chain.logs[2]![0]!;
  const edited = Buffer.from(gunzipSync(readFileSync(s.path(lkey))).toString().replace(/"eventName":"[A-Za-z]+"/, '"eventName":"Nothing"'));
  writeFileSync(s.path(lkey), gzipSync(edited));
  const digest = JSON.parse(gunzipSync(readFileSync(s.path(dkey))).toString()) as { logFiles: Array<{ s3Object: string; hashValue: string }> };
  digest.logFiles.find((l) => l.s3Object === lkey)!.hashValue = createHash('sha256').update(edited).digest('hex');
  writeFileSync(s.path(dkey), gzipSync(Buffer.from(JSON.stringify(digest))));
  const r = await s.run();
  assert.deepEqual(kinds(r.problems), ['digest-chain-broken', 'digest-signature-invalid']);
  assert.equal(only(r, 'digest-signature-invalid')[0]!.key, dkey);
  const link = only(r, 'digest-chain-broken')[0]!;
  assert.equal(link.key, s.chain.digests[3]);
  assert.equal(link.digest, dkey);
  assert.equal(r.summary.logFilesNotChecked, 3, 'a failed digest\'s hashes are not trusted');
  assert.equal(r.summary.digestsValid, 5);
});

test('a deleted digest is named as missing between two times', async () => {
  const s = setup();
  const gone = s.chain.digests[3]!;
  rmSync(s.path(gone));
  rmSync(s.path(gone) + '.metadata.json');
  const r = await s.run();
  assert.deepEqual(kinds(r.problems), ['digests-missing']);
  const p = r.problems[0]!;
  assert.deepEqual(p.knownMissing, [gone]);
  assert.equal(p.after, s.chain.digests[2]);
  assert.equal(p.before, s.chain.digests[4]);
  assert.equal(p.from, '2024-03-01T03:00:31Z');
  assert.equal(p.to, '2024-03-01T04:00:31Z');
  assert.equal(p.estimatedCount, 1);
  // Its log files are still there, but no digest vouches for them any more.
  assert.deepEqual(r.warnings.map((w) => w.kind), ['log-unlisted', 'log-unlisted', 'log-unlisted']);
  assert.deepEqual(r.warnings.map((w) => w.key).sort(), [...s.chain.logs[3]!].sort());
});

test('two consecutive deleted digests: the gap is measured between the digests that are there', async () => {
  // `aws cloudtrail validate-logs` reports only the digest the later one names, then jumps to
  // the next digest it finds without checking the link: the second deletion goes unreported.
  const s = setup({ hours: 8 });
  for (const i of [3, 4]) {
    rmSync(s.path(s.chain.digests[i]!));
    rmSync(s.path(s.chain.digests[i]!) + '.metadata.json');
  }
  const r = await s.run();
  assert.deepEqual(kinds(r.problems), ['digests-missing']);
  const p = r.problems[0]!;
  assert.deepEqual(p.knownMissing, [s.chain.digests[4]]);
  assert.equal(p.after, s.chain.digests[2]);
  assert.equal(p.before, s.chain.digests[5]);
  assert.equal(p.from, '2024-03-01T03:00:31Z');
  assert.equal(p.to, '2024-03-01T05:00:31Z');
  assert.equal(p.estimatedCount, 2);
  assert.match(p.message, /missing between 2024-03-01T03:00:31Z and 2024-03-01T05:00:31Z \(about 2 digests\)/);
  assert.equal(r.warnings.filter((w) => w.kind === 'log-unlisted').length, 6);
});

test('the oldest digest deleted is a problem, unless --from says the copy starts later', async () => {
  const s = setup();
  rmSync(s.path(s.chain.digests[0]!));
  const r = await s.run();
  assert.deepEqual(kinds(r.problems), ['digests-missing']);
  assert.equal(r.problems[0]!.after, null);
  assert.equal(r.problems[0]!.before, s.chain.digests[1]);
  const later = await s.run(KEYS, { fromMs: Date.parse('2024-03-01T01:30:00Z') });
  assert.deepEqual(later.problems, []);
  assert.equal(later.summary.digests, 5);
});

test('a digest signed with an unknown key is named', async () => {
  const s = setup({ signer: (i) => (i === 2 ? OTHER_KEY : KEY) });
  const r = await s.run();
  assert.deepEqual(kinds(r.problems), ['digest-unknown-key']);
  assert.equal(r.problems[0]!.key, s.chain.digests[2]);
  assert.match(r.problems[0]!.message, new RegExp(OTHER_KEY.fingerprint));
  // With both keys given, the same chain is valid.
  const both = await s.run(parsePublicKeysText(keysFileText([KEY, OTHER_KEY]), 'k'));
  assert.deepEqual(both.problems, []);
});

test('a forged previous-hash or previous-signature link is named, even when the digest itself is signed', async () => {
  const s = setup({
    tweak: (i, d) => {
      if (i === 2) d.previousDigestHashValue = createHash('sha256').update('some other digest').digest('hex');
      if (i === 4) d.previousDigestSignature = 'ab'.repeat(256);
    },
  });
  const r = await s.run();
  assert.deepEqual(kinds(r.problems), ['digest-chain-broken', 'digest-chain-broken']);
  const byKey = new Map(r.problems.map((p) => [p.key, p]));
  const h = byKey.get(s.chain.digests[2]!)!;
  assert.equal(h.digest, s.chain.digests[1]);
  assert.equal(h.actual, createHash('sha256').update(s.chain.uncompressed.get(s.chain.digests[1]!)!).digest('hex'));
  assert.match(h.message, /previousDigestHashValue/);
  const g = byKey.get(s.chain.digests[4]!)!;
  assert.equal(g.expected, 'ab'.repeat(256));
  assert.equal(g.actual, s.chain.signatures.get(s.chain.digests[3]!));
  assert.match(g.message, /previousDigestSignature/);
});

test('a digest moved to another key is named; the chain still finds it by the key it declares', async () => {
  const s = setup();
  const key = s.chain.digests[1]!;
  const to = key.replace('/2024/03/01/', '/2024/02/29/');
  mkdirSync(dirname(s.path(to)), { recursive: true });
  renameSync(s.path(key), s.path(to));
  renameSync(s.path(key) + '.metadata.json', s.path(to) + '.metadata.json');
  const r = await s.run();
  assert.deepEqual(kinds(r.problems), ['digest-moved']);
  assert.equal(r.problems[0]!.key, to);
  assert.equal(r.problems[0]!.expected, `s3://${TRAIL.bucket}/${key}`);
  // A copy for another bucket is "moved" too.
  const other = await validateCloudTrail(new FolderStore(s.dir, 'another-bucket'), { keys: KEYS });
  assert.equal(only(other, 'digest-moved').length, 6);
});

test('a chain restart (logging turned off, then on) is a warning, not a problem', async () => {
  const s = setup({ restartAt: 3 });
  const r = await s.run();
  assert.deepEqual(r.problems, []);
  assert.equal(r.valid, true);
  assert.deepEqual(r.warnings.map((w) => [w.kind, w.after, w.before]), [['chain-restarted', s.chain.digests[2], s.chain.digests[3]]]);
});

test('log files after the newest digest are a warning: the newest digests may have been deleted', async () => {
  const s = setup({ hours: 7 });
  for (const i of [5, 6]) rmSync(s.path(s.chain.digests[i]!));
  const r = await s.run();
  assert.deepEqual(r.problems, []);
  const w = r.warnings.find((x) => x.kind === 'digests-missing-at-end');
  assert.ok(w, JSON.stringify(r.warnings));
  assert.equal(w.from, '2024-03-01T05:00:31Z');
  assert.equal(w.count, 3, 'the last hour\'s files; the hour before the newest digest could still be coming');
});

test('hostile digest files and sidecars give named problems, never a crash', async () => {
  const s = setup({ hours: 13, logsPerHour: 1, logBodies: [] });
  const d = s.chain.digests;
  const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024, 0x20), { level: 9 });
  const cases: Array<[number, Buffer | null, RegExp]> = [
    [0, Buffer.from('this is not a digest'), /neither gzip nor JSON/],
    [1, gzipSync('{"digestEndTime": "2024-'), /not JSON/],
    [2, gzipSync('[1,2,3]'), /not a JSON object/],
    [3, gzipSync(JSON.stringify({ digestStartTime: 5, digestEndTime: '2024-03-01T00:00:00Z', previousDigestSignature: null, logFiles: [] })), /digestStartTime is a number/],
    [4, gzipSync(JSON.stringify({ previousDigestSignature: null, logFiles: 'x' })), /logFiles is a string/],
    [5, bomb, /decompresses to more than/],
    [6, readFileSync(s.path(d[6]!)).subarray(0, 40), /not a valid gzip/],
    [11, Buffer.alloc(33 * 1024 * 1024), /larger than any digest/],
  ];
  for (const [i, body] of cases) writeFileSync(s.path(d[i]!), body!);
  // A well-formed digest whose log entry has a non-hex hash and a wrong algorithm.
  const bad = JSON.parse(gunzipSync(readFileSync(s.path(d[7]!))).toString());
  bad.logFiles[0].hashValue = 'zz';
  writeFileSync(s.path(d[7]!), gzipSync(JSON.stringify(bad)));
  // Sidecars: missing, not JSON, non-hex signature.
  rmSync(s.path(d[8]!) + '.metadata.json');
  writeFileSync(s.path(d[9]!) + '.metadata.json', '{oops');
  writeFileSync(s.path(d[10]!) + '.metadata.json', JSON.stringify({ signature: 'not hex!', 'signature-algorithm': 'SHA256withRSA' }));
  const r = await s.run();
  const byKey = new Map<string, Finding[]>();
  for (const p of r.problems) byKey.set(p.key!, [...(byKey.get(p.key!) ?? []), p]);
  for (const [i, , re] of cases) {
    const f = byKey.get(d[i]!)?.find((p) => p.kind === 'digest-unreadable');
    assert.ok(f, `digest ${i}: ${JSON.stringify(byKey.get(d[i]!))}`);
    assert.match(f.message, re, `digest ${i}`);
  }
  assert.match(byKey.get(d[7]!)!.find((p) => p.kind === 'digest-unreadable')!.message, /hashValue is not a hex SHA-256/);
  assert.match(byKey.get(d[8]!)!.find((p) => p.kind === 'digest-signature-missing')!.message, /no metadata sidecar/);
  assert.match(byKey.get(d[9]!)!.find((p) => p.kind === 'digest-signature-missing')!.message, /sidecar .* is not JSON/);
  assert.match(byKey.get(d[10]!)!.find((p) => p.kind === 'digest-signature-missing')!.message, /not hex/);
  assert.equal(r.valid, false);
  assert.deepEqual(r.summary.digestsValid, 1, 'only the last digest is untouched');
});

test('hostile log files and keys: not gzip, truncated gzip, a key that climbs out of the folder', async () => {
  const escape = '../../../etc/passwd';
  const s = setup({ hours: 2, logsPerHour: 2, logBodies: [], tweak: (i, d) => i === 1 && (d.logFiles as Array<Record<string, unknown>>).push({ s3Bucket: TRAIL.bucket, s3Object: escape, hashValue: '0'.repeat(64), hashAlgorithm: 'SHA-256', newestEventTime: null, oldestEventTime: null }) });
  writeFileSync(s.path(s.chain.logs[0]![0]!), 'plain text, not gzip');
  const l1 = readFileSync(s.path(s.chain.logs[0]![1]!));
  writeFileSync(s.path(s.chain.logs[0]![1]!), l1.subarray(0, l1.length - 12));
  const r = await s.run();
  const byKey = new Map(r.problems.map((p) => [p.key, p]));
  assert.equal(byKey.get(s.chain.logs[0]![0])!.kind, 'log-modified');
  assert.match(byKey.get(s.chain.logs[0]![0])!.message, /it is not gzip/);
  assert.equal(byKey.get(s.chain.logs[0]![1])!.kind, 'log-unreadable');
  assert.equal(byKey.get(escape)!.kind, 'log-deleted', 'never read outside the folder');
  assert.equal(r.problems.length, 3);
});

test('the signing string is AWS\'s: a signature made by openssl over the documented string verifies', async () => {
  const s = setup({ hours: 2, logsPerHour: 1, logBodies: [] });
  const key = s.chain.digests[1]!;
  const uncompressed = s.chain.uncompressed.get(key)!;
  const d = JSON.parse(uncompressed.toString()) as Record<string, string>;
  // Written out by hand from the documentation, not with the code under test.
  const toSign = `${d.digestEndTime}\n${TRAIL.bucket}/${key}\n${createHash('sha256').update(uncompressed).digest('hex')}\n${s.chain.signatures.get(s.chain.digests[0]!)}`;
  const tmp = makeTempDir('ct-openssl');
  writeFileSync(join(tmp, 'key.pem'), KEY.privateKey.export({ format: 'pem', type: 'pkcs1' }));
  writeFileSync(join(tmp, 'data'), toSign);
  const o = await runProcess('openssl', ['dgst', '-sha256', '-sign', join(tmp, 'key.pem'), '-out', join(tmp, 'sig'), join(tmp, 'data')]);
  assert.equal(o.code, 0, o.stderr);
  const sig = readFileSync(join(tmp, 'sig')).toString('hex');
  assert.equal(sig, s.chain.signatures.get(key), 'RSA PKCS#1 v1.5 is deterministic: the same string gives the same signature');
  writeFileSync(s.path(key) + '.metadata.json', JSON.stringify({ signature: sig, 'signature-algorithm': 'SHA256withRSA' }));
  const r = await s.run();
  assert.deepEqual(r.problems, []);
  // And the first digest of a chain signs the literal "null".
  const first = JSON.parse(s.chain.uncompressed.get(s.chain.digests[0]!)!.toString()) as Record<string, unknown>;
  assert.equal(first.previousDigestSignature, null);
  const nullString = `${first.digestEndTime}\n${TRAIL.bucket}/${s.chain.digests[0]}\n${createHash('sha256').update(s.chain.uncompressed.get(s.chain.digests[0]!)!).digest('hex')}\nnull`;
  writeFileSync(join(tmp, 'data0'), nullString);
  const o0 = await runProcess('openssl', ['dgst', '-sha256', '-sign', join(tmp, 'key.pem'), '-out', join(tmp, 'sig0'), join(tmp, 'data0')]);
  assert.equal(o0.code, 0, o0.stderr);
  assert.equal(readFileSync(join(tmp, 'sig0')).toString('hex'), s.chain.signatures.get(s.chain.digests[0]!));
});

test('the field set of AWS\'s documented digest example parses; no real signed digest is published', async () => {
  // ../shared/samples/SOURCES.md, Gaps: no real CloudTrail digest file exists in public data.
  // This is the example of "CloudTrail digest file structure" (its header values as published;
  // the log file entry in the documented shape), put through a signed chain of one.
  const t: Trail = { bucket: 'amzn-s3-demo-bucket', account: '111122223333', region: 'us-east-2', trail: 'your-trail-name', homeRegion: 'us-east-2' };
  const dir = makeTempDir('ct-doc');
  const start = new Date(Date.parse('2015-08-17T14:01:31Z'));
  const made = makeDigest({ trail: t, start, end: new Date(start.getTime() + 3_600_000), key: KEY, previous: null, logFiles: [] }, (d) => {
    d.newestEventTime = '2015-08-17T14:52:27Z';
    d.oldestEventTime = '2015-08-17T14:42:27Z';
  });
  assert.equal(made.key, 'AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz');
  writeFolder(dir, new Map([[made.key, made.object]]));
  const r = await validateCloudTrail(new FolderStore(dir, t.bucket), { keys: KEYS });
  assert.deepEqual(r.problems, []);
  assert.equal(r.summary.digestsValid, 1);
  assert.equal(r.chains[0]!.from, '2015-08-17T14:01:31Z');
  assert.equal(r.chains[0]!.to, iso(new Date(start.getTime() + 3_600_000)));
});

test('public keys files: list-public-keys output, a bare array, one output per line, PEM; bad files are refused by name', () => {
  const a = parsePublicKeysText(keysFileText([KEY]), 'a');
  assert.deepEqual(a.fingerprints(), [KEY.fingerprint]);
  const b = parsePublicKeysText(JSON.stringify([KEY.entry, OTHER_KEY.entry]), 'b');
  assert.equal(b.size, 2);
  const c = parsePublicKeysText(`${JSON.stringify({ PublicKeyList: [KEY.entry] })}\n${JSON.stringify({ PublicKeyList: [OTHER_KEY.entry] })}\n`, 'c');
  assert.equal(c.size, 2);
  const pem = parsePublicKeysText(JSON.stringify([{ Fingerprint: KEY.fingerprint.toUpperCase(), Value: KEY.publicKey.export({ format: 'pem', type: 'spki' }) }]), 'pem');
  assert.ok(pem.get(KEY.fingerprint));
  const epoch = parsePublicKeysText(JSON.stringify({ PublicKeyList: [{ ...KEY.entry, ValidityStartTime: 1420070400.0 }] }), 'epoch');
  assert.equal(epoch.get(KEY.fingerprint)!.validityStart, '2015-01-01T00:00:00.000Z');
  const refused = (text: string, re: RegExp): void => assert.throws(() => parsePublicKeysText(text, 'keys.json'), (e: unknown) => e instanceof CustodyError && e.code === 'BAD_REQUEST' && re.test(e.message));
  refused('', /is empty/);
  refused('{nope', /not JSON/);
  refused('{"Keys": []}', /no PublicKeyList/);
  refused('{"PublicKeyList": []}', /lists no public key/);
  refused(JSON.stringify([{ Fingerprint: 'abcd1234', Value: 'bm90IGEga2V5' }]), /no readable Value/);
  refused(JSON.stringify([{ Value: KEY.entry.Value }]), /no hex Fingerprint/);
  assert.throws(() => readPublicKeysFile('/nonexistent/keys.json'), /does not exist/);
});

test('many digests and log files are read with one listing: the store is listed once', async () => {
  const s = setup({ hours: 30, logsPerHour: 4, logBodies: [] });
  const store = new FolderStore(s.dir, TRAIL.bucket);
  let lists = 0;
  const list = store.list.bind(store);
  store.list = () => {
    lists++;
    return list();
  };
  const progress: Array<[number, number]> = [];
  const r = await validateCloudTrail(store, { keys: KEYS, onProgress: (d, t) => progress.push([d, t]) });
  assert.equal(r.valid, true);
  assert.equal(r.summary.logFilesValid, 120);
  assert.equal(lists, 1);
  const last = progress[progress.length - 1]!;
  assert.deepEqual(last, [150, 150], 'progress ends at digests + log files');
});
