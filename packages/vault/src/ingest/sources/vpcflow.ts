/**
 * VPC Flow Logs as delivered to S3 (or exported): text, one flow record per line, fields
 * separated by spaces, `-` meaning "not applicable" (aws-sources.md, "VPC Flow Logs").
 *
 * The columns come from a header line naming the fields (every S3 object starts with one,
 * and custom formats put v3–v5 fields in any order), so records are read by name, never by
 * position. A later header line (concatenated objects) redefines the columns from there on.
 * Without a header, a line is read as the v2 default format only when it has 14 fields and
 * starts with version "2"; anything else is a BAD_FLOW_RECORD for that line alone.
 *
 * Records are the data lines, byte-exact, without the line ending; header lines and blank
 * lines are counted as ignored. Flow records carry no dedupe key: two identical lines are two
 * real aggregation windows (same 5-tuple, same counters) and both must be kept.
 */
import { isUtf8 } from 'node:buffer';
import { CustodyError } from '../../errors.js';
import { MAX_RECORD_SIZE } from '../../log/entry.js';
import type { CommonFields, ParseContext, ParseResult, ParsedRecord, RecordError, SourceParser } from '../types.js';
import { forEachLine, isBlank, notUtf8, tooLarge } from './generic.js';
import { compact, ipOrUndefined, isoTime, ocsfClass, OCSF } from './aws-common.js';
import { headLines } from './applogs.js';

/** v2 default format, in order (aws-sources.md). */
export const V2_FIELDS = ['version', 'account-id', 'interface-id', 'srcaddr', 'dstaddr', 'srcport', 'dstport', 'protocol', 'packets', 'bytes', 'start', 'end', 'action', 'log-status'] as const;

/**
 * Every field name a flow log format may use: v2 default, v3 (vpc-id … pkt-dstaddr), v4
 * (region … sublocation-id), v5 (pkt-src-aws-service … traffic-path), and the later ECS (v7)
 * and reject-reason (v8) fields.
 */
export const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  ...V2_FIELDS,
  'vpc-id', 'subnet-id', 'instance-id', 'tcp-flags', 'type', 'pkt-srcaddr', 'pkt-dstaddr',
  'region', 'az-id', 'sublocation-type', 'sublocation-id',
  'pkt-src-aws-service', 'pkt-dst-aws-service', 'flow-direction', 'traffic-path',
  'ecs-cluster-arn', 'ecs-cluster-name', 'ecs-container-instance-arn', 'ecs-container-instance-id',
  'ecs-container-id', 'ecs-second-container-id', 'ecs-service-name', 'ecs-task-definition-arn',
  'ecs-task-arn', 'ecs-task-id', 'reject-reason',
]);

/** Fields that become a common field; every other present field goes to `extra`. */
const MAPPED = new Set(['account-id', 'srcaddr', 'dstaddr', 'start', 'action', 'interface-id', 'region']);

const PROTOCOLS: Record<string, string> = { '1': 'icmp', '6': 'tcp', '17': 'udp', '47': 'gre', '50': 'esp', '51': 'ah', '58': 'icmpv6', '132': 'sctp' };

const FIELD_NAME = /^[a-z]+(-[a-z]+)*$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

function tokens(line: string): string[] {
  const t = line.trim();
  return t === '' ? [] : t.split(/[ \t]+/);
}

/**
 * A header line: only field-name-shaped tokens (lower-case words joined by "-", which no data
 * value is: ENI and VPC ids carry digits, actions are upper case) and at least one known name.
 */
export function isHeader(toks: string[]): boolean {
  if (toks.length < 2) return false;
  let known = 0;
  for (const t of toks) {
    if (!FIELD_NAME.test(t)) return false;
    if (KNOWN_FIELDS.has(t)) known++;
  }
  return known > 0;
}

/** A v2 default-format line without a header: 14 fields, version 2. */
function looksV2(toks: string[]): boolean {
  return toks.length === V2_FIELDS.length && toks[0] === '2';
}

/** The region from an S3 key: `AWSLogs/<acct>/vpcflowlogs/<region>/…` or Hive `region=<r>/`. */
export function regionFromKey(name: string | undefined): string | undefined {
  if (!name) return undefined;
  const m = /(?:^|\/)vpcflowlogs\/([^/]+)\//.exec(name) ?? /(?:^|\/)region=([^/]+)\//.exec(name);
  const r = m?.[1];
  return r !== undefined && REGION.test(r) ? r : undefined;
}

function val(v: string | undefined): string | undefined {
  return v === undefined || v === '-' || v === '' ? undefined : v;
}

/** Common fields of one flow record, given its columns. */
export function flowFields(cols: readonly string[], values: readonly string[], keyRegion: string | undefined): { fields: CommonFields; region: string | undefined } {
  const get = (name: string): string | undefined => {
    const i = cols.indexOf(name);
    return i < 0 ? undefined : val(values[i]);
  };
  const regionField = get('region');
  const region = regionField !== undefined && REGION.test(regionField) ? regionField : keyRegion;
  const action = get('action');
  const protocol = get('protocol');
  const extra: Record<string, string> = {};
  cols.forEach((c, i) => {
    const v = val(values[i]);
    if (v !== undefined && !MAPPED.has(c) && !(c in extra)) extra[c] = v.length > 256 ? v.slice(0, 256) : v;
  });
  const fields = compact<CommonFields>({
    time: isoTime(get('start')),
    account: get('account-id'),
    region,
    action: protocol === undefined ? 'flow' : `flow:${PROTOCOLS[protocol] ?? protocol}`,
    // ACCEPT / REJECT; NODATA and SKIPDATA records have no action, only a log-status.
    outcome: action ?? get('log-status'),
    srcIp: ipOrUndefined(get('srcaddr')),
    dstIp: ipOrUndefined(get('dstaddr')),
    resource: get('interface-id') ?? get('instance-id') ?? get('subnet-id') ?? get('vpc-id'),
    ...ocsfClass(OCSF.NETWORK_ACTIVITY),
    extra,
  });
  return { fields, region };
}

/** Whether the first byte after white space and a byte order mark is "{" or "[". */
function startsLikeJson(body: Buffer): boolean {
  let i = body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  while (i < body.length && (body[i] === 0x20 || body[i] === 0x09 || body[i] === 0x0d || body[i] === 0x0a)) i++;
  return body[i] === 0x7b || body[i] === 0x5b;
}

function badLine(position: number, message: string): RecordError {
  return { position, code: 'BAD_FLOW_RECORD', error: `Line ${position} is not a VPC flow log record: ${message}` };
}

export function parseFlowLog(body: Buffer, ctx: ParseContext): ParseResult {
  if (startsLikeJson(body)) {
    throw new CustodyError('BAD_REQUEST', 'This input is JSON, not a VPC Flow Logs text file; send the flow log file as delivered to S3, or choose the source that matches the JSON.');
  }
  const records: ParsedRecord[] = [];
  const errors: RecordError[] = [];
  let ignored = 0;
  let cols: readonly string[] | undefined;
  const keyRegion = regionFromKey(ctx.name);
  forEachLine(body, (line, n) => {
    if (isBlank(line)) {
      ignored++;
      return;
    }
    if (line.length > MAX_RECORD_SIZE) {
      errors.push(tooLarge(n, line.length));
      return;
    }
    if (!isUtf8(line)) {
      errors.push(notUtf8(n));
      return;
    }
    const toks = tokens(line.toString('utf8'));
    if (isHeader(toks)) {
      cols = toks;
      ignored++;
      return;
    }
    let use = cols;
    if (!use) {
      if (!looksV2(toks)) {
        errors.push(badLine(n, 'there is no header line naming the fields, and it is not a version 2 default-format line (14 fields starting with "2"). Send the file with its header line.'));
        return;
      }
      use = V2_FIELDS;
    }
    if (toks.length !== use.length) {
      errors.push(badLine(n, `it has ${toks.length} fields but the header names ${use.length}; send the line as written by VPC Flow Logs.`));
      return;
    }
    const { fields, region } = flowFields(use, toks, keyRegion);
    const rec: ParsedRecord = { bytes: line, position: n, source: 'aws.vpcflow', fields };
    if (region !== undefined) rec.region = region;
    records.push(rec);
  });
  return { records, errors, ignored };
}

export const vpcflowParser: SourceParser = {
  name: 'vpcflow',
  description: 'VPC Flow Logs text files (v2 default or custom v3–v8 formats with a header line), one record per flow line',
  detect(head: Buffer, ctx: ParseContext): number {
    if (ctx.name && /(?:^|\/)vpcflowlogs\//.test(ctx.name)) return 95;
    const lines = headLines(head, 10);
    if (lines.length === 0) return 0;
    const toks = tokens(lines[0]!);
    if (isHeader(toks) && toks.every((t) => KNOWN_FIELDS.has(t)) && toks.length >= 3) return 90;
    const v2 = lines.filter((l) => /^2 \d{12} eni-[0-9a-f]+ /.test(l) && tokens(l).length === 14).length;
    return v2 * 2 > lines.length ? 70 : 0;
  },
  parse(body: Buffer, ctx: ParseContext): ParseResult {
    return parseFlowLog(body, ctx);
  },
};
