/**
 * Custody evidence bundles (`custody-evidence/v1`, docs/EVIDENCE.md): checking the unzipped
 * files of a bundle offline. No zip code here: the caller unzips (the CLI and the web UI use
 * fflate) and passes a map of file name → bytes.
 *
 *   README.txt                          plain-language instructions (hashed, not interpreted)
 *   manifest.json                       what is in the bundle, and the SHA-256 of every other file
 *   manifest.json.sha256                SHA-256 of manifest.json, in `sha256sum` format
 *   keys/<log>.vkey                     the log's verifier key (informational: trust comes from the caller)
 *   checkpoints/<log>.checkpoint        the signed (and cosigned) checkpoint every item of the log is proven against
 *   entries/<log>/<index>.entry         the entry exactly as logged (the leaf is SHA-256(0x00 ‖ entry))
 *   records/<log>/<index>               the record: the entry's body, or the blob the entry names by hash
 *   proofs/<log>/<index>.tlog-proof     C2SP tlog-proof of the entry against that checkpoint
 *
 * Only keys the caller passes are trusted. A checkpoint signed by the key shipped inside the
 * bundle, but not by a trusted one, is reported as KEY_NOT_PINNED, never accepted.
 */
import { parseCheckpoint, type Checkpoint } from './checkpoint.js';
import { bytesEqual, fromBase64, toBase64, toHex, utf8Decode } from './encoding.js';
import { VerifyError } from './errors.js';
import { HASH_SIZE, hashLeaf, sha256, type Sha256 } from './hash.js';
import { checkIndex, describe, fail } from './internal.js';
import { verifyInclusion } from './merkle.js';
import { openCheckpoint, parseNote, parseVerifierKey, verifierKeyString, type NoteVerifier } from './note.js';
import { PROOF_FILE_HEADER, parseProofFile } from './proof-file.js';

export const BUNDLE_FORMAT = 'custody-evidence/v1';
/** Most items one bundle may hold. */
export const MAX_BUNDLE_ITEMS = 100_000;
export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_CHECKSUM_FILE = 'manifest.json.sha256';
export const README_FILE = 'README.txt';
/** Largest manifest accepted (100,000 items with their hashes take about 60 MB). */
const MAX_MANIFEST_BYTES = 256 * 2 ** 20;
/** Log names that may appear in bundle paths: no slashes, no dot-dot, nothing a shell mangles. */
const LOG_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

export interface BundleLogInfo {
  /** The log's origin (checkpoint first line, key name). */
  origin: string;
  /** The verifier key the bundle ships in keys/<log>.vkey (informational). */
  verifierKey: string;
  /** keys/<log>.vkey */
  key: string;
  /** checkpoints/<log>.checkpoint */
  checkpoint: string;
  size: number;
  /** base64 root hash of that checkpoint */
  rootHash: string;
}

export interface BundleItem {
  log: string;
  index: number;
  /** The envelope's source type. */
  source: string;
  /** When the event happened as the search index read it from the record, else the envelope's receive time (descriptive). */
  time: string;
  entry: string;
  record: string;
  proof: string;
}

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  created: string;
  /** The vault's origin prefix. */
  vault: string;
  query: string | null;
  from: string | null;
  to: string | null;
  count: number;
  logs: Record<string, BundleLogInfo>;
  items: BundleItem[];
  /** Lower-case hex SHA-256 of every file but manifest.json and manifest.json.sha256. */
  sha256: Record<string, string>;
}

export type BundleProblemKind =
  /** manifest.json is missing, is not JSON, or says something the files contradict */
  | 'MANIFEST'
  /** manifest.json.sha256 is missing, malformed, or does not match manifest.json */
  | 'MANIFEST_CHECKSUM'
  | 'MISSING_FILE'
  | 'UNLISTED_FILE'
  /** the file's SHA-256 is not the one the manifest lists */
  | 'HASH_MISMATCH'
  /** keys/<log>.vkey is malformed or differs from the manifest */
  | 'KEY_FILE'
  /** the checkpoint is signed only by the key shipped in the bundle, which the caller did not pin */
  | 'KEY_NOT_PINNED'
  /** the caller pinned a key for this origin, and the checkpoint is not signed by it */
  | 'KEY_MISMATCH'
  /** the checkpoint is malformed, has a bad signature, or lacks the witness cosignatures asked for */
  | 'CHECKPOINT_INVALID'
  | 'ENTRY_MALFORMED'
  /** the entry names another log or source than the bundle says */
  | 'ENTRY_MISMATCH'
  | 'PROOF_MALFORMED'
  /** the proof is for another index, or against another checkpoint than the log's */
  | 'PROOF_MISMATCH'
  /** the entry is not where the proof says, under the signed root */
  | 'PROOF_INVALID'
  /** the record is not the entry's body, or not the blob the entry names */
  | 'RECORD_MISMATCH'
  /** the zip container (reported by the code that unzips) */
  | 'ZIP';

export interface BundleProblem {
  /** The file the problem is in (a path inside the bundle, or the bundle itself for ZIP). */
  file: string;
  kind: BundleProblemKind;
  message: string;
}

export interface BundleLogReport {
  log: string;
  origin: string;
  size: number;
  rootHash: string;
  /** Items of this log in the bundle. */
  items: number;
  /** True when a trusted key (and the witness quorum) verified the checkpoint. */
  trusted: boolean;
  /** The trusted verifier key that verified it, or null. */
  verifiedBy: string | null;
  /** Names of the trusted witnesses whose cosignatures verified. */
  cosigners: string[];
}

export interface BundleReport {
  ok: boolean;
  /** Items the manifest lists. */
  items: number;
  /** Items whose every check passed, against a trusted checkpoint. */
  verified: number;
  logs: BundleLogReport[];
  problems: BundleProblem[];
  /** Problems found beyond `maxProblems` (not listed). */
  problemsOmitted: number;
  /** The descriptive parts of the manifest (not proven by any signature). */
  manifest: { created: string; vault: string; query: string | null; from: string | null; to: string | null } | null;
}

export interface VerifyBundleOptions {
  /** Verifier keys ("<name>+<id>+<key>") of the logs the caller trusts. */
  keys: string[];
  /** Witness cosignature keys the caller trusts. */
  witnesses?: string[];
  /** Distinct trusted witnesses that must have cosigned each checkpoint (default 0). */
  quorum?: number;
  /** A faster SHA-256 (e.g. Node's), same contract as elsewhere in this package. */
  hash?: Sha256;
  /** Problems listed in the report at most (default 1000); the rest are counted. */
  maxProblems?: number;
}

/** Where the files of one item live in a bundle. */
export function bundleItemPaths(log: string, index: number): { entry: string; record: string; proof: string } {
  checkLogName(log);
  checkIndex('index', index);
  return { entry: `entries/${log}/${index}.entry`, record: `records/${log}/${index}`, proof: `proofs/${log}/${index}.tlog-proof` };
}

/** Where a log's key and checkpoint live in a bundle. */
export function bundleLogPaths(log: string): { key: string; checkpoint: string } {
  checkLogName(log);
  return { key: `keys/${log}.vkey`, checkpoint: `checkpoints/${log}.checkpoint` };
}

/** The text of manifest.json.sha256 for a manifest with this SHA-256 (`sha256sum` format). */
export function manifestChecksumText(manifestSha256Hex: string): string {
  if (!HEX64_RE.test(manifestSha256Hex)) fail('INVALID_ARGUMENT', 'expected 64 lower-case hex digits');
  return `${manifestSha256Hex}  ${MANIFEST_FILE}\n`;
}

function checkLogName(log: unknown): string {
  if (typeof log !== 'string' || !LOG_NAME_RE.test(log)) fail('INVALID_ARGUMENT', `not a log name that can appear in a bundle: ${describe(log)}`);
  return log;
}

// ---- the entry envelope (custody-entry/v1, docs/FORMAT.md) --------------------------------

export interface Envelope {
  origin: string;
  region: string;
  source: string;
  producer: string;
  received: string;
  attrs: Record<string, string>;
  /** base64 */
  salt: string;
  /** The record when it is inline; null when it lives in a blob. */
  body: Uint8Array | null;
  blob: { sha256: string; size: number } | null;
}

const ENVELOPE_MAGIC = 'custody-entry/v1';
const FIELD_RE = /^[\x21-\x7e]{1,256}$/;
const ATTR_RE = /^attr ([a-z][a-zA-Z0-9.-]{0,31}) ([\x21-\x7e]{1,256})$/;
const BLOB_RE = /^blob sha256:([0-9a-f]{64}) (0|[1-9][0-9]{0,9})$/;
const SALT_RE = /^[A-Za-z0-9+/]{21}[AQgw]==$/; // 16 bytes, canonical base64

/**
 * Parses a `custody-entry/v1` envelope strictly (the same rules as the vault's writer):
 * header lines `log`, `region`, `source`, `producer`, `received`, sorted `attr` lines, `salt`,
 * an optional `blob sha256:<hex> <size>` line, a blank line, then the record (none with a blob).
 * Throws MALFORMED_BUNDLE with the reason.
 */
export function parseEnvelope(entry: Uint8Array): Envelope {
  const bad = (why: string): never => fail('MALFORMED_BUNDLE', `not a ${ENVELOPE_MAGIC} entry: ${why}`);
  if (!(entry instanceof Uint8Array)) bad(`expected bytes, got ${describe(entry)}`);
  let end = -1;
  for (let i = 0; i + 1 < entry.length; i++) {
    if (entry[i] === 0x0a && entry[i + 1] === 0x0a) {
      end = i;
      break;
    }
    if (entry[i]! > 0x7e || (entry[i]! < 0x20 && entry[i] !== 0x0a)) bad('the header is not printable ASCII');
  }
  if (end < 0) bad('no blank line after the header');
  let header = '';
  for (let i = 0; i < end; i++) header += String.fromCharCode(entry[i]!);
  const lines = header.split('\n');
  if (lines[0] !== ENVELOPE_MAGIC) bad(`the first line must be ${ENVELOPE_MAGIC}`);
  const field = (at: number, name: string): string => {
    const line = lines[at];
    if (line === undefined || !line.startsWith(`${name} `)) bad(`line ${at + 1} must start with "${name} "`);
    const v = line!.slice(name.length + 1);
    if (!FIELD_RE.test(v)) bad(`bad ${name} value`);
    return v;
  };
  const origin = field(1, 'log');
  const region = field(2, 'region');
  const source = field(3, 'source');
  const producer = field(4, 'producer');
  const received = field(5, 'received');
  let at = 6;
  const attrs: Record<string, string> = {};
  let last = '';
  while (lines[at]?.startsWith('attr ')) {
    const m = ATTR_RE.exec(lines[at]!);
    if (!m || m[1]! <= last) bad(`bad attr line ${at + 1}`);
    last = m![1]!;
    attrs[last] = m![2]!;
    at++;
  }
  const salt = field(at, 'salt');
  if (!SALT_RE.test(salt)) bad('bad salt');
  let blob: Envelope['blob'] = null;
  if (lines.length === at + 2) {
    const m = BLOB_RE.exec(lines[at + 1]!);
    if (!m) bad('bad blob line');
    blob = { sha256: m![1]!, size: Number(m![2]) };
    if (end + 2 !== entry.length) bad('an entry whose record is a blob carries no inline record');
  } else if (lines.length !== at + 1) {
    bad('unexpected header lines');
  }
  return { origin, region, source, producer, received, attrs, salt, body: blob ? null : entry.subarray(end + 2), blob };
}

// ---- verification -------------------------------------------------------------------------

class Problems {
  readonly list: BundleProblem[] = [];
  omitted = 0;
  constructor(private readonly max: number) {}
  add(file: string, kind: BundleProblemKind, message: string): void {
    if (this.list.length < this.max) this.list.push({ file, kind, message });
    else this.omitted++;
  }
  get count(): number {
    return this.list.length + this.omitted;
  }
}

interface LogState {
  name: string;
  info: BundleLogInfo;
  text: string | null;
  checkpoint: Checkpoint | null;
  report: BundleLogReport;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function own(o: Record<string, unknown>, k: string): unknown {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

function errText(e: unknown): string {
  if (e instanceof VerifyError) return e.message;
  throw e;
}

function isNullableString(v: unknown): v is string | null {
  return v === null || typeof v === 'string';
}

/**
 * Verifies an unzipped evidence bundle. Never throws for anything in the bundle (every
 * problem is reported, naming the file); throws INVALID_ARGUMENT for bad options (e.g. a
 * malformed key). `ok` is true only when every file is listed and intact, every checkpoint is
 * signed by a trusted key (with the witness quorum), and every item's entry is proven in its
 * log with the record it names.
 */
export function verifyBundle(files: Map<string, Uint8Array>, opts: VerifyBundleOptions): BundleReport {
  if (!(files instanceof Map)) fail('INVALID_ARGUMENT', 'files must be a Map of file name to bytes');
  if (typeof opts !== 'object' || opts === null || !Array.isArray(opts.keys)) fail('INVALID_ARGUMENT', 'opts.keys must be an array of verifier keys');
  const h = opts.hash ?? sha256;
  if (typeof h !== 'function') fail('INVALID_ARGUMENT', 'opts.hash must be a function');
  const maxProblems = checkIndex('maxProblems', opts.maxProblems ?? 1000);
  const trusted = dedupeKeys(opts.keys.map((k) => parseVerifierKey(k)));
  const witnesses = dedupeKeys((opts.witnesses ?? []).map((k) => parseVerifierKey(k)));
  const quorum = checkIndex('quorum', opts.quorum ?? 0);
  if (quorum > witnesses.length) fail('INVALID_ARGUMENT', `quorum ${quorum} is larger than the ${witnesses.length} witness keys given`);
  for (const [name, bytes] of files) {
    if (typeof name !== 'string' || !(bytes instanceof Uint8Array)) fail('INVALID_ARGUMENT', 'files must map names to Uint8Array');
  }

  const P = new Problems(maxProblems);
  const report = (m: BundleManifest | null, logs: BundleLogReport[], verified: number): BundleReport => ({
    ok: P.count === 0 && m !== null && verified === m.items.length,
    items: m?.items.length ?? 0,
    verified,
    logs,
    problems: P.list,
    problemsOmitted: P.omitted,
    manifest: m ? { created: m.created, vault: m.vault, query: m.query, from: m.from, to: m.to } : null,
  });
  const hex = (b: Uint8Array): string => toHex(h(b));

  // 1. The manifest, its checksum, and the hash of every other file.
  const mBytes = files.get(MANIFEST_FILE);
  if (mBytes === undefined) {
    P.add(MANIFEST_FILE, 'MISSING_FILE', 'The bundle has no manifest.json: it is not a Custody evidence bundle, or it is incomplete.');
    return report(null, [], 0);
  }
  const sumBytes = files.get(MANIFEST_CHECKSUM_FILE);
  const mHex = hex(mBytes);
  if (sumBytes === undefined) P.add(MANIFEST_CHECKSUM_FILE, 'MISSING_FILE', 'manifest.json.sha256 is missing, so changes to manifest.json cannot be detected.');
  else {
    let sumText: string | null = null;
    try {
      sumText = utf8Decode(sumBytes);
    } catch {
      /* reported below */
    }
    if (sumText === null || !/^[0-9a-f]{64} {2}manifest\.json\n$/.test(sumText)) {
      P.add(MANIFEST_CHECKSUM_FILE, 'MANIFEST_CHECKSUM', 'manifest.json.sha256 is not one line "<64 hex digits>  manifest.json".');
    } else if (sumText.slice(0, 64) !== mHex) {
      // Which of the two changed cannot be told; both are named.
      P.add(MANIFEST_FILE, 'MANIFEST_CHECKSUM', 'manifest.json does not match manifest.json.sha256: one of them was changed.');
      P.add(MANIFEST_CHECKSUM_FILE, 'MANIFEST_CHECKSUM', 'manifest.json.sha256 does not match manifest.json: one of them was changed.');
    }
  }
  const manifest = readManifest(mBytes, P);
  if (manifest === null) return report(null, [], 0);

  const listed = manifest.sha256;
  for (const [name, bytes] of files) {
    if (name === MANIFEST_FILE || name === MANIFEST_CHECKSUM_FILE) continue;
    const want = Object.hasOwn(listed, name) ? listed[name] : undefined;
    if (want === undefined) P.add(name, 'UNLISTED_FILE', 'This file is not listed in manifest.json; it was added to the bundle.');
    else if (hex(bytes) !== want) P.add(name, 'HASH_MISMATCH', 'The SHA-256 of this file differs from manifest.json: the file (or the manifest) was changed.');
  }
  for (const name of Object.keys(listed)) {
    if (!files.has(name)) P.add(name, 'MISSING_FILE', 'manifest.json lists this file but the bundle does not have it.');
  }
  if (!Object.hasOwn(listed, README_FILE)) P.add(MANIFEST_FILE, 'MANIFEST', 'manifest.json does not list README.txt.');
  const mustBeListed = (path: string): void => {
    if (!Object.hasOwn(listed, path)) P.add(MANIFEST_FILE, 'MANIFEST', `manifest.json refers to ${path} but gives no SHA-256 for it.`);
  };

  // 2. Each log's checkpoint, opened with a trusted key.
  const logs = new Map<string, LogState>();
  for (const [name, info] of Object.entries(manifest.logs)) {
    const paths = bundleLogPaths(name);
    if (info.key !== paths.key || info.checkpoint !== paths.checkpoint) {
      P.add(MANIFEST_FILE, 'MANIFEST', `logs.${name} must name ${paths.key} and ${paths.checkpoint}.`);
    }
    mustBeListed(paths.key);
    mustBeListed(paths.checkpoint);
    const st: LogState = {
      name,
      info,
      text: null,
      checkpoint: null,
      report: { log: name, origin: info.origin, size: info.size, rootHash: info.rootHash, items: 0, trusted: false, verifiedBy: null, cosigners: [] },
    };
    logs.set(name, st);
    openLog(st, files, paths, trusted, witnesses, quorum, P);
  }

  // 3. Every item: entry → leaf → proof → checkpoint root; record ↔ envelope.
  const seen = new Set<string>();
  let verified = 0;
  for (let i = 0; i < manifest.items.length; i++) {
    const it = manifest.items[i]!;
    const where = `items[${i}] (${it.log} ${it.index})`;
    const st = Object.hasOwn(manifest.logs, it.log) ? logs.get(it.log) : undefined;
    if (st === undefined) {
      P.add(MANIFEST_FILE, 'MANIFEST', `${where} names log "${it.log}", which manifest.json does not describe.`);
      continue;
    }
    st.report.items++;
    const paths = bundleItemPaths(it.log, it.index);
    if (it.entry !== paths.entry || it.record !== paths.record || it.proof !== paths.proof) {
      P.add(MANIFEST_FILE, 'MANIFEST', `${where} must name ${paths.entry}, ${paths.record} and ${paths.proof}.`);
      continue;
    }
    const key = `${it.log}/${it.index}`;
    if (seen.has(key)) {
      P.add(MANIFEST_FILE, 'MANIFEST', `${where} is listed twice.`);
      continue;
    }
    seen.add(key);
    mustBeListed(paths.entry);
    mustBeListed(paths.record);
    mustBeListed(paths.proof);
    if (checkItem(it, st, files, h, P) && st.report.trusted) verified++;
  }
  return report(manifest, [...logs.values()].map((s) => s.report), verified);
}

function dedupeKeys(list: NoteVerifier[]): NoteVerifier[] {
  const seen = new Set<string>();
  return list.filter((v) => {
    const k = `${v.name}+${v.keyId}+${toBase64(v.publicKey ?? new Uint8Array(0))}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Parses and shape-checks manifest.json; reports and returns null when it is unusable. */
function readManifest(bytes: Uint8Array, P: Problems): BundleManifest | null {
  const bad = (why: string): null => {
    P.add(MANIFEST_FILE, 'MANIFEST', why);
    return null;
  };
  if (bytes.length > MAX_MANIFEST_BYTES) return bad(`manifest.json is larger than ${MAX_MANIFEST_BYTES} bytes.`);
  let m: unknown;
  try {
    m = JSON.parse(utf8Decode(bytes));
  } catch {
    return bad('manifest.json is not valid UTF-8 JSON.');
  }
  if (!isRecord(m)) return bad('manifest.json is not a JSON object.');
  if (own(m, 'format') !== BUNDLE_FORMAT) return bad(`manifest.json is not format ${BUNDLE_FORMAT}; this verifier reads only that format.`);
  for (const k of ['created', 'vault']) if (typeof own(m, k) !== 'string') return bad(`manifest.json "${k}" must be a string.`);
  for (const k of ['query', 'from', 'to']) if (!isNullableString(own(m, k))) return bad(`manifest.json "${k}" must be a string or null.`);
  const logsV = own(m, 'logs');
  const itemsV = own(m, 'items');
  const shaV = own(m, 'sha256');
  const count = own(m, 'count');
  if (!isRecord(logsV)) return bad('manifest.json "logs" must be an object.');
  if (!Array.isArray(itemsV)) return bad('manifest.json "items" must be an array.');
  if (!isRecord(shaV)) return bad('manifest.json "sha256" must be an object.');
  if (itemsV.length > MAX_BUNDLE_ITEMS) return bad(`manifest.json lists ${itemsV.length} items; a bundle holds at most ${MAX_BUNDLE_ITEMS}.`);
  if (count !== itemsV.length) return bad(`manifest.json "count" is ${describe(count)} but it lists ${itemsV.length} items.`);
  const logs: Record<string, BundleLogInfo> = {};
  for (const [name, v] of Object.entries(logsV)) {
    if (!LOG_NAME_RE.test(name)) return bad(`manifest.json names a log ${describe(name)} that is not a valid log name.`);
    if (!isRecord(v)) return bad(`manifest.json logs.${name} must be an object.`);
    const info = { origin: own(v, 'origin'), verifierKey: own(v, 'verifierKey'), key: own(v, 'key'), checkpoint: own(v, 'checkpoint'), size: own(v, 'size'), rootHash: own(v, 'rootHash') };
    if (typeof info.origin !== 'string' || typeof info.verifierKey !== 'string' || typeof info.key !== 'string' || typeof info.checkpoint !== 'string' || typeof info.rootHash !== 'string') {
      return bad(`manifest.json logs.${name} needs the strings origin, verifierKey, key, checkpoint and rootHash.`);
    }
    if (typeof info.size !== 'number' || !Number.isSafeInteger(info.size) || info.size < 0) return bad(`manifest.json logs.${name}.size must be a whole number.`);
    logs[name] = info as BundleLogInfo;
  }
  const items: BundleItem[] = [];
  for (let i = 0; i < itemsV.length; i++) {
    const v: unknown = itemsV[i];
    if (!isRecord(v)) return bad(`manifest.json items[${i}] must be an object.`);
    const it = { log: own(v, 'log'), index: own(v, 'index'), source: own(v, 'source'), time: own(v, 'time'), entry: own(v, 'entry'), record: own(v, 'record'), proof: own(v, 'proof') };
    if (typeof it.log !== 'string' || !LOG_NAME_RE.test(it.log)) return bad(`manifest.json items[${i}].log is not a log name.`);
    if (typeof it.index !== 'number' || !Number.isSafeInteger(it.index) || it.index < 0) return bad(`manifest.json items[${i}].index must be a whole number.`);
    for (const k of ['source', 'time', 'entry', 'record', 'proof'] as const) {
      if (typeof it[k] !== 'string') return bad(`manifest.json items[${i}].${k} must be a string.`);
    }
    items.push(it as BundleItem);
  }
  const sha: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, v] of Object.entries(shaV)) {
    if (name === MANIFEST_FILE || name === MANIFEST_CHECKSUM_FILE) return bad(`manifest.json must not list ${name} in "sha256".`);
    if (typeof v !== 'string' || !HEX64_RE.test(v)) return bad(`manifest.json sha256["${name.slice(0, 200)}"] must be 64 lower-case hex digits.`);
    sha[name] = v;
  }
  return {
    format: BUNDLE_FORMAT,
    created: own(m, 'created') as string,
    vault: own(m, 'vault') as string,
    query: own(m, 'query') as string | null,
    from: own(m, 'from') as string | null,
    to: own(m, 'to') as string | null,
    count: items.length,
    logs,
    items,
    sha256: sha,
  };
}

function openLog(
  st: LogState,
  files: Map<string, Uint8Array>,
  paths: { key: string; checkpoint: string },
  trusted: NoteVerifier[],
  witnesses: NoteVerifier[],
  quorum: number,
  P: Problems,
): void {
  const { name, info } = st;
  const cpBytes = files.get(paths.checkpoint);
  if (cpBytes === undefined) return; // reported as MISSING_FILE (it is listed) or as MANIFEST
  let text: string;
  try {
    text = utf8Decode(cpBytes);
    st.checkpoint = parseCheckpoint(parseNote(text).body);
  } catch (e) {
    P.add(paths.checkpoint, 'CHECKPOINT_INVALID', `Not a signed checkpoint: ${errText(e)}`);
    return;
  }
  st.text = text;
  const cp = st.checkpoint;
  if (cp.origin !== info.origin || cp.size !== info.size || toBase64(cp.rootHash) !== info.rootHash) {
    P.add(MANIFEST_FILE, 'MANIFEST', `logs.${name} says origin ${info.origin}, size ${info.size}, root ${info.rootHash}; the checkpoint says ${cp.origin}, ${cp.size}, ${toBase64(cp.rootHash)}.`);
  }
  // The key shipped in the bundle: informational, used only to explain a failure.
  let bundleKey: NoteVerifier | null = null;
  const keyBytes = files.get(paths.key);
  if (keyBytes !== undefined) {
    try {
      const t = utf8Decode(keyBytes);
      if (t !== `${info.verifierKey}\n`) P.add(paths.key, 'KEY_FILE', `${paths.key} must hold exactly the verifierKey of logs.${name} in manifest.json, and a newline.`);
      bundleKey = parseVerifierKey(t.trimEnd());
    } catch (e) {
      P.add(paths.key, 'KEY_FILE', `Not a verifier key: ${errText(e)}`);
    }
  }
  const signedBy = (k: NoteVerifier): boolean => {
    try {
      openCheckpoint(text, k);
      return true;
    } catch (e) {
      errText(e);
      return false;
    }
  };
  const pinned = trusted.filter((k) => k.name === cp.origin);
  let lastError = '';
  for (const k of pinned) {
    try {
      const r = openCheckpoint(text, k, { witnesses, quorum });
      st.report.trusted = true;
      st.report.verifiedBy = trustedKeyString(k);
      st.report.cosigners = r.cosigners.map((w) => w.name);
      return;
    } catch (e) {
      lastError = errText(e);
    }
  }
  const shipped = bundleKey !== null && signedBy(bundleKey) ? info.verifierKey : null;
  if (pinned.length > 0) {
    if (pinned.some(signedBy)) {
      // Signed by the pinned key, but the witness policy failed.
      P.add(paths.checkpoint, 'CHECKPOINT_INVALID', `The checkpoint of ${cp.origin} is signed by the key you trust, but ${lastError}.`);
    } else if (shipped) {
      P.add(paths.checkpoint, 'KEY_MISMATCH', `The checkpoint of ${cp.origin} is signed by ${shipped}, not by the key you pinned for that log (${pinned.map(trustedKeyString).join(', ')}). Either the log's key changed or this bundle is not from the log you trust.`);
    } else {
      P.add(paths.checkpoint, 'CHECKPOINT_INVALID', `The checkpoint of ${cp.origin} is not signed by the key you pinned for that log: ${lastError}.`);
    }
  } else if (shipped) {
    P.add(paths.checkpoint, 'KEY_NOT_PINNED', `The checkpoint of ${cp.origin} is signed by the key in the bundle (${shipped}), which you have not pinned. Confirm that key with the log's operator, then pass it with --key.`);
  } else {
    P.add(paths.checkpoint, 'CHECKPOINT_INVALID', `The checkpoint of ${cp.origin} is signed neither by a key you trust nor by the key in the bundle.`);
  }
}

function trustedKeyString(k: NoteVerifier): string {
  return verifierKeyString(k.name, k.publicKey, k.type);
}

const PROOF_INDEX_RE = /^index (0|[1-9][0-9]{0,15})$/;
const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUES = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUES[B64_ALPHABET.charCodeAt(i)] = i;

/**
 * A 32-byte hash in canonical padded base64 (43 characters and '='), decoded with integer
 * arithmetic: a bundle has a million of them. Anything else goes to the general decoder.
 */
function hashFromBase64(s: string): Uint8Array {
  if (s.length !== 44 || s.charCodeAt(43) !== 61) return fromBase64(s, HASH_SIZE);
  const out = new Uint8Array(32);
  let o = 0;
  for (let i = 0; i < 40; i += 4) {
    const a = val(s, i);
    const b = val(s, i + 1);
    const c = val(s, i + 2);
    const d = val(s, i + 3);
    if ((a | b | c | d) < 0) return fromBase64(s, HASH_SIZE);
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = n >>> 16;
    out[o++] = (n >>> 8) & 255;
    out[o++] = n & 255;
  }
  const a = val(s, 40);
  const b = val(s, 41);
  const c = val(s, 42);
  if ((a | b | c) < 0 || (c & 3) !== 0) return fromBase64(s, HASH_SIZE); // not canonical: let it say why
  const n = (a << 12) | (b << 6) | c;
  out[30] = n >>> 10;
  out[31] = (n >>> 2) & 255;
  return out;
}

function val(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c < 128 ? B64_VALUES[c]! : -1;
}

/**
 * A tlog-proof that ends with exactly `checkpointText` (already parsed once for the log),
 * parsed without parsing that checkpoint again; null when it is not of that shape or
 * anything in it is malformed (then parseProofFile reports why).
 */
function proofAgainst(text: string, checkpointText: string): { index: number; proof: Uint8Array[]; checkpoint: string } | null {
  if (!text.endsWith(checkpointText)) return null;
  const head = text.slice(0, text.length - checkpointText.length);
  if (!head.endsWith('\n\n')) return null;
  const lines = head.slice(0, -2).split('\n');
  if (lines[0] !== PROOF_FILE_HEADER || lines.length < 2) return null;
  let at = 1;
  if (lines[at]!.startsWith('extra ')) at++;
  const m = PROOF_INDEX_RE.exec(lines[at] ?? '');
  if (!m || !Number.isSafeInteger(Number(m[1])) || lines.length - at - 1 > 64) return null;
  try {
    if (at === 2) fromBase64(lines[1]!.slice(6));
    const proof = lines.slice(at + 1).map(hashFromBase64);
    return { index: Number(m[1]), proof, checkpoint: checkpointText };
  } catch (e) {
    errText(e);
    return null;
  }
}

/** Checks one item; returns true when every check passed. */
function checkItem(it: BundleItem, st: LogState, files: Map<string, Uint8Array>, h: Sha256, P: Problems): boolean {
  const entry = files.get(it.entry);
  const proofBytes = files.get(it.proof);
  const record = files.get(it.record);
  if (entry === undefined || proofBytes === undefined || record === undefined) return false; // MISSING_FILE already
  let ok = true;
  // Proof: the entry's leaf, at this index, under the log's signed root.
  let proofText: string | null = null;
  try {
    proofText = utf8Decode(proofBytes);
  } catch {
    P.add(it.proof, 'PROOF_MALFORMED', 'The proof file is not valid UTF-8 text.');
    ok = false;
  }
  if (proofText !== null) {
    try {
      const p = (st.text !== null ? proofAgainst(proofText, st.text) : null) ?? parseProofFile(proofText);
      if (p.index !== it.index) {
        P.add(it.proof, 'PROOF_MISMATCH', `The proof is for index ${p.index}, not ${it.index}.`);
        ok = false;
      } else if (st.text === null || st.checkpoint === null) {
        ok = false; // the checkpoint is missing or malformed: reported with the log
      } else if (p.checkpoint !== st.text) {
        P.add(it.proof, 'PROOF_MISMATCH', `The proof's checkpoint is not ${st.info.checkpoint}; every item of a log must be proven against that one checkpoint.`);
        ok = false;
      } else {
        try {
          verifyInclusion(hashLeaf(entry, h), it.index, st.checkpoint.size, p.proof, st.checkpoint.rootHash, h);
        } catch (e) {
          P.add(it.entry, 'PROOF_INVALID', `This entry is not entry ${it.index} of ${st.checkpoint.origin} under the signed root: ${errText(e)}`);
          ok = false;
        }
      }
    } catch (e) {
      P.add(it.proof, 'PROOF_MALFORMED', errText(e));
      ok = false;
    }
  }
  // Envelope and record.
  let env: Envelope;
  try {
    env = parseEnvelope(entry);
  } catch (e) {
    P.add(it.entry, 'ENTRY_MALFORMED', errText(e));
    return false;
  }
  if (env.origin !== st.info.origin) {
    P.add(it.entry, 'ENTRY_MISMATCH', `The entry says it belongs to log ${env.origin}, not ${st.info.origin}.`);
    ok = false;
  }
  if (env.source !== it.source) {
    P.add(MANIFEST_FILE, 'MANIFEST', `The item ${it.log} ${it.index} says source ${it.source}; its entry says ${env.source}.`);
    ok = false;
  }
  if (env.blob !== null) {
    if (record.length !== env.blob.size || toHex(h(record)) !== env.blob.sha256) {
      P.add(it.record, 'RECORD_MISMATCH', `The entry names a record of ${env.blob.size} bytes with SHA-256 ${env.blob.sha256}; this file is not it.`);
      ok = false;
    }
  } else if (!bytesEqual(record, env.body!)) {
    P.add(it.record, 'RECORD_MISMATCH', 'This record is not the record inside its entry.');
    ok = false;
  }
  return ok;
}
