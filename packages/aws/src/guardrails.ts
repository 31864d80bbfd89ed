/**
 * The guardrails of the security account, written once and enforced twice:
 *
 * - as a **service control policy** (the organization's management account attaches it to the
 *   security account; it binds every principal there, the root user included, and only the
 *   management account can lift it), and
 * - as the **permissions boundary** on every role and auditor user the blueprint creates, so
 *   the same limits hold in an account that is not in an organization.
 *
 * Every statement is a Deny; the SCP relies on the organization's FullAWSAccess policy and the
 * boundary adds one `Allow *` so that the role's own policies decide what is granted.
 *
 * Resource patterns cover every region's lake (`<prefix>-lake-<account>-*`), so one SCP protects
 * all regions.
 */
import { STOP_OR_DELETE_ACTIONS } from './log-stopping-calls.js';
import { checkAccount, DEFAULT_NAME_PREFIX } from './names.js';

export interface PolicyStatementJson {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: unknown;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

export interface PolicyDocumentJson {
  Version: '2012-10-17';
  Statement: PolicyStatementJson[];
}

/** S3 calls nobody may make on the log buckets: deletes, and changes to policy, lock, lifecycle, encryption, ACLs, replication and logging. */
export const LOCKED_BUCKET_ACTIONS: readonly string[] = [
  's3:DeleteObject',
  's3:DeleteObjectVersion',
  's3:BypassGovernanceRetention',
  's3:PutObjectLegalHold',
  's3:PutBucketObjectLockConfiguration',
  's3:PutBucketPolicy',
  's3:DeleteBucketPolicy',
  's3:PutLifecycleConfiguration',
  's3:PutEncryptionConfiguration',
  's3:PutBucketAcl',
  's3:PutObjectAcl',
  's3:PutObjectVersionAcl',
  's3:PutBucketOwnershipControls',
  's3:PutBucketPublicAccessBlock',
  's3:PutReplicationConfiguration',
  's3:PutBucketLogging',
  's3:DeleteBucket',
];

/** KMS calls that would make data unreadable or move a key out of its region. */
export const KEY_DESTRUCTION_ACTIONS: readonly string[] = [
  'kms:ScheduleKeyDeletion',
  'kms:DisableKey',
  'kms:DisableKeyRotation',
  'kms:DeleteImportedKeyMaterial',
  'kms:ReplicateKey',
];

export interface GuardrailOptions {
  /** The security account. */
  account: string;
  prefix?: string;
}

/** ARN patterns (all regions) the guardrails name. */
export function guardrailPatterns(o: GuardrailOptions) {
  const a = checkAccount(o.account, 'The security account');
  const p = o.prefix ?? DEFAULT_NAME_PREFIX;
  const buckets = [`${p}-lake-${a}-*`, `${p}-access-logs-${a}-*`, `${p}-evidence-${a}-*`];
  return {
    buckets: buckets.flatMap((b) => [`arn:aws:s3:::${b}`, `arn:aws:s3:::${b}/*`]),
    objects: buckets.map((b) => `arn:aws:s3:::${b}/*`),
    lockedVersioningBuckets: [`arn:aws:s3:::${p}-lake-${a}-*`, `arn:aws:s3:::${p}-access-logs-${a}-*`],
    evidenceBuckets: `arn:aws:s3:::${p}-evidence-${a}-*`,
    keys: `arn:aws:kms:*:${a}:key/*`,
    securityAdmin: `arn:aws:iam::${a}:role/${p}-security-admin-*`,
    service: `arn:aws:iam::${a}:role/${p}-service-*`,
    root: `arn:aws:iam::${a}:root`,
    auditorBoundary: `arn:aws:iam::${a}:policy/${p}-auditor-boundary-*`,
    roleBoundary: `arn:aws:iam::${a}:policy/${p}-boundary-*`,
    boundaries: `arn:aws:iam::${a}:policy/${p}-*boundary-*`,
    rules: [`arn:aws:events:*:${a}:rule/${p}-*`, `arn:aws:events:*:${a}:rule/${p}-security-events/${p}-*`],
    topics: `arn:aws:sns:*:${a}:${p}-alarms`,
  };
}

/** The Deny statements shared by the SCP and the permissions boundary. */
export function guardrailStatements(o: GuardrailOptions): PolicyStatementJson[] {
  const g = guardrailPatterns(o);
  return [
    { Sid: 'DenyLogBucketTampering', Effect: 'Deny', Action: [...LOCKED_BUCKET_ACTIONS], Resource: g.buckets },
    { Sid: 'DenyLogBucketVersioningChanges', Effect: 'Deny', Action: 's3:PutBucketVersioning', Resource: g.lockedVersioningBuckets },
    // The evidence bucket: only the root user, with MFA, may turn on MFA delete (scripts/enable-mfa-delete.sh).
    {
      Sid: 'DenyEvidenceVersioningExceptRoot',
      Effect: 'Deny',
      Action: 's3:PutBucketVersioning',
      Resource: g.evidenceBuckets,
      Condition: { ArnNotEquals: { 'aws:PrincipalArn': g.root } },
    },
    // COMPLIANCE retention can only be lengthened; only the Custody vault sets it on its own objects.
    { Sid: 'DenyRetentionChanges', Effect: 'Deny', Action: 's3:PutObjectRetention', Resource: g.objects, Condition: { ArnNotLike: { 'aws:PrincipalArn': g.service } } },
    { Sid: 'DenyKeyDestruction', Effect: 'Deny', Action: [...KEY_DESTRUCTION_ACTIONS], Resource: g.keys },
    { Sid: 'DenyKeyPolicyChanges', Effect: 'Deny', Action: 'kms:PutKeyPolicy', Resource: g.keys, Condition: { ArnNotLike: { 'aws:PrincipalArn': g.securityAdmin } } },
    { Sid: 'DenyAccessKeys', Effect: 'Deny', Action: 'iam:CreateAccessKey', Resource: '*' },
    {
      Sid: 'DenyUsersExceptAuditorsBySecurityAdmin',
      Effect: 'Deny',
      Action: ['iam:CreateUser', 'iam:CreateLoginProfile', 'iam:UpdateLoginProfile'],
      Resource: '*',
      Condition: { ArnNotLike: { 'aws:PrincipalArn': g.securityAdmin } },
    },
    { Sid: 'DenyUsersWithoutAuditorBoundary', Effect: 'Deny', Action: 'iam:CreateUser', Resource: '*', Condition: { StringNotLike: { 'iam:PermissionsBoundary': g.auditorBoundary } } },
    { Sid: 'DenyStoppingLogs', Effect: 'Deny', Action: [...STOP_OR_DELETE_ACTIONS], Resource: '*' },
    { Sid: 'DenySilencingAlarms', Effect: 'Deny', Action: ['events:DisableRule', 'events:DeleteRule', 'events:RemoveTargets'], Resource: g.rules },
    { Sid: 'DenyDeletingAlarmTopic', Effect: 'Deny', Action: 'sns:DeleteTopic', Resource: g.topics },
    { Sid: 'DenyBoundaryRemoval', Effect: 'Deny', Action: ['iam:DeleteRolePermissionsBoundary', 'iam:DeleteUserPermissionsBoundary'], Resource: '*' },
    {
      Sid: 'DenyBoundaryEdits',
      Effect: 'Deny',
      Action: ['iam:CreatePolicyVersion', 'iam:DeletePolicy', 'iam:DeletePolicyVersion', 'iam:SetDefaultPolicyVersion'],
      Resource: g.boundaries,
    },
    { Sid: 'DenyLeavingOrganization', Effect: 'Deny', Action: 'organizations:LeaveOrganization', Resource: '*' },
  ];
}

/**
 * The permissions boundary: everything the role's own policies grant, minus the guardrails,
 * minus creating or re-bounding a role without this same boundary (so a role that can create
 * roles cannot create an unbounded one).
 */
export function roleBoundaryDocument(o: GuardrailOptions): PolicyDocumentJson {
  const g = guardrailPatterns(o);
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'AllowWhatTheRoleGrants', Effect: 'Allow', Action: '*', Resource: '*' },
      ...guardrailStatements(o),
      {
        Sid: 'DenyRolesWithoutThisBoundary',
        Effect: 'Deny',
        Action: ['iam:CreateRole', 'iam:PutRolePermissionsBoundary'],
        Resource: '*',
        Condition: { StringNotLike: { 'iam:PermissionsBoundary': g.roleBoundary } },
      },
    ],
  };
}

/** The security account's SCP (deny statements only; FullAWSAccess stays attached). */
export function securityAccountScp(o: GuardrailOptions): PolicyDocumentJson {
  return { Version: '2012-10-17', Statement: guardrailStatements(o) };
}

/**
 * The workload accounts' SCP: nobody there may stop or delete the log sources that feed the
 * lake. Calls that only change a setting (UpdateTrail, PutDeliveryChannel …) stay allowed so
 * the workload stack can be deployed; they are alarmed instead.
 */
export function workloadAccountScp(): PolicyDocumentJson {
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'DenyStoppingLogs', Effect: 'Deny', Action: [...STOP_OR_DELETE_ACTIONS], Resource: '*' },
      { Sid: 'DenyLeavingOrganization', Effect: 'Deny', Action: 'organizations:LeaveOrganization', Resource: '*' },
    ],
  };
}

/** The most characters AWS Organizations accepts in one SCP, and IAM in one managed policy. */
export const SCP_MAX_CHARS = 5120;
export const MANAGED_POLICY_MAX_CHARS = 6144;

/** Size as AWS counts it: the document without whitespace. */
export function policySize(doc: unknown): number {
  return JSON.stringify(doc).length;
}
