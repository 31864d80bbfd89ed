/**
 * RFC 6962 / RFC 9162 §2.1 Merkle tree hashes and proofs over a tree whose perfect subtrees
 * are read through a NodeReader. Indices and sizes are JS numbers (safe integers); no 32-bit
 * bitwise operators are used, so trees larger than 2^31 leaves work.
 */
import type { VerifyErrorCode } from './errors.js';
import { HASH_SIZE, emptyRoot, sha256, type Sha256 } from './hash.js';
import { checkBytes, checkIndex, copyBytes, describe, fail, nodeHash } from './internal.js';

/** Hash of the perfect subtree at `level` covering leaves [index·2^level, (index+1)·2^level). */
export type NodeReader = (level: number, index: number) => Uint8Array;

export interface NodeId {
  level: number;
  index: number;
}

/** Largest power of two strictly less than n (n ≥ 2): the RFC 6962 §2.1 split point. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Largest power of two ≤ n (n ≥ 1), with its exponent. */
function floorPow2(n: number): { k: number; level: number } {
  let k = 1;
  let level = 0;
  while (k * 2 <= n) {
    k *= 2;
    level++;
  }
  return { k, level };
}

function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

function readNode(read: NodeReader, level: number, index: number): Uint8Array {
  const v = read(level, index);
  if (!(v instanceof Uint8Array) || v.length !== HASH_SIZE) {
    fail('INVALID_ARGUMENT', `node reader returned ${describe(v)} for node (level ${level}, index ${index}), expected ${HASH_SIZE} bytes`);
  }
  return v;
}

function checkReader(read: unknown): NodeReader {
  if (typeof read !== 'function') fail('INVALID_ARGUMENT', 'node reader must be a function');
  return read as NodeReader;
}

function checkHashList(name: string, list: unknown, code: VerifyErrorCode): Uint8Array[] {
  if (!Array.isArray(list)) fail('INVALID_ARGUMENT', `${name} must be an array of hashes`);
  for (let i = 0; i < list.length; i++) checkBytes(`${name}[${i}]`, list[i], HASH_SIZE, code);
  return list as Uint8Array[];
}

/** Reference MTH (RFC 9162 §2.1.1): recursive split at the largest power of two < n. */
export function naiveRoot(leafHashes: Uint8Array[], h: Sha256 = sha256): Uint8Array {
  const leaves = checkHashList('leafHashes', leafHashes, 'INVALID_ARGUMENT');
  if (leaves.length === 0) return emptyRoot(h);
  const mth = (lo: number, hi: number): Uint8Array => {
    if (hi - lo === 1) return copyBytes(leaves[lo]!);
    const k = splitPoint(hi - lo);
    return nodeHash(mth(lo, lo + k), mth(lo + k, hi), h);
  };
  return mth(0, leaves.length);
}

/**
 * MTH of leaves [lo, hi) built from perfect subtrees only: [lo, hi) is cut into the largest
 * aligned power-of-two blocks, left to right, and those are folded right to left. Every range
 * RFC 6962 proofs need has this shape; others are rejected with INVALID_ARGUMENT.
 */
export function subtreeRoot(lo: number, hi: number, read: NodeReader, h: Sha256 = sha256): Uint8Array {
  checkIndex('lo', lo);
  checkIndex('hi', hi);
  checkReader(read);
  if (hi <= lo) fail('INVALID_ARGUMENT', `empty leaf range [${lo}, ${hi})`);
  const nodes: Uint8Array[] = [];
  for (let x = lo; x < hi; ) {
    const { k, level } = floorPow2(hi - x);
    if (x % k !== 0) fail('INVALID_ARGUMENT', `leaf range [${lo}, ${hi}) is not made of aligned perfect subtrees`);
    nodes.push(readNode(read, level, x / k));
    x += k;
  }
  let r = nodes[nodes.length - 1]!;
  for (let i = nodes.length - 2; i >= 0; i--) r = nodeHash(nodes[i]!, r, h);
  return nodes.length === 1 ? copyBytes(r) : r;
}

/** Root of the tree of `size` leaves; EMPTY_ROOT (a copy) for size 0. */
export function treeRoot(size: number, read: NodeReader, h: Sha256 = sha256): Uint8Array {
  checkIndex('size', size);
  if (size === 0) return emptyRoot(h);
  return subtreeRoot(0, size, read, h);
}

/** The perfect subtrees decomposing [0, size), left to right, largest first. */
export function compactRangeNodes(size: number): NodeId[] {
  checkIndex('size', size);
  const out: NodeId[] = [];
  for (let x = 0; x < size; ) {
    const { k, level } = floorPow2(size - x);
    out.push({ level, index: x / k });
    x += k;
  }
  return out;
}

/** Folds compact-range hashes right to left: r = last; r = H(1, hashes[i], r). Empty → EMPTY_ROOT. */
export function rootFromCompactRange(hashes: Uint8Array[], h: Sha256 = sha256): Uint8Array {
  const list = checkHashList('hashes', hashes, 'INVALID_ARGUMENT');
  if (list.length === 0) return emptyRoot(h);
  let r = copyBytes(list[list.length - 1]!);
  for (let i = list.length - 2; i >= 0; i--) r = nodeHash(list[i]!, r, h);
  return r;
}

/** Number of hashes in the inclusion proof of `index` in a tree of `size` (RFC 9162 §2.1.3.1). */
export function inclusionProofSize(index: number, size: number): number {
  checkIndex('index', index);
  checkIndex('size', size);
  if (index >= size) fail('INVALID_ARGUMENT', `index ${index} is not below tree size ${size}`);
  let n = 0;
  for (let lo = 0, hi = size; hi - lo > 1; n++) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) hi = lo + k;
    else lo += k;
  }
  return n;
}

/** Number of hashes in the consistency proof from size1 to size2 (RFC 9162 §2.1.4.1). */
export function consistencyProofSize(size1: number, size2: number): number {
  checkIndex('size1', size1);
  checkIndex('size2', size2);
  if (size1 > size2) fail('INVALID_ARGUMENT', `size1 ${size1} is larger than size2 ${size2}`);
  if (size1 === 0 || size1 === size2) return 0;
  let n = 0;
  let lo = 0;
  let hi = size2;
  while (size1 !== hi) {
    const k = splitPoint(hi - lo);
    if (size1 <= lo + k) hi = lo + k;
    else lo += k;
    n++;
  }
  return lo === 0 ? n : n + 1;
}

/** Inclusion proof (RFC 9162 §2.1.3.1): same hashes, same order as Go tlog.ProveRecord. */
export function proveInclusion(index: number, size: number, read: NodeReader, h: Sha256 = sha256): Uint8Array[] {
  inclusionProofSize(index, size); // validates
  checkReader(read);
  const out: Uint8Array[] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      out.push(subtreeRoot(lo + k, hi, read, h));
      hi = lo + k;
    } else {
      out.push(subtreeRoot(lo, lo + k, read, h));
      lo += k;
    }
  }
  return out.reverse();
}

/**
 * Consistency proof (RFC 9162 §2.1.4.1): the same as Go tlog.ProveTree(t=size2, n=size1);
 * empty when size1 == size2 or size1 == 0.
 */
export function proveConsistency(size1: number, size2: number, read: NodeReader, h: Sha256 = sha256): Uint8Array[] {
  consistencyProofSize(size1, size2); // validates
  checkReader(read);
  if (size1 === 0 || size1 === size2) return [];
  const out: Uint8Array[] = [];
  let lo = 0;
  let hi = size2;
  while (size1 !== hi) {
    const k = splitPoint(hi - lo);
    if (size1 <= lo + k) {
      out.push(subtreeRoot(lo + k, hi, read, h));
      hi = lo + k;
    } else {
      out.push(subtreeRoot(lo, lo + k, read, h));
      lo += k;
    }
  }
  if (lo !== 0) out.push(subtreeRoot(lo, hi, read, h));
  return out.reverse();
}

/**
 * The root implied by an inclusion proof (RFC 9162 §2.1.3.2). INCLUSION_PROOF_INVALID when
 * index ≥ size or the proof does not have exactly the length the tree shape requires.
 */
export function rootFromInclusionProof(leafHash: Uint8Array, index: number, size: number, proof: Uint8Array[], h: Sha256 = sha256): Uint8Array {
  checkBytes('leafHash', leafHash, HASH_SIZE);
  checkIndex('index', index);
  checkIndex('size', size);
  const path = checkHashList('proof', proof, 'INCLUSION_PROOF_INVALID');
  if (index >= size) fail('INCLUSION_PROOF_INVALID', `index ${index} is not below tree size ${size}`);
  const want = inclusionProofSize(index, size);
  if (path.length !== want) {
    fail('INCLUSION_PROOF_INVALID', `inclusion proof has ${path.length} hashes, a tree of size ${size} needs ${want} for index ${index}`);
  }
  let fn = index;
  let sn = size - 1;
  let r = copyBytes(leafHash);
  for (const p of path) {
    if (sn === 0) fail('INCLUSION_PROOF_INVALID', 'inclusion proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r, h);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p, h);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) fail('INCLUSION_PROOF_INVALID', 'inclusion proof is too short');
  return r;
}

/** Checks an inclusion proof against a root (RFC 9162 §2.1.3.2); throws INCLUSION_PROOF_INVALID. */
export function verifyInclusion(leafHash: Uint8Array, index: number, size: number, proof: Uint8Array[], root: Uint8Array, h: Sha256 = sha256): void {
  checkBytes('root', root, HASH_SIZE);
  const got = rootFromInclusionProof(leafHash, index, size, proof, h);
  if (!equal32(got, root)) {
    fail('INCLUSION_PROOF_INVALID', `inclusion proof for index ${index} does not lead to the root of the tree of size ${size}`, { index, size });
  }
}

/**
 * Checks a consistency proof (RFC 9162 §2.1.4.2); throws CONSISTENCY_PROOF_INVALID.
 * size1 == size2 needs an empty proof and equal roots; size1 == 0 needs an empty proof (the
 * empty tree is a prefix of every tree; root1 is not examined then).
 */
export function verifyConsistency(size1: number, size2: number, proof: Uint8Array[], root1: Uint8Array, root2: Uint8Array, h: Sha256 = sha256): void {
  checkIndex('size1', size1);
  checkIndex('size2', size2);
  checkBytes('root1', root1, HASH_SIZE);
  checkBytes('root2', root2, HASH_SIZE);
  const path = checkHashList('proof', proof, 'CONSISTENCY_PROOF_INVALID');
  const bad = (msg: string): never => fail('CONSISTENCY_PROOF_INVALID', msg, { size1, size2 });
  if (size1 > size2) bad(`tree size went backwards from ${size1} to ${size2}`);
  if (size1 === size2) {
    if (path.length !== 0) bad('a consistency proof between equal sizes must be empty');
    if (!equal32(root1, root2)) bad(`two different roots for the same tree size ${size1}`);
    return;
  }
  if (size1 === 0) {
    if (path.length !== 0) bad('a consistency proof from the empty tree must be empty');
    return;
  }
  const want = consistencyProofSize(size1, size2);
  if (path.length !== want) bad(`consistency proof has ${path.length} hashes, ${want} are needed from ${size1} to ${size2}`);
  // RFC 9162 §2.1.4.2, steps 1-7.
  const c = isPowerOfTwo(size1) ? [root1, ...path] : path;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = c[0]!;
  let sr = c[0]!;
  for (let i = 1; i < c.length; i++) {
    const p = c[i]!;
    if (sn === 0) bad('consistency proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(p, fr, h);
      sr = nodeHash(p, sr, h);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, p, h);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) bad('consistency proof is too short');
  if (!equal32(fr, root1)) bad(`consistency proof does not lead to the root of the tree of size ${size1}`);
  if (!equal32(sr, root2)) bad(`consistency proof does not lead to the root of the tree of size ${size2}`);
}

function equal32(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d += a[i] === b[i] ? 0 : 1;
  return d === 0;
}

