/**
 * Amazon Data Firehose HTTP endpoint delivery: how CloudWatch Logs subscriptions and Direct PUT
 * streams leave AWS. docs/PROTOCOLS.md, "Amazon Data Firehose HTTP endpoint".
 *
 * Wire facts (shared/reference/aws-sources.md, "CloudWatch Logs → Firehose HTTP endpoint";
 * AWS "Understand HTTP endpoint delivery request and response specifications",
 * docs.aws.amazon.com/firehose/latest/dev/httpdeliveryrequestresponse.html):
 * - POST, X-Amz-Firehose-Protocol-Version: 1.0, X-Amz-Firehose-Request-Id (the same on every
 *   retry of a request: a dedupe key), X-Amz-Firehose-Access-Key (the credential),
 *   X-Amz-Firehose-Source-Arn, optional Content-Encoding: gzip.
 * - Body {"requestId","timestamp","records":[{"data":"<base64>"}]}, at most 10,000 records.
 * - Answer within 3 minutes, always uncompressed JSON {"requestId","timestamp"} plus
 *   "errorMessage" on failure. Only 200 is success; 413 is permanent; any other status makes
 *   Firehose retry the whole request, then back it up to S3.
 *
 * Each record's data is base64-decoded; gzip data is inflated (capped). A CloudWatch Logs
 * subscription payload becomes one record per logEvent (sources/cwlogs.ts; CONTROL_MESSAGE
 * probes are acknowledged, never stored); anything else is one record. A bad record does not
 * stop the others: they are stored, and the answer is 400 naming the bad record numbers, so
 * Firehose retries — and the retry stores nothing twice (dedupe key per record).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CustodyError, isCustodyError } from '../../errors.js';
import { toCustodyError } from '../../server/errors.js';
import { ingestRecords } from '../pipeline.js';
import { parseCwLogsPayload } from '../sources/cwlogs.js';
import { firstNonSpace } from '../sources/index.js';
import type { ParsedRecord, ParseResult, RecordError } from '../types.js';
import type { ProtocolOptions } from './index.js';
import { MiB, MAX_RECORD_SIZE, rawBodies, bodyOf, decodeContent, inflateCapped, isGzip, learnFromJson, countStored, retryAfterOf, isBusy, listNumbers, recordTooLarge } from './common.js';

/**
 * Request body limit, before and after decompression. Firehose buffers up to 64 MiB of data
 * per request; base64 makes that up to ~86 MiB of JSON.
 */
export const FIREHOSE_MAX_BODY = 96 * MiB;
export const FIREHOSE_MAX_RECORDS = 10_000;
/** One record's data inflated (a CloudWatch Logs payload is at most a few MiB). */
const MAX_INFLATED_RECORD = 8 * MiB;
/** All records of one request inflated: bounds the work a request of compression bombs can cause. */
const MAX_INFLATED_REQUEST = 1024 * MiB;
/** Records are handed to the pipeline in groups of about this many bytes (bounded memory). */
const INGEST_CHUNK_BYTES = 16 * MiB;

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const SOURCE_ARN_RE = /^arn:aws[a-z-]*:firehose:[a-z0-9-]{1,32}:\d{12}:deliverystream\/[A-Za-z0-9_.-]{1,64}$/;
const REQUEST_ID_RE = /^[\x21-\x7e]{1,128}$/;

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v.trim() : undefined;
}

function requestIdOf(req: FastifyRequest, bodyId?: unknown): string {
  const h = header(req, 'x-amz-firehose-request-id');
  if (h && REQUEST_ID_RE.test(h)) return h;
  return typeof bodyId === 'string' && REQUEST_ID_RE.test(bodyId) ? bodyId : '';
}

/** The only answer shape Firehose accepts, always uncompressed JSON. */
function answer(reply: FastifyReply, status: number, requestId: string, errorMessage?: string): FastifyReply {
  const body: Record<string, unknown> = { requestId, timestamp: Date.now() };
  if (errorMessage !== undefined) body['errorMessage'] = errorMessage;
  return reply.code(status).type('application/json').send(body);
}

/** Strict base64: Buffer.from() would skip bad characters and hide a damaged record. */
function decodeBase64(s: string): Buffer | null {
  if (s.length % 4 !== 0 || !BASE64_RE.test(s)) return null;
  return Buffer.from(s, 'base64');
}

/** A gzip'd payload that says it is a CloudWatch Logs subscription message. */
function looksLikeCwLogs(b: Buffer): boolean {
  return firstNonSpace(b) === 0x7b && b.subarray(0, 4096).includes('"messageType"');
}

/**
 * A CloudWatch Logs payload → records. Until sources/cwlogs.ts is written (it throws
 * UNKNOWN_SOURCE), CONTROL_MESSAGE probes are still recognised and a DATA_MESSAGE is kept as
 * one record with no fields.
 */
function cwLogs(json: Buffer, position: number): ParseResult {
  try {
    return parseCwLogsPayload(json, position);
  } catch (e) {
    if (!isCustodyError(e)) throw e;
    if (e.code !== 'UNKNOWN_SOURCE') return { records: [], errors: [{ position, code: e.code, error: `Record ${position}: ${e.message}` }], ignored: 0 };
  }
  let v: unknown;
  try {
    v = JSON.parse(json.toString('utf8'));
  } catch (e) {
    return { records: [], errors: [{ position, code: 'BAD_JSON', error: `Record ${position} is a gzip'd CloudWatch Logs payload that is not valid JSON: ${(e as Error).message}.` }], ignored: 0 };
  }
  if (typeof v === 'object' && v !== null && (v as Record<string, unknown>)['messageType'] === 'CONTROL_MESSAGE') return { records: [], errors: [], ignored: 1 };
  if (json.length > MAX_RECORD_SIZE) return { records: [], errors: [recordTooLarge(position, json.length, 'Record')], ignored: 0 };
  return { records: [{ bytes: json, position, source: 'firehose', fields: {} }], errors: [], ignored: 0 };
}

interface Budget {
  inflated: number;
}

/** One Firehose record → records, errors and ignored units (position = its 1-based number). */
async function recordUnits(entry: unknown, position: number, budget: Budget): Promise<ParseResult> {
  const fail = (code: string, error: string): ParseResult => ({ records: [], errors: [{ position, code, error: `Record ${position}: ${error}` }], ignored: 0 });
  const data = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>)['data'] : undefined;
  if (typeof data !== 'string') return fail('BAD_REQUEST', 'has no "data" string.');
  let bytes = decodeBase64(data);
  if (!bytes) return fail('BAD_BASE64', 'its data is not valid base64.');
  if (bytes.length === 0) return { records: [], errors: [], ignored: 1 };
  if (isGzip(bytes)) {
    const cap = Math.min(MAX_INFLATED_RECORD, MAX_INFLATED_REQUEST - budget.inflated);
    if (cap <= 0) return fail('TOO_LARGE', 'the records of this request inflate to more than 1 GiB in total; send smaller requests.');
    try {
      bytes = await inflateCapped(bytes, 'gzip', cap);
    } catch (e) {
      if (isCustodyError(e, 'BODY_TOO_LARGE')) return fail('TOO_LARGE', `its gzip data inflates to more than ${cap} bytes.`);
      if (isCustodyError(e)) return fail('BAD_GZIP', 'its gzip data is truncated or damaged.');
      throw e;
    }
    budget.inflated += bytes.length;
    if (looksLikeCwLogs(bytes)) return cwLogs(bytes, position);
  }
  if (bytes.length > MAX_RECORD_SIZE) return { records: [], errors: [recordTooLarge(position, bytes.length, 'Record')], ignored: 0 };
  const rec: ParsedRecord = { bytes, position, source: 'firehose', fields: {} };
  const first = firstNonSpace(bytes);
  if (first === 0x7b || first === 0x5b) {
    const l = learnFromJson(bytes);
    rec.fields = l.fields;
    if (l.region) rec.region = l.region;
    if (l.dedupeKey) rec.dedupeKey = l.dedupeKey;
  }
  return { records: [rec], errors: [], ignored: 0 };
}

export async function firehoseRoutes(app: FastifyInstance, opts: ProtocolOptions): Promise<void> {
  const { vault, metrics } = opts;
  rawBodies(app, FIREHOSE_MAX_BODY);

  app.setErrorHandler((err, req, reply) => {
    const e = toCustodyError(err);
    if (e.code === 'INTERNAL' || e.code === 'STORAGE_CORRUPT') req.log.error({ err }, 'Firehose request failed');
    else req.log.info({ code: e.code, requestId: header(req, 'x-amz-firehose-request-id') }, e.message);
    const id = requestIdOf(req);
    if (e.code === 'BODY_TOO_LARGE' || e.code === 'RECORD_TOO_LARGE') {
      const why = err instanceof CustodyError ? e.message : `The request is larger than ${FIREHOSE_MAX_BODY} bytes.`;
      return answer(reply, 413, id, `${why} Lower the stream's buffer size.`);
    }
    if (isBusy(e)) {
      reply.header('Retry-After', String(retryAfterOf(e)));
      return answer(reply, 503, id, e.message);
    }
    const status = e.code === 'UNAUTHENTICATED' ? 401 : e.code === 'FORBIDDEN' ? 403 : e.status >= 500 ? 500 : 400;
    const message = e.code === 'UNAUTHENTICATED' ? `${e.message} Set the stream's HTTP endpoint access key to a Custody writer token.` : e.message;
    return answer(reply, status, id, message);
  });

  const deliver = async (req: FastifyRequest, reply: FastifyReply) => {
    const body = await decodeContent(bodyOf(req), req.headers['content-encoding'], FIREHOSE_MAX_BODY, ['gzip']);
    let msg: unknown;
    try {
      msg = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new CustodyError('BAD_REQUEST', `The body is not JSON (${(e as Error).message}); expected {"requestId","timestamp","records":[{"data"}]}.`);
    }
    if (typeof msg !== 'object' || msg === null || !Array.isArray((msg as Record<string, unknown>)['records'])) {
      throw new CustodyError('BAD_REQUEST', 'The body has no "records" array; expected {"requestId","timestamp","records":[{"data"}]}.');
    }
    const m = msg as Record<string, unknown>;
    const entries = m['records'] as unknown[];
    const requestId = requestIdOf(req, m['requestId']);
    if (entries.length > FIREHOSE_MAX_RECORDS) throw new CustodyError('BODY_TOO_LARGE', `The request has ${entries.length} records; at most ${FIREHOSE_MAX_RECORDS}.`);
    const arn = header(req, 'x-amz-firehose-source-arn');
    const attrs = arn && SOURCE_ARN_RE.test(arn) ? { firehoseSource: arn } : undefined;

    const errors: RecordError[] = [];
    let ignored = 0;
    let stored = 0;
    let duplicates = 0;
    let batch: ParsedRecord[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const summary = await ingestRecords(vault, batch, { principal: req.principal!, attrs });
      countStored(metrics, summary);
      stored += summary.stored;
      duplicates += summary.duplicates;
      summary.outcomes.forEach((o, i) => {
        if (o.status === 'rejected') errors.push({ position: batch[i]!.position, code: o.code, error: `Record ${batch[i]!.position}: ${o.error}` });
      });
      batch = [];
      batchBytes = 0;
    };
    const budget: Budget = { inflated: 0 };
    for (let i = 0; i < entries.length; i++) {
      const position = i + 1;
      const r = await recordUnits(entries[i], position, budget);
      errors.push(...r.errors);
      ignored += r.ignored;
      r.records.forEach((rec, n) => {
        // A retried request (same request id) stores nothing twice.
        if (rec.dedupeKey === undefined && requestId) rec.dedupeKey = `firehose:${requestId}:${position}:${n}`;
        batch.push(rec);
        batchBytes += rec.bytes.length;
      });
      if (batchBytes >= INGEST_CHUNK_BYTES) await flush();
    }
    await flush();

    req.log.info({ requestId, records: entries.length, stored, duplicates, ignored, bad: errors.length }, 'Firehose delivery');
    if (errors.length === 0) return answer(reply, 200, requestId);
    errors.sort((a, b) => a.position - b.position);
    const numbers = [...new Set(errors.map((e) => e.position))];
    const message =
      `${numbers.length} of ${entries.length} records could not be stored: records ${listNumbers(numbers)}. ` +
      `${errors.slice(0, 5).map((e) => e.error).join(' ')} The other records were stored; a retry of this request stores nothing twice.`;
    return answer(reply, 400, requestId, message.slice(0, 4000));
  };

  for (const url of ['/firehose', '/v1/firehose']) {
    app.post(url, { config: { roles: ['writer'], credentials: ['firehose'] }, bodyLimit: FIREHOSE_MAX_BODY }, deliver);
  }
}
