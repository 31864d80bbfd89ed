/**
 * CDK assertion tests of the workload account stack (issue 8, item 2) and the guardrails stack
 * (the SCPs), from the synthesized templates.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { policySize, SCP_MAX_CHARS, securityAccountScp, workloadAccountScp, MANAGED_POLICY_MAX_CHARS, roleBoundaryDocument } from '../src/guardrails.js';
import { GuardrailsStack } from '../src/guardrails-stack.js';
import { LOG_STOPPING_GROUPS } from '../src/log-stopping-calls.js';
import { securityAccountNames, workloadAccountNames } from '../src/names.js';
import { FLOW_LOG_FORMAT, WorkloadAccountStack } from '../src/workload-account-stack.js';
import type { CfnTemplate } from './support/cfn.js';
import { ResolvedTemplate } from './support/cfn.js';
import { buildBlueprint, MGMT, REGION, SEC, synthTemplates, WORKLOAD } from './support/stacks.js';

const n = securityAccountNames(SEC, REGION);
const w = workloadAccountNames(REGION);
const KEY = `arn:aws:kms:${REGION}:${SEC}:key/00000000-0000-4000-8000-000000000001`;
const LAKE = `arn:aws:s3:::${n.lakeBucket}`;
const templates = synthTemplates(buildBlueprint({ lakeKeyArn: KEY }));
const t = Template.fromJSON(templates.Workload as unknown as Record<string, unknown>);
const tm = Template.fromJSON(templates.Management as unknown as Record<string, unknown>);
const tg = Template.fromJSON(templates.Guardrails as unknown as Record<string, unknown>);
const raw = templates.Workload as CfnTemplate;

describe('workload account stack', () => {
  it('account trail: multi-region, log file validation on, SSE-KMS with the lake key, into the lake under cloudtrail/', () => {
    t.hasResourceProperties('AWS::CloudTrail::Trail', {
      TrailName: w.trail,
      IsMultiRegionTrail: true,
      IncludeGlobalServiceEvents: true,
      EnableLogFileValidation: true,
      IsLogging: true,
      IsOrganizationTrail: false,
      KMSKeyId: KEY,
      S3BucketName: n.lakeBucket,
      S3KeyPrefix: 'cloudtrail',
    });
  });

  it('organization trail from the management account', () => {
    tm.hasResourceProperties('AWS::CloudTrail::Trail', { TrailName: 'custody-organization-trail', IsOrganizationTrail: true, IsMultiRegionTrail: true, EnableLogFileValidation: true, KMSKeyId: KEY, S3BucketName: n.lakeBucket });
    tm.resourceCountIs('AWS::Config::DeliveryChannel', 0);
  });

  it('VPC Flow Logs of every listed VPC, all traffic, every v5 field with a header, into vpcflowlogs/', () => {
    for (const vpc of ['vpc-0123456789abcdef0', 'vpc-0fedcba9876543210']) {
      t.hasResourceProperties('AWS::EC2::FlowLog', { ResourceId: vpc, ResourceType: 'VPC', TrafficType: 'ALL', LogDestinationType: 's3', LogDestination: `${LAKE}/vpcflowlogs/`, LogFormat: FLOW_LOG_FORMAT, DestinationOptions: { FileFormat: 'plain-text', HiveCompatiblePartitions: false, PerHourPartition: false } });
    }
    for (const f of ['${version}', '${account-id}', '${vpc-id}', '${pkt-srcaddr}', '${region}', '${flow-direction}', '${traffic-path}']) assert.ok(FLOW_LOG_FORMAT.includes(f), f);
  });

  it('GuardDuty publishing destination: the lake under guardduty/, encrypted with the lake key', () => {
    t.hasResourceProperties('AWS::GuardDuty::PublishingDestination', { DetectorId: '12abc34d567e8fa901bc2d34eexample', DestinationType: 'S3', DestinationProperties: { DestinationArn: `${LAKE}/guardduty`, KmsKeyArn: KEY } });
  });

  it('AWS Config recorder and delivery channel into config/, with the lake key', () => {
    t.hasResourceProperties('AWS::Config::ConfigurationRecorder', { RecordingGroup: { AllSupported: true, IncludeGlobalResourceTypes: true }, RoleARN: `arn:aws:iam::${WORKLOAD}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig` });
    t.hasResourceProperties('AWS::Config::DeliveryChannel', { S3BucketName: n.lakeBucket, S3KeyPrefix: 'config', S3KmsKeyArn: KEY });
  });

  it('Macie discovery results exported to macie/ with the lake key (one API call at deploy: no CloudFormation resource exists)', () => {
    const cr = Object.values(raw.Resources).find((r) => r.Type === 'Custom::MacieClassificationExport');
    assert.ok(cr);
    const create = JSON.stringify(cr.Properties?.Create ?? cr.Properties?.Update);
    for (const s of ['Macie2', 'putClassificationExportConfiguration', n.lakeBucket, 'macie/', KEY]) assert.ok(create.includes(s), `${s} in ${create}`);
    t.hasResourceProperties('AWS::IAM::Policy', { PolicyDocument: { Statement: [Match.objectLike({ Action: 'macie2:PutClassificationExportConfiguration' })] } });
  });

  it('CloudWatch Logs → Firehose → the lake under firehose/<account>/, or → Custody when the endpoint parameter is set', () => {
    t.hasParameter('CustodyFirehoseEndpointUrl', { Type: 'String', Default: '' });
    t.hasCondition('DeliverToCustody', { 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'CustodyFirehoseEndpointUrl' }, ''] }] });
    t.hasResource('AWS::KinesisFirehose::DeliveryStream', {
      Condition: 'DeliverToLake',
      Properties: Match.objectLike({
        DeliveryStreamName: 'custody-cwlogs-to-lake',
        DeliveryStreamEncryptionConfigurationInput: { KeyType: 'AWS_OWNED_CMK' },
        ExtendedS3DestinationConfiguration: Match.objectLike({ BucketARN: LAKE, Prefix: `firehose/${WORKLOAD}/cwlogs/!{timestamp:yyyy/MM/dd}/`, EncryptionConfiguration: { KMSEncryptionConfig: { AWSKMSKeyARN: KEY } }, CompressionFormat: 'UNCOMPRESSED' }),
      }),
    });
    t.hasResource('AWS::KinesisFirehose::DeliveryStream', {
      Condition: 'DeliverToCustody',
      Properties: Match.objectLike({
        DeliveryStreamName: 'custody-cwlogs-to-custody',
        HttpEndpointDestinationConfiguration: Match.objectLike({
          EndpointConfiguration: { Url: { Ref: 'CustodyFirehoseEndpointUrl' }, Name: 'Custody' },
          SecretsManagerConfiguration: Match.objectLike({ Enabled: true, SecretARN: { Ref: 'CustodyEndpointCredentialArn' } }),
          S3BackupMode: 'FailedDataOnly',
          S3Configuration: Match.objectLike({ BucketARN: LAKE, Prefix: `firehose/${WORKLOAD}/failed/` }),
        }),
      }),
    });
    for (const g of ['/app/payments', '/app/web']) t.hasResourceProperties('AWS::Logs::SubscriptionFilter', { LogGroupName: g, FilterPattern: '', DestinationArn: { 'Fn::If': ['DeliverToCustody', Match.anyValue(), Match.anyValue()] } });
  });

  it('resolves to exactly one stream for each value of the endpoint parameter', () => {
    const toLake = new ResolvedTemplate(raw, { account: WORKLOAD, region: REGION });
    assert.deepEqual(toLake.ofType('AWS::KinesisFirehose::DeliveryStream').map((s) => s.Properties.DeliveryStreamName), ['custody-cwlogs-to-lake']);
    const toCustody = new ResolvedTemplate(raw, { account: WORKLOAD, region: REGION, parameters: { CustodyFirehoseEndpointUrl: 'https://custody.example.org/v1/firehose', CustodyEndpointCredentialArn: `arn:aws:secretsmanager:${REGION}:${WORKLOAD}:secret:custody-writer-abc123` } });
    assert.deepEqual(toCustody.ofType('AWS::KinesisFirehose::DeliveryStream').map((s) => s.Properties.DeliveryStreamName), ['custody-cwlogs-to-custody']);
    assert.deepEqual(toCustody.ofType('AWS::Logs::SubscriptionFilter').map((s) => s.Properties.DestinationArn), [0, 1].map(() => `arn:aws:firehose:${REGION}:${WORKLOAD}:deliverystream/custody-cwlogs-to-custody`));
    const policy = toCustody.ofType('AWS::IAM::ManagedPolicy').find((p) => p.Properties.ManagedPolicyName === `${w.firehoseRole}-policy`);
    assert.ok(JSON.stringify(policy).includes('ReadTheCustodyCredential'));
    const lakePolicy = toLake.ofType('AWS::IAM::ManagedPolicy').find((p) => p.Properties.ManagedPolicyName === `${w.firehoseRole}-policy`);
    assert.ok(!JSON.stringify(lakePolicy).includes('secretsmanager'), 'no secret access when delivering to the lake');
  });

  it('the Firehose delivery role writes under its own account prefix only', () => {
    const policy = Object.values(raw.Resources).find((r) => r.Type === 'AWS::IAM::ManagedPolicy' && r.Properties?.ManagedPolicyName === `${w.firehoseRole}-policy`);
    const st = (policy?.Properties?.PolicyDocument as { Statement: Array<Record<string, unknown>> }).Statement;
    assert.deepEqual(st[0], { Sid: 'WriteUnderOwnPrefix', Effect: 'Allow', Action: ['s3:PutObject', 's3:AbortMultipartUpload'], Resource: `${LAKE}/firehose/${WORKLOAD}/*` });
    t.hasResourceProperties('AWS::IAM::Role', { RoleName: w.firehoseRole, AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'firehose.amazonaws.com' }, Condition: { StringEquals: { 'aws:SourceAccount': WORKLOAD } } })] } });
  });

  it('the producer role may only assume the security account writer role', () => {
    t.hasResourceProperties('AWS::IAM::Role', { RoleName: w.producerRole, AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: ['lambda.amazonaws.com', 'ecs-tasks.amazonaws.com', 'ec2.amazonaws.com'] } })] } });
    t.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      ManagedPolicyName: `custody-producer-${REGION}`,
      PolicyDocument: { Version: '2012-10-17', Statement: [{ Sid: 'AssumeTheWriterRole', Effect: 'Allow', Action: 'sts:AssumeRole', Resource: `arn:aws:iam::${SEC}:role/${n.writerRole}` }] },
    });
  });

  it('forwards every log-stopping call to the security account alarm bus', () => {
    const bus = `arn:aws:events:${REGION}:${SEC}:event-bus/${n.alarmBus}`;
    for (const g of LOG_STOPPING_GROUPS) {
      t.hasResourceProperties('AWS::Events::Rule', {
        Name: `custody-fwd-stop-${g.id}`,
        EventPattern: { 'detail-type': ['AWS API Call via CloudTrail'], detail: Match.objectLike({ eventSource: [g.eventSource], eventName: g.eventNames }) },
        Targets: [Match.objectLike({ Arn: bus, RoleArn: Match.anyValue() })],
      });
    }
    t.hasResourceProperties('AWS::IAM::ManagedPolicy', { PolicyDocument: { Statement: [Match.objectLike({ Action: 'events:PutEvents', Resource: bus })] } });
  });

  it('refuses a key alias, a key of another region or account, and a bad VPC id', () => {
    const make = (p: Partial<ConstructorParameters<typeof WorkloadAccountStack>[2]>) => () => new WorkloadAccountStack(new App(), 'W', { env: { account: WORKLOAD, region: REGION }, securityAccount: SEC, lakeKeyArn: KEY, ...p });
    assert.throws(make({ lakeKeyArn: `arn:aws:kms:${REGION}:${SEC}:alias/custody-lake` }), /not a KMS key ARN/);
    assert.throws(make({ lakeKeyArn: KEY.replace(REGION, 'eu-west-1') }), /stay in their region/);
    assert.throws(make({ lakeKeyArn: KEY.replace(SEC, MGMT) }), /security account's key/);
    assert.throws(make({ vpcIds: ['vpc-123'] }), /not a VPC id/);
    assert.throws(make({ securityAccount: '12' }), /12-digit/);
  });
});

describe('guardrails stack (SCPs, management account)', () => {
  it('attaches the security account SCP, exactly the guardrail statements, within the SCP size limit', () => {
    tg.hasResourceProperties('AWS::Organizations::Policy', { Name: 'custody-security-account-guardrails', Type: 'SERVICE_CONTROL_POLICY', TargetIds: [SEC], Content: securityAccountScp({ account: SEC }) });
    assert.ok(policySize(securityAccountScp({ account: SEC })) <= SCP_MAX_CHARS, `${policySize(securityAccountScp({ account: SEC }))} characters`);
    assert.ok(policySize(securityAccountScp({ account: SEC, prefix: 'abcdefghijkl' })) <= SCP_MAX_CHARS, 'even with the longest name prefix');
    assert.ok(policySize(roleBoundaryDocument({ account: SEC, prefix: 'abcdefghijkl' })) <= MANAGED_POLICY_MAX_CHARS, 'the boundary fits a managed policy');
    assert.ok(securityAccountScp({ account: SEC }).Statement.every((s) => s.Effect === 'Deny'), 'the SCP only denies (FullAWSAccess stays attached)');
  });

  it('attaches the workload SCP to the given accounts and OUs', () => {
    tg.hasResourceProperties('AWS::Organizations::Policy', { Name: 'custody-workload-account-guardrails', TargetIds: [WORKLOAD, 'ou-ab12-cdef3456'], Content: workloadAccountScp() });
    const denied = workloadAccountScp().Statement[0]?.Action as string[];
    for (const a of ['cloudtrail:StopLogging', 'cloudtrail:DeleteTrail', 'ec2:DeleteFlowLogs', 'guardduty:DeleteDetector', 'config:StopConfigurationRecorder', 'macie2:DisableMacie']) assert.ok(denied.includes(a), a);
    assert.ok(!denied.includes('cloudtrail:UpdateTrail'), 'changing a setting stays possible (deployments need it); it is alarmed');
  });

  it('refuses to run in the security account itself and bad targets', () => {
    assert.throws(() => new GuardrailsStack(new App(), 'G', { env: { account: SEC, region: REGION }, securityAccount: SEC }), /management account/);
    assert.throws(() => new GuardrailsStack(new App(), 'G', { env: { account: MGMT, region: REGION }, securityAccount: SEC, workloadTargets: ['ou-x'] }), /not an account id, OU id/);
    assert.throws(() => new GuardrailsStack(new App(), 'G', { env: { account: MGMT, region: REGION }, securityAccount: SEC, workloadTargets: [SEC] }), /already has its own SCP/);
  });
});
