/**
 * @custody/verify: pure verification of C2SP transparency logs (RFC 6962 hashing, tlog-tiles,
 * tlog-checkpoint, signed-note, tlog-cosignature, tlog-proof). No I/O; runs in browsers too.
 */
export { VerifyError, isVerifyError, type VerifyErrorCode } from './errors.js';
export { toBase64, fromBase64, toHex, fromHex, bytesEqual, concatBytes, utf8Encode, utf8Decode } from './encoding.js';
export { sha256, HASH_SIZE, EMPTY_ROOT, hashLeaf, hashChildren, emptyRoot, type Sha256 } from './hash.js';
export {
  naiveRoot,
  subtreeRoot,
  treeRoot,
  compactRangeNodes,
  rootFromCompactRange,
  inclusionProofSize,
  consistencyProofSize,
  proveInclusion,
  proveConsistency,
  rootFromInclusionProof,
  verifyInclusion,
  verifyConsistency,
  type NodeReader,
  type NodeId,
} from './merkle.js';
export {
  TILE_HEIGHT,
  TILE_WIDTH,
  MAX_ENTRY_SIZE,
  MAX_TILE_LEVEL,
  formatTileIndex,
  tilePath,
  parseTilePath,
  tileWidthAt,
  tilesForSize,
  newTiles,
  newTilesAllWidths,
  tileNodeReader,
  encodeBundle,
  decodeBundle,
  type TileId,
} from './tile.js';
export { formatCheckpoint, parseCheckpoint, MAX_CHECKPOINT_SIZE, type Checkpoint } from './checkpoint.js';
export {
  parseNote,
  formatNote,
  KEY_TYPE_ED25519,
  KEY_TYPE_COSIGNATURE,
  MAX_NOTE_SIGNATURES,
  MAX_NOTE_SIZE,
  isValidKeyName,
  keyId,
  verifierKeyString,
  parseVerifierKey,
  newVerifier,
  Ed25519NoteSigner,
  Ed25519CosignatureSigner,
  cosignatureTimestamp,
  signNote,
  openNote,
  openCheckpoint,
  type NoteSignature,
  type Note,
  type NoteVerifier,
  type OpenedNote,
} from './note.js';
export { formatProofFile, parseProofFile, verifyProofFile, PROOF_FILE_HEADER, type ProofFile } from './proof-file.js';
