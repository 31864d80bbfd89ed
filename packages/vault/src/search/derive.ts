/**
 * From a stored entry to an index row: the envelope says where the record came from and when it
 * was received; the source parser that made the record reads it again for the common fields
 * (docs/SOURCES.md); the record's words become its full text.
 *
 * The envelope `source` names the parser: `aws.cloudtrail` → cloudtrail, `app.syslog` → syslog,
 * and so on. A record is re-read on its own — one CloudTrail event, one flow line, one log
 * event — which each parser accepts as input. Records that came through a push protocol (Splunk
 * HEC, Elasticsearch _bulk, Firehose) get what a parser recognises in their JSON, as at ingest;
 * OTLP records their time, severity and service; the vault's own audit log its event type, who
 * and from where. Anything else (`json`, `text`, labels a writer chose) is full text only, at
 * its receive time. Deriving never throws: a record a parser cannot read is full text only.
 */
import { isUtf8 } from 'node:buffer';
import { isIP } from 'node:net';
import { detectSource, sourceParser, type CommonFields } from '../ingest/index.js';
import type { ParsedEntry } from '../log/index.js';
import type { IndexRow } from './store.js';

/** Envelope source → the parser that makes records with it (one record in → one record out). */
const PARSER_OF: Record<string, string> = {
  'aws.cloudtrail': 'cloudtrail',
  'aws.cloudtrail-digest': 'cloudtrail-digest',
  'aws.config': 'config',
  'aws.guardduty': 'guardduty',
  'aws.macie': 'macie',
  'aws.vpcflow': 'vpcflow',
  'app.apache': 'apache',
  'app.nginx-error': 'nginx-error',
  'app.syslog': 'syslog',
  // The syslog listener (ingest/protocols/syslog.ts) reads each message with syslogFields,
  // which the syslog parser applies to every line that starts like syslog.
  syslog: 'syslog',
  'aws.cwlogs-export': 'cwlogs-export',
};

/** Longest text indexed per record (records are at most 1 MiB). */
const MAX_TEXT = 1024 * 1024;
/** Longest value kept in a field column. */
const MAX_FIELD = 1024;

function isoMs(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : undefined;
}

/** The fields a one-record parse gives, or undefined. */
function parseOne(parser: string, body: Buffer, now?: number): CommonFields | undefined {
  try {
    const r = sourceParser(parser).parse(body, now === undefined ? {} : { now });
    return r.records[0]?.fields;
  } catch {
    return undefined;
  }
}

function trimmed(b: Buffer): Buffer {
  let s = 0;
  let e = b.length;
  while (s < e && (b[s] === 0x20 || b[s] === 0x09 || b[s] === 0x0a || b[s] === 0x0d)) s++;
  while (e > s && (b[e - 1] === 0x20 || b[e - 1] === 0x09 || b[e - 1] === 0x0a || b[e - 1] === 0x0d)) e--;
  return b.subarray(s, e);
}

/**
 * What a specific parser recognises in one JSON value (as ingest/protocols/common.ts
 * learnFromJson does at ingest): fields when exactly one record comes out and it is the value.
 */
function learnFromJson(bytes: Buffer): CommonFields | undefined {
  try {
    const src = detectSource(bytes, { contentType: 'application/json' });
    if (src === 'json' || src === 'text') return undefined;
    const r = sourceParser(src).parse(bytes, { contentType: 'application/json' });
    const one = r.records.length === 1 && r.errors.length === 0 ? r.records[0]! : undefined;
    return one && one.bytes.equals(trimmed(bytes)) ? one.fields : undefined;
  } catch {
    return undefined;
  }
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** Nanoseconds since the epoch (OTLP), as a string or number → ms. */
function nanosToMs(v: unknown): number | undefined {
  if (typeof v === 'string' && /^\d{1,20}$/.test(v)) {
    const ms = Number(BigInt(v) / 1_000_000n);
    return ms > 0 ? ms : undefined;
  }
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return Math.floor(v / 1e6);
  return undefined;
}

/** OTLP SeverityNumber ranges (logs data model): TRACE/DEBUG/INFO 1–12, WARN 13–16, ERROR 17–20, FATAL 21–24. */
function otlpSeverity(n: unknown): string | undefined {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 24) return undefined;
  return n <= 12 ? 'Informational' : n <= 16 ? 'Medium' : n <= 20 ? 'High' : 'Critical';
}

/** Fields of an OTLP record as the OTLP plugin stores it (one logRecord in its resource and scope). */
function otlpFields(v: unknown): CommonFields {
  const rl = obj(Array.isArray(obj(v)?.resourceLogs) ? (obj(v)!.resourceLogs as unknown[])[0] : undefined);
  const sl = obj(Array.isArray(rl?.scopeLogs) ? (rl!.scopeLogs as unknown[])[0] : undefined);
  const lr = obj(Array.isArray(sl?.logRecords) ? (sl!.logRecords as unknown[])[0] : undefined);
  const out: CommonFields = {};
  const ms = nanosToMs(lr?.timeUnixNano) ?? nanosToMs(lr?.observedTimeUnixNano);
  if (ms !== undefined) out.time = new Date(ms).toISOString();
  const sev = otlpSeverity(lr?.severityNumber);
  if (sev) out.severity = sev;
  const attrs = obj(rl?.resource)?.attributes;
  if (Array.isArray(attrs)) {
    for (const a of attrs) {
      const kv = obj(a);
      if (kv?.key === 'service.name') {
        const s = str(obj(kv.value)?.stringValue);
        if (s) out.actor = s.slice(0, 256);
      }
    }
  }
  return out;
}

/** Fields of an audit-log event (vault.ts audit): its type, who and from where. */
function auditFields(v: unknown): CommonFields {
  const o = obj(v);
  if (!o) return {};
  const principal = obj(o.principal);
  const address = str(o.address);
  return {
    time: str(o.time),
    action: str(o.type),
    actor: str(principal?.name) ?? str(o.by) ?? str(o.via),
    srcIp: address && isIP(address) ? address : undefined,
    outcome: typeof o.type === 'string' && /(\.refused|\.failed|tamper\.attempt)$/.test(o.type) ? 'failure' : undefined,
  };
}

/** Fields of a Splunk HEC event object: what a parser sees in `event`, its `time` and `host`. */
function hecFields(v: Record<string, unknown>): CommonFields {
  const ev = obj(v.event);
  const f: CommonFields = { ...(ev ? learnFromJson(Buffer.from(JSON.stringify(ev))) ?? {} : {}) };
  const t = typeof v.time === 'number' ? v.time : typeof v.time === 'string' && /^\d+(\.\d+)?$/.test(v.time) ? Number(v.time) : NaN;
  if (f.time === undefined && Number.isFinite(t) && t > 0) f.time = new Date(t * 1000).toISOString();
  if (f.actor === undefined && typeof v.host === 'string') f.actor = v.host.slice(0, 256);
  return f;
}

function fieldsOf(source: string, record: Buffer, value: unknown, attrs: Record<string, string> | undefined, received?: number): CommonFields | undefined {
  const parser = PARSER_OF[source];
  // Year-less syslog times are read relative to when the vault received the record.
  if (parser) return parseOne(parser, record, received);
  if (source === 'aws.cwlogs') {
    // A log event {id, timestamp, message} alone; its group, stream and owner are envelope attrs.
    const payload = Buffer.concat([
      Buffer.from(JSON.stringify({ messageType: 'DATA_MESSAGE', owner: attrs?.owner, logGroup: attrs?.logGroup, logStream: attrs?.logStream }).slice(0, -1) + ',"logEvents":['),
      record,
      Buffer.from(']}'),
    ]);
    return parseOne('cwlogs', payload);
  }
  if (source === 'custody.audit') return auditFields(value);
  if (source === 'otlp' || source.startsWith('otlp.')) return otlpFields(value);
  if (source === 'hec' || source.startsWith('hec.')) {
    const o = obj(value);
    if (o && Object.hasOwn(o, 'event')) return hecFields(o);
    return value !== undefined ? learnFromJson(record) : undefined;
  }
  if (source === 'es' || source.startsWith('es.') || source === 'firehose') return value !== undefined ? learnFromJson(record) : undefined;
  return undefined;
}

/**
 * The words of a JSON value: its strings and numbers, not its keys, each distinct value once
 * (CloudTrail repeats account ids and ARNs; a second copy finds nothing the first does not).
 */
function jsonWords(v: unknown, out: Set<string>, budget: { left: number }): void {
  if (budget.left <= 0) return;
  if (typeof v === 'string' || typeof v === 'number') {
    const s = typeof v === 'string' ? v : String(v);
    if (s.length === 0 || out.has(s)) return;
    out.add(s);
    budget.left -= s.length + 1;
  } else if (Array.isArray(v)) {
    for (const x of v) jsonWords(x, out, budget);
  } else if (typeof v === 'object' && v !== null) {
    for (const k in v) jsonWords((v as Record<string, unknown>)[k], out, budget);
  }
}

function clip(s: string | undefined): string | undefined {
  if (s === undefined || s === '') return undefined;
  return s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s;
}

/** The parsed JSON of a record when it is a JSON object or array, else undefined. */
function jsonValue(record: Buffer): unknown {
  let i = 0;
  while (i < record.length && (record[i] === 0x20 || record[i] === 0x09 || record[i] === 0x0a || record[i] === 0x0d)) i++;
  if (record[i] !== 0x7b && record[i] !== 0x5b) return undefined;
  try {
    return JSON.parse(record.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The index row of one entry. `record` is the record itself (the blob, for a blob entry). Never throws. */
export function deriveRow(log: string, index: number, env: ParsedEntry, record: Buffer): IndexRow {
  const received = isoMs(env.received) ?? 0;
  const value = jsonValue(record);
  let fields: CommonFields | undefined;
  try {
    fields = fieldsOf(env.source, record, value, env.attrs, received > 0 ? received : undefined);
  } catch {
    fields = undefined;
  }
  let text: string;
  if (value !== undefined) {
    const words = new Set<string>();
    jsonWords(value, words, { left: MAX_TEXT });
    text = [...words].join(' ');
  } else {
    text = isUtf8(record) ? record.toString('utf8') : record.toString('latin1');
    if (text.length > MAX_TEXT) text = text.slice(0, MAX_TEXT);
  }
  const f = fields ?? {};
  return {
    log,
    index,
    time: isoMs(f.time) ?? received,
    received,
    source: env.source,
    region: clip(f.region) ?? env.region,
    account: clip(f.account),
    actor: clip(f.actor),
    action: clip(f.action),
    outcome: clip(f.outcome),
    srcIp: clip(f.srcIp),
    dstIp: clip(f.dstIp),
    severity: clip(f.severity),
    resource: clip(f.resource),
    ocsf: typeof f.ocsfClass === 'number' && Number.isInteger(f.ocsfClass) ? f.ocsfClass : undefined,
    text,
  };
}
