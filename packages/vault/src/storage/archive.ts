/**
 * The archive tier of a log (docs/ARCHIVE.md): where sealed entry bundles and blobs go when
 * they are older than the archive age, and the per-log manifest that says what is where.
 *
 *   <log dir>/archive.json     the manifest (hot, written atomically): per archived file its
 *                              location, SHA-256, size, storage class, S3 version, lock date
 *
 * An archive target keeps the hot layout under a per-log folder:
 *
 *   <archive-dir>/<log>/tile/entries/<N>          (disk)   full sealed bundles (width 256)
 *   <archive-dir>/<log>/blobs/<2 hex>/<64 hex>    (disk)   sealed blobs
 *   s3://bucket/<prefix>/<log>/tile/entries/<N>   (S3)     the same keys under the prefix
 *   s3://bucket/<prefix>/<log>/blobs/<2>/<64>     (S3)
 *
 * The files are moved as stored: still sealed (crypto/aead), so the archive never holds a
 * readable record. Hash tiles, checkpoints and shredded.json never move.
 */
import { readFileSync, statSync, existsSync, accessSync, constants as fsc } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import { dirname, join, resolve, isAbsolute } from 'node:path';
import { createHash } from 'node:crypto';
import { CustodyError } from '../errors.js';
import { writeFileAtomicSync, writeFileDurable, fsyncDirs } from './atomic.js';

/** S3 storage classes an archive may write (docs/ARCHIVE.md lists retrieval times). */
export const ARCHIVE_STORAGE_CLASSES = ['STANDARD', 'STANDARD_IA', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'] as const;
export type ArchiveStorageClass = (typeof ARCHIVE_STORAGE_CLASSES)[number];
/** Classes whose objects must be restored before GetObject answers (AWS S3 User Guide, "Restoring an archived object"). */
export const COLD_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE']);

export interface ArchivedFile {
  /** The target it was written to: file:///abs/dir or s3://bucket/prefix. */
  loc: string;
  sha256: string;
  size: number;
  at: string;
  class?: string;
  versionId?: string;
  lockUntil?: string;
  /**
   * Bundles only: what the retention planner needs (lifecycle/planner.ts bundleFacts), so it
   * never reads (restores) an S3-archived bundle: receive times (ms), the oldest entry, and
   * the file names of the blobs its entries reference.
   */
  facts?: { newest: number; oldest: number; oldestEntry: { index: number; received: string } | null; blobs: string[] };
}

export interface ArchiveManifestData {
  version: 1;
  /** Days a restored copy stays readable (RestoreObject Days). */
  restoreDays?: number;
  /** Where the mover writes now (the last configured location) and after how many days. */
  location?: string;
  afterDays?: number;
  storageClass?: string;
  bundles: Record<string, ArchivedFile>;
  blobs: Record<string, ArchivedFile>;
}

export interface ArchiveSettings {
  /** `file:///abs/dir` (or a plain absolute path) or `s3://bucket/prefix`. */
  location: string;
  /** S3 only: the class objects are written with (default STANDARD). */
  storageClass?: ArchiveStorageClass;
  /** S3 only: days a restored copy stays readable (default 7). */
  restoreDays?: number;
}

export function bundleRel(k: number, tilePathOf: (k: number) => string): string {
  return tilePathOf(k);
}

export function blobRel(name: string): string {
  return `blobs/${name.slice(0, 2)}/${name}`;
}

/** A configured location, normalised: `file:///abs` or `s3://bucket/prefix` (no trailing slash). */
export function normaliseLocation(where: string): string {
  if (where.startsWith('s3://')) {
    const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(where);
    if (!m) throw new CustodyError('CONFIG', `${JSON.stringify(where.slice(0, 200))} is not an S3 archive location; write it as s3://bucket/prefix.`);
    const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
    if (prefix.split('/').some((p) => p === '..' || p === '.')) throw new CustodyError('CONFIG', 'The S3 archive prefix must not contain "." or ".." segments.');
    return `s3://${m[1]}${prefix ? '/' + prefix : ''}`;
  }
  const path = where.startsWith('file://') ? decodeURIComponent(new URL(where).pathname) : where;
  if (!isAbsolute(path) && where.startsWith('file://')) throw new CustodyError('CONFIG', 'A file:// archive location must be absolute.');
  return 'file://' + resolve(path);
}

export interface PutResult {
  versionId?: string;
  storageClass?: string;
  lockUntil?: string;
}

/** Where archived files are written and read. */
export interface ArchiveTarget {
  readonly loc: string;
  /** Checks the target can be written (a clear CustodyError when not). */
  probe(): Promise<void>;
  put(log: string, rel: string, data: Buffer, opts: { sha256: string; retainUntil?: Date }): Promise<PutResult>;
  /** Checks the stored copy has this SHA-256 (reading it back, or S3's stored checksum). */
  check(log: string, rel: string, f: Pick<ArchivedFile, 'sha256' | 'size' | 'versionId'>): Promise<void>;
  get(log: string, rel: string, f: ArchivedFile, restoreDays: number): Promise<Buffer>;
  remove(log: string, rel: string, f: ArchivedFile): Promise<void>;
  close(): void;
}

export function archiveUnavailable(loc: string, what: string, e: unknown): CustodyError {
  const code = (e as NodeJS.ErrnoException)?.code;
  const why =
    code === 'ENOENT'
      ? 'it does not exist (is the archive volume mounted?)'
      : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
        ? 'the vault may not write there: give the vault user write access'
        : code === 'ENOSPC'
          ? 'the archive volume is full'
          : ((e as Error)?.message ?? String(e)).slice(0, 200);
  return new CustodyError('ARCHIVE_UNAVAILABLE', `Cannot ${what} in the archive ${loc}: ${why}.`, { archive: loc, ...(code ? { errno: code } : {}) });
}

/** The disk target: a directory on another volume (typically cheaper, slower storage). */
export class DiskArchive implements ArchiveTarget {
  readonly root: string;
  constructor(readonly loc: string) {
    this.root = decodeURIComponent(new URL(loc).pathname);
  }
  private path(log: string, rel: string): string {
    return join(this.root, log, rel);
  }
  async probe(): Promise<void> {
    try {
      if (!statSync(this.root).isDirectory()) throw Object.assign(new Error('it is not a directory'), { code: 'ENOTDIR' });
      accessSync(this.root, fsc.W_OK | fsc.X_OK);
    } catch (e) {
      throw archiveUnavailable(this.loc, 'write', e);
    }
  }
  async put(log: string, rel: string, data: Buffer): Promise<PutResult> {
    // The root is never created: an unmounted archive volume must not fill the disk beneath it.
    await this.probe();
    const p = this.path(log, rel);
    try {
      await writeFileDurable(p, data, 0o600);
      await fsyncDirs([dirname(p)]);
    } catch (e) {
      throw archiveUnavailable(this.loc, 'write ' + rel, e);
    }
    return {};
  }
  async check(log: string, rel: string, f: Pick<ArchivedFile, 'sha256' | 'size'>): Promise<void> {
    await this.get(log, rel, { ...f, loc: this.loc });
  }
  async get(log: string, rel: string, f: Pick<ArchivedFile, 'sha256' | 'size'> & { loc: string }): Promise<Buffer> {
    let b: Buffer;
    try {
      b = await readFile(this.path(log, rel));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && existsSync(this.root)) {
        throw new CustodyError('STORAGE_CORRUPT', `The archived copy of ${rel} of log "${log}" is missing from ${this.loc}; restore it from a backup of the archive volume.`);
      }
      throw archiveUnavailable(this.loc, 'read ' + rel, e);
    }
    checkBytes(b, f.sha256, `${rel} of log "${log}" in ${this.loc}`);
    return b;
  }
  async remove(log: string, rel: string): Promise<void> {
    const p = this.path(log, rel);
    try {
      await unlink(p);
      await fsyncDirs([dirname(p)]);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw archiveUnavailable(this.loc, 'delete ' + rel, e);
    }
  }
  close(): void {}
}

export function sha256hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export function checkBytes(b: Buffer, sha: string, what: string): void {
  if (sha256hex(b) !== sha) throw new CustodyError('STORAGE_CORRUPT', `The archived copy of ${what} does not match the SHA-256 recorded when it was archived: it was changed. Run \`custody verify\`.`);
}

const targets = new Map<string, Promise<ArchiveTarget>>();

/** The target for a location (one per process; the S3 client is loaded only when needed). */
export function targetFor(loc: string, settings: { storageClass?: ArchiveStorageClass } = {}): Promise<ArchiveTarget> {
  const key = `${loc}|${settings.storageClass ?? ''}`;
  let t = targets.get(key);
  if (!t) {
    t = loc.startsWith('s3://')
      ? import('./archive-s3.js').then((m) => new m.S3Archive(loc, settings.storageClass ?? 'STANDARD') as ArchiveTarget)
      : Promise.resolve(new DiskArchive(loc));
    t.catch(() => targets.delete(key));
    targets.set(key, t);
  }
  return t;
}

/** Tests: forget cached targets (e.g. after changing S3 environment variables). */
export function resetArchiveTargets(): void {
  for (const t of targets.values()) void t.then((x) => x.close()).catch(() => undefined);
  targets.clear();
}

/**
 * The manifest of one log (`<log dir>/archive.json`). Re-read when the file changes, so
 * readers in other threads and processes see what the mover recorded. Every change is a
 * synchronous read-modify-write with an atomic replace, so two changes on one thread never
 * interleave.
 */
export class ArchiveManifest {
  readonly path: string;
  private cached: ArchiveManifestData | null = null;
  private stamp = '';

  constructor(logDir: string) {
    this.path = join(logDir, 'archive.json');
  }

  read(): ArchiveManifestData {
    let st;
    try {
      st = statSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.cached = null;
        this.stamp = '';
        return { version: 1, bundles: {}, blobs: {} };
      }
      throw new CustodyError('STORAGE_UNAVAILABLE', `Cannot read ${this.path}: ${(e as Error).message}`);
    }
    const stamp = `${st.mtimeMs}|${st.size}|${st.ino}`;
    if (this.cached && stamp === this.stamp) return this.cached;
    let j: ArchiveManifestData;
    try {
      j = JSON.parse(readFileSync(this.path, 'utf8')) as ArchiveManifestData;
      if (j.version !== 1 || typeof j.bundles !== 'object' || typeof j.blobs !== 'object' || j.bundles === null || j.blobs === null) throw new Error('unexpected shape');
    } catch (e) {
      throw new CustodyError('STORAGE_CORRUPT', `${this.path} is not a valid archive manifest (${(e as Error).message.slice(0, 100)}); restore it from a backup — without it archived bundles cannot be found.`);
    }
    this.cached = j;
    this.stamp = stamp;
    return j;
  }

  exists(): boolean {
    return existsSync(this.path);
  }

  update(fn: (m: ArchiveManifestData) => void): void {
    const m = structuredClone(this.read());
    fn(m);
    writeFileAtomicSync(this.path, JSON.stringify(m) + '\n', 0o600);
    this.cached = null;
  }
}
