/**
 * C2SP tlog-tiles: tile coordinates and paths, which tiles a tree of a given size has, reading
 * tree nodes out of hash tiles, and entry bundles. Tile height is 8 (256 hashes per tile).
 */
import { HASH_SIZE, sha256, type Sha256 } from './hash.js';
import { checkBytes, checkIndex, copyBytes, describe, fail, nodeHash } from './internal.js';
import type { NodeReader } from './merkle.js';

export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;
export const MAX_ENTRY_SIZE = 65535;
/** Highest hash tile level a path may name (tlog-tiles: "<L> level 0..63"). */
export const MAX_TILE_LEVEL = 63;

/** level: hash tile level (0 = leaf hashes) or 'entries'; width 1..256, 256 = full tile. */
export interface TileId {
  level: number | 'entries';
  index: number;
  width: number;
}

function checkTileLevel(level: unknown): number {
  if (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > MAX_TILE_LEVEL) {
    fail('INVALID_ARGUMENT', `tile level must be an integer 0..${MAX_TILE_LEVEL}, got ${describe(level)}`);
  }
  return level;
}

function checkTileId(t: unknown): TileId {
  if (typeof t !== 'object' || t === null) fail('INVALID_ARGUMENT', 'tile id must be an object');
  const { level, index, width } = t as TileId;
  if (level !== 'entries') checkTileLevel(level);
  checkIndex('tile index', index);
  if (typeof width !== 'number' || !Number.isInteger(width) || width < 1 || width > TILE_WIDTH) {
    fail('INVALID_ARGUMENT', `tile width must be an integer 1..${TILE_WIDTH}, got ${describe(width)}`);
  }
  return t as TileId;
}

/** tlog-tiles "<N>": 3-digit groups, every group but the last prefixed with 'x'. */
export function formatTileIndex(n: number): string {
  checkIndex('tile index', n);
  const pad3 = (v: number): string => (v < 10 ? '00' : v < 100 ? '0' : '') + String(v);
  let s = pad3(n % 1000);
  for (let x = Math.floor(n / 1000); x > 0; x = Math.floor(x / 1000)) s = `x${pad3(x % 1000)}/${s}`;
  return s;
}

/** 'tile/<L>/<N>' for full tiles, 'tile/<L>/<N>.p/<W>' for partial ones (L may be 'entries'). */
export function tilePath(t: TileId): string {
  const { level, index, width } = checkTileId(t);
  return `tile/${level}/${formatTileIndex(index)}${width === TILE_WIDTH ? '' : `.p/${width}`}`;
}

const LEVEL_RE = /^(?:0|[1-9][0-9]?)$/;
const GROUP_RE = /^x[0-9]{3}$/;
const LAST_GROUP_RE = /^[0-9]{3}$/;
const WIDTH_RE = /^[1-9][0-9]{0,2}$/;
const MAX_GROUPS = 6; // 2^53 has 16 decimal digits

/** Strict inverse of tilePath: only the exact canonical 'tile/...' form is accepted. */
export function parseTilePath(path: string): TileId {
  const bad = (why: string): never => fail('MALFORMED_TILE_PATH', `malformed tile path: ${why}`, { path: describe(path) });
  if (typeof path !== 'string') bad('not a string');
  if (path.length > 128) bad('too long');
  const segs = path.split('/');
  if (segs[0] !== 'tile') bad("must start with 'tile/'");
  const levelSeg = segs[1] ?? '';
  let level: number | 'entries';
  if (levelSeg === 'entries') level = 'entries';
  else {
    if (!LEVEL_RE.test(levelSeg)) bad('level must be decimal without leading zeroes');
    level = Number(levelSeg);
    if (level > MAX_TILE_LEVEL) bad(`level above ${MAX_TILE_LEVEL}`);
  }
  const groups = segs.slice(2);
  let width = TILE_WIDTH;
  if (groups.length >= 2 && groups[groups.length - 2]!.endsWith('.p')) {
    const w = groups.pop()!;
    if (!WIDTH_RE.test(w)) bad('partial width must be decimal 1..255 without leading zeroes');
    width = Number(w);
    if (width >= TILE_WIDTH) bad('partial width must be below 256');
    groups[groups.length - 1] = groups[groups.length - 1]!.slice(0, -2);
  }
  if (groups.length === 0 || groups.length > MAX_GROUPS) bad('wrong number of index groups');
  let index = 0;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    const last = i === groups.length - 1;
    if (!(last ? LAST_GROUP_RE : GROUP_RE).test(g)) bad(last ? 'last index group must be 3 digits' : "index groups before the last must be 'x' and 3 digits");
    index = index * 1000 + Number(last ? g : g.slice(1));
  }
  if (!Number.isSafeInteger(index)) bad('index too large');
  const t: TileId = { level, index, width };
  // Canonical form only: rejects e.g. a leading 'x000/' group.
  if (tilePath(t) !== path) bad('not in canonical form');
  return t;
}

/** Width of hash tile (level, index) in a tree of `size` leaves; 0 if it does not exist yet. */
export function tileWidthAt(level: number, index: number, size: number): number {
  checkTileLevel(level);
  checkIndex('tile index', index);
  checkIndex('size', size);
  const hashes = Math.floor(size / TILE_WIDTH ** level); // hashes at this tile level
  const start = index * TILE_WIDTH;
  if (start >= hashes) return 0;
  return Math.min(TILE_WIDTH, hashes - start);
}

/** Every hash tile of a tree of this size: the full ones and the one partial tile per level. */
export function tilesForSize(size: number): TileId[] {
  return newTiles(0, size);
}

/**
 * The hash tiles that exist at newSize but not (with that width) at oldSize: tiles that became
 * full, and the partial tile of each level whose width changed. Level order, then index.
 * Unlike Go's tlog.NewTiles it lists only the current partial width (see newTilesAllWidths).
 */
export function newTiles(oldSize: number, newSize: number): TileId[] {
  checkSizes(oldSize, newSize);
  const out: TileId[] = [];
  for (let level = 0; Math.floor(newSize / TILE_WIDTH ** level) > 0; level++) {
    const oldN = Math.floor(oldSize / TILE_WIDTH ** level);
    const newN = Math.floor(newSize / TILE_WIDTH ** level);
    if (oldN === newN) break; // unchanged here, so unchanged above too
    const fullNew = Math.floor(newN / TILE_WIDTH);
    for (let n = Math.floor(oldN / TILE_WIDTH); n < fullNew; n++) out.push({ level, index: n, width: TILE_WIDTH });
    const rem = newN - fullNew * TILE_WIDTH;
    if (rem > 0) out.push({ level, index: fullNew, width: rem });
  }
  return out;
}

/**
 * Exactly Go's tlog.NewTiles(8, oldSize, newSize): like newTiles, but every partial width from
 * the old one (or 1) up to the new one is listed, as Go's reference code writes them.
 */
export function newTilesAllWidths(oldSize: number, newSize: number): TileId[] {
  checkSizes(oldSize, newSize);
  const out: TileId[] = [];
  for (let level = 0; Math.floor(newSize / TILE_WIDTH ** level) > 0; level++) {
    const oldN = Math.floor(oldSize / TILE_WIDTH ** level);
    const newN = Math.floor(newSize / TILE_WIDTH ** level);
    const n = Math.floor(newN / TILE_WIDTH);
    for (let i = Math.floor(oldN / TILE_WIDTH); i < n; i++) out.push({ level, index: i, width: TILE_WIDTH });
    const maxW = newN - n * TILE_WIDTH;
    const minW = oldN > n * TILE_WIDTH ? oldN - n * TILE_WIDTH : 1;
    for (let w = minW; w <= maxW; w++) out.push({ level, index: n, width: w });
  }
  return out;
}

function checkSizes(oldSize: number, newSize: number): void {
  checkIndex('oldSize', oldSize);
  checkIndex('newSize', newSize);
  if (oldSize > newSize) fail('INVALID_ARGUMENT', `oldSize ${oldSize} is larger than newSize ${newSize}`);
}

/**
 * A NodeReader over the hash tiles of a tree of `size` leaves (tlog-tiles "Merkle Tree"):
 * node (level, index) lives in tile level floor(level/8); it covers 2^(level mod 8) hashes of
 * that tile level, which are hashed up to the node. `readTile` gets the width the tile has at
 * `size` and must return exactly width·32 bytes (else MALFORMED_TILE). Tiles are not
 * authenticated here: compare what you compute with a signed root.
 */
export function tileNodeReader(size: number, readTile: (level: number, index: number, width: number) => Uint8Array, h: Sha256 = sha256): NodeReader {
  checkIndex('size', size);
  if (typeof readTile !== 'function') fail('INVALID_ARGUMENT', 'readTile must be a function');
  return (level: number, index: number): Uint8Array => {
    checkIndex('node level', level);
    checkIndex('node index', index);
    if (level > MAX_TILE_LEVEL || (index + 1) * 2 ** level > size) {
      fail('INVALID_ARGUMENT', `node (level ${level}, index ${index}) is not complete in a tree of size ${size}`);
    }
    const tileLevel = Math.floor(level / TILE_HEIGHT);
    const span = 2 ** (level - tileLevel * TILE_HEIGHT);
    const first = index * span; // first hash of the node at this tile level
    const tileIndex = Math.floor(first / TILE_WIDTH);
    const offset = first - tileIndex * TILE_WIDTH;
    const width = tileWidthAt(tileLevel, tileIndex, size);
    const data: unknown = readTile(tileLevel, tileIndex, width);
    if (!(data instanceof Uint8Array) || data.length !== width * HASH_SIZE) {
      fail('MALFORMED_TILE', `tile (level ${tileLevel}, index ${tileIndex}, width ${width}) must be ${width * HASH_SIZE} bytes, got ${describe(data)}`, {
        level: tileLevel,
        index: tileIndex,
        width,
      });
    }
    if (span === 1) return copyBytes(data.subarray(offset * HASH_SIZE, (offset + 1) * HASH_SIZE));
    let layer: Uint8Array[] = [];
    for (let i = 0; i < span; i++) layer.push(data.subarray((offset + i) * HASH_SIZE, (offset + i + 1) * HASH_SIZE));
    while (layer.length > 1) {
      const next: Uint8Array[] = [];
      for (let i = 0; i < layer.length; i += 2) next.push(nodeHash(layer[i]!, layer[i + 1]!, h));
      layer = next;
    }
    return layer[0]!;
  };
}

/** tlog-tiles entry bundle: each entry as a big-endian uint16 length, then its bytes. */
export function encodeBundle(entries: Uint8Array[]): Uint8Array {
  if (!Array.isArray(entries) || entries.length < 1 || entries.length > TILE_WIDTH) {
    fail('INVALID_ARGUMENT', `a bundle holds 1..${TILE_WIDTH} entries`);
  }
  let total = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = checkBytes(`entries[${i}]`, entries[i]);
    if (e.length > MAX_ENTRY_SIZE) fail('INVALID_ARGUMENT', `entry ${i} is ${e.length} bytes, the maximum is ${MAX_ENTRY_SIZE}`);
    total += 2 + e.length;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const e of entries) {
    out[o] = Math.floor(e.length / 256);
    out[o + 1] = e.length % 256;
    out.set(e, o + 2);
    o += 2 + e.length;
  }
  return out;
}

/** Decodes an entry bundle; MALFORMED_BUNDLE on truncation, trailing bytes, or a count mismatch. */
export function decodeBundle(bytes: Uint8Array, expectedCount?: number): Uint8Array[] {
  checkBytes('bundle', bytes);
  if (expectedCount !== undefined && (!Number.isInteger(expectedCount) || expectedCount < 1 || expectedCount > TILE_WIDTH)) {
    fail('INVALID_ARGUMENT', `expectedCount must be an integer 1..${TILE_WIDTH}, got ${describe(expectedCount)}`);
  }
  const max = expectedCount ?? TILE_WIDTH;
  const out: Uint8Array[] = [];
  let o = 0;
  while (o < bytes.length) {
    if (out.length === max) {
      fail('MALFORMED_BUNDLE', `bundle has ${bytes.length - o} bytes after its ${max} entries`, { entries: max });
    }
    if (o + 2 > bytes.length) fail('MALFORMED_BUNDLE', `bundle is truncated in the length of entry ${out.length}`);
    const n = bytes[o]! * 256 + bytes[o + 1]!;
    if (o + 2 + n > bytes.length) fail('MALFORMED_BUNDLE', `bundle is truncated in entry ${out.length} (${n} bytes announced)`);
    out.push(copyBytes(bytes.subarray(o + 2, o + 2 + n)));
    o += 2 + n;
  }
  if (out.length === 0) fail('MALFORMED_BUNDLE', 'bundle is empty');
  if (expectedCount !== undefined && out.length !== expectedCount) {
    fail('MALFORMED_BUNDLE', `bundle has ${out.length} entries, expected ${expectedCount}`, { entries: out.length });
  }
  return out;
}
