/**
 * The S3 archive target (docs/ARCHIVE.md): PutObject with the chosen storage class, the
 * SHA-256 checksum (x-amz-checksum-sha256) and, when the bucket has Object Lock, COMPLIANCE
 * retention until the log's retention date; GetObject to read, and the restore state machine
 * for GLACIER / DEEP_ARCHIVE objects:
 *
 *   GetObject ── 200 ───────────────────────────────────────────────► bytes
 *       └─ 403 InvalidObjectState ─► HeadObject x-amz-restore
 *             ├─ ongoing-request="true"  ─► ARCHIVE_RESTORE_PENDING (in progress)
 *             ├─ ongoing-request="false" ─► GetObject again (restored copy, until expiry-date)
 *             └─ absent ─► RestoreObject (Tier Standard, Days N) ─► ARCHIVE_RESTORE_PENDING (started)
 *                           └─ 409 RestoreAlreadyInProgress ─► ARCHIVE_RESTORE_PENDING (in progress)
 *
 * Retrieval times (AWS S3 User Guide, "Understanding archive retrieval options"): GLACIER
 * (Flexible Retrieval) Standard 3–5 hours, Bulk 5–12 hours; DEEP_ARCHIVE Standard within 12
 * hours; GLACIER_IR, STANDARD_IA and STANDARD need no restore.
 *
 * Where and as whom, as for `custody import` (cli/s3.ts): AWS_ENDPOINT_URL_S3 /
 * AWS_ENDPOINT_URL (then path-style), the SDK's default credential chain, AWS_REGION.
 */
import {
  S3Client,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  HeadBucketCommand,
  DeleteObjectCommand,
  RestoreObjectCommand,
  GetObjectLockConfigurationCommand,
} from '@aws-sdk/client-s3';
import { CustodyError } from '../errors.js';
import { checkBytes, sha256hex, type ArchiveTarget, type ArchivedFile, type PutResult, type ArchiveStorageClass, COLD_CLASSES } from './archive.js';

/** Expected Standard-tier restore time and a sensible Retry-After (seconds) per class. */
const RESTORE_TIME: Record<string, { text: string; retryAfter: number }> = {
  GLACIER: { text: '3–5 hours (Standard retrieval)', retryAfter: 3 * 3600 },
  DEEP_ARCHIVE: { text: 'up to 12 hours (Standard retrieval)', retryAfter: 12 * 3600 },
};
/** While a restore runs, ask again after this long. */
const POLL_SECONDS = 900;

interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  code?: string;
  cause?: { code?: string };
}

function s3Failure(loc: string, what: string, e: unknown): CustodyError {
  const err = e as SdkError;
  const name = err?.name ?? 'Error';
  const status = err?.$metadata?.httpStatusCode;
  const net = err?.code ?? err?.cause?.code;
  const hint =
    name === 'AccessDenied'
      ? 'access was denied: the vault needs s3:PutObject, s3:GetObject, s3:RestoreObject, s3:DeleteObjectVersion and s3:GetBucketObjectLockConfiguration on the bucket'
      : name === 'NoSuchBucket'
        ? 'there is no such bucket: check the name, AWS_ENDPOINT_URL_S3 and AWS_REGION'
        : net
          ? `the S3 endpoint cannot be reached (${net}): check AWS_ENDPOINT_URL_S3 and the network`
          : `S3 answered ${name}${status ? ` (HTTP ${status})` : ''}`;
  return new CustodyError('ARCHIVE_UNAVAILABLE', `Cannot ${what} in the archive ${loc}: ${hint}.`, { archive: loc, s3Error: name, ...(status ? { httpStatus: status } : {}) });
}

/** Parses x-amz-restore: `ongoing-request="false", expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"`. */
export function parseRestoreHeader(v: string | undefined): { ongoing: boolean; expiry?: string } | null {
  if (!v) return null;
  const ongoing = /ongoing-request\s*=\s*"(true|false)"/i.exec(v);
  if (!ongoing) return null;
  const expiry = /expiry-date\s*=\s*"([^"]+)"/i.exec(v);
  return { ongoing: ongoing[1]!.toLowerCase() === 'true', ...(expiry ? { expiry: expiry[1] } : {}) };
}

export class S3Archive implements ArchiveTarget {
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private lock: Promise<boolean> | null = null;

  constructor(
    readonly loc: string,
    readonly storageClass: ArchiveStorageClass,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(loc)!;
    this.bucket = m[1]!;
    this.prefix = m[2] ? m[2] + '/' : '';
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const endpoint = (env.AWS_ENDPOINT_URL_S3 || undefined) ?? (env.AWS_ENDPOINT_URL || undefined);
    this.client = new S3Client({
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
      ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
      followRegionRedirects: true,
      // Ceph RGW 16.2 does not understand aws-chunked bodies (../shared/tools/README.md); the
      // SHA-256 is sent as x-amz-checksum-sha256 computed here instead.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 4,
    });
  }

  key(log: string, rel: string): string {
    return `${this.prefix}${log}/${rel}`;
  }

  async probe(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (e) {
      throw s3Failure(this.loc, 'reach the bucket', e);
    }
  }

  /** Whether the bucket has Object Lock enabled (asked once). */
  objectLock(): Promise<boolean> {
    this.lock ??= this.client
      .send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket }))
      .then((r) => r.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled')
      .catch((e: SdkError) => {
        if (e?.name === 'ObjectLockConfigurationNotFoundError' || e?.Code === 'ObjectLockConfigurationNotFoundError' || e?.$metadata?.httpStatusCode === 404) return false;
        this.lock = null;
        throw s3Failure(this.loc, 'read the Object Lock configuration', e);
      });
    return this.lock;
  }

  async put(log: string, rel: string, data: Buffer, opts: { sha256: string; retainUntil?: Date }): Promise<PutResult> {
    const locked = opts.retainUntil !== undefined && (await this.objectLock());
    try {
      const r = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key(log, rel),
          Body: data,
          ContentType: 'application/octet-stream',
          StorageClass: this.storageClass,
          ChecksumSHA256: Buffer.from(opts.sha256, 'hex').toString('base64'),
          ...(locked ? { ObjectLockMode: 'COMPLIANCE' as const, ObjectLockRetainUntilDate: opts.retainUntil } : {}),
        }),
      );
      return { ...(r.VersionId ? { versionId: r.VersionId } : {}), storageClass: this.storageClass, ...(locked ? { lockUntil: opts.retainUntil!.toISOString() } : {}) };
    } catch (e) {
      throw s3Failure(this.loc, `write ${rel} of log "${log}"`, e);
    }
  }

  async check(log: string, rel: string, f: Pick<ArchivedFile, 'sha256' | 'size' | 'versionId'>): Promise<void> {
    const Key = this.key(log, rel);
    let h;
    try {
      h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key, ChecksumMode: 'ENABLED', ...(f.versionId ? { VersionId: f.versionId } : {}) }));
    } catch (e) {
      throw s3Failure(this.loc, `check ${rel} of log "${log}"`, e);
    }
    if (h.ContentLength !== undefined && h.ContentLength !== f.size) {
      throw new CustodyError('STORAGE_CORRUPT', `The archived copy of ${rel} of log "${log}" in ${this.loc} has ${h.ContentLength} bytes, not ${f.size}.`);
    }
    if (h.ChecksumSHA256) {
      // S3 computed and verified it on upload (whole-object checksum, not a multipart one).
      if (h.ChecksumSHA256 !== Buffer.from(f.sha256, 'hex').toString('base64')) {
        throw new CustodyError('STORAGE_CORRUPT', `The archived copy of ${rel} of log "${log}" in ${this.loc} has a different SHA-256 than the hot copy.`);
      }
      return;
    }
    // No stored checksum (Ceph RGW 16.2 ignores x-amz-checksum-sha256): read it back.
    if (COLD_CLASSES.has(h.StorageClass ?? '')) return;
    const b = await this.fetch(log, rel, f.versionId);
    if (b === 'cold') return;
    checkBytes(b, f.sha256, `${rel} of log "${log}" in ${this.loc}`);
  }

  private async fetch(log: string, rel: string, versionId: string | undefined): Promise<Buffer | 'cold'> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(log, rel), ...(versionId ? { VersionId: versionId } : {}) }));
      const bytes = r.Body ? await r.Body.transformToByteArray() : new Uint8Array();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (e) {
      const err = e as SdkError;
      if (err?.name === 'InvalidObjectState' || err?.Code === 'InvalidObjectState') return 'cold';
      if (err?.name === 'NoSuchKey' || err?.name === 'NoSuchVersion') {
        throw new CustodyError('STORAGE_CORRUPT', `The archived copy of ${rel} of log "${log}" is missing from ${this.loc}; restore it from a replica of the bucket.`);
      }
      throw s3Failure(this.loc, `read ${rel} of log "${log}"`, e);
    }
  }

  async get(log: string, rel: string, f: ArchivedFile, restoreDays: number): Promise<Buffer> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const b = await this.fetch(log, rel, f.versionId);
      if (b !== 'cold') {
        checkBytes(b, f.sha256, `${rel} of log "${log}" in ${this.loc}`);
        return b;
      }
      const state = await this.restore(log, rel, f, restoreDays);
      if (state !== 'restored') {
        throw this.pending(log, rel, f, state, restoreDays);
      }
      // Restored between our GetObject and HeadObject: read it again.
    }
    throw this.pending(log, rel, f, 'in-progress', restoreDays);
  }

  /** Starts a restore unless one runs or has finished; says which. */
  private async restore(log: string, rel: string, f: ArchivedFile, days: number): Promise<'started' | 'in-progress' | 'restored'> {
    const Key = this.key(log, rel);
    const VersionId = f.versionId;
    let head;
    try {
      head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key, ...(VersionId ? { VersionId } : {}) }));
    } catch (e) {
      throw s3Failure(this.loc, `look up ${rel} of log "${log}"`, e);
    }
    if (head.StorageClass) f.class = head.StorageClass;
    const r = parseRestoreHeader(head.Restore);
    if (r?.ongoing) return 'in-progress';
    if (r && !r.ongoing && (!r.expiry || Date.parse(r.expiry) > Date.now())) return 'restored';
    try {
      await this.client.send(new RestoreObjectCommand({ Bucket: this.bucket, Key, ...(VersionId ? { VersionId } : {}), RestoreRequest: { Days: days, GlacierJobParameters: { Tier: 'Standard' } } }));
      return 'started';
    } catch (e) {
      const err = e as SdkError;
      if (err?.name === 'RestoreAlreadyInProgress' || err?.Code === 'RestoreAlreadyInProgress' || err?.$metadata?.httpStatusCode === 409) return 'in-progress';
      throw s3Failure(this.loc, `start a restore of ${rel} of log "${log}"`, e);
    }
  }

  private pending(log: string, rel: string, f: ArchivedFile, state: 'started' | 'in-progress', days: number): CustodyError {
    const cls = f.class ?? this.storageClass;
    const t = RESTORE_TIME[cls] ?? RESTORE_TIME['GLACIER']!;
    const retryAfter = state === 'started' ? t.retryAfter : POLL_SECONDS;
    const what = `${rel} of log "${log}"`;
    const msg =
      state === 'started'
        ? `${what} is archived in S3 ${cls}; a restore was started now and takes ${t.text}. Ask again after that; the restored copy stays readable for ${days} days.`
        : `${what} is archived in S3 ${cls} and its restore is in progress (it takes ${t.text} from when it was started). Ask again later; proofs and \`custody verify --hashes-only\` work meanwhile.`;
    return new CustodyError('ARCHIVE_RESTORE_PENDING', msg, {
      log,
      file: rel,
      archive: this.loc,
      storageClass: cls,
      restore: state,
      tier: 'Standard',
      expected: t.text,
      restoreDays: days,
      retryAfter,
    });
  }

  async remove(log: string, rel: string, f: ArchivedFile): Promise<void> {
    try {
      // With a version id the version itself goes (a delete marker would leave the bytes);
      // Object Lock refuses it until the lock date, which is the log's retention date.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(log, rel), ...(f.versionId ? { VersionId: f.versionId } : {}) }));
    } catch (e) {
      const err = e as SdkError;
      if (err?.name === 'NoSuchKey' || err?.name === 'NoSuchVersion') return;
      if (err?.name === 'AccessDenied' && f.lockUntil && Date.parse(f.lockUntil) > Date.now()) {
        throw new CustodyError('ARCHIVE_UNAVAILABLE', `S3 Object Lock (COMPLIANCE) keeps the archived ${rel} of log "${log}" in ${this.loc} until ${f.lockUntil}; it cannot be deleted before then. The purge is finished at a start of the vault after that date.`, { archive: this.loc, lockUntil: f.lockUntil, s3Error: err.name });
      }
      throw s3Failure(this.loc, `delete ${rel} of log "${log}"`, e);
    }
  }

  close(): void {
    this.client.destroy();
  }
}

export { sha256hex };
