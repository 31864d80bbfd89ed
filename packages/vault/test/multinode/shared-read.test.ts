/**
 * Reading a shared vault (S3 + PostgreSQL) for evidence and self-audit, on two real `custody
 * serve` nodes: entries written through node A are exported as an evidence bundle by node B
 * (through its S3 LogStore) and the zip passes `custody verify-bundle` and Go's evidencecheck;
 * an object overwritten in S3 behind the vault's back (a new version the first-version reads
 * hide) raises a self-audit alarm from the integrating node, and the bundle exported after it
 * still verifies; a hash tile overwritten with same-sized junk raises both the version alarm and
 * the changed-hashes alarm. Partial objects carry no lock headers by default (the bucket's
 * default retention applies, as the AWS blueprint's policy wants); the `--partial-lock`
 * choices (unit) and refused values.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { PutObjectCommand, GetObjectRetentionCommand } from '@aws-sdk/client-s3';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { startCeph, type CephS3 } from '../support/ceph.js';
import { cleanup, makeTempDir, runCli, runProcess, waitFor, type Tokens } from '../support/server.js';
import { evidenceCheckTool } from '../../bench/evidence-go.js';
import { S3LogStore, partialLockDaysOf, DEFAULT_PARTIAL_LOCK } from '../../src/storage/s3/log-store.js';
import type { S3ObjectStore } from '../../src/storage/s3/object-store.js';
import type { LogKeys } from '../../src/crypto/keyring.js';
import { Node, post, getJson } from './support.js';

let pgs: TestPostgres;
let ceph: CephS3;
let bucket: string;
let a: Node;
let b: Node;
let tokens: Tokens;
let work: string;
const DAY = 86_400_000;

before(async () => {
  work = makeTempDir('shared-read');
  pgs = await startPostgres('sharedread', { own: true });
  ceph = await startCeph('multinode');
  // As the AWS blueprint's lake: Object Lock with a default COMPLIANCE retention.
  // Its default (2 days) differs from --partial-lock short (1 day), so the test tells them apart.
  bucket = await ceph.lockedBucket('sharedread', { mode: 'COMPLIANCE', days: 2 });
  const common = { bucket, pgUrl: pgs.url, awsEnv: ceph.env };
  a = new Node({ ...common, nodeId: 'node-a' });
  b = new Node({ ...common, nodeId: 'node-b' });
  await a.start();
  await b.start();
  tokens = a.tokens();
});

after(async () => {
  await a?.stop().catch(() => undefined);
  await b?.stop().catch(() => undefined);
  await pgs?.stop();
  await ceph?.stop();
  await cleanup();
});

async function logInfo(node: Node): Promise<{ size: number; verifierKey: string }> {
  const r = await getJson<{ logs: Array<{ name: string; size: number; verifierKey: string }> }>(node.url, tokens.auditor, '/v1/logs');
  return r.body.logs.find((l) => l.name === 'local')!;
}

async function exportFrom(node: Node, entries: Array<{ log: string; index: number }>): Promise<{ status: number; zip: Buffer; text: string }> {
  const r = await fetch(`${node.url}/v1/export`, { method: 'POST', headers: { authorization: `Bearer ${tokens.auditor}`, 'content-type': 'application/json' }, body: JSON.stringify({ entries }) });
  const zip = Buffer.from(await r.arrayBuffer());
  return { status: r.status, zip, text: r.status === 200 ? '' : zip.toString('utf8') };
}

async function verifyBundle(path: string, key: string): Promise<{ code: number | null; r: { ok: boolean; items: number; verified: number } }> {
  const run = await runCli(['verify-bundle', path, '--key', key, '--json'], { CUSTODY_URL: 'http://127.0.0.1:9' });
  return { code: run.code, r: JSON.parse(run.stdout) as { ok: boolean; items: number; verified: number } };
}

let written = 0;
let blobIndex = -1;

test('node B exports entries written on node A; custody verify-bundle and Go evidencecheck pass', { timeout: 240_000 }, async () => {
  // 300 small entries (a full bundle and a partial one) and one record kept as a blob.
  const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ n: i, action: 'user.login', user: 'alice' }));
  for (let i = 0; i < lines.length; i += 100) {
    const r = await post(a.url, tokens.writer, lines.slice(i, i + 100));
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const big = await post(a.url, tokens.writer, [JSON.stringify({ dump: randomBytes(120_000).toString('base64') })]);
  assert.equal(big.status, 200, JSON.stringify(big.body));
  blobIndex = big.body['first'] as number;
  written = blobIndex + 1;
  const info = await waitFor('node B to publish every entry', async () => {
    const i = await logInfo(b);
    return i.size >= written ? i : undefined;
  }, 30_000, 100);
  const want = [0, 1, 255, 256, 299, blobIndex];
  const ex = await exportFrom(b, want.map((index) => ({ log: 'local', index })));
  assert.equal(ex.status, 200, ex.text);
  const zipPath = join(work, 'from-b.zip');
  writeFileSync(zipPath, ex.zip);
  const v = await verifyBundle(zipPath, info.verifierKey);
  assert.equal(v.code, 0, JSON.stringify(v.r));
  assert.equal(v.r.ok, true);
  assert.equal(v.r.items, want.length);
  assert.equal(v.r.verified, want.length);
  const go = await runProcess(evidenceCheckTool(), [zipPath, info.verifierKey]);
  assert.equal(go.code, 0, go.stdout + go.stderr);
  assert.match(go.stdout, new RegExp(`^OK items=${want.length} logs=1 `));
  // A wrong key fails: the check can fail.
  const other = await verifyBundle(zipPath, info.verifierKey.replace(/\+[A-Za-z0-9+/=]+$/, (m) => m.slice(0, -6) + (m.endsWith('AAAAA=') ? 'BBBBB=' : 'AAAAA=')));
  assert.notEqual(other.code, 0);
  // Hostile: an entry not yet in a checkpoint, a log that does not exist.
  const beyond = await exportFrom(b, [{ log: 'local', index: written + 1000 }]);
  assert.equal(beyond.status, 404, beyond.text);
  assert.match(beyond.text, /ENTRY_NOT_FOUND/);
  const nolog = await exportFrom(b, [{ log: 'nope', index: 0 }]);
  assert.equal(nolog.status, 404, nolog.text);
});

test('partial objects: with the default --partial-lock none they carry no lock headers, so the bucket default retention applies', { timeout: 60_000 }, async () => {
  assert.equal(DEFAULT_PARTIAL_LOCK, 'none');
  const client = ceph.client();
  // The partial bundle 001.p/<w> was PUT without lock headers: S3 applied the bucket's default (2 days, COMPLIANCE), not 1 day (short).
  const rel = `custody/local/tile/entries/001.p/${written - 256}`;
  const r = await client.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: rel }));
  assert.equal(r.Retention?.Mode, 'COMPLIANCE');
  const until = r.Retention!.RetainUntilDate!.getTime();
  assert.ok(until > Date.now() + 1.5 * DAY && until < Date.now() + 3 * DAY, `the bucket's default retention of 2 days: ${r.Retention!.RetainUntilDate!.toISOString()}`);
  // A full tile carries the log's own retention (--retention-days, default 365).
  const full = await client.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: 'custody/local/tile/0/000' }));
  assert.ok(full.Retention!.RetainUntilDate!.getTime() > Date.now() + 300 * DAY);
});

test('an entry bundle overwritten in S3 raises a self-audit alarm; export still serves the original and verifies', { timeout: 240_000 }, async () => {
  assert.ok(written > 256, 'the first test wrote the entries');
  // Overwrite the full bundle 000 with junk behind the vault's back (a new S3 version).
  const client = ceph.client();
  const key = 'custody/local/tile/entries/000';
  const junk = randomBytes(4096);
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: junk, ContentMD5: createHash('md5').update(junk).digest('base64') }));
  // The self-audit runs on the integrating node only; either node lists the (PostgreSQL) alarms.
  const c = new pg.Client({ connectionString: pgs.url });
  await c.connect();
  let leader: string | null;
  try {
    leader = (await c.query<{ leader: string | null }>('SELECT leader FROM custody_log_state WHERE log = $1', ['local'])).rows[0]?.leader ?? null;
  } finally {
    await c.end();
  }
  assert.ok(leader === 'node-a' || leader === 'node-b', `a node integrates: ${leader}`);
  const alarm = await waitFor('a self-audit alarm for the overwritten bundle', async () => {
    for (const n of [a, b]) {
      const r = await getJson<{ alarms: Array<{ rule: string; kind: string; severity: string; details: Record<string, unknown> }> }>(n.url, tokens.auditor, '/v1/alarms?kind=integrity');
      const hit = r.body.alarms.find((x) => x.rule === 'self-audit.replaced' && x.details['file'] === 'tile/entries/000');
      if (hit) return hit;
    }
    return undefined;
  }, 90_000, 1000);
  assert.equal(alarm.severity, 'critical');
  assert.equal(alarm.details['log'], 'local');
  assert.ok((alarm.details['laterVersions'] as number) >= 1);
  // No alarm for the untouched partial bundle.
  const all = await getJson<{ alarms: Array<{ rule: string; details: Record<string, unknown> }> }>(a.url, tokens.auditor, '/v1/alarms?kind=integrity');
  assert.ok(!all.body.alarms.some((x) => x.details['file'] === 'tile/entries/001.p/' + String(written - 256)), JSON.stringify(all.body.alarms));
  // Readers take the first version: an export from either node still verifies.
  const info = await logInfo(a);
  for (const n of [a, b]) {
    const ex = await exportFrom(n, [{ log: 'local', index: 3 }, { log: 'local', index: 200 }]);
    assert.equal(ex.status, 200, ex.text);
    const p = join(work, `after-${n.o.nodeId}.zip`);
    writeFileSync(p, ex.zip);
    const v = await verifyBundle(p, info.verifierKey);
    assert.equal(v.code, 0, JSON.stringify(v.r));
    assert.equal(v.r.verified, 2);
  }
});

test('a hash tile overwritten in S3 with bytes of the right size: the self-audit alarms on the version and on the changed hashes', { timeout: 240_000 }, async () => {
  assert.ok(written > 256, 'the first test wrote the entries');
  const client = ceph.client();
  const junk = randomBytes(256 * 32); // a full level-0 tile's size: only the hashes tell it apart
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'custody/local/tile/0/000', Body: junk, ContentMD5: createHash('md5').update(junk).digest('base64') }));
  const found = await waitFor('self-audit alarms for tile/0/000', async () => {
    const r = await getJson<{ alarms: Array<{ rule: string; details: Record<string, unknown> }> }>(b.url, tokens.auditor, '/v1/alarms?kind=integrity');
    const mine = r.body.alarms.filter((x) => x.details['file'] === 'tile/0/000');
    return mine.some((x) => x.rule === 'self-audit.replaced') && mine.some((x) => x.rule === 'self-audit.tiles') ? mine : undefined;
  }, 90_000, 1000);
  assert.ok(found.length >= 2);
  // Proofs come from each node's checked tile mirror: entries still verify.
  const info = await logInfo(b);
  const ex = await exportFrom(b, [{ log: 'local', index: 7 }]);
  assert.equal(ex.status, 200, ex.text);
  const p = join(work, 'after-tile.zip');
  writeFileSync(p, ex.zip);
  assert.equal((await verifyBundle(p, info.verifierKey)).code, 0);
});

test('lockFor under each --partial-lock choice', () => {
  const retainUntil = new Date(Date.now() + 400 * DAY);
  const now = Date.now();
  const mk = (days: number): S3LogStore => new S3LogStore({ objects: {} as S3ObjectStore, log: 'local', origin: 'o', keys: {} as LogKeys, retainUntil, partialLockDays: days, now: () => now });
  assert.equal(mk(partialLockDaysOf('none')).lockFor('tile/0/000.p/5'), null);
  assert.equal(mk(partialLockDaysOf('short')).lockFor('tile/0/000.p/5')!.getTime(), now + DAY);
  assert.equal(mk(partialLockDaysOf('full')).lockFor('tile/entries/000.p/5')!.getTime(), retainUntil.getTime());
  for (const p of ['none', 'short', 'full'] as const) assert.equal(mk(partialLockDaysOf(p)).lockFor('tile/0/000')!.getTime(), retainUntil.getTime(), `${p}: full tiles keep the retention`);
});

test('custody serve refuses --partial-lock with a wrong value, and on an embedded vault', { timeout: 120_000 }, async () => {
  const data = join(makeTempDir('partial-lock'), 'data');
  const bad = await runCli(['serve', '--data', data, '--port', '0', '--storage', `s3://${bucket}/other`, '--database', pgs.url, '--partial-lock', 'forever'], ceph.env);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stdout + bad.stderr, /--partial-lock takes none, short or full/);
  const embedded = await runCli(['serve', '--data', data, '--port', '0', '--partial-lock', 'none']);
  assert.notEqual(embedded.code, 0);
  assert.match(embedded.stdout + embedded.stderr, /--partial-lock are for a shared vault/);
});
