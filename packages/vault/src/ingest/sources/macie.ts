/**
 * Amazon Macie (macie2): findings and sensitive-data discovery results, one record each.
 *
 * - Findings (aws-sources.md, "Macie finding"): accountId, category, classificationDetails,
 *   createdAt, id, region, resourcesAffected{s3Bucket, s3Object}, severity{description, score},
 *   title, type, updatedAt — as a finding object, an EventBridge "Macie Finding" event (the
 *   whole event is the record), a JSON array, NDJSON, or GetFindings' `{"findings":[…]}`.
 * - Sensitive-data discovery results: the JSON lines Macie writes to S3
 *   (`AWSLogs/<acct>/Macie/<region>/<job>/<acct>/<id>.jsonl.gz`, gzip removed by the caller),
 *   one result per analysed object. They look like findings but carry no updatedAt (and no
 *   archived/count/sample), and spell numbers as strings.
 */
import type { CommonFields, ParseContext, ParseResult, SourceParser } from '../types.js';
import { compact, eventBridgeDetail, ipOrUndefined, isoTime, obj, ocsfClass, OCSF, severityName, str, truncate } from './aws-common.js';
import { defined } from './applogs.js';
import { findingRecords, keyPart, splitFindings } from './guardduty.js';

/** A discovery result: classification details for an S3 object, and no `updatedAt`. */
export function isDiscoveryResult(f: Record<string, unknown>): boolean {
  return f.updatedAt === undefined && obj(f.classificationDetails) !== undefined && obj(f.resourcesAffected) !== undefined;
}

/** Macie severity: the description (Low/Medium/High), else the score 1–3. */
function macieSeverity(sev: unknown): string | undefined {
  const s = obj(sev);
  const byName = severityName(str(s?.description));
  if (byName) return byName;
  const score = Number(str(s?.score));
  return score === 1 ? 'Low' : score === 2 ? 'Medium' : score === 3 ? 'High' : undefined;
}

/** `s3://bucket/key`, or `s3://bucket` for a bucket-level (policy) finding. */
function s3Resource(ra: Record<string, unknown> | undefined): string | undefined {
  const bucket = str(obj(ra?.s3Bucket)?.name);
  const object = obj(ra?.s3Object);
  const key = str(object?.key);
  if (bucket) return truncate(key ? `s3://${bucket}/${key}` : `s3://${bucket}`, 1024);
  const path = str(object?.path);
  return path ? truncate(`s3://${path}`, 1024) : undefined;
}

/** For policy findings: who made the call, from where (policyDetails.actor). */
function policyActor(f: Record<string, unknown>): Pick<CommonFields, 'actor' | 'srcIp'> {
  const actor = obj(obj(f.policyDetails)?.actor);
  if (!actor) return {};
  const id = obj(actor.userIdentity);
  let who: string | undefined;
  for (const k of ['iamUser', 'assumedRole', 'federatedUser', 'root', 'awsAccount', 'awsService']) {
    const part = obj(id?.[k]);
    who = str(part?.arn) ?? str(part?.principalId) ?? str(part?.accountId) ?? str(part?.invokedBy);
    if (who) break;
  }
  const ipd = obj(actor.ipAddressDetails);
  return { actor: who, srcIp: ipOrUndefined(ipd?.ipAddressV4) ?? ipOrUndefined(ipd?.ipAddressV6) };
}

/** Common fields of one Macie finding, discovery result, or EventBridge event carrying a finding. */
export function macieFields(v: unknown): CommonFields {
  const eb = eventBridgeDetail(v);
  const f = eb ? eb.detail : obj(v);
  if (!f) return { ...ocsfClass(OCSF.DETECTION_FINDING) };
  const result = !eb && isDiscoveryResult(f);
  return compact<CommonFields>({
    time: isoTime(f.updatedAt) ?? isoTime(f.createdAt) ?? isoTime(eb?.time),
    account: str(f.accountId) ?? eb?.account,
    region: str(f.region) ?? eb?.region,
    action: truncate(str(f.type), 256),
    severity: macieSeverity(f.severity),
    resource: s3Resource(obj(f.resourcesAffected)),
    ...policyActor(f),
    ...ocsfClass(result ? OCSF.SECURITY_FINDING : OCSF.DETECTION_FINDING),
    extra: defined({
      [result ? 'resultId' : 'findingId']: truncate(str(f.id), 128),
      title: truncate(str(f.title), 200),
      category: truncate(str(f.category), 64),
    }),
  });
}

/**
 * EventBridge events: the event id. Findings: id + updatedAt (a later update is a new record).
 * Discovery results: their id + createdAt (re-importing the same results object stores nothing
 * new); without both, no key.
 */
export function macieDedupeKey(v: unknown): string | undefined {
  const eb = eventBridgeDetail(v);
  if (eb) {
    const id = keyPart(eb.id);
    return id ? `aws.events:${id}` : undefined;
  }
  const f = obj(v);
  if (!f) return undefined;
  const id = keyPart(f.id);
  if (!id) return undefined;
  if (isDiscoveryResult(f)) {
    const created = keyPart(f.createdAt);
    return created ? `aws.macie.result:${id}:${created}` : undefined;
  }
  const updated = keyPart(f.updatedAt);
  return updated ? `aws.macie:${id}:${updated}` : undefined;
}

export const macieParser: SourceParser = {
  name: 'macie',
  description: 'Macie findings (objects, EventBridge "Macie Finding" events, NDJSON, arrays, {"findings":[…]}) and sensitive-data discovery results (.jsonl)',
  detect(head: Buffer, ctx: ParseContext): number {
    const s = head.subarray(0, 64 * 1024).toString('utf8').replace(/^\ufeff/, '').trimStart();
    const json = s.startsWith('{') || s.startsWith('[');
    if (ctx.name && /(?:^|\/)Macie\//.test(ctx.name)) return json || s.length === 0 ? 90 : 30;
    if (!json) return 0;
    if (/"detail-type"\s*:\s*"Macie Finding"/.test(s)) return 85;
    if (/"classificationDetails"\s*:/.test(s)) return 85;
    if (/"resourcesAffected"\s*:/.test(s) && /"severity"\s*:\s*\{[^{}]*"description"/.test(s)) return 85;
    return ctx.name && /macie/i.test(ctx.name) ? 40 : 0;
  },
  parse(body: Buffer, _ctx: ParseContext): ParseResult {
    return findingRecords(splitFindings(body, ['findings', 'Findings'], 'Macie findings'), 'aws.macie', macieFields, macieDedupeKey);
  },
};
