export { encodeEnvelopes, splitEncoded, buildEnvelopes, parseEntry, envelopePrefix, saltOf, ENTRY_MAGIC, MAX_ENTRY_SIZE, MAX_RECORD_SIZE, type ParsedEntry, type EnvelopeFields, type BlobRef } from './entry.js';
export { TreeBuilder, perfectRoot, type TileData } from './tree.js';
