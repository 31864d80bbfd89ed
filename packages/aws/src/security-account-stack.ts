/**
 * The security account, one stack per region: the lake (Object Lock, KMS, TLS-only, no public
 * access, nobody deletes), the access-log bucket, the write-only writer role, the read-only
 * auditors, the security admin and deployer roles, the alarms, the account's own trail, the
 * optional MFA-delete evidence bucket and the optional Custody vault service.
 *
 * Deploy-time values are CloudFormation parameters (retention, archive days, e-mail, external
 * id); anything that shapes a policy (accounts, organization) is a construct property.
 */
import { CfnOutput, CfnParameter, Stack, type CfnResource, type StackProps } from 'aws-cdk-lib';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { Access } from './access.js';
import { Alarms } from './alarms.js';
import { CustodyService, type CustodyStorage } from './custody-service.js';
import { Lake } from './lake.js';
import { checkProducers, type Producers } from './lake-policies.js';
import { acknowledge } from './nag.js';
import { arn, checkAccount, DEFAULT_NAME_PREFIX, LAKE_PREFIXES, securityAccountNames, workloadAccountNames, type SecurityAccountNames } from './names.js';

export interface CustodyServiceOptions {
  /** The VPC the task runs in (its private subnets). */
  vpcId: string;
  availabilityZones: string[];
  privateSubnetIds: string[];
  /** The route table of each private subnet, in the same order. */
  privateSubnetRouteTableIds: string[];
  image: string;
  allowedCidr: string;
  storage?: CustodyStorage;
  port?: number;
}

export interface SecurityAccountStackProps extends StackProps {
  env: { account: string; region: string };
  /** The workload accounts (or the whole organization) whose producers and AWS services write. */
  producers: Producers;
  /** The separate account whose principals, with MFA, may assume the security-admin role. */
  adminAccount: string;
  /** The separate account whose pipeline may assume the deployer role. */
  deploymentAccount: string;
  /** Further accounts whose principals, with MFA, may assume the auditor role. */
  auditorAccounts?: string[];
  /** Create the no-lifecycle evidence bucket for MFA delete (default false). */
  evidenceBucket?: boolean;
  /** Create this account's own trail (management events and deletes on the log buckets) (default true). */
  accountTrail?: boolean;
  /** Also record every PutObject on the log buckets as a CloudTrail data event (default false: costs per write). */
  recordLakeWrites?: boolean;
  /** Run the Custody vault in this account (default: not). */
  custodyService?: CustodyServiceOptions;
  /** First word of every name (default `custody`). */
  namePrefix?: string;
}

export class SecurityAccountStack extends Stack {
  readonly names: SecurityAccountNames;
  readonly lake: Lake;
  readonly access: Access;
  readonly alarms: Alarms;
  readonly trail?: cloudtrail.CfnTrail;
  readonly custody?: CustodyService;
  readonly parameters: { retentionDays: CfnParameter; archiveAfterDays: CfnParameter; deepArchiveAfterDays: CfnParameter; alarmEmail: CfnParameter; writerExternalId: CfnParameter };

  constructor(scope: Construct, id: string, props: SecurityAccountStackProps) {
    super(scope, id, { description: 'Custody security account: write-only, Object Lock security data lake with its roles and alarms (packages/aws)', ...props });
    // Access logs are allowed by the target bucket's policy, not by the LogDeliveryWrite ACL
    // (ACLs are disabled: BucketOwnerEnforced). Set here so the stack behaves the same in any app.
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
    const prefix = props.namePrefix ?? DEFAULT_NAME_PREFIX;
    const n = securityAccountNames(props.env.account, props.env.region, prefix);
    this.names = n;
    const producers = checkProducers(props.producers);
    checkAccount(props.adminAccount, 'The admin account');
    checkAccount(props.deploymentAccount, 'The deployment account');
    for (const a of props.auditorAccounts ?? []) checkAccount(a, 'An auditor account');
    if (props.adminAccount === n.account || props.deploymentAccount === n.account) {
      throw new Error('The admin and deployment accounts must be separate from the security account: roles there are assumed only from outside.');
    }

    const retentionDays = new CfnParameter(this, 'LakeRetentionDays', {
      type: 'Number',
      default: 365,
      minValue: 1,
      maxValue: 36500,
      description: 'Object Lock COMPLIANCE retention of every object, in days. Nobody, root included, can delete an object or shorten this before it ends. Set once: the lake refuses later changes.',
    });
    const archiveAfterDays = new CfnParameter(this, 'ArchiveAfterDays', {
      type: 'Number',
      default: 90,
      minValue: 1,
      description: 'Days after which objects move to S3 Glacier Instant Retrieval (still readable in milliseconds).',
    });
    const deepArchiveAfterDays = new CfnParameter(this, 'DeepArchiveAfterDays', {
      type: 'Number',
      default: 365,
      minValue: 2,
      description: 'Days after which objects move to S3 Glacier Deep Archive (reading needs a restore of up to 12 hours). Must be more than ArchiveAfterDays.',
    });
    const alarmEmail = new CfnParameter(this, 'AlarmEmail', {
      type: 'String',
      allowedPattern: '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$',
      constraintDescription: 'an e-mail address such as security@example.org',
      description: 'Where alarms are e-mailed (the address must confirm the subscription).',
    });
    const writerExternalId = new CfnParameter(this, 'WriterExternalId', {
      type: 'String',
      noEcho: true,
      minLength: 16,
      maxLength: 1224,
      allowedPattern: '^[\\w+=,.@:/-]+$',
      constraintDescription: '16 or more of: letters, digits and + = , . @ : / - _',
      description: 'External id the producers present when they assume the writer role (generate one: openssl rand -hex 24).',
    });
    this.parameters = { retentionDays, archiveAfterDays, deepArchiveAfterDays, alarmEmail, writerExternalId };

    const firehoseRolePattern = arn.roleInAnyAccount(workloadAccountNames(n.region, prefix).firehoseRole);
    this.lake = new Lake(this, 'Lake', {
      names: n,
      producers,
      retentionDays: retentionDays.valueAsNumber,
      archiveAfterDays: archiveAfterDays.valueAsNumber,
      deepArchiveAfterDays: deepArchiveAfterDays.valueAsNumber,
      evidenceBucket: props.evidenceBucket ?? false,
      firehoseRolePattern,
    });

    const logBuckets = [n.lakeBucket, n.accessLogBucket, ...(props.evidenceBucket ? [n.evidenceBucket] : [])];
    this.alarms = new Alarms(this, 'Alarms', { names: n, prefix, producers, email: alarmEmail.valueAsString, logBuckets });

    this.access = new Access(this, 'Access', {
      names: n,
      prefix,
      producers,
      adminAccount: props.adminAccount,
      deploymentAccount: props.deploymentAccount,
      auditorAccounts: props.auditorAccounts ?? [],
      writerExternalId: writerExternalId.valueAsString,
      lakeKeyArn: this.lake.key.keyArn,
      alarmKeyArn: this.alarms.key.keyArn,
      alarmTopicArn: this.alarms.topic.topicArn,
      serviceRole: props.custodyService !== undefined,
    });
    // Every role (and every role a construct adds, such as the ECS execution role) carries the guardrails.
    iam.PermissionsBoundary.of(this).apply(this.access.roleBoundary);

    if (props.accountTrail ?? true) this.trail = this.accountTrail(n, props.recordLakeWrites ?? false, logBuckets);

    if (props.custodyService) {
      const o = props.custodyService;
      if (o.privateSubnetRouteTableIds.length !== o.privateSubnetIds.length) throw new Error('custodyService: give one route table id per private subnet, in the same order.');
      const vpc = ec2.Vpc.fromVpcAttributes(this, 'ServiceVpc', {
        vpcId: o.vpcId,
        availabilityZones: o.availabilityZones,
        privateSubnetIds: o.privateSubnetIds,
        privateSubnetRouteTableIds: o.privateSubnetRouteTableIds,
      });
      this.custody = new CustodyService(this, 'Custody', {
        names: n,
        vpc,
        image: o.image,
        taskRole: this.access.service as iam.Role,
        allowedCidr: o.allowedCidr,
        ...(o.storage ? { storage: o.storage } : {}),
        ...(o.port ? { port: o.port } : {}),
      });
    }

    const out = (oid: string, value: string, description: string) => new CfnOutput(this, oid, { value, description });
    out('LakeBucketName', this.lake.bucket.bucketName, 'The security data lake bucket (Object Lock COMPLIANCE)');
    out('LakeKeyArn', this.lake.key.keyArn, 'The lake key: give it to the workload stacks (lakeKeyArn)');
    out('AccessLogBucketName', this.lake.accessLogBucket.bucketName, 'S3 server access logs of the lake');
    if (this.lake.evidenceBucket) out('EvidenceBucketName', this.lake.evidenceBucket.bucketName, 'The no-lifecycle evidence bucket: enable MFA delete with scripts/enable-mfa-delete.sh as root');
    out('WriterRoleArn', this.access.writer.roleArn, 'Producers assume this role with the external id');
    out('AuditorRoleArn', this.access.auditor.roleArn, 'Read-only; assume with MFA');
    out('AuditorGroupName', this.access.auditors.groupName, 'Auditor users (created by the security admin) join this group');
    out('SecurityAdminRoleArn', this.access.securityAdmin.roleArn, 'Assume from the admin account with MFA');
    out('DeployerRoleArn', this.access.deployer.roleArn, 'Assume from the deployment account to run cdk deploy');
    out('AlarmTopicArn', this.alarms.topic.topicArn, 'Alarms are published here');
    out('SecurityEventBusArn', this.alarms.bus.attrArn, 'Workload stacks forward log-stopping calls to this bus (securityEventBusArn)');
  }

  private accountTrail(n: SecurityAccountNames, recordWrites: boolean, logBuckets: string[]): cloudtrail.CfnTrail {
    const objectPrefixes = logBuckets.map((b) => `${arn.bucket(b)}/`);
    const trail = new cloudtrail.CfnTrail(this, 'Trail', {
      trailName: n.trail,
      isLogging: true,
      s3BucketName: n.lakeBucket,
      s3KeyPrefix: LAKE_PREFIXES.cloudtrail,
      kmsKeyId: this.lake.key.keyArn,
      enableLogFileValidation: true,
      isMultiRegionTrail: false,
      // IAM and STS events are delivered in us-east-1; one region's trail records them, not every region's.
      includeGlobalServiceEvents: n.region === 'us-east-1',
      advancedEventSelectors: [
        { name: 'Management events', fieldSelectors: [{ field: 'eventCategory', equalTo: ['Management'] }] },
        {
          name: recordWrites ? 'Every write to the log buckets' : 'Deletes and lock changes on the log buckets',
          fieldSelectors: [
            { field: 'eventCategory', equalTo: ['Data'] },
            { field: 'resources.type', equalTo: ['AWS::S3::Object'] },
            { field: 'readOnly', equalTo: ['false'] },
            { field: 'resources.ARN', startsWith: objectPrefixes },
            ...(recordWrites ? [] : [{ field: 'eventName', equalTo: ['DeleteObject', 'DeleteObjects', 'PutObjectRetention', 'PutObjectLegalHold', 'PutObjectAcl'] }]),
          ],
        },
      ],
    });
    acknowledge(trail, {
      'NIST.800.53.R5::NIST.800.53.R5-CloudTrailCloudWatchLogsEnabled':
        'Alarms come from EventBridge, which receives the same CloudTrail events without a CloudWatch Logs copy (see the rules in the Alarms construct); a CloudWatch Logs copy would be a second, deletable store outside the Object Lock lake.',
    });
    // CloudTrail checks the bucket policy when the trail is created.
    if (this.lake.bucket.policy) trail.addResourceDependency(this.lake.bucket.policy.node.defaultChild as CfnResource);
    return trail;
  }
}
