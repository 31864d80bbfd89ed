/**
 * Reading a bucket for `custody import s3://bucket/prefix`: a streamed listing (one page of
 * at most 1,000 keys in memory at a time) and whole-object reads, through @aws-sdk/client-s3.
 *
 * Where and as whom, from the standard AWS settings: the endpoint from --endpoint,
 * AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (then path-style addressing, as S3-compatible
 * servers such as Ceph RGW or MinIO need); the credentials from the SDK's default chain
 * (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, SSO, the instance role …); the region
 * from AWS_REGION / AWS_DEFAULT_REGION (us-east-1 when unset; S3 redirects are followed).
 * Checksums are computed and validated only when S3 requires them: Ceph RGW 16.2 does not
 * understand the SDK's default aws-chunked uploads (../shared/tools/README.md).
 */
import { S3Client, GetObjectCommand, paginateListObjectsV2, type _Object } from '@aws-sdk/client-s3';
import { CustodyError } from '../errors.js';

export interface S3Location {
  bucket: string;
  prefix: string;
}

/** `s3://bucket/prefix` → bucket and prefix (the prefix may be empty). */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m || !/^[a-zA-Z0-9][a-zA-Z0-9._-]{1,254}$/.test(m[1]!)) {
    throw new CustodyError('IMPORT_SOURCE', `${JSON.stringify(url)} is not an S3 location; write it as s3://bucket/prefix (for example s3://my-log-archive/AWSLogs/).`);
  }
  return { bucket: m[1]!, prefix: m[2] ?? '' };
}

export interface S3Options {
  /** S3 endpoint URL (S3-compatible servers); default from the AWS environment. */
  endpoint?: string;
  env?: NodeJS.ProcessEnv;
}

export interface S3ObjectInfo {
  key: string;
  size: number;
  /** Without quotes. */
  etag: string;
}

/** A plain sentence for an SDK failure, naming what to check. */
export function describeS3Error(e: unknown, what: string, where: string): CustodyError {
  const err = e as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number }; cause?: { code?: string } };
  const name = err?.name ?? 'Error';
  const status = err?.$metadata?.httpStatusCode;
  const net = err?.code ?? err?.cause?.code;
  let hint: string;
  switch (name) {
    case 'InvalidAccessKeyId':
    case 'SignatureDoesNotMatch':
    case 'InvalidToken':
    case 'ExpiredToken':
    case 'CredentialsProviderError':
      hint = 'the S3 credentials were refused: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)';
      break;
    case 'AccessDenied':
      hint = 'access was denied: the credentials need s3:ListBucket on the bucket and s3:GetObject on its objects';
      break;
    case 'NoSuchBucket':
      hint = 'there is no such bucket: check the name, the endpoint and AWS_REGION';
      break;
    case 'PermanentRedirect':
    case 'AuthorizationHeaderMalformed':
      hint = 'the bucket is in another region: set AWS_REGION to the bucket\'s region';
      break;
    default:
      hint = net
        ? `the S3 endpoint cannot be reached (${net}): check --endpoint, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the network`
        : `S3 answered ${name}${status ? ` (HTTP ${status})` : ''}`;
  }
  const detail = err?.message && err.message !== name && !/^UnknownError$/.test(err.message) ? `: ${err.message.slice(0, 300)}` : '';
  return new CustodyError('IMPORT_SOURCE', `Cannot ${what} ${where}: ${hint}${detail}.`, { s3Error: name, ...(status ? { httpStatus: status } : {}) });
}

export class S3Reader {
  readonly client: S3Client;
  readonly endpoint: string | undefined;

  constructor(opts: S3Options = {}) {
    const env = opts.env ?? process.env;
    // The SDK warns on every run under Node 20 that its releases from 2027 need Node 22: a
    // note for whoever upgrades the dependency, not something a CLI user can act on.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const endpoint = opts.endpoint ?? (env.AWS_ENDPOINT_URL_S3 || undefined) ?? (env.AWS_ENDPOINT_URL || undefined);
    if (endpoint !== undefined) {
      try {
        new URL(endpoint);
      } catch {
        throw new CustodyError('IMPORT_SOURCE', `The S3 endpoint ${JSON.stringify(endpoint)} is not a URL; for example http://127.0.0.1:7480.`);
      }
    }
    this.endpoint = endpoint;
    this.client = new S3Client({
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
      ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
      followRegionRedirects: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 4,
    });
  }

  /** Every object under the prefix, in key order, one listing page at a time. */
  async *list(loc: S3Location): AsyncGenerator<S3ObjectInfo> {
    const where = `s3://${loc.bucket}/${loc.prefix}`;
    const pages = paginateListObjectsV2({ client: this.client, pageSize: 1000 }, { Bucket: loc.bucket, ...(loc.prefix ? { Prefix: loc.prefix } : {}) });
    const it = pages[Symbol.asyncIterator]();
    for (;;) {
      let page: IteratorResult<{ Contents?: _Object[] }>;
      try {
        page = await it.next();
      } catch (e) {
        throw describeS3Error(e, 'list', where);
      }
      if (page.done) return;
      for (const o of page.value.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield { key: o.Key, size: o.Size ?? 0, etag: (o.ETag ?? '').replace(/"/g, '') };
      }
    }
  }

  /** The object's bytes exactly as stored (a .gz stays compressed) and its ETag. */
  async read(bucket: string, key: string, signal?: AbortSignal): Promise<{ body: Buffer; etag: string }> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), signal ? { abortSignal: signal } : {});
      if (!r.Body) return { body: Buffer.alloc(0), etag: (r.ETag ?? '').replace(/"/g, '') };
      const bytes = await r.Body.transformToByteArray();
      return { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), etag: (r.ETag ?? '').replace(/"/g, '') };
    } catch (e) {
      throw describeS3Error(e, 'read', `s3://${bucket}/${key}`);
    }
  }

  close(): void {
    this.client.destroy();
  }
}
