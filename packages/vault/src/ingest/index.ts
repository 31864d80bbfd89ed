export { decodeBody, MAX_BODY_BYTES } from './batch.js';
export { ingestRecords, type IngestOptions } from './pipeline.js';
export { sourceParser, sourceParsers, detectSource, hasParser } from './sources/index.js';
export type { ParsedRecord, ParseResult, RecordError, CommonFields, SourceParser, ParseContext, IngestSummary, RecordOutcome } from './types.js';
