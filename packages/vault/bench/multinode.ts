/**
 * Figure 16 — several nodes (issue 7: "ingest with two nodes on PostgreSQL + Ceph S3 beside one
 * embedded node, as a ratio, with p99 ack→checkpoint").
 *
 * In the same run: one embedded `custody serve --no-search` (data directory + SQLite), then two
 * `custody serve --storage s3://… --database postgres://…` nodes of one shared vault on a
 * throwaway PostgreSQL (scripts/start-postgres.sh) and a throwaway Ceph S3 with Object Lock
 * (../shared/tools/start-ceph-s3.sh). The same writers POST the same CloudTrail batches; in the
 * shared case half of them send to each node. Reported: entries/s of each setup, the ratio
 * shared / embedded, and the latency from a batch's acknowledgement to the first published
 * checkpoint that covers it (p50/p99; in the shared case the worse node's). The figure is
 * skipped, with the reason, when PostgreSQL or the Ceph S3 cannot be started.
 */
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import { makeBatch, type BatchTemplate } from './records.js';
import { startServer, ingest, type IngestResult, type ServerHandle } from './custody.js';
import { tempDir, dropTempDir, run, freePort, onCleanup } from './util.js';

export interface MultinodeFigure {
  seconds: number;
  writers: number;
  embedded: number;
  shared: number;
  /** shared (two nodes) / embedded (one node). */
  ratio: number;
  /** ack→checkpoint (ms). */
  p99Embedded: number;
  p99Shared: number;
  p50Shared: number;
  /** The same two nodes at a fixed offered load (entries/s over both), after the unlimited run. */
  atRate: { rate: number; achieved: number; p50: number; p99: number } | null;
  perNode: number[];
  errors: number;
}

const PASSPHRASE = 'bench multinode passphrase, long enough to pass';

async function startPg(repoRoot: string): Promise<{ url: string; stop: () => void } | { skipped: string }> {
  const script = join(repoRoot, 'scripts', 'start-postgres.sh');
  if (!existsSync(script)) return { skipped: 'no scripts/start-postgres.sh' };
  const dir = tempDir('custody-bench-pg-');
  const start = await run('bash', [script, 'start', dir], { timeoutMs: 120_000 });
  const url = /^CUSTODY_TEST_PG_URL=(.+)$/m.exec(start.stdout)?.[1];
  if (start.code !== 0 || !url) return { skipped: `PostgreSQL could not be started: ${start.stderr.trim().split('\n').slice(-2).join(' ')}` };
  const stop = onCleanup('stop the bench PostgreSQL', () => {
    spawnSync('bash', [script, 'stop', dir], { stdio: 'ignore' });
  });
  return { url, stop };
}

async function startCephBucket(repoRoot: string): Promise<{ env: Record<string, string>; bucket: string; stop: () => void } | { skipped: string }> {
  const script = join(repoRoot, '..', 'shared', 'tools', 'start-ceph-s3.sh');
  if (!existsSync(script)) return { skipped: 'no ../shared/tools/start-ceph-s3.sh' };
  if (process.getuid?.() !== 0) return { skipped: 'the Ceph S3 needs root (start-ceph-s3.sh)' };
  const dir = join(tempDir('custody-bench-mn-ceph-'), 'ceph');
  const start = await run('bash', [script, dir, String(await freePort())], { timeoutMs: 600_000 });
  if (start.code !== 0) return { skipped: `start-ceph-s3.sh failed: ${start.stderr.trim().split('\n').slice(-2).join(' ')}` };
  const stop = onCleanup('stop the bench Ceph (multinode)', () => {
    spawnSync('bash', [join(repoRoot, '..', 'shared', 'tools', 'stop-ceph-s3.sh'), dir], { stdio: 'ignore', env: { ...process.env, CEPH_STOP_FAST: '1' } });
  });
  const v = Object.fromEntries(start.stdout.trim().split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) as Record<string, string>;
  const env = { AWS_ACCESS_KEY_ID: v.S3_ACCESS_KEY!, AWS_SECRET_ACCESS_KEY: v.S3_SECRET_KEY!, AWS_REGION: v.S3_REGION ?? 'us-east-1', AWS_ENDPOINT_URL_S3: v.S3_ENDPOINT!, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' };
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const s3 = new S3Client({ endpoint: v.S3_ENDPOINT, region: env.AWS_REGION, forcePathStyle: true, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
  const bucket = `custody-bench-mn-${Date.now().toString(36)}`;
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
  } finally {
    s3.destroy();
  }
  return { env, bucket, stop };
}

export async function multinodeFigure(
  o: { bin: string; repoRoot: string; writers: number; batch: number; warmupS: number; durationS: number; rate: number },
  log: (s: string) => void,
): Promise<MultinodeFigure | { skipped: string }> {
  const writers = Math.max(2, o.writers - (o.writers % 2));
  const templates: BatchTemplate[][] = [];
  for (let w = 0; w < writers; w++) templates.push(Array.from({ length: 4 }, (_, k) => makeBatch(9600 + w * 4 + k, o.batch, { region: 'us-east-1' })));
  const path = '/v1/logs/local/entries?source=aws.cloudtrail';
  const run1 = (srv: ServerHandle, t: BatchTemplate[][], rate = 0): Promise<IngestResult> =>
    ingest(srv, { writers: t.length, warmupS: o.warmupS, durationS: o.durationS, templates: t, path, maxEntries: 0, pollMs: 100, rate }, () => undefined);

  // The embedded node first (nothing else running).
  let embedded: IngestResult;
  {
    const dir = tempDir('custody-bench-mn-embedded-');
    try {
      const srv = await startServer({ bin: o.bin, dataDir: join(dir, 'data'), logFile: join(dir, 'server.log'), args: ['--no-search'] });
      try {
        embedded = await run1(srv, templates);
      } finally {
        await srv.stop();
      }
    } finally {
      dropTempDir(dir);
    }
  }
  log(`multinode: one embedded node ${Math.round(embedded.entriesPerSec).toLocaleString('en-US')} entries/s, ack→checkpoint p99 ${Math.round(embedded.checkpointMs.p99)} ms`);

  const pgs = await startPg(o.repoRoot);
  if ('skipped' in pgs) return pgs;
  const ceph = await startCephBucket(o.repoRoot);
  if ('skipped' in ceph) {
    pgs.stop();
    return ceph;
  }
  const dir = tempDir('custody-bench-mn-shared-');
  try {
    const shared = ['--no-search', '--storage', `s3://${ceph.bucket}/custody`, '--database', pgs.url];
    const env = { ...ceph.env, CUSTODY_PASSPHRASE: PASSPHRASE };
    const dataA = join(dir, 'a');
    const dataB = join(dir, 'b');
    const a = await startServer({ bin: o.bin, dataDir: dataA, logFile: join(dir, 'a.log'), args: [...shared, '--node-id', 'bench-a'], env });
    let b: ServerHandle | undefined;
    try {
      // node B reads the tokens the first node wrote (the bench's startServer takes them from the data directory)
      mkdirSync(dataB, { recursive: true, mode: 0o700 });
      copyFileSync(join(dataA, 'initial-tokens.txt'), join(dataB, 'initial-tokens.txt'));
      b = await startServer({ bin: o.bin, dataDir: dataB, logFile: join(dir, 'b.log'), args: [...shared, '--node-id', 'bench-b'], env });
      const half = writers / 2;
      const [ra, rb] = await Promise.all([run1(a, templates.slice(0, half)), run1(b, templates.slice(half))]);
      const sharedEps = ra.entriesPerSec + rb.entriesPerSec;
      let atRate: MultinodeFigure['atRate'] = null;
      if (o.rate > 0) {
        const [qa, qb] = await Promise.all([run1(a, templates.slice(0, half), o.rate / 2), run1(b, templates.slice(half), o.rate / 2)]);
        atRate = { rate: o.rate, achieved: qa.entriesPerSec + qb.entriesPerSec, p50: Math.max(qa.checkpointMs.p50, qb.checkpointMs.p50), p99: Math.max(qa.checkpointMs.p99, qb.checkpointMs.p99) };
        log(`multinode: two shared nodes at ${o.rate.toLocaleString('en-US')} entries/s offered: ${Math.round(atRate.achieved).toLocaleString('en-US')} entries/s, ack→checkpoint p50 ${Math.round(atRate.p50)} ms, p99 ${Math.round(atRate.p99)} ms`);
      }
      const fig: MultinodeFigure = {
        seconds: o.durationS,
        writers,
        embedded: embedded.entriesPerSec,
        shared: sharedEps,
        ratio: sharedEps / embedded.entriesPerSec,
        p99Embedded: embedded.checkpointMs.p99,
        p99Shared: Math.max(ra.checkpointMs.p99, rb.checkpointMs.p99),
        p50Shared: Math.max(ra.checkpointMs.p50, rb.checkpointMs.p50),
        atRate,
        perNode: [ra.entriesPerSec, rb.entriesPerSec],
        errors: ra.errors + rb.errors,
      };
      log(`multinode: two shared nodes ${Math.round(sharedEps).toLocaleString('en-US')} entries/s (${fig.perNode.map((x) => Math.round(x)).join(' + ')}), ack→checkpoint p99 ${Math.round(fig.p99Shared)} ms; ${fixedRatio(fig.ratio)}× the embedded node`);
      return fig;
    } finally {
      await b?.stop();
      await a.stop();
    }
  } finally {
    dropTempDir(dir);
    ceph.stop();
    pgs.stop();
  }
}

const fixedRatio = (x: number): string => x.toFixed(2);
