/**
 * Envelope encryption of everything that holds record content at rest (entry bundles, blobs,
 * the sequencer journal). Each sealed object gets a fresh 256-bit data key (DEK); the DEK is
 * wrapped with the log's key-encryption key (KEK) from the keyring. Both layers are
 * AES-256-GCM; the data layer's additional data binds the sealed header and a context string
 * (e.g. "bundle <origin> 3 256"), so a file moved to another position fails to open.
 *
 * Layout: "CSTE" | version 1 | flags | kekId u32 | wrapIv 12 | wrappedDek 32 | wrapTag 16 |
 *         iv 12 | ciphertext | tag 16
 * flags: bit 0 = the plaintext is Brotli-compressed (crypto/compress.ts); 0 before compression
 * existed, so older objects read unchanged.
 *
 * Version 2 (entry bundles of a log whose keys are in AWS KMS, crypto/kms.ts): the data key is
 * a KMS data key, stored as KMS's ciphertext, and the header names the KMS key:
 *   "CSTE" | version 2 | flags | keyIdLen u16 | keyId (UTF-8) | blobLen u16 | CiphertextBlob |
 *   iv 12 | ciphertext | tag 16
 * The data layer's additional data is the whole header and the context string, as in version 1.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CustodyError } from '../errors.js';
import { compressForSealing, inflateSealed, plaintextForBenchmark, PLAINTEXT_MAGIC } from './compress.js';

const MAGIC = Buffer.from('CSTE');
const VERSION = 1;
export const SEALED_HEADER_SIZE = 4 + 1 + 1 + 4 + 12 + 32 + 16;
export const SEALED_OVERHEAD = SEALED_HEADER_SIZE + 12 + 16;

export interface Kek {
  id: number;
  key: Buffer; // 32 bytes
}

/** Looks up a KEK by id; throws KEYRING when it is not there. */
export type KekLookup = (id: number) => Kek;

function gcmEncrypt(key: Buffer, iv: Buffer, plaintext: Uint8Array, aad: Buffer): { ct: Buffer; tag: Buffer } {
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return { ct, tag: c.getAuthTag() };
}

function gcmDecrypt(key: Buffer, iv: Buffer, ct: Uint8Array, tag: Uint8Array, aad: Buffer): Buffer | null {
  try {
    const d = createDecipheriv('aes-256-gcm', key, iv);
    d.setAAD(aad);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(ct), d.final()]);
  } catch {
    return null;
  }
}

/** A data key wrapped for storage: the first SEALED_HEADER_SIZE bytes of a sealed object. */
export function wrapDek(kek: Kek, dek: Buffer, flags = 0): Buffer {
  const header = Buffer.alloc(SEALED_HEADER_SIZE);
  MAGIC.copy(header, 0);
  header[4] = VERSION;
  header[5] = flags;
  header.writeUInt32BE(kek.id, 6);
  const wrapIv = randomBytes(12);
  wrapIv.copy(header, 10);
  const { ct, tag } = gcmEncrypt(kek.key, wrapIv, dek, header.subarray(0, 10));
  ct.copy(header, 22);
  tag.copy(header, 54);
  return header;
}

export function unwrapDek(header: Uint8Array, lookup: KekLookup, what: string): { dek: Buffer; flags: number } {
  const h = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  if (h.length < SEALED_HEADER_SIZE || !h.subarray(0, 4).equals(MAGIC) || h[4] !== VERSION) {
    throw new CustodyError('STORAGE_CORRUPT', `${what} is not a sealed Custody object (bad header): it was altered or replaced.`);
  }
  const kek = lookup(h.readUInt32BE(6));
  const dek = gcmDecrypt(kek.key, h.subarray(10, 22), h.subarray(22, 54), h.subarray(54, 70), h.subarray(0, 10));
  if (!dek) {
    throw new CustodyError('STORAGE_CORRUPT', `${what}: its data key does not unwrap with key ${kek.id}: the file was altered or the keyring is wrong.`);
  }
  return { dek, flags: h[5] ?? 0 };
}

export function decryptWithDek(dek: Buffer, sealed: Uint8Array, aad: Buffer): Buffer | null {
  if (sealed.length < 28) return null;
  const s = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  return gcmDecrypt(dek, s.subarray(0, 12), s.subarray(12, s.length - 16), s.subarray(s.length - 16), aad);
}

/**
 * Seals one object: compressed (compress.ts), then a fresh DEK, wrapped by `kek`, data bound
 * to `context`. The plaintext may be given in pieces.
 */
export function seal(kek: Kek, context: string, plaintext: Uint8Array | Uint8Array[]): Buffer {
  const pieces = Array.isArray(plaintext) ? plaintext : [plaintext];
  if (plaintextForBenchmark()) return Buffer.concat([PLAINTEXT_MAGIC, ...pieces]); // benchmark baseline only
  const { data, flags } = compressForSealing(pieces);
  const dek = randomBytes(32);
  const header = wrapDek(kek, dek, flags);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', dek, iv);
  c.setAAD(Buffer.concat([header, Buffer.from(context)]));
  const parts: Buffer[] = [header, iv];
  for (const p of data) parts.push(c.update(p));
  parts.push(c.final(), c.getAuthTag());
  dek.fill(0);
  return Buffer.concat(parts);
}

export function open(lookup: KekLookup, context: string, sealed: Uint8Array, what: string): Buffer {
  if (sealed.length >= 4 && PLAINTEXT_MAGIC.equals(sealed.subarray(0, 4))) {
    if (plaintextForBenchmark()) return Buffer.from(sealed.buffer, sealed.byteOffset + 4, sealed.byteLength - 4);
    throw new CustodyError('STORAGE_CORRUPT', `${what} is not sealed: it was written by a benchmark run with sealing off and is not accepted by a vault.`, { what });
  }
  const { dek, flags } = unwrapDek(sealed.subarray(0, SEALED_HEADER_SIZE), lookup, what);
  const header = Buffer.from(sealed.buffer, sealed.byteOffset, SEALED_HEADER_SIZE);
  const out = decryptWithDek(dek, sealed.subarray(SEALED_HEADER_SIZE), Buffer.concat([header, Buffer.from(context)]));
  dek.fill(0);
  if (!out) {
    throw new CustodyError('STORAGE_CORRUPT', `${what} fails authentication: it was altered, truncated or moved from another position.`, { what });
  }
  return inflateSealed(out, flags, what);
}

// ---- version 2: data keys from AWS KMS (crypto/kms.ts) ------------------------------------

export const VERSION_KMS = 2;
/** Bounds a reader enforces on a version-2 header (KMS: KeyId ≤ 2048 characters, CiphertextBlob ≤ 6144 bytes). */
const MAX_KEY_ID = 2048;
const MAX_BLOB = 6144;

/** The version byte of a sealed object (1: local KEK, 2: AWS KMS), or 0 when it is not one. */
export function sealedVersion(sealed: Uint8Array): number {
  if (sealed.length < 6 || !MAGIC.equals(sealed.subarray(0, 4))) return 0;
  return sealed[4]!;
}

export interface KmsHeader {
  flags: number;
  keyId: string;
  blob: Buffer;
  /** Bytes of the header (the additional data's first part). */
  size: number;
}

/** Reads a version-2 header; STORAGE_CORRUPT when it is malformed. */
export function readKmsHeader(sealed: Uint8Array, what: string): KmsHeader {
  const s = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const bad = (why: string): never => {
    throw new CustodyError('STORAGE_CORRUPT', `${what} is not a sealed Custody object (${why}): it was altered or replaced.`, { what });
  };
  if (sealedVersion(s) !== VERSION_KMS) bad('bad header');
  if (s.length < 8) bad('truncated header');
  const keyLen = s.readUInt16BE(6);
  if (keyLen === 0 || keyLen > MAX_KEY_ID || s.length < 8 + keyLen + 2) bad('bad key name');
  const keyId = s.subarray(8, 8 + keyLen).toString('utf8');
  const blobLen = s.readUInt16BE(8 + keyLen);
  const size = 10 + keyLen + blobLen;
  if (blobLen === 0 || blobLen > MAX_BLOB || s.length < size + 28) bad('bad data key');
  return { flags: s[5]!, keyId, blob: Buffer.from(s.subarray(10 + keyLen, size)), size };
}

/**
 * Seals one object under a KMS data key (compressed first, like `seal`). The same data key may
 * seal several versions of one bundle (its partial widths): each gets a fresh 96-bit IV.
 */
export function sealWithDataKey(dk: { keyId: string; plaintext: Buffer; blob: Buffer }, context: string, plaintext: Uint8Array | Uint8Array[]): Buffer {
  const pieces = Array.isArray(plaintext) ? plaintext : [plaintext];
  if (plaintextForBenchmark()) return Buffer.concat([PLAINTEXT_MAGIC, ...pieces]); // benchmark baseline only
  const { data, flags } = compressForSealing(pieces);
  const keyId = Buffer.from(dk.keyId, 'utf8');
  if (keyId.length === 0 || keyId.length > MAX_KEY_ID || dk.blob.length === 0 || dk.blob.length > MAX_BLOB) {
    throw new CustodyError('INTERNAL', 'a KMS data key with a key name or ciphertext out of bounds');
  }
  const header = Buffer.alloc(10 + keyId.length + dk.blob.length);
  MAGIC.copy(header, 0);
  header[4] = VERSION_KMS;
  header[5] = flags;
  header.writeUInt16BE(keyId.length, 6);
  keyId.copy(header, 8);
  header.writeUInt16BE(dk.blob.length, 8 + keyId.length);
  dk.blob.copy(header, 10 + keyId.length);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', dk.plaintext, iv);
  c.setAAD(Buffer.concat([header, Buffer.from(context)]));
  const parts: Buffer[] = [header, iv];
  for (const p of data) parts.push(c.update(p));
  parts.push(c.final(), c.getAuthTag());
  return Buffer.concat(parts);
}

/** Opens a version-2 object with its data key's plaintext (from KMS Decrypt). */
export function openWithDataKey(key: Buffer, header: KmsHeader, context: string, sealed: Uint8Array, what: string): Buffer {
  const head = Buffer.from(sealed.buffer, sealed.byteOffset, header.size);
  const out = decryptWithDek(key, sealed.subarray(header.size), Buffer.concat([head, Buffer.from(context)]));
  if (!out) {
    throw new CustodyError('STORAGE_CORRUPT', `${what} fails authentication: it was altered, truncated or moved from another position.`, { what });
  }
  return inflateSealed(out, header.flags, what);
}
