/**
 * Byte encodings. Base64 is the standard alphabet with padding (RFC 4648 §4), as every C2SP
 * tlog spec uses; decoding is strict: only canonical encodings are accepted, so a value has
 * exactly one textual form and `toBase64(fromBase64(s)) === s` always holds.
 */
import { VerifyError } from './errors.js';
import { checkBytes, describe, fail, isWellFormedString } from './internal.js';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

export function toBase64(b: Uint8Array): string {
  checkBytes('bytes', b);
  let out = '';
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const n = b[i]! * 65536 + b[i + 1]! * 256 + b[i + 2]!;
    out += B64[Math.floor(n / 262144)]! + B64[Math.floor(n / 4096) % 64]! + B64[Math.floor(n / 64) % 64]! + B64[n % 64]!;
  }
  const rest = b.length - i;
  if (rest === 1) {
    const n = b[i]! * 65536;
    out += B64[Math.floor(n / 262144)]! + B64[Math.floor(n / 4096) % 64]! + '==';
  } else if (rest === 2) {
    const n = b[i]! * 65536 + b[i + 1]! * 256;
    out += B64[Math.floor(n / 262144)]! + B64[Math.floor(n / 4096) % 64]! + B64[Math.floor(n / 64) % 64]! + '=';
  }
  return out;
}

/**
 * Strict standard base64 (RFC 4648 §4): length a multiple of 4, only the standard alphabet,
 * '=' only as final padding, and the unused bits of the last character zero (canonical).
 * With `expectedLength`, the decoded length must match too. Otherwise MALFORMED_BASE64.
 */
export function fromBase64(s: string, expectedLength?: number): Uint8Array {
  if (typeof s !== 'string') fail('MALFORMED_BASE64', `base64 input must be a string, got ${describe(s)}`);
  if (s.length % 4 !== 0) fail('MALFORMED_BASE64', `base64 length ${s.length} is not a multiple of 4`);
  let pad = 0;
  if (s.length > 0 && s.charCodeAt(s.length - 1) === 61) pad = s.charCodeAt(s.length - 2) === 61 ? 2 : 1;
  const outLen = (s.length / 4) * 3 - pad;
  if (expectedLength !== undefined && outLen !== expectedLength) {
    fail('MALFORMED_BASE64', `base64 value decodes to ${outLen} bytes, expected ${expectedLength}`);
  }
  const out = new Uint8Array(outLen);
  const body = s.length - pad;
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < body; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64_VALUE[c]! : -1;
    if (v < 0) fail('MALFORMED_BASE64', `invalid base64 character at position ${i}`);
    acc = acc * 64 + v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      const div = 2 ** bits;
      out[o++] = Math.floor(acc / div);
      acc %= div;
    }
  }
  // Non-canonical: the bits left over after the last full byte must be zero.
  if (acc !== 0) fail('MALFORMED_BASE64', 'base64 value has non-zero padding bits (not canonical)');
  return out;
}

export function toHex(b: Uint8Array): string {
  checkBytes('bytes', b);
  let out = '';
  for (let i = 0; i < b.length; i++) out += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return out;
}

/** Hex to bytes: even length, digits 0-9 a-f A-F only; else INVALID_ARGUMENT. */
export function fromHex(s: string): Uint8Array {
  if (typeof s !== 'string' || s.length % 2 !== 0) fail('INVALID_ARGUMENT', 'hex input must be a string of even length');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(s.charCodeAt(2 * i));
    const lo = hexValue(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) fail('INVALID_ARGUMENT', `invalid hex digit near position ${2 * i}`);
    out[i] = hi * 16 + lo;
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  checkBytes('a', a);
  checkBytes('b', b);
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff += a[i] === b[i] ? 0 : 1;
  return diff === 0;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += checkBytes('part', p).length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** UTF-8 encoding; INVALID_ARGUMENT for strings with lone surrogates (which have no UTF-8 form). */
export function utf8Encode(s: string): Uint8Array {
  if (typeof s !== 'string') fail('INVALID_ARGUMENT', `expected a string, got ${describe(s)}`);
  if (!isWellFormedString(s)) fail('INVALID_ARGUMENT', 'string contains a lone surrogate and has no UTF-8 encoding');
  return encoder.encode(s);
}

/** UTF-8 decoding; INVALID_ARGUMENT on invalid UTF-8 (never substitutes U+FFFD). A BOM is kept. */
export function utf8Decode(b: Uint8Array): string {
  checkBytes('bytes', b);
  try {
    return decoder.decode(b);
  } catch (e) {
    if (e instanceof VerifyError) throw e;
    return fail('INVALID_ARGUMENT', 'bytes are not valid UTF-8');
  }
}
