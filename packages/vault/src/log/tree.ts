/**
 * Builds the hash tiles of a tlog-tiles tree incrementally (C2SP tlog-tiles, tile height 8).
 * The integrator feeds it leaf hashes as entries are integrated; `custody verify` feeds it the
 * leaf hashes it recomputed from the entry bundles and compares every tile with the stored one.
 * State is the "right edge": for each level, the hashes of the not-yet-full tile.
 */
import { rootFromCompactRange, EMPTY_ROOT, type Sha256 } from '@custody/verify';

const W = 256;

export interface TileData {
  level: number;
  index: number;
  width: number; // 1..256
  data: Buffer; // width × 32 bytes
}

/** Root of 2^k consecutive hashes (a perfect subtree). */
export function perfectRoot(hashes: Uint8Array[], h: Sha256): Uint8Array {
  let layer = hashes;
  const buf = Buffer.allocUnsafe(65);
  buf[0] = 1;
  while (layer.length > 1) {
    const next: Uint8Array[] = new Array(layer.length / 2);
    for (let i = 0; i < next.length; i++) {
      buf.set(layer[2 * i]!, 1);
      buf.set(layer[2 * i + 1]!, 33);
      next[i] = h(buf);
    }
    layer = next;
  }
  return layer[0]!;
}

export class TreeBuilder {
  private levels: Uint8Array[][];
  private completed: TileData[] = [];
  private _size: number;

  /**
   * @param partial partial[l] = the hashes of the incomplete tile at level l for a tree of
   *        `size` leaves (exactly floor(size / 256^l) mod 256 of them).
   */
  constructor(
    private readonly h: Sha256,
    size = 0,
    partial: Uint8Array[][] = [],
  ) {
    this._size = size;
    this.levels = [];
    let count = size;
    for (let l = 0; count > 0 || l < partial.length; l++) {
      const want = count % W;
      const got = partial[l] ?? [];
      if (got.length !== want) {
        throw new Error(`tree state: level ${l} needs ${want} hashes for size ${size}, got ${got.length}`);
      }
      this.levels.push([...got]);
      count = Math.floor(count / W);
    }
  }

  /** An independent copy, so a failed integration round leaves the original untouched. */
  clone(): TreeBuilder {
    const c = new TreeBuilder(this.h);
    c.levels = this.levels.map((lv) => [...lv]);
    c._size = this._size;
    return c;
  }

  get size(): number {
    return this._size;
  }

  append(leafHash: Uint8Array): void {
    this._size++;
    let l = 0;
    let hash = leafHash;
    for (;;) {
      const lv = (this.levels[l] ??= []);
      lv.push(hash);
      if (lv.length < W) return;
      const countAtLevel = Math.floor(this._size / W ** l); // complete hashes at this level
      const index = countAtLevel / W - 1;
      this.completed.push({ level: l, index, width: W, data: Buffer.concat(lv) });
      hash = perfectRoot(lv, this.h);
      this.levels[l] = [];
      l++;
    }
  }

  /** Full tiles completed since the last call, lowest level first within each completion. */
  takeCompleted(): TileData[] {
    const c = this.completed;
    this.completed = [];
    return c;
  }

  /** The partial tile at every level that has one, for the current size. */
  partialTiles(): TileData[] {
    const out: TileData[] = [];
    for (let l = 0; l < this.levels.length; l++) {
      const lv = this.levels[l]!;
      if (lv.length === 0) continue;
      out.push({ level: l, index: Math.floor(this._size / W ** (l + 1)), width: lv.length, data: Buffer.concat(lv) });
    }
    return out;
  }

  /** The RFC 6962 root of the current tree, from the perfect subtrees on the right edge. */
  root(): Uint8Array {
    if (this._size === 0) return EMPTY_ROOT;
    const range: Uint8Array[] = [];
    for (let l = this.levels.length - 1; l >= 0; l--) {
      const lv = this.levels[l]!;
      let off = 0;
      for (let bit = 7; bit >= 0; bit--) {
        const n = 2 ** bit;
        if (lv.length & n) {
          range.push(perfectRoot(lv.slice(off, off + n), this.h));
          off += n;
        }
      }
    }
    return rootFromCompactRange(range, this.h);
  }
}
