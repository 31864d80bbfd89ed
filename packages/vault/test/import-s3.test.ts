/**
 * `custody import s3://bucket/prefix` against a real S3 with Object Lock (a throwaway Ceph
 * RADOS Gateway, ../shared/tools/start-ceph-s3.sh): the shared samples are uploaded in the
 * layouts AWS delivers, imported (killed midway and resumed), and compared with an import of
 * the same files from a folder. A wrong secret is a clear IMPORT_SOURCE error.
 *
 * Needs root and Debian's Ceph packages (the start script installs them: ~18 s the first
 * time on a machine, ~3 s after). Reuses a cluster already running in $CUSTODY_TEST_CEPH_DIR.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { S3Client, CreateBucketCommand, PutObjectCommand, PutObjectLockConfigurationCommand, GetObjectLockConfigurationCommand } from '@aws-sdk/client-s3';
import { startServer, runCli, runProcess, makeTempDir, cleanup, listLogs, freePort, waitFor, CUSTODY_BIN, ROOT, type ServerHandle } from './support/server.js';
import type { ImportSummary } from '../src/cli/import.js';

const SAMPLES = resolve(ROOT, '..', 'shared', 'samples');
const TOOLS = resolve(ROOT, '..', 'shared', 'tools');
const CEPH_DIR = process.env.CUSTODY_TEST_CEPH_DIR ?? join(tmpdir(), `custody-import-${process.pid}-ceph`);
const ACCT = '111111111111';

interface S3Env {
  S3_ENDPOINT: string;
  S3_ACCESS_KEY: string;
  S3_SECRET_KEY: string;
  S3_REGION: string;
}

let s3env: S3Env;
let startedCeph = false;
let server: ServerHandle;
let layout: string;
let bucket: string;
/** Data objects uploaded under AWSLogs/ (keys), and their count per top-level sample folder. */
const dataKeys: string[] = [];

/** Where AWS would have delivered a sample file: the key under the bucket. */
function awsKey(rel: string): string | null {
  const [dir, ...rest] = rel.split('/');
  const file = rest[rest.length - 1]!;
  switch (dir) {
    case 'cloudtrail': {
      // <acct>_CloudTrail_<region>_<YYYYMMDD>T<hhmm>Z_<id>.json.gz → its own account, region and day.
      const m = /^(\d{12})_CloudTrail_([a-z0-9-]+)_(\d{4})(\d{2})(\d{2})T/.exec(file);
      if (m) return `AWSLogs/${m[1]}/CloudTrail/${m[2]}/${m[3]}/${m[4]}/${m[5]}/${file}`;
      return `AWSLogs/o-exampleorg1/${ACCT}/CloudTrail/us-east-1/2018/01/30/${file}`; // an organization trail
    }
    case 'vpcflow':
      return `AWSLogs/${ACCT}/vpcflowlogs/us-east-1/2018/01/30/${file}`;
    case 'config':
      return `AWSLogs/${ACCT}/Config/us-east-1/2018/1/30/ConfigHistory/${file}`;
    case 'guardduty':
      return `AWSLogs/${ACCT}/GuardDuty/us-east-1/2018/01/30/${file}`;
    case 'macie':
      return `AWSLogs/${ACCT}/Macie/us-east-1/0123456789abcdef0123456789abcdef/${file}`;
    default:
      return null;
  }
}

function summary(r: { stdout: string; stderr: string }): ImportSummary {
  try {
    return JSON.parse(r.stdout) as ImportSummary;
  } catch {
    throw new Error(`custody import printed no JSON.\nstdout: ${r.stdout.slice(-3000)}\nstderr: ${r.stderr.slice(-3000)}`);
  }
}

async function logSizes(s: ServerHandle): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const l of await listLogs(s)) if (l.name !== 'audit') out[l.name] = l.size + l.pending;
  return out;
}

function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: s3env.S3_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: s3env.S3_SECRET_KEY,
    AWS_REGION: s3env.S3_REGION,
    AWS_ENDPOINT_URL_S3: s3env.S3_ENDPOINT,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    CUSTODY_URL: server.url,
    CUSTODY_TOKEN: server.tokens.writer,
    ...extra,
  };
}

before(async () => {
  const port = await freePort();
  const start = await runProcess('bash', [join(TOOLS, 'start-ceph-s3.sh'), CEPH_DIR, String(port)], process.env, 600_000);
  if (start.code !== 0) throw new Error(`start-ceph-s3.sh failed (exit ${start.code}):\n${start.stderr.slice(-4000)}`);
  startedCeph = !/already running; reusing it/.test(start.stderr);
  const vars = Object.fromEntries(start.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  s3env = vars as unknown as S3Env;
  assert.match(s3env.S3_ENDPOINT, /^http:\/\/127\.0\.0\.1:\d+$/);

  server = await startServer({ checkpointIntervalMs: 50 });

  // The samples in AWS's delivery layout, on disk (for the folder comparison) and in a bucket
  // with Object Lock (default GOVERNANCE retention: every object is WORM, as in a log archive).
  layout = makeTempDir('s3-layout');
  for (const dir of ['cloudtrail', 'vpcflow', 'config', 'guardduty', 'macie']) {
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    for (const f of walk(join(SAMPLES, dir))) {
      const key = awsKey(relative(SAMPLES, f).split('\\').join('/'));
      if (!key) continue;
      mkdirSync(dirname(join(layout, key)), { recursive: true });
      copyFileSync(f, join(layout, key));
      dataKeys.push(key);
    }
  }
  const s3 = new S3Client({
    endpoint: s3env.S3_ENDPOINT,
    region: s3env.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: s3env.S3_ACCESS_KEY, secretAccessKey: s3env.S3_SECRET_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  bucket = `custody-import-${process.pid}-${Date.now().toString(36)}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
  const lockBody = { ObjectLockEnabled: 'Enabled' as const, Rule: { DefaultRetention: { Mode: 'GOVERNANCE' as const, Days: 1 } } };
  await s3.send(new PutObjectLockConfigurationCommand({ Bucket: bucket, ObjectLockConfiguration: lockBody }));
  const put = async (key: string, body: Buffer): Promise<void> => {
    // Object Lock buckets need Content-MD5 (or a checksum) on every PUT.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentMD5: createHash('md5').update(body).digest('base64') }));
  };
  for (const key of dataKeys) await put(key, readFileSync(join(layout, key)));
  // Not data: a zero-byte folder marker, AWS Config's write check, a README; and an object outside the prefix.
  await put(`AWSLogs/${ACCT}/CloudTrail/`, Buffer.alloc(0));
  await put(`AWSLogs/${ACCT}/Config/ConfigWritabilityCheckFile`, Buffer.from('test'));
  await put('AWSLogs/README.md', Buffer.from('# log archive\n'));
  await put('exports/3f6b2c8e/eks-api/000000.gz', readFileSync(join(SAMPLES, 'applogs/cloudgrep_cwl_export_eks_000000.gz')));
  const lock = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
  assert.equal(lock.ObjectLockConfiguration?.ObjectLockEnabled, 'Enabled', 'the bucket is an Object Lock bucket');
  s3.destroy();
});

after(async () => {
  await server?.stop();
  // Stop the cluster only if this test started it (a reused one belongs to someone else).
  if (startedCeph) await runProcess('bash', [join(TOOLS, 'stop-ceph-s3.sh'), CEPH_DIR], { ...process.env, CEPH_STOP_FAST: '1' }, 120_000);
  await cleanup();
});

let s3Import: ImportSummary;

test('custody import s3://bucket/AWSLogs/ imports every object, survives a SIGKILL midway and resumes without storing anything twice', async () => {
  assert.ok(dataKeys.length >= 60, `uploaded ${dataKeys.length} objects`);
  const state = join(makeTempDir('s3-state'), 'state.jsonl');
  const args = ['import', `s3://${bucket}/AWSLogs/`, '--state', state, '--concurrency', '1', '--json'];
  const child = spawn(process.execPath, [CUSTODY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...cliEnv() } });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
  const finished = (): number => (existsSync(state) ? readFileSync(state, 'utf8').split('\n').filter((l) => /^\{"ref":.*\}$/.test(l)).length : 0);
  try {
    await waitFor('the S3 import to finish a few objects', () => finished() >= 3 || child.exitCode !== null, 60_000, 5);
  } finally {
    child.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL', `the import was still running when killed (it ended by itself: ${out.slice(-2000)})`);
  const done = finished();
  assert.ok(done >= 3 && done < dataKeys.length, `killed midway: ${done} of ${dataKeys.length}`);

  const r = await runCli(args, cliEnv());
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const s = summary(r);
  s3Import = s;
  assert.equal(s.location, `s3://${bucket}/AWSLogs/`);
  assert.equal(s.resumedFiles, done, 'objects finished before the kill were not read again');
  assert.equal(s.totals.files, dataKeys.length, 'every object under the prefix was imported');
  assert.equal(s.failed.files, 0, JSON.stringify(s.failed.list));
  assert.equal(s.totals.rejected, 0, JSON.stringify(s.withRejections));
  assert.deepEqual(s.skipped.reasons, { 'folder marker': 1, 'AWS Config write check': 1, documentation: 1 });
  assert.equal(s.sources['cloudtrail']?.files, dataKeys.filter((k) => k.includes('/CloudTrail/')).length);
  assert.equal(s.sources['vpcflow']?.files, dataKeys.filter((k) => k.includes('/vpcflowlogs/')).length);
  assert.equal(s.totals.bytes, dataKeys.reduce((a, k) => a + statSync(join(layout, k)).size, 0), 'bytes as stored: .gz objects were sent compressed');
  const sizes = await logSizes(server);
  assert.equal(Object.values(sizes).reduce((a, b) => a + b, 0), s.totals.stored, 'the logs hold each stored record once');
  assert.ok((sizes['sa-east-1'] ?? 0) > 0 && (sizes['us-east-1'] ?? 0) > 0, 'CloudTrail records went to their regions\' logs');
  assert.equal(existsSync(state), false);
});

test('the same files imported from a folder are all duplicates: S3 and folder imports see the same records', async () => {
  assert.ok(s3Import, 'needs the S3 import');
  const before = await logSizes(server);
  const r = await runCli(['import', join(layout, 'AWSLogs'), '--json'], cliEnv({ XDG_STATE_HOME: makeTempDir('s3-xdg') }));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const s = summary(r);
  assert.equal(s.totals.files, s3Import.totals.files);
  assert.equal(s.totals.stored, 0, 'nothing new: the folder holds the bytes the bucket holds');
  for (const [src, t] of Object.entries(s3Import.sources)) assert.equal(s.sources[src]?.duplicates, t.stored + t.duplicates, src);
  assert.deepEqual(await logSizes(server), before);
});

test('a wrong S3 secret is a clear IMPORT_SOURCE error and a non-zero exit', async () => {
  const r = await runCli(['import', `s3://${bucket}/AWSLogs/`, '--json'], cliEnv({ AWS_SECRET_ACCESS_KEY: 'not-the-secret' }));
  assert.equal(r.code, 2, r.stdout + r.stderr);
  const e = (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error;
  assert.equal(e.code, 'IMPORT_SOURCE');
  assert.match(e.message, /credentials were refused.*AWS_SECRET_ACCESS_KEY/);

  const human = await runCli(['import', `s3://${bucket}/AWSLogs/`, '--endpoint', s3env.S3_ENDPOINT], cliEnv({ AWS_SECRET_ACCESS_KEY: 'not-the-secret', AWS_ENDPOINT_URL_S3: '' }));
  assert.equal(human.code, 2);
  assert.match(human.stderr, /^error: Cannot list s3:\/\/.*AWS_ACCESS_KEY_ID.*\[IMPORT_SOURCE\]$/m);

  const noBucket = await runCli(['import', `s3://${bucket}-missing/`, '--json'], cliEnv());
  assert.equal(noBucket.code, 2);
  assert.match((JSON.parse(noBucket.stdout) as { error: { message: string } }).error.message, /no such bucket/);
});

test('--dry-run lists the objects under the prefix with the source their keys name', async () => {
  const r = await runCli(['import', `s3://${bucket}/`, '--dry-run', '--json'], cliEnv({ CUSTODY_TOKEN: '' }));
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as { files: number; objects: Array<{ name: string; source: string; size: number }> };
  assert.equal(d.files, dataKeys.length + 1, 'the data under AWSLogs/ and the CloudWatch Logs export');
  for (const o of d.objects) {
    if (o.name.includes('/CloudTrail/')) assert.equal(o.source, 'cloudtrail', o.name);
    if (o.name.includes('/vpcflowlogs/')) assert.equal(o.source, 'vpcflow', o.name);
  }
  assert.ok(d.objects.some((o) => o.name === 'exports/3f6b2c8e/eks-api/000000.gz'));
});
