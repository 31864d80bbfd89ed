/**
 * Builds what CloudTrail delivers with log file validation on, signed with a test RSA key:
 * hourly gzip digest files in CloudTrail's key layout, chained by previousDigest*, each with
 * the `signature` / `signature-algorithm` S3 metadata, and the gzip log files they list.
 *
 * Written from AWS's documentation (aws-sources.md "CloudTrail digest files"; CloudTrail User
 * Guide "CloudTrail digest file structure" and "Custom implementations of CloudTrail log file
 * integrity validation"), NOT from src/cloudtrail — so the validator is tested against an
 * independent producer. Also used by bench/cloudtrail.ts (figure 12).
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

export interface TestKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Hex, as digestPublicKeyFingerprint and ListPublicKeys name it (here: MD5 of the DER key). */
  fingerprint: string;
  /** The key's ListPublicKeys entry as `aws cloudtrail list-public-keys --output json` prints it. */
  entry: { Value: string; ValidityStartTime: string; ValidityEndTime: string; Fingerprint: string };
}

export function makeTestKey(bits = 2048): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const der = publicKey.export({ format: 'der', type: 'pkcs1' });
  const fingerprint = createHash('md5').update(der).digest('hex');
  return {
    privateKey,
    publicKey,
    fingerprint,
    entry: { Value: der.toString('base64'), ValidityStartTime: '2014-01-01T00:00:00+00:00', ValidityEndTime: '2030-01-01T00:00:00+00:00', Fingerprint: fingerprint },
  };
}

/** `aws cloudtrail list-public-keys --output json` for these keys. */
export function keysFileText(keys: TestKey[]): string {
  return JSON.stringify({ PublicKeyList: keys.map((k) => k.entry) }, null, 4) + '\n';
}

export interface StoredObjectSpec {
  body: Buffer;
  /** S3 user metadata (without x-amz-meta-). */
  metadata?: Record<string, string>;
}

export interface Trail {
  bucket: string;
  account: string;
  region: string;
  trail: string;
  homeRegion: string;
  /** An optional S3 key prefix before AWSLogs/ (with its trailing /). */
  prefix?: string;
}

export const TRAIL: Trail = { bucket: 'custody-test-trail', account: '111122223333', region: 'us-east-1', trail: 'org-trail', homeRegion: 'us-east-1' };

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
const ymd = (d: Date): string => `${d.getUTCFullYear()}/${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}`;
const compact = (d: Date, seconds: boolean): string =>
  `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${seconds ? pad(d.getUTCSeconds()) : ''}Z`;
export const iso = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export function digestKey(t: Trail, end: Date): string {
  return `${t.prefix ?? ''}AWSLogs/${t.account}/CloudTrail-Digest/${t.region}/${ymd(end)}/${t.account}_CloudTrail-Digest_${t.region}_${t.trail}_${t.homeRegion}_${compact(end, true)}.json.gz`;
}

export function logKey(t: Trail, at: Date, id: string): string {
  return `${t.prefix ?? ''}AWSLogs/${t.account}/CloudTrail/${t.region}/${ymd(at)}/${t.account}_CloudTrail_${t.region}_${compact(at, false)}_${id}.json.gz`;
}

/** The data signing string, written out from AWS's documentation. */
export function awsSigningString(endTime: string, bucket: string, key: string, uncompressedDigest: Buffer, previousSignature: string | null): string {
  return [endTime, `${bucket}/${key}`, createHash('sha256').update(uncompressedDigest).digest('hex'), previousSignature ?? 'null'].join('\n');
}

export interface DigestSpec {
  trail: Trail;
  start: Date;
  end: Date;
  logFiles: Array<{ key: string; uncompressed: Buffer; newest: string; oldest: string }>;
  previous: { bucket: string; key: string; uncompressed: Buffer; signature: string } | null;
  key: TestKey;
}

/** One digest object: gzip JSON in CloudTrail's field order, signed; returns the parts. */
export function makeDigest(spec: DigestSpec, tweak?: (d: Record<string, unknown>) => void): { key: string; object: StoredObjectSpec; uncompressed: Buffer; signature: string } {
  const key = digestKey(spec.trail, spec.end);
  const times = spec.logFiles.flatMap((l) => [l.newest, l.oldest]).sort();
  const digest: Record<string, unknown> = {
    awsAccountId: spec.trail.account,
    digestStartTime: iso(spec.start),
    digestEndTime: iso(spec.end),
    digestS3Bucket: spec.trail.bucket,
    digestS3Object: key,
    digestPublicKeyFingerprint: spec.key.fingerprint,
    digestSignatureAlgorithm: 'SHA256withRSA',
    newestEventTime: times.length ? times[times.length - 1] : null,
    oldestEventTime: times.length ? times[0] : null,
    previousDigestS3Bucket: spec.previous?.bucket ?? null,
    previousDigestS3Object: spec.previous?.key ?? null,
    previousDigestHashValue: spec.previous ? createHash('sha256').update(spec.previous.uncompressed).digest('hex') : null,
    previousDigestHashAlgorithm: spec.previous ? 'SHA-256' : null,
    previousDigestSignature: spec.previous?.signature ?? null,
    logFiles: spec.logFiles.map((l) => ({
      s3Bucket: spec.trail.bucket,
      s3Object: l.key,
      hashValue: createHash('sha256').update(l.uncompressed).digest('hex'),
      hashAlgorithm: 'SHA-256',
      newestEventTime: l.newest,
      oldestEventTime: l.oldest,
    })),
  };
  tweak?.(digest);
  const uncompressed = Buffer.from(JSON.stringify(digest));
  const toSign = awsSigningString(digest.digestEndTime as string, digest.digestS3Bucket as string, digest.digestS3Object as string, uncompressed, (digest.previousDigestSignature as string | null) ?? null);
  const signature = sign('sha256', Buffer.from(toSign, 'utf8'), spec.key.privateKey).toString('hex');
  return { key, uncompressed, signature, object: { body: gzipSync(uncompressed), metadata: { signature, 'signature-algorithm': 'SHA256withRSA' } } };
}

export interface BuiltChain {
  objects: Map<string, StoredObjectSpec>;
  /** Digest keys, oldest first. */
  digests: string[];
  /** Log file keys per digest, in the same order. */
  logs: string[][];
  /** Uncompressed digests by key (for re-signing tampered copies). */
  uncompressed: Map<string, Buffer>;
  signatures: Map<string, string>;
}

export interface ChainOptions {
  trail?: Trail;
  key: TestKey;
  /** Digest end times are start + 1 h, + 2 h, … */
  start?: Date;
  hours: number;
  logsPerHour: number;
  /** Gzip log file bodies to use, in order (real samples); synthetic ones after they run out. */
  logBodies?: Buffer[];
  /** The key signing digest i (default: opts.key). */
  signer?: (i: number) => TestKey;
  /** Changes digest i's JSON before it is signed. */
  tweak?: (i: number, d: Record<string, unknown>) => void;
  /** Digest i starts a new chain (logging was off before it): no previous. */
  restartAt?: number;
  /** Bytes of each synthetic uncompressed log file (approximately). */
  logBytes?: number;
}

function syntheticLog(seed: number, at: Date, bytes: number): Buffer {
  const records: string[] = [];
  let size = 12;
  for (let i = 0; size < bytes || i === 0; i++) {
    const r = JSON.stringify({
      eventVersion: '1.11',
      userIdentity: { type: 'IAMUser', principalId: `AIDA${seed}X${i}`, arn: `arn:aws:iam::111122223333:user/u${seed % 7}`, accountId: '111122223333', userName: `u${seed % 7}` },
      eventTime: iso(new Date(at.getTime() - i * 1000)),
      eventSource: 's3.amazonaws.com',
      eventName: 'GetObject',
      awsRegion: 'us-east-1',
      sourceIPAddress: `10.0.${seed % 250}.${i % 250}`,
      userAgent: 'aws-cli/2.15.0',
      requestParameters: { bucketName: 'data', key: `k/${seed}/${i}` },
      responseElements: null,
      requestID: `${seed}-${i}`,
      eventID: `00000000-0000-4000-8000-${String(seed).padStart(6, '0')}${String(i).padStart(6, '0')}`,
      readOnly: true,
      eventType: 'AwsApiCall',
      managementEvent: false,
      recipientAccountId: '111122223333',
    });
    records.push(r);
    size += r.length + 1;
  }
  return Buffer.from(`{"Records":[${records.join(',')}]}`);
}

const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function fileId(n: number): string {
  let s = '';
  let x = n * 2654435761 + 12345;
  for (let i = 0; i < 16; i++) {
    s += ID_CHARS[x % ID_CHARS.length];
    x = Math.floor(x / ID_CHARS.length) + (i + 1) * 7919 + n;
  }
  return s;
}

/** A chain of `hours` digests with `logsPerHour` log files each. */
export function buildChain(o: ChainOptions): BuiltChain {
  const trail = o.trail ?? TRAIL;
  const start = o.start ?? new Date(Date.UTC(2024, 2, 1, 0, 0, 31));
  const objects = new Map<string, StoredObjectSpec>();
  const chain: BuiltChain = { objects, digests: [], logs: [], uncompressed: new Map(), signatures: new Map() };
  let previous: DigestSpec['previous'] = null;
  let n = 0;
  for (let h = 0; h < o.hours; h++) {
    const s = new Date(start.getTime() + h * 3_600_000);
    const e = new Date(s.getTime() + 3_600_000);
    const logFiles: DigestSpec['logFiles'] = [];
    for (let j = 0; j < o.logsPerHour; j++) {
      const at = new Date(s.getTime() + ((j + 1) * 3_600_000) / (o.logsPerHour + 1));
      const given = o.logBodies?.[n];
      const body = given ?? gzipSync(syntheticLog(n, at, o.logBytes ?? 2000));
      const uncompressed = gunzipSync(body);
      const key = logKey(trail, at, fileId(n));
      n++;
      objects.set(key, { body });
      logFiles.push({ key, uncompressed, newest: iso(at), oldest: iso(new Date(at.getTime() - 300_000)) });
    }
    const d = makeDigest({ trail, start: s, end: e, logFiles, previous: o.restartAt === h ? null : previous, key: o.signer?.(h) ?? o.key }, o.tweak ? (x) => o.tweak!(h, x) : undefined);
    objects.set(d.key, d.object);
    chain.digests.push(d.key);
    chain.logs.push(logFiles.map((l) => l.key));
    chain.uncompressed.set(d.key, d.uncompressed);
    chain.signatures.set(d.key, d.signature);
    previous = { bucket: trail.bucket, key: d.key, uncompressed: d.uncompressed, signature: d.signature };
  }
  return chain;
}

/**
 * Writes the objects as a folder copy of the bucket: each object at its key, and each digest's
 * metadata in `<file>.metadata.json` (as `aws s3api head-object` prints it when headObject).
 */
export function writeFolder(dir: string, objects: Map<string, StoredObjectSpec>, opts: { headObject?: boolean } = {}): void {
  for (const [key, o] of objects) {
    const path = join(dir, ...key.split('/'));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, o.body);
    if (o.metadata) {
      const meta = opts.headObject
        ? { AcceptRanges: 'bytes', ContentLength: o.body.length, ContentType: 'application/x-gzip', ServerSideEncryption: 'AES256', Metadata: o.metadata }
        : o.metadata;
      writeFileSync(path + '.metadata.json', JSON.stringify(meta, null, 2));
    }
  }
}
