/**
 * CloudTrail log file integrity validation (`custody cloudtrail validate`,
 * docs/CLOUDTRAIL-VALIDATE.md): digest chains and log file hashes, from a folder copy of the
 * bucket or from S3 (s3-store.ts, loaded on demand: it pulls in the AWS SDK).
 */
export {
  parseDigestFile,
  readDigestFields,
  signingString,
  signatureFromMetadata,
  parseDigestKey,
  parseLogKey,
  looksLikeDigestKey,
  DigestFormatError,
  SIGNATURE_ALGORITHM,
  HASH_ALGORITHM,
  MAX_DIGEST_BYTES,
  type DigestFile,
  type DigestLogFile,
  type ParsedDigest,
  type SignatureMetadata,
  type DigestKeyInfo,
} from './format.js';
export { PublicKeySet, parsePublicKeysText, readPublicKeysFile, listPublicKeys, publicKeyFromEntry, type CloudTrailPublicKey } from './keys.js';
export { FolderStore, SIDECAR_SUFFIX, signatureFromSidecar, type ObjectStore, type StoredObject, type DigestObject } from './store.js';
export { validateCloudTrail, hashLogContent, hashStored, type ValidationReport, type ValidateOptions, type Finding, type ProblemKind, type WarningKind, type ChainSummary } from './validate.js';
