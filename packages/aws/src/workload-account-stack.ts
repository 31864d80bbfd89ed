/**
 * A workload account (one stack per account and region): everything that sends security data
 * into the lake of the security account in the same region.
 *
 * - the trail (organization trail from the management account, or an account trail):
 *   multi-region, log file validation on, SSE-KMS with the lake key;
 * - VPC Flow Logs of the listed VPCs, the GuardDuty publishing destination, the AWS Config
 *   delivery channel and the Macie discovery-results export, each under its own lake prefix;
 * - CloudWatch Logs → Firehose → the lake (`firehose/<account>/…`), or → a Custody Firehose
 *   HTTP endpoint when the `CustodyFirehoseEndpointUrl` parameter is set;
 * - the producer role, which may only assume the security account's writer role;
 * - rules that forward every "stop or delete log generation" call to the security account's
 *   alarm bus.
 */
import { CfnCondition, CfnOutput, CfnParameter, Fn, Stack, Token, type StackProps } from 'aws-cdk-lib';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as config from 'aws-cdk-lib/aws-config';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as guardduty from 'aws-cdk-lib/aws-guardduty';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { eventPattern, LOG_STOPPING_GROUPS } from './log-stopping-calls.js';
import { acknowledge } from './nag.js';
import { arn, checkAccount, DEFAULT_NAME_PREFIX, LAKE_PREFIXES, securityAccountNames, workloadAccountNames, type SecurityAccountNames, type WorkloadAccountNames } from './names.js';

export type TrailMode = 'organization' | 'account' | 'none';

export interface WorkloadAccountStackProps extends StackProps {
  env: { account: string; region: string };
  /** The security account whose lake (in the same region) receives everything. */
  securityAccount: string;
  /** The lake key ARN (the security stack's LakeKeyArn output). */
  lakeKeyArn: string;
  /** `organization`: this is the management (or CloudTrail delegated admin) account and the trail covers the organization. Default `account`. */
  trail?: TrailMode;
  /** VPCs whose flow logs go to the lake. */
  vpcIds?: string[];
  /** The GuardDuty detector of this account and region; its findings are exported to the lake. */
  guardDutyDetectorId?: string;
  /** Create the AWS Config recorder and delivery channel (default true; the account must have no recorder yet). */
  config?: boolean;
  /** Macie is enabled here: export its sensitive-data discovery results to the lake (default false). */
  macie?: boolean;
  /** Log groups whose events go through Firehose to the lake (or to Custody). */
  logGroupNames?: string[];
  /** Forward log-stopping calls to the security account's alarm bus (default true). */
  forwardEvents?: boolean;
  /** Services that may assume the producer role (default Lambda, ECS tasks, EC2). */
  producerServices?: string[];
  namePrefix?: string;
}

/** VPC Flow Logs v5 fields, all of them, with the header line naming them (parse by header). */
export const FLOW_LOG_FORMAT = [
  'version', 'account-id', 'interface-id', 'srcaddr', 'dstaddr', 'srcport', 'dstport', 'protocol', 'packets', 'bytes', 'start', 'end', 'action', 'log-status',
  'vpc-id', 'subnet-id', 'instance-id', 'tcp-flags', 'type', 'pkt-srcaddr', 'pkt-dstaddr',
  'region', 'az-id', 'sublocation-type', 'sublocation-id',
  'pkt-src-aws-service', 'pkt-dst-aws-service', 'flow-direction', 'traffic-path',
].map((f) => `\${${f}}`).join(' ');

export class WorkloadAccountStack extends Stack {
  readonly security: SecurityAccountNames;
  readonly names: WorkloadAccountNames;
  readonly producer: iam.Role;
  /** The two conditional streams (the CustodyFirehoseEndpointUrl parameter picks one). */
  readonly deliveryStreams?: { toLake: firehose.CfnDeliveryStream; toCustody: firehose.CfnDeliveryStream };
  readonly trail?: cloudtrail.CfnTrail;

  constructor(scope: Construct, id: string, props: WorkloadAccountStackProps) {
    super(scope, id, { description: 'Custody workload account: trail, flow logs, GuardDuty, Config, Macie and CloudWatch Logs into the security lake (packages/aws)', ...props });
    const prefix = props.namePrefix ?? DEFAULT_NAME_PREFIX;
    const account = checkAccount(props.env.account, 'The workload account');
    const region = props.env.region;
    const sec = securityAccountNames(checkAccount(props.securityAccount, 'The security account'), region, prefix);
    const w = workloadAccountNames(region, prefix);
    this.security = sec;
    this.names = w;
    const literalKey = !Token.isUnresolved(props.lakeKeyArn);
    if (literalKey && !/^arn:aws:kms:[a-z0-9-]+:\d{12}:key\/[\w-]+$/.test(props.lakeKeyArn)) {
      throw new Error(`lakeKeyArn ${JSON.stringify(props.lakeKeyArn)} is not a KMS key ARN; give the security stack's LakeKeyArn output (an alias will not do: the lake refuses uploads that name another key id).`);
    }
    if (literalKey && (props.lakeKeyArn.split(':')[3] !== region || props.lakeKeyArn.split(':')[4] !== sec.account)) {
      throw new Error(`lakeKeyArn must be the security account's key in ${region} (data and keys stay in their region), not ${props.lakeKeyArn}.`);
    }
    const lake = arn.bucket(sec.lakeBucket);
    const ownPrefix = `${LAKE_PREFIXES.firehose}/${account}`;

    // --- the trail ---
    const trailMode = props.trail ?? 'account';
    if (trailMode !== 'none') {
      this.trail = new cloudtrail.CfnTrail(this, 'Trail', {
        trailName: trailMode === 'organization' ? `${prefix}-organization-trail` : w.trail,
        isLogging: true,
        isOrganizationTrail: trailMode === 'organization',
        isMultiRegionTrail: true,
        includeGlobalServiceEvents: true,
        enableLogFileValidation: true,
        s3BucketName: sec.lakeBucket,
        s3KeyPrefix: LAKE_PREFIXES.cloudtrail,
        kmsKeyId: props.lakeKeyArn,
      });
      acknowledge(this.trail, {
        'NIST.800.53.R5::NIST.800.53.R5-CloudTrailCloudWatchLogsEnabled':
          'Alarms come from EventBridge (forwarded to the security account), which receives CloudTrail events without a CloudWatch Logs copy; a CloudWatch Logs copy in the workload account would be deletable by its admins, unlike the Object Lock lake.',
      });
    }

    // --- VPC Flow Logs ---
    for (const [i, vpcId] of (props.vpcIds ?? []).entries()) {
      if (!/^vpc-[0-9a-f]{8,17}$/.test(vpcId)) throw new Error(`${JSON.stringify(vpcId)} is not a VPC id (vpc- and 8 or 17 hex digits).`);
      new ec2.CfnFlowLog(this, `FlowLog${i}`, {
        resourceId: vpcId,
        resourceType: 'VPC',
        trafficType: 'ALL',
        logDestinationType: 's3',
        logDestination: `${lake}/${LAKE_PREFIXES.vpcFlowLogs}/`,
        logFormat: FLOW_LOG_FORMAT,
        maxAggregationInterval: 600,
        destinationOptions: { FileFormat: 'plain-text', HiveCompatiblePartitions: false, PerHourPartition: false },
      });
    }

    // --- GuardDuty findings export ---
    if (props.guardDutyDetectorId) {
      new guardduty.CfnPublishingDestination(this, 'GuardDutyExport', {
        detectorId: props.guardDutyDetectorId,
        destinationType: 'S3',
        destinationProperties: { destinationArn: `${lake}/${LAKE_PREFIXES.guardDuty}`, kmsKeyArn: props.lakeKeyArn },
      });
    }

    // --- AWS Config ---
    if (props.config ?? true) {
      const recorder = new config.CfnConfigurationRecorder(this, 'ConfigRecorder', {
        name: 'default',
        // The service-linked role (create it once: aws iam create-service-linked-role --aws-service-name config.amazonaws.com).
        roleArn: `arn:aws:iam::${account}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig`,
        recordingGroup: { allSupported: true, includeGlobalResourceTypes: region === 'us-east-1' },
      });
      const channel = new config.CfnDeliveryChannel(this, 'ConfigDelivery', {
        name: 'default',
        s3BucketName: sec.lakeBucket,
        s3KeyPrefix: LAKE_PREFIXES.config,
        s3KmsKeyArn: props.lakeKeyArn,
        configSnapshotDeliveryProperties: { deliveryFrequency: 'TwentyFour_Hours' },
      });
      channel.addResourceDependency(recorder);
    }

    // --- Macie discovery results (no CloudFormation resource exists: one API call at deploy) ---
    if (props.macie) {
      const exportConfig = new cr.AwsCustomResource(this, 'MacieExport', {
        resourceType: 'Custom::MacieClassificationExport',
        installLatestAwsSdk: false,
        onUpdate: {
          service: 'Macie2',
          action: 'putClassificationExportConfiguration',
          parameters: { configuration: { s3Destination: { bucketName: sec.lakeBucket, keyPrefix: `${LAKE_PREFIXES.macie}/`, kmsKeyArn: props.lakeKeyArn } } },
          physicalResourceId: cr.PhysicalResourceId.of(`macie-export-${account}-${region}`),
        },
        policy: cr.AwsCustomResourcePolicy.fromStatements([
          new iam.PolicyStatement({ actions: ['macie2:PutClassificationExportConfiguration'], resources: ['*'] }),
        ]),
      });
      this.acknowledgeCustomResource(exportConfig);
    }

    // --- CloudWatch Logs → Firehose → the lake, or → Custody ---
    if ((props.logGroupNames ?? []).length > 0) {
      this.deliveryStreams = this.cloudWatchLogsToLake(sec, w, account, region, props.lakeKeyArn, ownPrefix, props.logGroupNames ?? []);
    }

    // --- the producer role ---
    const services = props.producerServices ?? ['lambda.amazonaws.com', 'ecs-tasks.amazonaws.com', 'ec2.amazonaws.com'];
    this.producer = new iam.Role(this, 'Producer', {
      roleName: w.producerRole,
      description: 'Custody producer: may only assume the security account writer role (with its external id)',
      assumedBy: new iam.AccountRootPrincipal(),
      managedPolicies: [
        new iam.ManagedPolicy(this, 'ProducerPolicy', {
          managedPolicyName: `${prefix}-producer-${region}`,
          description: 'Custody producer: assume the writer role of the security account, nothing else',
          document: iam.PolicyDocument.fromJson({
            Version: '2012-10-17',
            Statement: [{ Sid: 'AssumeTheWriterRole', Effect: 'Allow', Action: 'sts:AssumeRole', Resource: arn.role(sec.account, sec.writerRole) }],
          }),
        }),
      ],
    });
    (this.producer.node.defaultChild as iam.CfnRole).assumeRolePolicyDocument = {
      Version: '2012-10-17',
      Statement: [{ Sid: 'ShippersOfThisAccount', Effect: 'Allow', Principal: { Service: services }, Action: 'sts:AssumeRole' }],
    };

    // --- forward log-stopping calls to the security account ---
    if (props.forwardEvents ?? true) {
      const busArn = arn.eventBus(sec.account, region, sec.alarmBus);
      const forwarder = new iam.Role(this, 'EventForwarder', {
        roleName: w.eventForwarderRole,
        description: 'Custody: EventBridge forwards log-stopping calls to the security account alarm bus',
        assumedBy: new iam.AccountRootPrincipal(),
        managedPolicies: [
          new iam.ManagedPolicy(this, 'EventForwarderPolicy', {
            managedPolicyName: `${prefix}-event-forwarder-${region}`,
            description: 'Custody: put events on the security account alarm bus only',
            document: iam.PolicyDocument.fromJson({ Version: '2012-10-17', Statement: [{ Sid: 'PutOnTheAlarmBus', Effect: 'Allow', Action: 'events:PutEvents', Resource: busArn }] }),
          }),
        ],
      });
      (forwarder.node.defaultChild as iam.CfnRole).assumeRolePolicyDocument = {
        Version: '2012-10-17',
        Statement: [{ Sid: 'EventBridgeOfThisAccount', Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'aws:SourceAccount': account } } }],
      };
      for (const g of LOG_STOPPING_GROUPS) {
        new events.CfnRule(this, `Forward-${g.id}`, {
          name: `${prefix}-fwd-stop-${g.id}`,
          description: `Custody: forward to the security account: ${g.description}`,
          eventPattern: eventPattern(g),
          state: 'ENABLED',
          targets: [{ id: 'SecurityAccountAlarmBus', arn: busArn, roleArn: forwarder.roleArn }],
        });
      }
    }

    new CfnOutput(this, 'ProducerRoleArn', { value: this.producer.roleArn, description: 'Shippers run as this role and assume the writer role of the security account' });
    new CfnOutput(this, 'WriterRoleArn', { value: arn.role(sec.account, sec.writerRole), description: 'The role producers assume (with the external id)' });
    new CfnOutput(this, 'LakeBucketName', { value: sec.lakeBucket, description: 'Where this account\'s security data goes' });
  }

  private cloudWatchLogsToLake(
    sec: SecurityAccountNames,
    w: WorkloadAccountNames,
    account: string,
    region: string,
    lakeKeyArn: string,
    ownPrefix: string,
    logGroupNames: string[],
  ): { toLake: firehose.CfnDeliveryStream; toCustody: firehose.CfnDeliveryStream } {
    const lake = arn.bucket(sec.lakeBucket);
    const endpointUrl = new CfnParameter(this, 'CustodyFirehoseEndpointUrl', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^https://[^\\s]+$',
      constraintDescription: 'empty, or an https:// URL',
      description: 'Leave empty to deliver CloudWatch Logs to the lake; or the https:// URL of a Custody Firehose endpoint (docs/PROTOCOLS.md) to deliver there (failed batches still go to the lake).',
    });
    const credentialArn = new CfnParameter(this, 'CustodyEndpointCredentialArn', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^arn:aws:secretsmanager:[^\\s]+$',
      constraintDescription: 'empty, or a Secrets Manager secret ARN',
      description: 'With CustodyFirehoseEndpointUrl: the Secrets Manager secret holding the Custody writer credential Firehose sends as X-Amz-Firehose-Access-Key.',
    });
    const toCustody = new CfnCondition(this, 'DeliverToCustody', { expression: Fn.conditionNot(Fn.conditionEquals(endpointUrl.valueAsString, '')) });
    const toLake = new CfnCondition(this, 'DeliverToLake', { expression: Fn.conditionEquals(endpointUrl.valueAsString, '') });
    const logKey = new kms.Key(this, 'FirehoseLogKey', { enableKeyRotation: true, description: 'Custody: encrypts the Firehose delivery error log group', alias: `alias/${w.deliveryStream}-logs` });
    logKey.addToResourcePolicy(
      iam.PolicyStatement.fromJson({
        Sid: 'CloudWatchLogsEncryptsTheErrorLogGroup',
        Effect: 'Allow',
        Principal: { Service: `logs.${region}.amazonaws.com` },
        Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
        Resource: '*',
        Condition: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:aws:logs:${region}:${account}:log-group:/custody/*` } },
      }),
    );
    const errorLogGroupName = `/custody/firehose/${w.deliveryStream}`;
    const errorLogs = new logs.LogGroup(this, 'FirehoseErrors', { logGroupName: errorLogGroupName, encryptionKey: logKey, retention: logs.RetentionDays.ONE_YEAR });
    const errorStream = new logs.LogStream(this, 'FirehoseErrorStream', { logGroup: errorLogs, logStreamName: 'delivery' });

    const deliveryRole = new iam.Role(this, 'FirehoseDelivery', {
      roleName: w.firehoseRole,
      description: 'Custody: Firehose writes CloudWatch Logs under firehose/<this account>/ in the security lake',
      assumedBy: new iam.AccountRootPrincipal(),
    });
    (deliveryRole.node.defaultChild as iam.CfnRole).assumeRolePolicyDocument = {
      Version: '2012-10-17',
      Statement: [{ Sid: 'FirehoseOfThisAccount', Effect: 'Allow', Principal: { Service: 'firehose.amazonaws.com' }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'aws:SourceAccount': account } } }],
    };
    // L1, so that the Secrets Manager statement exists only when delivering to Custody (Fn::If).
    const deliveryPolicy = new iam.CfnManagedPolicy(this, 'FirehoseDeliveryPolicy', {
      managedPolicyName: `${w.firehoseRole}-policy`,
      description: 'Custody: write under firehose/<this account>/ in the lake with the lake key; log delivery errors; read the Custody credential',
      roles: [deliveryRole.roleName],
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          { Sid: 'WriteUnderOwnPrefix', Effect: 'Allow', Action: ['s3:PutObject', 's3:AbortMultipartUpload'], Resource: `${lake}/${ownPrefix}/*` },
          { Sid: 'BucketChecks', Effect: 'Allow', Action: ['s3:GetBucketLocation', 's3:ListBucketMultipartUploads'], Resource: lake },
          {
            Sid: 'EncryptWithTheLakeKeyThroughS3',
            Effect: 'Allow',
            Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
            Resource: lakeKeyArn,
            Condition: { StringEquals: { 'kms:ViaService': `s3.${region}.amazonaws.com` }, StringLike: { 'kms:EncryptionContext:aws:s3:arn': [lake, `${lake}/${LAKE_PREFIXES.firehose}/*`] } },
          },
          { Sid: 'LogDeliveryErrors', Effect: 'Allow', Action: 'logs:PutLogEvents', Resource: `arn:aws:logs:${region}:${account}:log-group:${errorLogGroupName}:log-stream:*` },
          Fn.conditionIf(
            toCustody.logicalId,
            { Sid: 'ReadTheCustodyCredential', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: credentialArn.valueAsString },
            Fn.ref('AWS::NoValue'),
          ),
        ],
      },
    });

    const s3Common = {
      bucketArn: lake,
      roleArn: deliveryRole.roleArn,
      compressionFormat: 'UNCOMPRESSED', // CloudWatch Logs subscription payloads are already gzip
      encryptionConfiguration: { kmsEncryptionConfig: { awskmsKeyArn: lakeKeyArn } },
      bufferingHints: { intervalInSeconds: 300, sizeInMBs: 64 },
      cloudWatchLoggingOptions: { enabled: true, logGroupName: errorLogs.logGroupName, logStreamName: errorStream.logStreamName },
    };
    // One stream per destination, each existing only under its condition (a parameter switches
    // between them; the names differ so CloudFormation can create one before deleting the other).
    const toLakeStream = new firehose.CfnDeliveryStream(this, 'ToLakeStream', {
      deliveryStreamName: `${w.deliveryStream}-to-lake`,
      deliveryStreamType: 'DirectPut',
      deliveryStreamEncryptionConfigurationInput: { keyType: 'AWS_OWNED_CMK' },
      extendedS3DestinationConfiguration: {
        ...s3Common,
        prefix: `${ownPrefix}/cwlogs/!{timestamp:yyyy/MM/dd}/`,
        errorOutputPrefix: `${ownPrefix}/errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/`,
      },
    });
    toLakeStream.cfnOptions.condition = toLake;
    const toCustodyStream = new firehose.CfnDeliveryStream(this, 'ToCustodyStream', {
      deliveryStreamName: `${w.deliveryStream}-to-custody`,
      deliveryStreamType: 'DirectPut',
      deliveryStreamEncryptionConfigurationInput: { keyType: 'AWS_OWNED_CMK' },
      httpEndpointDestinationConfiguration: {
        endpointConfiguration: { url: endpointUrl.valueAsString, name: 'Custody' },
        secretsManagerConfiguration: { enabled: true, secretArn: credentialArn.valueAsString, roleArn: deliveryRole.roleArn },
        requestConfiguration: { contentEncoding: 'GZIP' },
        bufferingHints: { intervalInSeconds: 60, sizeInMBs: 4 },
        retryOptions: { durationInSeconds: 3600 },
        roleArn: deliveryRole.roleArn,
        s3BackupMode: 'FailedDataOnly',
        s3Configuration: { ...s3Common, prefix: `${ownPrefix}/failed/` },
        cloudWatchLoggingOptions: s3Common.cloudWatchLoggingOptions,
      },
    });
    toCustodyStream.cfnOptions.condition = toCustody;
    const whyEmptyDefault =
      'The CustodyFirehoseEndpointUrl and CustodyEndpointCredentialArn parameters default to empty, which selects the lake; the stream that uses them exists only under the DeliverToCustody condition (a non-empty https:// URL), so the empty defaults never reach it. The validator does not follow resource conditions.';
    acknowledge(toCustodyStream, { 'CloudFormation-Validate::W1030': whyEmptyDefault });
    acknowledge(this, { 'CloudFormation-Validate::W1030': whyEmptyDefault });
    for (const st of [toLakeStream, toCustodyStream]) st.addResourceDependency(deliveryPolicy);
    const streamArn = Fn.conditionIf(toCustody.logicalId, toCustodyStream.attrArn, toLakeStream.attrArn).toString();

    const subscriptionRole = new iam.Role(this, 'SubscriptionRole', {
      roleName: w.subscriptionRole,
      description: 'Custody: CloudWatch Logs puts subscribed log events into the Firehose stream',
      assumedBy: new iam.AccountRootPrincipal(),
    });
    (subscriptionRole.node.defaultChild as iam.CfnRole).assumeRolePolicyDocument = {
      Version: '2012-10-17',
      Statement: [{ Sid: 'CloudWatchLogsOfThisAccount', Effect: 'Allow', Principal: { Service: 'logs.amazonaws.com' }, Action: 'sts:AssumeRole', Condition: { StringLike: { 'aws:SourceArn': `arn:aws:logs:${region}:${account}:*` } } }],
    };
    const subscriptionPolicy = new iam.ManagedPolicy(this, 'SubscriptionPolicy', {
      managedPolicyName: `${w.subscriptionRole}-policy`,
      description: 'Custody: put records into the Custody Firehose stream only',
      roles: [subscriptionRole],
      document: iam.PolicyDocument.fromJson({ Version: '2012-10-17', Statement: [{ Sid: 'PutIntoTheStream', Effect: 'Allow', Action: ['firehose:PutRecord', 'firehose:PutRecordBatch'], Resource: streamArn }] }),
    });
    for (const [i, name] of logGroupNames.entries()) {
      const filter = new logs.CfnSubscriptionFilter(this, `Subscription${i}`, {
        logGroupName: name,
        filterName: `${w.deliveryStream}-to-custody`,
        filterPattern: '',
        destinationArn: streamArn,
        roleArn: subscriptionRole.roleArn,
      });
      filter.addResourceDependency(subscriptionPolicy.node.defaultChild as iam.CfnManagedPolicy);
    }

    acknowledge(deliveryPolicy, {
      [`AwsSolutions::AwsSolutions-IAM5[Resource::${lake}/${ownPrefix}/*]`]:
        'Firehose names each object when it delivers a batch, so objects can only be named with a wildcard under this account\'s own prefix firehose/<account>/; the lake bucket policy confines the role to that prefix too.',
      [`AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:logs:${region}:${account}:log-group:${errorLogGroupName}:log-stream:*]`]:
        'Firehose writes its delivery errors to streams of this one log group; stream names are chosen by Firehose.',
    });
    return { toLake: toLakeStream, toCustody: toCustodyStream };
  }

  private acknowledgeCustomResource(resource: cr.AwsCustomResource): void {
    const why =
      'AWS CloudFormation has no resource for the Macie classification export, so one CDK AwsCustomResource makes the single PutClassificationExportConfiguration call at deploy time. Its Lambda function runs only then, needs no VPC, concurrency limit or dead-letter queue (CloudFormation retries and reports failures), and';
    acknowledge(resource, {
      'AwsSolutions::AwsSolutions-IAM5[Resource::*]': `${why} macie2:PutClassificationExportConfiguration has no resource type, so IAM only accepts "*".`,
      'NIST.800.53.R5::NIST.800.53.R5-IAMNoInlinePolicy': `${why} its one-statement policy is generated with the function.`,
    });
    const provider = Stack.of(this).node.tryFindChild('AWS679f53fac002430cb0da5b7982bd2287');
    if (provider) {
      acknowledge(provider, {
        'AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]': `${why} the AWS managed basic execution policy only lets it write its own logs.`,
        'AwsSolutions::AwsSolutions-L1': `${why} its runtime is chosen by the aws-cdk-lib release.`,
        'NIST.800.53.R5::NIST.800.53.R5-LambdaConcurrency': `${why} it runs once per deployment.`,
        'NIST.800.53.R5::NIST.800.53.R5-LambdaDLQ': `${why} CloudFormation reports a failed call.`,
        'NIST.800.53.R5::NIST.800.53.R5-LambdaInsideVPC': `${why} it calls only the Macie API.`,
      });
    }
  }
}
