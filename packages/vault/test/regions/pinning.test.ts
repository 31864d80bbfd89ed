/**
 * Region pinning, proven by inspecting storage (issue 6, item 2): "a record for region A never
 * touches region B's storage or key".
 *
 * A vault in auto region mode (the embedded default) takes every sample of ../shared/samples
 * the way production does (POST /v1/ingest, Firehose bodies through /firehose); the region-
 * bearing AWS sources create several region logs. Then, with the vault stopped, every file
 * under <data>/logs/<log>/ is read straight from disk and opened with THAT log's keys only
 * (PosixLogStore + keyring.forLog, storage/journal.ts for the journal):
 *
 *  (a) every envelope in log R names region R and R's origin;
 *  (b) every record whose content names an AWS region A (read here with plain JSON.parse) is in
 *      log A; the identifiers of region A's records (CloudTrail eventID, GuardDuty and Macie
 *      finding ids, Config item ARNs — expected per region from the sample files, computed here)
 *      appear in no other log's decrypted bundles, blobs or journal, and in no log's directory
 *      as raw bytes; no record's bytes are stored in two logs;
 *  (c) log B's keys open none of log A's sealed bundles, blobs or journal segments (each tried);
 *  (d) the logs' keys are pairwise distinct (signing seeds, KEKs, blob-name keys);
 *  (e) the journal segments of log B, opened with B's keys, hold only B's entries.
 *
 * Each expected region must have got its records, so routing everything to one log, or to the
 * wrong one, fails the test. Two records too large for an entry (sealed blobs) are added, as the
 * samples hold none.
 *
 * What is vault-wide, and checked as such (docs/DESIGN.md "Regions"): search.db indexes the
 * records of every region; the vault's own audit log (and custody.db's alarms) quote the record
 * an alarm fired on, whatever its region — the test allows record identifiers in the audit log
 * only inside alarm.raised / alarm.repeated events.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { join, relative, dirname } from 'node:path';
import { decodeBundle, parseTilePath } from '@custody/verify';
import { startInProc, bearer, type InProcVault } from '../support/inproc.js';
import { ROOT } from '../support/server.js';
import { Keyring, type LogKeys } from '../../src/crypto/keyring.js';
import { PosixLogStore } from '../../src/storage/posix.js';
import { Journal } from '../../src/storage/journal.js';
import { parseEntry } from '../../src/log/entry.js';
import { dataDirDbKey, openEncrypted } from '../../src/storage/sqlite.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples');
const AWS_REGION = /^[a-z]{2}(-[a-z]+){1,2}-[0-9]{1,2}$/;

function walk(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
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
const inflate = (b: Buffer): Buffer => (b.length > 2 && b[0] === 0x1f && b[1] === 0x8b ? gunzipSync(b) : b);

// ---- what the samples say, read here with plain JSON.parse -------------------------------------

type Kind = 'cloudtrail' | 'guardduty' | 'macie' | 'config';

/** The JSON objects of a sample file (a document with Records/configurationItems, an array, or NDJSON). */
function objectsOf(raw: Buffer): Array<Record<string, unknown>> {
  const text = inflate(raw).toString('utf8');
  try {
    const v = JSON.parse(text) as unknown;
    if (Array.isArray(v)) return v as Array<Record<string, unknown>>;
    const o = v as Record<string, unknown>;
    if (Array.isArray(o['Records'])) return o['Records'] as Array<Record<string, unknown>>;
    if (Array.isArray(o['configurationItems'])) return o['configurationItems'] as Array<Record<string, unknown>>;
    return [o];
  } catch {
    return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * A record's own region claim and identifier, read independently of src/ingest: CloudTrail
 * (awsRegion, eventID), Config items (awsRegion, ARN; "global" is no region), GuardDuty and
 * Macie findings (region, id), also inside an EventBridge envelope (detail; named by the event id).
 */
function claimOf(o: Record<string, unknown>, kind: Kind): { region?: string; id?: string } {
  if (kind === 'cloudtrail') return { region: str(o['awsRegion']), id: str(o['eventID']) };
  if (kind === 'config') {
    const region = str(o['awsRegion']);
    return region === 'global' ? {} : { region, id: str(o['arn']) ?? str(o['ARN']) };
  }
  // In an EventBridge envelope the event's id names the record (a redelivered event is one
  // record even if its finding was updated); a bare finding is named by its own id.
  const d = o['detail'] && typeof o['detail'] === 'object' ? (o['detail'] as Record<string, unknown>) : o;
  return { region: str(d['region']) ?? str(o['region']), id: str(o['id']) };
}

/** Per region and kind, the identifiers of the records that name that region. */
function expectedFromSamples(): Map<string, Map<Kind, Set<string>>> {
  const out = new Map<string, Map<Kind, Set<string>>>();
  for (const rel of dataFiles) {
    const kind = rel.split('/')[0] as Kind;
    if (!['cloudtrail', 'guardduty', 'macie', 'config'].includes(kind)) continue;
    for (const o of objectsOf(readFileSync(join(SAMPLES, rel)))) {
      if (kind === 'config' && !o['configurationItemCaptureTime']) continue; // a rule invocation, not an item
      const { region, id } = claimOf(o, kind);
      if (!region || !id || !AWS_REGION.test(region)) continue;
      let r = out.get(region);
      if (!r) out.set(region, (r = new Map()));
      let s = r.get(kind);
      if (!s) r.set(kind, (s = new Set()));
      s.add(id);
    }
  }
  return out;
}

/**
 * Records too large for one entry are stored as sealed blobs (the samples hold none): one such
 * CloudTrail event for a region the samples do not name, and one for a region they do.
 */
function largeEvents(): Array<{ region: string; eventID: string; file: Buffer; name: string }> {
  return ['eu-north-1', 'us-east-1'].map((region, i) => {
    const eventID = `0f5e3c2a-pin${i}-4b1d-9c7e-${randomBytes(6).toString('hex')}`;
    const record = {
      eventVersion: '1.08',
      userIdentity: { type: 'IAMUser', accountId: '111111111111', userName: 'pinning-test' },
      eventTime: '2024-01-01T00:00:00Z',
      eventSource: 's3.amazonaws.com',
      eventName: 'PutBucketPolicy',
      awsRegion: region,
      sourceIPAddress: '192.0.2.7',
      requestParameters: { bucketName: `pinning-${i}`, policy: randomBytes(60_000).toString('base64') },
      eventID,
      eventType: 'AwsApiCall',
      recipientAccountId: '111111111111',
    };
    const name = `AWSLogs/111111111111/CloudTrail/${region}/2024/01/01/111111111111_CloudTrail_${region}_20240101T0000Z_pinning${i}.json`;
    return { region, eventID, file: Buffer.from(JSON.stringify({ Records: [record] })), name };
  });
}

const KIND_OF_SOURCE: Record<string, Kind> = { 'aws.cloudtrail': 'cloudtrail', 'aws.guardduty': 'guardduty', 'aws.macie': 'macie', 'aws.config': 'config' };

// ---- the scanner: many needles, one pass over the bytes ---------------------------------------

class NeedleScanner {
  private readonly byPrefix = new Map<string, Array<{ needle: Buffer; owner: string }>>();
  constructor(needles: Array<{ needle: Buffer; owner: string }>) {
    for (const n of needles) {
      assert.ok(n.needle.length >= 8);
      const k = n.needle.subarray(0, 8).toString('latin1');
      const l = this.byPrefix.get(k);
      if (l) l.push(n);
      else this.byPrefix.set(k, [n]);
    }
  }
  /** The needles found in `data`, with their owners. */
  scan(data: Buffer): Array<{ needle: string; owner: string }> {
    const found: Array<{ needle: string; owner: string }> = [];
    const text = data.toString('latin1');
    for (let i = 0; i + 8 <= text.length; i++) {
      const list = this.byPrefix.get(text.slice(i, i + 8));
      if (!list) continue;
      for (const n of list) if (i + n.needle.length <= data.length && data.compare(n.needle, 0, n.needle.length, i, i + n.needle.length) === 0) found.push({ needle: n.needle.toString('utf8'), owner: n.owner });
    }
    return found;
  }
}

// ---- reading a log from disk -------------------------------------------------------------------

interface LogOnDisk {
  name: string;
  origin: string;
  region: string;
  kind: string;
  dir: string;
  keys: LogKeys;
  store: PosixLogStore;
  size: number;
  /** Bundle files as stored: index, width. */
  bundles: Array<{ index: number; width: number }>;
  entries: Array<{ index: number; region: string; origin: string; source: string; record: Buffer; blob?: string }>;
  blobs: string[];
  /** Everything decrypted from the log's own objects: bundles, blobs, journal. */
  plaintext: Buffer[];
  journalEntries: number;
  /** The records of the journal's entries. */
  journalRecords: Buffer[];
}

function splitEntries(plain: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < plain.length; ) {
    const n = plain.readUInt16BE(off);
    out.push(plain.subarray(off + 2, off + 2 + n));
    off += 2 + n;
  }
  return out;
}

async function readLog(dataDir: string, keyring: Keyring, row: { name: string; origin: string; region: string; kind: string }): Promise<LogOnDisk> {
  const dir = join(dataDir, 'logs', row.name);
  const keys = keyring.forLog(row.name);
  const store = new PosixLogStore(dir, row.origin, keys);
  const cp = await store.readCheckpoint();
  assert.ok(cp, `log ${row.name} has a checkpoint`);
  const size = Number(cp.split('\n')[1]);
  const log: LogOnDisk = { ...row, dir, keys, store, size, bundles: [], entries: [], blobs: [], plaintext: [], journalEntries: 0, journalRecords: [] };
  // Every bundle file there is, opened with this log's keys.
  const treeDir = join(dir, 'tree');
  for (const f of walk(join(treeDir, 'tile', 'entries'))) {
    if (/\.tmp$/.test(f)) continue;
    const t = parseTilePath(relative(treeDir, f));
    assert.equal(t.level, 'entries');
    log.bundles.push({ index: t.index, width: t.width });
    const plain = await store.readBundle(t.index, t.width);
    assert.ok(plain, `bundle ${relative(dataDir, f)} opens with its log's keys`);
    log.plaintext.push(plain);
    decodeBundle(plain, t.width).forEach((e, i) => {
      const p = parseEntry(e);
      log.entries.push({ index: t.index * 256 + i, region: p.region, origin: p.origin, source: p.source, record: p.record ?? Buffer.alloc(0), ...(p.blob ? { blob: p.blob.sha256 } : {}) });
      if (p.blob) log.blobs.push(p.blob.sha256);
    });
  }
  // A partial bundle and the full one that replaced it hold the same entries: keep one of each index.
  const seen = new Set<number>();
  log.entries = log.entries.filter((e) => (seen.has(e.index) ? false : (seen.add(e.index), true)));
  assert.equal(log.entries.length, size, `log ${row.name}: its bundles hold exactly its ${size} entries`);
  // Blobs: each file is one referenced by an entry, opened with this log's keys.
  const blobFiles = walk(join(dir, 'blobs')).map((f) => relative(join(dir, 'blobs'), f).split('/').pop()!);
  const named = new Set(log.blobs.map((sha) => store.blobFileName(sha)));
  for (const f of blobFiles) assert.ok(named.has(f), `blob ${f} of ${row.name} is referenced by one of its entries`);
  for (const sha of new Set(log.blobs)) {
    const rec = await store.readBlob(sha);
    log.plaintext.push(rec);
    for (const e of log.entries) if (e.blob === sha) e.record = rec;
  }
  // The journal, on a copy (opening it may cut a torn tail), with this log's keys.
  const jdir = join(dir, 'journal');
  if (existsSync(jdir) && readdirSync(jdir).length > 0) {
    const copy = mkdtempSync(join(tmpdir(), 'custody-pin-journal-'));
    try {
      cpSync(jdir, copy, { recursive: true });
      const { journal, batches } = await Journal.open(copy, () => keys.activeKek, keys.lookup, row.origin);
      await journal.close();
      for (const b of batches) {
        log.plaintext.push(b.plain);
        for (const e of splitEntries(b.plain)) {
          const p = parseEntry(e);
          assert.equal(p.region, row.region, `journal of ${row.name}: every entry names its region`);
          assert.equal(p.origin, row.origin);
          log.journalEntries++;
          if (p.record) log.journalRecords.push(p.record);
        }
      }
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  }
  return log;
}

// ---- the test ----------------------------------------------------------------------------------

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((f) => f()));

test('every record stays in the log, keys and directory of its region: proven from the bytes on disk', { timeout: 300_000 }, async () => {
  const expected = expectedFromSamples();
  assert.ok(expected.size >= 6, `the samples name ${expected.size} regions: ${[...expected.keys()].join(', ')}`);
  const large = largeEvents();
  for (const l of large) {
    let r = expected.get(l.region);
    if (!r) expected.set(l.region, (r = new Map()));
    let s = r.get('cloudtrail');
    if (!s) r.set('cloudtrail', (s = new Set()));
    s.add(l.eventID);
  }

  // 1. Ingest every sample into a vault in auto region mode, with its search index.
  const v: InProcVault = await startInProc({ search: true, checkpointIntervalMs: 20 });
  const dataDir = v.dataDir;
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  let rows: Array<{ name: string; origin: string; region: string; kind: string }>;
  try {
    assert.equal(v.vault.regionMode, 'auto');
    for (const rel of dataFiles) {
      const raw = readFileSync(join(SAMPLES, rel));
      const r = isFirehoseBody(rel)
        ? await v.app.inject({
            method: 'POST',
            url: '/firehose',
            headers: { 'x-amz-firehose-access-key': v.tokens.writer, 'x-amz-firehose-request-id': (JSON.parse(raw.toString('utf8')) as { requestId: string }).requestId, 'x-amz-firehose-protocol-version': '1.0', 'content-type': 'application/json' },
            payload: raw,
          })
        : await v.app.inject({ method: 'POST', url: `/v1/ingest?source=auto&name=${encodeURIComponent(rel)}&object=${encodeURIComponent('samples/' + rel)}`, headers: bearer(v.tokens.writer), payload: raw });
      assert.equal(r.statusCode, 200, `${rel}: ${r.body.slice(0, 300)}`);
    }
    for (const l of large) {
      const r = await v.app.inject({ method: 'POST', url: `/v1/ingest?source=auto&name=${encodeURIComponent(l.name)}&object=${encodeURIComponent(l.name)}`, headers: bearer(v.tokens.writer), payload: l.file });
      assert.equal(r.statusCode, 200, r.body.slice(0, 300));
      assert.equal(r.json<{ stored: number }>().stored, 1);
    }
    for (const l of v.vault.logRows) {
      const seq = v.vault.sequencer(l.name);
      await seq.waitForCheckpoint(seq.sequencedSize);
    }
    await v.search!.whenIndexed({ timeoutMs: 120_000 });
    rows = v.vault.logRows.map((r) => ({ name: r.name, origin: r.origin, region: r.region, kind: r.kind }));
  } finally {
    // Stopped, not removed: what follows reads the data directory.
    await v.app.close();
    await v.services.close();
    await v.search?.close();
    await v.vault.close();
  }

  // 2. Read every log from disk with its own keys.
  const keyring = Keyring.load(join(dataDir, 'keyring.json'));
  const logs: LogOnDisk[] = [];
  for (const row of rows) logs.push(await readLog(dataDir, keyring, row));
  const byName = new Map(logs.map((l) => [l.name, l]));
  const regionLogs = logs.filter((l) => l.kind === 'region');
  assert.deepEqual(readdirSync(join(dataDir, 'logs')).sort(), rows.map((r) => r.name).sort(), 'one directory per log, nothing else');

  // (a) Envelopes name their log's region and origin.
  for (const l of logs) {
    for (const e of l.entries) {
      assert.equal(e.region, l.region, `${l.name}[${e.index}] names region ${e.region}`);
      assert.equal(e.origin, l.origin);
    }
  }

  // Every expected region got its records, in its own log.
  const perRegion: Record<string, Record<string, number>> = {};
  for (const [region, kinds] of expected) {
    const log = regionLogs.find((l) => l.region === region);
    assert.ok(log, `region ${region} has a log (its records were not routed elsewhere)`);
    assert.equal(log.name, region);
    const ids = new Map<Kind, Set<string>>();
    for (const e of log.entries) {
      const kind = KIND_OF_SOURCE[e.source];
      if (!kind) continue;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(e.record.toString('utf8')) as Record<string, unknown>;
      } catch {
        continue;
      }
      const id = claimOf(o, kind).id;
      if (!id) continue;
      let s = ids.get(kind);
      if (!s) ids.set(kind, (s = new Set()));
      s.add(id);
    }
    for (const [kind, want] of kinds) {
      const have = ids.get(kind) ?? new Set<string>();
      const missing = [...want].filter((id) => !have.has(id));
      assert.deepEqual(missing, [], `${kind} records of ${region} missing from log ${region}`);
      (perRegion[region] ??= {})[kind] = want.size;
    }
  }

  // (b) Each record's own region claim matches its log; no record's bytes in two logs.
  const claimsChecked: Record<string, number> = {};
  const owners = new Map<string, string>();
  for (const l of logs) {
    for (const e of l.entries) {
      if (l.kind === 'region') {
        const h = createHash('sha256').update(e.record).digest('hex');
        const other = owners.get(h);
        assert.ok(other === undefined || other === l.name, `a record of ${l.name}[${e.index}] is also stored in ${other}`);
        owners.set(h, l.name);
      }
      const kind = KIND_OF_SOURCE[e.source];
      if (!kind) continue;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(e.record.toString('utf8')) as Record<string, unknown>;
      } catch {
        continue;
      }
      const claim = claimOf(o, kind).region;
      if (claim === undefined || !AWS_REGION.test(claim)) continue;
      assert.equal(l.region, claim, `${l.name}[${e.index}] (${e.source}) names region ${claim}`);
      claimsChecked[claim] = (claimsChecked[claim] ?? 0) + 1;
    }
  }

  // Needles: the identifiers of each region's records, owned by that region.
  const needles: Array<{ needle: Buffer; owner: string }> = [];
  for (const [region, kinds] of expected) for (const ids of kinds.values()) for (const id of ids) if (Buffer.byteLength(id) >= 8) needles.push({ needle: Buffer.from(id), owner: region });
  const scanner = new NeedleScanner(needles);
  let ownHits = 0;
  let alarmExcerpts = 0;
  for (const l of logs) {
    if (l.kind === 'audit') {
      // The vault's own audit log is vault-wide: an alarm on a record carries excerpts of it
      // (its details: eventID, actor, address …), whatever the record's region. Nothing else may.
      for (const rec of [...l.entries.map((e) => e.record), ...l.journalRecords]) {
        const hits = scanner.scan(rec);
        if (hits.length === 0) continue;
        const type = String((JSON.parse(rec.toString('utf8')) as { type?: unknown }).type);
        assert.match(type, /^alarm\.(raised|repeated)$/, `an audit event of type ${type} holds record identifiers: ${hits.map((h) => h.needle).join(', ')}`);
        alarmExcerpts++;
      }
      continue;
    }
    // Decrypted: bundles, blobs and journal of log l hold no other region's identifiers.
    const foreign: string[] = [];
    for (const p of l.plaintext) {
      for (const h of scanner.scan(p)) {
        if (h.owner === l.name) ownHits++;
        else foreign.push(`${h.owner}:${h.needle}`);
      }
    }
    assert.deepEqual([...new Set(foreign)].slice(0, 10), [], `decrypted contents of log ${l.name} hold records of other regions`);
    // Raw: no identifier of any region in plaintext in l's directory (sealed everywhere).
    for (const f of walk(l.dir)) {
      const hits = scanner.scan(readFileSync(f));
      assert.deepEqual(hits.slice(0, 5), [], `${relative(dataDir, f)} holds record identifiers in plaintext`);
    }
  }
  assert.ok(ownHits >= needles.length, `each region's identifiers were found in its own log (${ownHits} hits for ${needles.length} needles): the scan can find them`);

  // (c) Another log's keys open none of a log's sealed objects.
  let crossTries = 0;
  for (const a of regionLogs) {
    for (const b of logs) {
      if (a === b) continue;
      const wrong = new PosixLogStore(a.dir, a.origin, b.keys);
      for (const t of a.bundles) {
        await assert.rejects(wrong.readBundle(t.index, t.width), (e: { code?: string }) => e.code === 'STORAGE_CORRUPT' || e.code === 'KEYRING', `${b.name}'s keys must not open bundle ${t.index}/${t.width} of ${a.name}`);
        crossTries++;
      }
      for (const sha of new Set(a.blobs)) {
        // Put A's sealed blob where B's blob-name key would look for it, then try B's keys.
        const tmp = mkdtempSync(join(tmpdir(), 'custody-pin-blob-'));
        try {
          const asB = new PosixLogStore(tmp, a.origin, b.keys);
          mkdirSync(dirname(asB.blobPath(sha)), { recursive: true });
          writeFileSync(asB.blobPath(sha), readFileSync(a.store.blobPath(sha)));
          await assert.rejects(asB.readBlob(sha), (e: { code?: string }) => e.code === 'STORAGE_CORRUPT' || e.code === 'KEYRING');
          crossTries++;
        } finally {
          rmSync(tmp, { recursive: true, force: true });
        }
      }
      const jdir = join(a.dir, 'journal');
      if (existsSync(jdir) && readdirSync(jdir).some((n) => n.endsWith('.wal'))) {
        const copy = mkdtempSync(join(tmpdir(), 'custody-pin-journal-'));
        try {
          cpSync(jdir, copy, { recursive: true });
          await assert.rejects(Journal.open(copy, () => b.keys.activeKek, b.keys.lookup, a.origin), (e: { code?: string }) => e.code === 'STORAGE_CORRUPT' || e.code === 'KEYRING', `${b.name}'s keys must not open the journal of ${a.name}`);
          crossTries++;
        } finally {
          rmSync(copy, { recursive: true, force: true });
        }
      }
    }
  }

  // (d) Every key of every log is its own.
  const material = new Map<string, string>();
  for (const l of logs) {
    const k = l.keys.exportForWorker();
    const all: Array<[string, Buffer]> = [['signing seed', k.signingSeed], ['blob-name key', k.blobNameKey], ...k.keks.map((x): [string, Buffer] => [`KEK ${x.id}`, x.key])];
    for (const [what, key] of all) {
      const hex = key.toString('hex');
      assert.equal(material.get(hex), undefined, `${l.name}'s ${what} is also ${material.get(hex)}`);
      material.set(hex, `${l.name}'s ${what}`);
    }
  }

  for (const l of large) assert.ok(byName.get(l.region)!.blobs.length > 0, `the large record of ${l.region} is a blob of its log`);

  // (e) The journals were not empty: the check above looked at real entries.
  for (const l of regionLogs) if (l.size > 0) assert.ok(l.journalEntries > 0, `the journal of ${l.name} holds its entries (${l.journalEntries})`);

  // The vault-wide files. search.db indexes every region's records in one file (under the
  // vault key "sqlite-search"): strict residency needs one vault per region or no index.
  const search = openEncrypted(join(dataDir, 'search.db'), dataDirDbKey(keyring, dataDir, 'search'), { what: 'the search index', readonly: true });
  let indexedRegions: string[];
  try {
    indexedRegions = (search.prepare('SELECT DISTINCT l.name AS name FROM entries e JOIN logs l ON l.id = e.log').all() as Array<{ name: string }>).map((r) => r.name);
  } finally {
    search.close();
  }
  assert.ok(regionLogs.filter((l) => l.size > 0).every((l) => indexedRegions.includes(l.name)), `search.db is vault-wide: it indexes ${indexedRegions.join(', ')}`);

  const table = regionLogs.map((l) => `  ${l.name.padEnd(16)} ${String(l.size).padStart(6)} entries  ${String(l.bundles.length).padStart(3)} bundle files  ${String(new Set(l.blobs).size).padStart(3)} blobs  ${String(l.journalEntries).padStart(6)} journal entries  claims checked ${claimsChecked[l.region] ?? 0}  ids ${JSON.stringify(perRegion[l.region] ?? {})}`);
  console.log(`region pinning: ${regionLogs.length} region logs, ${needles.length} identifiers scanned, ${crossTries} cross-key opens refused, ${material.size} distinct keys; ${alarmExcerpts} alarm events in the vault-wide audit log quote records\n${table.join('\n')}`);
  assert.ok(crossTries > regionLogs.length, 'cross-key opens were tried');
  assert.ok(byName.get('local'), 'the default log exists');
});
