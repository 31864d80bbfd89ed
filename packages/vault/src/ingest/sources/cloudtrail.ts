/**
 * CloudTrail: delivered log files (`{"Records":[…]}`, gzip already removed by the caller),
 * a single event, a JSON array or NDJSON of events, and EventBridge events that carry a
 * CloudTrail event in `detail` ("AWS API Call via CloudTrail", "AWS Console Sign In via
 * CloudTrail", …). One record per event, byte-exact; for EventBridge the record is the whole
 * event. Also CloudTrail digest files (integrity validation), one record per digest.
 *
 * Facts relied on (shared/reference/aws-sources.md): key layout
 * `AWSLogs/[o-id/]<acct>/CloudTrail/<region>/…/<acct>_CloudTrail_<region>_<ts>_<id>.json.gz`;
 * "the same eventID can be delivered twice" — hence the dedupe key `aws.cloudtrail:<eventID>`.
 */
import { isUtf8 } from 'node:buffer';
import type { CommonFields, ParseContext, ParseResult, SourceParser } from '../types.js';
import { topLevelValueRange, topLevelValueStart } from './generic.js';
import {
  OCSF,
  collectUnits,
  elementUnits,
  elementUnitsOf,
  eventBridgeDetail,
  ipOrUndefined,
  isoTime,
  lineUnits,
  makeRecord,
  obj,
  ocsfClass,
  readJsonInput,
  safeFields,
  str,
  truncate,
  wholeUnit,
  extraTerms,
  type JsonUnit,
  type Units,
} from './aws-common.js';

export const CLOUDTRAIL_SOURCE = 'aws.cloudtrail';
export const CLOUDTRAIL_DIGEST_SOURCE = 'aws.cloudtrail-digest';

/** Sign-in events (eventType AwsConsoleSignIn, signin.amazonaws.com): OCSF 3002 Authentication. */
const SIGN_IN_EVENTS = new Set(['ConsoleLogin', 'CheckMfa', 'ExternalIdPDirectoryLogin', 'UserAuthentication', 'CredentialChallenge', 'CredentialVerification', 'SwitchRole', 'ExitRole', 'RenewRole']);

/** requestParameters keys that name what a call acted on, in order of preference. */
const RESOURCE_PARAMS = [
  'roleArn', 'bucketName', 'name', 'trailName', 'functionName', 'logGroupName', 'keyId', 'userName', 'roleName',
  'groupName', 'policyArn', 'topicArn', 'queueUrl', 'tableName', 'stackName', 'clusterName', 'dBInstanceIdentifier',
  'instanceId', 'volumeId', 'snapshotId', 'groupId', 'secretId', 'detectorId', 'configRuleName', 'Name',
];

/**
 * Is `o` a CloudTrail event? It has eventVersion with eventName/eventID/eventTime (Insights
 * events have no top-level eventName), or a `*.amazonaws.com` eventSource with an eventName.
 * S3/SQS/SNS notifications also have `Records[].eventVersion`, but their eventSource is
 * "aws:s3" etc. — they are not CloudTrail.
 */
export function isCloudTrailEvent(v: unknown): boolean {
  const o = obj(v);
  if (!o) return false;
  const source = o.eventSource;
  if (typeof source === 'string' && source.startsWith('aws:')) return false;
  if (typeof o.eventVersion === 'string' && (typeof o.eventName === 'string' || typeof o.eventID === 'string' || typeof o.eventTime === 'string')) return true;
  return typeof source === 'string' && source.endsWith('.amazonaws.com') && typeof o.eventName === 'string';
}

/** The fields of one CloudTrail event (also used for events inside CloudWatch Logs and EventBridge). */
export function cloudtrailFields(ev: unknown): CommonFields {
  const o = obj(ev);
  if (!o) return {};
  const ui = obj(o.userIdentity) ?? {};
  const insight = obj(o.insightDetails);
  const eventName = str(o.eventName) ?? str(insight?.eventName);
  const eventSource = str(o.eventSource) ?? str(insight?.eventSource);
  const errorCode = str(o.errorCode);
  const eventType = str(o.eventType);
  const signIn = eventType === 'AwsConsoleSignIn' || eventSource === 'signin.amazonaws.com' || (eventName !== undefined && SIGN_IN_EVENTS.has(eventName));
  return {
    time: isoTime(o.eventTime),
    account: str(o.recipientAccountId) ?? str(ui.accountId),
    region: str(o.awsRegion),
    actor: str(ui.arn) ?? str(ui.userName) ?? str(ui.principalId) ?? str(ui.invokedBy),
    action: eventSource && eventName ? `${eventSource}:${eventName}` : eventName,
    outcome: outcomeOf(o, eventName, errorCode),
    srcIp: ipOrUndefined(o.sourceIPAddress),
    resource: truncate(resourceOf(o), 1024),
    ...ocsfClass(signIn ? OCSF.AUTHENTICATION : OCSF.API_ACTIVITY),
    extra: extraTerms({
      errorCode: truncate(errorCode, 128),
      eventType: truncate(eventType, 64),
      userAgent: truncate(str(o.userAgent), 256),
      eventID: truncate(str(o.eventID), 128),
    }),
  };
}

/** Sign-in events answer in responseElements (`{"ConsoleLogin":"Failure"}`); others by errorCode. */
function outcomeOf(o: Record<string, unknown>, eventName: string | undefined, errorCode: string | undefined): string {
  const re = obj(o.responseElements);
  const said = eventName && re ? re[eventName] : undefined;
  if (said === 'Success') return 'success';
  if (said === 'Failure') return 'failure';
  return errorCode ? 'failure' : 'success';
}

function resourceOf(o: Record<string, unknown>): string | undefined {
  if (Array.isArray(o.resources)) {
    for (const r of o.resources) {
      const arn = str(obj(r)?.ARN) ?? str(obj(r)?.arn);
      if (arn) return arn;
    }
  }
  const rp = obj(o.requestParameters);
  if (!rp) return undefined;
  const bucket = typeof rp.bucketName === 'string' ? rp.bucketName : undefined;
  if (bucket && typeof rp.key === 'string') return `${bucket}/${rp.key}`;
  for (const k of RESOURCE_PARAMS) {
    const v = rp[k];
    if (typeof v === 'string' && v.length > 0) return v;
  }
  return undefined;
}

/** The event inside a unit: the unit itself, or `detail` of an EventBridge envelope. */
function eventOf(value: unknown): { event: Record<string, unknown>; envelope: ReturnType<typeof eventBridgeDetail> } | null {
  if (isCloudTrailEvent(value)) return { event: value as Record<string, unknown>, envelope: null };
  const eb = eventBridgeDetail(value);
  if (eb && (eb.detailType.endsWith('via CloudTrail') || typeof eb.detail.eventID === 'string' || typeof eb.detail.eventName === 'string')) {
    return { event: eb.detail, envelope: eb };
  }
  return null;
}

function addEvent(u: JsonUnit, out: ParseResult, anyObject: boolean): boolean {
  let found = eventOf(u.value);
  if (!found) {
    // Inside a delivered file's Records array every object is kept (a new kind of CloudTrail
    // record must not be lost); elsewhere a unit must look like CloudTrail.
    const o = obj(u.value);
    if (!anyObject || !o) return false;
    found = { event: o, envelope: null };
  }
  const { event, envelope } = found;
  const fields = safeFields(() => {
    const f = cloudtrailFields(event);
    if (envelope) {
      f.time ??= isoTime(envelope.time);
      f.account ??= envelope.account;
      f.region ??= envelope.region;
    }
    return f;
  });
  const eventID = str(event.eventID);
  out.records.push(makeRecord(u.bytes, u.position, CLOUDTRAIL_SOURCE, fields, { region: fields.region, dedupeKey: eventID ? `aws.cloudtrail:${eventID}` : undefined }));
  return true;
}

const KIND = {
  code: 'NOT_CLOUDTRAIL',
  what: 'a CloudTrail event',
  hint: 'send CloudTrail log files ({"Records":[…]}), CloudTrail events (NDJSON or a JSON array), or EventBridge "AWS API Call via CloudTrail" events; choose another source for other data.',
};

function parseCloudTrail(body: Buffer, ctx: ParseContext): ParseResult {
  const input = readJsonInput(body, 'CloudTrail');
  if (input.kind === 'empty') return { records: [], errors: [], ignored: 0 };
  if (input.kind === 'bad') return { records: [], errors: [input.error], ignored: 0 };
  if (input.kind === 'lines') return collectUnits(lineUnits(body), (u, out) => addEvent(u, out, false), KIND);
  const { bytes, value } = input;
  // The whole input was parsed once; its elements are not parsed again (large files).
  const utf8 = isUtf8(bytes);
  if (Array.isArray(value)) return collectUnits(elementUnitsOf(bytes, 0, bytes.length, value, utf8) ?? elementUnits(bytes) ?? unsplittable(), (u, out) => addEvent(u, out, false), KIND);
  const o = obj(value);
  if (o && Array.isArray(o.Records)) {
    const start = topLevelValueStart(bytes, 'Records');
    const fast = start >= 0 ? elementUnitsOf(bytes, start, bytes.length, o.Records, utf8) : null;
    const range = fast ? null : topLevelValueRange(bytes, 'Records');
    const units = fast ?? (range && elementUnits(bytes, range.start, range.end)) ?? unsplittable();
    // An array none of whose elements is CloudTrail (an S3 or SQS notification) is refused whole.
    if (units.units.length > 0 && !units.units.some((u) => isCloudTrailEvent(u.value))) return collectUnits(units, () => false, KIND);
    return collectUnits(units, (u, out) => addEvent(u, out, true), KIND);
  }
  if (o && isDigest(o)) return cloudtrailDigestParser.parse(body, ctx);
  // One event (or one EventBridge event): the whole input is the record.
  return collectUnits(wholeUnit(bytes, value), (u, out) => addEvent(u, out, false), KIND);
}

/** The array the whole-input parse found could not be cut into elements (e.g. an escaped key). */
function unsplittable(): Units {
  return { units: [], errors: [{ position: 1, code: 'BAD_JSON', error: 'The records array could not be split into records; send the file as AWS delivered it.' }], ignored: 0 };
}

const KEY_RE = /(^|\/)AWSLogs\/(o-[a-z0-9]+\/)?\d{12}\/CloudTrail(-Insight)?\//;
const FILE_RE = /(^|\/)\d{12}_CloudTrail(-Insight)?_[a-z0-9-]+_\d{8}T\d{4}Z_[A-Za-z0-9]+\.json(\.gz)?$/;

function detectCloudTrail(head: Buffer, ctx: ParseContext): number {
  const name = ctx.name ?? '';
  if (name.includes('CloudTrail-Digest')) return 0;
  if (KEY_RE.test(name) || FILE_RE.test(name)) return 95;
  const text = head.toString('utf8');
  // Real CloudTrail eventSources end in ".amazonaws.com"; S3/SQS notifications say "aws:s3".
  const ctSource = /"eventSource"\s*:\s*"[a-z0-9.-]+\.amazonaws\.com"/.test(text);
  // (\s also matches a byte order mark.)
  if (/^\s*\{\s*"Records"\s*:\s*\[/.test(text)) {
    if (/^\s*\{\s*"Records"\s*:\s*\[\s*\]/.test(text)) return 90;
    return ctSource || (/"eventVersion"/.test(text) && !/"eventSource"\s*:\s*"aws:/.test(text)) ? 90 : 0;
  }
  if (/"detail-type"\s*:\s*"[^"]{0,64}via CloudTrail"/.test(text)) return 85;
  if (/"eventVersion"\s*:/.test(text) && ctSource && /"eventName"\s*:/.test(text)) return 80;
  return 0;
}

export const cloudtrailParser: SourceParser = {
  name: 'cloudtrail',
  description: 'AWS CloudTrail: log files {"Records":[…]}, events (NDJSON, array, single) and EventBridge CloudTrail events',
  detect: detectCloudTrail,
  parse: parseCloudTrail,
};

// --- CloudTrail digest files -----------------------------------------------------------

function isDigest(o: Record<string, unknown>): boolean {
  return typeof o.digestEndTime === 'string' && Array.isArray(o.logFiles) && ('digestS3Object' in o || 'digestSignatureAlgorithm' in o);
}

const DIGEST_KEY_RE = /\/CloudTrail-Digest\/([a-z0-9-]+)\//;

/**
 * A digest is stored whole, as one record. It is not verified here: its signature is in the
 * S3 object metadata (`x-amz-meta-signature`), which the bytes do not carry.
 */
function parseDigest(body: Buffer, ctx: ParseContext): ParseResult {
  const input = readJsonInput(body, 'CloudTrail digest');
  if (input.kind === 'empty') return { records: [], errors: [], ignored: 0 };
  if (input.kind === 'bad') return { records: [], errors: [input.error], ignored: 0 };
  const units: Units = input.kind === 'lines' ? lineUnits(body) : wholeUnit(input.bytes, input.value);
  return collectUnits(
    units,
    (u, out) => {
      const o = obj(u.value);
      if (!o || !isDigest(o)) return false;
      const s3Object = str(o.digestS3Object);
      const region = (s3Object && DIGEST_KEY_RE.exec(s3Object)?.[1]) || (ctx.name && DIGEST_KEY_RE.exec(ctx.name)?.[1]) || undefined;
      const fields = safeFields(() => ({
        time: isoTime(o.digestEndTime),
        account: str(o.awsAccountId),
        region,
        action: 'cloudtrail:Digest',
        resource: truncate(s3Object, 1024),
        ...ocsfClass(OCSF.BASE_EVENT),
        extra: extraTerms({
          logFiles: String((o.logFiles as unknown[]).length),
          digestSignatureAlgorithm: truncate(str(o.digestSignatureAlgorithm), 64),
          previousDigestHashValue: truncate(str(o.previousDigestHashValue), 128),
        }),
      }));
      const bucket = str(o.digestS3Bucket);
      out.records.push(makeRecord(u.bytes, u.position, CLOUDTRAIL_DIGEST_SOURCE, fields, { region, dedupeKey: bucket && s3Object ? `aws.cloudtrail-digest:${bucket}/${s3Object}` : undefined }));
      return true;
    },
    { code: 'NOT_CLOUDTRAIL_DIGEST', what: 'a CloudTrail digest file', hint: 'send the digest files from the CloudTrail-Digest/ prefix; use the "cloudtrail" source for log files.' },
  );
}

export const cloudtrailDigestParser: SourceParser = {
  name: 'cloudtrail-digest',
  description: 'AWS CloudTrail digest files (CloudTrail-Digest/…json.gz), one record per digest',
  detect(head: Buffer, ctx: ParseContext): number {
    const name = ctx.name ?? '';
    if (/(^|\/)CloudTrail-Digest\//.test(name) || /\d{12}_CloudTrail-Digest_/.test(name)) return 96;
    const text = head.toString('utf8');
    return /"digestStartTime"\s*:/.test(text) && /"logFiles"\s*:/.test(text) && /"digestS3Object"\s*:/.test(text) ? 90 : 0;
  },
  parse: parseDigest,
};
