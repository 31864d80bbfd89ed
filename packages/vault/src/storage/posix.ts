/**
 * The POSIX storage driver: one log's C2SP tlog-tiles tree on a local file system, plus its
 * content-addressed blobs. Hash tiles and checkpoints are public hashes and stay plaintext;
 * entry bundles and blobs hold record content and are sealed (crypto/aead) at rest.
 *
 *   <dir>/tree/checkpoint                      signed checkpoint (C2SP tlog-checkpoint)
 *   <dir>/tree/tile/<L>/<N>[.p/<W>]            hash tiles
 *   <dir>/tree/tile/entries/<N>[.p/<W>]        sealed entry bundles
 *   <dir>/blobs/<2 hex>/<64 hex>               sealed records larger than an entry allows
 *   <dir>/shredded.json                        bundle ranges crypto-shredded by retention purges
 *   <dir>/archive.json                         full bundles and blobs moved to the archive tier
 *                                              (storage/archive.ts, lifecycle/archive.ts)
 *
 * A full bundle or blob missing here but listed in archive.json is read from the archive,
 * transparently (docs/ARCHIVE.md); hash tiles and checkpoints never move.
 *
 * Every write is write-temp + fsync + rename, and the directories are fsynced before the
 * checkpoint that refers to the new files is published (see sequencer/integrator.ts).
 */
import { readFile, readdir, rm, unlink } from 'node:fs/promises';
import { existsSync, readFileSync, statSync, unlinkSync, utimesSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import { tilePath, parseTilePath, encodeBundle, decodeBundle, type TileId } from '@custody/verify';
import { seal, open as openSealed } from '../crypto/aead.js';
import type { LogKeys } from '../crypto/keyring.js';
import { CustodyError } from '../errors.js';
import { writeFileDurable, fsyncDirs, writeFileAtomicSync } from './atomic.js';
import { storageError } from './journal.js';
import { ArchiveManifest, blobRel, targetFor, type ArchivedFile, type ArchiveManifestData } from './archive.js';
import type { LogStore, PendingWrite, ShredRecord } from './log-store.js';

export type { PendingWrite, ShredRecord } from './log-store.js';

async function readOrNull(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export class PosixLogStore implements LogStore {
  readonly kind = 'posix' as const;
  readonly treeDir: string;
  readonly blobDir: string;
  /** The archive manifest (archive.json) of this log. */
  readonly archive: ArchiveManifest;
  /** The log's name (the folder's name), the per-log folder in an archive. */
  readonly logName: string;

  constructor(
    readonly dir: string,
    readonly origin: string,
    private readonly keys: LogKeys,
  ) {
    this.treeDir = join(dir, 'tree');
    this.blobDir = join(dir, 'blobs');
    this.archive = new ArchiveManifest(dir);
    this.logName = basename(dir);
  }

  /** The hot path of a full sealed bundle. */
  bundlePath(index: number): string {
    return this.pathOf({ level: 'entries', index, width: 256 });
  }

  /** The path of a bundle relative to the log folder (the same in the archive). */
  bundleRel(index: number): string {
    return tilePath({ level: 'entries', index, width: 256 });
  }

  /** The hot path of a blob by its file name. */
  blobPathByName(name: string): string {
    return join(this.blobDir, name.slice(0, 2), name);
  }

  /** The archive record of a full bundle, or null when it was never archived. */
  archivedBundle(index: number): ArchivedFile | null {
    return this.archive.exists() ? (this.archive.read().bundles[String(index)] ?? null) : null;
  }

  /**
   * Whether a full bundle is only in an S3 archive. Reading it may start a restore: it is in a
   * cold class (GLACIER, DEEP_ARCHIVE) either from the start or by a lifecycle transition the
   * manifest cannot know about (custody aws lifecycle). The self-audit skips these.
   */
  isS3Archived(index: number): boolean {
    const f = this.archivedBundle(index);
    return f !== null && f.loc.startsWith('s3://') && !existsSync(this.bundlePath(index));
  }

  /** Reads an archived file, checking it against the SHA-256 recorded when it was archived. */
  private async readArchived(rel: string, f: ArchivedFile): Promise<Buffer> {
    const t = await targetFor(f.loc);
    return t.get(this.logName, rel, f, this.archive.read().restoreDays ?? 7);
  }

  private pathOf(t: TileId): string {
    return join(this.treeDir, tilePath(t));
  }

  private bundleContext(index: number, width: number): string {
    return `bundle ${this.origin} ${index} ${width}`;
  }

  async readCheckpoint(): Promise<string | null> {
    const b = await readOrNull(join(this.treeDir, 'checkpoint'));
    return b === null ? null : b.toString('utf8');
  }

  /**
   * A hash tile exactly as stored. A partial tile that was removed after its full tile was
   * written is served as the prefix of the full tile (C2SP tlog-tiles allows removing it).
   */
  async readTile(level: number, index: number, width: number): Promise<Buffer | null> {
    const b = await readOrNull(this.pathOf({ level, index, width }));
    if (b !== null || width === 256) return b;
    const full = await readOrNull(this.pathOf({ level, index, width: 256 }));
    return full === null ? null : full.subarray(0, width * 32);
  }

  /** The raw sealed bytes of a bundle file (for integrity tooling). */
  async readSealedBundle(index: number, width: number): Promise<Buffer | null> {
    const hot = await readOrNull(this.pathOf({ level: 'entries', index, width }));
    if (hot !== null || width !== 256) return hot;
    // Not hot: archived (only full bundles are), read back from the archive tier. Reading the
    // manifest after the miss is what makes this race-free: the mover records a bundle in the
    // manifest before it removes the hot copy (lifecycle/archive.ts).
    const f = this.archivedBundle(index);
    if (f === null) return null;
    return this.readArchived(this.bundleRel(index), f);
  }

  /** The decrypted entry bundle (C2SP encoding), or null when it does not exist. */
  async readBundle(index: number, width: number): Promise<Buffer | null> {
    const what = `entry bundle ${tilePath({ level: 'entries', index, width })} of ${this.origin}`;
    const sealed = await this.readSealedBundle(index, width);
    if (sealed !== null) return this.keys.openBundle(this.origin, index, this.bundleContext(index, width), sealed, what);
    const full = width === 256 ? null : await this.readSealedBundle(index, 256);
    if (full === null) {
      const shred = this.shredOf(index * 256);
      if (shred) {
        throw new CustodyError('ENTRY_SHREDDED', `Entries ${shred.from}–${shred.to - 1} of ${this.origin} were past retention and crypto-shredded by approved purge #${shred.purge}; their leaf hashes and proofs remain.`, { purge: shred.purge, from: shred.from, to: shred.to });
      }
      return null;
    }
    const plain = await this.keys.openBundle(this.origin, index, this.bundleContext(index, 256), full, what.replace(`.p/${width}`, ''));
    return Buffer.from(encodeBundle(decodeBundle(plain, 256).slice(0, width)));
  }

  tileWrite(t: { level: number; index: number; width: number; data: Uint8Array }): PendingWrite {
    return { key: tilePath(t), data: t.data };
  }

  /**
   * A sealed bundle of `width` entries, given as encoded pieces (uint16 length ‖ bytes each,
   * the C2SP bundle encoding) that are encrypted as one stream.
   */
  bundleWrite(index: number, encoded: Uint8Array[], width: number): PendingWrite {
    return {
      key: tilePath({ level: 'entries', index, width }),
      data: () => this.keys.sealBundle(this.origin, index, this.bundleContext(index, width), encoded),
    };
  }

  /** Writes files durably (each fsynced, then their directories). */
  async writeAll(writes: PendingWrite[], concurrency = 16): Promise<void> {
    try {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < writes.length) {
          const w = writes[next++]!;
          await writeFileDurable(this.keyPath(w.key), typeof w.data === 'function' ? w.data() : w.data);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, writes.length) }, worker));
      await fsyncDirs(writes.map((w) => dirname(this.keyPath(w.key))));
    } catch (e) {
      throw storageError(e, 'write tiles and bundles');
    }
  }

  /** The file of a store-relative key (a tile path under tree/). */
  private keyPath(key: string): string {
    return join(this.treeDir, tilePath(parseTilePath(key)));
  }

  async writeCheckpoint(text: string): Promise<void> {
    this.writeCheckpointSync(text);
  }

  /** Synchronous publication, for the sequencer's publish step (it orders it with the database). */
  writeCheckpointSync(text: string): void {
    try {
      writeFileAtomicSync(join(this.treeDir, 'checkpoint'), text);
    } catch (e) {
      throw storageError(e, 'publish the checkpoint');
    }
  }

  /** Removes the partial versions of a tile once its full version is durable. */
  async removePartials(level: number | 'entries', index: number): Promise<void> {
    const dir = this.pathOf({ level, index, width: 256 }) + '.p';
    if (!existsSync(dir)) return;
    for (const name of await readdir(dir)) await unlink(join(dir, name)).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * Removes temporary files a crash left behind (`.<name>.<hex>.tmp`, never served). Integration
   * writes only at the right edge of the tree, so only the directories at and just after the
   * edge of a tree of `size` entries, and the checkpoint's directory, can hold any.
   */
  async sweepTemporaryFiles(size: number): Promise<number> {
    const TMP = /^\..+\.[0-9a-f]{12}\.tmp$/;
    const dirs = new Set<string>([this.treeDir]);
    const levels: Array<number | 'entries'> = ['entries'];
    for (let l = 0; l === 0 || size >= 256 ** l; l++) levels.push(l);
    for (const level of levels) {
      const edge = Math.floor(size / (level === 'entries' ? 256 : 256 ** (level + 1)));
      for (const i of [edge, edge + 256]) dirs.add(dirname(this.pathOf({ level, index: i, width: 256 })));
    }
    let removed = 0;
    const sweep = async (dir: string, deeper: boolean): Promise<void> => {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        return;
      }
      for (const n of names) {
        if (TMP.test(n)) {
          await unlink(join(dir, n)).catch(() => undefined);
          removed++;
        } else if (deeper && n.endsWith('.p')) await sweep(join(dir, n), false);
      }
    };
    for (const d of dirs) await sweep(d, true);
    return removed;
  }

  // --- blobs: records larger than one entry allows -------------------------------------

  blobPath(sha256hex: string): string {
    const name = this.keys.blobName(Buffer.from(sha256hex, 'hex'));
    return join(this.blobDir, name.slice(0, 2), name);
  }

  /** Stores a record as a sealed blob (durably) and returns its SHA-256. Idempotent. */
  async writeBlob(record: Buffer): Promise<string> {
    const sha = createHash('sha256').update(record).digest('hex');
    const path = this.blobPath(sha);
    if (existsSync(path)) {
      // Touched (synchronously, like removeIdleBlob): a retention purge keeps a blob in use.
      try {
        const now = new Date();
        utimesSync(path, now, now);
        return sha;
      } catch {
        /* removed meanwhile: store it again */
      }
    }
    try {
      await writeFileDurable(path, seal(this.keys.activeKek, `blob ${this.origin} ${sha}`, record));
      await fsyncDirs([dirname(path), dirname(dirname(path))]);
    } catch (e) {
      throw storageError(e, 'store a large record');
    }
    return sha;
  }

  // --- shredding: retention purges (lifecycle/) destroy whole sealed bundles ---------------

  /** The ranges recorded as shredded (shredded.json), oldest first. */
  shreds(): ShredRecord[] {
    let text: string;
    try {
      text = readFileSync(join(this.dir, 'shredded.json'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw storageError(e, 'read shredded.json');
    }
    try {
      const j = JSON.parse(text) as { purges: ShredRecord[] };
      return j.purges.filter((p) => Number.isSafeInteger(p.purge) && Number.isSafeInteger(p.from) && Number.isSafeInteger(p.to));
    } catch {
      throw new CustodyError('STORAGE_CORRUPT', `${join(this.dir, 'shredded.json')} of ${this.origin} is not valid JSON.`);
    }
  }

  /** The purge that shredded the entry at `index`, or null. Read only when a bundle is absent. */
  shredOf(index: number): ShredRecord | null {
    return this.shreds().find((p) => index >= p.from && index < p.to) ?? null;
  }

  async readShreds(): Promise<ShredRecord[]> {
    return this.shreds();
  }

  async addShred(r: ShredRecord): Promise<void> {
    this.recordShred(r);
  }

  /** Records a shredded range before its files are deleted (durable; idempotent). */
  recordShred(r: ShredRecord): void {
    const list = this.shreds().filter((p) => p.purge !== r.purge);
    list.push({ purge: r.purge, from: r.from, to: r.to });
    list.sort((a, b) => a.from - b.from);
    try {
      writeFileAtomicSync(join(this.dir, 'shredded.json'), JSON.stringify({ version: 1, purges: list }, null, 2) + '\n', 0o600);
    } catch (e) {
      throw storageError(e, 'record a shredded range');
    }
  }

  /**
   * Deletes a full sealed bundle and its partial versions (its data key goes with it), and its
   * archived copy when it was archived (then its manifest record).
   */
  async removeBundle(index: number): Promise<void> {
    const path = this.pathOf({ level: 'entries', index, width: 256 });
    try {
      await unlink(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      await this.removePartials('entries', index);
      await fsyncDirs([dirname(path)]);
    } catch (e) {
      throw storageError(e, 'remove a shredded bundle');
    }
    const f = this.archivedBundle(index);
    if (f !== null) {
      await (await targetFor(f.loc)).remove(this.logName, this.bundleRel(index), f);
      this.archive.update((m) => {
        delete m.bundles[String(index)];
      });
    }
  }

  /** Deletes the archived copy of a blob (a retention purge), when there is one. */
  async removeArchivedBlob(name: string): Promise<boolean> {
    if (!this.archive.exists()) return false;
    const f = this.archive.read().blobs[name];
    if (!f) return false;
    if (existsSync(this.blobPathByName(name))) return false; // stored again since: it is in use
    await (await targetFor(f.loc)).remove(this.logName, blobRel(name), f);
    this.archive.update((m) => {
      delete m.blobs[name];
    });
    return true;
  }

  /** What is archived, for GET /v1/logs: counts of hot and archived full bundles and blobs. */
  archiveStatus(size: number): { location: string | null; afterDays: number | null; locations: string[]; hotBundles: number; archivedBundles: number; archivedBlobs: number; storageClasses: string[] } {
    const m: ArchiveManifestData = this.archive.exists() ? this.archive.read() : { version: 1, bundles: {}, blobs: {} };
    const files = [...Object.values(m.bundles), ...Object.values(m.blobs)];
    const shredded = this.shreds().reduce((n, r) => n + (r.to - r.from) / 256, 0);
    const archivedBundles = Object.keys(m.bundles).length;
    return {
      location: m.location ?? null,
      afterDays: m.afterDays ?? null,
      locations: [...new Set(files.map((f) => f.loc))],
      hotBundles: Math.max(0, Math.ceil(size / 256) - archivedBundles - shredded),
      archivedBundles,
      archivedBlobs: Object.keys(m.blobs).length,
      storageClasses: [...new Set(files.map((f) => f.class).filter((c): c is string => !!c))],
    };
  }

  /** The file name of a blob (an HMAC of the record hash, never the hash itself). */
  blobFileName(sha256hex: string): string {
    return basename(this.blobPath(sha256hex));
  }

  /**
   * Deletes a blob unless it was stored or reused (writeBlob touches it) within `idleMs`.
   * Synchronous, like writeBlob's check: the two cannot interleave on this thread.
   */
  removeIdleBlob(name: string, idleMs: number): 'removed' | 'kept' | 'absent' {
    if (!/^[0-9a-f]{64}$/.test(name)) throw new CustodyError('INTERNAL', `not a blob file name: ${name.slice(0, 80)}`);
    const path = join(this.blobDir, name.slice(0, 2), name);
    try {
      if (Date.now() - statSync(path).mtimeMs < idleMs) return 'kept';
      unlinkSync(path);
      return 'removed';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
      throw storageError(e, 'remove a shredded blob');
    }
  }

  close(): void {
    /* nothing to release */
  }

  async readBlob(sha256hex: string): Promise<Buffer> {
    let sealed = await readOrNull(this.blobPath(sha256hex));
    if (sealed === null && this.archive.exists()) {
      const name = this.blobFileName(sha256hex);
      const f = this.archive.read().blobs[name];
      if (f) sealed = (await readOrNull(this.blobPath(sha256hex))) ?? (await this.readArchived(blobRel(name), f));
    }
    if (sealed === null) throw new CustodyError('STORAGE_CORRUPT', `Blob ${sha256hex} of ${this.origin} is missing from storage.`);
    const rec = openSealed(this.keys.lookup, `blob ${this.origin} ${sha256hex}`, sealed, `blob ${sha256hex}`);
    if (createHash('sha256').update(rec).digest('hex') !== sha256hex) {
      throw new CustodyError('STORAGE_CORRUPT', `Blob ${sha256hex} of ${this.origin} does not match its hash.`);
    }
    return rec;
  }
}

/** A bounded LRU of hash tiles for proofs. Tile files are immutable per (level, index, width). */
export class TileCache {
  private readonly map = new Map<string, Buffer>();
  constructor(
    private readonly treeDir: string,
    private readonly capacity = 4096,
  ) {}

  put(level: number, index: number, width: number, data: Buffer): void {
    const k = `${level}/${index}/${width}`;
    this.map.delete(k);
    this.map.set(k, data);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
  }

  /** Synchronous read for the pure proof code (tileNodeReader); throws when the tile is missing. */
  readSync = (level: number, index: number, width: number): Uint8Array => {
    const k = `${level}/${index}/${width}`;
    const hit = this.map.get(k);
    if (hit) {
      this.map.delete(k);
      this.map.set(k, hit);
      return hit;
    }
    let data: Buffer;
    const p = join(this.treeDir, tilePath({ level, index, width }));
    try {
      data = readFileSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || width === 256) {
        throw new CustodyError('STORAGE_CORRUPT', `Hash tile ${tilePath({ level, index, width })} is missing from storage.`);
      }
      try {
        data = readFileSync(join(this.treeDir, tilePath({ level, index, width: 256 }))).subarray(0, width * 32);
      } catch {
        throw new CustodyError('STORAGE_CORRUPT', `Hash tile ${tilePath({ level, index, width })} is missing from storage.`);
      }
    }
    this.put(level, index, width, data);
    return data;
  };
}
