/**
 * The default rule pack, seeded into custody.db on the first start (and a rule the pack gains
 * in a later version is added on the next start; a rule already stored is never overwritten).
 * It is plain rule JSON (docs/ALARMS.md); `custody rules list --json` prints it as stored.
 *
 * Log generation switched off: one rule per API call in shared/reference/aws-sources.md,
 * "API calls that stop or delete log generation", matched on the CloudTrail common field
 * `action` = "<eventSource>:<eventName>" (ingest/sources/cloudtrail.ts), so the ingest path
 * finds candidates with one map lookup and parses a record only for the few calls whose rule
 * also looks at a request parameter (GuardDuty UpdateDetector enable=false, CreateFilter
 * with action ARCHIVE, S3 PutBucketLogging that turns logging off).
 */
import type { Severity } from '../types.js';
import type { Condition, Rule } from '../detectors/rule.js';

type Sev = Extract<Severity, 'high' | 'critical'>;

interface LogOffCall {
  service: string;
  eventSource: string;
  eventName: string;
  severity: Sev;
  what: string;
  when?: Condition[];
}

const c = (service: string, eventSource: string, severity: Sev, calls: Array<[string, string] | [string, string, Condition[]]>): LogOffCall[] =>
  calls.map(([eventName, what, when]) => ({ service, eventSource, eventName, severity, what, when }));
const crit = (x: LogOffCall): LogOffCall => ({ ...x, severity: 'critical' });

/** The reference list, service by service (severity critical where logging stops outright). */
const LOG_OFF_CALLS: LogOffCall[] = [
  ...c('cloudtrail', 'cloudtrail.amazonaws.com', 'high', [
    ['StopLogging', 'stops a CloudTrail trail from logging'],
    ['DeleteTrail', 'deletes a CloudTrail trail'],
    ['UpdateTrail', 'changes where or what a trail logs'],
    ['PutEventSelectors', 'changes which events a trail records'],
    ['DeleteEventDataStore', 'deletes a CloudTrail Lake event data store'],
    ['UpdateEventDataStore', 'changes a CloudTrail Lake event data store (retention, ingestion)'],
  ]).map((x) => (['StopLogging', 'DeleteTrail', 'DeleteEventDataStore'].includes(x.eventName) ? crit(x) : x)),
  ...c('ec2', 'ec2.amazonaws.com', 'critical', [['DeleteFlowLogs', 'deletes VPC flow logs']]),
  ...c('guardduty', 'guardduty.amazonaws.com', 'high', [
    ['DeleteDetector', 'deletes a GuardDuty detector'],
    ['UpdateDetector', 'disables a GuardDuty detector (enable=false)', [{ field: 'requestParameters.enable', equals: false }]],
    ['DisassociateFromMasterAccount', 'leaves the GuardDuty administrator account'],
    ['DisassociateFromAdministratorAccount', 'leaves the GuardDuty administrator account'],
    ['DisassociateMembers', 'removes GuardDuty member accounts'],
    ['DeleteMembers', 'deletes GuardDuty member accounts'],
    ['StopMonitoringMembers', 'stops monitoring GuardDuty member accounts'],
    ['DeletePublishingDestination', 'deletes where GuardDuty exports findings'],
    ['UpdatePublishingDestination', 'changes where GuardDuty exports findings'],
    ['CreateFilter', 'creates a GuardDuty filter that auto-archives findings (action ARCHIVE)', [{ field: 'requestParameters.action', equals: 'ARCHIVE' }]],
  ]).map((x) => (['DeleteDetector', 'UpdateDetector'].includes(x.eventName) ? crit(x) : x)),
  ...c('config', 'config.amazonaws.com', 'high', [
    ['StopConfigurationRecorder', 'stops the AWS Config recorder'],
    ['DeleteConfigurationRecorder', 'deletes the AWS Config recorder'],
    ['DeleteDeliveryChannel', 'deletes the AWS Config delivery channel'],
    ['PutDeliveryChannel', 'changes where AWS Config delivers'],
    ['PutConfigurationRecorder', 'changes what the AWS Config recorder records'],
    ['DeleteConfigRule', 'deletes an AWS Config rule'],
  ]).map((x) => (['StopConfigurationRecorder', 'DeleteConfigurationRecorder', 'DeleteDeliveryChannel'].includes(x.eventName) ? crit(x) : x)),
  ...c('macie2', 'macie2.amazonaws.com', 'high', [
    ['DisableMacie', 'disables Amazon Macie'],
    ['DisableOrganizationAdminAccount', 'removes the Macie delegated administrator'],
    ['UpdateMacieSession', 'pauses or changes Amazon Macie'],
    ['ArchiveFindings', 'archives Macie findings'],
    ['CreateFindingsFilter', 'creates a Macie findings filter (may auto-archive)'],
    ['UpdateFindingsFilter', 'changes a Macie findings filter (may auto-archive)'],
    ['DisassociateFromMasterAccount', 'leaves the Macie administrator account'],
    ['DisassociateMember', 'removes a Macie member account'],
  ]).map((x) => (x.eventName === 'DisableMacie' ? crit(x) : x)),
  ...c('logs', 'logs.amazonaws.com', 'high', [
    ['DeleteLogGroup', 'deletes a CloudWatch Logs log group'],
    ['DeleteLogStream', 'deletes a CloudWatch Logs log stream'],
    ['DeleteSubscriptionFilter', 'deletes a CloudWatch Logs subscription filter (stops forwarding)'],
    ['PutRetentionPolicy', 'changes how long a log group keeps its logs'],
    ['DeleteDestination', 'deletes a CloudWatch Logs destination'],
  ]).map((x) => (x.eventName === 'DeleteLogGroup' ? crit(x) : x)),
  ...c('s3', 's3.amazonaws.com', 'high', [
    ['PutBucketLifecycle', 'changes a bucket lifecycle (may expire logs)'],
    ['DeleteBucketLifecycle', 'deletes a bucket lifecycle'],
    ['PutBucketPolicy', 'changes a bucket policy (may stop log delivery)'],
    ['DeleteBucketPolicy', 'deletes a bucket policy (may stop log delivery)'],
    ['PutBucketVersioning', 'changes bucket versioning (suspending it lets logs be overwritten)'],
    ['PutBucketReplication', 'changes bucket replication'],
    ['DeleteBucketReplication', 'deletes bucket replication'],
    ['DeleteBucketEncryption', 'deletes bucket default encryption'],
    ['DeleteBucket', 'deletes a bucket'],
    ['PutBucketAcl', 'changes a bucket ACL (may stop log delivery)'],
  ]).map((x) => (x.eventName === 'DeleteBucket' ? crit(x) : x)),
  ...c('kms', 'kms.amazonaws.com', 'critical', [
    ['DisableKey', 'disables a KMS key (logs encrypted with it cannot be written or read)'],
    ['ScheduleKeyDeletion', 'schedules a KMS key for deletion (logs encrypted with it become unreadable)'],
  ]),
  ...c('events', 'events.amazonaws.com', 'high', [
    ['DisableRule', 'disables an EventBridge rule (may stop forwarding findings)'],
    ['DeleteRule', 'deletes an EventBridge rule (may stop forwarding findings)'],
  ]),
  ...c('cloudwatch', 'monitoring.amazonaws.com', 'high', [['DeleteAlarms', 'deletes CloudWatch alarms']]),
];

/** Beyond the reference list: S3 server access logging switched off (PutBucketLogging with no LoggingEnabled). */
const EXTRA_CALLS: LogOffCall[] = c('s3', 's3.amazonaws.com', 'high', [
  ['PutBucketLogging', 'switches off S3 server access logging', [{ field: 'requestParameters.BucketLoggingStatus.LoggingEnabled', exists: false }]],
]);

const CLOUDTRAIL_DETAILS = [
  'actor', 'srcIp', 'resource', 'action', 'account', 'region', 'time', 'outcome',
  'eventSource', 'eventName', 'userIdentity.type', 'userIdentity.arn', 'userIdentity.principalId', 'userIdentity.userName',
  'userIdentity.sessionContext.sessionIssuer.arn', 'sourceIPAddress', 'userAgent', 'requestParameters', 'errorCode', 'errorMessage', 'eventID',
  'source', 'producer',
];

function logOffRule(x: LogOffCall): Rule {
  return {
    id: `log-off.${x.service}.${x.eventName}`,
    description: `${x.service} ${x.eventName} in ingested CloudTrail: ${x.what}.`,
    enabled: true,
    type: 'match',
    kind: 'log-generation-off',
    severity: x.severity,
    on: 'record',
    when: [{ field: 'action', equals: `${x.eventSource}:${x.eventName}` }, ...(x.when ?? [])],
    title: `${x.eventName}: {actor|userIdentity.principalId|'an unknown principal'} called ${x.service}:${x.eventName} on {resource|requestParameters|'(no target named)'} from {srcIp|sourceIPAddress|'an unknown address'} ({errorCode|'succeeded'})`,
    details: CLOUDTRAIL_DETAILS,
  };
}

const TAMPER_DETAILS = ['type', 'kind', 'principal', 'address', 'method', 'path', 'userAgent', 'index', 'id', 'count'];

export const DEFAULT_PACK: Rule[] = [
  {
    id: 'tamper.modify-log-data',
    description: 'Someone tried to change or delete log data: PUT/PATCH/DELETE on logs, a POST into the tile tree, or a _bulk delete/update.',
    enabled: true,
    type: 'match',
    kind: 'tamper',
    severity: 'high',
    on: 'audit',
    when: [{ field: 'type', in: ['tamper.attempt', 'tamper.attempt.suppressed'] }],
    title: "Tamper attempt ({kind}): {principal.name|'an unauthenticated client'} tried {method} {path} from {address}",
    details: TAMPER_DETAILS,
    groupBy: ['kind', 'principal.name', 'address'],
  },
  {
    id: 'tamper.writer-read',
    description: 'A writer token was used to read: writers only append, so a read means the token is in the wrong hands or a shipper is misconfigured.',
    enabled: true,
    type: 'match',
    kind: 'tamper',
    severity: 'high',
    on: 'audit',
    when: [
      { field: 'type', equals: 'request.refused' },
      { field: 'kind', equals: 'writer-read' },
    ],
    title: "Writer read attempt: {principal.name|'?'} tried {method} {path} from {address}",
    details: TAMPER_DETAILS,
    groupBy: ['principal.name', 'address'],
  },
  {
    id: 'tamper.auditor-write',
    description: 'An auditor token was used to write: auditors only read.',
    enabled: true,
    type: 'match',
    kind: 'tamper',
    severity: 'high',
    on: 'audit',
    when: [
      { field: 'type', equals: 'request.refused' },
      { field: 'kind', equals: 'auditor-write' },
    ],
    title: "Auditor write attempt: {principal.name|'?'} tried {method} {path} from {address}",
    details: TAMPER_DETAILS,
    groupBy: ['principal.name', 'address'],
  },
  {
    id: 'tamper.write-audit-log',
    description: "A writer tried to append to the vault's own audit log.",
    enabled: true,
    type: 'match',
    kind: 'tamper',
    severity: 'critical',
    on: 'audit',
    when: [
      { field: 'type', equals: 'request.refused' },
      { field: 'kind', equals: 'write-audit-log' },
    ],
    title: "Audit log write attempt: {principal.name|'?'} tried {method} {path} from {address}",
    details: TAMPER_DETAILS,
    groupBy: ['principal.name', 'address'],
  },
  {
    id: 'auth.burst-per-address',
    description: 'Many failed authentications (no, unknown or revoked token) from one address in a minute.',
    enabled: true,
    type: 'threshold',
    kind: 'auth',
    severity: 'high',
    on: 'audit',
    when: [{ field: 'type', in: ['auth.failed', 'auth.failed.suppressed'] }],
    groupBy: ['address'],
    count: 10,
    windowMs: 60_000,
    weightField: 'count',
    title: '{count} failed authentications from {address} within {window}',
    details: ['address', 'reason', 'method', 'path', 'userAgent'],
  },
  {
    id: 'auth.totp-burst-per-principal',
    description: 'Repeated wrong second-factor (TOTP) codes for one admin: someone may hold the token but not the authenticator.',
    enabled: true,
    type: 'threshold',
    kind: 'auth',
    severity: 'critical',
    on: 'audit',
    when: [{ field: 'type', equals: 'admin.totp.failed' }],
    groupBy: ['principal.name'],
    count: 5,
    windowMs: 300_000,
    title: "{count} wrong TOTP codes for admin {principal.name|'?'} within {window} (last from {address|'?'})",
    details: ['principal', 'address', 'reason', 'method', 'path'],
  },
  {
    id: 'silence.learned',
    description: "Each source and producer's usual cadence is learned; an alarm when one is quiet for much longer than usual, a notice when it is back.",
    enabled: true,
    type: 'silence',
    kind: 'silence',
    severity: 'high',
    per: 'source+producer',
    learn: { factor: 3, floorMs: 10 * 60_000, ceilingMs: 24 * 3600_000, minSamples: 5, minGapMs: 1000 },
  },
  ...LOG_OFF_CALLS.map(logOffRule),
  ...EXTRA_CALLS.map(logOffRule),
];

/** The API calls of the reference list, as "eventSource:eventName" (for tests and docs). */
export const LOG_OFF_ACTIONS: string[] = LOG_OFF_CALLS.map((x) => `${x.eventSource}:${x.eventName}`);
