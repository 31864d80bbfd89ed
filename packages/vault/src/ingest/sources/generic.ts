/**
 * Generic inputs: JSON (NDJSON lines, a JSON array, or one JSON value) and text lines. Each
 * record is the exact bytes of its line or array element; a bad one is reported by its line
 * (or element) number and the others are kept.
 */
import { isUtf8 } from 'node:buffer';
import { CustodyError } from '../../errors.js';
import { MAX_RECORD_SIZE } from '../../log/entry.js';
import type { ParseResult, ParsedRecord, RecordError, SourceParser, ParseContext, CommonFields } from '../types.js';

const WS = new Set([0x20, 0x09, 0x0d, 0x0a]);

export function isBlank(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (!WS.has(b[i]!)) return false;
  return true;
}

/**
 * Calls `each(line, lineNo)` for every line; the line excludes "\n" and a "\r" before it.
 * The last line may lack its "\n".
 */
export function forEachLine(body: Buffer, each: (line: Buffer, lineNo: number) => void): void {
  let start = 0;
  let lineNo = 0;
  // A UTF-8 byte order mark is not part of the first record.
  if (body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) start = 3;
  while (start < body.length) {
    let end = body.indexOf(0x0a, start);
    const next = end < 0 ? body.length : end + 1;
    if (end < 0) end = body.length;
    lineNo++;
    let stop = end;
    if (stop > start && body[stop - 1] === 0x0d) stop--;
    each(body.subarray(start, stop), lineNo);
    start = next;
  }
}

export function tooLarge(position: number, size: number): RecordError {
  return { position, code: 'RECORD_TOO_LARGE', error: `Record ${position} is ${size} bytes; one record may be at most ${MAX_RECORD_SIZE} bytes (1 MiB).` };
}

export function notUtf8(position: number): RecordError {
  return { position, code: 'BAD_ENCODING', error: `Record ${position} is not valid UTF-8; send UTF-8 text.` };
}

/** Checks one JSON unit: size, UTF-8, syntax. Returns the parsed value or an error. */
export function checkJson(bytes: Buffer, position: number): { value: unknown } | { error: RecordError } {
  if (bytes.length > MAX_RECORD_SIZE) return { error: tooLarge(position, bytes.length) };
  if (!isUtf8(bytes)) return { error: notUtf8(position) };
  try {
    return { value: JSON.parse(bytes.toString('utf8')) };
  } catch (e) {
    return { error: { position, code: 'BAD_JSON', error: `Record ${position} is not valid JSON: ${(e as Error).message}.` } };
  }
}

/**
 * The exact bytes of each element of a top-level JSON array, or null when the text is not
 * one well-formed array (the caller has validated it with JSON.parse).
 */
export function arrayElements(body: Buffer, from = 0, to = body.length): Buffer[] | null {
  const out: Buffer[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let elemStart = -1;
  let lastNonWs = -1;
  let i = from;
  while (i < to && WS.has(body[i]!)) i++;
  if (body[i] !== 0x5b) return null;
  for (; i < to; i++) {
    const c = body[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
      lastNonWs = i;
      continue;
    }
    if (WS.has(c)) continue;
    if (depth === 1 && elemStart < 0 && c !== 0x5d && c !== 0x2c) elemStart = i;
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) {
      depth--;
      if (depth === 0) {
        if (elemStart >= 0) out.push(body.subarray(elemStart, lastNonWs + 1));
        return out;
      }
    } else if (c === 0x2c && depth === 1) {
      out.push(body.subarray(elemStart, lastNonWs + 1));
      elemStart = -1;
      continue;
    }
    lastNonWs = i;
  }
  return null;
}

/**
 * Finds the value of a top-level key of a JSON object (e.g. "Records") and returns its byte
 * range, without parsing the values before it. -1 when absent.
 */
export function topLevelValueRange(body: Buffer, key: string): { start: number; end: number } | null {
  const start = topLevelValueStart(body, key);
  if (start < 0) return null;
  const end = valueEnd(body, start);
  return end < 0 ? null : { start, end };
}

/**
 * Where the value of a top-level key of a JSON object starts, or -1 — without scanning the
 * value itself (arrayElements finds where an array ends while splitting it).
 */
export function topLevelValueStart(body: Buffer, key: string): number {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let strStart = -1;
  const want = JSON.stringify(key);
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) {
        inString = false;
        if (depth === 1 && body.toString('utf8', strStart, i + 1) === want) {
          let j = i + 1;
          while (j < body.length && WS.has(body[j]!)) j++;
          if (body[j] !== 0x3a) continue;
          j++;
          while (j < body.length && WS.has(body[j]!)) j++;
          return j < body.length ? j : -1;
        }
      }
      continue;
    }
    if (c === 0x22) {
      inString = true;
      strStart = i;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return -1;
}

/** The end (exclusive) of the JSON value starting at `i`, or -1. */
function valueEnd(body: Buffer, i: number): number {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let j = i; j < body.length; j++) {
    const c = body[j]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) {
        inString = false;
        if (depth === 0) return j + 1;
      }
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) {
      // A scalar that is the last member ends at its parent's closing bracket.
      if (depth === 0) return j;
      depth--;
      if (depth === 0) return j + 1;
    } else if (depth === 0 && (c === 0x2c || WS.has(c))) return j;
  }
  return depth === 0 && !inString ? body.length : -1;
}

function record(bytes: Buffer, position: number, source: string, fields: CommonFields = {}): ParsedRecord {
  return { bytes, position, source, fields };
}

/** NDJSON: one JSON value per line. */
export function parseNdjson(body: Buffer, source: string, fieldsOf?: (v: unknown) => CommonFields): ParseResult {
  const records: ParsedRecord[] = [];
  const errors: RecordError[] = [];
  let ignored = 0;
  forEachLine(body, (line, n) => {
    if (isBlank(line)) {
      ignored++;
      return;
    }
    const c = checkJson(line, n);
    if ('error' in c) errors.push(c.error);
    else records.push(record(line, n, source, fieldsOf ? safeFields(fieldsOf, c.value) : {}));
  });
  return { records, errors, ignored };
}

function safeFields(f: (v: unknown) => CommonFields, v: unknown): CommonFields {
  try {
    return f(v);
  } catch {
    return {};
  }
}

/** The input without a UTF-8 byte order mark and surrounding whitespace (a subarray, not a copy). */
export function trimJson(body: Buffer): Buffer {
  let s = 0;
  let e = body.length;
  if (e >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) s = 3;
  while (s < e && WS.has(body[s]!)) s++;
  while (e > s && WS.has(body[e - 1]!)) e--;
  return body.subarray(s, e);
}

/**
 * JSON body: an array → one record per element; one value → one record; several lines of
 * JSON → NDJSON. The whole body is parsed once; if that fails, it is read as NDJSON so each
 * bad line is named and the good ones kept.
 */
export function parseJsonBody(body: Buffer, source: string, fieldsOf?: (v: unknown) => CommonFields): ParseResult {
  const t = trimJson(body);
  if (t.length === 0) return { records: [], errors: [], ignored: 0 };
  if (t[0] === 0x5b && isUtf8(t)) {
    let value: unknown;
    try {
      value = JSON.parse(t.toString('utf8'));
    } catch {
      value = undefined;
    }
    if (Array.isArray(value)) {
      const els = arrayElements(t);
      if (!els || els.length !== value.length) throw new CustodyError('INTERNAL', 'JSON array split disagrees with the parser.');
      const records: ParsedRecord[] = [];
      const errors: RecordError[] = [];
      els.forEach((el, i) => {
        if (el.length > MAX_RECORD_SIZE) errors.push(tooLarge(i + 1, el.length));
        else records.push(record(el, i + 1, source, fieldsOf ? safeFields(fieldsOf, value[i]) : {}));
      });
      return { records, errors, ignored: 0 };
    }
  }
  // One value spread over several lines (pretty-printed) is one record.
  if (t[0] === 0x7b && t.indexOf(0x0a) >= 0) {
    const c = checkJson(t, 1);
    if (!('error' in c)) return { records: [record(t, 1, source, fieldsOf ? safeFields(fieldsOf, c.value) : {})], errors: [], ignored: 0 };
  }
  return parseNdjson(body, source, fieldsOf);
}

export const jsonParser: SourceParser = {
  name: 'json',
  description: 'JSON records: NDJSON (one per line), a JSON array, or a single JSON value',
  parse(body: Buffer, _ctx: ParseContext): ParseResult {
    return parseJsonBody(body, 'json');
  },
};

/** Text: one record per line (without its line ending); blank lines are skipped. */
export function parseTextLines(body: Buffer, source: string, fieldsOf?: (line: string) => CommonFields): ParseResult {
  const records: ParsedRecord[] = [];
  const errors: RecordError[] = [];
  let ignored = 0;
  forEachLine(body, (line, n) => {
    if (isBlank(line)) {
      ignored++;
      return;
    }
    if (line.length > MAX_RECORD_SIZE) errors.push(tooLarge(n, line.length));
    else if (!isUtf8(line)) errors.push(notUtf8(n));
    else records.push(record(line, n, source, fieldsOf ? safeFields((l) => fieldsOf(l as string), line.toString('utf8')) : {}));
  });
  return { records, errors, ignored };
}

export const textParser: SourceParser = {
  name: 'text',
  description: 'Text lines (application and host logs): one record per line',
  parse(body: Buffer, _ctx: ParseContext): ParseResult {
    return parseTextLines(body, 'text');
  },
};
