/**
 * The POSIX storage driver: one log's C2SP tlog-tiles tree on a local file system, plus its
 * content-addressed blobs. Hash tiles and checkpoints are public hashes and stay plaintext;
 * entry bundles and blobs hold record content and are sealed (crypto/aead) at rest.
 *
 *   <dir>/tree/checkpoint                      signed checkpoint (C2SP tlog-checkpoint)
 *   <dir>/tree/tile/<L>/<N>[.p/<W>]            hash tiles
 *   <dir>/tree/tile/entries/<N>[.p/<W>]        sealed entry bundles
 *   <dir>/blobs/<2 hex>/<64 hex>               sealed records larger than an entry allows
 *
 * Every write is write-temp + fsync + rename, and the directories are fsynced before the
 * checkpoint that refers to the new files is published (see sequencer/integrator.ts).
 */
import { readFile, readdir, rm, unlink } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import { tilePath, encodeBundle, decodeBundle, type TileId } from '@custody/verify';
import { seal, open as openSealed } from '../crypto/aead.js';
import type { LogKeys } from '../crypto/keyring.js';
import { CustodyError } from '../errors.js';
import { writeFileDurable, fsyncDirs, writeFileAtomicSync } from './atomic.js';
import { storageError } from './journal.js';

async function readOrNull(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export interface PendingWrite {
  path: string;
  /** The bytes, or a function that makes them when the write starts (keeps memory bounded). */
  data: Uint8Array | (() => Uint8Array);
}

export class PosixLogStore {
  readonly treeDir: string;
  readonly blobDir: string;

  constructor(
    readonly dir: string,
    readonly origin: string,
    private readonly keys: LogKeys,
  ) {
    this.treeDir = join(dir, 'tree');
    this.blobDir = join(dir, 'blobs');
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
    return readOrNull(this.pathOf({ level: 'entries', index, width }));
  }

  /** The decrypted entry bundle (C2SP encoding), or null when it does not exist. */
  async readBundle(index: number, width: number): Promise<Buffer | null> {
    const what = `entry bundle ${tilePath({ level: 'entries', index, width })} of ${this.origin}`;
    const sealed = await this.readSealedBundle(index, width);
    if (sealed !== null) return openSealed(this.keys.lookup, this.bundleContext(index, width), sealed, what);
    if (width === 256) return null;
    const full = await this.readSealedBundle(index, 256);
    if (full === null) return null;
    const plain = openSealed(this.keys.lookup, this.bundleContext(index, 256), full, what.replace(`.p/${width}`, ''));
    return Buffer.from(encodeBundle(decodeBundle(plain, 256).slice(0, width)));
  }

  tileWrite(t: { level: number; index: number; width: number; data: Uint8Array }): PendingWrite {
    return { path: this.pathOf(t), data: t.data };
  }

  /**
   * A sealed bundle of `width` entries, given as encoded pieces (uint16 length ‖ bytes each,
   * the C2SP bundle encoding) that are encrypted as one stream.
   */
  bundleWrite(index: number, encoded: Uint8Array[], width: number): PendingWrite {
    return {
      path: this.pathOf({ level: 'entries', index, width }),
      data: () => seal(this.keys.activeKek, this.bundleContext(index, width), encoded),
    };
  }

  /** Writes files durably (each fsynced, then their directories). */
  async writeAll(writes: PendingWrite[], concurrency = 16): Promise<void> {
    try {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < writes.length) {
          const w = writes[next++]!;
          await writeFileDurable(w.path, typeof w.data === 'function' ? w.data() : w.data);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, writes.length) }, worker));
      await fsyncDirs(writes.map((w) => dirname(w.path)));
    } catch (e) {
      throw storageError(e, 'write tiles and bundles');
    }
  }

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
    if (existsSync(path)) return sha;
    try {
      await writeFileDurable(path, seal(this.keys.activeKek, `blob ${this.origin} ${sha}`, record));
      await fsyncDirs([dirname(path), dirname(dirname(path))]);
    } catch (e) {
      throw storageError(e, 'store a large record');
    }
    return sha;
  }

  async readBlob(sha256hex: string): Promise<Buffer> {
    const sealed = await readOrNull(this.blobPath(sha256hex));
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
