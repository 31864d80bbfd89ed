/**
 * The resource policies of the security data lake: the lake and evidence bucket policies, the
 * access-log bucket policy and the KMS key policies. Plain JSON builders (values may be CDK
 * tokens) so that what is deployed is exactly what is written here, statement by statement.
 *
 * The shape follows ../../../shared/reference/aws-sources.md:
 * - Object Lock COMPLIANCE: nobody can shorten retention; GOVERNANCE would let holders of
 *   s3:BypassGovernanceRetention delete early, so GOVERNANCE uploads are refused outright.
 * - CloudTrail digest files are SSE-S3 even when the logs are SSE-KMS, so the "KMS only" rule
 *   leaves the digest keys out (`…/CloudTrail-Digest/…`).
 */
import { KEY_DESTRUCTION_ACTIONS, LOCKED_BUCKET_ACTIONS, type PolicyStatementJson } from './guardrails.js';
import { arn, LAKE_PREFIXES } from './names.js';

/** Who may send data into the lake through the AWS delivery services and Firehose. */
export type Producers = { organizationId: string } | { accounts: string[] };

export function isOrganization(p: Producers): p is { organizationId: string } {
  return 'organizationId' in p;
}

export function checkProducers(p: Producers): Producers {
  if (isOrganization(p)) {
    if (!/^o-[a-z0-9]{10,32}$/.test(p.organizationId)) throw new Error(`${JSON.stringify(p.organizationId)} is not an organization id (o- followed by 10 to 32 lowercase letters or digits).`);
  } else {
    if (!Array.isArray(p.accounts) || p.accounts.length === 0) throw new Error('Name at least one workload account, or give the organization id instead.');
    for (const a of p.accounts) if (!/^\d{12}$/.test(a)) throw new Error(`Workload account ${JSON.stringify(a)} is not a 12-digit account id.`);
  }
  return p;
}

/** Condition on the service's source: the organization, or the listed accounts plus the security account itself. */
export function sourceCondition(p: Producers, securityAccount: string): Record<string, Record<string, unknown>> {
  return isOrganization(p)
    ? { StringEquals: { 'aws:SourceOrgID': p.organizationId } }
    : { StringEquals: { 'aws:SourceAccount': [...new Set([...p.accounts, securityAccount])] } };
}

/** Principal and condition for IAM roles in the workload accounts (cross-account). */
export function workloadPrincipal(p: Producers): { Principal: unknown; Condition: Record<string, Record<string, unknown>> } {
  return isOrganization(p)
    ? { Principal: { AWS: '*' }, Condition: { StringEquals: { 'aws:PrincipalOrgID': p.organizationId } } }
    : { Principal: { AWS: p.accounts.map(arn.root) }, Condition: {} };
}

function merge(...conds: Array<Record<string, Record<string, unknown>>>): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const c of conds) for (const [op, kv] of Object.entries(c)) out[op] = { ...(out[op] ?? {}), ...kv };
  return out;
}

export interface LockedBucketPolicyInput {
  bucketName: string;
  keyArn: string;
  retentionDays: number;
  securityAccount: string;
  writerRoleArn: string;
  serviceRoleArn: string;
  /** Role ARN pattern of the workload accounts' Firehose delivery roles (lake only). */
  firehoseRolePattern?: string;
  /** The delivery services and Firehose roles may write (lake only). */
  producers?: Producers;
}

/**
 * The policy of an Object Lock bucket (the lake, or the evidence bucket): nobody deletes or
 * changes policy, lock, lifecycle, encryption, ACLs or replication; only the listed writers and
 * the delivery services put objects, each under its own prefix; every upload is SSE-KMS with the
 * lake key (CloudTrail digests excepted) and COMPLIANCE-locked for at least the retention.
 */
export function lockedBucketStatements(i: LockedBucketPolicyInput, kind: 'lake' | 'evidence'): PolicyStatementJson[] {
  const b = arn.bucket(i.bucketName);
  const objs = arn.objects(i.bucketName);
  const under = (prefix: string) => arn.objects(i.bucketName, `${prefix}/`);
  const writers = [i.writerRoleArn, i.serviceRoleArn, ...(kind === 'lake' && i.firehoseRolePattern ? [i.firehoseRolePattern] : [])];
  const root = arn.root(i.securityAccount);
  const digests = arn.objects(i.bucketName, `${LAKE_PREFIXES.cloudtrail}/AWSLogs/*/CloudTrail-Digest/`);
  const s: PolicyStatementJson[] = [
    { Sid: 'DenyDeletesAndConfigurationChanges', Effect: 'Deny', Principal: { AWS: '*' }, Action: [...LOCKED_BUCKET_ACTIONS], Resource: [b, objs] },
    kind === 'lake'
      ? { Sid: 'DenyVersioningChanges', Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:PutBucketVersioning', Resource: b }
      : // MFA delete can only be turned on by the root user (scripts/enable-mfa-delete.sh).
        { Sid: 'DenyVersioningChangesExceptRoot', Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:PutBucketVersioning', Resource: b, Condition: { ArnNotEquals: { 'aws:PrincipalArn': root } } },
    { Sid: 'DenyRetentionChangesExceptVault', Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:PutObjectRetention', Resource: objs, Condition: { ArnNotEquals: { 'aws:PrincipalArn': i.serviceRoleArn } } },
    {
      Sid: 'DenyGovernanceMode',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: ['s3:PutObject', 's3:PutObjectRetention'],
      Resource: objs,
      Condition: { StringNotEquals: { 's3:object-lock-mode': 'COMPLIANCE' }, Null: { 's3:object-lock-mode': 'false' } },
    },
    {
      Sid: 'DenyRetentionShorterThanDefault',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: ['s3:PutObject', 's3:PutObjectRetention'],
      Resource: objs,
      Condition: { NumericLessThan: { 's3:object-lock-remaining-retention-days': i.retentionDays } },
    },
    {
      Sid: 'DenyUploadsByAnyoneButTheWriters',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 's3:PutObject',
      Resource: objs,
      // Service principals (CloudTrail, Config, …) carry aws:PrincipalServiceName and are confined by the Allow statements below.
      Condition: { ArnNotLike: { 'aws:PrincipalArn': writers }, Null: { 'aws:PrincipalServiceName': 'true' } },
    },
    { Sid: 'DenyWriterOutsideItsPrefix', Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:PutObject', NotResource: under(LAKE_PREFIXES.writer), Condition: { ArnEquals: { 'aws:PrincipalArn': i.writerRoleArn } } },
    { Sid: 'DenyVaultOutsideItsPrefix', Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:PutObject', NotResource: under(LAKE_PREFIXES.custody), Condition: { ArnEquals: { 'aws:PrincipalArn': i.serviceRoleArn } } },
    {
      Sid: 'DenyUploadsNotEncryptedWithTheLakeKey',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 's3:PutObject',
      ...(kind === 'lake' ? { NotResource: digests } : { Resource: objs }),
      Condition: { StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' }, Null: { 's3:x-amz-server-side-encryption': 'false' } },
    },
    {
      Sid: 'DenyUploadsWithAnotherKey',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 's3:PutObject',
      Resource: objs,
      Condition: { StringNotEquals: { 's3:x-amz-server-side-encryption-aws-kms-key-id': i.keyArn }, Null: { 's3:x-amz-server-side-encryption-aws-kms-key-id': 'false' } },
    },
  ];
  if (kind === 'evidence' || !i.producers) return s;

  const p = i.producers;
  const src = sourceCondition(p, i.securityAccount);
  const ownerAcl = { StringEquals: { 's3:x-amz-acl': 'bucket-owner-full-control' } };
  const service = (name: string, sid: string, bucketActions: string[], prefix: string, acl: boolean): PolicyStatementJson[] => [
    { Sid: `${sid}BucketCheck`, Effect: 'Allow', Principal: { Service: name }, Action: bucketActions, Resource: b, Condition: src },
    { Sid: `${sid}Write`, Effect: 'Allow', Principal: { Service: name }, Action: 's3:PutObject', Resource: arn.objects(i.bucketName, prefix), Condition: acl ? merge(src, ownerAcl) : src },
  ];
  const wp = workloadPrincipal(p);
  const firehose = i.firehoseRolePattern
    ? [
        {
          Sid: 'FirehoseWritesUnderItsAccount',
          Effect: 'Allow' as const,
          Principal: wp.Principal,
          Action: ['s3:PutObject', 's3:AbortMultipartUpload'],
          // Each workload account's stream writes under firehose/<its account id>/ only.
          Resource: arn.objects(i.bucketName, `${LAKE_PREFIXES.firehose}/\${aws:PrincipalAccount}/`),
          Condition: merge(wp.Condition, { ArnLike: { 'aws:PrincipalArn': i.firehoseRolePattern } }),
        },
        {
          Sid: 'FirehoseBucketCheck',
          Effect: 'Allow' as const,
          Principal: wp.Principal,
          Action: ['s3:GetBucketLocation', 's3:ListBucketMultipartUploads'],
          Resource: b,
          Condition: merge(wp.Condition, { ArnLike: { 'aws:PrincipalArn': i.firehoseRolePattern } }),
        },
      ]
    : [];
  return [
    ...s,
    ...service('cloudtrail.amazonaws.com', 'CloudTrail', ['s3:GetBucketAcl'], `${LAKE_PREFIXES.cloudtrail}/AWSLogs/`, true),
    ...service('config.amazonaws.com', 'Config', ['s3:GetBucketAcl', 's3:ListBucket'], `${LAKE_PREFIXES.config}/AWSLogs/`, true),
    ...service('delivery.logs.amazonaws.com', 'VpcFlowLogs', ['s3:GetBucketAcl', 's3:ListBucket'], `${LAKE_PREFIXES.vpcFlowLogs}/AWSLogs/`, true),
    ...service('guardduty.amazonaws.com', 'GuardDuty', ['s3:GetBucketLocation'], `${LAKE_PREFIXES.guardDuty}/`, false),
    ...service('macie.amazonaws.com', 'Macie', ['s3:GetBucketLocation'], `${LAKE_PREFIXES.macie}/`, false),
    ...firehose,
  ];
}

/**
 * The access-log bucket: only S3 server access logging writes (CDK adds that Allow when a bucket
 * logs here); nobody deletes or changes it. S3 access logging cannot target an Object Lock
 * bucket with default retention nor an SSE-KMS bucket, hence a separate, SSE-S3 bucket.
 */
export function accessLogBucketStatements(bucketName: string): PolicyStatementJson[] {
  const b = arn.bucket(bucketName);
  const objs = arn.objects(bucketName);
  return [
    { Sid: 'DenyDeletesAndConfigurationChanges', Effect: 'Deny', Principal: { AWS: '*' }, Action: [...LOCKED_BUCKET_ACTIONS, 's3:PutBucketVersioning'], Resource: [b, objs] },
    { Sid: 'DenyUploadsByPrincipals', Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:PutObject', Resource: objs, Condition: { Null: { 'aws:PrincipalServiceName': 'true' } } },
  ];
}

export interface LockedKeyPolicyInput {
  securityAccount: string;
  securityAdminRoleArn: string;
}

/**
 * The part every key of the security account shares. The account (through IAM policies) may
 * use and describe the key; nobody may disable, delete, replicate it or grant on it; only the
 * security admin, with MFA, may change its policy. The key is created with
 * BypassPolicyLockoutSafetyCheck because its creator (CloudFormation) is deliberately locked out.
 */
export function lockedKeyStatements(i: LockedKeyPolicyInput): PolicyStatementJson[] {
  return [
    {
      Sid: 'AccountUsesTheKeyThroughIam',
      Effect: 'Allow',
      Principal: { AWS: arn.root(i.securityAccount) },
      Action: [
        'kms:Describe*',
        'kms:Get*',
        'kms:List*',
        'kms:Encrypt',
        'kms:Decrypt',
        'kms:ReEncrypt*',
        'kms:GenerateDataKey*',
        'kms:TagResource',
        'kms:UntagResource',
        'kms:CreateAlias',
        'kms:UpdateAlias',
        'kms:DeleteAlias',
        'kms:EnableKey',
        'kms:EnableKeyRotation',
        'kms:UpdateKeyDescription',
        'kms:CancelKeyDeletion',
        'kms:PutKeyPolicy',
      ],
      Resource: '*',
    },
    { Sid: 'NobodyDestroysOrSharesTheKey', Effect: 'Deny', Principal: { AWS: '*' }, Action: [...KEY_DESTRUCTION_ACTIONS, 'kms:CreateGrant'], Resource: '*' },
    { Sid: 'OnlyTheSecurityAdminChangesThePolicy', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:PutKeyPolicy', Resource: '*', Condition: { ArnNotEquals: { 'aws:PrincipalArn': i.securityAdminRoleArn } } },
    { Sid: 'PolicyChangesNeedMfa', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:PutKeyPolicy', Resource: '*', Condition: { BoolIfExists: { 'aws:MultiFactorAuthPresent': 'false' } } },
  ];
}

export interface LakeKeyPolicyInput extends LockedKeyPolicyInput {
  region: string;
  lakeBucketName: string;
  producers: Producers;
  firehoseRolePattern: string;
}

/** The lake key: the shared part plus the delivery services and the workload Firehose roles. */
export function lakeKeyStatements(i: LakeKeyPolicyInput): PolicyStatementJson[] {
  const src = sourceCondition(i.producers, i.securityAccount);
  const svc = (sid: string, service: string, actions: string[], extra: Record<string, Record<string, unknown>> = {}): PolicyStatementJson => ({
    Sid: sid,
    Effect: 'Allow',
    Principal: { Service: service },
    Action: actions,
    Resource: '*',
    Condition: merge(src, extra),
  });
  const wp = workloadPrincipal(i.producers);
  return [
    ...lockedKeyStatements(i),
    svc('CloudTrailEncryptsLogs', 'cloudtrail.amazonaws.com', ['kms:GenerateDataKey*'], { StringLike: { 'kms:EncryptionContext:aws:cloudtrail:arn': 'arn:aws:cloudtrail:*:*:trail/*' } }),
    svc('CloudTrailDescribesKey', 'cloudtrail.amazonaws.com', ['kms:DescribeKey']),
    svc('VpcFlowLogsEncrypt', 'delivery.logs.amazonaws.com', ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey']),
    svc('ConfigEncrypts', 'config.amazonaws.com', ['kms:Decrypt', 'kms:GenerateDataKey']),
    svc('GuardDutyEncryptsFindings', 'guardduty.amazonaws.com', ['kms:GenerateDataKey']),
    svc('MacieEncryptsResults', 'macie.amazonaws.com', ['kms:GenerateDataKey', 'kms:Encrypt']),
    {
      Sid: 'WorkloadFirehoseEncryptsThroughS3',
      Effect: 'Allow',
      Principal: wp.Principal,
      // Decrypt: S3 multipart uploads decrypt the data key for each part.
      Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
      Resource: '*',
      Condition: merge(wp.Condition, {
        ArnLike: { 'aws:PrincipalArn': i.firehoseRolePattern },
        StringEquals: { 'kms:ViaService': `s3.${i.region}.amazonaws.com` },
        StringLike: { 'kms:EncryptionContext:aws:s3:arn': [arn.bucket(i.lakeBucketName), arn.objects(i.lakeBucketName, `${LAKE_PREFIXES.firehose}/`)] },
      }),
    },
  ];
}
