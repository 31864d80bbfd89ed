/**
 * The S3 archive tier and `custody aws lifecycle` against a real S3 with Object Lock (the
 * throwaway Ceph RADOS Gateway of ../shared/tools/start-ceph-s3.sh).
 *
 * Ceph RGW 16.2 accepts only the STANDARD storage class on PutObject (STANDARD_IA,
 * GLACIER_IR, GLACIER and DEEP_ARCHIVE answer 400 InvalidArgument) and does not store
 * x-amz-checksum-sha256, so the archive is tested with STANDARD here (the copy is verified by
 * reading it back), a GLACIER archive is shown to fail cleanly with the bundles left hot, and
 * the cold-class restore path is tested against fake-s3.ts (restore.test.ts). Ceph accepts
 * lifecycle rules with every transition class, so --apply is tested with GLACIER.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  S3Client,
  CreateBucketCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  GetObjectCommand,
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
} from '@aws-sdk/client-s3';
import { runCli, runProcess, freePort, verifyJson, ROOT } from '../support/server.js';
import { resetArchiveTargets } from '../../src/storage/archive.js';
import { lifecycleRules } from '../../src/cli/aws.js';
import { bearer, CTX } from '../lifecycle/harness.js';
import { filledHarness, mover, DAY, type Filled } from './support.js';
import { records } from '../lifecycle/harness.js';

const TOOLS = resolve(ROOT, '..', 'shared', 'tools');
const CEPH_DIR = process.env.CUSTODY_TEST_CEPH_DIR ?? join(tmpdir(), `custody-archive-${process.pid}-ceph`);
const ENV_KEYS = ['AWS_ENDPOINT_URL_S3', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION'] as const;

let env: Record<string, string>;
let s3: S3Client;
let startedCeph = false;
const saved: Record<string, string | undefined> = {};

before(async () => {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // a note for whoever upgrades the SDK
  const port = await freePort();
  const start = await runProcess('bash', [join(TOOLS, 'start-ceph-s3.sh'), CEPH_DIR, String(port)], process.env, 600_000);
  if (start.code !== 0) throw new Error(`start-ceph-s3.sh failed (exit ${start.code}):\n${start.stderr.slice(-4000)}`);
  startedCeph = !/already running; reusing it/.test(start.stderr);
  const v = Object.fromEntries(start.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) as Record<string, string>;
  env = { AWS_ENDPOINT_URL_S3: v['S3_ENDPOINT']!, AWS_ACCESS_KEY_ID: v['S3_ACCESS_KEY']!, AWS_SECRET_ACCESS_KEY: v['S3_SECRET_KEY']!, AWS_REGION: v['S3_REGION']! };
  for (const k of ENV_KEYS) saved[k] = process.env[k];
  Object.assign(process.env, env);
  resetArchiveTargets();
  s3 = new S3Client({
    endpoint: env['AWS_ENDPOINT_URL_S3'],
    region: env['AWS_REGION'],
    forcePathStyle: true,
    credentials: { accessKeyId: env['AWS_ACCESS_KEY_ID']!, secretAccessKey: env['AWS_SECRET_ACCESS_KEY']! },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
});

after(async () => {
  resetArchiveTargets();
  s3?.destroy();
  for (const k of ENV_KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  if (startedCeph) await runProcess('bash', [join(TOOLS, 'stop-ceph-s3.sh'), CEPH_DIR], { ...process.env, CEPH_STOP_FAST: '1' }, 120_000);
});

async function bucket(name: string, lock: boolean): Promise<string> {
  const b = `${name}-${process.pid}-${Date.now() % 100000}`;
  await s3.send(new CreateBucketCommand({ Bucket: b, ...(lock ? { ObjectLockEnabledForBucket: true } : {}) }));
  return b;
}

describe('S3 archive on Ceph', () => {
  let f: Filled;
  before(async () => {
    f = await filledHarness();
  });
  after(async () => {
    await f?.h.close();
  });

  test('a GLACIER archive that the endpoint refuses leaves every bundle hot, with the reason', async () => {
    const b = await bucket('refuses', false);
    const r = await mover(f.h, `s3://${b}/vault`, { storageClass: 'GLACIER' }).archiveLog('local', Date.now() + 400 * DAY);
    assert.deepEqual(r.archived, []);
    assert.match(r.error ?? '', /Cannot write tile\/entries\/000 of log "local" in the archive s3:\/\/.*: S3 answered InvalidArgument \(HTTP 400\)/);
    const e = await f.h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/5', headers: bearer(f.h.tokens.auditor) });
    assert.equal(e.statusCode, 200);
  });

  test('STANDARD with Object Lock: COMPLIANCE until the retention date; reads, verify and a locked purge', async () => {
    const b = await bucket('locked', true);
    const loc = `s3://${b}/vault`;
    const r = await mover(f.h, loc, { storageClass: 'STANDARD', batch: 1 }).archiveLog('local', Date.now() + 400 * DAY);
    assert.equal(r.error, undefined);
    assert.deepEqual(r.archived, [0]);
    const h = await s3.send(new HeadObjectCommand({ Bucket: b, Key: 'vault/local/tile/entries/000' }));
    assert.equal(h.ObjectLockMode, 'COMPLIANCE');
    const days = f.h.retention.store.retention('local').days;
    const until = h.ObjectLockRetainUntilDate!.getTime();
    assert.equal(Math.abs(until - (f.tA + days * DAY)) < 2000, true, `locked until the retention date of the newest entry (${new Date(until).toISOString()})`);
    assert.equal(h.StorageClass ?? 'STANDARD', 'STANDARD');
    const blob = (await s3.send(new ListObjectVersionsCommand({ Bucket: b, Prefix: 'vault/local/blobs/' }))).Versions ?? [];
    assert.equal(blob.length, 1, 'the blob went with its bundle');

    for (const index of [0, 255]) {
      const e = await f.h.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${index}`, headers: bearer(f.h.tokens.auditor) });
      assert.equal(e.statusCode, 200, e.body.slice(0, 300));
      if (index === 255) assert.equal(e.json<{ record: string }>().record, f.big);
    }
    const trustFile = join(tmpdir(), `archive-ceph-trust-${process.pid}.json`);
    const v = await verifyJson(['--data', f.h.dataDir, '--log', 'local', '--trust-file', trustFile], env);
    rmSync(trustFile, { force: true });
    assert.equal(v.code, 0, JSON.stringify(v.json.logs.map((l) => l.problems)));

    // A purge past retention (by a clock in the future) meets the lock that lasts until the
    // real retention date: Ceph refuses the delete, the purge says why and is finished later.
    await assert.rejects(f.h.retention.purge('local', CTX, { now: Date.now() + 400 * DAY }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ARCHIVE_UNAVAILABLE');
      assert.match(e.message, /Object Lock \(COMPLIANCE\) keeps the archived tile\/entries\/000/);
      return true;
    });
    const still = await s3.send(new HeadObjectCommand({ Bucket: b, Key: 'vault/local/tile/entries/000' }));
    assert.equal(still.ObjectLockMode, 'COMPLIANCE', 'the locked version is still there');
  });
});

describe('S3 archive on Ceph: nothing readable in the bucket', () => {
  let f: Filled;
  before(async () => {
    f = await filledHarness();
  });
  after(async () => {
    await f?.h.close();
  });

  test('every byte of every object version in the archive bucket holds no record content in plaintext', async () => {
    const b = await bucket('scan', true);
    const r = await mover(f.h, `s3://${b}/vault`, { storageClass: 'STANDARD' }).archiveLog('local', Date.now() + 400 * DAY);
    assert.equal(r.error, undefined);
    assert.ok(r.archived.length >= 1, 'at least one bundle was archived');
    // Needles: distinctive pieces of the stored records (entries and the blob).
    const needles = [...records(255, 'A').slice(0, 255).map((x) => JSON.parse(x).msg as string), 'archived-blobarchived-blob', '"tag":"A"'];
    const versions = (await s3.send(new ListObjectVersionsCommand({ Bucket: b }))).Versions ?? [];
    assert.ok(versions.length >= 2, `bundles and the blob are in the bucket (${versions.length} objects)`);
    let bytes = 0;
    const scan = (data: Buffer): string[] => needles.filter((n) => data.includes(n));
    for (const v of versions) {
      const o = await s3.send(new GetObjectCommand({ Bucket: b, Key: v.Key!, VersionId: v.VersionId! }));
      const data = Buffer.from(await o.Body!.transformToByteArray());
      bytes += data.length;
      assert.deepEqual(scan(data), [], `${v.Key} holds record content in plaintext`);
    }
    assert.ok(bytes > 10_000, `scanned ${bytes} bytes`);
    // The scanner finds the needles where they are in the clear: the bundle the auditor reads.
    const e = await f.h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/17', headers: bearer(f.h.tokens.auditor) });
    assert.equal(e.statusCode, 200);
    assert.ok(scan(Buffer.from(e.body)).includes('event A 17'), 'the needle is found in the record read back');
  });
});

describe('S3 archive on Ceph: a purge deletes archived versions when no lock holds them', () => {
  let f: Filled;
  before(async () => {
    f = await filledHarness();
  });
  after(async () => {
    await f?.h.close();
  });

  test('bundle and blob versions are deleted, not hidden behind delete markers', async () => {
    const b = await bucket('unlocked', false);
    const r = await mover(f.h, `s3://${b}`, { batch: 2 }).archiveLog('local', Date.now() + 400 * DAY);
    assert.deepEqual(r.archived, [0, 1]);
    const p = await f.h.retention.purge('local', CTX, { now: (f.tA + f.tB) / 2 + 365 * DAY });
    assert.deepEqual([p.from, p.to, p.blobsRemoved], [0, 256, 1]);
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: b }));
    const keys = (versions.Versions ?? []).map((x) => x.Key).sort();
    assert.deepEqual(keys, ['local/tile/entries/001'], 'only the bundle that was not purged is left');
    assert.deepEqual(versions.DeleteMarkers ?? [], []);
    const e = await f.h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/300', headers: bearer(f.h.tokens.auditor) });
    assert.equal(e.statusCode, 200);
  });
});

describe('custody aws lifecycle', () => {
  const args = ['aws', 'lifecycle', '--logs', 'local,audit', '--prefix', 'vault', '--after-days', '30', '--storage-class', 'GLACIER'];
  const expected = lifecycleRules({ prefix: 'vault', logs: ['local', 'audit'], afterDays: 30, storageClass: 'GLACIER' });

  test('prints the configuration as JSON: a transition per log for bundles and blobs, never tiles, no expiration', async () => {
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    const cfg = JSON.parse(r.stdout) as { Rules: Array<Record<string, unknown>> };
    assert.deepEqual(cfg.Rules, [
      { ID: 'custody-audit-bundles', Status: 'Enabled', Filter: { Prefix: 'vault/audit/tile/entries/' }, Transitions: [{ Days: 30, StorageClass: 'GLACIER' }], NoncurrentVersionTransitions: [{ NoncurrentDays: 30, StorageClass: 'GLACIER' }] },
      { ID: 'custody-audit-blobs', Status: 'Enabled', Filter: { Prefix: 'vault/audit/blobs/' }, Transitions: [{ Days: 30, StorageClass: 'GLACIER' }], NoncurrentVersionTransitions: [{ NoncurrentDays: 30, StorageClass: 'GLACIER' }] },
      { ID: 'custody-local-bundles', Status: 'Enabled', Filter: { Prefix: 'vault/local/tile/entries/' }, Transitions: [{ Days: 30, StorageClass: 'GLACIER' }], NoncurrentVersionTransitions: [{ NoncurrentDays: 30, StorageClass: 'GLACIER' }] },
      { ID: 'custody-local-blobs', Status: 'Enabled', Filter: { Prefix: 'vault/local/blobs/' }, Transitions: [{ Days: 30, StorageClass: 'GLACIER' }], NoncurrentVersionTransitions: [{ NoncurrentDays: 30, StorageClass: 'GLACIER' }] },
    ]);
    const text = JSON.stringify(cfg);
    assert.doesNotMatch(text, /Expiration/);
    for (const rule of cfg.Rules) assert.doesNotMatch(String((rule['Filter'] as { Prefix: string }).Prefix), /tile\/[0-9]|checkpoint/);
    const j = await runCli([...args, '--json']);
    const out = JSON.parse(j.stdout) as { applied: boolean; layout: Record<string, string>; lifecycleConfiguration: unknown };
    assert.equal(out.applied, false);
    assert.equal(out.layout['bundles'], 'vault/<log>/tile/entries/…');
    assert.deepEqual(out.lifecycleConfiguration, cfg);
  });

  test('--apply puts it on the bucket, keeps the bucket\'s other rules, and reads back the same rules', async () => {
    const b = await bucket('lifecycle', true);
    const foreign = { ID: 'team-logs', Status: 'Enabled' as const, Filter: { Prefix: 'other/' }, Transitions: [{ Days: 60, StorageClass: 'STANDARD_IA' as const }] };
    await s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket: b, LifecycleConfiguration: { Rules: [foreign] } }));
    const r = await runCli([...args, '--bucket', b, '--apply', '--json'], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = JSON.parse(r.stdout) as { applied: boolean; keptRules: string[] };
    assert.equal(out.applied, true);
    assert.deepEqual(out.keptRules, ['team-logs']);
    const got = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }));
    const mine = (got.Rules ?? []).filter((x) => x.ID?.startsWith('custody-')).sort((x, y) => x.ID!.localeCompare(y.ID!));
    const want = [...expected].sort((x, y) => x.ID!.localeCompare(y.ID!));
    assert.deepEqual(
      mine.map((x) => ({ ID: x.ID, Prefix: x.Filter?.Prefix, T: x.Transitions, N: x.NoncurrentVersionTransitions, E: x.Expiration })),
      want.map((x) => ({ ID: x.ID, Prefix: x.Filter?.Prefix, T: x.Transitions, N: x.NoncurrentVersionTransitions, E: undefined })),
    );
    assert.equal((got.Rules ?? []).some((x) => x.ID === 'team-logs'), true, 'the foreign rule is kept');
    // Applying again replaces the custody rules rather than adding more.
    const again = await runCli([...args, '--bucket', b, '--apply'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Applied 4 lifecycle rules to bucket/);
    const got2 = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }));
    assert.equal((got2.Rules ?? []).length, 5);
  });

  test('hostile input: STANDARD_IA before 30 days, a bad log name, --apply without a bucket, a wrong secret', async () => {
    const ia = await runCli(['aws', 'lifecycle', '--logs', 'local', '--after-days', '10', '--storage-class', 'STANDARD_IA']);
    assert.equal(ia.code, 2);
    assert.match(ia.stdout, /after 30 days at the earliest/);
    const bad = await runCli(['aws', 'lifecycle', '--logs', 'local,../x']);
    assert.equal(bad.code, 2);
    assert.match(bad.stdout, /is not a log name/);
    const nob = await runCli(['aws', 'lifecycle', '--logs', 'local', '--apply']);
    assert.equal(nob.code, 2);
    assert.match(nob.stderr, /--apply needs --bucket/);
    const b = await bucket('denied', false);
    const wrong = await runCli(['aws', 'lifecycle', '--logs', 'local', '--bucket', b, '--apply'], { ...env, AWS_SECRET_ACCESS_KEY: 'wrong-secret-0000000000000000000000000' });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /Cannot set the lifecycle of bucket .*SignatureDoesNotMatch|Cannot set the lifecycle of bucket .*AccessDenied/);
    assert.doesNotMatch(wrong.stderr, /wrong-secret/);
  });
});
