/**
 * The real S3 with Object Lock for tests: a Ceph RADOS Gateway started (or reused) through
 * ../shared/tools/start-ceph-s3.sh. A test file calls startCeph() in `before` and stop() in
 * `after`; a cluster this call did not start (already running in the same directory) is left
 * running for whoever started it. CUSTODY_TEST_CEPH_DIR shares one cluster between test files.
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { S3Client, CreateBucketCommand, PutObjectLockConfigurationCommand } from '@aws-sdk/client-s3';
import { ROOT, freePort, runProcess } from './server.js';

const TOOLS = resolve(ROOT, '..', 'shared', 'tools');

export interface CephS3 {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The standard AWS variables a `custody` process needs to reach this S3. */
  env: Record<string, string>;
  client(): S3Client;
  /** A new bucket with Object Lock enabled (no default retention unless given). */
  lockedBucket(label: string, defaultRetention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number }): Promise<string>;
  stop(): Promise<void>;
}

export async function startCeph(label: string): Promise<CephS3> {
  // The process id keeps two test runs on one machine (e.g. a CI clone beside a working copy)
  // from reusing, and then stopping, each other's cluster.
  const dir = process.env.CUSTODY_TEST_CEPH_DIR ?? join(tmpdir(), `custody-${label}-${process.pid}-ceph`);
  const port = await freePort();
  const start = await runProcess('bash', [join(TOOLS, 'start-ceph-s3.sh'), dir, String(port)], process.env, 600_000);
  if (start.code !== 0) throw new Error(`start-ceph-s3.sh failed (exit ${start.code}):\n${start.stderr.slice(-4000)}`);
  const started = !/already running; reusing it/.test(start.stderr);
  const vars = Object.fromEntries(
    start.stdout
      .trim()
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;
  const endpoint = vars.S3_ENDPOINT!;
  const accessKeyId = vars.S3_ACCESS_KEY!;
  const secretAccessKey = vars.S3_SECRET_KEY!;
  const region = vars.S3_REGION ?? 'us-east-1';
  const env = {
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    AWS_REGION: region,
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  const client = (): S3Client =>
    new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
    });
  let n = 0;
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region,
    env,
    client,
    async lockedBucket(l, defaultRetention) {
      const bucket = `custody-${l}-${process.pid}-${Date.now().toString(36)}-${n++}`.toLowerCase().slice(0, 63);
      const c = client();
      try {
        await c.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
        if (defaultRetention) {
          await c.send(
            new PutObjectLockConfigurationCommand({
              Bucket: bucket,
              ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: defaultRetention.mode, Days: defaultRetention.days } } },
            }),
          );
        }
      } finally {
        c.destroy();
      }
      return bucket;
    },
    async stop() {
      if (started) await runProcess('bash', [join(TOOLS, 'stop-ceph-s3.sh'), dir], { ...process.env, CEPH_STOP_FAST: '1' }, 120_000);
    },
  };
}
