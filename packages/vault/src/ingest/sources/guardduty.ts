/**
 * GuardDuty findings (aws-sources.md, "GuardDuty finding"): one record per finding, in every
 * shape GuardDuty hands them out —
 * - a finding object (schemaVersion, type, severity number, id, arn, accountId, region,
 *   resource, service, createdAt, updatedAt, title, description);
 * - an EventBridge "GuardDuty Finding" event (the whole event is the record, the finding is
 *   its `detail`);
 * - NDJSON of either (the S3 export is gzip JSON lines; the caller removes the gzip);
 * - a JSON array of either, or the GetFindings answer `{"Findings":[…]}` (each element is a
 *   record, the wrapper is not).
 *
 * `splitFindings` does the splitting for Macie too (macie.ts).
 */
import { isUtf8 } from 'node:buffer';
import { CustodyError } from '../../errors.js';
import { MAX_RECORD_SIZE } from '../../log/entry.js';
import type { CommonFields, ParseContext, ParseResult, ParsedRecord, RecordError, SourceParser } from '../types.js';
import { arrayElements, checkJson, forEachLine, isBlank, topLevelValueRange, tooLarge } from './generic.js';
import { defined } from './applogs.js';
import { compact, eventBridgeDetail, ipOrUndefined, isoTime, obj, ocsfClass, OCSF, severityName, str, truncate } from './aws-common.js';

/** One JSON unit of a findings body: its exact bytes, where it was, and its parsed value. */
export interface JsonUnit {
  bytes: Buffer;
  position: number;
  value: unknown;
}

const WS = new Set([0x20, 0x09, 0x0d, 0x0a]);

function trim(body: Buffer): Buffer {
  let s = body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  let e = body.length;
  while (s < e && WS.has(body[s]!)) s++;
  while (e > s && WS.has(body[e - 1]!)) e--;
  return body.subarray(s, e);
}

function units(els: Buffer[], values: unknown[], errors: RecordError[]): JsonUnit[] {
  const out: JsonUnit[] = [];
  els.forEach((el, i) => {
    if (el.length > MAX_RECORD_SIZE) errors.push(tooLarge(i + 1, el.length));
    else out.push({ bytes: el, position: i + 1, value: values[i] });
  });
  return out;
}

/**
 * Splits a JSON findings body into units: a JSON array → its elements; an object whose only
 * purpose is to wrap a list (`wrapperKeys`, e.g. GetFindings' "Findings") → that list's
 * elements; another single JSON value → itself; anything else → NDJSON, one unit per line,
 * a bad line reported by its number and the others kept. Throws BAD_REQUEST only when the
 * body does not even start like JSON.
 */
export function splitFindings(body: Buffer, wrapperKeys: readonly string[], what: string): { units: JsonUnit[]; errors: RecordError[]; ignored: number } {
  const t = trim(body);
  const errors: RecordError[] = [];
  if (t.length === 0) return { units: [], errors, ignored: 0 };
  if (t[0] !== 0x7b && t[0] !== 0x5b) {
    throw new CustodyError('BAD_REQUEST', `This input is not ${what} JSON (it does not start with "{" or "["); send the findings as JSON, NDJSON or an EventBridge event, or choose another source.`);
  }
  let whole: unknown;
  let parsed = false;
  if (isUtf8(t)) {
    try {
      whole = JSON.parse(t.toString('utf8'));
      parsed = true;
    } catch {
      parsed = false;
    }
  }
  if (parsed) {
    if (Array.isArray(whole)) {
      const els = arrayElements(t);
      if (els && els.length === whole.length) return { units: units(els, whole, errors), errors, ignored: 0 };
    }
    const o = obj(whole);
    for (const k of wrapperKeys) {
      const list = o?.[k];
      if (!Array.isArray(list) || eventBridgeDetail(o)) continue;
      const range = topLevelValueRange(t, k);
      const els = range ? arrayElements(t, range.start, range.end) : null;
      if (els && els.length === list.length) return { units: units(els, list, errors), errors, ignored: 0 };
    }
    if (t.length > MAX_RECORD_SIZE) return { units: [], errors: [tooLarge(1, t.length)], ignored: 0 };
    return { units: [{ bytes: t, position: 1, value: whole }], errors, ignored: 0 };
  }
  // A pretty-printed document that does not parse is one bad record, not one error per line.
  const firstLine = /^[^\n]*/.exec(t.subarray(0, 64).toString('latin1'))?.[0]?.trim();
  if (firstLine === '{' || firstLine === '[') {
    const c = checkJson(t, 1);
    return { units: [], errors: ['error' in c ? c.error : { position: 1, code: 'BAD_JSON', error: 'Record 1 is not valid JSON.' }], ignored: 0 };
  }
  const out: JsonUnit[] = [];
  let ignored = 0;
  forEachLine(body, (line, n) => {
    if (isBlank(line)) {
      ignored++;
      return;
    }
    const c = checkJson(line, n);
    if ('error' in c) errors.push(c.error);
    else out.push({ bytes: line, position: n, value: c.value });
  });
  return { units: out, errors, ignored };
}

/** A dedupe-key part: a short printable string, or undefined (keys stay small and unambiguous). */
export function keyPart(x: unknown): string | undefined {
  const s = str(x);
  return s !== undefined && s.length <= 256 && !/[\s\u0000-\u001f]/.test(s) ? s : undefined;
}

/** Where each resource type keeps its id (GuardDuty `resource.<x>Details`). */
const RESOURCE_IDS: Array<[type: string, id: (r: Record<string, unknown>) => string | undefined]> = [
  ['Instance', (r) => str(obj(r.instanceDetails)?.instanceId)],
  ['AccessKey', (r) => str(obj(r.accessKeyDetails)?.accessKeyId) ?? str(obj(r.accessKeyDetails)?.userName)],
  ['S3Bucket', (r) => (Array.isArray(r.s3BucketDetails) ? str(obj(r.s3BucketDetails[0])?.name) : undefined)],
  ['S3Object', (r) => (Array.isArray(r.s3BucketDetails) ? str(obj(r.s3BucketDetails[0])?.name) : undefined)],
  ['EKSCluster', (r) => str(obj(r.eksClusterDetails)?.name)],
  ['ECSCluster', (r) => str(obj(r.ecsClusterDetails)?.name)],
  ['Lambda', (r) => str(obj(r.lambdaDetails)?.functionName)],
  ['RDSDBInstance', (r) => str(obj(r.rdsDbInstanceDetails)?.dbInstanceIdentifier)],
  ['Container', (r) => str(obj(r.containerDetails)?.name)],
];

/**
 * What a finding is about: `resourceType:id` (instance id, access key id, bucket name …). The
 * id is taken from the details matching the type first — sample findings fill several.
 */
function resourceOf(r: Record<string, unknown> | undefined): string | undefined {
  if (!r) return undefined;
  const type = str(r.resourceType);
  let id = RESOURCE_IDS.find(([t]) => t === type)?.[1](r);
  for (const [, get] of RESOURCE_IDS) id ??= get(r);
  if (type && id) return truncate(`${type}:${id}`, 512);
  return truncate(type ?? id, 512);
}

function ip(details: unknown): string | undefined {
  const d = obj(details);
  return ipOrUndefined(d?.ipAddressV4) ?? ipOrUndefined(d?.ipAddressV6);
}

/** Source/destination addresses and the calling principal from `service.action`. */
function actionParties(service: Record<string, unknown> | undefined, resource: Record<string, unknown> | undefined): Pick<CommonFields, 'actor' | 'srcIp' | 'dstIp'> {
  const a = obj(service?.action);
  if (!a) return {};
  const api = obj(a.awsApiCallAction);
  if (api) {
    const keyDetails = obj(resource?.accessKeyDetails);
    return {
      actor: str(keyDetails?.userName) ?? str(keyDetails?.principalId) ?? str(obj(api.remoteAccountDetails)?.accountId),
      srcIp: ip(api.remoteIpDetails),
    };
  }
  const net = obj(a.networkConnectionAction);
  if (net) {
    const remote = ip(net.remoteIpDetails);
    const local = ip(net.localIpDetails);
    // The remote end is the source of an inbound connection and the destination of an outbound one.
    return str(net.connectionDirection) === 'OUTBOUND' ? { srcIp: local, dstIp: remote } : { srcIp: remote, dstIp: local };
  }
  const probe = obj(a.portProbeAction);
  if (probe) {
    const first = Array.isArray(probe.portProbeDetails) ? obj(probe.portProbeDetails[0]) : undefined;
    return { srcIp: ip(first?.remoteIpDetails), dstIp: ip(first?.localIpDetails) };
  }
  const k8s = obj(a.kubernetesApiCallAction);
  if (k8s) return { srcIp: ip(k8s.remoteIpDetails) };
  const rds = obj(a.rdsLoginAttemptAction);
  if (rds) return { srcIp: ip(rds.remoteIpDetails) };
  return {};
}

/** Common fields of one GuardDuty finding, or of the EventBridge event carrying it. */
export function guarddutyFields(v: unknown): CommonFields {
  const eb = eventBridgeDetail(v);
  const f = eb ? eb.detail : obj(v);
  if (!f) return { ...ocsfClass(OCSF.DETECTION_FINDING) };
  const resource = obj(f.resource);
  return compact<CommonFields>({
    time: isoTime(f.updatedAt) ?? isoTime(f.createdAt) ?? isoTime(eb?.time),
    account: str(f.accountId) ?? eb?.account,
    region: str(f.region) ?? eb?.region,
    action: truncate(str(f.type), 256),
    severity: severityName(f.severity),
    resource: resourceOf(resource),
    ...actionParties(obj(f.service), resource),
    ...ocsfClass(OCSF.DETECTION_FINDING),
    extra: defined({ findingId: truncate(str(f.id), 128), title: truncate(str(f.title), 200) }),
  });
}

/** EventBridge events: the event id (one delivery); bare findings: id + updatedAt (one state). */
export function guarddutyDedupeKey(v: unknown): string | undefined {
  const eb = eventBridgeDetail(v);
  if (eb) {
    const id = keyPart(eb.id);
    return id ? `aws.events:${id}` : undefined;
  }
  const f = obj(v);
  const id = keyPart(f?.id);
  const updated = keyPart(f?.updatedAt);
  return id && updated ? `aws.guardduty:${id}:${updated}` : undefined;
}

function regionOf(fields: CommonFields): string | undefined {
  const r = fields.region;
  return r !== undefined && /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(r) ? r : undefined;
}

/** Builds records from units with a source's fields and dedupe rule (used by macie.ts too). */
export function findingRecords(
  split: { units: JsonUnit[]; errors: RecordError[]; ignored: number },
  source: string,
  fieldsOf: (v: unknown) => CommonFields,
  dedupeOf: (v: unknown) => string | undefined,
): ParseResult {
  const records: ParsedRecord[] = split.units.map((u) => {
    let fields: CommonFields;
    let key: string | undefined;
    try {
      fields = fieldsOf(u.value);
      key = dedupeOf(u.value);
    } catch {
      fields = {};
      key = undefined;
    }
    const rec: ParsedRecord = { bytes: u.bytes, position: u.position, source, fields };
    const region = regionOf(fields);
    if (region) rec.region = region;
    if (key) rec.dedupeKey = key;
    return rec;
  });
  return { records, errors: split.errors, ignored: split.ignored };
}

export const guarddutyParser: SourceParser = {
  name: 'guardduty',
  description: 'GuardDuty findings: finding objects, EventBridge "GuardDuty Finding" events, NDJSON (S3 export), JSON arrays or {"Findings":[…]}',
  detect(head: Buffer, ctx: ParseContext): number {
    const t = trim(head);
    const json = t[0] === 0x7b || t[0] === 0x5b;
    if (ctx.name?.includes('GuardDuty')) return json || t.length === 0 ? 90 : 30;
    if (!json) return 0;
    const s = t.toString('utf8');
    if (/"detail-type"\s*:\s*"GuardDuty Finding"/.test(s)) return 85;
    if (/"schemaVersion"\s*:/.test(s) && /"type"\s*:/.test(s) && /"severity"\s*:\s*\d/.test(s) && /"service"\s*:\s*\{/.test(s)) return 85;
    return ctx.name && /guardduty/i.test(ctx.name) ? 40 : 0;
  },
  parse(body: Buffer, _ctx: ParseContext): ParseResult {
    return findingRecords(splitFindings(body, ['Findings', 'findings'], 'GuardDuty findings'), 'aws.guardduty', guarddutyFields, guarddutyDedupeKey);
  },
};
