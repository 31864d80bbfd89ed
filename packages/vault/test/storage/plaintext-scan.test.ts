/**
 * Issue 6, done means: every byte the vault stored holds no record content in plaintext.
 *
 * A real vault (in process, with its search index and background services) takes every sample
 * file of ../shared/samples the way production does (POST /v1/ingest, Firehose bodies through
 * /firehose), raises alarms that carry record content (a CloudTrail StopLogging modelled on a
 * sample: the actor's ARN and source address go into custody.db), lets the index catch up,
 * answers a search and exports an evidence bundle. Then every file under the process's own
 * temporary directory — the data directory (logs, custody.db, dedupe.db, search.db and their
 * WAL files) and anything else the vault put there — is scanned for needles taken from the
 * samples: once while the vault runs (WAL files present) and once after a clean stop.
 *
 * Needles are built from the samples, not from our own output: every JSON string value of 10
 * to 200 bytes (raw, and unescaped), every whitespace-separated word of 10+ bytes of the text
 * sources (8+ when it holds a digit or punctuation) — of those, the ones with a digit or a
 * phrase of 20+ bytes — minus AWS region names (log names are public: they are in checkpoints
 * and directory names), plus 32-byte slices of every gzip sample as delivered. A self-check shows the scanner finds a needle in a plaintext SQLite
 * file (its WAL included) and does not in one opened through storage/sqlite.ts: switching the
 * encryption off makes this test fail.
 *
 * The vault's keyring is protected by a passphrase (docs/ENCRYPTION.md "Passphrase"): the scan
 * covers keyring.json too, and every stored file is also scanned for the keyring's own keys
 * (signing seeds, KEKs, blob-name keys, database keys) in base64, hex and raw form — none may be
 * in the clear anywhere, the keyring file included.
 *
 * The S3 storage driver's bucket gets the same scan in the issue that adds that driver.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { startInProc, bearer, type InProcVault } from '../support/inproc.js';
import { ROOT } from '../support/server.js';
import { callRecord, ingestCloudTrail, waitForAlarms, SAMPLE_ACTOR, SAMPLE_IP } from '../alarms/detectors-support.js';
import { openEncrypted } from '../../src/storage/sqlite.js';
import { Keyring } from '../../src/crypto/keyring.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples');

// Everything this process writes to "the temporary directory" (the data directory, SQLite's
// temporary files if any, a worker's) goes under a directory of its own, so the scan sees all of
// it and nothing of other tests running at the same time. SQLite reads TMPDIR when it needs a
// temporary file, Node's os.tmpdir() on each call.
const REAL_TMP = tmpdir();
const ROOT_TMP = mkdtempSync(join(REAL_TMP, 'custody-scan-'));
process.env['TMPDIR'] = ROOT_TMP;
after(() => rmSync(ROOT_TMP, { recursive: true, force: true }));
// The vault's new keyring is sealed under this passphrase (Keyring.create reads it).
const PASSPHRASE = 'plaintext scan passphrase 2026';
process.env['CUSTODY_PASSPHRASE'] = PASSPHRASE;

// ---- the samples and their needles --------------------------------------------------------

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...walk(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

const dataFiles = walk(SAMPLES)
  .map((p) => relative(SAMPLES, p))
  .filter((r) => !r.startsWith('LICENSES/') && !r.startsWith('edge-cases/') && r !== 'SOURCES.md');
const isFirehoseBody = (rel: string): boolean => rel.startsWith('cloudwatch-subscription/firehose_http_');
const isGzip = (b: Buffer): boolean => b.length > 2 && b[0] === 0x1f && b[1] === 0x8b;

/** The texts a sample file delivers: its body (inflated) and the payloads nested in it (CloudWatch Logs, Firehose). */
function texts(raw: Buffer): string[] {
  const body = isGzip(raw) ? gunzipSync(raw) : raw;
  const out = [body.toString('utf8')];
  const nested = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(nested);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const data = (o['awslogs'] as { data?: unknown } | undefined)?.data ?? o['data'];
      if (typeof data === 'string' && data.length > 16) {
        const d = Buffer.from(data, 'base64');
        out.push((isGzip(d) ? gunzipSync(d) : d).toString('utf8'));
      }
      for (const x of Object.values(o)) if (x && typeof x === 'object') nested(x);
    }
  };
  try {
    nested(JSON.parse(out[0]!));
  } catch {
    // Not one JSON document (NDJSON, text lines): nothing nested.
  }
  return out;
}

/** Region and availability-zone names: log names are public (checkpoint origins, directory names). */
const REGION = /^[a-z]{2}(-[a-z]+){1,2}-\d{1,2}[a-z]?$/;
/** AWS service endpoints (s3.amazonaws.com): the vocabulary of the default rules, not record content. */
const SERVICE = /^[a-z0-9.-]*\.amazonaws\.com$/;
const STRING_LITERAL = /"((?:[^"\\\n]|\\.){10,200})"(?!\s*:)/g;

/**
 * Needles of one text: JSON string values (raw and unescaped) and long words of text lines —
 * only distinctive ones: with a digit (ids, addresses, ARNs, times, request ids) or a phrase of
 * 20 bytes or more. A bare word like "CloudTrail" is not record content: the vault's own rule
 * texts hold it too.
 */
function needlesOf(text: string, into: Set<string>): void {
  const add = (s: string): void => {
    const n = Buffer.byteLength(s);
    if (n >= 8 && !REGION.test(s) && !SERVICE.test(s) && (/\d/.test(s) || (n >= 20 && /\s/.test(s)))) into.add(s);
  };
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    for (const m of text.matchAll(STRING_LITERAL)) {
      const raw = m[1]!;
      add(raw);
      try {
        const value = JSON.parse(`"${raw}"`) as string;
        if (value.length >= 10) add(value);
      } catch {
        // A literal the regex cut oddly: its raw form is enough.
      }
    }
    return;
  }
  for (const line of text.split('\n')) {
    for (const w of line.split(/[\s"'[\]()<>,;{}]+/)) {
      const n = Buffer.byteLength(w);
      if (n >= 10 || (n >= 8 && /[^A-Za-z]/.test(w))) add(w);
    }
  }
}

function sampleNeedles(): { needles: Buffer[]; fromGzip: number } {
  const set = new Set<string>();
  for (const rel of dataFiles) for (const t of texts(readFileSync(join(SAMPLES, rel)))) needlesOf(t, set);
  const needles = [...set].map((s) => Buffer.from(s, 'utf8'));
  let fromGzip = 0;
  for (const rel of dataFiles) {
    const raw = readFileSync(join(SAMPLES, rel));
    if (!isGzip(raw) || raw.length < 200) continue;
    for (const at of [0.25, 0.5, 0.75]) {
      const off = Math.floor(raw.length * at);
      needles.push(raw.subarray(off, off + 32));
      fromGzip++;
    }
  }
  return { needles, fromGzip };
}

// ---- the scanner ---------------------------------------------------------------------------

/**
 * Finds any of many needles (8 bytes or longer) in many files: every 8-byte window of the data
 * is hashed and looked up (a bit filter first, then the needles with that first-8-byte hash),
 * so the cost is one pass over the bytes whatever the number of needles.
 */
class NeedleScanner {
  private readonly filter = new Uint8Array(1 << 21); // 2^24 bits
  private readonly byHash = new Map<number, Buffer[]>();

  constructor(readonly needles: Buffer[]) {
    for (const n of needles) {
      assert.ok(n.length >= 8, 'needles are 8 bytes or longer');
      const h = NeedleScanner.hash(n, 0);
      this.filter[(h >>> 3) & 0x1fffff]! |= 1 << (h & 7);
      const list = this.byHash.get(h);
      if (list) list.push(n);
      else this.byHash.set(h, [n]);
    }
  }

  private static hash(b: Buffer, i: number): number {
    return (b.readUInt32LE(i) ^ Math.imul(b.readUInt32LE(i + 4), 0x9e3779b1)) >>> 0 & 0xffffff;
  }

  /** The needles found in `data`, each with where. */
  scan(data: Buffer): Array<{ needle: string; at: number }> {
    const found: Array<{ needle: string; at: number }> = [];
    const end = data.length - 8;
    for (let i = 0; i <= end; i++) {
      const h = NeedleScanner.hash(data, i);
      if ((this.filter[h >>> 3]! & (1 << (h & 7))) === 0) continue;
      for (const n of this.byHash.get(h) ?? []) {
        if (i + n.length <= data.length && data.compare(n, 0, n.length, i, i + n.length) === 0) found.push({ needle: n.toString('utf8'), at: i });
      }
    }
    return found;
  }
}

interface ScanReport {
  files: Map<string, number>;
  bytes: number;
  hits: Array<{ file: string; needle: string; at: number }>;
}

function scanTree(dir: string, scanner: NeedleScanner): ScanReport {
  const report: ScanReport = { files: new Map(), bytes: 0, hits: [] };
  for (const f of walk(dir)) {
    let data: Buffer;
    try {
      data = readFileSync(f);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed while we walked (a temp file renamed into place)
      throw e;
    }
    report.files.set(relative(dir, f), data.length);
    report.bytes += data.length;
    for (const h of scanner.scan(data)) report.hits.push({ file: relative(dir, f), ...h });
  }
  return report;
}

function assertClean(what: string, r: ScanReport, needles: number): void {
  const byFile = new Map<string, Set<string>>();
  for (const h of r.hits) {
    let s = byFile.get(h.file);
    if (!s) byFile.set(h.file, (s = new Set()));
    s.add(h.needle.slice(0, 60));
  }
  const sample = [...byFile].map(([f, s]) => `${f}: ${s.size} distinct, e.g. ${[...s].slice(0, 4).map((x) => JSON.stringify(x)).join(', ')}`);
  console.log(`${what}: scanned ${r.files.size} files, ${r.bytes.toLocaleString('en-US')} bytes, for ${needles.toLocaleString('en-US')} needles (${(r.bytes * needles).toExponential(2)} needle×bytes): ${r.hits.length} found`);
  assert.equal(r.hits.length, 0, `${what}: record content in plaintext:\n${sample.join('\n')}`);
}

// ---- the tests ------------------------------------------------------------------------------

const { needles, fromGzip } = sampleNeedles();
const scanner = new NeedleScanner(needles);

test('the scanner finds a needle in a plaintext SQLite file and its WAL, and none in an encrypted one', () => {
  const dir = mkdtempSync(join(REAL_TMP, 'custody-scan-self-'));
  try {
    assert.ok(needles.length > 10_000, `${needles.length} needles from the samples (${fromGzip} from gzip files)`);
    for (const n of [SAMPLE_ACTOR, SAMPLE_IP]) assert.ok(needles.some((x) => x.toString() === n), `${n} is a needle`);
    const needle = needles.find((n) => n.toString() === SAMPLE_ACTOR)!;
    const rows = Array.from({ length: 200 }, (_, i) => `{"i":${i},"actor":"${needle.toString()}"}`);

    const plain = new Database(join(dir, 'plain.db'));
    plain.pragma('journal_mode = WAL');
    plain.exec('CREATE TABLE t (v TEXT)');
    for (const r of rows) plain.prepare('INSERT INTO t VALUES (?)').run(r);
    const walHits = scanTree(dir, scanner).hits.filter((h) => h.file === 'plain.db-wal');
    assert.ok(walHits.length > 0, 'found in the WAL of a plaintext database');
    plain.close();
    const mainHits = scanTree(dir, scanner).hits.filter((h) => h.file === 'plain.db');
    assert.ok(mainHits.some((h) => h.needle === SAMPLE_ACTOR), 'found in a plaintext database file');
    rmSync(join(dir, 'plain.db'));

    const enc = openEncrypted(join(dir, 'enc.db'), { bytes: Buffer.alloc(32, 7), source: 'a test key' }, { what: 'a test database' });
    enc.pragma('journal_mode = WAL');
    enc.exec('CREATE TABLE t (v TEXT)');
    for (const r of rows) enc.prepare('INSERT INTO t VALUES (?)').run(r);
    const open = scanTree(dir, scanner);
    assert.ok(open.files.has('enc.db-wal'), 'the encrypted database has a WAL while open');
    assert.deepEqual(open.hits, [], 'nothing in the encrypted database or its WAL');
    enc.close();
    assert.deepEqual(scanTree(dir, scanner).hits, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('after every sample is ingested, indexed, searched, alarmed on and exported, no stored byte holds record content in plaintext', { timeout: 120_000 }, async () => {
  const v: InProcVault = await startInProc({ search: true, checkpointIntervalMs: 20 });
  const dataDir = v.dataDir;
  let running = true;
  try {
    assert.ok(dataDir.startsWith(ROOT_TMP), 'the data directory is under the scanned temporary directory');
    // 1. Every sample file, as production receives it.
    let stored = 0;
    for (const rel of dataFiles) {
      const raw = readFileSync(join(SAMPLES, rel));
      if (isFirehoseBody(rel)) {
        const reqId = (JSON.parse(raw.toString('utf8')) as { requestId: string }).requestId;
        const r = await v.app.inject({
          method: 'POST',
          url: '/firehose',
          headers: { 'x-amz-firehose-access-key': v.tokens.writer, 'x-amz-firehose-request-id': reqId, 'x-amz-firehose-protocol-version': '1.0', 'content-type': 'application/json' },
          payload: raw,
        });
        assert.equal(r.statusCode, 200, `${rel}: ${r.body}`);
        continue;
      }
      const r = await v.app.inject({
        method: 'POST',
        url: `/v1/ingest?source=auto&name=${encodeURIComponent(rel)}&object=${encodeURIComponent('samples/' + rel)}`,
        headers: bearer(v.tokens.writer),
        payload: raw,
      });
      assert.equal(r.statusCode, 200, `${rel}: ${r.body}`);
      stored += r.json<{ stored: number }>().stored;
    }
    assert.ok(stored > 15_000, `${stored} records stored`);

    // 2. Alarms that carry record content: a CloudTrail StopLogging by the sample's user, from its address.
    const stop = callRecord('cloudtrail.amazonaws.com', 'StopLogging', { name: 'arn:aws:cloudtrail:sa-east-1:974349055189:trail/management-events' });
    assert.equal((await ingestCloudTrail(v, [stop])).stored, 1);
    const raised = await waitForAlarms(v, (l) => l.some((a) => a.rule === 'log-off.cloudtrail.StopLogging'), 'StopLogging alarm', 20_000);
    const alarm = JSON.stringify(raised.find((a) => a.rule === 'log-off.cloudtrail.StopLogging'));
    assert.ok(alarm.includes(SAMPLE_ACTOR) && alarm.includes(SAMPLE_IP), 'the alarm in custody.db names the actor and the address (record content)');

    // 3. The index holds every record (its fields and words are record content too).
    for (const l of v.vault.logRows) {
      const seq = v.vault.sequencer(l.name);
      await seq.waitForCheckpoint(seq.sequencedSize);
    }
    await v.search!.whenIndexed({ timeoutMs: 60_000 });
    const q = `actor:${SAMPLE_ACTOR}`;
    const s = await v.app.inject({ method: 'GET', url: `/v1/search?q=${encodeURIComponent(q)}&limit=5`, headers: bearer(v.tokens.auditor) });
    assert.equal(s.statusCode, 200, s.body);
    assert.ok(s.json<{ total: number }>().total > 0, 'the index finds the sample actor');

    // 4. An evidence bundle. It leaves the vault in plaintext by design (the auditor reads it); it is not kept.
    const ex = await v.app.inject({ method: 'GET', url: `/v1/export?q=${encodeURIComponent(q)}&limit=5000`, headers: bearer(v.tokens.auditor) });
    assert.equal(ex.statusCode, 200, ex.body.slice(0, 300));
    assert.ok(ex.rawPayload.length > 1000, 'a bundle came back');

    // 5. Scanned while running: WAL files and the journal are there too.
    const live = scanTree(ROOT_TMP, scanner);
    for (const f of ['custody.db', 'dedupe.db', 'search.db']) assert.ok([...live.files.keys()].some((k) => k.endsWith(`/${f}`)), `${f} was scanned`);
    assert.ok([...live.files.keys()].some((k) => k.endsWith('.db-wal')), 'WAL files were scanned');
    assertClean('while running', live, needles.length);

    // 6. Stopped cleanly (WAL checkpointed into the files), scanned again.
    await v.app.close();
    await v.services.close();
    await v.search?.close();
    await v.vault.close();
    running = false;
    const stopped = scanTree(ROOT_TMP, scanner);
    assert.ok(stopped.bytes > 1_000_000, `${stopped.bytes} bytes stored`);
    assertClean('after a clean stop', stopped, needles.length);

    // 7. The keyring is sealed, and no key of it is anywhere in the clear (keyring.json included).
    const keyringPath = join(dataDir, 'keyring.json');
    assert.ok(stopped.files.has(relative(ROOT_TMP, keyringPath)), 'keyring.json was scanned');
    assert.equal((JSON.parse(readFileSync(keyringPath, 'utf8')) as { protection?: string }).protection, 'passphrase');
    const ring = Keyring.load(keyringPath, { passphrase: PASSPHRASE });
    const keys: Buffer[] = [];
    for (const log of ring.logNames) {
      const k = ring.forLog(log).exportForWorker();
      keys.push(k.signingSeed, k.blobNameKey, ...k.keks.map((x) => x.key));
    }
    for (const p of ring.vaultKeyPurposes) keys.push(ring.vaultKey(p));
    assert.ok(ring.vaultKeyPurposes.includes('sqlite-search') && keys.length >= 9, `${keys.length} keys`);
    const keyScanner = new NeedleScanner(keys.flatMap((k) => [Buffer.from(k.toString('base64')), Buffer.from(k.toString('hex')), k]));
    assert.ok(keyScanner.scan(Buffer.from(`"k": "${keys[3]!.toString('base64')}"`)).length > 0, 'the key scanner finds a key in the clear');
    assertClean('keys of the keyring', scanTree(ROOT_TMP, keyScanner), keys.length * 3);
  } finally {
    if (running) await v.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
