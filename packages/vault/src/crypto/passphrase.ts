/**
 * The key that seals a passphrase-protected keyring (crypto/keyring.ts): scrypt (RFC 7914)
 * over the passphrase with a random 16-byte salt. The parameters are recorded in the keyring
 * file; a file asking for less than N = 2^15, r = 8, p = 1, or for more memory or time than a
 * vault should spend on opening its keyring, is refused before scrypt runs.
 */
import { scryptSync, randomBytes } from 'node:crypto';
import { CustodyError } from '../errors.js';

export interface ScryptParams {
  name: 'scrypt';
  /** base64, 16 bytes or more. */
  salt: string;
  N: number;
  r: number;
  p: number;
}

/** N = 2^15, r = 8: 32 MiB and about 0.1 s per derivation. */
export const DEFAULT_SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;
/** scrypt needs 128·N·r bytes; Node refuses above `maxmem` (default 32 MiB, exactly 2^15·8·128). */
const memoryOf = (N: number, r: number): number => 128 * N * r;
const MAX_MEMORY = 1024 * 1024 * 1024;

export function newScryptParams(): ScryptParams {
  return { name: 'scrypt', salt: randomBytes(16).toString('base64'), ...DEFAULT_SCRYPT };
}

/** Refuses parameters that are too weak or would exhaust memory (a crafted keyring file). */
export function checkScryptParams(k: unknown, where: string): ScryptParams {
  const v = k as Partial<ScryptParams> | null;
  const bad = (why: string): never => {
    throw new CustodyError('KEYRING', `The keyring ${where} has unusable passphrase parameters (${why}): restore it from your backup.`);
  };
  if (!v || typeof v !== 'object' || v.name !== 'scrypt') return bad('not scrypt');
  const salt = typeof v.salt === 'string' ? Buffer.from(v.salt, 'base64') : Buffer.alloc(0);
  if (salt.length < 16 || salt.length > 64) bad('salt');
  const { N, r, p } = v;
  if (!Number.isSafeInteger(N) || N! < DEFAULT_SCRYPT.N || N! > MAX_N || (N! & (N! - 1)) !== 0) bad('N must be a power of two from 2^15 to 2^20');
  if (!Number.isSafeInteger(r) || r! < 8 || r! > MAX_R) bad('r must be 8 to 32');
  if (!Number.isSafeInteger(p) || p! < 1 || p! > MAX_P) bad('p must be 1 to 16');
  if (memoryOf(N!, r!) > MAX_MEMORY) bad('more than 1 GiB of memory');
  return { name: 'scrypt', salt: v.salt!, N: N!, r: r!, p: p! };
}

/** The 32-byte key of a passphrase under `params`. */
export function deriveKeyringKey(passphrase: string, params: ScryptParams): Buffer {
  if (passphrase.length === 0) throw new CustodyError('KEYRING_LOCKED', 'The passphrase is empty: give the keyring passphrase.');
  return scryptSync(Buffer.from(passphrase.normalize('NFC'), 'utf8'), Buffer.from(params.salt, 'base64'), 32, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: memoryOf(params.N, params.r) * 2 + 1024 * 1024,
  });
}

/** A passphrase good enough to protect keys: at least 12 characters. */
export function checkNewPassphrase(passphrase: string): void {
  if ([...passphrase].length < 12) {
    throw new CustodyError('BAD_REQUEST', 'The passphrase must be at least 12 characters long (a few random words are a good choice).');
  }
}
