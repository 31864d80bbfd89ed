/**
 * The object layer of the S3 storage driver (issue 7): immutable objects in a bucket with
 * Object Lock, written so that not even the vault's own credentials can remove or replace them.
 *
 * - Every immutable object (full hash tiles, entry bundles, blobs) is written with Object Lock
 *   retention in COMPLIANCE mode until the log's retention date, and with Content-MD5, which S3
 *   requires on PUTs that carry Object Lock headers (and Ceph RGW 16 understands, unlike the
 *   SDK's default aws-chunked checksums — ../shared/tools/README.md).
 * - In a versioned (Object Lock) bucket a PUT to an existing key adds a version; it cannot
 *   replace the locked one. A DELETE without a version id only adds a delete marker. Reads of
 *   immutable objects therefore take the key's OLDEST version (`readOriginal`): the first write
 *   is the one the tree's hashes commit to, and whatever was written after it under the same key
 *   (by mistake, or by someone holding the credentials) is ignored and reported.
 * - Throttling and server errors (503 SlowDown, 500, 502, 504, resets, timeouts) are retried
 *   with capped exponential backoff and full jitter until a deadline; then the caller gets
 *   STORAGE_UNAVAILABLE with a Retry-After, never an unbounded queue.
 */
import { createHash } from 'node:crypto';
import {
  S3Client,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  DeleteObjectCommand,
  ListObjectVersionsCommand,
  paginateListObjectsV2,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { CustodyError } from '../../errors.js';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix (no leading slash); '' or ending in '/'. */
  prefix: string;
  /** A ready client; otherwise one is made from the standard AWS environment (s3ClientFromEnv). */
  client?: S3Client;
  /** How long one operation may keep retrying throttling and server errors (default 20 s). */
  retryDeadlineMs?: number;
  /** First backoff step (default 50 ms) and the cap of one step (default 2 s). */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Injected for tests of the retry schedule. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** What a retry attempt saw, for logs and tests. */
export interface RetryNote {
  op: string;
  key: string;
  attempt: number;
  error: string;
  waitMs: number;
}

const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TimeoutError',
  'RequestTimeoutException',
]);
const RETRYABLE_NET = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  cause?: { code?: string };
}

/** Whether an SDK failure is worth retrying (throttling, 5xx, network). */
export function isRetryable(e: unknown): boolean {
  const err = e as SdkError;
  const status = err?.$metadata?.httpStatusCode;
  if (status !== undefined && (status === 429 || status >= 500)) return true;
  if (err?.name && RETRYABLE_NAMES.has(err.name)) return true;
  const net = err?.code ?? err?.cause?.code;
  if (net && RETRYABLE_NET.has(net)) return true;
  return status === undefined && err?.$retryable !== undefined;
}

function errName(e: unknown): string {
  const err = e as SdkError;
  return err?.name ?? err?.Code ?? err?.code ?? 'Error';
}

/** A client for the bucket from the standard AWS variables (AWS_ENDPOINT_URL_S3, AWS_REGION, credentials chain). */
export function s3ClientFromEnv(env: NodeJS.ProcessEnv = process.env, extra: Partial<S3ClientConfig> = {}): S3Client {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const endpoint = (env.AWS_ENDPOINT_URL_S3 || undefined) ?? (env.AWS_ENDPOINT_URL || undefined);
  return new S3Client({
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Retries are ours (below): one schedule, one deadline, visible in the notes.
    maxAttempts: 1,
    ...extra,
  });
}

export class S3ObjectStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  /** The last retries seen (bounded), for diagnostics and tests. */
  readonly retries: RetryNote[] = [];
  private readonly deadlineMs: number;
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(opts: S3StoreOptions) {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(opts.bucket)) {
      throw new CustodyError('CONFIG', `${JSON.stringify(opts.bucket)} is not an S3 bucket name (3–63 lower-case letters, digits, dots and hyphens).`);
    }
    if (opts.prefix !== '' && (!opts.prefix.endsWith('/') || opts.prefix.startsWith('/') || opts.prefix.includes('//'))) {
      throw new CustodyError('CONFIG', `The S3 prefix ${JSON.stringify(opts.prefix)} must be empty or look like "custody/" (no leading slash, ending in one).`);
    }
    this.bucket = opts.bucket;
    this.prefix = opts.prefix;
    this.client = opts.client ?? s3ClientFromEnv();
    this.deadlineMs = opts.retryDeadlineMs ?? 20_000;
    this.baseMs = opts.backoffBaseMs ?? 50;
    this.capMs = opts.backoffCapMs ?? 2_000;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = opts.random ?? Math.random;
  }

  private fullKey(key: string): string {
    if (key === '' || key.startsWith('/') || key.split('/').some((p) => p === '' || p === '.' || p === '..')) {
      throw new CustodyError('INTERNAL', `Not an object key: ${JSON.stringify(key)}.`);
    }
    return this.prefix + key;
  }

  private where(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  /** Runs one S3 call with the retry schedule; non-retryable failures are thrown at once. */
  private async withRetries<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (!isRetryable(e)) throw e;
        // Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").
        const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(attempt - 1, 20));
        const waitMs = Math.floor(this.random() * ceiling);
        const left = this.deadlineMs - (Date.now() - started);
        if (left <= waitMs) {
          throw new CustodyError(
            'STORAGE_UNAVAILABLE',
            `S3 kept failing to ${op} ${this.where(key)} for ${Math.round((Date.now() - started) / 1000)} s (${attempt} attempts, last: ${errName(e)}); acknowledged entries are safe in the journal. Check the bucket's endpoint and request rate; retry later.`,
            { retryAfter: Math.max(1, Math.ceil(this.capMs / 1000)), s3Error: errName(e), attempts: attempt },
          );
        }
        if (this.retries.length >= 100) this.retries.shift();
        this.retries.push({ op, key, attempt, error: errName(e), waitMs });
        await this.sleep(waitMs);
      }
    }
  }

  /**
   * Writes an immutable object: Content-MD5, and COMPLIANCE retention until `retainUntil`
   * (omitted when null: for buckets without Object Lock, e.g. a test of the retry schedule).
   * Returns the version id S3 gave it (undefined on an unversioned bucket).
   */
  async putImmutable(key: string, body: Uint8Array, retainUntil: Date | null): Promise<{ versionId?: string }> {
    const Key = this.fullKey(key);
    const md5 = createHash('md5').update(body).digest('base64');
    try {
      const r = await this.withRetries('write', key, () =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: body,
            ContentMD5: md5,
            ContentType: 'application/octet-stream',
            ...(retainUntil ? { ObjectLockMode: 'COMPLIANCE' as const, ObjectLockRetainUntilDate: retainUntil } : {}),
          }),
        ),
      );
      return r.VersionId ? { versionId: r.VersionId } : {};
    } catch (e) {
      throw this.describe(e, 'write', key);
    }
  }

  /**
   * Writes a mutable object (the checkpoint, shredded.json): Content-MD5, no retention headers.
   * Each write adds a version; a bucket with a default retention locks it anyway (README.md).
   */
  async put(key: string, body: Uint8Array): Promise<{ versionId?: string }> {
    return this.putImmutable(key, body, null);
  }

  /** Whether `key` has a current version (HEAD). */
  async exists(key: string): Promise<boolean> {
    const Key = this.fullKey(key);
    try {
      return await this.withRetries('inspect', key, async () => {
        try {
          await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
          return true;
        } catch (e) {
          if (errName(e) === 'NotFound' || errName(e) === 'NoSuchKey' || (e as SdkError)?.$metadata?.httpStatusCode === 404) return false;
          throw e;
        }
      });
    } catch (e) {
      throw this.describe(e, 'inspect', key);
    }
  }

  /** Every version and delete marker of every key under `sub` (relative keys). */
  async versionsUnder(sub: string): Promise<Array<{ key: string; versionId: string; deleteMarker: boolean }>> {
    const out: Array<{ key: string; versionId: string; deleteMarker: boolean }> = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    try {
      for (;;) {
        const r = await this.withRetries('list versions under', sub, () =>
          this.client.send(new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: this.prefix + sub, KeyMarker: keyMarker, VersionIdMarker: versionMarker, MaxKeys: 1000 })),
        );
        for (const v of r.Versions ?? []) if (v.Key && v.VersionId) out.push({ key: v.Key.slice(this.prefix.length), versionId: v.VersionId, deleteMarker: false });
        for (const m of r.DeleteMarkers ?? []) if (m.Key && m.VersionId) out.push({ key: m.Key.slice(this.prefix.length), versionId: m.VersionId, deleteMarker: true });
        if (!r.IsTruncated) break;
        keyMarker = r.NextKeyMarker;
        versionMarker = r.NextVersionIdMarker;
      }
    } catch (e) {
      throw this.describe(e, 'list versions under', sub);
    }
    return out;
  }

  /**
   * Deletes one version for good (DeleteObject with VersionId). S3 refuses it (AccessDenied)
   * while the version is under COMPLIANCE retention; the error then names the retain-until date.
   */
  async deleteVersion(key: string, versionId: string): Promise<void> {
    const Key = this.fullKey(key);
    try {
      await this.withRetries('delete', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key, VersionId: versionId })));
    } catch (e) {
      if (errName(e) === 'AccessDenied') {
        let until: Date | undefined;
        try {
          const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key, VersionId: versionId }));
          until = h.ObjectLockRetainUntilDate;
        } catch {
          /* the date stays unknown */
        }
        throw new CustodyError(
          'OBJECT_LOCKED',
          `Cannot delete ${this.where(key)} (version ${versionId}): S3 refused it${until ? ` because it is locked in COMPLIANCE mode until ${until.toISOString()}; it can be deleted after that date` : ', probably because it is still under Object Lock retention'}.`,
          { s3Error: 'AccessDenied', ...(until ? { retainUntil: until.toISOString() } : {}) },
        );
      }
      throw this.describe(e, 'delete', key);
    }
  }

  /** The current bytes of `key`, or null when there is none. */
  async read(key: string, versionId?: string): Promise<Buffer | null> {
    const Key = this.fullKey(key);
    try {
      return await this.withRetries('read', key, async () => {
        try {
          const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, ...(versionId ? { VersionId: versionId } : {}) }));
          if (!r.Body) return Buffer.alloc(0);
          const bytes = await r.Body.transformToByteArray();
          return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        } catch (e) {
          if (errName(e) === 'NoSuchKey' || (e as SdkError)?.$metadata?.httpStatusCode === 404) return null;
          throw e;
        }
      });
    } catch (e) {
      throw this.describe(e, 'read', key);
    }
  }

  /** Every version of exactly `key`, oldest first (delete markers flagged). */
  async versions(key: string): Promise<Array<{ versionId: string; lastModified: Date; deleteMarker: boolean; size: number }>> {
    const Key = this.fullKey(key);
    const out: Array<{ versionId: string; lastModified: Date; deleteMarker: boolean; size: number }> = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    try {
      for (;;) {
        const r = await this.withRetries('list versions of', key, () =>
          this.client.send(new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: Key, KeyMarker: keyMarker, VersionIdMarker: versionMarker, MaxKeys: 1000 })),
        );
        for (const v of r.Versions ?? []) {
          if (v.Key === Key && v.VersionId) out.push({ versionId: v.VersionId, lastModified: v.LastModified ?? new Date(0), deleteMarker: false, size: v.Size ?? 0 });
        }
        for (const m of r.DeleteMarkers ?? []) {
          if (m.Key === Key && m.VersionId) out.push({ versionId: m.VersionId, lastModified: m.LastModified ?? new Date(0), deleteMarker: true, size: 0 });
        }
        if (!r.IsTruncated) break;
        keyMarker = r.NextKeyMarker;
        versionMarker = r.NextVersionIdMarker;
      }
    } catch (e) {
      throw this.describe(e, 'list versions of', key);
    }
    // S3 lists the newest first; equal times (one-second resolution on some engines) keep S3's order reversed.
    return out.reverse().sort((a, b) => a.lastModified.getTime() - b.lastModified.getTime());
  }

  /**
   * The first bytes ever written under an immutable key, with how many later versions and
   * delete markers exist (`later` > 0 means someone tried to replace or delete it).
   */
  async readOriginal(key: string): Promise<{ body: Buffer; versionId: string; later: number } | null> {
    const vs = await this.versions(key);
    const first = vs.find((v) => !v.deleteMarker);
    if (!first) return null;
    const body = await this.read(key, first.versionId);
    if (body === null) return null;
    return { body, versionId: first.versionId, later: vs.length - 1 - vs.indexOf(first) };
  }

  /** Retention facts of the current version, as S3 reports them. */
  async retention(key: string): Promise<{ mode?: string; retainUntil?: Date; versionId?: string }> {
    const Key = this.fullKey(key);
    try {
      const h = await this.withRetries('inspect', key, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key })));
      return { mode: h.ObjectLockMode, retainUntil: h.ObjectLockRetainUntilDate, versionId: h.VersionId };
    } catch (e) {
      throw this.describe(e, 'inspect', key);
    }
  }

  /** Keys under `sub` (relative to the store's prefix), in key order, one page at a time. */
  async *list(sub = ''): AsyncGenerator<{ key: string; size: number }> {
    const pages = paginateListObjectsV2({ client: this.client, pageSize: 1000 }, { Bucket: this.bucket, Prefix: this.prefix + sub });
    const it = pages[Symbol.asyncIterator]();
    for (;;) {
      let page: IteratorResult<{ Contents?: Array<{ Key?: string; Size?: number }> }>;
      try {
        page = await this.withRetries('list', sub || '(all)', () => it.next());
      } catch (e) {
        throw this.describe(e, 'list', sub);
      }
      if (page.done) return;
      for (const o of page.value.Contents ?? []) if (o.Key !== undefined) yield { key: o.Key.slice(this.prefix.length), size: o.Size ?? 0 };
    }
  }

  private describe(e: unknown, op: string, key: string): CustodyError {
    if (e instanceof CustodyError) return e;
    const name = errName(e);
    const status = (e as SdkError)?.$metadata?.httpStatusCode;
    let hint: string;
    switch (name) {
      case 'AccessDenied':
        hint = 'access was denied: the vault role needs s3:PutObject, s3:PutObjectRetention, s3:GetObject, s3:GetObjectVersion, s3:ListBucket and s3:ListBucketVersions on the bucket (docs/AWS.md)';
        break;
      case 'NoSuchBucket':
        hint = 'there is no such bucket: check the name, AWS_ENDPOINT_URL_S3 and AWS_REGION';
        break;
      case 'InvalidRequest':
        hint = 'S3 refused the request; a bucket without Object Lock refuses retention headers: create the bucket with Object Lock enabled';
        break;
      case 'InvalidAccessKeyId':
      case 'SignatureDoesNotMatch':
        hint = 'the S3 credentials were refused: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY';
        break;
      default:
        hint = `S3 answered ${name}${status ? ` (HTTP ${status})` : ''}`;
    }
    return new CustodyError('STORAGE_UNAVAILABLE', `Cannot ${op} ${this.where(key)}: ${hint}.`, { s3Error: name, ...(status ? { httpStatus: status } : {}) });
  }

  close(): void {
    this.client.destroy();
  }
}
