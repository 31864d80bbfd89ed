export { parseBatch, decodeBody, splitNdjson, splitJson, formatOf, MAX_BODY_BYTES, type LineError } from './batch.js';
