/**
 * Validating CloudTrail log file integrity from the bucket's objects: every digest's signature,
 * every link of each digest chain, every log file's hash.
 *
 * The store is listed ONCE and indexed by key; nothing is listed again per digest. Then:
 *  1. every digest is read and parsed (format.ts) — a digest that cannot be read is a named
 *     problem, never an exception;
 *  2. its signature is checked with CloudTrail's public key named by its fingerprint, and its
 *     location with the bucket/key it says CloudTrail delivered it to;
 *  3. each chain (account, region, trail) is walked in time order: a digest's previous digest
 *     must be there and carry the signature and hash the digest names. Unlike
 *     `aws cloudtrail validate-logs`, which after a missing digest jumps to the next digest it
 *     finds without checking that it is the one the chain names (so two consecutive deleted
 *     digests show as one), the gap is measured between the digests that ARE there: "digests
 *     are missing between T1 and T2";
 *  4. every log file a valid digest lists is read and its uncompressed SHA-256 compared; a
 *     listed file that is not at its key is "moved" when the same content is found at another
 *     key, else "deleted".
 */
import { createHash, verify as verifySignature } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import {
  DigestFormatError,
  MAX_DIGEST_BYTES,
  SIGNATURE_ALGORITHM,
  baseName,
  isGzip,
  isoSeconds,
  looksLikeDigestKey,
  parseDigestFile,
  parseDigestKey,
  parseLogKey,
  parseTime,
  signingString,
  type DigestKeyInfo,
  type ParsedDigest,
  type SignatureMetadata,
} from './format.js';
import { PublicKeySet } from './keys.js';
import type { ObjectStore } from './store.js';

/** Something that makes the trail's logs NOT valid (exit code 1). */
export type ProblemKind =
  | 'digest-unreadable'
  | 'digest-signature-missing'
  | 'digest-signature-invalid'
  | 'digest-unknown-key'
  | 'digest-moved'
  | 'digest-chain-broken'
  | 'digests-missing'
  | 'log-modified'
  | 'log-deleted'
  | 'log-moved'
  | 'log-unreadable';

/** Worth a look, but not proof of tampering (AWS itself produces these situations). */
export type WarningKind = 'chain-restarted' | 'digest-unlinked' | 'log-unlisted' | 'digests-missing-at-end' | 'other-bucket';

export interface Finding {
  kind: ProblemKind | WarningKind;
  /** A plain sentence: what is wrong and what it means. */
  message: string;
  /** The object concerned: a digest key or a log file key. */
  key?: string;
  /** The digest that lists the log file, or that names the missing previous digest. */
  digest?: string;
  /** log-moved: where the same content was found. */
  movedTo?: string;
  /** log-modified, digest-chain-broken: the hash or signature expected and the one found. */
  expected?: string;
  actual?: string;
  /** digests-missing: the digest before the gap (null when none is there) and after it. */
  after?: string | null;
  before?: string;
  /** digests-missing: the time range no digest covers. */
  from?: string | null;
  to?: string;
  /** digests-missing: the missing digest keys known by name (the one the later digest names). */
  knownMissing?: string[];
  /** digests-missing: about how many digests the gap held (its length / the digest period). */
  estimatedCount?: number | null;
  /** log-unlisted, other-bucket, digests-missing-at-end: how many objects the finding covers. */
  count?: number;
}

export interface ChainSummary {
  /** The digests' common key pattern: …/CloudTrail-Digest/<region>/…_<trail>_<home region>_… */
  id: string;
  account: string | null;
  region: string | null;
  trail: string | null;
  homeRegion: string | null;
  digests: number;
  /** digestStartTime of the oldest digest and digestEndTime of the newest. */
  from: string;
  to: string;
}

export interface ValidationReport {
  source: string;
  bucket: string | null;
  valid: boolean;
  summary: {
    objectsListed: number;
    digests: number;
    digestsValid: number;
    logFiles: number;
    logFilesValid: number;
    /** Log files listed only by digests that failed validation: their hashes are not trusted. */
    logFilesNotChecked: number;
    chains: number;
    problems: number;
    warnings: number;
    seconds: number;
  };
  chains: ChainSummary[];
  problems: Finding[];
  warnings: Finding[];
}

export interface ValidateOptions {
  /** The public keys, or how to get them once the digests' regions and times are known. */
  keys: PublicKeySet | ((regions: string[], startMs: number, endMs: number) => Promise<PublicKeySet>);
  /** Objects read at once (default 8). */
  concurrency?: number;
  /** Only digests whose name time (digestEndTime) is in [fromMs, toMs]. */
  fromMs?: number;
  toMs?: number;
  onProgress?: (done: number, total: number) => void;
}

/** A log file larger than this uncompressed is not hashed (a gzip bomb). */
export const MAX_LOG_INFLATED_BYTES = 4 * 1024 * 1024 * 1024;
/** When log files are missing, every unlisted object is searched for them up to this many bytes. */
export const MOVED_SEARCH_BYTES = 1024 * 1024 * 1024;
const HOUR = 3_600_000;
/** Log file names carry a minute; digests cover delivery times: allow this much either side. */
const EDGE_MS = 5 * 60_000;

interface DigestRecord {
  key: string;
  /** From the declared digestS3Object when it is laid out as AWS does, else from the key. */
  info: DigestKeyInfo | null;
  chainId: string;
  parsed: ParsedDigest | null;
  signature: SignatureMetadata | null;
  /** Signature verified and location right: its log file hashes are trusted. */
  trusted: boolean;
  startMs: number;
  endMs: number;
}

/** Runs fn over items with at most n at once, in any order. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
}

/**
 * SHA-256 of a stored log file's uncompressed content: gunzipped when it is gzip (as CloudTrail
 * delivers it), as-is when it is not (a copy someone already decompressed has the same hash).
 */
export async function hashLogContent(stream: Readable): Promise<{ sha256: string; gzip: boolean } | { error: string }> {
  const h = createHash('sha256');
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  if (first.done) return { sha256: h.digest('hex'), gzip: false };
  const firstChunk = Buffer.from(first.value);
  async function* rest(): AsyncGenerator<Buffer> {
    yield firstChunk;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield Buffer.from(r.value);
    }
  }
  if (!isGzip(firstChunk)) {
    for await (const c of rest()) h.update(c);
    return { sha256: h.digest('hex'), gzip: false };
  }
  let out = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.length;
      if (out > MAX_LOG_INFLATED_BYTES) return cb(new RangeError('too large'));
      h.update(chunk);
      cb();
    },
  });
  try {
    await pipeline(Readable.from(rest()), createGunzip(), sink);
  } catch (e) {
    stream.destroy();
    if (e instanceof RangeError) return { error: `it decompresses to more than ${MAX_LOG_INFLATED_BYTES} bytes` };
    if ((e as NodeJS.ErrnoException).code?.startsWith('Z_')) return { error: 'it is not a valid gzip file (truncated or corrupt)' };
    throw e;
  }
  return { sha256: h.digest('hex'), gzip: true };
}

/** Objects up to this size are read whole and inflated off the main thread; larger ones stream. */
const WHOLE_READ_BYTES = 16 * 1024 * 1024;
const gunzipAsync = promisify(gunzip);

/** The uncompressed SHA-256 of a stored object, or why it has none; null when it is not there. */
export async function hashStored(store: ObjectStore, key: string, size: number | undefined): Promise<{ sha256: string; gzip: boolean } | { error: string } | null> {
  if (size !== undefined && size <= WHOLE_READ_BYTES) {
    const body = await store.read(key, WHOLE_READ_BYTES);
    if (body === null) return null;
    if (Buffer.isBuffer(body)) {
      if (!isGzip(body)) return { sha256: createHash('sha256').update(body).digest('hex'), gzip: false };
      try {
        const raw = await gunzipAsync(body, { maxOutputLength: 256 * 1024 * 1024 });
        return { sha256: createHash('sha256').update(raw).digest('hex'), gzip: true };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (code.startsWith('Z_')) return { error: 'it is not a valid gzip file (truncated or corrupt)' };
        if (code !== 'ERR_BUFFER_TOO_LARGE') throw e;
        // Very compressible: hash it as a stream instead, with the larger limit.
      }
    }
  }
  const stream = await store.open(key);
  return stream ? hashLogContent(stream) : null;
}

function chainIdOf(info: DigestKeyInfo | null, key: string): string {
  if (info) return `${info.base}…_CloudTrail-Digest_${info.region}_${info.trail}_${info.homeRegion}_…`;
  return `${key.slice(0, key.lastIndexOf('/') + 1)}…`;
}

/** Sorted, with overlapping or touching intervals joined. */
function mergeIntervals(iv: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...iv].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function validateCloudTrail(store: ObjectStore, opts: ValidateOptions): Promise<ValidationReport> {
  const t0 = performance.now();
  const concurrency = opts.concurrency ?? 8;
  const problems: Finding[] = [];
  const warnings: Finding[] = [];
  const where = (k: string): string => (store.bucket ? `s3://${store.bucket}/${k}` : k);

  // ---- 1. one listing, indexed by key -------------------------------------------------------
  const objects = new Map<string, number>();
  let digestKeys: string[] = [];
  for await (const o of store.list()) {
    objects.set(o.key, o.size);
    if (looksLikeDigestKey(o.key)) digestKeys.push(o.key);
  }
  const inRange = (ms: number): boolean => !(Number.isFinite(ms) && ((opts.fromMs !== undefined && ms < opts.fromMs) || (opts.toMs !== undefined && ms > opts.toMs)));
  digestKeys = digestKeys.filter((k) => inRange(parseDigestKey(k)?.endMs ?? NaN));

  let done = 0;
  let total = digestKeys.length;
  const tick = (): void => opts.onProgress?.(++done, total);
  opts.onProgress?.(0, total);

  // ---- 2. read and parse every digest --------------------------------------------------------
  const records: DigestRecord[] = [];
  await pool(digestKeys, concurrency, async (key) => {
    const keyInfo = parseDigestKey(key);
    const rec: DigestRecord = { key, info: keyInfo, chainId: chainIdOf(keyInfo, key), parsed: null, signature: null, trusted: false, startMs: (keyInfo?.endMs ?? NaN) - HOUR, endMs: keyInfo?.endMs ?? NaN };
    records.push(rec);
    const obj = await store.readDigest(key, MAX_DIGEST_BYTES);
    tick();
    if (obj === null) {
      problems.push({ kind: 'digest-unreadable', key, message: `Digest file ${where(key)} was listed but could not be read: it no longer exists.` });
      return;
    }
    if ('tooLarge' in obj) {
      problems.push({ kind: 'digest-unreadable', key, message: `Digest file ${where(key)} cannot be used: it is ${obj.tooLarge} bytes, larger than any digest (${MAX_DIGEST_BYTES} bytes).` });
      return;
    }
    try {
      rec.parsed = parseDigestFile(obj.body);
    } catch (e) {
      if (!(e instanceof DigestFormatError)) throw e;
      problems.push({ kind: 'digest-unreadable', key, message: `Digest file ${where(key)} cannot be used: ${e.message}.` });
      return;
    }
    const d = rec.parsed.digest;
    const declared = parseDigestKey(d.digestS3Object);
    if (declared) {
      rec.info = declared;
      rec.chainId = chainIdOf(declared, key);
    }
    rec.startMs = parseTime(d.digestStartTime);
    rec.endMs = parseTime(d.digestEndTime);
    if ('error' in obj.signature) problems.push({ kind: 'digest-signature-missing', key, message: `Digest file ${where(key)} cannot be verified: ${obj.signature.error}.` });
    else rec.signature = obj.signature;
  });
  records.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

  // ---- the public keys, then each digest's signature and place ------------------------------
  const readable = records.filter((r) => r.parsed);
  let keys: PublicKeySet;
  if (typeof opts.keys === 'function') {
    const regions = [...new Set(readable.map((r) => r.info?.region).filter((r): r is string => !!r))].sort();
    const start = readable.reduce((m, r) => (Number.isFinite(r.startMs) ? Math.min(m, r.startMs) : m), Infinity);
    const end = readable.reduce((m, r) => (Number.isFinite(r.endMs) ? Math.max(m, r.endMs) : m), -Infinity);
    keys = regions.length > 0 ? await opts.keys(regions, start, end) : new PublicKeySet();
  } else keys = opts.keys;

  for (const rec of readable) {
    const d = rec.parsed!.digest;
    let placeOk = true;
    const ownBucket = store.bucket ?? d.digestS3Bucket;
    if (d.digestS3Object !== rec.key || d.digestS3Bucket !== ownBucket) {
      placeOk = false;
      problems.push({
        kind: 'digest-moved',
        key: rec.key,
        message: `Digest file ${where(rec.key)} says CloudTrail delivered it to s3://${d.digestS3Bucket}/${d.digestS3Object}: it was moved or copied there from another place.`,
        expected: `s3://${d.digestS3Bucket}/${d.digestS3Object}`,
        actual: where(rec.key),
      });
    }
    if (!rec.signature) continue;
    if (rec.signature.algorithm !== SIGNATURE_ALGORITHM || d.digestSignatureAlgorithm !== SIGNATURE_ALGORITHM) {
      const alg = rec.signature.algorithm !== SIGNATURE_ALGORITHM ? rec.signature.algorithm : d.digestSignatureAlgorithm;
      problems.push({ kind: 'digest-signature-invalid', key: rec.key, message: `Digest file ${where(rec.key)} names the signature algorithm ${JSON.stringify(alg.slice(0, 40))}; CloudTrail signs with ${SIGNATURE_ALGORITHM}.` });
      continue;
    }
    const pk = keys.get(d.digestPublicKeyFingerprint);
    if (!pk) {
      problems.push({
        kind: 'digest-unknown-key',
        key: rec.key,
        message: `Digest file ${where(rec.key)} was signed with a key whose fingerprint ${d.digestPublicKeyFingerprint.slice(0, 128)} is not among CloudTrail's public keys${rec.info ? ` for ${rec.info.region}` : ''}: it was not signed by CloudTrail, or the keys given are incomplete.`,
      });
      continue;
    }
    const ok = verifySignature('sha256', Buffer.from(signingString(d, rec.parsed!.sha256), 'utf8'), pk.key, Buffer.from(rec.signature.signature, 'hex'));
    if (!ok) {
      problems.push({ kind: 'digest-signature-invalid', key: rec.key, message: `Digest file ${where(rec.key)} does not match its signature: the digest or its signature metadata was changed after CloudTrail signed it.` });
      continue;
    }
    rec.trusted = placeOk;
  }

  // ---- 3. the chains -----------------------------------------------------------------------
  const byKey = new Map(records.map((r) => [r.key, r]));
  const byDeclared = new Map(readable.map((r) => [r.parsed!.digest.digestS3Object, r]));
  const chains = new Map<string, DigestRecord[]>();
  for (const r of records) {
    const list = chains.get(r.chainId) ?? [];
    list.push(r);
    chains.set(r.chainId, list);
  }
  const chainSummaries: ChainSummary[] = [];
  /** The times of missing digests: their log files are still expected to be listed. */
  const gaps: Array<{ base: string; from: number; to: number }> = [];
  for (const [id, ds] of chains) {
    ds.sort((a, b) => (a.endMs || 0) - (b.endMs || 0) || (a.key < b.key ? -1 : 1));
    const period = median(ds.filter((r) => r.parsed).map((r) => r.endMs - r.startMs).filter((x) => x > 0)) || HOUR;
    const named = new Set<DigestRecord>();
    const gapStart = new Set<DigestRecord>();
    for (let i = 0; i < ds.length; i++) {
      const rec = ds[i]!;
      const d = rec.parsed?.digest;
      if (!d || d.previousDigestS3Object === null) continue;
      const prevKey = d.previousDigestS3Object;
      const prevBucket = d.previousDigestS3Bucket ?? d.digestS3Bucket;
      if (prevBucket !== (store.bucket ?? d.digestS3Bucket)) {
        warnings.push({ kind: 'other-bucket', key: rec.key, message: `Digest file ${where(rec.key)} names its previous digest in another bucket (s3://${prevBucket}/${prevKey}); that link was not checked.` });
        continue;
      }
      const prev = byKey.get(prevKey) ?? byDeclared.get(prevKey);
      if (prev) {
        named.add(prev);
        const p = prev.parsed;
        if (!p) continue; // already a problem of its own
        if (prev.signature && d.previousDigestSignature!.toLowerCase() !== prev.signature.signature) {
          problems.push({
            kind: 'digest-chain-broken',
            key: rec.key,
            digest: prev.key,
            message: `Digest file ${where(rec.key)} names ${where(prevKey)} as the previous digest, but the previousDigestSignature it carries is not that digest's signature: the previous digest was replaced or re-signed.`,
            expected: d.previousDigestSignature!,
            actual: prev.signature.signature,
          });
        }
        if (d.previousDigestHashValue === null || d.previousDigestHashValue.toLowerCase() !== p.sha256) {
          problems.push({
            kind: 'digest-chain-broken',
            key: rec.key,
            digest: prev.key,
            message: `Digest file ${where(rec.key)} names ${where(prevKey)} as the previous digest, but its previousDigestHashValue is not the SHA-256 of that digest: the previous digest was changed, or this link was forged.`,
            expected: d.previousDigestHashValue ?? 'null',
            actual: p.sha256,
          });
        }
        continue;
      }
      // The previous digest is not here. Measure the gap from the newest digest that is.
      const outside = !prevKey.startsWith(store.scope) || !inRange(parseDigestKey(prevKey)?.endMs ?? NaN);
      const before = i > 0 ? ds[i - 1]! : null;
      if (!before && outside) continue; // the chain starts before what was asked for
      const fromMs = before ? before.endMs : NaN;
      const toMs = rec.startMs;
      const estimated = before && Number.isFinite(fromMs) && Number.isFinite(toMs) ? Math.max(1, Math.round((toMs - fromMs) / period)) : null;
      if (before) {
        gapStart.add(before);
        if (rec.info && Number.isFinite(fromMs) && Number.isFinite(toMs)) gaps.push({ base: rec.info.base, from: fromMs, to: toMs });
      }
      problems.push({
        kind: 'digests-missing',
        key: prevKey,
        digest: rec.key,
        after: before ? before.key : null,
        before: rec.key,
        from: before ? isoSeconds(fromMs) : null,
        to: d.digestStartTime,
        knownMissing: [prevKey],
        estimatedCount: estimated,
        message: before
          ? `Digest files are missing between ${isoSeconds(fromMs)} and ${d.digestStartTime}${estimated ? ` (about ${estimated} digest${estimated === 1 ? '' : 's'})` : ''}: ${where(rec.key)} names ${where(prevKey)} as its previous digest, which is not there, and the newest digest before the gap is ${where(before.key)}. The log files those digests listed cannot be validated.`
          : `Digest file ${where(prevKey)}, the previous digest of ${where(rec.key)}, is not there, and no older digest of this trail is. If the copy or prefix starts later on purpose, validate with --from ${d.digestStartTime}; otherwise the oldest digests were deleted.`,
      });
    }
    for (let i = 0; i + 1 < ds.length; i++) {
      const q = ds[i]!;
      if (named.has(q) || gapStart.has(q)) continue;
      const next = ds[i + 1]!;
      if (!next.parsed || !q.parsed && !Number.isFinite(q.endMs)) continue;
      if (next.parsed.digest.previousDigestS3Object === null) {
        warnings.push({
          kind: 'chain-restarted',
          key: next.key,
          after: q.key,
          before: next.key,
          from: isoSeconds(q.endMs),
          to: next.parsed.digest.digestStartTime,
          message: `The digest chain restarts at ${where(next.key)} (it names no previous digest): CloudTrail logging or log file validation was off between ${isoSeconds(q.endMs)} and ${next.parsed.digest.digestStartTime}, or the digests between were deleted along with the link. No digest vouches for that time.`,
        });
      } else {
        warnings.push({ kind: 'digest-unlinked', key: q.key, message: `Digest file ${where(q.key)} is not named as the previous digest by any later digest of its trail: it is outside the chain.` });
      }
    }
    const parsedDs = ds.filter((r) => r.parsed);
    const first = parsedDs[0];
    const last = parsedDs[parsedDs.length - 1];
    chainSummaries.push({
      id,
      account: ds[0]!.info?.account ?? null,
      region: ds[0]!.info?.region ?? null,
      trail: ds[0]!.info?.trail ?? null,
      homeRegion: ds[0]!.info?.homeRegion ?? null,
      digests: ds.length,
      from: first ? first.parsed!.digest.digestStartTime : '',
      to: last ? last.parsed!.digest.digestEndTime : '',
    });
  }
  chainSummaries.sort((a, b) => (a.id < b.id ? -1 : 1));

  // ---- 4. the log files --------------------------------------------------------------------
  const referenced = new Set<string>();
  interface LogTask { key: string; hash: string; digest: string }
  const tasks = new Map<string, LogTask>();
  let notChecked = 0;
  const otherBucket = new Map<string, number>();
  for (const rec of readable) {
    const d = rec.parsed!.digest;
    const ownBucket = store.bucket ?? d.digestS3Bucket;
    for (const lf of d.logFiles) {
      if (lf.s3Bucket !== ownBucket) {
        otherBucket.set(rec.key, (otherBucket.get(rec.key) ?? 0) + 1);
        continue;
      }
      referenced.add(lf.s3Object);
      if (!rec.trusted) {
        notChecked++;
        continue;
      }
      const id = `${lf.s3Object}\n${lf.hashValue}`;
      if (!tasks.has(id)) tasks.set(id, { key: lf.s3Object, hash: lf.hashValue, digest: rec.key });
    }
  }
  for (const [key, count] of otherBucket) {
    warnings.push({ kind: 'other-bucket', key, count, message: `Digest file ${where(key)} lists ${count} log file${count === 1 ? '' : 's'} in another bucket; ${count === 1 ? 'it was' : 'they were'} not checked.` });
  }
  total += tasks.size;
  let logValid = 0;
  const missing: LogTask[] = [];
  await pool([...tasks.values()], concurrency, async (t) => {
    try {
      const inScope = t.key.startsWith(store.scope);
      if (inScope && !objects.has(t.key)) {
        missing.push(t);
        return;
      }
      const r = await hashStored(store, t.key, objects.get(t.key));
      if (!r) {
        missing.push(t);
        return;
      }
      if ('error' in r) {
        problems.push({ kind: 'log-unreadable', key: t.key, digest: t.digest, message: `Log file ${where(t.key)} cannot be read: ${r.error}. Digest ${where(t.digest)} lists it, so it was changed after delivery.` });
      } else if (r.sha256 !== t.hash) {
        problems.push({
          kind: 'log-modified',
          key: t.key,
          digest: t.digest,
          expected: t.hash,
          actual: r.sha256,
          message: `Log file ${where(t.key)} was modified after CloudTrail delivered it: the SHA-256 of its content${r.gzip ? ' (uncompressed)' : ' (it is not gzip)'} is ${r.sha256}, digest ${where(t.digest)} says ${t.hash}.`,
        });
      } else logValid++;
    } finally {
      tick();
    }
  });

  // A listed file that is not at its key: moved if the same content is at another key.
  const movedTargets = new Set<string>();
  const unlistedLogs: Array<{ key: string; time: number; base: string }> = [];
  const coverage = new Map<string, Array<[number, number]>>();
  for (const r of readable) {
    if (!r.info || !Number.isFinite(r.startMs) || !Number.isFinite(r.endMs)) continue;
    const list = coverage.get(r.info.base) ?? [];
    list.push([r.startMs, r.endMs]);
    coverage.set(r.info.base, list);
  }
  const inGap = (base: string, t: number): boolean => gaps.some((g) => g.base === base && t >= g.from && t < g.to);
  for (const g of gaps) {
    const list = coverage.get(g.base) ?? [];
    list.push([g.from, g.to]);
    coverage.set(g.base, list);
  }
  const digestKeySet = new Set(digestKeys);
  for (const [key] of objects) {
    if (referenced.has(key) || digestKeySet.has(key) || looksLikeDigestKey(key)) continue;
    const info = parseLogKey(key);
    if (!info) continue;
    unlistedLogs.push({ key, time: info.timeMs, base: info.digestBase });
  }
  // Merged and sorted per place, so each lookup is a binary search.
  for (const [base, iv] of coverage) coverage.set(base, mergeIntervals(iv));
  const covered = (base: string, t: number): boolean => {
    const iv = coverage.get(base);
    if (!iv) return false;
    let lo = 0;
    let hi = iv.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [s, e] = iv[mid]!;
      if (t < s + EDGE_MS) hi = mid - 1;
      else if (t + 60_000 > e - EDGE_MS) lo = mid + 1;
      else return true;
    }
    return false;
  };
  if (missing.length > 0) {
    // Where the content could be: every object no digest lists when they are few (up to
    // MOVED_SEARCH_BYTES in all), else those with the same file name and the CloudTrail log
    // files in a time the digests cover.
    const wanted = new Set(missing.map((m) => baseName(m.key)));
    const candidates = new Set<string>();
    const unreferenced = [...objects].filter(([key]) => !referenced.has(key) && !digestKeySet.has(key) && !looksLikeDigestKey(key));
    const unreferencedBytes = unreferenced.reduce((n, [, size]) => n + size, 0);
    for (const [key] of unreferenced) if (unreferencedBytes <= MOVED_SEARCH_BYTES || wanted.has(baseName(key))) candidates.add(key);
    for (const u of unlistedLogs) if (covered(u.base, u.time)) candidates.add(u.key);
    const byHash = new Map<string, string>();
    total += candidates.size;
    await pool([...candidates], concurrency, async (key) => {
      try {
        const r = await hashStored(store, key, objects.get(key));
        if (!r) return;
        if (!('error' in r) && !byHash.has(r.sha256)) byHash.set(r.sha256, key);
      } finally {
        tick();
      }
    });
    for (const m of missing) {
      const to = byHash.get(m.hash);
      if (to) {
        movedTargets.add(to);
        problems.push({ kind: 'log-moved', key: m.key, digest: m.digest, movedTo: to, message: `Log file ${where(m.key)} was moved: it is not at the key digest ${where(m.digest)} lists, and the same content is at ${where(to)}.` });
      } else {
        problems.push({ kind: 'log-deleted', key: m.key, digest: m.digest, message: `Log file ${where(m.key)} was deleted: digest ${where(m.digest)} lists it and it is not in the bucket (nor is its content at another key).` });
      }
    }
  }

  // Log files no digest lists: inside a time the digests cover, or after the newest digest.
  const lastEnd = new Map<string, number>();
  for (const [base, iv] of coverage) lastEnd.set(base, iv.reduce((m, [, e]) => Math.max(m, e), -Infinity));
  const late = new Map<string, { count: number; newest: number }>();
  for (const u of unlistedLogs) {
    if (movedTargets.has(u.key)) continue;
    const end = lastEnd.get(u.base);
    if (end === undefined) continue; // no digest of that account and region was validated
    if (covered(u.base, u.time)) {
      warnings.push({
        kind: 'log-unlisted',
        key: u.key,
        message: inGap(u.base, u.time)
          ? `Log file ${where(u.key)} was delivered while the missing digests were current: no digest vouches for it any more, so it cannot be validated.`
          : `Log file ${where(u.key)} is in a time the digests cover, but no digest lists it: CloudTrail did not deliver it there (it was added or renamed).`,
      });
    } else if (u.time > end + HOUR + EDGE_MS && inRange(u.time)) {
      const l = late.get(u.base) ?? { count: 0, newest: 0 };
      l.count++;
      l.newest = Math.max(l.newest, u.time);
      late.set(u.base, l);
    }
  }
  for (const [base, l] of late) {
    warnings.push({
      kind: 'digests-missing-at-end',
      key: base,
      count: l.count,
      from: isoSeconds(lastEnd.get(base)!),
      to: isoSeconds(l.newest),
      message: `No digest in ${where(base)} ends after ${isoSeconds(lastEnd.get(base)!)}, but ${l.count} log file${l.count === 1 ? ' was' : 's were'} delivered later (until ${isoSeconds(l.newest)}): the newest digests were deleted, or log file validation was turned off.`,
    });
  }

  const order = (f: Finding): string => `${f.kind}\n${f.key ?? ''}`;
  problems.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  warnings.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  return {
    source: store.description,
    bucket: store.bucket,
    // No digest at all proves nothing: not valid.
    valid: problems.length === 0 && records.length > 0,
    summary: {
      objectsListed: objects.size,
      digests: records.length,
      digestsValid: records.filter((r) => r.trusted).length,
      logFiles: tasks.size + notChecked,
      logFilesValid: logValid,
      logFilesNotChecked: notChecked,
      chains: chainSummaries.length,
      problems: problems.length,
      warnings: warnings.length,
      seconds: Math.round(performance.now() - t0) / 1000,
    },
    chains: chainSummaries,
    problems,
    warnings,
  };
}
