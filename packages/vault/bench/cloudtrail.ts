/**
 * Figure 12 — `custody cloudtrail validate`: files (digests + log files) validated per second,
 * beside a straightforward re-list-per-digest loop (issue 8: "npm run bench shows its files/s
 * beside a straightforward re-list-per-digest loop").
 *
 * The workload: a trail's bucket as CloudTrail fills it with log file validation on — D hourly
 * digests signed with a test RSA-2048 key, L gzip log files per digest (test/cloudtrail/chain.ts,
 * CloudTrail's exact format and key layout), written to a local folder and, when a throwaway
 * Ceph S3 can be started (root; ../shared/tools/start-ceph-s3.sh), uploaded to a bucket.
 *
 * Measured on the same objects, same run:
 *  - the validator (src/cloudtrail): one listing indexed by key, 8 objects read at once;
 *  - the validator with 1 object at a time (separates the one-listing effect from parallel reads);
 *  - the baseline, written the way a straightforward script does it: for each digest, list the
 *    prefix again to find it and its log files, then read the digest, check its signature, and
 *    read and hash each of its log files, one at a time. It does the same cryptographic work
 *    (same store, same read + gunzip + SHA-256 code, same RSA verify); only the listing per
 *    digest and the serial reads differ. It stops after --cloudtrail-naive-seconds; its rate covers the files
 *    it finished. (aws cloudtrail validate-logs lists once per run but reads one file at a time
 *    and cannot read a folder; it is not run here: it needs AWS's own keys and endpoints.)
 */
import { spawnSync } from 'node:child_process';
import { createHash, verify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FolderStore, parsePublicKeysText, validateCloudTrail, hashStored, type ObjectStore, type PublicKeySet } from '../src/cloudtrail/index.js';
import { buildChain, keysFileText, makeTestKey, writeFolder, TRAIL, type BuiltChain } from '../test/cloudtrail/chain.js';
import { tempDir, dropTempDir, run, onCleanup, freePort } from './util.js';

export interface CloudTrailRun {
  /** Files (digests + log files) validated per second. */
  validator: number;
  validatorSerial: number;
  naive: number;
  /** Files the baseline finished before its time limit, of all. */
  naiveFiles: number;
  naiveSeconds: number;
  /** Listings each made. */
  naiveListings: number;
  /** validator / naive. */
  ratio: number;
}

export interface CloudTrailFigure {
  digests: number;
  logsPerDigest: number;
  files: number;
  logBytes: number;
  folder: CloudTrailRun;
  s3: CloudTrailRun | { skipped: string };
}

/** The baseline: re-list per digest, everything serial. Returns files done and seconds. */
async function naiveLoop(store: ObjectStore, keys: PublicKeySet, maxS: number): Promise<{ files: number; seconds: number; listings: number }> {
  const t0 = performance.now();
  const deadline = t0 + maxS * 1000;
  let files = 0;
  let listings = 0;
  // Which digests to walk: the newest first, then each one's previousDigestS3Object — found by
  // listing the prefix again every time, as a straightforward loop over "list, pick, check" does.
  const listAll = async (): Promise<Map<string, number>> => {
    listings++;
    const keysNow = new Map<string, number>();
    for await (const o of store.list()) keysNow.set(o.key, o.size);
    return keysNow;
  };
  const first = [...(await listAll()).keys()].filter((k) => k.includes('/CloudTrail-Digest/')).sort();
  let next: string | null = first[first.length - 1] ?? null;
  while (next && performance.now() < deadline) {
    const listing = await listAll();
    if (!listing.has(next)) break;
    const obj = await store.readDigest(next, 64 * 1024 * 1024);
    if (!obj || 'tooLarge' in obj) break;
    const raw = gunzipSync(obj.body);
    const d = JSON.parse(raw.toString('utf8')) as { digestEndTime: string; digestS3Bucket: string; digestS3Object: string; digestPublicKeyFingerprint: string; previousDigestSignature: string | null; previousDigestS3Object: string | null; logFiles: Array<{ s3Object: string; hashValue: string }> };
    const toSign = `${d.digestEndTime}\n${d.digestS3Bucket}/${d.digestS3Object}\n${createHash('sha256').update(raw).digest('hex')}\n${d.previousDigestSignature ?? 'null'}`;
    const pk = keys.get(d.digestPublicKeyFingerprint);
    if (!pk || 'error' in obj.signature || !verify('sha256', Buffer.from(toSign), pk.key, Buffer.from(obj.signature.signature, 'hex'))) throw new Error(`baseline: digest ${next} does not verify`);
    files++;
    for (const lf of d.logFiles) {
      if (!listing.has(lf.s3Object)) throw new Error(`baseline: ${lf.s3Object} missing`);
      const h = await hashStored(store, lf.s3Object, listing.get(lf.s3Object));
      if (!h || 'error' in h || h.sha256 !== lf.hashValue) throw new Error(`baseline: ${lf.s3Object} does not match`);
      files++;
    }
    next = d.previousDigestS3Object;
  }
  return { files, seconds: (performance.now() - t0) / 1000, listings };
}

async function measure(store: () => ObjectStore, keys: PublicKeySet, total: number, naiveMaxS: number, label: string, log: (s: string) => void): Promise<CloudTrailRun> {
  const timed = async (concurrency: number): Promise<number> => {
    const s = store();
    try {
      const t0 = performance.now();
      const r = await validateCloudTrail(s, { keys, concurrency });
      const sec = (performance.now() - t0) / 1000;
      if (!r.valid || r.summary.digests + r.summary.logFilesValid !== total) throw new Error(`the validator did not validate the bench bucket: ${JSON.stringify(r.summary)} ${JSON.stringify(r.problems.slice(0, 3))}`);
      return total / sec;
    } finally {
      s.close();
    }
  };
  const validator = await timed(8);
  log(`cloudtrail ${label}: validator ${Math.round(validator).toLocaleString('en-US')} files/s (one listing, 8 reads at once)`);
  const validatorSerial = await timed(1);
  log(`cloudtrail ${label}: validator, 1 read at a time ${Math.round(validatorSerial).toLocaleString('en-US')} files/s`);
  const s = store();
  let n: { files: number; seconds: number; listings: number };
  try {
    n = await naiveLoop(s, keys, naiveMaxS);
  } finally {
    s.close();
  }
  const naive = n.files / n.seconds;
  log(`cloudtrail ${label}: re-list-per-digest loop ${Math.round(naive).toLocaleString('en-US')} files/s (${n.files} of ${total} files, ${n.listings} listings in ${n.seconds.toFixed(1)} s)`);
  return { validator, validatorSerial, naive, naiveFiles: n.files, naiveSeconds: n.seconds, naiveListings: n.listings, ratio: validator / naive };
}

/** A throwaway Ceph S3 with the chain uploaded, or why not. */
async function cephBucket(chain: BuiltChain, repoRoot: string, log: (s: string) => void): Promise<{ env: Record<string, string>; bucket: string; stop: () => void } | { skipped: string }> {
  const script = join(repoRoot, '..', 'shared', 'tools', 'start-ceph-s3.sh');
  if (!existsSync(script)) return { skipped: 'no ../shared/tools/start-ceph-s3.sh' };
  if (process.getuid?.() !== 0) return { skipped: 'the Ceph S3 needs root (start-ceph-s3.sh)' };
  const dir = join(tempDir('custody-bench-ceph-parent-'), 'ceph');
  const start = await run('bash', [script, dir, String(await freePort())], { timeoutMs: 600_000 });
  if (start.code !== 0) return { skipped: `start-ceph-s3.sh failed: ${start.stderr.trim().split('\n').slice(-2).join(' ')}` };
  const stop = onCleanup('stop the bench Ceph', () => {
    spawnSync('bash', [join(repoRoot, '..', 'shared', 'tools', 'stop-ceph-s3.sh'), dir], { stdio: 'ignore', env: { ...process.env, CEPH_STOP_FAST: '1' } });
  });
  const v = Object.fromEntries(start.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) as Record<string, string>;
  const env = { AWS_ACCESS_KEY_ID: v.S3_ACCESS_KEY!, AWS_SECRET_ACCESS_KEY: v.S3_SECRET_KEY!, AWS_REGION: v.S3_REGION!, AWS_ENDPOINT_URL_S3: v.S3_ENDPOINT! };
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { S3Client, CreateBucketCommand, PutObjectCommand } = await import('@aws-sdk/client-s3');
  const s3 = new S3Client({ endpoint: v.S3_ENDPOINT, region: v.S3_REGION, forcePathStyle: true, credentials: { accessKeyId: v.S3_ACCESS_KEY!, secretAccessKey: v.S3_SECRET_KEY! }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: TRAIL.bucket }));
    const items = [...chain.objects];
    const t0 = performance.now();
    let i = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (i < items.length) {
        const [key, o] = items[i++]!;
        await s3.send(new PutObjectCommand({ Bucket: TRAIL.bucket, Key: key, Body: o.body, ...(o.metadata ? { Metadata: o.metadata } : {}) }));
      }
    }));
    log(`cloudtrail: uploaded ${items.length} objects to Ceph S3 in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    s3.destroy();
  }
  return { env, bucket: TRAIL.bucket, stop };
}

export async function cloudtrailFigure(
  o: { digests: number; logsPerDigest: number; naiveMaxS: number; s3: boolean; repoRoot: string },
  log: (s: string) => void,
): Promise<CloudTrailFigure> {
  const key = makeTestKey();
  const keys = parsePublicKeysText(keysFileText([key]), 'bench keys');
  const logBytes = 16_000;
  const t0 = performance.now();
  const chain = buildChain({ key, hours: o.digests, logsPerHour: o.logsPerDigest, logBytes });
  const total = o.digests * (1 + o.logsPerDigest);
  const dir = tempDir('custody-bench-cloudtrail-');
  try {
    writeFolder(dir, chain.objects);
    log(`cloudtrail: ${o.digests} digests + ${o.digests * o.logsPerDigest} log files (~${logBytes / 1000} kB of JSON each) written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const folder = await measure(() => new FolderStore(dir, TRAIL.bucket), keys, total, o.naiveMaxS, 'folder', log);
    let s3: CloudTrailRun | { skipped: string } = { skipped: 'skipped (--skip-cloudtrail-s3)' };
    if (o.s3) {
      const c = await cephBucket(chain, o.repoRoot, log);
      if ('skipped' in c) s3 = c;
      else {
        const saved = { ...process.env };
        Object.assign(process.env, c.env);
        try {
          const { S3Store } = await import('../src/cloudtrail/s3-store.js');
          s3 = await measure(() => new S3Store({ bucket: c.bucket, prefix: '' }), keys, total, o.naiveMaxS, 'S3', log);
        } finally {
          for (const k of Object.keys(c.env)) {
            if (saved[k] === undefined) delete process.env[k];
            else process.env[k] = saved[k];
          }
          c.stop();
        }
      }
    }
    return { digests: o.digests, logsPerDigest: o.logsPerDigest, files: total, logBytes, folder, s3 };
  } finally {
    dropTempDir(dir);
  }
}
