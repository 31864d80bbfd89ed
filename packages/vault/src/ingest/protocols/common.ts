/**
 * What the push-protocol plugins share: a raw-body parser with the plugin's own limit,
 * decompression with a hard output cap, source names, fields from the source parsers, and
 * the bookkeeping after ingestRecords.
 */
import { gunzip, inflate } from 'node:zlib';
import { promisify } from 'node:util';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CustodyError } from '../../errors.js';
import { MAX_RECORD_SIZE } from '../../log/entry.js';
import type { Metrics } from '../../server/health.js';
import { detectSource, sourceParser } from '../sources/index.js';
import type { CommonFields, IngestSummary, RecordError } from '../types.js';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

export const MiB = 1024 * 1024;
/**
 * Units (events, actions, log records) one request may carry: bounds the per-unit bookkeeping
 * a small-unit flood ("{}" × 8 million) could cost. Beyond it the request is 413, nothing stored.
 */
export const MAX_UNITS = 100_000;
export { MAX_RECORD_SIZE };

/**
 * Replaces the inherited parsers with one that hands every body over as a Buffer, whatever its
 * Content-Type: each protocol decides itself what it accepts (and words the refusal its way).
 */
export function rawBodies(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
}

/** The request body as a Buffer (an absent body is an empty one). */
export function bodyOf(req: FastifyRequest): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

export type Encoding = 'gzip' | 'deflate';

/**
 * Inflates a body by its Content-Encoding. The output is capped (zlib's maxOutputLength), so a
 * compression bomb costs at most `cap` bytes of memory; a truncated or corrupt stream is
 * BAD_ENCODING, an oversized one BODY_TOO_LARGE.
 */
export async function decodeContent(body: Buffer, contentEncoding: unknown, cap: number, allowed: readonly Encoding[]): Promise<Buffer> {
  const enc = (typeof contentEncoding === 'string' ? contentEncoding : '').trim().toLowerCase();
  if (enc === '' || enc === 'identity') {
    if (body.length > cap) throw new CustodyError('BODY_TOO_LARGE', `The body is ${body.length} bytes; the limit is ${cap} bytes. Send smaller batches.`);
    return body;
  }
  const kind: Encoding | undefined = enc === 'gzip' || enc === 'x-gzip' ? 'gzip' : enc === 'deflate' ? 'deflate' : undefined;
  if (!kind || !allowed.includes(kind)) {
    throw new CustodyError('BAD_ENCODING', `Content-Encoding ${JSON.stringify(enc.slice(0, 40))} is not supported here: send ${allowed.join(' or ')} or an uncompressed body.`);
  }
  return inflateCapped(body, kind, cap);
}

export async function inflateCapped(data: Buffer, kind: Encoding, cap: number): Promise<Buffer> {
  try {
    return kind === 'gzip' ? await gunzipAsync(data, { maxOutputLength: cap }) : await inflateAsync(data, { maxOutputLength: cap });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new CustodyError('BODY_TOO_LARGE', `The ${kind} data inflates to more than ${cap} bytes; send smaller batches.`);
    }
    throw new CustodyError('BAD_ENCODING', `The ${kind} data cannot be inflated (${(e as Error).message}); it is truncated or not ${kind} at all.`);
  }
}

export function isGzip(b: Buffer): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/**
 * `prefix` or `prefix.<name>`, lower-cased, with every character outside [a-z0-9._:-] turned
 * into "_", at most 64 characters (the envelope's source rule, server/entries.ts SOURCE_RE).
 */
export function sourceName(prefix: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) return prefix;
  const clean = name.toLowerCase().slice(0, 64).replace(/[^a-z0-9._:-]/g, '_');
  return `${prefix}.${clean}`.slice(0, 64);
}

/** What a source parser learned about one JSON record, when it recognised it. */
export interface Learned {
  fields: CommonFields;
  region?: string;
  dedupeKey?: string;
}

function trimmed(b: Buffer): Buffer {
  let s = 0;
  let e = b.length;
  while (s < e && (b[s] === 0x20 || b[s] === 0x09 || b[s] === 0x0a || b[s] === 0x0d)) s++;
  while (e > s && (b[e - 1] === 0x20 || b[e - 1] === 0x09 || b[e - 1] === 0x0a || b[e - 1] === 0x0d)) e--;
  return b.subarray(s, e);
}

/**
 * Runs source detection on one JSON value (a document, an event) and, when a specific parser
 * claims it and reads it as exactly one record, takes that record's fields, region and dedupe
 * key. Anything else — the generic json/text fallback, a parser that is still a stub
 * (UNKNOWN_SOURCE), a refusal, a split into several records — means "no fields": the record
 * is stored all the same.
 */
export function learnFromJson(bytes: Buffer, name?: string): Learned {
  try {
    const ctx = { name, contentType: 'application/json' };
    const src = detectSource(bytes, ctx);
    if (src === 'json' || src === 'text') return { fields: {} };
    const r = sourceParser(src).parse(bytes, ctx);
    const one = r.records.length === 1 && r.errors.length === 0 ? r.records[0]! : undefined;
    if (one && one.bytes.equals(trimmed(bytes))) {
      const out: Learned = { fields: one.fields ?? {} };
      if (one.region) out.region = one.region;
      if (one.dedupeKey) out.dedupeKey = one.dedupeKey;
      return out;
    }
  } catch {
    // A stub parser (UNKNOWN_SOURCE), a refusal or a parser bug: the record is kept without fields.
  }
  return { fields: {} };
}

/** A record too large to be one entry, as a per-record error. */
export function recordTooLarge(position: number, size: number, unit: string): RecordError {
  return { position, code: 'RECORD_TOO_LARGE', error: `${unit} ${position} is ${size} bytes; one record may be at most ${MAX_RECORD_SIZE} bytes (1 MiB).` };
}

/** Counts what an ingest stored. */
export function countStored(metrics: Metrics, summary: IngestSummary): void {
  for (const a of summary.appends) metrics.appended.inc({ log: a.log }, a.count);
}

/** Seconds a client should wait after a 503/429, as the vault said (server/errors.ts sendError). */
export function retryAfterOf(e: CustodyError): number {
  const r = e.details?.['retryAfter'];
  return typeof r === 'number' && Number.isFinite(r) && r > 0 ? Math.ceil(r) : 5;
}

/** The vault cannot take the write right now: the client should retry later. */
export function isBusy(e: CustodyError): boolean {
  return e.code === 'PUSHBACK' || e.code === 'STORAGE_UNAVAILABLE' || e.code === 'NOT_READY';
}

/** "1, 2, 5 and 3 more" */
export function listNumbers(ns: number[], max = 20): string {
  const shown = ns.slice(0, max).join(', ');
  return ns.length > max ? `${shown} and ${ns.length - max} more` : shown;
}

/** Nanoseconds / milliseconds / seconds since the epoch → RFC 3339, or undefined. */
export function isoFromMillis(ms: number): string | undefined {
  if (!Number.isFinite(ms) || ms <= 0 || ms > 8.64e15) return undefined;
  return new Date(ms).toISOString();
}
