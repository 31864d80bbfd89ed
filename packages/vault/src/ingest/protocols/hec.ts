/**
 * Splunk HTTP Event Collector (HEC): what Splunk forwarders, logging libraries and the
 * OpenTelemetry splunk_hec exporter send. docs/PROTOCOLS.md, "Splunk HEC".
 *
 * Wire facts (shared/reference/ingest-protocols.md; Splunk's "Format events for HTTP Event
 * Collector" and "Troubleshoot HTTP Event Collector" pages, help.splunk.com):
 * - /services/collector[/event[/1.0]]: the body is JSON event objects one after another,
 *   with or without whitespace between them, each {"event":…,"time","host","source",
 *   "sourcetype","index","fields"}. /services/collector/raw: plain text, one event per line.
 * - Token as "Authorization: Splunk <token>" (Basic with the token as password works too).
 * - Every answer is {"text","code"} (+ "invalid-event-number", 0-based, for a bad event):
 *   0 Success 200; 1 Token disabled 403; 2 Token is required 401; 3 Invalid authorization 401;
 *   4 Invalid token 403; 5 No data 400; 6 Invalid data format 400; 7 Incorrect index 400;
 *   8 Internal server error 500; 9 Server is busy 503; 12 Event field is required 400;
 *   13 Event field cannot be blank 400; 15 Error in handling indexed fields 400;
 *   17 HEC is healthy 200; 18 HEC is unhealthy, queues are full 503.
 *
 * The stored record is the exact bytes of each event object as sent. Unlike Splunk, which
 * stops at the first bad event, every well-formed good event of a request is stored: a bad
 * event never sinks the others; the reply names the first bad one.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isUtf8 } from 'node:buffer';
import { CustodyError } from '../../errors.js';
import { toCustodyError } from '../../server/errors.js';
import { ingestRecords } from '../pipeline.js';
import { forEachLine, isBlank, parseTextLines, topLevelValueRange } from '../sources/generic.js';
import type { CommonFields, ParsedRecord, RecordError } from '../types.js';
import type { ProtocolOptions } from './index.js';
import {
  MiB,
  MAX_RECORD_SIZE,
  MAX_UNITS,
  rawBodies,
  bodyOf,
  decodeContent,
  sourceName,
  learnFromJson,
  countStored,
  retryAfterOf,
  isBusy,
  isoFromMillis,
  recordTooLarge,
} from './common.js';

/** Request body limit, before and after decompression. */
export const HEC_MAX_BODY = 16 * MiB;

const WRITE = { roles: ['writer' as const], credentials: ['splunk', 'bearer', 'basic'] as const };

/** HEC's reply vocabulary: [HTTP status, code, text]. */
const HEC = {
  success: [200, 0, 'Success'],
  tokenDisabled: [403, 1, 'Token disabled'],
  tokenRequired: [401, 2, 'Token is required'],
  invalidAuthorization: [401, 3, 'Invalid authorization'],
  invalidToken: [403, 4, 'Invalid token'],
  noData: [400, 5, 'No data'],
  invalidDataFormat: [400, 6, 'Invalid data format'],
  incorrectIndex: [400, 7, 'Incorrect index'],
  internal: [500, 8, 'Internal server error'],
  busy: [503, 9, 'Server is busy'],
  eventRequired: [400, 12, 'Event field is required'],
  eventBlank: [400, 13, 'Event field cannot be blank'],
  badIndexedFields: [400, 15, 'Error in handling indexed fields'],
  healthy: [200, 17, 'HEC is healthy'],
  unhealthy: [503, 18, 'HEC is unhealthy, queues are full'],
  // Splunk answers an oversized body with 413 and a plain-text line; we keep the JSON shape.
  tooLarge: [413, 6, 'Content too large'],
} as const satisfies Record<string, readonly [number, number, string]>;

type HecAnswer = (typeof HEC)[keyof typeof HEC];

function send(reply: FastifyReply, a: HecAnswer, invalidEvent?: number): FastifyReply {
  const body: Record<string, unknown> = { text: a[2], code: a[1] };
  if (invalidEvent !== undefined) body['invalid-event-number'] = invalidEvent;
  return reply.code(a[0]).type('application/json; charset=utf-8').send(body);
}

/** A bad event: its 1-based number and the HEC answer that describes it. */
interface BadEvent {
  position: number;
  answer: HecAnswer;
  error: string;
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * Splits concatenated JSON objects into the exact bytes of each. Stops where the body stops
 * being a sequence of objects (a stray character, an unterminated object): nothing after that
 * point can be framed, and `broken` names the event number where it happened.
 */
export function splitEvents(body: Buffer): { units: Buffer[]; broken?: number } {
  const units: Buffer[] = [];
  let i = body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  for (;;) {
    while (i < body.length && WS.has(body[i]!)) i++;
    if (i >= body.length) return { units };
    const n = units.length + 1;
    if (n > MAX_UNITS) throw new CustodyError('BODY_TOO_LARGE', `The request holds more than ${MAX_UNITS} events; send smaller batches.`);
    if (body[i] !== 0x7b) return { units, broken: n };
    let depth = 0;
    let inString = false;
    let escaped = false;
    let end = -1;
    for (let j = i; j < body.length; j++) {
      const c = body[j]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
        continue;
      }
      if (c === 0x22) inString = true;
      else if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth === 0) {
          end = j + 1;
          break;
        }
      }
    }
    if (end < 0) return { units, broken: n };
    units.push(body.subarray(i, end));
    i = end;
  }
}

/** Lines that hold something (counted before any record is made). */
function nonBlankLines(body: Buffer): number {
  let n = 0;
  forEachLine(body, (line) => {
    if (!isBlank(line)) n++;
  });
  return n;
}

function isBlankEvent(v: unknown): boolean {
  return v === null || (typeof v === 'string' && v.trim() === '');
}

/** Indexed fields must be a flat object of strings, numbers or arrays of them (Splunk code 15). */
function indexedFieldsOk(v: unknown): boolean {
  if (v === undefined) return true;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  for (const x of Object.values(v)) {
    const flat = (y: unknown) => typeof y === 'string' || typeof y === 'number' || typeof y === 'boolean';
    if (!(flat(x) || (Array.isArray(x) && x.every(flat)))) return false;
  }
  return true;
}

function timeOf(t: unknown): string | undefined {
  const n = typeof t === 'number' ? t : typeof t === 'string' && /^\d+(\.\d+)?$/.test(t) ? Number(t) : NaN;
  return isoFromMillis(n * 1000);
}

function eventRecord(unit: Buffer, position: number): ParsedRecord | BadEvent {
  if (unit.length > MAX_RECORD_SIZE) return { position, answer: HEC.invalidDataFormat, error: recordTooLarge(position, unit.length, 'Event').error };
  if (!isUtf8(unit)) return { position, answer: HEC.invalidDataFormat, error: `Event ${position} is not valid UTF-8.` };
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(unit.toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    return { position, answer: HEC.invalidDataFormat, error: `Event ${position} is not valid JSON: ${(e as Error).message}.` };
  }
  if (!Object.prototype.hasOwnProperty.call(obj, 'event')) return { position, answer: HEC.eventRequired, error: `Event ${position} has no "event" field.` };
  if (isBlankEvent(obj['event'])) return { position, answer: HEC.eventBlank, error: `Event ${position} has a blank "event" field.` };
  if (!indexedFieldsOk(obj['fields'])) return { position, answer: HEC.badIndexedFields, error: `Event ${position}: "fields" must be a flat object.` };
  let fields: CommonFields = {};
  let region: string | undefined;
  let dedupeKey: string | undefined;
  const ev = obj['event'];
  if (typeof ev === 'object' && ev !== null) {
    const r = topLevelValueRange(unit, 'event');
    if (r) ({ fields, region, dedupeKey } = learnFromJson(unit.subarray(r.start, r.end)));
  }
  fields = { ...fields };
  fields.time ??= timeOf(obj['time']);
  if (typeof obj['host'] === 'string') fields.actor ??= obj['host'].slice(0, 256);
  if (fields.time === undefined) delete fields.time;
  const rec: ParsedRecord = { bytes: unit, position, source: sourceName('hec', obj['sourcetype']), fields };
  if (region) rec.region = region;
  if (dedupeKey) rec.dedupeKey = dedupeKey;
  return rec;
}

/** The first bad event, counting pipeline refusals too. */
function firstBad(bad: BadEvent[]): BadEvent | undefined {
  let first: BadEvent | undefined;
  for (const b of bad) if (!first || b.position < first.position) first = b;
  return first;
}

function answerFor(code: string): HecAnswer {
  return code === 'REGION_NOT_ALLOWED' || code === 'FORBIDDEN' ? HEC.incorrectIndex : HEC.invalidDataFormat;
}

export async function hecRoutes(app: FastifyInstance, opts: ProtocolOptions): Promise<void> {
  const { vault, metrics } = opts;
  rawBodies(app, HEC_MAX_BODY);

  app.setErrorHandler((err, req, reply) => {
    const e = toCustodyError(err);
    if (e.code === 'INTERNAL' || e.code === 'STORAGE_CORRUPT') req.log.error({ err }, 'HEC request failed');
    else req.log.info({ code: e.code }, e.message);
    switch (e.code) {
      case 'UNAUTHENTICATED': {
        const reason = e.details?.['reason'];
        if (reason === 'revoked') return send(reply, HEC.tokenDisabled);
        if (reason === 'invalid') return send(reply, HEC.invalidToken);
        // No token found: none sent at all, or an Authorization header we cannot read.
        return send(reply, req.headers.authorization === undefined ? HEC.tokenRequired : HEC.invalidAuthorization);
      }
      case 'FORBIDDEN':
        return send(reply, HEC.invalidToken);
      case 'BODY_TOO_LARGE':
      case 'RECORD_TOO_LARGE':
        return send(reply, HEC.tooLarge);
      case 'EMPTY_BATCH':
        return send(reply, HEC.noData);
      case 'BAD_ENCODING':
      case 'BAD_REQUEST':
      case 'BAD_JSON_LINES':
      case 'UNSUPPORTED_MEDIA_TYPE':
        return send(reply, HEC.invalidDataFormat);
      default:
        if (isBusy(e)) {
          reply.header('Retry-After', String(retryAfterOf(e)));
          return send(reply, HEC.busy);
        }
        return send(reply, HEC.internal);
    }
  });

  const finish = async (req: FastifyRequest, reply: FastifyReply, records: ParsedRecord[], bad: BadEvent[]) => {
    if (records.length > 0) {
      const summary = await ingestRecords(vault, records, { principal: req.principal! });
      countStored(metrics, summary);
      summary.outcomes.forEach((o, i) => {
        if (o.status === 'rejected') bad.push({ position: records[i]!.position, answer: answerFor(o.code), error: o.error });
      });
    }
    const first = firstBad(bad);
    if (!first) return send(reply, HEC.success);
    req.log.info({ badEvents: bad.length, first: first.position, error: first.error }, 'HEC events refused');
    // HEC numbers events from 0 in invalid-event-number.
    return send(reply, first.answer, first.position - 1);
  };

  const events = async (req: FastifyRequest, reply: FastifyReply) => {
    const body = await decodeContent(bodyOf(req), req.headers['content-encoding'], HEC_MAX_BODY, ['gzip']);
    const { units, broken } = splitEvents(body);
    if (units.length === 0 && broken === undefined) throw new CustodyError('EMPTY_BATCH', 'The body holds no events.');
    const records: ParsedRecord[] = [];
    const bad: BadEvent[] = [];
    units.forEach((u, i) => {
      const r = eventRecord(u, i + 1);
      if ('answer' in r) bad.push(r);
      else records.push(r);
    });
    if (broken !== undefined) bad.push({ position: broken, answer: HEC.invalidDataFormat, error: `Event ${broken} is not a JSON object; nothing after it can be read.` });
    return finish(req, reply, records, bad);
  };

  const raw = async (req: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply: FastifyReply) => {
    const body = await decodeContent(bodyOf(req), req.headers['content-encoding'], HEC_MAX_BODY, ['gzip']);
    const q = req.query ?? {};
    const source = sourceName('hec', q['sourcetype']);
    if (nonBlankLines(body) > MAX_UNITS) throw new CustodyError('BODY_TOO_LARGE', `The request holds more than ${MAX_UNITS} lines; send smaller batches.`);
    const parsed = parseTextLines(body, source);
    if (parsed.records.length === 0 && parsed.errors.length === 0) throw new CustodyError('EMPTY_BATCH', 'The body holds no events.');
    const host = typeof q['host'] === 'string' ? q['host'].slice(0, 256) : undefined;
    for (const r of parsed.records) {
      if (r.bytes[0] === 0x7b) {
        const l = learnFromJson(r.bytes);
        r.fields = l.fields;
        if (l.region) r.region = l.region;
        if (l.dedupeKey) r.dedupeKey = l.dedupeKey;
      }
      if (host) r.fields = { actor: host, ...r.fields };
    }
    const bad: BadEvent[] = parsed.errors.map((e: RecordError) => ({ position: e.position, answer: HEC.invalidDataFormat, error: e.error }));
    return finish(req, reply, parsed.records, bad);
  };

  for (const url of ['/services/collector', '/services/collector/event', '/services/collector/event/1.0']) {
    app.post(url, { config: WRITE, bodyLimit: HEC_MAX_BODY }, events);
  }
  for (const url of ['/services/collector/raw', '/services/collector/raw/1.0']) {
    app.post(url, { config: WRITE, bodyLimit: HEC_MAX_BODY }, raw);
  }
  const health = async (_req: FastifyRequest, reply: FastifyReply) => {
    const troubled = [...vault.logs.values()].some((s) => s.lastError);
    return send(reply, troubled ? HEC.unhealthy : HEC.healthy);
  };
  for (const url of ['/services/collector/health', '/services/collector/health/1.0']) {
    app.route({ method: ['GET', 'POST'], url, config: { public: true }, bodyLimit: 64 * 1024, handler: health });
  }
}
