/**
 * The contract between what turns input into records (sources/ parsers, protocols/ plugins)
 * and what stores them (pipeline.ts).
 *
 * A parser never changes a record: `bytes` is the exact slice of the (decompressed) input
 * that is the record — one element of CloudTrail's "Records" array, one NDJSON line, one
 * text line without its line ending — so the stored record can be compared byte for byte
 * with what AWS or the shipper delivered. What a parser learns about the record goes into
 * `fields` (for search, issue 4) and `region` / `dedupeKey` (for routing and duplicates).
 */

/** Fields common to every kind of record (docs/SOURCES.md maps each source onto them). */
export interface CommonFields {
  /** When it happened, RFC 3339 UTC (e.g. CloudTrail eventTime, flow `start`). */
  time?: string;
  /** The AWS account (or tenant) the record belongs to. */
  account?: string;
  /** The AWS region named in the record. */
  region?: string;
  /** Who acted: an ARN, user name, principal id, or a host/app for app logs. */
  actor?: string;
  /** What was done: CloudTrail `eventSource:eventName`, a finding type, an HTTP method+path … */
  action?: string;
  /** "success" or "failure" where the record says; otherwise a source's own word (ACCEPT/REJECT). */
  outcome?: string;
  srcIp?: string;
  dstIp?: string;
  /** Normalised to OCSF severity names: Informational, Low, Medium, High, Critical. */
  severity?: string;
  /** What was acted on: an ARN, resource id, bucket/key, log group … */
  resource?: string;
  /** OCSF 1.1 class_uid and class name (e.g. 6003 "API Activity"). */
  ocsfClass?: number;
  ocsfClassName?: string;
  /** Free-form extra terms a source wants searchable (e.g. errorCode). Keep it small. */
  extra?: Record<string, string>;
}

export interface ParsedRecord {
  /** The record, byte-exact. */
  bytes: Buffer;
  /** Source type written into the envelope, e.g. "aws.cloudtrail", "app.apache", "otlp". */
  source: string;
  fields: CommonFields;
  /** The region the record names; it is stored in that region's log (pipeline.ts). */
  region?: string;
  /** Stored once per key across the vault's life, e.g. "aws.cloudtrail:<eventID>". */
  dedupeKey?: string;
  /**
   * Extra envelope attributes shared by the records of one delivery unit (e.g. CloudWatch
   * Logs `logGroup`, the S3 object a file came from). Keys [a-z0-9.-]{1,32}; values printable
   * ASCII without spaces, at most 256 characters (values that do not fit are dropped).
   */
  attrs?: Record<string, string>;
  /**
   * Where the record was in the input, 1-based, in the unit the protocol reports errors in:
   * a line for NDJSON/text, an array element, a Firehose record, a _bulk action, an HEC event.
   */
  position: number;
}

export interface RecordError {
  /** 1-based, same unit as ParsedRecord.position. */
  position: number;
  /** A short stable code, e.g. "BAD_JSON", "TOO_LARGE", "BAD_BASE64", "REGION_NOT_ALLOWED". */
  code: string;
  /** Plain text: what is wrong and what to do. */
  error: string;
}

export interface ParseResult {
  records: ParsedRecord[];
  errors: RecordError[];
  /** Units acknowledged but not stored (CloudWatch Logs CONTROL_MESSAGE probes, blank lines). */
  ignored: number;
}

/** What a parser may know about its input beyond the bytes. */
export interface ParseContext {
  /** The file name or S3 key (e.g. "AWSLogs/1111/CloudTrail/eu-west-1/…json.gz"). */
  name?: string;
  /** Content-Type of the request, when it came over HTTP. */
  contentType?: string;
  /**
   * "Now" for formats whose times have no year (RFC 3164 syslog), in ms since the epoch:
   * the receive time when a stored record is read again (search/derive.ts). Default Date.now().
   */
  now?: number;
}

export interface SourceParser {
  /** Stable name used in `?source=` and `custody import --source`, e.g. "cloudtrail". */
  readonly name: string;
  /** One line for `custody import --help` and docs. */
  readonly description: string;
  /**
   * How sure this parser is that the input is its kind, 0 (not mine) to 100, from the name
   * (file name / S3 key) and the first bytes of the decompressed content (up to 64 KiB).
   * `detectSource` picks the highest score; the generic json/text parsers are the fallback.
   */
  detect?(head: Buffer, ctx: ParseContext): number;
  /**
   * Splits already-decompressed input into records. Must never throw on bad input: a bad unit
   * becomes a RecordError and the good units are still returned. Throws only for input that is
   * not this kind at all (CustodyError 'BAD_REQUEST' with a message naming the source).
   */
  parse(body: Buffer, ctx: ParseContext): ParseResult;
}

/** One record's fate after the pipeline (same order as the records given to it). */
export type RecordOutcome =
  | { status: 'stored'; log: string; index: number; receipt?: { leafHash: Uint8Array; salt: string } }
  | { status: 'duplicate'; log?: string; index?: number }
  | { status: 'rejected'; code: string; error: string };

export interface IngestSummary {
  stored: number;
  duplicates: number;
  rejected: number;
  /** Per log: first index and count of each append (one per log and group). */
  appends: Array<{ log: string; first: number; count: number }>;
  /** One per input record, in order. */
  outcomes: RecordOutcome[];
  /** Receive time written into the envelopes. */
  received: string;
}
