/**
 * Small pure helpers shared by the AWS source parsers (cloudtrail, config, cwlogs, vpcflow,
 * guardduty, macie). Everything here reads untrusted parsed JSON: no helper throws, and a
 * value of the wrong type is treated as absent.
 *
 * Stable surface (other parsers import it): `str`, `isoTime`, `eventBridgeDetail`, `obj`,
 * `ipOrUndefined`, `severityName`, `ocsfClass`, `OCSF`, `truncate`, `compact`, `extraTerms`,
 * `attrValue`, `arnRegion`; and the JSON input helpers (`readJsonInput`, `elementUnits`,
 * `lineUnits`, `wholeUnit`, `collectUnits`, `safeFields`, `makeRecord`) that split a JSON input
 * into byte-exact units whichever way it is framed.
 */
import { isUtf8 } from 'node:buffer';
import { isIP } from 'node:net';
import { CustodyError } from '../../errors.js';
import { MAX_RECORD_SIZE } from '../../log/entry.js';
import type { CommonFields, ParseResult, ParsedRecord, RecordError } from '../types.js';
import { arrayElements, checkJson, forEachLine, isBlank, notUtf8, tooLarge, trimJson } from './generic.js';

/** A plain JSON object, or undefined. */
export function obj(x: unknown): Record<string, unknown> | undefined {
  return typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : undefined;
}

/**
 * A non-empty string as is; a finite number or a boolean as its decimal text (AWS spells some
 * ids either way, e.g. account ids); anything else undefined.
 */
export function str(x: unknown): string | undefined {
  if (typeof x === 'string') return x.length > 0 ? x : undefined;
  if (typeof x === 'number') return Number.isFinite(x) ? String(x) : undefined;
  if (typeof x === 'boolean') return String(x);
  return undefined;
}

/** At most `max` UTF-16 units of `s`, with "…" marking a cut. */
export function truncate(s: string | undefined, max: number): string | undefined {
  if (s === undefined) return undefined;
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
}

const ISO_RE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/i;
const MIN_MS = Date.UTC(1970, 0, 1);
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * A time as RFC 3339 UTC with milliseconds (`2014-09-26T11:35:00.000Z`), so every source's
 * `time` field sorts and compares the same way. Accepts ISO 8601 text (CloudTrail eventTime,
 * Config capture time, GuardDuty createdAt; a missing zone is read as UTC), and epoch numbers
 * or digit strings: below 1e11 seconds (VPC flow `start`), otherwise milliseconds (CloudWatch
 * Logs `timestamp`). Years outside 1970–9999 and anything unreadable give undefined.
 */
export function isoTime(x: unknown): string | undefined {
  let ms: number;
  if (typeof x === 'number' || (typeof x === 'string' && /^\d{1,16}(\.\d+)?$/.test(x))) {
    const n = Number(x);
    if (!Number.isFinite(n) || n < 0) return undefined;
    ms = n < 1e11 ? n * 1000 : n;
  } else if (typeof x === 'string' && x.length <= 40 && ISO_RE.test(x)) {
    const zoned = /(Z|[+-]\d{2}:?\d{2})$/i.test(x) ? x : `${x}Z`;
    ms = Date.parse(zoned.replace(' ', 'T'));
  } else return undefined;
  if (!Number.isFinite(ms) || ms < MIN_MS || ms > MAX_MS) return undefined;
  return new Date(Math.floor(ms)).toISOString();
}

/** An IPv4/IPv6 address as given, or undefined (CloudTrail's sourceIPAddress may be a service name). */
export function ipOrUndefined(x: unknown): string | undefined {
  return typeof x === 'string' && x.length <= 64 && isIP(x) !== 0 ? x : undefined;
}

/** An EventBridge event (`detail-type`, `source`, `detail`, …) split into what parsers need. */
export interface EventBridgeParts {
  detailType: string;
  detail: Record<string, unknown>;
  id: string | undefined;
  /** Event `source`, e.g. "aws.cloudtrail", "aws.config", "aws.guardduty". */
  source: string | undefined;
  account: string | undefined;
  region: string | undefined;
  time: string | undefined;
}

/**
 * The parts of an EventBridge event, or null when `v` is not one: it must carry a string
 * `detail-type` and an object `detail` (every event EventBridge delivers has both).
 */
export function eventBridgeDetail(v: unknown): EventBridgeParts | null {
  const o = obj(v);
  if (!o) return null;
  const detailType = o['detail-type'];
  const detail = obj(o.detail);
  if (typeof detailType !== 'string' || !detail) return null;
  return { detailType, detail, id: str(o.id), source: str(o.source), account: str(o.account), region: str(o.region), time: str(o.time) };
}

/** OCSF 1.1 severity names (severity_id 1–5). */
export const SEVERITY_NAMES = ['Informational', 'Low', 'Medium', 'High', 'Critical'] as const;

/**
 * An OCSF severity name from a source's severity: a name in any case (also "info",
 * "moderate"), or a GuardDuty-scale number (0.1–10: below 1 Informational, below 4 Low,
 * below 7 Medium, below 9 High, else Critical), or undefined.
 */
export function severityName(x: unknown): string | undefined {
  if (typeof x === 'string') {
    const s = x.trim().toLowerCase();
    if (s === 'info' || s === 'informational') return 'Informational';
    if (s === 'low') return 'Low';
    if (s === 'medium' || s === 'moderate') return 'Medium';
    if (s === 'high') return 'High';
    if (s === 'critical') return 'Critical';
    if (s !== '' && /^\d+(\.\d+)?$/.test(s)) return severityName(Number(s));
    return undefined;
  }
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) return undefined;
  if (x < 1) return 'Informational';
  if (x < 4) return 'Low';
  if (x < 7) return 'Medium';
  if (x < 9) return 'High';
  return 'Critical';
}

/** The OCSF 1.1 classes the source parsers use (docs/SOURCES.md). */
export const OCSF = {
  BASE_EVENT: 0,
  SECURITY_FINDING: 2001,
  COMPLIANCE_FINDING: 2003,
  DETECTION_FINDING: 2004,
  AUTHENTICATION: 3002,
  NETWORK_ACTIVITY: 4001,
  HTTP_ACTIVITY: 4002,
  INVENTORY_INFO: 5001,
  API_ACTIVITY: 6003,
} as const;

const OCSF_NAMES: Record<number, string> = {
  0: 'Base Event',
  2001: 'Security Finding',
  2003: 'Compliance Finding',
  2004: 'Detection Finding',
  3002: 'Authentication',
  4001: 'Network Activity',
  4002: 'HTTP Activity',
  5001: 'Inventory Info',
  6003: 'API Activity',
};

/** `{ ocsfClass, ocsfClassName }` for one of the OCSF values, ready to spread into fields. */
export function ocsfClass(uid: number): Pick<CommonFields, 'ocsfClass' | 'ocsfClassName'> {
  return { ocsfClass: uid, ocsfClassName: OCSF_NAMES[uid] ?? 'Base Event' };
}

/**
 * `v` if it can be an envelope attribute value (types.ts ParsedRecord.attrs: printable ASCII
 * without spaces, at most 256 characters), else undefined — the caller drops that attribute.
 */
export function attrValue(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length === 0 || v.length > 256) return undefined;
  return /^[\x21-\x7e]+$/.test(v) ? v : undefined;
}

/** Copies the entries of `fields` whose value is defined (keeps records' fields small). */
export function compact<T extends object>(fields: T): T {
  const out = {} as Record<string, unknown>;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    if (k === 'extra' && typeof v === 'object' && v !== null) {
      const e = compact(v as Record<string, unknown>);
      if (Object.keys(e).length > 0) out[k] = e;
      continue;
    }
    out[k] = v;
  }
  return out as T;
}

/** The region of an ARN (`arn:aws:config:us-east-1:…` → "us-east-1"), or undefined. */
export function arnRegion(arn: unknown): string | undefined {
  if (typeof arn !== 'string' || arn.length > 2048) return undefined;
  const parts = arn.split(':', 5);
  return parts.length >= 5 && parts[0] === 'arn' && parts[3] ? parts[3] : undefined;
}

// ---------------------------------------------------------------------------------------
// JSON inputs. AWS delivers the same events in several framings: a file wrapping an array
// ({"Records":[…]}, {"configurationItems":[…]}), a bare array, NDJSON, or one value. Each
// helper below keeps every unit as the exact slice of the input it came from.


export { trimJson };

export type JsonInput =
  | { kind: 'empty' }
  /** The whole input is one JSON value; `bytes` is it without surrounding whitespace. */
  | { kind: 'value'; bytes: Buffer; value: unknown }
  /** Not one value, but its first line is a complete JSON value: read it as NDJSON. */
  | { kind: 'lines' }
  /** Not JSON: one error at position 1 (e.g. a delivered file cut short). */
  | { kind: 'bad'; error: RecordError };

/**
 * Reads the input once as a whole. A delivered file that is cut short (a truncated
 * `{"Records":[…`) is refused whole with one BAD_JSON error rather than partly stored;
 * NDJSON gets per-line errors instead (the caller uses `lineUnits`).
 */
export function readJsonInput(body: Buffer, what: string): JsonInput {
  const t = trimJson(body);
  if (t.length === 0) return { kind: 'empty' };
  try {
    return { kind: 'value', bytes: t, value: JSON.parse(t.toString('utf8')) as unknown };
  } catch (e) {
    if (firstLineIsValue(t)) return { kind: 'lines' };
    const why = e instanceof Error ? e.message.slice(0, 200) : 'syntax error';
    return {
      kind: 'bad',
      error: { position: 1, code: 'BAD_JSON', error: `The ${what} input is not valid JSON (${why}). If it is a delivered log file it may be cut short: send the whole file.` },
    };
  }
}

/** True when the input has several lines and the first non-blank one is a whole JSON value. */
function firstLineIsValue(t: Buffer): boolean {
  const nl = t.indexOf(0x0a);
  if (nl < 0) return false;
  const first = trimJson(t.subarray(0, nl));
  if (first.length === 0) return false;
  const a = first[0];
  const z = first[first.length - 1];
  if (!((a === 0x7b && z === 0x7d) || (a === 0x5b && z === 0x5d))) return false;
  try {
    JSON.parse(first.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

/** One unit of input: its exact bytes, where it was, and its parsed value. */
export interface JsonUnit {
  bytes: Buffer;
  position: number;
  value: unknown;
}

export interface Units {
  units: JsonUnit[];
  errors: RecordError[];
  ignored: number;
}

function unitTooLarge(position: number, size: number, limit: number): RecordError {
  return { position, code: 'TOO_LARGE', error: `Unit ${position} is ${size} bytes; at most ${limit} bytes can be read as one unit. Split the input.` };
}

/**
 * Checks one JSON unit like generic.ts checkJson (size, UTF-8, syntax), with a size limit of
 * the caller's choosing: containers that are split further (a CloudWatch Logs payload in an
 * array) may be larger than one record may be.
 */
export function checkUnit(bytes: Buffer, position: number, limit = MAX_RECORD_SIZE): { value: unknown } | { error: RecordError } {
  if (limit === MAX_RECORD_SIZE) return checkJson(bytes, position);
  if (bytes.length > limit) return { error: unitTooLarge(position, bytes.length, limit) };
  if (!isUtf8(bytes)) return { error: notUtf8(position) };
  try {
    return { value: JSON.parse(bytes.toString('utf8')) };
  } catch (e) {
    return { error: { position, code: 'BAD_JSON', error: `Record ${position} is not valid JSON: ${(e as Error).message.slice(0, 200)}.` } };
  }
}

/**
 * The elements of the JSON array at body[from, to) as units (position = element number),
 * each checked on its own (size, UTF-8, syntax), or null when the range is not one array.
 */
export function elementUnits(body: Buffer, from = 0, to = body.length, limit = MAX_RECORD_SIZE): Units | null {
  const els = arrayElements(body, from, to);
  if (!els) return null;
  const out: Units = { units: [], errors: [], ignored: 0 };
  els.forEach((bytes, i) => {
    const c = checkUnit(bytes, i + 1, limit);
    if ('error' in c) out.errors.push(c.error);
    else out.units.push({ bytes, position: i + 1, value: c.value });
  });
  return out;
}

/**
 * Like elementUnits, for an array the caller has already parsed whole (`values`): each
 * element's value is taken from the parse instead of parsing its bytes again. `utf8Checked`
 * says the whole input is known to be UTF-8, so elements need no check of their own.
 */
export function elementUnitsOf(body: Buffer, from: number, to: number, values: unknown[], utf8Checked: boolean, limit = MAX_RECORD_SIZE): Units | null {
  const els = arrayElements(body, from, to);
  if (!els || els.length !== values.length) return null;
  const out: Units = { units: [], errors: [], ignored: 0 };
  for (let i = 0; i < els.length; i++) {
    const bytes = els[i]!;
    if (bytes.length > limit) out.errors.push(limit === MAX_RECORD_SIZE ? tooLarge(i + 1, bytes.length) : unitTooLarge(i + 1, bytes.length, limit));
    else if (!utf8Checked && !isUtf8(bytes)) out.errors.push(notUtf8(i + 1));
    else out.units.push({ bytes, position: i + 1, value: values[i] });
  }
  return out;
}

/** The whole input as one unit at position 1 (already parsed by readJsonInput), size- and UTF-8-checked. */
export function wholeUnit(bytes: Buffer, value: unknown, limit = MAX_RECORD_SIZE): Units {
  if (bytes.length > limit) return { units: [], errors: [limit === MAX_RECORD_SIZE ? tooLarge(1, bytes.length) : unitTooLarge(1, bytes.length, limit)], ignored: 0 };
  if (!isUtf8(bytes)) return { units: [], errors: [notUtf8(1)], ignored: 0 };
  return { units: [{ bytes, position: 1, value }], errors: [], ignored: 0 };
}

/** NDJSON lines as units (position = line number); blank lines are ignored. */
export function lineUnits(body: Buffer, limit = MAX_RECORD_SIZE): Units {
  const out: Units = { units: [], errors: [], ignored: 0 };
  forEachLine(body, (line, n) => {
    if (isBlank(line)) {
      out.ignored++;
      return;
    }
    const c = checkUnit(line, n, limit);
    if ('error' in c) out.errors.push(c.error);
    else out.units.push({ bytes: trimJson(line), position: n, value: c.value });
  });
  return out;
}

/**
 * Turns units into a ParseResult. `each` adds the unit's records (or errors) to `out` and
 * returns false when the unit is not this parser's kind at all; such a unit becomes a
 * NOT_<KIND> error, and when no unit at all was of this kind the whole input is refused
 * with CustodyError BAD_REQUEST (the one thing a parser may throw).
 */
export function collectUnits(units: Units, each: (u: JsonUnit, out: ParseResult) => boolean, kind: { code: string; what: string; hint: string }): ParseResult {
  const out: ParseResult = { records: [], errors: [...units.errors], ignored: units.ignored };
  let foreign = 0;
  for (const u of units.units) {
    if (each(u, out)) continue;
    foreign++;
    out.errors.push({ position: u.position, code: kind.code, error: `Record ${u.position} is not ${kind.what}; ${kind.hint}` });
  }
  if (foreign > 0 && foreign === units.units.length) {
    throw new CustodyError('BAD_REQUEST', `The input is not ${kind.what}; ${kind.hint}`);
  }
  out.errors.sort((a, b) => a.position - b.position);
  return out;
}

/** Calls `f` and returns its fields, or {} if it throws (field extraction never sinks a record). */
export function safeFields(f: () => CommonFields): CommonFields {
  try {
    return compact(f());
  } catch {
    return {};
  }
}

/** A record whose region is set only when it is a usable string. */
export function makeRecord(bytes: Buffer, position: number, source: string, fields: CommonFields, extra: Pick<ParsedRecord, 'region' | 'dedupeKey' | 'attrs'> = {}): ParsedRecord {
  const r: ParsedRecord = { bytes, position, source, fields };
  if (extra.region !== undefined && extra.region !== '') r.region = extra.region;
  if (extra.dedupeKey !== undefined) r.dedupeKey = extra.dedupeKey;
  if (extra.attrs !== undefined && Object.keys(extra.attrs).length > 0) r.attrs = extra.attrs;
  return r;
}

/** `extra` for CommonFields from entries that may be undefined (those are left out), or undefined if none is left. */
export function extraTerms(terms: Record<string, string | undefined>): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of Object.entries(terms)) {
    if (v === undefined) continue;
    out[k] = v;
    n++;
  }
  return n > 0 ? out : undefined;
}
