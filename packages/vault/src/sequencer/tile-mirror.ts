/**
 * A node's local copy of the hash tiles of a shared log's tree (SHARED.md). Proof code reads
 * tiles synchronously (tileNodeReader), but the tree lives in S3, so before a node exposes a
 * newly published checkpoint it fetches the tiles that checkpoint added (C2SP tlog-tiles: the
 * full tiles completed since the last synced size and the partial tile of each level at the
 * new width; a handful of objects per checkpoint) into a local folder, checks that they give
 * the checkpoint's root, and only then serves it.
 *
 * Layout: <dir>/tile/<L>/<N>[.p/<W>] (the tlog-tiles paths). The folder is a cache: it is
 * emptied at open and refilled from S3 (only what the published size needs).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { newTiles, tileNodeReader, tilePath, treeRoot, bytesEqual, type NodeReader, type Sha256, type TileId } from '@custody/verify';
import { CustodyError } from '../errors.js';
import type { LogStore } from '../storage/log-store.js';

const TILE = 256;

export class TileMirror {
  /** Sizes whose every tile is on disk, ascending (a few recent ones). */
  private synced: number[] = [0];
  private readonly mem = new Map<string, Buffer>();
  private chain: Promise<unknown> = Promise.resolve();
  private tmp = 0;

  constructor(
    readonly dir: string,
    private readonly store: LogStore,
    private readonly h: Sha256,
    private readonly capacity = 4096,
  ) {
    rmSync(join(dir, 'tile'), { recursive: true, force: true });
    mkdirSync(join(dir, 'tile'), { recursive: true });
  }

  /** The largest size whose tiles are all local. */
  get size(): number {
    return this.synced[this.synced.length - 1]!;
  }

  has(size: number): boolean {
    return this.synced.includes(size);
  }

  /**
   * Fetches the tiles a tree of `size` has beyond the closest smaller synced size, and checks
   * they give `root` (when given). Calls run one at a time.
   */
  sync(size: number, root?: Uint8Array): Promise<void> {
    const run = this.chain.then(() => this.doSync(size, root));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async doSync(size: number, root?: Uint8Array): Promise<void> {
    if (!this.has(size)) {
      const from = this.synced.filter((s) => s <= size).pop() ?? 0;
      const want = newTiles(from, size);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < want.length) {
          const t = want[next++]!;
          await this.fetch(t);
        }
      };
      await Promise.all(Array.from({ length: Math.min(16, want.length) }, worker));
      this.synced.push(size);
      this.synced.sort((a, b) => a - b);
      // Keep the smallest (0) and the newest few: older partial widths stay on disk anyway.
      if (this.synced.length > 16) this.synced.splice(1, this.synced.length - 16);
    }
    if (root && size > 0 && !bytesEqual(treeRoot(size, this.nodeReader(size), this.h), root)) {
      this.synced = this.synced.filter((s) => s !== size);
      throw new CustodyError('STORAGE_CORRUPT', `The hash tiles in S3 do not give the root of the checkpoint at size ${size}: a tile was altered or is missing. Run \`custody verify\` on the log.`);
    }
  }

  private async fetch(t: TileId): Promise<void> {
    const data = await this.store.readTile(t.level as number, t.index, t.width);
    if (data === null) throw new CustodyError('STORAGE_UNAVAILABLE', `Hash tile ${tilePath(t)} is not in S3 yet; retrying.`, { retryAfter: 1 });
    if (data.length !== t.width * 32) throw new CustodyError('STORAGE_CORRUPT', `Hash tile ${tilePath(t)} in S3 has ${data.length} bytes, not ${t.width * 32}.`);
    const p = join(this.dir, tilePath(t));
    mkdirSync(dirname(p), { recursive: true });
    const tmp = `${p}.tmp${process.pid}.${this.tmp++}`;
    writeFileSync(tmp, data);
    renameSync(tmp, p);
    this.put(`${t.level}/${t.index}/${t.width}`, data);
    // Narrower versions of this tile are prefixes of this one (readSync falls back to it): drop them.
    const pdir = t.width === TILE ? join(this.dir, `${tilePath(t)}.p`) : dirname(p);
    let names: string[] = [];
    try {
      names = readdirSync(pdir);
    } catch {
      /* none */
    }
    for (const n of names) {
      const w = Number(n);
      if (Number.isInteger(w) && w < t.width) rmSync(join(pdir, n), { force: true });
    }
  }

  private put(k: string, data: Buffer): void {
    this.mem.delete(k);
    this.mem.set(k, data);
    if (this.mem.size > this.capacity) this.mem.delete(this.mem.keys().next().value!);
  }

  /** Synchronous tile read (tileNodeReader); a partial width may be served from the full tile. */
  readSync = (level: number, index: number, width: number): Uint8Array => {
    const k = `${level}/${index}/${width}`;
    const hit = this.mem.get(k);
    if (hit) return hit;
    const attempt = (w: number): Buffer | null => {
      try {
        return readFileSync(join(this.dir, tilePath({ level, index, width: w })));
      } catch {
        return null;
      }
    };
    let data: Buffer | null = null;
    // Twice: a sync running meanwhile may replace a narrower partial file by a wider one.
    for (let i = 0; i < 2 && data === null; i++) data = this.readFile(level, index, width, attempt);
    if (data === null) throw new CustodyError('STORAGE_CORRUPT', `Hash tile ${tilePath({ level, index, width })} is not in this node's tile mirror.`);
    this.put(k, data);
    return data;
  };

  private readFile(level: number, index: number, width: number, attempt: (w: number) => Buffer | null): Buffer | null {
    let data = attempt(width);
    if (data === null && width < TILE) data = attempt(TILE)?.subarray(0, width * 32) ?? null;
    if (data === null && width < TILE) {
      // A wider partial version of the same tile (hashes only ever get appended to a tile).
      let widths: number[] = [];
      try {
        widths = readdirSync(dirname(join(this.dir, tilePath({ level, index, width })))).map(Number).filter((w) => Number.isInteger(w) && w > width).sort((a, b) => a - b);
      } catch {
        /* none */
      }
      for (const w of widths) {
        data = attempt(w)?.subarray(0, width * 32) ?? null;
        if (data !== null) break;
      }
    }
    return data;
  }

  nodeReader(size: number): NodeReader {
    const memo = new Map<string, Uint8Array>();
    const base = tileNodeReader(size, this.readSync, this.h);
    return (level, index) => {
      const k = `${level}/${index}`;
      let v = memo.get(k);
      if (!v) {
        v = base(level, index);
        memo.set(k, v);
      }
      return v;
    };
  }

  /** The hashes of the incomplete tile at every level of a tree of `size` (the integrator's state). */
  rightEdge(size: number): Uint8Array[][] {
    const partial: Uint8Array[][] = [];
    for (let l = 0, count = size; count > 0; l++, count = Math.floor(count / TILE)) {
      const w = count % TILE;
      const hashes: Uint8Array[] = [];
      if (w > 0) {
        const t = this.readSync(l, Math.floor(count / TILE), w);
        for (let i = 0; i < w; i++) hashes.push(t.subarray(i * 32, i * 32 + 32));
      }
      partial.push(hashes);
    }
    return partial;
  }
}
