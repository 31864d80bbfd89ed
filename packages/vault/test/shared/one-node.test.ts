/**
 * SharedLogSequencer on one node, against the real PostgreSQL and the real Ceph S3 with Object
 * Lock: 2,000 entries in many batches are acknowledged (PostgreSQL COMMIT), integrated into S3
 * and published; the entries read back from the S3 bundles; inclusion and consistency proofs
 * verify from the node's tile mirror; a new instance recovers the published size; hostile
 * state (a checkpoint in the database signed by another key) is refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  openCheckpoint,
  proveInclusion,
  verifyInclusion,
  proveConsistency,
  verifyConsistency,
  hashLeaf,
  Ed25519NoteSigner,
  signNote,
  formatCheckpoint,
  EMPTY_ROOT,
} from '@custody/verify';
import { nativeSha256 } from '../../src/crypto/sha256.js';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { startCeph, type CephS3 } from '../support/ceph.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { readLogState } from '../../src/storage/pg/leader.js';
import { openSharedLogSequencer, type SharedLogSequencer } from '../../src/sequencer/shared-sequencer.js';
import type { SharedSequencerOptions } from '../../src/sequencer/api.js';
import { isCustodyError } from '../../src/errors.js';
import { makeKeys, batch, entry, readAll, checkTree, type Ack } from './support.js';

const DAY = 86_400_000;
let pgs: TestPostgres;
let ceph: CephS3;
let pool: Pool;
const dirs: string[] = [];
const open: SharedLogSequencer[] = [];

before(async () => {
  pgs = await startPostgres('shared1');
  ceph = await startCeph('shared');
  pool = createPool({ connectionString: pgs.url, max: 6 });
  await migrate(pool);
});
after(async () => {
  for (const s of open) await s.close().catch(() => undefined);
  await pool?.end().catch(() => undefined);
  await pgs?.stop();
  await ceph?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function setup(log: string): Promise<(node: string) => SharedSequencerOptions> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-shared-'));
  dirs.push(dir);
  const { keys } = makeKeys(dir, log);
  const bucket = await ceph.lockedBucket(`sh-${log}`);
  return (node) => ({
    name: log,
    origin: `shared.example/${log}`,
    keys,
    pool,
    connectionString: pgs.url,
    nodeId: node,
    s3: { kind: 's3', bucket, prefix: 'custody/', log, retainUntil: new Date(Date.now() + 2 * DAY).toISOString(), env: ceph.env },
    cacheDir: join(dir, `cache-${node}`),
    logger: pino({ level: 'silent' }),
    checkpointIntervalMs: 50,
    followPollMs: 100,
    leaderPollMs: 250,
  });
}

test('one node: 2,000 entries in many batches are published, readable from S3, provable, and recovered by a new instance', async () => {
  const opts = await setup('one');
  const s = await openSharedLogSequencer(opts('n1'));
  open.push(s);
  assert.equal(s.size, 0);
  const acks: Ack[] = [];
  // 100 batches of 1..39 entries (2,000 in all), 10 at a time
  const counts: number[] = [];
  for (let i = 0, left = 2000; left > 0; i++) {
    const c = Math.min(left, 1 + ((i * 13) % 39));
    counts.push(c);
    left -= c;
  }
  for (let i = 0; i < counts.length; i += 10) {
    const rs = await Promise.all(counts.slice(i, i + 10).map((c, j) => s.add(batch('n1', i + j, c), c).then((r) => ({ ...r, seq: i + j }))));
    for (const r of rs) acks.push({ node: 'n1', seq: r.seq, first: r.first, count: r.count });
  }
  const total = counts.reduce((a, b) => a + b, 0);
  assert.equal(total, 2000);
  const cp = await s.waitForCheckpoint(total, 30_000);
  assert.equal(cp.size, 2000);
  // the published state in PostgreSQL and the S3 checkpoint object say the same
  const st = await readLogState(pool, 'one');
  assert.equal(st.size, 2000);
  assert.equal(st.checkpoint, cp.text);
  assert.ok(s.lease, 'the only node integrates the log');
  assert.equal(st.epoch, s.lease!.epoch);
  assert.equal(st.leader, 'n1');
  const verifier = s.verifier;
  const c = openCheckpoint(cp.text, verifier).checkpoint;
  assert.equal(c.size, 2000);
  await waitS3Checkpoint(s, 2000);

  const entries = await readAll(s.store, 2000);
  const { problems } = checkTree(entries, acks);
  assert.deepEqual(problems, []);
  // proofs from the tile mirror verify against the signed root
  const reader = s.nodeReader(2000);
  for (const i of [0, 1, 255, 256, 1023, 1999]) {
    verifyInclusion(hashLeaf(entries[i]!, nativeSha256), i, 2000, proveInclusion(i, 2000, reader, nativeSha256), c.rootHash, nativeSha256);
  }
  // an inclusion proof for the wrong entry fails (the check can fail)
  assert.throws(() => verifyInclusion(hashLeaf(entries[1]!, nativeSha256), 0, 2000, proveInclusion(0, 2000, reader, nativeSha256), c.rootHash, nativeSha256));
  // the journal was trimmed below the published size
  const journalRows = async (): Promise<number> => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM custody_journal WHERE log = 'one'`)).rows[0]!.n);
  const until = Date.now() + 5_000;
  while ((await journalRows()) > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await journalRows(), 0);

  // a second instance (a restarted node) recovers the size and integrates more from there
  await s.close();
  open.splice(open.indexOf(s), 1);
  const s2 = await openSharedLogSequencer(opts('n1'));
  open.push(s2);
  assert.equal(s2.size, 2000);
  assert.equal(s2.checkpoint.text, cp.text);
  const r = await s2.add(batch('n1', 1000, 5), 5);
  assert.equal(r.first, 2000);
  const cp2 = await s2.waitForCheckpoint(2005, 30_000);
  assert.equal(cp2.size, 2005);
  const c2 = openCheckpoint(cp2.text, verifier).checkpoint;
  verifyConsistency(2000, 2005, proveConsistency(2000, 2005, s2.nodeReader(2005), nativeSha256), c.rootHash, c2.rootHash, nativeSha256);
  const all = await readAll(s2.store, 2005);
  assert.ok(all[2004]!.equals(entry('n1', 1000, 4)));
  // a proof from the old size still works from the new mirror (an older partial width)
  verifyInclusion(hashLeaf(all[1999]!, nativeSha256), 1999, 2000, proveInclusion(1999, 2000, s2.nodeReader(2000), nativeSha256), c.rootHash, nativeSha256);
});

test('one node: a checkpoint in the database not signed by the log key is refused at open', async () => {
  const opts = await setup('forged');
  const o = opts('n1');
  const s = await openSharedLogSequencer({ ...o, integrate: false });
  await s.close();
  const other = new Ed25519NoteSigner(o.origin, Buffer.alloc(32, 7));
  const forged = signNote(formatCheckpoint({ origin: o.origin, size: 3, rootHash: EMPTY_ROOT, extensions: [] }), [other]);
  await pool.query(`UPDATE custody_log_state SET size = 3, checkpoint = $1 WHERE log = 'forged'`, [forged]);
  await assert.rejects(openSharedLogSequencer({ ...o, integrate: false }), (e: unknown) => isCustodyError(e) && e.code === 'STORAGE_CORRUPT' && /does not verify/.test(e.message));
});

test('one node: a journal row moved to another index (sealed bytes swapped in the database) is never integrated', async () => {
  const opts = await setup('swapped');
  const o = opts('n1');
  const appender = await openSharedLogSequencer({ ...o, integrate: false });
  const r1 = await appender.add(batch('n1', 0, 4), 4);
  const r2 = await appender.add(batch('n1', 1, 4), 4);
  assert.deepEqual([r1.first, r2.first], [0, 4]);
  await appender.close();
  const rows = await pool.query<{ first_index: string; sealed: Buffer }>(`SELECT first_index, sealed FROM custody_journal WHERE log = 'swapped' ORDER BY first_index`);
  assert.equal(rows.rows.length, 2);
  await pool.query(`UPDATE custody_journal SET sealed = $1 WHERE log = 'swapped' AND first_index = 0`, [rows.rows[1]!.sealed]);
  await pool.query(`UPDATE custody_journal SET sealed = $1 WHERE log = 'swapped' AND first_index = 4`, [rows.rows[0]!.sealed]);
  const s = await openSharedLogSequencer(o);
  open.push(s);
  await waitFor(() => s.lastError?.code === 'STORAGE_CORRUPT', 10_000);
  assert.match(s.lastError!.message, /fails authentication/);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(s.size, 0, 'nothing was published from the altered journal');
  assert.equal((await readLogState(pool, 'swapped')).size, 0);
});

async function waitFor(fn: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitS3Checkpoint(s: SharedLogSequencer, size: number): Promise<void> {
  const until = Date.now() + 10_000;
  for (;;) {
    const t = await s.store.readCheckpoint();
    if (t && openCheckpoint(t, s.verifier).checkpoint.size >= size) return;
    if (Date.now() > until) throw new Error(`S3 checkpoint did not reach ${size}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
