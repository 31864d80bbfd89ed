/**
 * RFC 6962 §2.1 / RFC 9162 §2.1.1 hashing: leaves are SHA-256(0x00 ‖ entry), interior nodes
 * SHA-256(0x01 ‖ left ‖ right). The hash function is injectable so Node callers can pass a
 * native SHA-256; it must be a pure SHA-256 that does not keep a reference to its input.
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { checkBytes, fail, nodeHash } from './internal.js';

export type Sha256 = (data: Uint8Array) => Uint8Array;

export const sha256: Sha256 = (data: Uint8Array): Uint8Array => nobleSha256(data);

export const HASH_SIZE = 32;

/** Root of the empty tree, SHA-256 of the empty string (RFC 9162 §2.1.1). Do not mutate. */
export const EMPTY_ROOT: Uint8Array = sha256(new Uint8Array(0));

function checkHashFn(h: unknown): Sha256 {
  if (typeof h !== 'function') fail('INVALID_ARGUMENT', 'hash function must be a function');
  return h as Sha256;
}

/** SHA-256(0x00 ‖ entry). */
export function hashLeaf(entry: Uint8Array, h: Sha256 = sha256): Uint8Array {
  checkBytes('entry', entry);
  const buf = new Uint8Array(1 + entry.length);
  buf[0] = 0x00;
  buf.set(entry, 1);
  return checkHashFn(h)(buf);
}

/** SHA-256(0x01 ‖ left ‖ right); both inputs must be 32-byte hashes. */
export function hashChildren(left: Uint8Array, right: Uint8Array, h: Sha256 = sha256): Uint8Array {
  checkBytes('left hash', left, HASH_SIZE);
  checkBytes('right hash', right, HASH_SIZE);
  return nodeHash(left, right, h);
}

/** The empty-tree root computed with `h` (a fresh copy, safe to hand out). */
export function emptyRoot(h: Sha256 = sha256): Uint8Array {
  if (h === sha256) return EMPTY_ROOT.slice();
  return checkHashFn(h)(new Uint8Array(0));
}
