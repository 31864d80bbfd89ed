/**
 * Helpers shared by the modules of @custody/verify; not part of the public API.
 */
import { VerifyError, type VerifyErrorCode } from './errors.js';

/** Throws a VerifyError; typed `never` so it can end expressions. */
export function fail(code: VerifyErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new VerifyError(code, message, details);
}

/** Throws INVALID_ARGUMENT unless `v` is a non-negative safe integer. Returns `v`. */
export function checkIndex(name: string, v: unknown, code: VerifyErrorCode = 'INVALID_ARGUMENT'): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    fail(code, `${name} must be a non-negative safe integer, got ${describe(v)}`);
  }
  return v;
}

/** Throws INVALID_ARGUMENT unless `v` is a Uint8Array (of `length` bytes when given). */
export function checkBytes(name: string, v: unknown, length?: number, code: VerifyErrorCode = 'INVALID_ARGUMENT'): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(code, `${name} must be a Uint8Array, got ${describe(v)}`);
  if (length !== undefined && v.length !== length) {
    fail(code, `${name} must be ${length} bytes, got ${v.length}`);
  }
  return v;
}

/** A short, safe description of a value for error messages (never echoes long input). */
export function describe(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  return typeof v;
}

/** A fresh copy that is a plain Uint8Array (not a view, not a Buffer). */
export function copyBytes(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}

/** True when `s` has no lone UTF-16 surrogates, i.e. it can be encoded as UTF-8 losslessly. */
export function isWellFormedString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c >= 0xdc00) return false; // lone low surrogate
    const d = s.charCodeAt(i + 1); // NaN past the end
    if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/** Number of bytes `s` takes in UTF-8 (for a well-formed string). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** SHA-256(0x01 ‖ left ‖ right) without argument checks, for loops over already-checked hashes. */
export function nodeHash(left: Uint8Array, right: Uint8Array, h: (data: Uint8Array) => Uint8Array): Uint8Array {
  const buf = new Uint8Array(65);
  buf[0] = 0x01;
  buf.set(left, 1);
  buf.set(right, 33);
  return h(buf);
}
