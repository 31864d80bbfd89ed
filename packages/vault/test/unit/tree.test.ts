/** TreeBuilder against the naive RFC 6962 tree and Go's tile layout rules. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { naiveRoot, hashLeaf, tilesForSize, toBase64 } from '@custody/verify';
import { TreeBuilder } from '../../src/log/tree.js';
import { nativeSha256 } from '../../src/crypto/sha256.js';

const leaves = (n: number, seed = 0) => Array.from({ length: n }, (_, i) => hashLeaf(new TextEncoder().encode(`leaf ${seed} ${i}`)));

test('root equals the naive Merkle tree hash for many sizes', () => {
  const all = leaves(70_000);
  const b = new TreeBuilder(nativeSha256);
  const checkAt = new Set([1, 2, 3, 255, 256, 257, 511, 512, 513, 65_535, 65_536, 65_537, 70_000]);
  for (let i = 0; i < 200; i++) checkAt.add(1 + Math.floor(Math.random() * 2_000));
  for (let i = 0; i < 10; i++) checkAt.add(1 + Math.floor(Math.random() * 70_000));
  const sorted = [...checkAt].sort((a, z) => a - z);
  let at = 0;
  for (let i = 0; i < all.length; i++) {
    b.append(all[i]!);
    if (b.size === sorted[at]) {
      assert.equal(toBase64(b.root()), toBase64(naiveRoot(all.slice(0, b.size), nativeSha256)), `size ${b.size}`);
      at++;
    }
    b.takeCompleted();
  }
});

test('completed and partial tiles are exactly the tiles of the tree (C2SP tlog-tiles)', () => {
  for (const n of [1, 255, 256, 257, 1000, 65_536, 70_000]) {
    const b = new TreeBuilder(nativeSha256);
    for (const l of leaves(n)) b.append(l);
    const got = [...b.takeCompleted(), ...b.partialTiles()].map((t) => `${t.level}/${t.index}/${t.width}`).sort();
    const want = tilesForSize(n).map((t) => `${t.level}/${t.index}/${t.width}`).sort();
    assert.deepEqual(got, want, `size ${n}`);
  }
});

test('resuming from the right edge gives the same tree as building from zero (property)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 3000 }), (a, extra) => {
      const all = leaves(a + extra, a);
      const full = new TreeBuilder(nativeSha256);
      for (const l of all.slice(0, a)) full.append(l);
      const edge = full.partialTiles();
      const partial: Uint8Array[][] = [];
      for (let l = 0, c = a; c > 0; l++, c = Math.floor(c / 256)) {
        const t = edge.find((x) => x.level === l);
        partial.push(t ? Array.from({ length: t.width }, (_, i) => t.data.subarray(i * 32, i * 32 + 32)) : []);
      }
      const resumed = new TreeBuilder(nativeSha256, a, partial);
      const clone = full.clone();
      for (const l of all.slice(a)) {
        full.append(l);
        resumed.append(l);
      }
      assert.equal(toBase64(resumed.root()), toBase64(full.root()));
      assert.equal(clone.size, a, 'a clone is independent of the original');
      assert.equal(toBase64(resumed.root()), toBase64(naiveRoot(all)));
    }),
    { numRuns: 60 },
  );
});

test('a right edge of the wrong shape is refused', () => {
  assert.throws(() => new TreeBuilder(nativeSha256, 300, [[]]));
});
