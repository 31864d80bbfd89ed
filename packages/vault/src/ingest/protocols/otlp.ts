/**
 * OTLP/HTTP logs: POST /v1/logs from OpenTelemetry SDKs and the Collector's otlphttp exporter.
 * docs/PROTOCOLS.md, "OTLP/HTTP logs".
 *
 * Wire facts (shared/reference/ingest-protocols.md; opentelemetry-proto docs/specification.md,
 * "OTLP/HTTP"): the body is an ExportLogsServiceRequest as binary protobuf
 * (application/x-protobuf) or protobuf-JSON (application/json: lowerCamelCase keys, 64-bit
 * integers as decimal strings, traceId/spanId as hex, enums as integers, unknown fields
 * ignored), optionally gzip. Answers use the request's Content-Type: 200 with an
 * ExportLogsServiceResponse ({} or {"partialSuccess":{"rejectedLogRecords","errorMessage"}});
 * every 4xx/5xx carries a google.rpc.Status; 400 bad data (not retried), 413 too large (not
 * retried), 429/503 + Retry-After to throttle. The server should cap bodies at 20 MiB,
 * after decompression too.
 *
 * One record per LogRecord. OTLP has no byte form of a single log record, so the stored
 * record is an ExportLogsServiceRequest in OTLP JSON holding just that record with its
 * resource and scope: resourceLogs[0].scopeLogs[0].logRecords[0].
 * - JSON input: the client's own bytes of the logRecord, the resource, the scope and the
 *   schemaUrls, spliced unchanged into a fixed wrapper. Nothing the client sent for that
 *   record is re-encoded.
 * - Protobuf input: the canonical OTLP JSON of the decoded messages (fields in declaration
 *   order, default values left out, fields this schema does not know dropped).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isUtf8 } from 'node:buffer';
import { CustodyError } from '../../errors.js';
import { toCustodyError } from '../../server/errors.js';
import { ingestRecords } from '../pipeline.js';
import { arrayElements, topLevelValueRange } from '../sources/generic.js';
import type { CommonFields, ParsedRecord, RecordError } from '../types.js';
import type { ProtocolOptions } from './index.js';
import { MiB, MAX_RECORD_SIZE, MAX_UNITS, rawBodies, bodyOf, decodeContent, sourceName, countStored, retryAfterOf, isBusy, isoFromMillis, recordTooLarge, listNumbers } from './common.js';
import { ExportLogsServiceRequest, ExportLogsServiceResponse, RpcStatus, countLogRecords, has, longString, type PbMessage } from './otlp-proto.js';

/** Request body limit, before and after decompression (the specification's recommendation). */
export const OTLP_MAX_BODY = 20 * MiB;
/** Nesting of AnyValue arrays/maps a record may have. */
const MAX_DEPTH = 64;

type Format = 'json' | 'protobuf';

function formatOf(contentType: unknown): Format | null {
  const mime = (typeof contentType === 'string' ? contentType : '').split(';')[0]!.trim().toLowerCase();
  if (mime === 'application/json') return 'json';
  if (mime === 'application/x-protobuf' || mime === 'application/protobuf') return 'protobuf';
  return null;
}

// ---- fields --------------------------------------------------------------------------------

/** OTLP SeverityNumber → OCSF severity names (types.ts CommonFields.severity). */
function severityName(n: number): string | undefined {
  if (n >= 1 && n <= 12) return 'Informational'; // TRACE, DEBUG, INFO
  if (n >= 13 && n <= 16) return 'Medium'; // WARN
  if (n >= 17 && n <= 20) return 'High'; // ERROR
  if (n >= 21 && n <= 24) return 'Critical'; // FATAL
  return undefined;
}

function isoFromNanos(v: string | undefined): string | undefined {
  if (!v || !/^\d{1,20}$/.test(v)) return undefined;
  return isoFromMillis(Number(BigInt(v) / 1_000_000n));
}

interface RecordFacts {
  time?: string;
  observed?: string;
  severityNumber?: number;
  traceId?: string;
  eventName?: string;
}

function fieldsOf(f: RecordFacts, service: string | undefined): CommonFields {
  const out: CommonFields = {};
  const time = isoFromNanos(f.time) ?? isoFromNanos(f.observed);
  if (time) out.time = time;
  const sev = f.severityNumber !== undefined ? severityName(f.severityNumber) : undefined;
  if (sev) out.severity = sev;
  if (service) out.actor = service.slice(0, 256);
  const extra: Record<string, string> = {};
  if (f.traceId) extra['traceId'] = f.traceId.toLowerCase();
  if (f.eventName) extra['eventName'] = f.eventName.slice(0, 128);
  if (Object.keys(extra).length > 0) out.extra = extra;
  return out;
}

// ---- JSON input ----------------------------------------------------------------------------

const U64_MAX = 18446744073709551615n;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// 64-bit integers may come as JSON numbers too; beyond 2^53 JSON.parse rounds them, which only
// affects the derived fields: the stored bytes keep the client's digits.
function u64(v: unknown): boolean {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v < 2 ** 64;
  return typeof v === 'string' && /^\d{1,20}$/.test(v) && BigInt(v) <= U64_MAX;
}
function i64(v: unknown): boolean {
  if (typeof v === 'number') return Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 63;
  return typeof v === 'string' && /^-?\d{1,19}$/.test(v) && BigInt(v) >= -(2n ** 63n) && BigInt(v) < 2n ** 63n;
}
function u32(v: unknown): boolean {
  const n = typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

/** Checks an OTLP-JSON AnyValue; returns what is wrong, or null. */
function checkAnyValue(v: unknown, depth: number): string | null {
  if (depth > MAX_DEPTH) return `values are nested more than ${MAX_DEPTH} deep`;
  if (v === null) return null;
  if (!isObj(v)) return 'an AnyValue must be a JSON object';
  let set = 0;
  for (const [k, x] of Object.entries(v)) {
    let bad: string | null = null;
    switch (k) {
      case 'stringValue':
        bad = typeof x === 'string' ? null : 'stringValue must be a string';
        break;
      case 'boolValue':
        bad = typeof x === 'boolean' ? null : 'boolValue must be true or false';
        break;
      case 'intValue':
        bad = i64(x) ? null : 'intValue must be a 64-bit integer (a decimal string)';
        break;
      case 'doubleValue':
        bad = typeof x === 'number' || x === 'NaN' || x === 'Infinity' || x === '-Infinity' ? null : 'doubleValue must be a number';
        break;
      case 'bytesValue':
        bad = typeof x === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(x) ? null : 'bytesValue must be base64';
        break;
      case 'arrayValue':
      case 'kvlistValue': {
        if (x === null) break;
        if (!isObj(x)) {
          bad = `${k} must be an object`;
          break;
        }
        const vals = x['values'];
        if (vals === undefined || vals === null) break;
        if (!Array.isArray(vals)) {
          bad = `${k}.values must be an array`;
          break;
        }
        for (const y of vals) {
          bad = k === 'arrayValue' ? checkAnyValue(y, depth + 1) : checkKeyValue(y, depth + 1);
          if (bad) break;
        }
        break;
      }
      default:
        continue; // unknown fields are ignored (specification, JSON Protobuf Encoding)
    }
    if (bad) return bad;
    if (x !== null) set++;
  }
  return set > 1 ? 'an AnyValue holds more than one value' : null;
}

function checkKeyValue(v: unknown, depth: number): string | null {
  if (!isObj(v)) return 'an attribute must be a {"key","value"} object';
  if (v['key'] !== undefined && typeof v['key'] !== 'string') return 'an attribute key must be a string';
  return v['value'] === undefined ? null : checkAnyValue(v['value'], depth);
}

function checkAttributes(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) return 'attributes must be an array';
  for (const kv of v) {
    const bad = checkKeyValue(kv, 1);
    if (bad) return bad;
  }
  return null;
}

/** Validates one OTLP-JSON LogRecord; the facts for fields, or what is wrong. */
function checkLogRecord(v: unknown): { facts: RecordFacts } | { error: string } {
  if (!isObj(v)) return { error: 'it is not a JSON object' };
  const facts: RecordFacts = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null) continue;
    let bad: string | null = null;
    switch (k) {
      case 'timeUnixNano':
      case 'observedTimeUnixNano':
        if (!u64(x)) bad = `${k} must be nanoseconds since 1970 as a decimal string`;
        else if (k === 'timeUnixNano') facts.time = typeof x === 'number' ? BigInt(x).toString() : String(x);
        else facts.observed = typeof x === 'number' ? BigInt(x).toString() : String(x);
        break;
      case 'severityNumber':
        if (typeof x !== 'number' || !Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31) bad = 'severityNumber must be an integer';
        else facts.severityNumber = x;
        break;
      case 'severityText':
        if (typeof x !== 'string') bad = 'severityText must be a string';
        break;
      case 'eventName':
        if (typeof x !== 'string') bad = 'eventName must be a string';
        else facts.eventName = x;
        break;
      case 'body':
        bad = checkAnyValue(x, 1);
        break;
      case 'attributes':
        bad = checkAttributes(x);
        break;
      case 'droppedAttributesCount':
      case 'flags':
        if (!u32(x)) bad = `${k} must be a 32-bit unsigned integer`;
        break;
      case 'traceId':
        if (typeof x !== 'string' || !/^([0-9a-fA-F]{32})?$/.test(x)) bad = 'traceId must be 32 hex digits';
        else if (x) facts.traceId = x;
        break;
      case 'spanId':
        if (typeof x !== 'string' || !/^([0-9a-fA-F]{16})?$/.test(x)) bad = 'spanId must be 16 hex digits';
        break;
      default:
        break;
    }
    if (bad) return { error: bad };
  }
  return { facts };
}

function serviceNameOf(resource: unknown): string | undefined {
  const attrs = isObj(resource) ? resource['attributes'] : undefined;
  if (!Array.isArray(attrs)) return undefined;
  for (const kv of attrs) {
    if (isObj(kv) && kv['key'] === 'service.name' && isObj(kv['value']) && typeof kv['value']['stringValue'] === 'string') return kv['value']['stringValue'];
  }
  return undefined;
}

const tooMany = () => new CustodyError('BODY_TOO_LARGE', `The request holds more than ${MAX_UNITS} log records; send smaller batches.`);
const badBody = (what: string) => new CustodyError('BAD_REQUEST', `The body is not an OTLP ExportLogsServiceRequest: ${what}.`);

/** The byte range of a key's value inside one JSON object (its exact bytes), or undefined. */
function member(obj: Buffer, key: string): Buffer | undefined {
  const r = topLevelValueRange(obj, key);
  if (!r) return undefined;
  const v = obj.subarray(r.start, r.end);
  return v.length === 4 && v.toString('latin1') === 'null' ? undefined : v;
}

function elements(arr: Buffer | undefined, what: string): Buffer[] {
  if (!arr) return [];
  if (arr[0] !== 0x5b) throw badBody(`${what} must be an array`);
  const els = arrayElements(arr);
  if (!els) throw badBody(`${what} is not a well-formed array`);
  return els;
}

function objectOf(b: Buffer, what: string): Record<string, unknown> {
  const v = JSON.parse(b.toString('utf8')) as unknown; // a slice of validated JSON
  if (!isObj(v)) throw badBody(`${what} must be an object`);
  return v;
}

function arrayOrAbsent(o: Record<string, unknown>, key: string, where: string): void {
  if (o[key] !== undefined && o[key] !== null && !Array.isArray(o[key])) throw badBody(`${where}.${key} must be an array`);
}
function objectOrAbsent(o: Record<string, unknown>, key: string, where: string): void {
  if (o[key] !== undefined && o[key] !== null && !isObj(o[key])) throw badBody(`${where}.${key} must be an object`);
}
function stringOrAbsent(o: Record<string, unknown>, key: string, where: string): void {
  if (o[key] !== undefined && o[key] !== null && typeof o[key] !== 'string') throw badBody(`${where}.${key} must be a string`);
}

/** LogRecords in a parsed request (before any byte slicing). */
function countJsonRecords(root: Record<string, unknown>): number {
  let n = 0;
  const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  for (const rl of arr(root['resourceLogs'])) {
    for (const sl of arr(isObj(rl) ? rl['scopeLogs'] : undefined)) n += arr(isObj(sl) ? sl['logRecords'] : undefined).length;
  }
  return n;
}

const lit = (s: string) => Buffer.from(s, 'latin1');

/**
 * {"resourceLogs":[{"resource":R,"scopeLogs":[{"scope":S,"logRecords":[L],"schemaUrl":s}],"schemaUrl":r}]}
 * from the client's own bytes of each part.
 */
function spliceRecord(p: { resource?: Buffer; resourceSchema?: Buffer; scope?: Buffer; scopeSchema?: Buffer; record: Buffer }): Buffer {
  const parts: Buffer[] = [lit('{"resourceLogs":[{')];
  if (p.resource) parts.push(lit('"resource":'), p.resource, lit(','));
  parts.push(lit('"scopeLogs":[{'));
  if (p.scope) parts.push(lit('"scope":'), p.scope, lit(','));
  parts.push(lit('"logRecords":['), p.record, lit(']'));
  if (p.scopeSchema) parts.push(lit(',"schemaUrl":'), p.scopeSchema);
  parts.push(lit('}]'));
  if (p.resourceSchema) parts.push(lit(',"schemaUrl":'), p.resourceSchema);
  parts.push(lit('}]}'));
  return Buffer.concat(parts);
}

interface Units {
  records: ParsedRecord[];
  errors: RecordError[];
  total: number;
}

export function fromJson(body: Buffer): Units {
  if (!isUtf8(body)) throw badBody('it is not UTF-8 JSON');
  let root: unknown;
  try {
    root = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw badBody(`it is not valid JSON (${(e as Error).message})`);
  }
  if (!isObj(root)) throw badBody('it must be a JSON object');
  const out: Units = { records: [], errors: [], total: 0 };
  // The shape is checked on the parsed values; the bytes come from the slices.
  arrayOrAbsent(root, 'resourceLogs', 'resourceLogs');
  if (countJsonRecords(root) > MAX_UNITS) throw tooMany();
  const rls = elements(member(body, 'resourceLogs'), 'resourceLogs');
  // First the wrappers (resource, scope): a broken one refuses the request before anything is stored.
  const plan: Array<{ resource?: Buffer; resourceSchema?: Buffer; service?: string; scopes: Array<{ scope?: Buffer; scopeSchema?: Buffer; logRecords: Buffer[] }> }> = [];
  rls.forEach((rl, ri) => {
    const where = `resourceLogs[${ri}]`;
    const rlObj = objectOf(rl, where);
    objectOrAbsent(rlObj, 'resource', where);
    stringOrAbsent(rlObj, 'schemaUrl', where);
    arrayOrAbsent(rlObj, 'scopeLogs', where);
    const resource = member(rl, 'resource');
    const resourceSchema = member(rl, 'schemaUrl');
    const scopes = elements(member(rl, 'scopeLogs'), `${where}.scopeLogs`).map((sl, si) => {
      const at = `${where}.scopeLogs[${si}]`;
      const slObj = objectOf(sl, at);
      objectOrAbsent(slObj, 'scope', at);
      stringOrAbsent(slObj, 'schemaUrl', at);
      arrayOrAbsent(slObj, 'logRecords', at);
      return { scope: member(sl, 'scope'), scopeSchema: member(sl, 'schemaUrl'), logRecords: elements(member(sl, 'logRecords'), `${at}.logRecords`) };
    });
    plan.push({ resource, resourceSchema, service: serviceNameOf(resource ? JSON.parse(resource.toString('utf8')) : undefined), scopes });
  });
  for (const rl of plan) {
    const source = sourceName('otlp', rl.service);
    for (const sl of rl.scopes) {
      for (const lr of sl.logRecords) {
        const position = ++out.total;
        if (position > MAX_UNITS) throw tooMany();
        const checked = checkLogRecord(JSON.parse(lr.toString('utf8')));
        if ('error' in checked) {
          out.errors.push({ position, code: 'BAD_LOG_RECORD', error: `Log record ${position}: ${checked.error}.` });
          continue;
        }
        const bytes = spliceRecord({ resource: rl.resource, resourceSchema: rl.resourceSchema, scope: sl.scope, scopeSchema: sl.scopeSchema, record: lr });
        if (bytes.length > MAX_RECORD_SIZE) out.errors.push(recordTooLarge(position, bytes.length, 'Log record'));
        else out.records.push({ bytes, position, source, fields: fieldsOf(checked.facts, rl.service) });
      }
    }
  }
  return out;
}

// ---- protobuf input ------------------------------------------------------------------------

class TooDeep extends Error {}

const str = (m: PbMessage, f: string): string => (typeof m[f] === 'string' ? (m[f] as string) : '');
const num = (m: PbMessage, f: string): number => (typeof m[f] === 'number' ? (m[f] as number) : 0);
const list = (m: PbMessage, f: string): PbMessage[] => (Array.isArray(m[f]) ? (m[f] as PbMessage[]) : []);
const bytesOf = (m: PbMessage, f: string): Uint8Array => (m[f] instanceof Uint8Array ? (m[f] as Uint8Array) : new Uint8Array(0));

/** proto3 JSON of a double: numbers, or the strings NaN / Infinity / -Infinity. */
function doubleJson(d: number): number | string {
  if (Number.isNaN(d)) return 'NaN';
  if (!Number.isFinite(d)) return d > 0 ? 'Infinity' : '-Infinity';
  return d;
}

function anyJson(v: PbMessage, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new TooDeep();
  if (has(v, 'stringValue')) return { stringValue: v['stringValue'] };
  if (has(v, 'boolValue')) return { boolValue: v['boolValue'] };
  if (has(v, 'intValue')) return { intValue: longString(v['intValue']) };
  if (has(v, 'doubleValue')) return { doubleValue: doubleJson(num(v, 'doubleValue')) };
  if (has(v, 'arrayValue')) {
    const vals = list(v['arrayValue'] as PbMessage, 'values');
    return { arrayValue: vals.length ? { values: vals.map((x) => anyJson(x, depth + 1)) } : {} };
  }
  if (has(v, 'kvlistValue')) {
    const vals = list(v['kvlistValue'] as PbMessage, 'values');
    return { kvlistValue: vals.length ? { values: vals.map((x) => kvJson(x, depth + 1)) } : {} };
  }
  if (has(v, 'bytesValue')) return { bytesValue: Buffer.from(bytesOf(v, 'bytesValue')).toString('base64') };
  return {};
}

function kvJson(kv: PbMessage, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = { key: str(kv, 'key') };
  if (has(kv, 'value')) o['value'] = anyJson(kv['value'] as PbMessage, depth);
  return o;
}

function attrsInto(o: Record<string, unknown>, m: PbMessage): void {
  const attrs = list(m, 'attributes');
  if (attrs.length) o['attributes'] = attrs.map((kv) => kvJson(kv, 1));
  const dropped = num(m, 'droppedAttributesCount');
  if (dropped) o['droppedAttributesCount'] = dropped;
}

function resourceJson(r: PbMessage): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  attrsInto(o, r);
  const refs = list(r, 'entityRefs');
  if (refs.length) {
    o['entityRefs'] = refs.map((e) => {
      const x: Record<string, unknown> = {};
      if (str(e, 'schemaUrl')) x['schemaUrl'] = str(e, 'schemaUrl');
      if (str(e, 'type')) x['type'] = str(e, 'type');
      const ids = e['idKeys'];
      if (Array.isArray(ids) && ids.length) x['idKeys'] = ids;
      const ds = e['descriptionKeys'];
      if (Array.isArray(ds) && ds.length) x['descriptionKeys'] = ds;
      return x;
    });
  }
  return o;
}

function scopeJson(s: PbMessage): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (str(s, 'name')) o['name'] = str(s, 'name');
  if (str(s, 'version')) o['version'] = str(s, 'version');
  attrsInto(o, s);
  return o;
}

function logRecordJson(lr: PbMessage): { json: Record<string, unknown>; facts: RecordFacts } | { error: string } {
  const traceId = bytesOf(lr, 'traceId');
  const spanId = bytesOf(lr, 'spanId');
  if (traceId.length !== 0 && traceId.length !== 16) return { error: `trace_id is ${traceId.length} bytes; it must be 16` };
  if (spanId.length !== 0 && spanId.length !== 8) return { error: `span_id is ${spanId.length} bytes; it must be 8` };
  const o: Record<string, unknown> = {};
  const facts: RecordFacts = {};
  const time = longString(lr['timeUnixNano']);
  if (time !== '0') o['timeUnixNano'] = facts.time = time;
  const observed = longString(lr['observedTimeUnixNano']);
  if (observed !== '0') o['observedTimeUnixNano'] = facts.observed = observed;
  const sev = num(lr, 'severityNumber');
  if (sev) o['severityNumber'] = facts.severityNumber = sev;
  if (str(lr, 'severityText')) o['severityText'] = str(lr, 'severityText');
  try {
    if (has(lr, 'body')) o['body'] = anyJson(lr['body'] as PbMessage, 1);
    attrsInto(o, lr);
  } catch (e) {
    if (e instanceof TooDeep) return { error: `values are nested more than ${MAX_DEPTH} deep` };
    throw e;
  }
  const flags = num(lr, 'flags');
  if (flags) o['flags'] = flags >>> 0;
  if (traceId.length) o['traceId'] = facts.traceId = Buffer.from(traceId).toString('hex');
  if (spanId.length) o['spanId'] = Buffer.from(spanId).toString('hex');
  if (str(lr, 'eventName')) o['eventName'] = facts.eventName = str(lr, 'eventName');
  return { json: o, facts };
}

export function fromProtobuf(body: Buffer): Units {
  let req: PbMessage;
  try {
    if (countLogRecords(body) > MAX_UNITS) throw tooMany();
    req = ExportLogsServiceRequest.decode(body) as unknown as PbMessage;
  } catch (e) {
    if (e instanceof CustodyError) throw e;
    throw badBody(`it cannot be decoded as protobuf (${(e as Error).message})`);
  }
  const out: Units = { records: [], errors: [], total: 0 };
  for (const rl of list(req, 'resourceLogs')) {
    const resource = has(rl, 'resource') ? resourceJson(rl['resource'] as PbMessage) : undefined;
    const service = serviceNameOf(resource);
    const source = sourceName('otlp', service);
    for (const sl of list(rl, 'scopeLogs')) {
      const scope = has(sl, 'scope') ? scopeJson(sl['scope'] as PbMessage) : undefined;
      for (const lr of list(sl, 'logRecords')) {
        const position = ++out.total;
        if (position > MAX_UNITS) throw tooMany();
        const r = logRecordJson(lr);
        if ('error' in r) {
          out.errors.push({ position, code: 'BAD_LOG_RECORD', error: `Log record ${position}: ${r.error}.` });
          continue;
        }
        const scopeLogs: Record<string, unknown> = {};
        if (scope) scopeLogs['scope'] = scope;
        scopeLogs['logRecords'] = [r.json];
        if (str(sl, 'schemaUrl')) scopeLogs['schemaUrl'] = str(sl, 'schemaUrl');
        const resourceLogs: Record<string, unknown> = {};
        if (resource) resourceLogs['resource'] = resource;
        resourceLogs['scopeLogs'] = [scopeLogs];
        if (str(rl, 'schemaUrl')) resourceLogs['schemaUrl'] = str(rl, 'schemaUrl');
        const bytes = Buffer.from(JSON.stringify({ resourceLogs: [resourceLogs] }));
        if (bytes.length > MAX_RECORD_SIZE) out.errors.push(recordTooLarge(position, bytes.length, 'Log record'));
        else out.records.push({ bytes, position, source, fields: fieldsOf(r.facts, service) });
      }
    }
  }
  return out;
}

// ---- answers -------------------------------------------------------------------------------

/** gRPC status codes for Status.code (the specification does not use it; it helps logs). */
const GRPC: Record<number, number> = { 400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14 };

function sendStatus(reply: FastifyReply, format: Format, status: number, message: string): FastifyReply {
  const code = GRPC[status] ?? 2;
  reply.code(status);
  if (format === 'protobuf') {
    return reply.type('application/x-protobuf').send(Buffer.from(RpcStatus.encode({ code, message }).finish()));
  }
  return reply.type('application/json').send({ code, message });
}

function sendExportResponse(reply: FastifyReply, format: Format, rejected: number, message: string): FastifyReply {
  reply.code(200);
  if (format === 'protobuf') {
    const msg = rejected > 0 ? { partialSuccess: { rejectedLogRecords: rejected, errorMessage: message } } : {};
    return reply.type('application/x-protobuf').send(Buffer.from(ExportLogsServiceResponse.encode(msg).finish()));
  }
  // int64 in JSON is a decimal string.
  return reply.type('application/json').send(rejected > 0 ? { partialSuccess: { rejectedLogRecords: String(rejected), errorMessage: message } } : {});
}

function rejectionMessage(errors: RecordError[], total: number): string {
  const first = errors.slice(0, 5).map((e) => e.error).join(' ');
  const n = errors.length;
  return `${n} of ${total} log records were refused (log records ${listNumbers(errors.map((e) => e.position))}); the others were stored. ${first}`.slice(0, 2000);
}

export async function otlpRoutes(app: FastifyInstance, opts: ProtocolOptions): Promise<void> {
  const { vault, metrics } = opts;
  rawBodies(app, OTLP_MAX_BODY);

  app.setErrorHandler((err, req, reply) => {
    const e = toCustodyError(err);
    if (e.code === 'INTERNAL' || e.code === 'STORAGE_CORRUPT') req.log.error({ err }, 'OTLP request failed');
    else req.log.info({ code: e.code }, e.message);
    const format = formatOf(req.headers['content-type']) ?? 'json';
    switch (e.code) {
      case 'BODY_TOO_LARGE':
      case 'RECORD_TOO_LARGE':
        return sendStatus(reply, format, 413, err instanceof CustodyError ? e.message : `The request is larger than ${OTLP_MAX_BODY} bytes; send smaller batches.`);
      case 'UNAUTHENTICATED':
      case 'FORBIDDEN':
      case 'BAD_REQUEST':
      case 'BAD_ENCODING':
      case 'UNSUPPORTED_MEDIA_TYPE':
        return sendStatus(reply, format, e.status, e.message);
      default:
        if (isBusy(e)) {
          reply.header('Retry-After', String(retryAfterOf(e)));
          return sendStatus(reply, format, 503, e.message);
        }
        return sendStatus(reply, format, e.status >= 400 && e.status < 500 ? 400 : 500, e.message);
    }
  });

  app.post('/v1/logs', { config: { roles: ['writer'], credentials: ['bearer', 'basic'] }, bodyLimit: OTLP_MAX_BODY }, async (req, reply) => {
    const format = formatOf(req.headers['content-type']);
    if (!format) {
      throw new CustodyError('UNSUPPORTED_MEDIA_TYPE', 'Send OTLP logs as application/x-protobuf or application/json.');
    }
    const body = await decodeContent(bodyOf(req), req.headers['content-encoding'], OTLP_MAX_BODY, ['gzip']);
    const units = format === 'json' ? fromJson(body) : fromProtobuf(body);
    const errors = [...units.errors];
    if (units.records.length > 0) {
      const summary = await ingestRecords(vault, units.records, { principal: req.principal! });
      countStored(metrics, summary);
      summary.outcomes.forEach((o, i) => {
        if (o.status === 'rejected') errors.push({ position: units.records[i]!.position, code: o.code, error: `Log record ${units.records[i]!.position}: ${o.error}` });
      });
    }
    errors.sort((a, b) => a.position - b.position);
    if (errors.length > 0) req.log.info({ rejected: errors.length, total: units.total }, 'OTLP log records refused');
    return sendExportResponse(reply, format, errors.length, errors.length ? rejectionMessage(errors, units.total) : '');
  });
}
