/**
 * The CloudTrail digest file format, exactly as AWS documents it — pure functions, no I/O.
 *
 * Sources (../shared/reference/aws-sources.md, "CloudTrail digest files"; AWS CloudTrail User
 * Guide, "CloudTrail digest file structure" and "Custom implementations of CloudTrail log file
 * integrity validation"; aws-cli `awscli/customizations/cloudtrail/validation.py`, the
 * reference implementation behind `aws cloudtrail validate-logs`):
 *
 * - A digest is gzip JSON. Its signature is not in the file: it is the hex string in the S3
 *   object metadata `x-amz-meta-signature`, with `x-amz-meta-signature-algorithm`
 *   ("SHA256withRSA").
 * - The data signing string is
 *     digestEndTime + "\n" + digestS3Bucket + "/" + digestS3Object + "\n"
 *     + hex(SHA-256(the digest file UNCOMPRESSED)) + "\n" + previousDigestSignature
 *   with the literal `null` when there is no previous signature (the first digest of a chain).
 *   digestEndTime is used as written in the file. The hash is of the uncompressed bytes:
 *   aws-sources.md says so, and aws-cli hashes the inflated digest
 *   (`hashlib.sha256(inflated_digest)`), not the stored gzip.
 * - The signature is RSA PKCS#1 v1.5 over SHA-256 of that string (SHA256withRSA), checked with
 *   the public key whose fingerprint is `digestPublicKeyFingerprint`.
 * - A log file's `hashValue` is hex SHA-256 of the UNcompressed log file ("compute the SHA-256
 *   hash value of its uncompressed content", Custom implementations…; aws-sources.md).
 * - `previousDigestHashValue` is the hash of the previous digest file, uncompressed — the same
 *   value that previous digest's own signing string carries.
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';

/** One entry of a digest's `logFiles`. */
export interface DigestLogFile {
  s3Bucket: string;
  s3Object: string;
  /** Lower-case hex SHA-256 of the uncompressed log file. */
  hashValue: string;
  hashAlgorithm: string;
  newestEventTime: string | null;
  oldestEventTime: string | null;
}

/** The fields of a digest file this validator uses (and checks the type of). */
export interface DigestFile {
  awsAccountId: string | null;
  digestStartTime: string;
  digestEndTime: string;
  digestS3Bucket: string;
  digestS3Object: string;
  digestPublicKeyFingerprint: string;
  digestSignatureAlgorithm: string;
  previousDigestS3Bucket: string | null;
  previousDigestS3Object: string | null;
  previousDigestHashValue: string | null;
  previousDigestHashAlgorithm: string | null;
  previousDigestSignature: string | null;
  logFiles: DigestLogFile[];
}

/** A digest file as read: its parsed fields, and the hash its signature covers. */
export interface ParsedDigest {
  digest: DigestFile;
  /** hex SHA-256 of the uncompressed digest file. */
  sha256: string;
}

/** Why a digest file cannot be used (a named problem, never an exception). */
export class DigestFormatError extends Error {}

export const SIGNATURE_ALGORITHM = 'SHA256withRSA';
export const HASH_ALGORITHM = 'SHA-256';
/** A digest lists one hour of log files; a few MiB at most. Larger is refused, not read. */
export const MAX_DIGEST_BYTES = 32 * 1024 * 1024;
/** A decompressed digest larger than this is refused (a gzip bomb). */
export const MAX_DIGEST_INFLATED_BYTES = 128 * 1024 * 1024;

const HEX64 = /^[0-9a-fA-F]{64}$/;
const HEX = /^(?:[0-9a-fA-F]{2})+$/;
// RFC 3339 / ISO 8601 UTC as CloudTrail writes it (2015-08-17T15:01:31Z), fractions allowed.
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

export function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** Milliseconds since the epoch of a CloudTrail time, or NaN. */
export function parseTime(s: string): number {
  return ISO_UTC.test(s) ? Date.parse(s) : NaN;
}

/** The data signing string of a digest (see the header of this file). */
export function signingString(d: Pick<DigestFile, 'digestEndTime' | 'digestS3Bucket' | 'digestS3Object' | 'previousDigestSignature'>, digestSha256Hex: string): string {
  return `${d.digestEndTime}\n${d.digestS3Bucket}/${d.digestS3Object}\n${digestSha256Hex}\n${d.previousDigestSignature ?? 'null'}`;
}

function str(o: Record<string, unknown>, name: string, what = 'a string'): string {
  const v = o[name];
  if (typeof v !== 'string') throw new DigestFormatError(`its field ${name} is ${describe(v)}, not ${what}`);
  return v;
}

function strOrNull(o: Record<string, unknown>, name: string): string | null {
  const v = o[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new DigestFormatError(`its field ${name} is ${describe(v)}, not a string or null`);
  return v;
}

function time(o: Record<string, unknown>, name: string): string {
  const v = str(o, name, 'a time');
  if (Number.isNaN(parseTime(v))) throw new DigestFormatError(`its field ${name} (${JSON.stringify(v.slice(0, 40))}) is not a UTC time like 2015-08-17T15:01:31Z`);
  return v;
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

/**
 * The bytes of a digest file as stored (gzip; an already decompressed copy is accepted too, its
 * hash is the same) → its fields and the SHA-256 of its uncompressed bytes. Throws
 * DigestFormatError naming what is wrong: not gzip or JSON, too large, a missing field, a field
 * of the wrong type.
 */
export function parseDigestFile(stored: Uint8Array): ParsedDigest {
  if (stored.length > MAX_DIGEST_BYTES) throw new DigestFormatError(`it is ${stored.length} bytes, larger than any digest (${MAX_DIGEST_BYTES} bytes)`);
  let raw: Buffer;
  if (isGzip(stored)) {
    try {
      raw = gunzipSync(stored, { maxOutputLength: MAX_DIGEST_INFLATED_BYTES });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new DigestFormatError(code === 'ERR_BUFFER_TOO_LARGE' ? `it decompresses to more than ${MAX_DIGEST_INFLATED_BYTES} bytes` : 'it is not a valid gzip file (truncated or corrupt)');
    }
  } else {
    raw = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  }
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new DigestFormatError(isGzip(stored) ? 'its content is not JSON' : 'it is neither gzip nor JSON');
  }
  const digest = readDigestFields(value);
  return { digest, sha256: createHash('sha256').update(raw).digest('hex') };
}

/** Checks the type of every field used; throws DigestFormatError. */
export function readDigestFields(value: unknown): DigestFile {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DigestFormatError(`its content is ${describe(value)}, not a JSON object`);
  const o = value as Record<string, unknown>;
  // The fields aws-cli requires before validating (required_digest_keys), plus logFiles.
  if (!('previousDigestSignature' in o)) throw new DigestFormatError('its field previousDigestSignature is missing (it is null in the first digest of a chain, never absent)');
  const logFilesValue = o.logFiles;
  if (!Array.isArray(logFilesValue)) throw new DigestFormatError(`its field logFiles is ${describe(logFilesValue)}, not an array`);
  const logFiles: DigestLogFile[] = logFilesValue.map((v, i) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DigestFormatError(`logFiles[${i}] is ${describe(v)}, not an object`);
    const l = v as Record<string, unknown>;
    const entry: DigestLogFile = {
      s3Bucket: str(l, 's3Bucket'),
      s3Object: str(l, 's3Object'),
      hashValue: str(l, 'hashValue'),
      hashAlgorithm: str(l, 'hashAlgorithm'),
      newestEventTime: strOrNull(l, 'newestEventTime'),
      oldestEventTime: strOrNull(l, 'oldestEventTime'),
    };
    if (entry.hashAlgorithm !== HASH_ALGORITHM) throw new DigestFormatError(`logFiles[${i}] uses hash algorithm ${JSON.stringify(entry.hashAlgorithm.slice(0, 40))}; CloudTrail uses ${HASH_ALGORITHM}`);
    if (!HEX64.test(entry.hashValue)) throw new DigestFormatError(`logFiles[${i}].hashValue is not a hex SHA-256 (64 hex digits)`);
    if (entry.s3Object === '') throw new DigestFormatError(`logFiles[${i}].s3Object is empty`);
    entry.hashValue = entry.hashValue.toLowerCase();
    return entry;
  });
  const d: DigestFile = {
    awsAccountId: strOrNull(o, 'awsAccountId'),
    digestStartTime: time(o, 'digestStartTime'),
    digestEndTime: time(o, 'digestEndTime'),
    digestS3Bucket: str(o, 'digestS3Bucket'),
    digestS3Object: str(o, 'digestS3Object'),
    digestPublicKeyFingerprint: str(o, 'digestPublicKeyFingerprint'),
    digestSignatureAlgorithm: str(o, 'digestSignatureAlgorithm'),
    previousDigestS3Bucket: strOrNull(o, 'previousDigestS3Bucket'),
    previousDigestS3Object: strOrNull(o, 'previousDigestS3Object'),
    previousDigestHashValue: strOrNull(o, 'previousDigestHashValue'),
    previousDigestHashAlgorithm: strOrNull(o, 'previousDigestHashAlgorithm'),
    previousDigestSignature: strOrNull(o, 'previousDigestSignature'),
    logFiles,
  };
  if (d.previousDigestSignature !== null && !HEX.test(d.previousDigestSignature)) throw new DigestFormatError('its field previousDigestSignature is not hex');
  if (d.previousDigestHashValue !== null && !HEX64.test(d.previousDigestHashValue)) throw new DigestFormatError('its field previousDigestHashValue is not a hex SHA-256 (64 hex digits)');
  if (d.previousDigestHashAlgorithm !== null && d.previousDigestHashAlgorithm !== HASH_ALGORITHM) throw new DigestFormatError(`its previousDigestHashAlgorithm is ${JSON.stringify(d.previousDigestHashAlgorithm.slice(0, 40))}; CloudTrail uses ${HASH_ALGORITHM}`);
  if (d.previousDigestS3Object !== null && d.previousDigestSignature === null) throw new DigestFormatError('it names a previous digest but has no previousDigestSignature');
  return d;
}

/** The signature metadata of a digest object (`x-amz-meta-signature`, `…-signature-algorithm`). */
export interface SignatureMetadata {
  signature: string;
  algorithm: string;
}

/**
 * S3 user metadata (keys without `x-amz-meta-`, any case) → the signature, or a sentence saying
 * what is missing.
 */
export function signatureFromMetadata(meta: Record<string, unknown> | undefined | null): SignatureMetadata | { error: string } {
  const lower: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta ?? {})) lower[k.toLowerCase().replace(/^x-amz-meta-/, '')] = v;
  const signature = lower.signature;
  const algorithm = lower['signature-algorithm'];
  if (typeof signature !== 'string' || signature === '') return { error: 'it has no signature metadata (x-amz-meta-signature)' };
  if (!HEX.test(signature)) return { error: 'its signature metadata is not hex' };
  if (typeof algorithm !== 'string' || algorithm === '') return { error: 'it has no signature-algorithm metadata (x-amz-meta-signature-algorithm)' };
  return { signature: signature.toLowerCase(), algorithm };
}

// ---- keys as CloudTrail delivers them ---------------------------------------------------------

/** Where a digest key puts it: the chain (account, region, trail) and the end time in its name. */
export interface DigestKeyInfo {
  /** The key up to and including `AWSLogs/[o-id/]<acct>/CloudTrail-Digest/<region>/`. */
  base: string;
  account: string;
  orgId: string | null;
  region: string;
  trail: string;
  homeRegion: string;
  /** digestEndTime from the name, in ms. */
  endMs: number;
}

// <prefix>AWSLogs/[o-id/]<acct>/CloudTrail-Digest/<region>/<yyyy>/<mm>/<dd>/
//   <acct>_CloudTrail-Digest_<region>_<trail>_<home-region>_<yyyymmddThhmmssZ>.json.gz
// (digest file structure, "Digest file location"). A trail name may hold underscores; region
// names never do, so the home region is the last part before the time.
const DIGEST_KEY_RE = /^((?:.*\/)?AWSLogs\/(?:(o-[a-z0-9]{10,32})\/)?(\d{12})\/CloudTrail-Digest\/([a-z0-9-]+)\/)\d{4}\/\d{2}\/\d{2}\/\d{12}_CloudTrail-Digest_[a-z0-9-]+_(.+)_([a-z0-9-]+)_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\.json\.gz$/;

export function parseDigestKey(key: string): DigestKeyInfo | null {
  const m = DIGEST_KEY_RE.exec(key);
  if (!m) return null;
  const endMs = Date.UTC(+m[7]!, +m[8]! - 1, +m[9]!, +m[10]!, +m[11]!, +m[12]!);
  return { base: m[1]!, orgId: m[2] ?? null, account: m[3]!, region: m[4]!, trail: m[5]!, homeRegion: m[6]!, endMs };
}

/** Whether a key is a digest file by its place or its name (even one not laid out as AWS does). */
export function looksLikeDigestKey(key: string): boolean {
  return (/(^|\/)CloudTrail-Digest\//.test(key) || /_CloudTrail-Digest_/.test(key)) && /\.json(\.gz)?$/.test(key);
}

/** Where a CloudTrail log file key puts it. */
export interface LogKeyInfo {
  /** `…AWSLogs/[o-id/]<acct>/CloudTrail/<region>/` → the matching digest base has CloudTrail-Digest. */
  digestBase: string;
  /** The time in the name (minute precision), in ms. */
  timeMs: number;
}

// <prefix>AWSLogs/[o-id/]<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<id>.json.gz
const LOG_KEY_RE = /^((?:.*\/)?AWSLogs\/(?:o-[a-z0-9]{10,32}\/)?\d{12}\/)CloudTrail(\/[a-z0-9-]+\/)\d{4}\/\d{2}\/\d{2}\/\d{12}_CloudTrail_[a-z0-9-]+_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})Z_[A-Za-z0-9]+\.json\.gz$/;

export function parseLogKey(key: string): LogKeyInfo | null {
  const m = LOG_KEY_RE.exec(key);
  if (!m) return null;
  return { digestBase: `${m[1]}CloudTrail-Digest${m[2]}`, timeMs: Date.UTC(+m[3]!, +m[4]! - 1, +m[5]!, +m[6]!, +m[7]!) };
}

/** The last path segment of a key. */
export function baseName(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/** 2015-08-17T15:01:31Z (seconds precision) for ms; '' for NaN. */
export function isoSeconds(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '';
}
