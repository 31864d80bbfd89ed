/**
 * Turns a request body into records, byte-exact: NDJSON (one JSON value per line; the last
 * line may lack its "\n"; a trailing "\r" is part of the line ending) or a JSON array (each
 * element's exact bytes) or a single JSON object. gzip/deflate bodies are inflated with a
 * hard cap, so a compression bomb costs at most the cap. Any bad line refuses the whole
 * batch (nothing is appended) and the error lists which lines and why.
 */
import { gunzip, inflate } from 'node:zlib';
import { promisify } from 'node:util';
import { isUtf8 } from 'node:buffer';
import { CustodyError } from '../errors.js';
import { MAX_RECORD_SIZE } from '../log/entry.js';

export const MAX_BODY_BYTES = 16 * 1024 * 1024;
const MAX_REPORTED = 50;
const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

export type BatchFormat = 'ndjson' | 'json';

export function formatOf(contentType: string | undefined): BatchFormat {
  const mime = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (mime === 'application/x-ndjson' || mime === 'application/jsonl' || mime === 'application/json-seq' || mime === 'application/x-jsonlines') return 'ndjson';
  if (mime === 'application/json') return 'json';
  throw new CustodyError('UNSUPPORTED_MEDIA_TYPE', `Content-Type ${JSON.stringify(mime || '(none)')} is not accepted: send application/x-ndjson (one JSON record per line) or application/json (an array of records).`);
}

export async function decodeBody(body: Buffer, contentEncoding: string | undefined, maxBytes = MAX_BODY_BYTES): Promise<Buffer> {
  const enc = (contentEncoding ?? 'identity').trim().toLowerCase();
  if (enc === 'identity' || enc === '') return body;
  const opts = { maxOutputLength: maxBytes };
  try {
    if (enc === 'gzip' || enc === 'x-gzip') return await gunzipAsync(body, opts);
    if (enc === 'deflate') return await inflateAsync(body, opts);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new CustodyError('BODY_TOO_LARGE', `The body inflates to more than ${maxBytes} bytes; send smaller batches.`);
    }
    throw new CustodyError('BAD_ENCODING', `The body is not valid ${enc} data (${(e as Error).message}); check the Content-Encoding header.`);
  }
  throw new CustodyError('BAD_ENCODING', `Content-Encoding ${JSON.stringify(enc)} is not supported: send gzip, deflate or an uncompressed body.`);
}

export interface LineError {
  line: number;
  error: string;
}

function refuse(errors: LineError[], total: number): never {
  throw new CustodyError(
    'BAD_JSON_LINES',
    `${total} ${total === 1 ? 'record is' : 'records are'} not valid JSON; nothing was appended. Fix the listed lines and send the batch again.`,
    { lines: errors.slice(0, MAX_REPORTED), badLines: total },
  );
}

function checkSize(rec: Buffer, n: number): void {
  if (rec.length > MAX_RECORD_SIZE) {
    throw new CustodyError('RECORD_TOO_LARGE', `Record ${n} is ${rec.length} bytes; one record may be at most ${MAX_RECORD_SIZE} bytes (1 MiB).`, { line: n });
  }
}

export function splitNdjson(body: Buffer): Buffer[] {
  const records: Buffer[] = [];
  const errors: LineError[] = [];
  let bad = 0;
  let start = 0;
  let lineNo = 0;
  while (start < body.length) {
    let end = body.indexOf(0x0a, start);
    const next = end < 0 ? body.length : end + 1;
    if (end < 0) end = body.length;
    lineNo++;
    let stop = end;
    if (stop > start && body[stop - 1] === 0x0d) stop--;
    const line = body.subarray(start, stop);
    start = next;
    if (isBlank(line)) continue;
    checkSize(line, lineNo);
    try {
      JSON.parse(line.toString('utf8'));
      records.push(line);
    } catch (e) {
      bad++;
      if (errors.length < MAX_REPORTED) errors.push({ line: lineNo, error: (e as Error).message });
    }
  }
  if (bad > 0) refuse(errors, bad);
  return records;
}

function isBlank(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return true;
}

/** The exact bytes of each element of a (validated) top-level JSON array. */
function arrayElements(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let elemStart = -1;
  const trimEnd = (end: number): number => {
    while (end > elemStart && (body[end - 1] === 0x20 || body[end - 1] === 0x0a || body[end - 1] === 0x0d || body[end - 1] === 0x09)) end--;
    return end;
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    if (depth === 1 && elemStart < 0 && c !== 0x5d && c !== 0x2c) elemStart = i;
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) {
      depth--;
      if (depth === 0 && elemStart >= 0) {
        out.push(body.subarray(elemStart, trimEnd(i)));
        elemStart = -1;
      }
    } else if (c === 0x2c && depth === 1) {
      out.push(body.subarray(elemStart, trimEnd(i)));
      elemStart = -1;
    }
  }
  return out;
}

export function splitJson(body: Buffer): Buffer[] {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (e) {
    refuse([{ line: 1, error: (e as Error).message }], 1);
  }
  if (!Array.isArray(value)) {
    let s = 0;
    let e = body.length;
    while (s < e && isBlank(body.subarray(s, s + 1))) s++;
    while (e > s && (isBlank(body.subarray(e - 1, e)) || body[e - 1] === 0x0a)) e--;
    const rec = body.subarray(s, e);
    checkSize(rec, 1);
    return [rec];
  }
  const recs = arrayElements(body);
  if (recs.length !== value.length) throw new CustodyError('INTERNAL', 'JSON array split disagrees with the parser.');
  recs.forEach((r, i) => checkSize(r, i + 1));
  return recs;
}

/** Body → records, or a CustodyError that says what to fix. */
export async function parseBatch(raw: Buffer, contentType: string | undefined, contentEncoding: string | undefined): Promise<Buffer[]> {
  const format = formatOf(contentType);
  const body = await decodeBody(raw, contentEncoding);
  if (body.length > MAX_BODY_BYTES) throw new CustodyError('BODY_TOO_LARGE', `The body is ${body.length} bytes; the limit is ${MAX_BODY_BYTES} bytes. Send smaller batches.`);
  if (!isUtf8(body)) throw new CustodyError('BAD_ENCODING', 'The body is not valid UTF-8: records must be UTF-8 JSON.');
  const records = format === 'ndjson' ? splitNdjson(body) : splitJson(body);
  if (records.length === 0) throw new CustodyError('EMPTY_BATCH', 'The body holds no records: send one JSON record per line.');
  return records;
}
