/** The vault as a library: what tests, benchmarks and embedders use. */
export { Vault, initVault, readConfig, resolveDataDir, isInitialised, AUDIT_LOG, type VaultConfig, type InitResult } from './vault.js';
export { buildServer, Metrics } from './server/index.js';
export { CustodyError, ERROR_CODES, type ErrorCode } from './errors.js';
export { parseEntry, buildEnvelopes, envelopePrefix, ENTRY_MAGIC, MAX_RECORD_SIZE } from './log/entry.js';
export { TreeBuilder } from './log/tree.js';
export { nativeSha256 } from './crypto/sha256.js';
