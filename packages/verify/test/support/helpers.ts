/** Shared test helpers. */
import assert from 'node:assert/strict';
import { VerifyError, hashChildren, hashLeaf, utf8Encode, type NodeReader, type VerifyErrorCode } from '../../src/index.js';

/** Asserts that fn throws a VerifyError with this code. */
export function assertCode(fn: () => unknown, code: VerifyErrorCode, what = ''): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof VerifyError, `${what}: expected a VerifyError, got ${String(e)}`);
    assert.equal(e.code, code, `${what}: expected ${code}, got ${e.code} (${e.message})`);
    assert.equal(e.name, 'VerifyError');
    return;
  }
  assert.fail(`${what}: expected VerifyError ${code}, nothing was thrown`);
}

/** Plain Uint8Array copy (so deepStrictEqual can compare with Buffers). */
export function u8(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

export function flipBit(b: Uint8Array, byte = 0, bit = 0): Uint8Array {
  const c = new Uint8Array(b);
  c[byte % c.length] = c[byte % c.length]! ^ (1 << bit);
  return c;
}

/** Deterministic leaf hashes: hashLeaf("<seed>/<i>"). */
export function makeLeaves(size: number, seed: number | string = 0): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < size; i++) out.push(hashLeaf(utf8Encode(`${seed}/${i}`)));
  return out;
}

/** A NodeReader computing perfect subtree hashes from the leaves (memoized). */
export function leavesReader(leaves: Uint8Array[]): NodeReader {
  const memo = new Map<string, Uint8Array>();
  const node = (level: number, index: number): Uint8Array => {
    if ((index + 1) * 2 ** level > leaves.length) throw new Error(`node ${level}/${index} is not complete in ${leaves.length} leaves`);
    if (level === 0) return leaves[index]!;
    const key = `${level}/${index}`;
    let v = memo.get(key);
    if (v === undefined) {
      v = hashChildren(node(level - 1, 2 * index), node(level - 1, 2 * index + 1));
      memo.set(key, v);
    }
    return v;
  };
  return node;
}

/** Memoizes any NodeReader, counting the reads that reach it. */
export function memoReader(read: NodeReader): NodeReader & { misses: number } {
  const memo = new Map<string, Uint8Array>();
  const f = ((level: number, index: number): Uint8Array => {
    const key = `${level}/${index}`;
    let v = memo.get(key);
    if (v === undefined) {
      f.misses++;
      v = read(level, index);
      memo.set(key, v);
    }
    return v;
  }) as NodeReader & { misses: number };
  f.misses = 0;
  return f;
}

/**
 * A tree of up to 2^53 leaves where every leaf is the same "default" hash except a few marked
 * ones, so any node is computable in O(level × marks): lets proofs run on trees far beyond 2^32.
 */
export class SparseTree {
  private readonly defaults: Uint8Array[] = [];
  private readonly memo = new Map<string, Uint8Array>();
  readonly marked: number[];

  constructor(
    readonly size: number,
    marks: number[],
  ) {
    this.marked = [...new Set(marks)].filter((m) => m < size).sort((a, b) => a - b);
    this.defaults.push(hashLeaf(utf8Encode('default leaf')));
    for (let l = 1; l <= 53; l++) this.defaults.push(hashChildren(this.defaults[l - 1]!, this.defaults[l - 1]!));
  }

  leaf(i: number): Uint8Array {
    return this.marked.includes(i) ? hashLeaf(utf8Encode(`marked ${i}`)) : this.defaults[0]!;
  }

  readonly node: NodeReader = (level, index) => {
    const lo = index * 2 ** level;
    const hi = lo + 2 ** level;
    if (hi > this.size) throw new Error(`node ${level}/${index} is not complete in ${this.size} leaves`);
    if (!this.marked.some((m) => m >= lo && m < hi)) return this.defaults[level]!;
    if (level === 0) return this.leaf(index);
    const key = `${level}/${index}`;
    let v = this.memo.get(key);
    if (v === undefined) {
      v = hashChildren(this.node(level - 1, 2 * index), this.node(level - 1, 2 * index + 1));
      this.memo.set(key, v);
    }
    return v;
  };
}
