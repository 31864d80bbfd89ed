/**
 * Where the trail's objects are read from: a local copy of the bucket (a folder) or S3
 * (s3-store.ts). The validator lists a store ONCE and then reads objects by key.
 *
 * A folder copy cannot hold S3 object metadata, and a digest's signature lives there. So each
 * digest file in a folder needs a sidecar next to it, `<digest file name>.metadata.json`, holding
 * either `{"signature": "<hex>", "signature-algorithm": "SHA256withRSA"}` or the whole output
 * of `aws s3api head-object --bucket B --key K` (its "Metadata" object is used).
 * docs/CLOUDTRAIL-VALIDATE.md shows how to make them.
 */
import { createReadStream } from 'node:fs';
import { opendir, readFile, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { CustodyError } from '../errors.js';
import { signatureFromMetadata, type SignatureMetadata } from './format.js';

export interface StoredObject {
  key: string;
  size: number;
}

/** A digest object as read: its bytes and its signature metadata (or why there is none). */
export interface DigestObject {
  body: Buffer;
  signature: SignatureMetadata | { error: string };
}

export interface ObjectStore {
  /** s3://bucket/prefix or the folder's absolute path. */
  readonly description: string;
  /** The bucket the objects are in; null when a folder was given without --bucket. */
  readonly bucket: string | null;
  /** Keys that do not start with this were not listed (they are outside what is validated). */
  readonly scope: string;
  /** Every object, once. */
  list(): AsyncIterable<StoredObject>;
  /** A digest file with its signature metadata; null when it does not exist. */
  readDigest(key: string, maxBytes: number): Promise<DigestObject | null | { tooLarge: number }>;
  /** The object's bytes as stored, whole, when at most maxBytes; null when it does not exist. */
  read(key: string, maxBytes: number): Promise<Buffer | null | { tooLarge: number }>;
  /** The object's bytes as stored, streamed (for large objects); null when it does not exist. */
  open(key: string): Promise<Readable | null>;
  /** How to name one key in a report (s3://bucket/key, or the file path). */
  where(key: string): string;
  close(): void;
}

export const SIDECAR_SUFFIX = '.metadata.json';
const MAX_SIDECAR_BYTES = 1024 * 1024;

/** A sidecar's text → the signature, or why it cannot be used. */
export function signatureFromSidecar(text: string): SignatureMetadata | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { error: `its metadata sidecar (${SIDECAR_SUFFIX}) is not JSON` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: `its metadata sidecar (${SIDECAR_SUFFIX}) is not a JSON object` };
  const o = v as Record<string, unknown>;
  // `aws s3api head-object` output has the user metadata under "Metadata".
  const meta = typeof o.Metadata === 'object' && o.Metadata !== null && !Array.isArray(o.Metadata) ? (o.Metadata as Record<string, unknown>) : o;
  const s = signatureFromMetadata(meta);
  return 'error' in s ? { error: s.error.replace(/^it has no/, `its metadata sidecar (${SIDECAR_SUFFIX}) has no`) } : s;
}

/**
 * A local copy of a bucket. Keys are `keyPrefix` + the path under the folder with `/`; the
 * folder is the bucket's root unless keyPrefix says which prefix it was copied from.
 */
export class FolderStore implements ObjectStore {
  readonly description: string;
  readonly scope: string;
  private readonly root: string;

  constructor(
    folder: string,
    readonly bucket: string | null,
    private readonly keyPrefix = '',
  ) {
    this.root = resolve(folder);
    this.description = this.root;
    this.scope = keyPrefix;
  }

  async *list(): AsyncIterable<StoredObject> {
    try {
      const s = await stat(this.root);
      if (!s.isDirectory()) throw new CustodyError('IMPORT_SOURCE', `${this.root} is not a folder; give the folder holding the copy of the bucket (the one with AWSLogs/ in it).`);
    } catch (e) {
      if (e instanceof CustodyError) throw e;
      throw new CustodyError('IMPORT_SOURCE', `Cannot read ${this.root}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (e as Error).message}.`);
    }
    const stack: string[] = [''];
    while (stack.length > 0) {
      const rel = stack.pop()!;
      const names: Array<{ name: string; dir: boolean; file: boolean }> = [];
      try {
        for await (const d of await opendir(join(this.root, rel))) names.push({ name: d.name, dir: d.isDirectory(), file: d.isFile() });
      } catch (e) {
        throw new CustodyError('IMPORT_SOURCE', `Cannot list ${join(this.root, rel)}: ${(e as Error).message}.`);
      }
      names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const subdirs: string[] = [];
      for (const n of names) {
        const path = rel === '' ? n.name : `${rel}/${n.name}`;
        if (n.dir) subdirs.push(path);
        else if (n.file && !n.name.endsWith(SIDECAR_SUFFIX)) {
          let size: number;
          try {
            size = (await stat(join(this.root, path))).size;
          } catch {
            continue; // removed while listing
          }
          yield { key: this.keyPrefix + path, size };
        }
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
  }

  private pathOf(key: string): string | null {
    if (!key.startsWith(this.keyPrefix)) return null;
    const rel = key.slice(this.keyPrefix.length);
    // A key from a digest is data: never let it leave the folder.
    if (rel === '' || rel.split('/').some((p) => p === '..' || p === '.' || p === '') || rel.includes('\0') || rel.includes('\\')) return null;
    const p = join(this.root, ...rel.split('/'));
    return p.startsWith(this.root + sep) ? p : null;
  }

  async read(key: string, maxBytes: number): Promise<Buffer | null | { tooLarge: number }> {
    const path = this.pathOf(key);
    if (!path) return null;
    let size: number;
    try {
      const s = await stat(path);
      if (!s.isFile()) return null;
      size = s.size;
    } catch {
      return null;
    }
    if (size > maxBytes) return { tooLarge: size };
    try {
      return await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CustodyError('IMPORT_SOURCE', `Cannot read ${path}: ${(e as Error).message}.`);
    }
  }

  async readDigest(key: string, maxBytes: number): Promise<DigestObject | null | { tooLarge: number }> {
    const body = await this.read(key, maxBytes);
    if (body === null || !Buffer.isBuffer(body)) return body;
    const path = this.pathOf(key)!;
    let signature: SignatureMetadata | { error: string };
    try {
      const s = await stat(path + SIDECAR_SUFFIX);
      if (s.size > MAX_SIDECAR_BYTES) signature = { error: `its metadata sidecar (${SIDECAR_SUFFIX}) is larger than 1 MiB` };
      else signature = signatureFromSidecar(await readFile(path + SIDECAR_SUFFIX, 'utf8'));
    } catch {
      signature = { error: `it has no metadata sidecar (${key.slice(key.lastIndexOf('/') + 1)}${SIDECAR_SUFFIX}) holding its S3 signature metadata` };
    }
    return { body, signature };
  }

  async open(key: string): Promise<Readable | null> {
    const path = this.pathOf(key);
    if (!path) return null;
    try {
      if (!(await stat(path)).isFile()) return null;
    } catch {
      return null;
    }
    return createReadStream(path, { highWaterMark: 256 * 1024 });
  }

  where(key: string): string {
    return this.pathOf(key) ?? key;
  }

  close(): void {}
}
