/**
 * The security data lake of one region: its customer-managed key, the Object Lock lake bucket,
 * the access-log bucket and (optionally) the no-lifecycle evidence bucket for MFA delete.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { accessLogBucketStatements, lakeKeyStatements, lockedBucketStatements, type Producers } from './lake-policies.js';
import type { PolicyStatementJson } from './guardrails.js';
import { acknowledge } from './nag.js';
import { arn, type SecurityAccountNames } from './names.js';

export interface LakeProps {
  names: SecurityAccountNames;
  producers: Producers;
  /** Object Lock COMPLIANCE default retention, in days (a number or a parameter's token). */
  retentionDays: number;
  /** Days after which objects move to Glacier Instant Retrieval. */
  archiveAfterDays: number;
  /** Days after which objects move to Glacier Deep Archive. */
  deepArchiveAfterDays: number;
  /** Also create the no-lifecycle evidence bucket (MFA delete can be turned on for it by the root user). */
  evidenceBucket: boolean;
  /** Role ARN pattern of the workload accounts' Firehose delivery roles. */
  firehoseRolePattern: string;
}

/** A KMS key whose whole policy is the given statements, rotation on, never deleted. */
export function lockedKey(scope: Construct, id: string, alias: string, description: string, statements: PolicyStatementJson[]): { key: kms.IKey; cfn: kms.CfnKey } {
  const cfn = new kms.CfnKey(scope, id, {
    description,
    enableKeyRotation: true,
    keySpec: 'SYMMETRIC_DEFAULT',
    keyUsage: 'ENCRYPT_DECRYPT',
    keyPolicy: { Version: '2012-10-17', Statement: statements },
    // The policy deliberately denies PutKeyPolicy to the creator (only the security admin may
    // change it), which KMS's lockout check would otherwise refuse.
    bypassPolicyLockoutSafetyCheck: true,
  });
  cfn.applyRemovalPolicy(RemovalPolicy.RETAIN);
  new kms.CfnAlias(scope, `${id}Alias`, { aliasName: alias, targetKeyId: cfn.ref });
  return { key: kms.Key.fromCfnKey(cfn), cfn };
}

function addStatements(bucket: s3.Bucket, statements: PolicyStatementJson[]): void {
  for (const st of statements) bucket.addToResourcePolicy(iam.PolicyStatement.fromJson(st));
}

function archiveRules(p: LakeProps): s3.LifecycleRule[] {
  return [
    {
      id: 'ArchiveToGlacier',
      enabled: true,
      transitions: [
        { storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(p.archiveAfterDays) },
        { storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(p.deepArchiveAfterDays) },
      ],
      noncurrentVersionTransitions: [
        { storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(p.archiveAfterDays) },
        { storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(p.deepArchiveAfterDays) },
      ],
      abortIncompleteMultipartUploadAfter: Duration.days(7),
    },
  ];
}

export class Lake extends Construct {
  readonly key: kms.IKey;
  readonly keyResource: kms.CfnKey;
  readonly bucket: s3.Bucket;
  readonly accessLogBucket: s3.Bucket;
  readonly evidenceBucket?: s3.Bucket;

  constructor(scope: Construct, id: string, p: LakeProps) {
    super(scope, id);
    const n = p.names;
    const writerRoleArn = arn.role(n.account, n.writerRole);
    const serviceRoleArn = arn.role(n.account, n.serviceRole);
    const securityAdminRoleArn = arn.role(n.account, n.securityAdminRole);

    const { key, cfn } = lockedKey(
      this,
      'Key',
      n.lakeKeyAlias,
      `Custody security data lake, ${n.region}: encrypts every object of the lake and evidence buckets in this region only`,
      lakeKeyStatements({
        securityAccount: n.account,
        securityAdminRoleArn,
        region: n.region,
        lakeBucketName: n.lakeBucket,
        producers: p.producers,
        firehoseRolePattern: p.firehoseRolePattern,
      }),
    );
    this.key = key;
    this.keyResource = cfn;

    this.accessLogBucket = new s3.Bucket(this, 'AccessLogs', {
      bucketName: n.accessLogBucket,
      versioned: true,
      // S3 server access logging can only deliver to SSE-S3 buckets without Object Lock default retention.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      lifecycleRules: archiveRules(p),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    addStatements(this.accessLogBucket, accessLogBucketStatements(n.accessLogBucket));

    const locked = (cid: string, bucketName: string, logPrefix: string, lifecycle: boolean) => {
      const bucket = new s3.Bucket(this, cid, {
        bucketName,
        versioned: true,
        objectLockEnabled: true,
        encryption: s3.BucketEncryption.KMS,
        encryptionKey: key,
        bucketKeyEnabled: true,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforceSSL: true,
        minimumTLSVersion: 1.2,
        serverAccessLogsBucket: this.accessLogBucket,
        serverAccessLogsPrefix: logPrefix,
        ...(lifecycle ? { lifecycleRules: archiveRules(p) } : {}),
        removalPolicy: RemovalPolicy.RETAIN,
      });
      // Set on the L1 resource: the L2 validates the duration eagerly and cannot take a parameter.
      (bucket.node.defaultChild as s3.CfnBucket).objectLockConfiguration = {
        objectLockEnabled: 'Enabled',
        rule: { defaultRetention: { mode: 'COMPLIANCE', days: p.retentionDays } },
      };
      return bucket;
    };

    const policyInput = {
      keyArn: key.keyArn,
      retentionDays: p.retentionDays,
      securityAccount: n.account,
      writerRoleArn,
      serviceRoleArn,
    };
    this.bucket = locked('Bucket', n.lakeBucket, 'lake/', true);
    addStatements(this.bucket, lockedBucketStatements({ ...policyInput, bucketName: n.lakeBucket, firehoseRolePattern: p.firehoseRolePattern, producers: p.producers }, 'lake'));

    const inRegion =
      'Data stays in its region (one lake, key and stack per region): replicating to another region would move security data out of it. Durability comes from S3 within the region, and integrity from Object Lock COMPLIANCE, the deny-delete bucket policy and the guardrails.';
    acknowledge(this.accessLogBucket, {
      'NIST.800.53.R5::NIST.800.53.R5-S3BucketReplicationEnabled': inRegion,
      'NIST.800.53.R5::NIST.800.53.R5-S3DefaultEncryptionKMS':
        'S3 server access logging can only deliver to a bucket encrypted with SSE-S3 (AES-256), not SSE-KMS; the bucket is still encrypted at rest, TLS-only, private and its policy denies every delete and configuration change.',
    });
    acknowledge(this.bucket, { 'NIST.800.53.R5::NIST.800.53.R5-S3BucketReplicationEnabled': inRegion });

    if (p.evidenceBucket) {
      // No lifecycle rule: S3 refuses lifecycle configuration on MFA-delete buckets.
      this.evidenceBucket = locked('EvidenceBucket', n.evidenceBucket, 'evidence/', false);
      addStatements(this.evidenceBucket, lockedBucketStatements({ ...policyInput, bucketName: n.evidenceBucket }, 'evidence'));
      acknowledge(this.evidenceBucket, { 'NIST.800.53.R5::NIST.800.53.R5-S3BucketReplicationEnabled': inRegion });
    }
  }
}

