/**
 * The trail's bucket in S3 (or an S3-compatible server): one streamed listing of the prefix,
 * then GetObject by key. A digest's signature comes from the same GetObject answer's user
 * metadata (x-amz-meta-signature, x-amz-meta-signature-algorithm) — the metadata HeadObject
 * returns, read in the same request as the bytes it signs.
 */
import { Readable } from 'node:stream';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3Reader, describeS3Error, type S3Location } from '../cli/s3.js';
import { signatureFromMetadata } from './format.js';
import type { DigestObject, ObjectStore, StoredObject } from './store.js';

function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === 'NoSuchKey' || err?.name === 'NotFound' || err?.$metadata?.httpStatusCode === 404;
}

export class S3Store implements ObjectStore {
  readonly description: string;
  readonly bucket: string;
  readonly scope: string;
  private readonly reader: S3Reader;
  private readonly client: S3Client;

  constructor(
    private readonly loc: S3Location,
    opts: { endpoint?: string } = {},
  ) {
    this.reader = new S3Reader({ endpoint: opts.endpoint });
    this.client = this.reader.client;
    this.bucket = loc.bucket;
    this.scope = loc.prefix;
    this.description = `s3://${loc.bucket}/${loc.prefix}`;
  }

  async *list(): AsyncIterable<StoredObject> {
    for await (const o of this.reader.list(this.loc)) yield { key: o.key, size: o.size };
  }

  async readDigest(key: string, maxBytes: number): Promise<DigestObject | null | { tooLarge: number }> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const size = r.ContentLength ?? 0;
      if (size > maxBytes) {
        (r.Body as Readable | undefined)?.destroy?.();
        return { tooLarge: size };
      }
      const bytes = r.Body ? await r.Body.transformToByteArray() : new Uint8Array(0);
      return { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), signature: signatureFromMetadata(r.Metadata) };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw describeS3Error(e, 'read', `s3://${this.bucket}/${key}`);
    }
  }

  async read(key: string, maxBytes: number): Promise<Buffer | null | { tooLarge: number }> {
    const r = await this.readDigest(key, maxBytes);
    return r === null || !('body' in r) ? r : r.body;
  }

  async open(key: string): Promise<Readable | null> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!r.Body) return Readable.from([]);
      return r.Body as Readable;
    } catch (e) {
      if (isNotFound(e)) return null;
      throw describeS3Error(e, 'read', `s3://${this.bucket}/${key}`);
    }
  }

  where(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  close(): void {
    this.reader.close();
  }
}
