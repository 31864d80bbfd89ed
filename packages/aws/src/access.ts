/**
 * Who can do what in the security account: the writer, auditor, security-admin, deployer and
 * vault roles, the auditor group, and the two permissions boundaries. Every policy is a named
 * customer-managed policy written out here in full (no AWS managed policies, no inline policies),
 * so the permission matrix in docs/AWS.md can be recomputed from the synthesized template.
 */
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { roleBoundaryDocument, type PolicyDocumentJson, type PolicyStatementJson } from './guardrails.js';
import { workloadPrincipal, type Producers } from './lake-policies.js';
import { acknowledge } from './nag.js';
import { arn, LAKE_PREFIXES, workloadAccountNames, type SecurityAccountNames } from './names.js';

export interface AccessProps {
  names: SecurityAccountNames;
  prefix: string;
  producers: Producers;
  /** The account whose principals (with MFA) may become security admin. */
  adminAccount: string;
  /** The account whose pipeline may become the deployer. */
  deploymentAccount: string;
  /** Further accounts whose principals (with MFA) may become auditor. */
  auditorAccounts: string[];
  /** sts:ExternalId the producers must present (a parameter's token). */
  writerExternalId: string;
  lakeKeyArn: string;
  alarmKeyArn: string;
  alarmTopicArn: string;
  /** Create the vault service role (only when the Custody service runs in this account). */
  serviceRole: boolean;
}

const S3_OBJECT_READ = [
  's3:GetObject',
  's3:GetObjectVersion',
  's3:GetObjectAttributes',
  's3:GetObjectVersionAttributes',
  's3:GetObjectRetention',
  's3:GetObjectLegalHold',
  's3:GetObjectTagging',
  's3:GetObjectVersionTagging',
];
const S3_BUCKET_READ = [
  's3:ListBucket',
  's3:ListBucketVersions',
  's3:GetBucketLocation',
  's3:GetBucketVersioning',
  's3:GetBucketObjectLockConfiguration',
  's3:GetBucketPolicy',
  's3:GetLifecycleConfiguration',
  's3:GetEncryptionConfiguration',
  's3:GetBucketLogging',
  's3:GetBucketPublicAccessBlock',
  's3:GetBucketOwnershipControls',
];
const MFA_SELF_SERVICE = [
  'iam:CreateVirtualMFADevice',
  'iam:EnableMFADevice',
  'iam:ResyncMFADevice',
  'iam:ListMFADevices',
  'iam:GetUser',
  'iam:ChangePassword',
];

const IAM5 = (finding: string) => `AwsSolutions::AwsSolutions-IAM5[${finding}]`;
const NIST = (rule: string) => `NIST.800.53.R5::NIST.800.53.R5-${rule}`;

const WHY_DEPLOYER_SERVICE_WILDCARDS =
  'The deployer runs CloudFormation for this blueprint, which creates and updates resources of this service; listing every API call would break with each CDK release. What it can never do is fixed by the guardrails (its permissions boundary and the SCP) and its own Deny statements, and is proven per action by the permission matrix in docs/AWS.md.';
const WHY_OBJECT_WILDCARD = (who: string, bucket: string) =>
  `${who} S3 object keys are chosen per upload, so objects can only be named with a wildcard under ${bucket}; the actions are limited to the ones listed and the bucket policy confines each writer to its own prefix.`;

function doc(...statements: PolicyStatementJson[]): PolicyDocumentJson {
  return { Version: '2012-10-17', Statement: statements };
}

function managed(scope: Construct, id: string, name: string, description: string, d: PolicyDocumentJson): iam.ManagedPolicy {
  return new iam.ManagedPolicy(scope, id, { managedPolicyName: name, description, document: iam.PolicyDocument.fromJson(d) });
}

function role(scope: Construct, id: string, roleName: string, description: string, trust: PolicyDocumentJson, policies: iam.IManagedPolicy[]): iam.Role {
  const r = new iam.Role(scope, id, { roleName, description, assumedBy: new iam.AccountRootPrincipal(), managedPolicies: policies });
  // The trust policy is written out in full rather than assembled from CDK principals.
  (r.node.defaultChild as iam.CfnRole).assumeRolePolicyDocument = trust;
  return r;
}

export class Access extends Construct {
  readonly roleBoundary: iam.ManagedPolicy;
  readonly auditorBoundary: iam.ManagedPolicy;
  readonly lakeRead: iam.ManagedPolicy;
  readonly writer: iam.Role;
  readonly auditor: iam.Role;
  readonly auditors: iam.Group;
  readonly securityAdmin: iam.Role;
  readonly deployer: iam.Role;
  readonly service?: iam.Role;

  constructor(scope: Construct, id: string, p: AccessProps) {
    super(scope, id);
    const n = p.names;
    const a = n.account;
    const buckets = [n.lakeBucket, n.evidenceBucket, n.accessLogBucket];
    const bucketArns = buckets.map(arn.bucket);
    const objectArns = buckets.map((b) => arn.objects(b));
    const viaS3 = { StringEquals: { 'kms:ViaService': `s3.${n.region}.amazonaws.com` } };
    const auditorRoleArn = arn.role(a, n.auditorRole);
    const auditorUsers = `arn:aws:iam::${a}:user${n.auditorUserPath}*`;

    this.roleBoundary = managed(this, 'RoleBoundary', n.roleBoundary, 'Custody: permissions boundary of every role in the security account (the guardrails)', roleBoundaryDocument({ account: a, prefix: p.prefix }));

    const readStatements: PolicyStatementJson[] = [
      { Sid: 'ReadLakeObjects', Effect: 'Allow', Action: S3_OBJECT_READ, Resource: objectArns },
      { Sid: 'ListAndDescribeLakeBuckets', Effect: 'Allow', Action: S3_BUCKET_READ, Resource: bucketArns },
      { Sid: 'DecryptThroughS3', Effect: 'Allow', Action: 'kms:Decrypt', Resource: p.lakeKeyArn, Condition: viaS3 },
      { Sid: 'DescribeLakeKey', Effect: 'Allow', Action: ['kms:DescribeKey', 'kms:GetKeyRotationStatus', 'kms:GetKeyPolicy'], Resource: p.lakeKeyArn },
      // `custody cloudtrail validate` fetches CloudTrail's public keys; the call has no resource.
      { Sid: 'CloudTrailPublicKeys', Effect: 'Allow', Action: 'cloudtrail:ListPublicKeys', Resource: '*' },
    ];
    this.lakeRead = managed(this, 'LakeRead', n.lakeReadPolicy, 'Custody: read and list the lake, decrypt through S3; nothing else', doc(...readStatements));

    const selfService: PolicyStatementJson[] = [
      { Sid: 'AssumeTheAuditorRole', Effect: 'Allow', Action: 'sts:AssumeRole', Resource: auditorRoleArn },
      { Sid: 'ManageOwnMfaAndPassword', Effect: 'Allow', Action: MFA_SELF_SERVICE, Resource: [`arn:aws:iam::${a}:user${n.auditorUserPath}\${aws:username}`, `arn:aws:iam::${a}:mfa/\${aws:username}`] },
      { Sid: 'SeePasswordPolicyAndMfaDevices', Effect: 'Allow', Action: ['iam:GetAccountPasswordPolicy', 'iam:ListVirtualMFADevices'], Resource: '*' },
    ];
    const requireMfa: PolicyStatementJson = {
      Sid: 'NothingButMfaSetupWithoutMfa',
      Effect: 'Deny',
      NotAction: [...MFA_SELF_SERVICE, 'iam:GetAccountPasswordPolicy', 'iam:ListVirtualMFADevices', 'sts:GetSessionToken'],
      Resource: '*',
      Condition: { BoolIfExists: { 'aws:MultiFactorAuthPresent': 'false' } },
    };
    const auditorSelfService = managed(this, 'AuditorSelfService', `${p.prefix}-auditor-self-service-${n.region}`, 'Custody: auditor users set up their own MFA and nothing works without it', doc(...selfService, requireMfa));
    this.auditorBoundary = managed(this, 'AuditorBoundary', n.auditorBoundary, 'Custody: permissions boundary every auditor user carries (read the lake, manage own MFA)', doc(...readStatements, ...selfService));

    // The writer: PutObject under writer/ and the one KMS call S3 makes to encrypt for it.
    const wp = workloadPrincipal(p.producers);
    const producerPattern = arn.roleInAnyAccount(workloadAccountNames(n.region, p.prefix).producerRole);
    this.writer = role(
      this,
      'Writer',
      n.writerRole,
      'Custody: write-only; producers in the workload accounts assume it with the external id',
      doc({
        Sid: 'WorkloadProducersWithExternalId',
        Effect: 'Allow',
        Principal: wp.Principal,
        Action: 'sts:AssumeRole',
        Condition: { ...wp.Condition, StringEquals: { ...(wp.Condition.StringEquals ?? {}), 'sts:ExternalId': p.writerExternalId }, ArnLike: { 'aws:PrincipalArn': producerPattern } },
      }),
      [
        managed(this, 'WriterPolicy', `${p.prefix}-writer-${n.region}`, 'Custody: put objects under writer/ in the lake and evidence buckets, encrypted with the lake key through S3', doc(
          { Sid: 'PutUnderWriterPrefix', Effect: 'Allow', Action: 's3:PutObject', Resource: [arn.objects(n.lakeBucket, `${LAKE_PREFIXES.writer}/`), arn.objects(n.evidenceBucket, `${LAKE_PREFIXES.writer}/`)] },
          { Sid: 'EncryptThroughS3', Effect: 'Allow', Action: 'kms:GenerateDataKey', Resource: p.lakeKeyArn, Condition: viaS3 },
        )),
      ],
    );

    const mfa = { Bool: { 'aws:MultiFactorAuthPresent': 'true' } };
    this.auditor = role(
      this,
      'Auditor',
      n.auditorRole,
      'Custody: read-only auditor (MFA required)',
      doc({ Sid: 'AuditorsWithMfa', Effect: 'Allow', Principal: { AWS: [...new Set([a, ...p.auditorAccounts])].map(arn.root) }, Action: 'sts:AssumeRole', Condition: mfa }),
      [this.lakeRead],
    );
    this.auditors = new iam.Group(this, 'Auditors', { groupName: n.auditorGroup, path: '/', managedPolicies: [this.lakeRead, auditorSelfService] });

    this.securityAdmin = role(
      this,
      'SecurityAdmin',
      n.securityAdminRole,
      'Custody: security admin, only from the admin account with MFA; reads, enrolls auditors, changes key policies; never deletes',
      doc({
        Sid: 'AdminAccountWithRecentMfa',
        Effect: 'Allow',
        Principal: { AWS: arn.root(p.adminAccount) },
        Action: 'sts:AssumeRole',
        Condition: { ...mfa, NumericLessThan: { 'aws:MultiFactorAuthAge': '3600' } },
      }),
      [
        this.lakeRead,
        managed(this, 'SecurityAdminPolicy', `${p.prefix}-security-admin-${n.region}`, 'Custody: enroll auditor users, manage alarm subscriptions, change key policies', doc(
          { Sid: 'KeyPolicies', Effect: 'Allow', Action: ['kms:PutKeyPolicy', 'kms:GetKeyPolicy', 'kms:CancelKeyDeletion', 'kms:DescribeKey'], Resource: [p.lakeKeyArn, p.alarmKeyArn] },
          { Sid: 'CreateAuditorUsersWithTheirBoundary', Effect: 'Allow', Action: 'iam:CreateUser', Resource: auditorUsers, Condition: { StringEquals: { 'iam:PermissionsBoundary': arn.policy(a, n.auditorBoundary) } } },
          {
            Sid: 'ManageAuditorUsers',
            Effect: 'Allow',
            Action: ['iam:CreateLoginProfile', 'iam:DeleteLoginProfile', 'iam:DeactivateMFADevice', 'iam:DeleteUser', 'iam:GetUser', 'iam:ListGroupsForUser', 'iam:TagUser'],
            Resource: auditorUsers,
          },
          { Sid: 'AuditorGroupMembership', Effect: 'Allow', Action: ['iam:AddUserToGroup', 'iam:RemoveUserFromGroup', 'iam:GetGroup'], Resource: arn.group(a, n.auditorGroup) },
          { Sid: 'AlarmSubscriptions', Effect: 'Allow', Action: ['sns:Subscribe', 'sns:Unsubscribe', 'sns:ListSubscriptionsByTopic', 'sns:GetTopicAttributes'], Resource: p.alarmTopicArn },
          { Sid: 'SeeTrailsAndAlarmRules', Effect: 'Allow', Action: ['cloudtrail:DescribeTrails', 'cloudtrail:GetTrailStatus', 'cloudtrail:GetEventSelectors', 'cloudtrail:LookupEvents', 'events:ListRules', 'events:DescribeRule', 'events:ListTargetsByRule', 'iam:ListUsers'], Resource: '*' },
        )),
      ],
    );

    const everyBucket = [...bucketArns, ...objectArns];
    this.deployer = role(
      this,
      'Deployer',
      n.deployerRole,
      'Custody: CloudFormation deployments from the deployment account; bounded by the guardrails, never touches evidence',
      doc({ Sid: 'DeploymentAccountOnly', Effect: 'Allow', Principal: { AWS: arn.root(p.deploymentAccount) }, Action: 'sts:AssumeRole' }),
      [
        managed(this, 'DeployerPolicy', `${p.prefix}-deployer-${n.region}`, 'Custody: deploy the blueprint (bounded by the guardrails); no evidence reads or writes, no key use', doc(
          {
            Sid: 'DeployTheBlueprint',
            Effect: 'Allow',
            Action: ['cloudformation:*', 's3:*', 'kms:*', 'iam:*', 'events:*', 'sns:*', 'cloudtrail:*', 'logs:*', 'ecs:*', 'ec2:*', 'elasticfilesystem:*', 'ssm:GetParameter', 'ssm:GetParameters', 'sts:GetCallerIdentity'],
            Resource: '*',
          },
          { Sid: 'NeverReadsOrWritesEvidence', Effect: 'Deny', Action: ['s3:GetObject*', 's3:ListBucket*', 's3:PutObject*', 's3:RestoreObject'], Resource: everyBucket },
          { Sid: 'NeverUsesTheKeys', Effect: 'Deny', Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'], Resource: `arn:aws:kms:*:${a}:key/*` },
        )),
      ],
    );

    if (p.serviceRole) {
      this.service = role(
        this,
        'Service',
        n.serviceRole,
        'Custody: the vault service (ECS task role); reads the lake, writes and locks under custody/',
        doc({
          Sid: 'EcsTasksOfThisAccount',
          Effect: 'Allow',
          Principal: { Service: 'ecs-tasks.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: { StringEquals: { 'aws:SourceAccount': a }, ArnLike: { 'aws:SourceArn': `arn:aws:ecs:${n.region}:${a}:*` } },
        }),
        [
          managed(this, 'ServicePolicy', `${p.prefix}-service-${n.region}`, 'Custody: the vault reads the lake and writes, with COMPLIANCE retention, under custody/', doc(
            { Sid: 'ReadTheLake', Effect: 'Allow', Action: ['s3:GetObject', 's3:GetObjectVersion', 's3:ListBucket', 's3:GetBucketLocation'], Resource: [arn.bucket(n.lakeBucket), arn.objects(n.lakeBucket)] },
            { Sid: 'WriteAndLockUnderCustodyPrefix', Effect: 'Allow', Action: ['s3:PutObject', 's3:PutObjectRetention'], Resource: arn.objects(n.lakeBucket, `${LAKE_PREFIXES.custody}/`) },
            { Sid: 'UseTheLakeKeyThroughS3', Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: p.lakeKeyArn, Condition: viaS3 },
          )),
        ],
      );
    }

    this.acknowledgeFindings(n, auditorSelfService);
  }

  private acknowledgeFindings(n: SecurityAccountNames, auditorSelfService: iam.ManagedPolicy): void {
    const readObjects = Object.fromEntries(
      [n.lakeBucket, n.evidenceBucket, n.accessLogBucket].map((b) => [IAM5(`Resource::${arn.objects(b)}`), WHY_OBJECT_WILDCARD('Auditors read every object of the log buckets;', b)]),
    );
    const listPublicKeys = 'cloudtrail:ListPublicKeys has no resource type, so IAM only accepts "*"; it returns CloudTrail\'s public signing keys, which are public information, and `custody cloudtrail validate` needs them.';
    const mfaSetup = 'iam:GetAccountPasswordPolicy and iam:ListVirtualMFADevices have no resource type ("*" only); an auditor needs them to enrol an MFA device. The Deny with NotAction blocks every other call until MFA is present.';
    acknowledge(this.lakeRead, { ...readObjects, [IAM5('Resource::*')]: listPublicKeys });
    acknowledge(this.auditorBoundary, { ...readObjects, [IAM5('Resource::*')]: `${listPublicKeys} ${mfaSetup}` });
    acknowledge(auditorSelfService, { [IAM5('Resource::*')]: mfaSetup });

    const byId = (id: string) => this.node.findChild(id);
    acknowledge(byId('WriterPolicy'), {
      [IAM5(`Resource::${arn.objects(n.lakeBucket, `${LAKE_PREFIXES.writer}/`)}`)]: WHY_OBJECT_WILDCARD('The writer puts objects under writer/ only;', n.lakeBucket),
      [IAM5(`Resource::${arn.objects(n.evidenceBucket, `${LAKE_PREFIXES.writer}/`)}`)]: WHY_OBJECT_WILDCARD('The writer puts objects under writer/ only;', n.evidenceBucket),
    });
    const servicePolicy = this.node.tryFindChild('ServicePolicy');
    if (servicePolicy) acknowledge(servicePolicy, {
      [IAM5(`Resource::${arn.objects(n.lakeBucket)}`)]: WHY_OBJECT_WILDCARD('The vault reads the delivered logs it imports and its own tiles;', n.lakeBucket),
      [IAM5(`Resource::${arn.objects(n.lakeBucket, `${LAKE_PREFIXES.custody}/`)}`)]: WHY_OBJECT_WILDCARD('The vault writes and locks its tiles, bundles and checkpoints under custody/ only;', n.lakeBucket),
    });
    acknowledge(byId('SecurityAdminPolicy'), {
      [IAM5(`Resource::arn:aws:iam::${n.account}:user${n.auditorUserPath}*`)]:
        `Auditor users are created under the ${n.auditorUserPath} path and their names are not known in advance; CreateUser is further conditioned on the auditor permissions boundary, and the guardrails deny user creation to everyone else.`,
      [IAM5('Resource::*')]:
        'cloudtrail:DescribeTrails/GetTrailStatus/GetEventSelectors/LookupEvents, events:ListRules/DescribeRule/ListTargetsByRule and iam:ListUsers are read-only calls without resource-level permissions (or that must see every trail and rule); the security admin reviews the alarm setup with them.',
    });
    const deployerServices = ['cloudformation', 's3', 'kms', 'iam', 'events', 'sns', 'cloudtrail', 'logs', 'ecs', 'ec2', 'elasticfilesystem'];
    acknowledge(byId('DeployerPolicy'), {
      ...Object.fromEntries(deployerServices.map((svc) => [IAM5(`Action::${svc}:*`), WHY_DEPLOYER_SERVICE_WILDCARDS])),
      [IAM5('Resource::*')]: WHY_DEPLOYER_SERVICE_WILDCARDS,
      [NIST('IAMPolicyNoStatementsWithFullAccess')]: WHY_DEPLOYER_SERVICE_WILDCARDS,
    });
    const whyBoundary =
      'This is a permissions boundary, not a grant: its single Allow * only sets the ceiling (each role\'s own policies decide what is granted) and its Deny statements are the guardrails. A boundary that listed actions would have to change with every role it bounds.';
    acknowledge(this.roleBoundary, {
      [IAM5('Action::*')]: whyBoundary,
      [IAM5('Resource::*')]: whyBoundary,
      [NIST('IAMPolicyNoStatementsWithAdminAccess')]: whyBoundary,
      [NIST('IAMPolicyNoStatementsWithFullAccess')]: whyBoundary,
    });
  }
}
