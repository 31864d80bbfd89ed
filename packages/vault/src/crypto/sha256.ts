import { createHash } from 'node:crypto';
import * as nodeCrypto from 'node:crypto';

type OneShot = (alg: string, data: Uint8Array, enc: 'buffer') => Buffer;
const oneShot = (nodeCrypto as unknown as { hash?: OneShot }).hash;

/** SHA-256 through OpenSSL (SHA-NI where the CPU has it); `crypto.hash` is the cheaper one-shot on Node ≥ 20.12. */
export const nativeSha256: (data: Uint8Array) => Uint8Array = oneShot
  ? (data) => oneShot('sha256', data, 'buffer')
  : (data) => createHash('sha256').update(data).digest();
