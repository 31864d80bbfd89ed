/**
 * The optional Custody vault service: one ECS Fargate task running `custody serve` inside the
 * security account, on the lake bucket and key this blueprint creates.
 *
 * Its configuration is explicit (see `serveCommand`):
 *
 * - `storage: 's3'` (the default): `custody serve --storage s3://<lake>/custody/ …`. Tiles,
 *   bundles and checkpoints go to the lake under `custody/` with COMPLIANCE retention; the EFS
 *   volume at /data keeps the working state. `custody serve --storage` also needs
 *   `--database postgres://…` (sequencing and leader election live in PostgreSQL; the blueprint
 *   creates no database: add it to the command, docs/AWS.md) — or use `storage: 'data-dir'`.
 * - `storage: 'data-dir'`: `custody serve --data /data …`, everything on the encrypted EFS
 *   volume; works with today's `custody`.
 *
 * One task only (minimum healthy 0 %, maximum 100 %): a vault data directory has one writer;
 * several nodes arrive with issue 7's PostgreSQL + S3 mode. The API listens on plain HTTP inside
 * the VPC, reachable only from `allowedCidr`; put a TLS load balancer in front, or give the
 * image a certificate and add `--tls-cert/--tls-key`, before anything outside the VPC uses it.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as efs from 'aws-cdk-lib/aws-efs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { lockedKey } from './lake.js';
import { lockedKeyStatements } from './lake-policies.js';
import { acknowledge } from './nag.js';
import { arn, LAKE_PREFIXES, type SecurityAccountNames } from './names.js';

export type CustodyStorage = 's3' | 'data-dir';

export interface CustodyServiceProps {
  names: SecurityAccountNames;
  /** The VPC; the task runs in its private subnets (they need a NAT gateway or VPC endpoints for ECR/S3/KMS/Logs). */
  vpc: ec2.IVpc;
  /** Container image whose entrypoint is `custody`, e.g. `ghcr.io/example/custody:0.1.0`. */
  image: string;
  /** The task role (the blueprint's `<prefix>-service-<region>` role). */
  taskRole: iam.IRole;
  /** Where the vault keeps its tiles, bundles and checkpoints (default `s3`). */
  storage?: CustodyStorage;
  /** Who may reach the API (CIDR). */
  allowedCidr: string;
  port?: number;
  /** Fargate CPU units and memory (defaults 1024 and 2048). */
  cpu?: number;
  memoryMiB?: number;
}

/** The `custody` arguments the task runs with, for a given configuration. */
export function serveCommand(o: { lakeBucket: string; region: string; storage: CustodyStorage; port: number }): string[] {
  const base = ['serve', '--data', '/data', '--host', '0.0.0.0', '--port', String(o.port), '--regions', o.region];
  return o.storage === 's3' ? [...base, '--storage', `s3://${o.lakeBucket}/${LAKE_PREFIXES.custody}/`] : base;
}

export class CustodyService extends Construct {
  readonly serveCommand: string[];
  readonly service: ecs.FargateService;
  readonly fileSystem: efs.FileSystem;
  readonly logGroup: logs.LogGroup;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, p: CustodyServiceProps) {
    super(scope, id);
    const n = p.names;
    const port = p.port ?? 8700;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`Port ${port} is not a TCP port (1 to 65535).`);
    if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(p.allowedCidr)) throw new Error(`${JSON.stringify(p.allowedCidr)} is not an IPv4 CIDR such as 10.0.0.0/16.`);
    if (p.allowedCidr.endsWith('/0')) throw new Error('allowedCidr must not be the whole internet (/0): the vault API listens on plain HTTP inside the VPC.');
    const storage = p.storage ?? 's3';
    this.serveCommand = serveCommand({ lakeBucket: n.lakeBucket, region: n.region, storage, port });

    const { key } = lockedKey(this, 'LogKey', `alias/${n.serviceRole}-logs`, 'Custody service: encrypts the vault service log group', [
      ...lockedKeyStatements({ securityAccount: n.account, securityAdminRoleArn: arn.role(n.account, n.securityAdminRole) }),
      {
        Sid: 'CloudWatchLogsEncryptsTheServiceLogGroup',
        Effect: 'Allow',
        Principal: { Service: `logs.${n.region}.amazonaws.com` },
        Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
        Resource: '*',
        Condition: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:aws:logs:${n.region}:${n.account}:log-group:/custody/*` } },
      },
    ]);
    this.logGroup = new logs.LogGroup(this, 'Logs', { logGroupName: `/custody/${n.serviceRole}`, encryptionKey: key, retention: logs.RetentionDays.ONE_YEAR, removalPolicy: RemovalPolicy.RETAIN });

    this.securityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', { vpc: p.vpc, description: 'Custody vault task: API from the allowed CIDR only', allowAllOutbound: true });
    this.securityGroup.addIngressRule(ec2.Peer.ipv4(p.allowedCidr), ec2.Port.tcp(port), 'Custody API');

    this.fileSystem = new efs.FileSystem(this, 'Data', {
      vpc: p.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      encrypted: true,
      enableAutomaticBackups: true,
      performanceMode: efs.PerformanceMode.GENERAL_PURPOSE,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledge(this.fileSystem, {
      'NIST.800.53.R5::NIST.800.53.R5-EFSInBackupPlan':
        'enableAutomaticBackups puts the file system in AWS Backup\'s default EFS plan (aws/efs/automatic-backup-plan, daily, 35 days); the rule only recognises an explicit AWS::Backup::BackupSelection. With S3 storage the durable copy of every entry is the Object Lock lake.',
    });
    this.fileSystem.connections.allowDefaultPortFrom(this.securityGroup, 'Custody vault task');
    const accessPoint = this.fileSystem.addAccessPoint('VaultData', {
      path: '/custody',
      createAcl: { ownerUid: '1000', ownerGid: '1000', permissions: '700' },
      posixUser: { uid: '1000', gid: '1000' },
    });

    const cluster = new ecs.Cluster(this, 'Cluster', { vpc: p.vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
    const task = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: p.cpu ?? 1024,
      memoryLimitMiB: p.memoryMiB ?? 2048,
      taskRole: p.taskRole,
      volumes: [
        {
          name: 'data',
          efsVolumeConfiguration: { fileSystemId: this.fileSystem.fileSystemId, transitEncryption: 'ENABLED', authorizationConfig: { accessPointId: accessPoint.accessPointId, iam: 'ENABLED' } },
        },
      ],
    });
    // A named managed policy rather than grantReadWrite's inline one (NIST IAMNoInlinePolicy).
    new iam.ManagedPolicy(this, 'DataVolumeAccess', {
      managedPolicyName: `${n.serviceRole}-data-volume`,
      description: 'Custody service: mount and write its EFS data volume through the access point',
      roles: [p.taskRole],
      statements: [
        new iam.PolicyStatement({
          sid: 'MountTheVaultDataVolume',
          actions: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'],
          resources: [this.fileSystem.fileSystemArn],
          conditions: { StringEquals: { 'elasticfilesystem:AccessPointArn': accessPoint.accessPointArn } },
        }),
      ],
    });
    const container = task.addContainer('custody', {
      image: ecs.ContainerImage.fromRegistry(p.image),
      command: this.serveCommand,
      portMappings: [{ containerPort: port }],
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: 'custody' }),
      readonlyRootFilesystem: true,
      user: '1000:1000',
      stopTimeout: Duration.seconds(60),
    });
    if (task.executionRole) {
      acknowledge(task.executionRole, {
        'NIST.800.53.R5::NIST.800.53.R5-IAMNoInlinePolicy':
          'The ECS execution role\'s policy is generated by CDK for pulling the image and writing to this service\'s log group only; it is bounded by the guardrails and is not the task role (the task role has only named managed policies).',
      });
    }
    container.addMountPoints({ containerPath: '/data', sourceVolume: 'data', readOnly: false });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition: task,
      desiredCount: 1,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      assignPublicIp: false,
      securityGroups: [this.securityGroup],
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      circuitBreaker: { rollback: true },
    });
  }
}
