/**
 * CloudWatch Logs subscription data: the decoded payload
 * `{"messageType","owner","logGroup","logStream","subscriptionFilters","logEvents":[{id,timestamp,message}]}`
 * (one record per log event: the exact bytes of that logEvents element), the Lambda invocation
 * event `{"awslogs":{"data":"<base64 of gzip payload>"}}`, and JSON arrays or NDJSON of
 * either. Firehose deliveries are split by the Firehose protocol plugin, which hands each
 * record's gunzipped bytes to `parseCwLogsPayload`.
 *
 * From shared/reference/aws-sources.md: CONTROL_MESSAGE is a probe — acknowledged (counted as
 * ignored), never stored. Retries of a Firehose or Lambda delivery repeat the same log event
 * ids, so `aws.cwlogs:<logGroup>:<logStream>:<id>` makes them idempotent.
 */
import { isUtf8 } from 'node:buffer';
import { gunzipSync } from 'node:zlib';
import { MAX_RECORD_SIZE } from '../../log/entry.js';
import type { CommonFields, ParseContext, ParseResult, RecordError, SourceParser } from '../types.js';
import { arrayElements, notUtf8, topLevelValueRange } from './generic.js';
import {
  OCSF,
  attrValue,
  collectUnits,
  compact,
  elementUnits,
  ipOrUndefined,
  isoTime,
  lineUnits,
  makeRecord,
  obj,
  ocsfClass,
  readJsonInput,
  safeFields,
  str,
  trimJson,
  truncate,
  wholeUnit,
  extraTerms,
  type JsonUnit,
} from './aws-common.js';
import { cloudtrailFields, isCloudTrailEvent } from './cloudtrail.js';

export const CWLOGS_SOURCE = 'aws.cwlogs';

/** One decoded payload may be at most this large (a gzip bomb stops here). */
export const MAX_PAYLOAD = 64 * 1024 * 1024;
/** All payloads decoded from one input together. */
const MAX_DECODED_TOTAL = 256 * 1024 * 1024;

/** VPC flow log v2 default format: 14 space-separated fields (aws-sources.md "VPC Flow Logs"). */
const FLOW_V2 = /^2 (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\d+|-) (\d+|-) (\S+) (\S+)$/;

function flowFields(message: string, logGroup: string | undefined, base: CommonFields): CommonFields | null {
  if (message.length > 512) return null;
  const m = FLOW_V2.exec(message.trim());
  if (!m) return null;
  const [, account, eni, src, dst, , dstPort, protocol, , , start, , action, status] = m;
  // A flow line: from a flow-log group, or at least naming a network interface.
  if (!/flow/i.test(logGroup ?? '') && !eni!.startsWith('eni-')) return null;
  return {
    ...base,
    time: isoTime(start) ?? base.time,
    account: account !== '-' ? account : base.account,
    srcIp: ipOrUndefined(src),
    dstIp: ipOrUndefined(dst),
    outcome: action === 'ACCEPT' || action === 'REJECT' ? action : undefined,
    ...ocsfClass(OCSF.NETWORK_ACTIVITY),
    extra: extraTerms({
      ...base.extra,
      interfaceId: eni !== '-' ? truncate(eni, 64) : undefined,
      dstPort: dstPort !== '-' ? truncate(dstPort, 8) : undefined,
      protocol: protocol !== '-' ? truncate(protocol, 8) : undefined,
      logStatus: truncate(status, 16),
    }),
  };
}

/** The fields of one log event; a CloudTrail event or a VPC flow line in `message` adds its own. */
export function cwlogsFields(payload: Record<string, unknown>, logEvent: Record<string, unknown>): CommonFields {
  const logGroup = str(payload.logGroup);
  const base: CommonFields = {
    time: isoTime(logEvent.timestamp),
    account: str(payload.owner),
    resource: truncate(logGroup, 512),
    ...ocsfClass(OCSF.BASE_EVENT),
    extra: extraTerms({ logStream: truncate(str(payload.logStream), 512) }),
  };
  const message = logEvent.message;
  if (typeof message !== 'string') return base;
  const t = message.trimStart();
  if (t.startsWith('{') && t.includes('"eventVersion"') && t.includes('"eventSource"')) {
    let ev: unknown;
    try {
      ev = JSON.parse(t);
    } catch {
      ev = undefined;
    }
    if (isCloudTrailEvent(ev)) {
      const ct = compact(cloudtrailFields(ev));
      return { ...base, ...ct, resource: ct.resource ?? base.resource, extra: { ...base.extra, ...ct.extra } };
    }
  }
  return flowFields(message, logGroup, base) ?? base;
}

interface Budget {
  left: number;
}

function decodeError(position: number, code: string, error: string): RecordError {
  return { position, code, error };
}

/** base64 → gunzip, never throwing: the payload bytes, or the RecordError saying why not. */
function decodeAwslogsData(data: string, position: number, budget: Budget): Buffer | RecordError {
  if (data.length === 0 || data.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) {
    return decodeError(position, 'BAD_BASE64', `Record ${position}: awslogs.data is not valid base64; send the event as CloudWatch Logs delivered it.`);
  }
  const raw = Buffer.from(data, 'base64');
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) {
    // CloudWatch Logs always gzips; an uncompressed payload is accepted as it is.
    const t = trimJson(raw);
    if (t[0] === 0x7b) return chargeBudget(t, position, budget);
    return decodeError(position, 'BAD_GZIP', `Record ${position}: awslogs.data is not gzip data; it must be base64 of the gzip-compressed subscription payload.`);
  }
  const max = Math.min(MAX_PAYLOAD, budget.left);
  try {
    return chargeBudget(gunzipSync(raw, { maxOutputLength: Math.max(1, max) }), position, budget);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      return decodeError(position, 'TOO_LARGE', `Record ${position}: awslogs.data decompresses to more than ${max} bytes; a CloudWatch Logs payload is never that large. It was not read.`);
    }
    return decodeError(position, 'BAD_GZIP', `Record ${position}: awslogs.data is not complete gzip data (${(e as Error).message.slice(0, 120)}); send the event as CloudWatch Logs delivered it.`);
  }
}

function chargeBudget(b: Buffer, position: number, budget: Budget): Buffer | RecordError {
  if (b.length > budget.left) return decodeError(position, 'TOO_LARGE', `Record ${position}: the input decodes to more than ${MAX_DECODED_TOTAL} bytes in all; send it in smaller parts.`);
  budget.left -= b.length;
  return b;
}

/**
 * Adds the records of one decoded payload to `out`. `position` is the caller's unit for every
 * record and error, or null to number them by log event (a payload given on its own).
 * Returns false when the JSON is not a subscription payload at all.
 */
function addPayload(json: Buffer, value: unknown, position: number | null, out: ParseResult): boolean {
  const p = obj(value);
  if (!p || typeof p.messageType !== 'string') return false;
  const at = (i: number) => position ?? i;
  if (p.messageType === 'CONTROL_MESSAGE') {
    out.ignored++;
    return true;
  }
  if (p.messageType !== 'DATA_MESSAGE' || !Array.isArray(p.logEvents)) {
    out.errors.push(decodeError(at(1), 'NOT_CWLOGS', `Record ${at(1)} has messageType ${JSON.stringify(p.messageType.slice(0, 40))} without a logEvents array; a CloudWatch Logs subscription payload is DATA_MESSAGE or CONTROL_MESSAGE.`));
    return true;
  }
  const range = topLevelValueRange(json, 'logEvents');
  const events = range ? arrayElements(json, range.start, range.end) : null;
  if (!events) {
    out.errors.push(decodeError(at(1), 'BAD_JSON', `Record ${at(1)}: its logEvents array could not be split into log events; send the payload as CloudWatch Logs delivered it.`));
    return true;
  }
  const logGroup = str(p.logGroup);
  const logStream = str(p.logStream);
  const attrs: Record<string, string> = {};
  for (const k of ['logGroup', 'logStream', 'owner'] as const) {
    const v = attrValue(p[k]);
    if (v !== undefined) attrs[k] = v;
  }
  events.forEach((bytes, i) => {
    const pos = at(i + 1);
    const which = position === null ? `Log event ${i + 1}` : `Record ${pos}, log event ${i + 1},`;
    if (bytes.length > MAX_RECORD_SIZE) {
      out.errors.push(decodeError(pos, 'RECORD_TOO_LARGE', `${which} is ${bytes.length} bytes; one record may be at most ${MAX_RECORD_SIZE} bytes (1 MiB).`));
      return;
    }
    let ev: Record<string, unknown> | undefined;
    try {
      ev = obj(JSON.parse(bytes.toString('utf8')));
    } catch {
      ev = undefined;
    }
    if (!ev) {
      out.errors.push(decodeError(pos, 'BAD_RECORD', `${which} is not a JSON object {id, timestamp, message}.`));
      return;
    }
    const logEvent = ev;
    const fields = safeFields(() => cwlogsFields(p, logEvent));
    const id = str(logEvent.id);
    out.records.push(makeRecord(bytes, pos, CWLOGS_SOURCE, fields, {
      region: fields.region,
      dedupeKey: logGroup !== undefined && logStream !== undefined && id !== undefined ? `aws.cwlogs:${logGroup}:${logStream}:${id}` : undefined,
      attrs: { ...attrs },
    }));
  });
  return true;
}

/**
 * One decoded (gunzipped) CloudWatch Logs subscription payload → one record per logEvent
 * (its exact JSON bytes), attrs logGroup/logStream/owner; CONTROL_MESSAGE counts as ignored.
 * `position` is the unit the caller reports in (e.g. the Firehose record number). Never throws.
 */
export function parseCwLogsPayload(json: Buffer, position: number): ParseResult {
  const out: ParseResult = { records: [], errors: [], ignored: 0 };
  const t = trimJson(json);
  if (!isUtf8(t)) {
    out.errors.push(notUtf8(position));
    return out;
  }
  let value: unknown;
  try {
    value = JSON.parse(t.toString('utf8'));
  } catch (e) {
    out.errors.push(decodeError(position, 'BAD_JSON', `Record ${position} does not hold valid JSON (${(e as Error).message.slice(0, 120)}); it should be a gzip-compressed CloudWatch Logs subscription payload.`));
    return out;
  }
  if (!addPayload(t, value, position, out)) {
    out.errors.push(decodeError(position, 'NOT_CWLOGS', `Record ${position} is not a CloudWatch Logs subscription payload (messageType, logEvents); deliver CloudWatch Logs subscription data through this stream.`));
  }
  return out;
}

function addUnit(u: JsonUnit, out: ParseResult, budget: Budget, whole: boolean): boolean {
  const o = obj(u.value);
  if (!o) return false;
  const awslogs = obj(o.awslogs);
  if (awslogs && typeof awslogs.data === 'string') {
    const payload = decodeAwslogsData(awslogs.data, u.position, budget);
    if (!Buffer.isBuffer(payload)) {
      out.errors.push(payload);
      return true;
    }
    const got = parseCwLogsPayload(payload, u.position);
    out.records.push(...got.records);
    out.errors.push(...got.errors);
    out.ignored += got.ignored;
    return true;
  }
  if (typeof o.messageType === 'string') return addPayload(u.bytes, o, whole ? null : u.position, out);
  return false;
}

const KIND = {
  code: 'NOT_CWLOGS',
  what: 'CloudWatch Logs subscription data',
  hint: 'send decoded subscription payloads ({"messageType","logEvents":[…]}) or Lambda events ({"awslogs":{"data":…}}); choose another source for other data.',
};

function parseCwLogs(body: Buffer, _ctx: ParseContext): ParseResult {
  const budget: Budget = { left: MAX_DECODED_TOTAL };
  const input = readJsonInput(body, 'CloudWatch Logs');
  if (input.kind === 'empty') return { records: [], errors: [], ignored: 0 };
  if (input.kind === 'bad') return { records: [], errors: [input.error], ignored: 0 };
  // Containers (a payload, an awslogs event) may be larger than one record; each log event is checked.
  if (input.kind === 'lines') return collectUnits(lineUnits(body, MAX_PAYLOAD), (u, out) => addUnit(u, out, budget, false), KIND);
  const { bytes, value } = input;
  if (Array.isArray(value)) {
    const units = elementUnits(bytes, 0, bytes.length, MAX_PAYLOAD) ?? { units: [], errors: [{ position: 1, code: 'BAD_JSON', error: 'The array could not be split into elements.' }], ignored: 0 };
    return collectUnits(units, (u, out) => addUnit(u, out, budget, false), KIND);
  }
  return collectUnits(wholeUnit(bytes, value, Number.MAX_SAFE_INTEGER), (u, out) => addUnit(u, out, budget, true), KIND);
}

export const cwlogsParser: SourceParser = {
  name: 'cwlogs',
  description: 'CloudWatch Logs subscription data: decoded payloads or Lambda {"awslogs":{"data"}} events, one record per log event',
  detect(head: Buffer, _ctx: ParseContext): number {
    const text = head.toString('utf8');
    if (/"messageType"\s*:\s*"(DATA|CONTROL)_MESSAGE"/.test(text)) return 90;
    if (/"messageType"\s*:/.test(text) && /"logEvents"\s*:\s*\[/.test(text)) return 90;
    if (/"awslogs"\s*:\s*\{\s*"data"\s*:/.test(text)) return 90;
    return 0;
  },
  parse: parseCwLogs,
};
