/**
 * The API calls that stop or delete log generation, as EventBridge patterns.
 *
 * The list is ../../../shared/reference/aws-sources.md, section "API calls that stop or delete
 * log generation" (CIS AWS Foundations 3.5/3.7/3.8/3.9, Security Hub CloudWatch.5/7/8/9 name its
 * core). Each group becomes one EventBridge rule on "AWS API Call via CloudTrail" events; two
 * calls are only alarming with a given parameter (GuardDuty UpdateDetector with enable=false,
 * CreateFilter with the auto-archive action), so they get their own rule.
 *
 * Rules match on `detail.eventSource` (not `source`), which names the service the same way in
 * every CloudTrail record.
 */

export interface LogStoppingGroup {
  /** Short id, used in rule names: `<prefix>-stop-<id>`. */
  id: string;
  /** CloudTrail eventSource, e.g. `cloudtrail.amazonaws.com`. */
  eventSource: string;
  eventNames: string[];
  /** Extra `detail` match (EventBridge content filter), when only some calls are alarming. */
  detail?: Record<string, unknown>;
  /** Why this group matters, shown in the alarm's rule description. */
  description: string;
}

export const LOG_STOPPING_GROUPS: readonly LogStoppingGroup[] = [
  {
    id: 'cloudtrail',
    eventSource: 'cloudtrail.amazonaws.com',
    eventNames: ['StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors', 'DeleteEventDataStore', 'UpdateEventDataStore'],
    description: 'CloudTrail trail or event data store stopped, deleted or narrowed',
  },
  {
    id: 'flowlogs',
    eventSource: 'ec2.amazonaws.com',
    eventNames: ['DeleteFlowLogs'],
    description: 'VPC Flow Logs deleted',
  },
  {
    id: 'guardduty',
    eventSource: 'guardduty.amazonaws.com',
    eventNames: [
      'DeleteDetector',
      'DisassociateFromMasterAccount',
      'DisassociateFromAdministratorAccount',
      'DisassociateMembers',
      'DeleteMembers',
      'StopMonitoringMembers',
      'DeletePublishingDestination',
      'UpdatePublishingDestination',
    ],
    description: 'GuardDuty detector, members or findings export removed',
  },
  {
    id: 'guardduty-disable',
    eventSource: 'guardduty.amazonaws.com',
    eventNames: ['UpdateDetector'],
    detail: { requestParameters: { enable: [false] } },
    description: 'GuardDuty detector disabled (UpdateDetector enable=false)',
  },
  {
    id: 'guardduty-archive',
    eventSource: 'guardduty.amazonaws.com',
    eventNames: ['CreateFilter'],
    detail: { requestParameters: { action: ['ARCHIVE'] } },
    description: 'GuardDuty auto-archive filter created (findings hidden)',
  },
  {
    id: 'config',
    eventSource: 'config.amazonaws.com',
    eventNames: [
      'StopConfigurationRecorder',
      'DeleteConfigurationRecorder',
      'DeleteDeliveryChannel',
      'PutDeliveryChannel',
      'PutConfigurationRecorder',
      'DeleteConfigRule',
    ],
    description: 'AWS Config recorder or delivery channel stopped, deleted or changed',
  },
  {
    id: 'macie',
    eventSource: 'macie2.amazonaws.com',
    eventNames: [
      'DisableMacie',
      'DisableOrganizationAdminAccount',
      'UpdateMacieSession',
      'ArchiveFindings',
      'CreateFindingsFilter',
      'UpdateFindingsFilter',
      'DisassociateFromMasterAccount',
      'DisassociateMember',
    ],
    description: 'Macie disabled, paused or its findings archived or filtered',
  },
  {
    id: 'logs',
    eventSource: 'logs.amazonaws.com',
    eventNames: ['DeleteLogGroup', 'DeleteLogStream', 'DeleteSubscriptionFilter', 'PutRetentionPolicy', 'DeleteDestination'],
    description: 'CloudWatch Logs data, subscription or retention removed or shortened',
  },
  {
    id: 'kms',
    eventSource: 'kms.amazonaws.com',
    eventNames: ['DisableKey', 'ScheduleKeyDeletion'],
    description: 'A KMS key disabled or scheduled for deletion (data under it becomes unreadable)',
  },
  {
    id: 'events',
    eventSource: 'events.amazonaws.com',
    eventNames: ['DisableRule', 'DeleteRule'],
    description: 'An EventBridge rule disabled or deleted (alarms may be silenced)',
  },
  {
    id: 'alarms',
    eventSource: 'monitoring.amazonaws.com',
    eventNames: ['DeleteAlarms'],
    description: 'CloudWatch alarms deleted',
  },
];

/**
 * S3 calls that alarm when they name one of the log buckets: the reference list's S3 calls
 * "on log buckets" plus every object delete and lock or retention change on the lake (the
 * delete calls are data events: the security account's trail records them for the lake buckets).
 */
export const LOG_BUCKET_S3_CALLS: readonly string[] = [
  // from the reference list
  'PutBucketLifecycle',
  'DeleteBucketLifecycle',
  'PutBucketPolicy',
  'DeleteBucketPolicy',
  'PutBucketVersioning',
  'PutBucketReplication',
  'DeleteBucketReplication',
  'DeleteBucketEncryption',
  'DeleteBucket',
  'PutBucketAcl',
  // deletes and lock changes on the lake
  'DeleteObject',
  'DeleteObjects',
  'PutObjectRetention',
  'PutObjectLegalHold',
  'PutObjectLockConfiguration',
  'PutBucketEncryption',
  'PutBucketPublicAccessBlock',
  'DeleteBucketPublicAccessBlock',
  'PutBucketLogging',
  'PutBucketOwnershipControls',
  'PutObjectAcl',
];

/** An EventBridge pattern for one group. */
export function eventPattern(group: LogStoppingGroup): Record<string, unknown> {
  return {
    'detail-type': ['AWS API Call via CloudTrail'],
    detail: { eventSource: [group.eventSource], eventName: [...group.eventNames], ...(group.detail ?? {}) },
  };
}

/** The pattern for delete, lock and policy calls on the given buckets. */
export function logBucketPattern(buckets: string[]): Record<string, unknown> {
  return {
    'detail-type': ['AWS API Call via CloudTrail'],
    detail: { eventSource: ['s3.amazonaws.com'], eventName: [...LOG_BUCKET_S3_CALLS], requestParameters: { bucketName: [...buckets] } },
  };
}

/**
 * The calls that only stop or delete (not the ones that merely change a setting): these are
 * denied outright by the guardrails; the others are needed to deploy and are alarmed instead.
 */
export const STOP_OR_DELETE_ACTIONS: readonly string[] = [
  'cloudtrail:StopLogging',
  'cloudtrail:DeleteTrail',
  'cloudtrail:DeleteEventDataStore',
  'ec2:DeleteFlowLogs',
  'guardduty:DeleteDetector',
  'guardduty:DisassociateFromMasterAccount',
  'guardduty:DisassociateFromAdministratorAccount',
  'guardduty:DeleteMembers',
  'guardduty:StopMonitoringMembers',
  'guardduty:DeletePublishingDestination',
  'config:StopConfigurationRecorder',
  'config:DeleteConfigurationRecorder',
  'config:DeleteDeliveryChannel',
  'macie2:DisableMacie',
  'macie2:DisableOrganizationAdminAccount',
  'macie2:DisassociateFromMasterAccount',
  'macie2:DisassociateFromAdministratorAccount',
];
