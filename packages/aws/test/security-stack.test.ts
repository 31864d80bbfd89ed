/**
 * CDK assertion tests of the security account stack: every property issue 8 asks of it, read
 * from the synthesized template (synthesized once per mode for this file).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { SecurityAccountStack } from '../src/security-account-stack.js';
import { securityAccountNames } from '../src/names.js';
import type { CfnTemplate } from './support/cfn.js';
import { ADMIN, buildBlueprint, DEPLOY, MGMT, ORG, OTHER, REGION, SEC, synthTemplates, WORKLOAD } from './support/stacks.js';

const n = securityAccountNames(SEC, REGION);
const org = synthTemplates(buildBlueprint({ mode: 'organization' }));
const accounts = synthTemplates(buildBlueprint({ mode: 'accounts' }));
const t = Template.fromJSON(org.Security as unknown as Record<string, unknown>);
const ta = Template.fromJSON(accounts.Security as unknown as Record<string, unknown>);
const raw = org.Security as CfnTemplate;

type Statement = Record<string, unknown> & { Effect: string; Sid?: string; Action?: string | string[]; NotAction?: string | string[]; Principal?: unknown; Resource?: unknown; NotResource?: unknown; Condition?: Record<string, Record<string, unknown>> };
const list = (x: unknown): string[] => (x === undefined ? [] : Array.isArray(x) ? (x as string[]) : [x as string]);

function logicalId(template: CfnTemplate, type: string, pred: (p: Record<string, unknown>) => boolean): string {
  const hits = Object.entries(template.Resources).filter(([, r]) => r.Type === type && pred((r.Properties ?? {}) as Record<string, unknown>));
  assert.equal(hits.length, 1, `exactly one ${type} matches`);
  return hits[0]?.[0] as string;
}
const bucketId = (template: CfnTemplate, name: string) => logicalId(template, 'AWS::S3::Bucket', (p) => p.BucketName === name);
function bucketPolicy(template: CfnTemplate, name: string): Statement[] {
  const id = bucketId(template, name);
  const pol = Object.values(template.Resources).find((r) => r.Type === 'AWS::S3::BucketPolicy' && JSON.stringify(r.Properties?.Bucket) === JSON.stringify({ Ref: id }));
  assert.ok(pol, `a bucket policy for ${name}`);
  return (pol.Properties?.PolicyDocument as { Statement: Statement[] }).Statement;
}
function managedPolicy(template: CfnTemplate, name: string): Statement[] {
  const r = Object.values(template.Resources).find((x) => x.Type === 'AWS::IAM::ManagedPolicy' && x.Properties?.ManagedPolicyName === name);
  assert.ok(r, `managed policy ${name}`);
  return (r.Properties?.PolicyDocument as { Statement: Statement[] }).Statement;
}
function role(template: CfnTemplate, name: string): Record<string, unknown> {
  const r = Object.values(template.Resources).find((x) => x.Type === 'AWS::IAM::Role' && x.Properties?.RoleName === name);
  assert.ok(r, `role ${name}`);
  return r.Properties as Record<string, unknown>;
}
const lakeKeyId = logicalId(raw, 'AWS::KMS::Key', (p) => String(p.Description).startsWith('Custody security data lake'));
const alarmKeyId = logicalId(raw, 'AWS::KMS::Key', (p) => p.Description === 'Custody alarms: encrypts the alarm topic');
const lakeKeyArn = { 'Fn::GetAtt': [lakeKeyId, 'Arn'] };

describe('security account stack: the lake bucket', () => {
  it('is versioned, Object Lock COMPLIANCE with the LakeRetentionDays parameter, private and kept on stack deletion', () => {
    t.hasParameter('LakeRetentionDays', { Type: 'Number', Default: 365, MinValue: 1 });
    t.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BucketName: n.lakeBucket,
        VersioningConfiguration: { Status: 'Enabled' },
        ObjectLockEnabled: true,
        ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: { Ref: 'LakeRetentionDays' } } } },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      }),
    });
  });

  it('is SSE-KMS with the per-region customer-managed lake key, rotation on, never deleted', () => {
    t.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: n.lakeBucket,
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: lakeKeyArn } }] },
    });
    t.hasResource('AWS::KMS::Key', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({ EnableKeyRotation: true, KeySpec: 'SYMMETRIC_DEFAULT', BypassPolicyLockoutSafetyCheck: true, Description: Match.stringLikeRegexp(`${REGION}: encrypts`) }),
    });
    t.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/custody-lake', TargetKeyId: { Ref: lakeKeyId } });
  });

  it('moves objects and old versions to Glacier Instant Retrieval and Deep Archive after the configured days', () => {
    t.hasParameter('ArchiveAfterDays', { Type: 'Number', Default: 90 });
    t.hasParameter('DeepArchiveAfterDays', { Type: 'Number', Default: 365 });
    const transitions = [
      { StorageClass: 'GLACIER_IR', TransitionInDays: { Ref: 'ArchiveAfterDays' } },
      { StorageClass: 'DEEP_ARCHIVE', TransitionInDays: { Ref: 'DeepArchiveAfterDays' } },
    ];
    t.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: n.lakeBucket,
      LifecycleConfiguration: { Rules: [Match.objectLike({ Status: 'Enabled', Transitions: transitions, NoncurrentVersionTransitions: transitions })] },
    });
    const rules = (raw.Resources[bucketId(raw, n.lakeBucket)]?.Properties?.LifecycleConfiguration as { Rules: Array<Record<string, unknown>> }).Rules;
    assert.ok(rules.every((r) => r.ExpirationInDays === undefined && r.NoncurrentVersionExpiration === undefined), 'no lifecycle rule expires (deletes) anything');
  });

  it('logs its access to the separate access-log bucket', () => {
    t.hasResourceProperties('AWS::S3::Bucket', { BucketName: n.lakeBucket, LoggingConfiguration: { DestinationBucketName: { Ref: bucketId(raw, n.accessLogBucket) }, LogFilePrefix: 'lake/' } });
  });

  it('refuses plain-HTTP requests (TLS only, at least TLS 1.2)', () => {
    for (const name of [n.lakeBucket, n.accessLogBucket, n.evidenceBucket]) {
      const st = bucketPolicy(raw, name);
      assert.ok(st.some((s) => s.Effect === 'Deny' && list(s.Action).includes('s3:*') && JSON.stringify(s.Condition) === JSON.stringify({ Bool: { 'aws:SecureTransport': 'false' } })), `${name} denies non-TLS`);
      assert.ok(st.some((s) => s.Effect === 'Deny' && JSON.stringify(s.Condition) === JSON.stringify({ NumericLessThan: { 's3:TlsVersion': 1.2 } })), `${name} denies TLS < 1.2`);
    }
  });

  it('denies deletes, policy, lock, lifecycle and versioning changes to every principal, without conditions', () => {
    const st = bucketPolicy(raw, n.lakeBucket);
    const unconditional = st.filter((s) => s.Effect === 'Deny' && JSON.stringify(s.Principal) === JSON.stringify({ AWS: '*' }) && !s.Condition).flatMap((s) => list(s.Action));
    for (const a of ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:DeleteBucket', 's3:PutBucketPolicy', 's3:DeleteBucketPolicy', 's3:PutBucketObjectLockConfiguration', 's3:BypassGovernanceRetention', 's3:PutObjectLegalHold', 's3:PutLifecycleConfiguration', 's3:PutBucketVersioning', 's3:PutEncryptionConfiguration', 's3:PutBucketAcl', 's3:PutBucketPublicAccessBlock', 's3:PutReplicationConfiguration']) {
      assert.ok(unconditional.includes(a), `${a} is denied to every principal`);
    }
    const retention = st.find((s) => s.Sid === 'DenyRetentionChangesExceptVault');
    assert.deepEqual(retention?.Condition, { ArnNotEquals: { 'aws:PrincipalArn': `arn:aws:iam::${SEC}:role/${n.serviceRole}` } }, 'only the vault may lengthen its own retention');
    assert.ok(st.some((s) => s.Sid === 'DenyGovernanceMode'), 'GOVERNANCE uploads are refused');
    assert.deepEqual(st.find((s) => s.Sid === 'DenyRetentionShorterThanDefault')?.Condition, { NumericLessThan: { 's3:object-lock-remaining-retention-days': { Ref: 'LakeRetentionDays' } } });
    for (const s of st.filter((x) => x.Effect === 'Allow')) {
      for (const a of list(s.Action)) assert.doesNotMatch(a, /^s3:(Delete|Put(Bucket|Object)?(Policy|Acl|Retention|LegalHold|Versioning|Lifecycle|ObjectLockConfiguration|Encryption))|Bypass|\*/, `no Allow grants ${a}`);
    }
  });

  it('lets only the writer role, the vault and the delivery services put objects, each under its own prefix', () => {
    const st = bucketPolicy(raw, n.lakeBucket);
    const others = st.find((s) => s.Sid === 'DenyUploadsByAnyoneButTheWriters');
    assert.deepEqual(others?.Condition, {
      ArnNotLike: { 'aws:PrincipalArn': [`arn:aws:iam::${SEC}:role/${n.writerRole}`, `arn:aws:iam::${SEC}:role/${n.serviceRole}`, `arn:aws:iam::*:role/custody-firehose-delivery-${REGION}`] },
      Null: { 'aws:PrincipalServiceName': 'true' },
    });
    const lake = `arn:aws:s3:::${n.lakeBucket}`;
    const puts = st.filter((s) => s.Effect === 'Allow' && list(s.Action).includes('s3:PutObject')).map((s) => [JSON.stringify(s.Principal), list(s.Resource).join(',')]);
    assert.deepEqual(puts.sort(), [
      [JSON.stringify({ AWS: '*' }), `${lake}/firehose/\${aws:PrincipalAccount}/*`],
      [JSON.stringify({ Service: 'cloudtrail.amazonaws.com' }), `${lake}/cloudtrail/AWSLogs/*`],
      [JSON.stringify({ Service: 'config.amazonaws.com' }), `${lake}/config/AWSLogs/*`],
      [JSON.stringify({ Service: 'delivery.logs.amazonaws.com' }), `${lake}/vpcflowlogs/AWSLogs/*`],
      [JSON.stringify({ Service: 'guardduty.amazonaws.com' }), `${lake}/guardduty/*`],
      [JSON.stringify({ Service: 'macie.amazonaws.com' }), `${lake}/macie/*`],
    ].sort());
    for (const s of st.filter((x) => x.Effect === 'Allow' && JSON.stringify(x.Principal).includes('Service'))) {
      assert.deepEqual(s.Condition?.StringEquals?.['aws:SourceOrgID'], ORG, `${s.Sid} is limited to the organization`);
    }
    assert.equal(st.find((s) => s.Sid === 'FirehoseWritesUnderItsAccount')?.Condition?.StringEquals?.['aws:PrincipalOrgID'], ORG);
    assert.deepEqual(st.find((s) => s.Sid === 'DenyWriterOutsideItsPrefix')?.NotResource, `${lake}/writer/*`);
    assert.deepEqual(st.find((s) => s.Sid === 'DenyVaultOutsideItsPrefix')?.NotResource, `${lake}/custody/*`);
  });

  it('accepts SSE-S3 only for CloudTrail digest files, and no KMS key but the lake key', () => {
    const st = bucketPolicy(raw, n.lakeBucket);
    const enc = st.find((s) => s.Sid === 'DenyUploadsNotEncryptedWithTheLakeKey');
    assert.equal(enc?.NotResource, `arn:aws:s3:::${n.lakeBucket}/cloudtrail/AWSLogs/*/CloudTrail-Digest/*`);
    assert.deepEqual(enc?.Condition, { StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' }, Null: { 's3:x-amz-server-side-encryption': 'false' } });
    assert.deepEqual(st.find((s) => s.Sid === 'DenyUploadsWithAnotherKey')?.Condition?.StringNotEquals, { 's3:x-amz-server-side-encryption-aws-kms-key-id': lakeKeyArn });
  });

  it('in account-list mode names the listed accounts (and itself) instead of the organization', () => {
    const st = bucketPolicy(accounts.Security as CfnTemplate, n.lakeBucket);
    const ct = st.find((s) => s.Sid === 'CloudTrailWrite');
    assert.deepEqual(ct?.Condition?.StringEquals?.['aws:SourceAccount'], [WORKLOAD, MGMT, SEC]);
    assert.deepEqual(st.find((s) => s.Sid === 'FirehoseWritesUnderItsAccount')?.Principal, { AWS: [`arn:aws:iam::${WORKLOAD}:root`, `arn:aws:iam::${MGMT}:root`] });
    assert.ok(!JSON.stringify(st).includes('PrincipalOrgID') && !JSON.stringify(st).includes('SourceOrgID'));
  });
});

describe('security account stack: the lake key', () => {
  const policy = (raw.Resources[lakeKeyId]?.Properties?.KeyPolicy as { Statement: Statement[] }).Statement;
  it('lets nobody disable, delete, replicate or grant on it, and only the security admin with MFA change its policy', () => {
    const destroy = policy.find((s) => s.Sid === 'NobodyDestroysOrSharesTheKey');
    assert.deepEqual(destroy?.Principal, { AWS: '*' });
    assert.equal(destroy?.Condition, undefined);
    for (const a of ['kms:ScheduleKeyDeletion', 'kms:DisableKey', 'kms:DisableKeyRotation', 'kms:DeleteImportedKeyMaterial', 'kms:ReplicateKey', 'kms:CreateGrant']) assert.ok(list(destroy?.Action).includes(a), a);
    assert.deepEqual(policy.find((s) => s.Sid === 'OnlyTheSecurityAdminChangesThePolicy')?.Condition, { ArnNotEquals: { 'aws:PrincipalArn': `arn:aws:iam::${SEC}:role/${n.securityAdminRole}` } });
    assert.deepEqual(policy.find((s) => s.Sid === 'PolicyChangesNeedMfa')?.Condition, { BoolIfExists: { 'aws:MultiFactorAuthPresent': 'false' } });
    const account = policy.find((s) => s.Sid === 'AccountUsesTheKeyThroughIam');
    assert.ok(!list(account?.Action).some((a) => a === 'kms:*' || a.startsWith('kms:Schedule') || a.startsWith('kms:Disable')), 'the account is not given kms:* or destructive calls');
  });
  it('lets each delivery service encrypt, limited to the organization', () => {
    for (const [sid, svc] of [['CloudTrailEncryptsLogs', 'cloudtrail'], ['VpcFlowLogsEncrypt', 'delivery.logs'], ['ConfigEncrypts', 'config'], ['GuardDutyEncryptsFindings', 'guardduty'], ['MacieEncryptsResults', 'macie']] as const) {
      const s = policy.find((x) => x.Sid === sid);
      assert.deepEqual(s?.Principal, { Service: `${svc}.amazonaws.com` });
      assert.equal(s?.Condition?.StringEquals?.['aws:SourceOrgID'], ORG);
    }
    const fh = policy.find((s) => s.Sid === 'WorkloadFirehoseEncryptsThroughS3');
    assert.deepEqual(list(fh?.Action), ['kms:GenerateDataKey', 'kms:Decrypt']);
    assert.equal(fh?.Condition?.StringEquals?.['kms:ViaService'], `s3.${REGION}.amazonaws.com`);
  });
});

describe('security account stack: the access-log bucket', () => {
  it('is a separate, versioned, SSE-S3 bucket without Object Lock, written only by S3 server access logging', () => {
    t.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BucketName: n.accessLogBucket,
        VersioningConfiguration: { Status: 'Enabled' },
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        ObjectLockEnabled: Match.absent(),
        ObjectLockConfiguration: Match.absent(),
        LoggingConfiguration: Match.absent(),
      }),
    });
    const st = bucketPolicy(raw, n.accessLogBucket);
    assert.ok(st.some((s) => s.Effect === 'Allow' && JSON.stringify(s.Principal) === JSON.stringify({ Service: 'logging.s3.amazonaws.com' })));
    assert.deepEqual(st.find((s) => s.Sid === 'DenyUploadsByPrincipals')?.Condition, { Null: { 'aws:PrincipalServiceName': 'true' } });
    assert.ok(list(st.find((s) => s.Sid === 'DenyDeletesAndConfigurationChanges')?.Action).includes('s3:DeleteObjectVersion'));
  });
});

describe('security account stack: roles and the auditor group', () => {
  it('writer: trusted by the organization with the external id, only from producer roles; PutObject under writer/ and GenerateDataKey through S3, nothing else', () => {
    t.hasParameter('WriterExternalId', { Type: 'String', NoEcho: true, MinLength: 16 });
    const trust = (role(raw, n.writerRole).AssumeRolePolicyDocument as { Statement: Statement[] }).Statement;
    assert.equal(trust.length, 1);
    assert.deepEqual(trust[0]?.Principal, { AWS: '*' });
    assert.deepEqual(trust[0]?.Condition, { StringEquals: { 'aws:PrincipalOrgID': ORG, 'sts:ExternalId': { Ref: 'WriterExternalId' } }, ArnLike: { 'aws:PrincipalArn': `arn:aws:iam::*:role/custody-producer-${REGION}` } });
    const taTrust = ((accounts.Security as CfnTemplate).Resources[logicalId(accounts.Security as CfnTemplate, 'AWS::IAM::Role', (p) => p.RoleName === n.writerRole)]?.Properties?.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement;
    assert.deepEqual(taTrust[0]?.Principal, { AWS: [`arn:aws:iam::${WORKLOAD}:root`, `arn:aws:iam::${MGMT}:root`] });
    const st = managedPolicy(raw, `custody-writer-${REGION}`);
    assert.deepEqual(st.map((s) => [s.Effect, list(s.Action)]), [['Allow', ['s3:PutObject']], ['Allow', ['kms:GenerateDataKey']]]);
    assert.deepEqual(list(st[0]?.Resource), [`arn:aws:s3:::${n.lakeBucket}/writer/*`, `arn:aws:s3:::${n.evidenceBucket}/writer/*`]);
    assert.deepEqual(st[1]?.Condition, { StringEquals: { 'kms:ViaService': `s3.${REGION}.amazonaws.com` } });
  });

  it('auditor role and Auditor group: MFA required; read, list and decrypt only', () => {
    const trust = (role(raw, n.auditorRole).AssumeRolePolicyDocument as { Statement: Statement[] }).Statement;
    assert.deepEqual(trust[0]?.Condition, { Bool: { 'aws:MultiFactorAuthPresent': 'true' } });
    assert.deepEqual(trust[0]?.Principal, { AWS: [`arn:aws:iam::${SEC}:root`, `arn:aws:iam::${OTHER}:root`] });
    const read = managedPolicy(raw, n.lakeReadPolicy);
    const actions = read.flatMap((s) => list(s.Action));
    assert.ok(read.every((s) => s.Effect === 'Allow'));
    for (const a of actions) assert.match(a, /^(s3:(Get|List)[A-Za-z]*|kms:(Decrypt|DescribeKey|GetKeyRotationStatus|GetKeyPolicy)|cloudtrail:ListPublicKeys)$/, `${a} is a read`);
    t.hasResourceProperties('AWS::IAM::Group', { GroupName: n.auditorGroup, ManagedPolicyArns: Match.arrayWith([{ Ref: Match.stringLikeRegexp('AccessLakeRead') }]) });
    const self = managedPolicy(raw, `custody-auditor-self-service-${REGION}`);
    const mfaDeny = self.find((s) => s.Effect === 'Deny');
    assert.deepEqual(mfaDeny?.Condition, { BoolIfExists: { 'aws:MultiFactorAuthPresent': 'false' } });
    assert.ok(list(mfaDeny?.NotAction).every((a) => /^(iam:(CreateVirtualMFADevice|EnableMFADevice|ResyncMFADevice|ListMFADevices|GetUser|ChangePassword|GetAccountPasswordPolicy|ListVirtualMFADevices)|sts:GetSessionToken)$/.test(a)), 'without MFA only MFA setup works');
  });

  it('security admin: only from the admin account, with MFA less than an hour old', () => {
    const trust = (role(raw, n.securityAdminRole).AssumeRolePolicyDocument as { Statement: Statement[] }).Statement;
    assert.deepEqual(trust, [{ Sid: 'AdminAccountWithRecentMfa', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ADMIN}:root` }, Action: 'sts:AssumeRole', Condition: { Bool: { 'aws:MultiFactorAuthPresent': 'true' }, NumericLessThan: { 'aws:MultiFactorAuthAge': '3600' } } }]);
    const st = managedPolicy(raw, `custody-security-admin-${REGION}`);
    assert.deepEqual(st.find((s) => s.Sid === 'CreateAuditorUsersWithTheirBoundary')?.Condition, { StringEquals: { 'iam:PermissionsBoundary': `arn:aws:iam::${SEC}:policy/${n.auditorBoundary}` } });
    assert.ok(!st.flatMap((s) => list(s.Action)).some((a) => /^s3:(Put|Delete)|ScheduleKeyDeletion|DisableKey|iam:(Attach|Put)/.test(a)));
  });

  it('deployer: only from the deployment account; never reads or writes evidence or uses the keys', () => {
    const trust = (role(raw, n.deployerRole).AssumeRolePolicyDocument as { Statement: Statement[] }).Statement;
    assert.deepEqual(trust, [{ Sid: 'DeploymentAccountOnly', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${DEPLOY}:root` }, Action: 'sts:AssumeRole' }]);
    const st = managedPolicy(raw, `custody-deployer-${REGION}`);
    assert.ok(list(st.find((s) => s.Sid === 'NeverReadsOrWritesEvidence')?.Action).includes('s3:GetObject*'));
    assert.ok(list(st.find((s) => s.Sid === 'NeverUsesTheKeys')?.Action).includes('kms:Decrypt'));
  });

  it('puts the guardrail permissions boundary on every role, and creates no IAM user and no access key', () => {
    const roles = Object.entries(raw.Resources).filter(([, r]) => r.Type === 'AWS::IAM::Role');
    assert.ok(roles.length >= 6);
    const boundaryId = logicalId(raw, 'AWS::IAM::ManagedPolicy', (p) => p.ManagedPolicyName === n.roleBoundary);
    for (const [id, r] of roles) assert.deepEqual(r.Properties?.PermissionsBoundary, { Ref: boundaryId }, `${id} carries the boundary`);
    t.resourceCountIs('AWS::IAM::User', 0);
    t.resourceCountIs('AWS::IAM::AccessKey', 0);
    t.resourceCountIs('AWS::IAM::Policy', 1); // only the ECS execution role's generated policy (acknowledged in cdk-nag)
  });
});

/** The reference list (../shared/reference/aws-sources.md, "API calls that stop or delete log generation"), transcribed. */
const REFERENCE: Record<string, string[]> = {
  'cloudtrail.amazonaws.com': ['StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors', 'DeleteEventDataStore', 'UpdateEventDataStore'],
  'ec2.amazonaws.com': ['DeleteFlowLogs'],
  'guardduty.amazonaws.com': ['DeleteDetector', 'UpdateDetector', 'DisassociateFromMasterAccount', 'DisassociateFromAdministratorAccount', 'DisassociateMembers', 'DeleteMembers', 'StopMonitoringMembers', 'DeletePublishingDestination', 'UpdatePublishingDestination', 'CreateFilter'],
  'config.amazonaws.com': ['StopConfigurationRecorder', 'DeleteConfigurationRecorder', 'DeleteDeliveryChannel', 'PutDeliveryChannel', 'PutConfigurationRecorder', 'DeleteConfigRule'],
  'macie2.amazonaws.com': ['DisableMacie', 'DisableOrganizationAdminAccount', 'UpdateMacieSession', 'ArchiveFindings', 'CreateFindingsFilter', 'UpdateFindingsFilter', 'DisassociateFromMasterAccount', 'DisassociateMember'],
  'logs.amazonaws.com': ['DeleteLogGroup', 'DeleteLogStream', 'DeleteSubscriptionFilter', 'PutRetentionPolicy', 'DeleteDestination'],
  'kms.amazonaws.com': ['DisableKey', 'ScheduleKeyDeletion'],
  'events.amazonaws.com': ['DisableRule', 'DeleteRule'],
  'monitoring.amazonaws.com': ['DeleteAlarms'],
};
const REFERENCE_S3 = ['PutBucketLifecycle', 'DeleteBucketLifecycle', 'PutBucketPolicy', 'DeleteBucketPolicy', 'PutBucketVersioning', 'PutBucketReplication', 'DeleteBucketReplication', 'DeleteBucketEncryption', 'DeleteBucket', 'PutBucketAcl'];

describe('security account stack: alarms', () => {
  const topicId = logicalId(raw, 'AWS::SNS::Topic', (p) => p.TopicName === 'custody-alarms');
  const rules = Object.values(raw.Resources).filter((r) => r.Type === 'AWS::Events::Rule').map((r) => r.Properties as { Name: string; EventBusName: string; EventPattern: { detail: Record<string, unknown> }; Targets: Array<{ Arn: unknown }> });

  it('has a rule for every "stop or delete log generation" call of the reference list, on its own bus and on the forwarded-events bus', () => {
    for (const bus of ['default', n.alarmBus]) {
      for (const [source, names] of Object.entries(REFERENCE)) {
        for (const name of names) {
          const hit = rules.filter((r) => r.EventBusName === bus && list(r.EventPattern.detail.eventSource).includes(source) && list(r.EventPattern.detail.eventName).includes(name));
          assert.ok(hit.length >= 1, `${source} ${name} alarms on bus ${bus}`);
        }
      }
    }
    const disable = rules.find((r) => r.Name === 'custody-stop-guardduty-disable' && r.EventBusName === 'default');
    assert.deepEqual(disable?.EventPattern.detail.requestParameters, { enable: [false] });
    const archive = rules.find((r) => r.Name === 'custody-stop-guardduty-archive' && r.EventBusName === 'default');
    assert.deepEqual(archive?.EventPattern.detail.requestParameters, { action: ['ARCHIVE'] });
  });

  it('alarms on delete, lock and policy calls on the log buckets (the reference S3 list included)', () => {
    const s3 = rules.find((r) => r.Name === 'custody-lake-tampering');
    assert.ok(s3);
    for (const name of [...REFERENCE_S3, 'DeleteObject', 'DeleteObjects', 'PutObjectRetention', 'PutObjectLockConfiguration', 'PutBucketPublicAccessBlock']) assert.ok(list(s3.EventPattern.detail.eventName).includes(name), name);
    assert.deepEqual(s3.EventPattern.detail.requestParameters, { bucketName: [n.lakeBucket, n.accessLogBucket, n.evidenceBucket] });
    // The deletes are data events: the account trail records them for the log buckets.
    t.hasResourceProperties('AWS::CloudTrail::Trail', {
      TrailName: n.trail,
      S3BucketName: n.lakeBucket,
      S3KeyPrefix: 'cloudtrail',
      KMSKeyId: lakeKeyArn,
      EnableLogFileValidation: true,
      IsLogging: true,
      AdvancedEventSelectors: Match.arrayWith([
        Match.objectLike({ FieldSelectors: Match.arrayWith([{ Field: 'resources.ARN', StartsWith: [`arn:aws:s3:::${n.lakeBucket}/`, `arn:aws:s3:::${n.accessLogBucket}/`, `arn:aws:s3:::${n.evidenceBucket}/`] }, { Field: 'eventName', Equals: Match.arrayWith(['DeleteObject', 'DeleteObjects']) }]) }),
      ]),
    });
  });

  it('sends every alarm to one KMS-encrypted SNS topic with the e-mail subscription from the AlarmEmail parameter', () => {
    assert.ok(rules.length >= 2 * 11 + 1);
    for (const r of rules) assert.deepEqual(r.Targets.map((x) => x.Arn), [{ Ref: topicId }]);
    t.hasResourceProperties('AWS::SNS::Topic', { TopicName: 'custody-alarms', KmsMasterKeyId: { 'Fn::GetAtt': [alarmKeyId, 'Arn'] } });
    t.hasParameter('AlarmEmail', { Type: 'String', AllowedPattern: Match.anyValue() });
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: { Ref: 'AlarmEmail' }, TopicArn: { Ref: topicId } });
    t.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Principal: { Service: 'events.amazonaws.com' }, Action: 'sns:Publish', Condition: { StringEquals: { 'aws:SourceAccount': SEC } } })]) },
    });
    const alarmKey = (raw.Resources[alarmKeyId]?.Properties?.KeyPolicy as { Statement: Statement[] }).Statement;
    assert.ok(alarmKey.some((s) => s.Sid === 'EventBridgePublishesToTheEncryptedTopic'));
    assert.ok(alarmKey.some((s) => s.Sid === 'NobodyDestroysOrSharesTheKey'));
  });

  it('accepts forwarded events from the organization on its own bus', () => {
    t.hasResourceProperties('AWS::Events::EventBus', {
      Name: n.alarmBus,
      Policy: { Statement: [Match.objectLike({ Principal: { AWS: '*' }, Action: 'events:PutEvents', Condition: { StringEquals: { 'aws:PrincipalOrgID': ORG } } })] },
    });
  });
});

describe('security account stack: MFA delete evidence bucket', () => {
  it('is an Object Lock, versioned, SSE-KMS bucket with no lifecycle; only the root user may change its versioning (to turn MFA delete on)', () => {
    t.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: n.evidenceBucket,
      VersioningConfiguration: { Status: 'Enabled' },
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: { Ref: 'LakeRetentionDays' } } } },
      LifecycleConfiguration: Match.absent(),
      BucketEncryption: { ServerSideEncryptionConfiguration: [Match.objectLike({ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: lakeKeyArn } })] },
    });
    const st = bucketPolicy(raw, n.evidenceBucket);
    assert.deepEqual(st.find((s) => s.Sid === 'DenyVersioningChangesExceptRoot')?.Condition, { ArnNotEquals: { 'aws:PrincipalArn': `arn:aws:iam::${SEC}:root` } });
    assert.ok(!st.some((s) => s.Effect === 'Allow' && list(s.Action).includes('s3:PutObject')), 'no delivery service writes to the evidence bucket');
  });

  it('is not created unless asked for', () => {
    const app = new App();
    const s = new SecurityAccountStack(app, 'NoEvidence', { env: { account: SEC, region: 'eu-west-1' }, producers: { organizationId: ORG }, adminAccount: ADMIN, deploymentAccount: DEPLOY });
    const tt = Template.fromStack(s);
    tt.resourceCountIs('AWS::S3::Bucket', 2);
    tt.resourcePropertiesCountIs('AWS::S3::Bucket', { BucketName: securityAccountNames(SEC, 'eu-west-1').evidenceBucket }, 0);
    tt.hasResourceProperties('AWS::CloudTrail::Trail', { IncludeGlobalServiceEvents: false, IsMultiRegionTrail: false });
  });
});

describe('security account stack: outputs and bad input', () => {
  it('outputs what the workload stacks and the runbooks need', () => {
    for (const o of ['LakeBucketName', 'LakeKeyArn', 'AccessLogBucketName', 'EvidenceBucketName', 'WriterRoleArn', 'AuditorRoleArn', 'AuditorGroupName', 'SecurityAdminRoleArn', 'DeployerRoleArn', 'AlarmTopicArn', 'SecurityEventBusArn']) t.hasOutput(o, {});
    ta.hasOutput('LakeKeyArn', { Value: Match.anyValue() });
  });

  it('refuses an admin or deployment account equal to the security account, bad account ids and an empty producer list', () => {
    const make = (p: Partial<ConstructorParameters<typeof SecurityAccountStack>[2]>) => () =>
      new SecurityAccountStack(new App(), 'S', { env: { account: SEC, region: REGION }, producers: { organizationId: ORG }, adminAccount: ADMIN, deploymentAccount: DEPLOY, ...p });
    assert.throws(make({ adminAccount: SEC }), /separate from the security account/);
    assert.throws(make({ deploymentAccount: SEC }), /separate from the security account/);
    assert.throws(make({ adminAccount: '1234' }), /12-digit/);
    assert.throws(make({ producers: { accounts: [] } }), /at least one workload account/);
    assert.throws(make({ producers: { organizationId: 'org-1' } }), /not an organization id/);
    assert.throws(make({ env: { account: SEC, region: 'mars-1' } }), /not an AWS region/);
    assert.throws(make({ namePrefix: 'Custody_Prod' }), /Name prefix/);
  });
});
