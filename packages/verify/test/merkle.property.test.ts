/** Property tests of merkle.ts against the reference MTH (naiveRoot), plus trees beyond 2^32. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  EMPTY_ROOT,
  compactRangeNodes,
  consistencyProofSize,
  hashChildren,
  inclusionProofSize,
  naiveRoot,
  proveConsistency,
  proveInclusion,
  rootFromCompactRange,
  rootFromInclusionProof,
  subtreeRoot,
  tileNodeReader,
  tileWidthAt,
  toBase64,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
} from '../src/index.js';
import { SparseTree, assertCode, flipBit, leavesReader, makeLeaves } from './support/helpers.js';
import { createHash } from 'node:crypto';

const RUNS = { numRuns: 40 };

describe('merkle properties (sizes 0..600)', () => {
  test('treeRoot over a NodeReader equals naiveRoot; compact range too', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 600 }), fc.integer(), (size, seed) => {
        const leaves = makeLeaves(size, seed);
        const want = naiveRoot(leaves);
        const read = leavesReader(leaves);
        assert.deepEqual(treeRoot(size, read), want);
        assert.deepEqual(rootFromCompactRange(compactRangeNodes(size).map((n) => read(n.level, n.index))), want);
        let covered = 0;
        for (const n of compactRangeNodes(size)) {
          assert.equal(n.index * 2 ** n.level, covered);
          covered += 2 ** n.level;
        }
        assert.equal(covered, size);
      }),
      { numRuns: 60 },
    );
  });

  test('every inclusion proof round-trips, and a flipped bit breaks it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600 }), fc.integer(), fc.nat(), (size, seed, pick) => {
        const leaves = makeLeaves(size, seed);
        const root = naiveRoot(leaves);
        const read = leavesReader(leaves);
        for (let i = 0; i < size; i++) {
          const proof = proveInclusion(i, size, read);
          assert.equal(proof.length, inclusionProofSize(i, size));
          verifyInclusion(leaves[i]!, i, size, proof, root);
          assert.deepEqual(rootFromInclusionProof(leaves[i]!, i, size, proof), root);
        }
        const i = pick % size;
        const proof = proveInclusion(i, size, read);
        if (proof.length > 0) {
          const j = pick % proof.length;
          const bad = proof.map((h, k) => (k === j ? flipBit(h, pick, pick % 8) : h));
          assertCode(() => verifyInclusion(leaves[i]!, i, size, bad, root), 'INCLUSION_PROOF_INVALID');
        }
        assertCode(() => verifyInclusion(leaves[i]!, i, size, proof, flipBit(root)), 'INCLUSION_PROOF_INVALID');
      }),
      RUNS,
    );
  });

  test('consistency proofs between random size pairs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 600 }), fc.integer(), fc.nat(), (a, b, seed, pick) => {
        const [m, n] = a <= b ? [a, b] : [b, a];
        const leaves = makeLeaves(n, seed);
        const read = leavesReader(leaves);
        const r1 = naiveRoot(leaves.slice(0, m));
        const r2 = naiveRoot(leaves);
        const proof = proveConsistency(m, n, read);
        assert.equal(proof.length, consistencyProofSize(m, n));
        verifyConsistency(m, n, proof, r1, r2);
        if (proof.length > 0) {
          const j = pick % proof.length;
          assertCode(() => verifyConsistency(m, n, proof.map((h, k) => (k === j ? flipBit(h, pick) : h)), r1, r2), 'CONSISTENCY_PROOF_INVALID');
          assertCode(() => verifyConsistency(m, n, proof, flipBit(r1), r2), 'CONSISTENCY_PROOF_INVALID');
          assertCode(() => verifyConsistency(m, n, proof, r1, flipBit(r2)), 'CONSISTENCY_PROOF_INVALID');
          assertCode(() => verifyConsistency(m, n, proof.slice(1), r1, r2), 'CONSISTENCY_PROOF_INVALID');
        }
        if (m < n && m > 0) assertCode(() => verifyConsistency(n, m, proof, r2, r1), 'CONSISTENCY_PROOF_INVALID');
        // Each intermediate size too, for small trees.
        if (n <= 64) for (let k = 0; k <= n; k++) verifyConsistency(k, n, proveConsistency(k, n, read), naiveRoot(leaves.slice(0, k)), r2);
      }),
      RUNS,
    );
  });

  test('subtreeRoot of aligned ranges is the MTH of those leaves', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9 }), fc.nat(), fc.integer({ min: 1, max: 512 }), (lvl, idx, len) => {
        const k = 2 ** lvl;
        const lo = (idx % 8) * k;
        const hi = lo + Math.min(len, k);
        const leaves = makeLeaves(hi, 'sub');
        assert.deepEqual(subtreeRoot(lo, hi, leavesReader(leaves)), naiveRoot(leaves.slice(lo, hi)));
      }),
      { numRuns: 100 },
    );
    assertCode(() => subtreeRoot(1, 3, leavesReader(makeLeaves(4))), 'INVALID_ARGUMENT'); // [1,3) is not aligned
    assertCode(() => subtreeRoot(2, 2, leavesReader(makeLeaves(4))), 'INVALID_ARGUMENT');
  });

  test('a few larger trees', () => {
    for (const size of [1024, 1025, 4097, 65_536, 65_537, 100_003]) {
      const leaves = makeLeaves(size, size);
      const root = naiveRoot(leaves);
      const read = leavesReader(leaves);
      assert.deepEqual(treeRoot(size, read), root);
      for (const i of [0, 1, size >> 1, size - 2, size - 1]) verifyInclusion(leaves[i]!, i, size, proveInclusion(i, size, read), root);
      for (const m of [1, 2, 3, 255, 256, 257, size >> 1, size - 1]) {
        verifyConsistency(m, size, proveConsistency(m, size, read), treeRoot(m, read), root);
      }
    }
  });

  test('edge cases', () => {
    assert.deepEqual(naiveRoot([]), EMPTY_ROOT);
    assert.equal(toBase64(EMPTY_ROOT), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    assert.deepEqual(treeRoot(0, () => assert.fail('no reads for size 0')), EMPTY_ROOT);
    assert.deepEqual(rootFromCompactRange([]), EMPTY_ROOT);
    assert.deepEqual(compactRangeNodes(0), []);
    assert.deepEqual(compactRangeNodes(7), [{ level: 2, index: 0 }, { level: 1, index: 2 }, { level: 0, index: 6 }]);
    const [a, b] = makeLeaves(2);
    assert.deepEqual(naiveRoot([a!, b!]), hashChildren(a!, b!));
    assert.deepEqual(proveConsistency(0, 5, leavesReader(makeLeaves(5))), []);
    assert.deepEqual(proveConsistency(5, 5, leavesReader(makeLeaves(5))), []);
    verifyConsistency(0, 5, [], EMPTY_ROOT, naiveRoot(makeLeaves(5)));
    verifyConsistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT);
    assertCode(() => verifyConsistency(0, 5, [a!], EMPTY_ROOT, a!), 'CONSISTENCY_PROOF_INVALID');
    assertCode(() => verifyConsistency(5, 5, [], a!, b!), 'CONSISTENCY_PROOF_INVALID');
    assertCode(() => verifyConsistency(6, 5, [], a!, b!), 'CONSISTENCY_PROOF_INVALID');
    assertCode(() => verifyInclusion(a!, 0, 0, [], a!), 'INCLUSION_PROOF_INVALID');
    assertCode(() => verifyInclusion(a!, 0, 1, [b!], a!), 'INCLUSION_PROOF_INVALID');
    assertCode(() => verifyInclusion(a!, 0, 2, [new Uint8Array(31)], a!), 'INCLUSION_PROOF_INVALID');
    assertCode(() => verifyInclusion(a!, 0, 2, Array(1000).fill(b), a!), 'INCLUSION_PROOF_INVALID');
    verifyInclusion(a!, 0, 1, [], a!);
    assertCode(() => proveInclusion(5, 5, leavesReader(makeLeaves(5))), 'INVALID_ARGUMENT');
    assertCode(() => proveConsistency(6, 5, leavesReader(makeLeaves(5))), 'INVALID_ARGUMENT');
    assertCode(() => treeRoot(3, () => new Uint8Array(31)), 'INVALID_ARGUMENT');
  });

  test('unsafe or negative integers are rejected everywhere', () => {
    const read = leavesReader(makeLeaves(4));
    const [a] = makeLeaves(1);
    for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, '3' as unknown as number]) {
      assertCode(() => treeRoot(bad, read), 'INVALID_ARGUMENT', `treeRoot ${bad}`);
      assertCode(() => compactRangeNodes(bad), 'INVALID_ARGUMENT', `compactRangeNodes ${bad}`);
      assertCode(() => proveInclusion(bad, 4, read), 'INVALID_ARGUMENT');
      assertCode(() => proveInclusion(0, bad, read), 'INVALID_ARGUMENT');
      assertCode(() => proveConsistency(bad, 4, read), 'INVALID_ARGUMENT');
      assertCode(() => proveConsistency(1, bad, read), 'INVALID_ARGUMENT');
      assertCode(() => verifyInclusion(a!, bad, 4, [], a!), 'INVALID_ARGUMENT');
      assertCode(() => verifyInclusion(a!, 0, bad, [], a!), 'INVALID_ARGUMENT');
      assertCode(() => verifyConsistency(bad, 4, [], a!, a!), 'INVALID_ARGUMENT');
      assertCode(() => verifyConsistency(1, bad, [], a!, a!), 'INVALID_ARGUMENT');
      assertCode(() => tileWidthAt(0, 0, bad), 'INVALID_ARGUMENT');
      assertCode(() => subtreeRoot(bad, 4, read), 'INVALID_ARGUMENT');
    }
  });

  test('the injectable hash is used throughout', () => {
    let calls = 0;
    const native = (d: Uint8Array): Uint8Array => {
      calls++;
      return new Uint8Array(createHash('sha256').update(d).digest());
    };
    const leaves = makeLeaves(300);
    const read = leavesReader(leaves);
    const root = treeRoot(300, read, native);
    assert.deepEqual(root, naiveRoot(leaves));
    verifyInclusion(leaves[7]!, 7, 300, proveInclusion(7, 300, read, native), root, native);
    verifyConsistency(100, 300, proveConsistency(100, 300, read, native), treeRoot(100, read), root, native);
    assert.ok(calls > 0);
  });
});

describe('trees beyond 2^32 leaves', () => {
  const sizes = [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12_345, 2 ** 52 + 3, Number.MAX_SAFE_INTEGER];

  test('inclusion and consistency round trips on sparse giant trees', () => {
    for (const size of sizes) {
      const marks = [0, 1, 2 ** 31, 2 ** 31 + 1, 2 ** 32 - 1, 2 ** 32, Math.floor(size / 3), size - 2, size - 1];
      const t = new SparseTree(size, marks);
      const root = treeRoot(size, t.node);
      for (const x of t.marked) {
        const proof = proveInclusion(x, size, t.node);
        assert.equal(proof.length, inclusionProofSize(x, size));
        verifyInclusion(t.leaf(x), x, size, proof, root);
        const other = x + 1 < size && !t.marked.includes(x + 1) ? x + 1 : x - 1;
        if (other >= 0 && !bytesEq(t.leaf(other), t.leaf(x))) {
          assertCode(() => verifyInclusion(t.leaf(x), other, size, proof, root), 'INCLUSION_PROOF_INVALID', `size ${size} index ${x}`);
        }
      }
      for (const m of [1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, Math.floor(size / 2), size - 1, size]) {
        if (m > size) continue;
        const proof = proveConsistency(m, size, t.node);
        assert.equal(proof.length, consistencyProofSize(m, size));
        const r1 = treeRoot(m, t.node);
        verifyConsistency(m, size, proof, r1, root);
        if (proof.length > 0) assertCode(() => verifyConsistency(m, size, proof, flipBit(r1), root), 'CONSISTENCY_PROOF_INVALID');
      }
    }
  });

  test('tileNodeReader reads giant trees through tiles', () => {
    for (const size of sizes) {
      const t = new SparseTree(size, [3, 2 ** 32 + 7, size - 1]);
      let reads = 0;
      const readTile = (level: number, index: number, width: number): Uint8Array => {
        reads++;
        assert.equal(width, tileWidthAt(level, index, size));
        assert.ok(width >= 1 && width <= 256);
        const out = new Uint8Array(width * 32);
        for (let j = 0; j < width; j++) out.set(t.node(8 * level, index * 256 + j), j * 32);
        return out;
      };
      const root = treeRoot(size, t.node);
      assert.deepEqual(treeRoot(size, tileNodeReader(size, readTile)), root, `size ${size}`);
      const proof = proveInclusion(size - 1, size, tileNodeReader(size, readTile));
      verifyInclusion(t.leaf(size - 1), size - 1, size, proof, root);
      assert.ok(reads > 0);
    }
  });
});

function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}
