export { seal, open, wrapDek, unwrapDek, decryptWithDek, SEALED_HEADER_SIZE, SEALED_OVERHEAD } from './aead.js';
export type { Kek, KekLookup } from './aead.js';
export { Keyring, LogKeys, type KeyringUnlock, type KmsProtection, type LogKms } from './keyring.js';
export { Kms, sharedKms, checkKmsKey, type EncryptionContext } from './kms.js';
export { nativeSha256 } from './sha256.js';
export { compressForSealing, inflateSealed, FLAG_BROTLI, MAX_SEALED_PLAINTEXT } from './compress.js';
