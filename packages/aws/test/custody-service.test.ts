/**
 * The optional Custody vault service construct (issue 8, item 3): its explicit `custody serve`
 * configuration and the ECS/EFS resources it creates on the lake bucket and key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { CustodyService, serveCommand } from '../src/custody-service.js';
import { securityAccountNames } from '../src/names.js';
import type { CfnTemplate } from './support/cfn.js';
import { buildBlueprint, REGION, SEC, synthTemplates } from './support/stacks.js';

const n = securityAccountNames(SEC, REGION);
const b = buildBlueprint({});
const raw = synthTemplates(b).Security as CfnTemplate;
const t = Template.fromJSON(raw as unknown as Record<string, unknown>);

describe('Custody vault service construct', () => {
  it('says exactly what it runs: custody serve on /data, pinned to its region, with the lake as S3 storage by default', () => {
    assert.deepEqual(serveCommand({ lakeBucket: n.lakeBucket, region: REGION, storage: 's3', port: 8700 }), [
      'serve', '--data', '/data', '--host', '0.0.0.0', '--port', '8700', '--regions', REGION, '--storage', `s3://${n.lakeBucket}/custody/`,
    ]);
    assert.deepEqual(serveCommand({ lakeBucket: n.lakeBucket, region: REGION, storage: 'data-dir', port: 9000 }), ['serve', '--data', '/data', '--host', '0.0.0.0', '--port', '9000', '--regions', REGION]);
    assert.deepEqual(b.security.custody?.serveCommand, serveCommand({ lakeBucket: n.lakeBucket, region: REGION, storage: 's3', port: 8700 }));
  });

  it('runs one Fargate task (never two writers on one data directory) as the service role, in private subnets', () => {
    t.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 1,
      LaunchType: 'FARGATE',
      DeploymentConfiguration: Match.objectLike({ MinimumHealthyPercent: 0, MaximumPercent: 100, DeploymentCircuitBreaker: { Enable: true, Rollback: true } }),
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED', Subnets: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'] }) },
    });
    const serviceRoleId = Object.entries(raw.Resources).find(([, r]) => r.Type === 'AWS::IAM::Role' && r.Properties?.RoleName === n.serviceRole)?.[0];
    assert.ok(serviceRoleId);
    t.hasResourceProperties('AWS::ECS::TaskDefinition', {
      TaskRoleArn: { 'Fn::GetAtt': [serviceRoleId, 'Arn'] },
      RequiresCompatibilities: ['FARGATE'],
      ContainerDefinitions: [
        Match.objectLike({
          Image: 'ghcr.io/example/custody:0.1.0',
          Command: serveCommand({ lakeBucket: n.lakeBucket, region: REGION, storage: 's3', port: 8700 }),
          ReadonlyRootFilesystem: true,
          User: '1000:1000',
          PortMappings: [Match.objectLike({ ContainerPort: 8700 })],
          MountPoints: [{ ContainerPath: '/data', SourceVolume: 'data', ReadOnly: false }],
          Environment: Match.absent(),
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
        }),
      ],
      Volumes: [Match.objectLike({ Name: 'data', EFSVolumeConfiguration: Match.objectLike({ TransitEncryption: 'ENABLED', AuthorizationConfig: Match.objectLike({ IAM: 'ENABLED' }) }) })],
    });
  });

  it('keeps its working state on an encrypted, backed-up EFS volume and its logs in a KMS-encrypted log group', () => {
    t.hasResource('AWS::EFS::FileSystem', { DeletionPolicy: 'Retain', Properties: Match.objectLike({ Encrypted: true, BackupPolicy: { Status: 'ENABLED' } }) });
    t.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: `/custody/${n.serviceRole}`, KmsKeyId: Match.anyValue(), RetentionInDays: 365 });
    t.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }] });
  });

  it('is reachable only from the allowed CIDR, on its port', () => {
    t.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'Custody vault task: API from the allowed CIDR only',
      SecurityGroupIngress: [{ CidrIp: '10.0.0.0/16', FromPort: 8700, ToPort: 8700, IpProtocol: 'tcp', Description: 'Custody API' }],
    });
  });

  it('gets the lake through its role: read the lake, write and lock under custody/ only, and mount its volume', () => {
    t.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      ManagedPolicyName: `${n.serviceRole}-data-volume`,
      PolicyDocument: { Statement: [Match.objectLike({ Action: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'], Condition: { StringEquals: { 'elasticfilesystem:AccessPointArn': Match.anyValue() } } })] },
    });
    t.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      ManagedPolicyName: `custody-service-${REGION}`,
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Sid: 'WriteAndLockUnderCustodyPrefix', Action: ['s3:PutObject', 's3:PutObjectRetention'], Resource: `arn:aws:s3:::${n.lakeBucket}/custody/*` })]) },
    });
  });

  it('refuses an open CIDR, a bad CIDR and a bad port', () => {
    const make = (p: { allowedCidr?: string; port?: number }) => () => {
      const s = new Stack(new App(), 'S', { env: { account: SEC, region: REGION } });
      const vpc = ec2.Vpc.fromVpcAttributes(s, 'V', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['us-east-1a'], privateSubnetIds: ['subnet-0123456789abcdef0'], privateSubnetRouteTableIds: ['rtb-0123456789abcdef0'] });
      new CustodyService(s, 'C', { names: n, vpc, image: 'x', taskRole: iam.Role.fromRoleName(s, 'R', n.serviceRole), allowedCidr: p.allowedCidr ?? '10.0.0.0/16', ...(p.port ? { port: p.port } : {}) });
    };
    assert.throws(make({ allowedCidr: '0.0.0.0/0' }), /whole internet/);
    assert.throws(make({ allowedCidr: '10.0.0.0' }), /not an IPv4 CIDR/);
    assert.throws(make({ port: 70000 }), /not a TCP port/);
    assert.doesNotThrow(make({}));
  });
});
