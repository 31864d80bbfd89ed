/** tlog-tiles paths, tile sets, tile node reader, bundles; and a log we write, checked by Go's tlogcheck. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  Ed25519NoteSigner,
  decodeBundle,
  encodeBundle,
  formatCheckpoint,
  formatTileIndex,
  hashLeaf,
  newTiles,
  newTilesAllWidths,
  parseTilePath,
  signNote,
  tileNodeReader,
  tilePath,
  tileWidthAt,
  tilesForSize,
  treeRoot,
  utf8Encode,
  type NodeReader,
  type TileId,
} from '../src/index.js';
import { goTool } from './support/go-tools.js';
import { assertCode, leavesReader, makeLeaves } from './support/helpers.js';

/** Tile (level, index, width) bytes of the tree behind `read`. */
function tileBytes(read: NodeReader, level: number, index: number, width: number): Uint8Array {
  const out = new Uint8Array(width * 32);
  for (let j = 0; j < width; j++) out.set(read(8 * level, index * 256 + j), 32 * j);
  return out;
}

describe('tile paths', () => {
  test('formatTileIndex and tilePath follow the spec examples', () => {
    assert.equal(formatTileIndex(0), '000');
    assert.equal(formatTileIndex(7), '007');
    assert.equal(formatTileIndex(999), '999');
    assert.equal(formatTileIndex(1000), 'x001/000');
    assert.equal(formatTileIndex(1234067), 'x001/x234/067');
    assert.equal(formatTileIndex(Number.MAX_SAFE_INTEGER), 'x009/x007/x199/x254/x740/991');
    assert.equal(tilePath({ level: 0, index: 1234, width: 256 }), 'tile/0/x001/234');
    assert.equal(tilePath({ level: 1, index: 0, width: 17 }), 'tile/1/000.p/17');
    assert.equal(tilePath({ level: 'entries', index: 0, width: 5 }), 'tile/entries/000.p/5');
    assert.equal(tilePath({ level: 63, index: 0, width: 1 }), 'tile/63/000.p/1');
    for (const bad of [{ level: 64, index: 0, width: 1 }, { level: 0, index: -1, width: 1 }, { level: 0, index: 0, width: 0 }, { level: 0, index: 0, width: 257 }, { level: 'x', index: 0, width: 1 }]) {
      assertCode(() => tilePath(bad as TileId), 'INVALID_ARGUMENT', JSON.stringify(bad));
    }
  });

  test('parseTilePath is the inverse of tilePath', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 0, max: 63 }), fc.constant('entries' as const)),
        fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
        fc.integer({ min: 1, max: 256 }),
        (level, index, width) => {
          const t = { level, index, width };
          assert.deepEqual(parseTilePath(tilePath(t)), t);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('tile sets', () => {
  test('tilesForSize(70000) matches the reference figures', () => {
    const t = tilesForSize(70_000);
    assert.equal(t.filter((x) => x.level === 0 && x.width === 256).length, 273);
    assert.deepEqual(t.filter((x) => x.width !== 256), [
      { level: 0, index: 273, width: 112 },
      { level: 1, index: 1, width: 17 },
      { level: 2, index: 0, width: 1 },
    ]);
    assert.deepEqual(tilesForSize(0), []);
    assert.deepEqual(tilesForSize(256), [{ level: 0, index: 0, width: 256 }, { level: 1, index: 0, width: 1 }]);
  });

  test('newTiles(old, new) = tilesForSize(new) minus tilesForSize(old); Go variant is a superset', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 0, max: 200_000 }), (a, b) => {
        const [o, n] = a <= b ? [a, b] : [b, a];
        const old = new Set(tilesForSize(o).map(tilePath));
        const want = tilesForSize(n).filter((t) => !old.has(tilePath(t)));
        assert.deepEqual(newTiles(o, n), want);
        const go = new Set(newTilesAllWidths(o, n).map(tilePath));
        for (const t of want) assert.ok(go.has(tilePath(t)));
        for (const t of tilesForSize(n)) assert.equal(t.width, tileWidthAt(t.level as number, t.index, n));
      }),
      { numRuns: 200 },
    );
    assertCode(() => newTiles(5, 4), 'INVALID_ARGUMENT');
    // Beyond 2^32: only the handful of tiles that changed.
    assert.deepEqual(newTiles(2 ** 40, 2 ** 40 + 1000), [
      { level: 0, index: 2 ** 32, width: 256 },
      { level: 0, index: 2 ** 32 + 1, width: 256 },
      { level: 0, index: 2 ** 32 + 2, width: 256 },
      { level: 0, index: 2 ** 32 + 3, width: 232 },
      { level: 1, index: 2 ** 24, width: 3 },
    ]);
    assert.equal(tileWidthAt(0, Math.floor(Number.MAX_SAFE_INTEGER / 256), Number.MAX_SAFE_INTEGER), 255);
  });

  test('tileNodeReader agrees with a direct reader on random trees', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3000 }), fc.nat(), (size, pick) => {
        const leaves = makeLeaves(size, pick);
        const direct = leavesReader(leaves);
        const tr = tileNodeReader(size, (l, i, w) => tileBytes(direct, l, i, w));
        assert.deepEqual(treeRoot(size, tr), treeRoot(size, direct));
        const level = pick % 12;
        const count = Math.floor(size / 2 ** level);
        if (count > 0) assert.deepEqual(tr(level, pick % count), direct(level, pick % count));
        assertCode(() => tr(level, count), 'INVALID_ARGUMENT');
      }),
      { numRuns: 60 },
    );
  });

  test('tileNodeReader rejects tiles of the wrong length', () => {
    const leaves = makeLeaves(300);
    const direct = leavesReader(leaves);
    assertCode(() => tileNodeReader(300, () => new Uint8Array(10))(0, 0), 'MALFORMED_TILE');
    assertCode(() => tileNodeReader(300, (l, i, w) => tileBytes(direct, l, i, w).subarray(32))(0, 299), 'MALFORMED_TILE');
    // A longer tile (e.g. the full one) where the partial is expected is rejected too.
    assertCode(() => tileNodeReader(300, (l, i, w) => (i === 1 ? new Uint8Array(256 * 32) : tileBytes(direct, l, i, w)))(0, 299), 'MALFORMED_TILE');
    assertCode(() => tileNodeReader(300, () => 'x' as unknown as Uint8Array)(0, 0), 'MALFORMED_TILE');
    assertCode(() => tileNodeReader(300, () => new Uint8Array(0))(9, 0), 'INVALID_ARGUMENT');
  });
});

describe('entry bundles', () => {
  test('round trip', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 256 }), (entries) => {
        const b = encodeBundle(entries);
        assert.deepEqual(decodeBundle(b), entries);
        assert.deepEqual(decodeBundle(b, entries.length), entries);
      }),
      { numRuns: 50 },
    );
    const big = new Uint8Array(65535).fill(1);
    assert.deepEqual(decodeBundle(encodeBundle([big, new Uint8Array(0)]), 2), [big, new Uint8Array(0)]);
    assertCode(() => encodeBundle([new Uint8Array(65536)]), 'INVALID_ARGUMENT');
    assertCode(() => encodeBundle([]), 'INVALID_ARGUMENT');
    assertCode(() => encodeBundle(Array(257).fill(new Uint8Array(1))), 'INVALID_ARGUMENT');
    assertCode(() => decodeBundle(new Uint8Array([0, 1, 7]), 0), 'INVALID_ARGUMENT');
    assertCode(() => decodeBundle(new Uint8Array([0, 1, 7]), 257), 'INVALID_ARGUMENT');
  });
});

describe('a log written with this package, checked by Go tlogcheck', () => {
  test('tiles, bundles and a signed checkpoint pass tlogcheck -full, and an old checkpoint is a prefix', () => {
    const tlogcheck = goTool('tlogcheck');
    const dir = mkdtempSync(join(tmpdir(), 'custody-ourlog-'));
    try {
      const origin = 'custody.test/log';
      const signer = new Ed25519NoteSigner(origin, new Uint8Array(32).fill(77));
      const entries = Array.from({ length: 66_000 }, (_, i) => utf8Encode(`entry ${i} ${'z'.repeat(i % 50)}`));
      const leaves = entries.map((e) => hashLeaf(e));
      const read = leavesReader(leaves);
      const put = (p: string, b: Uint8Array | string): void => {
        mkdirSync(dirname(join(dir, p)), { recursive: true });
        writeFileSync(join(dir, p), b);
      };
      const publish = (oldSize: number, size: number): string => {
        for (const t of newTiles(oldSize, size)) put(tilePath(t), tileBytes(read, t.level as number, t.index, t.width));
        for (let k = Math.floor(oldSize / 256); k * 256 < size; k++) {
          const width = Math.min(256, size - k * 256);
          put(tilePath({ level: 'entries', index: k, width }), encodeBundle(entries.slice(k * 256, k * 256 + width)));
        }
        const body = formatCheckpoint({ origin, size, rootHash: treeRoot(size, read), extensions: [] });
        const note = signNote(body, [signer]);
        put('checkpoint', note);
        return note;
      };
      const old = publish(0, 1_000);
      writeFileSync(join(dir, 'old-checkpoint'), old);
      publish(1_000, 66_000); // only the tiles that are new at 66,000
      const out = execFileSync(tlogcheck, ['-dir', dir, '-vkey', signer.verifierKey, '-full', '-old', join(dir, 'old-checkpoint')], { encoding: 'utf8' });
      assert.match(out, /consistent with old checkpoint of size 1000/);
      assert.match(out, /^OK origin=custody\.test\/log size=66000 .* entries-recomputed=66000$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
