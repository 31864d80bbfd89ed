/**
 * `custody cloudtrail validate s3://bucket/prefix` against a real S3 (a throwaway Ceph RADOS
 * Gateway, ../shared/tools/start-ceph-s3.sh): the digests are uploaded with their signature as
 * S3 user metadata (x-amz-meta-signature, x-amz-meta-signature-algorithm), exactly where
 * CloudTrail keeps it, and read back from the GetObject answer.
 *
 * Public keys: from a file, and from ListPublicKeys. CloudTrail itself cannot run here, so the
 * ListPublicKeys case talks to a small local HTTP server answering that one call in CloudTrail's
 * JSON protocol — a stand-in that tests the request and the answer's decoding, not AWS.
 *
 * Needs root and Debian's Ceph packages (the start script installs them). Reuses a cluster
 * already running in $CUSTODY_TEST_CEPH_DIR; one it started itself is stopped at the end.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { S3Client, CreateBucketCommand, PutObjectCommand, DeleteObjectCommand, CopyObjectCommand } from '@aws-sdk/client-s3';
import type { ValidationReport } from '../../src/cloudtrail/index.js';
import { ROOT, cleanup, freePort, makeTempDir, runCli, runProcess } from '../support/server.js';
import { TRAIL, buildChain, keysFileText, makeTestKey, type BuiltChain } from './chain.js';

// The SDK's note that its 2027 releases need Node 22 is for whoever upgrades it, not for tests.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const TOOLS = resolve(ROOT, '..', 'shared', 'tools');
const CEPH_DIR = process.env.CUSTODY_TEST_CEPH_DIR ?? join(tmpdir(), `custody-cloudtrail-${process.pid}-ceph`);
const SAMPLES = resolve(ROOT, '..', 'shared', 'samples', 'cloudtrail', 'grycap_974349055189');
const KEY = makeTestKey();

let env: Record<string, string>;
let startedCeph = false;
let bucket: string;
let s3: S3Client;
let keysFile: string;
const chains: Record<'good' | 'bad', BuiltChain> = {} as Record<'good' | 'bad', BuiltChain>;

before(async () => {
  const port = await freePort();
  const start = await runProcess('bash', [join(TOOLS, 'start-ceph-s3.sh'), CEPH_DIR, String(port)], process.env, 600_000);
  if (start.code !== 0) throw new Error(`start-ceph-s3.sh failed (exit ${start.code}):\n${start.stderr.slice(-4000)}`);
  startedCeph = !/already running; reusing it/.test(start.stderr);
  const v = Object.fromEntries(start.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) as Record<string, string>;
  env = {
    AWS_ACCESS_KEY_ID: v.S3_ACCESS_KEY!,
    AWS_SECRET_ACCESS_KEY: v.S3_SECRET_KEY!,
    AWS_REGION: v.S3_REGION!,
    AWS_ENDPOINT_URL_S3: v.S3_ENDPOINT!,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  s3 = new S3Client({
    endpoint: v.S3_ENDPOINT,
    region: v.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: v.S3_ACCESS_KEY!, secretAccessKey: v.S3_SECRET_KEY! },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  bucket = `custody-ct-${process.pid}-${Date.now().toString(36)}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const real = readdirSync(SAMPLES).sort().map((f) => readFileSync(join(SAMPLES, f)));
  for (const name of ['good', 'bad'] as const) {
    const c = buildChain({ key: KEY, hours: 6, logsPerHour: 2, logBodies: real, trail: { ...TRAIL, bucket, prefix: `${name}/` } });
    chains[name] = c;
    for (const [key, o] of c.objects) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: o.body, ContentType: 'application/x-gzip', ...(o.metadata ? { Metadata: o.metadata } : {}) }));
    }
  }
  keysFile = join(makeTempDir('ct-s3'), 'keys.json');
  writeFileSync(keysFile, keysFileText([KEY]));
});

after(async () => {
  s3?.destroy();
  if (startedCeph) await runProcess('bash', [join(TOOLS, 'stop-ceph-s3.sh'), CEPH_DIR], { ...process.env, CEPH_STOP_FAST: '1' }, 120_000);
  await cleanup();
});

async function validate(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; report: ValidationReport; stderr: string }> {
  const r = await runCli(['cloudtrail', 'validate', ...args, '--json'], { ...env, ...extraEnv });
  let report: ValidationReport;
  try {
    report = JSON.parse(r.stdout) as ValidationReport;
  } catch {
    throw new Error(`no JSON (exit ${r.code}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
  }
  return { code: r.code, report, stderr: r.stderr };
}

test('S3: the untouched chain validates, signatures read from the objects\' metadata', async () => {
  const { code, report } = await validate([`s3://${bucket}/good/`, '--public-keys', keysFile]);
  assert.equal(code, 0, JSON.stringify(report.problems));
  assert.equal(report.bucket, bucket);
  assert.equal(report.source, `s3://${bucket}/good/`);
  assert.equal(report.summary.digestsValid, 6);
  assert.equal(report.summary.logFilesValid, 12);
  assert.equal(report.summary.objectsListed, 18, 'only the prefix was listed');
  assert.deepEqual(report.warnings, []);
});

test('S3: two consecutive deleted digests, a modified and a moved log file are all named', async () => {
  const c = chains.bad;
  for (const i of [2, 3]) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: c.digests[i]! }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: c.logs[4]![0]!, Body: gzipSync('{"Records":[]}') }));
  const moved = c.logs[1]![1]!;
  const to = moved.replace('/2024/03/01/', '/2024/03/07/');
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: `${bucket}/${moved}` }));
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: moved }));
  // A digest whose signature metadata was stripped (copied over itself without it).
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: c.digests[5]!, CopySource: `${bucket}/${c.digests[5]}`, MetadataDirective: 'REPLACE', Metadata: { note: 'x' } }));
  const { code, report } = await validate([`s3://${bucket}/bad/`, '--public-keys', keysFile]);
  assert.equal(code, 1);
  assert.deepEqual(report.problems.map((p) => p.kind), ['digest-signature-missing', 'digests-missing', 'log-modified', 'log-moved']);
  const gap = report.problems.find((p) => p.kind === 'digests-missing')!;
  assert.equal(gap.estimatedCount, 2);
  assert.equal(gap.after, c.digests[1]);
  assert.equal(gap.before, c.digests[4]);
  assert.equal(report.problems.find((p) => p.kind === 'log-moved')!.movedTo, to);
  assert.match(report.problems[0]!.message, /no signature metadata \(x-amz-meta-signature\)/);
});

test('S3: public keys from ListPublicKeys when no keys file is given', async () => {
  const requests: Array<{ target: string; body: Record<string, unknown> }> = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      requests.push({ target: String(req.headers['x-amz-target']), body: JSON.parse(body || '{}') as Record<string, unknown> });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ PublicKeyList: [{ Value: KEY.entry.Value, ValidityStartTime: 1388534400, ValidityEndTime: 1893456000, Fingerprint: KEY.fingerprint }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    const { code, report } = await validate([`s3://${bucket}/good/`, '--cloudtrail-endpoint', url]);
    assert.equal(code, 0, JSON.stringify(report.problems));
    assert.equal(report.summary.digestsValid, 6);
    assert.equal(requests.length, 1, 'one region, one page');
    assert.match(requests[0]!.target, /\.ListPublicKeys$/);
    assert.equal(typeof requests[0]!.body.StartTime, 'number');
    assert.ok((requests[0]!.body.StartTime as number) <= Date.parse('2024-03-01T00:00:31Z') / 1000);
  } finally {
    server.close();
  }
  // Nothing answering: a clear error and exit 2, naming the --public-keys way out.
  const r = await runCli(['cloudtrail', 'validate', `s3://${bucket}/good/`, '--cloudtrail-endpoint', 'http://127.0.0.1:9'], { ...env, AWS_MAX_ATTEMPTS: '1' });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /Cannot get CloudTrail's public keys for us-east-1 .*--public-keys <file>/);
});

test('S3: a wrong secret is a clear error with exit 2', async () => {
  const r = await runCli(['cloudtrail', 'validate', `s3://${bucket}/good/`, '--public-keys', keysFile], { ...env, AWS_SECRET_ACCESS_KEY: 'wrong-secret' });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /the S3 credentials were refused/);
});
