/**
 * Two vault nodes in two real processes (node-child.ts) sharing one log through the real
 * PostgreSQL and the real Ceph S3: both acknowledge appends, exactly one integrates (the
 * holder of the leader lock, as custody_log_state records it), the tree holds every
 * acknowledged batch at its indices exactly once; kill -9 of the integrating node while the
 * other keeps appending: the other publishes a larger checkpoint within 5 s and no acknowledged
 * entry is lost (the killed node's included); Go's tlogcheck -full accepts the tree the two
 * nodes wrote, served from S3. A leader stalled (SIGSTOP) long enough to lose its lock stops at
 * once when it resumes and publishes nothing; the tree it may have written to S3 meanwhile
 * leaves the log intact.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint, parseVerifierKey, Ed25519NoteSigner, proveInclusion, verifyInclusion, hashLeaf } from '@custody/verify';
import { pino } from 'pino';
import { nativeSha256 } from '../../src/crypto/sha256.js';
import { openSharedLogSequencer } from '../../src/sequencer/shared-sequencer.js';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { startCeph, type CephS3 } from '../support/ceph.js';
import { goTool, runProcess, waitFor } from '../support/server.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { PgJournal } from '../../src/storage/pg/journal.js';
import { readLogState } from '../../src/storage/pg/leader.js';
import { openLogStore } from '../../src/storage/log-store.js';
import type { LogKeys } from '../../src/crypto/keyring.js';
import { serveStore } from '../storage/conformance.js';
import { makeKeys, readAll, checkTree, ChildNode, type ChildConfig, type ChildEvent } from './support.js';

const DAY = 86_400_000;
let pgs: TestPostgres;
let ceph: CephS3;
let pool: Pool;
const dirs: string[] = [];
const nodes: ChildNode[] = [];

before(async () => {
  pgs = await startPostgres('shared2');
  ceph = await startCeph('shared');
  pool = createPool({ connectionString: pgs.url, max: 4 });
  await migrate(pool);
});
after(async () => {
  for (const n of nodes) if (n.alive) n.proc.kill('SIGKILL');
  await pool?.end().catch(() => undefined);
  await pgs?.stop();
  await ceph?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Setup {
  cfg: (node: string) => ChildConfig;
  keys: LogKeys;
  log: string;
}

async function setup(log: string): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-shared2-'));
  dirs.push(dir);
  const { path, keys } = makeKeys(dir, log);
  const bucket = await ceph.lockedBucket(`sh2-${log}`);
  const s3 = { kind: 's3' as const, bucket, prefix: 'custody/', log, retainUntil: new Date(Date.now() + 2 * DAY).toISOString(), env: ceph.env };
  return { keys, log, cfg: (node) => ({ url: pgs.url, keyring: path, log, origin: `shared.example/${log}`, node, s3, cacheDir: join(dir, `cache-${node}`) }) };
}

function start(cfg: ChildConfig): ChildNode {
  const n = new ChildNode(cfg);
  nodes.push(n);
  return n;
}

/** [from, to) of each leadership of a node, from its lease events. */
function leaderships(n: ChildNode, end: number): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  let open: ChildEvent | null = null;
  for (const e of n.events.filter((x) => x.event === 'lease')) {
    if (open) out.push([open.t, e.t, open.epoch as number]);
    open = e.epoch === null ? null : e;
  }
  if (open) out.push([open.t, end, open.epoch as number]);
  return out;
}

async function settle(s: Setup, timeoutMs = 30_000): Promise<number> {
  const head = await new PgJournal(pool, { node: 'test' }).head(s.log);
  await waitFor(`the published size of ${s.log} to reach ${head}`, async () => (await readLogState(pool, s.log)).size >= head, timeoutMs, 100);
  return head;
}

let killedLog: Setup | null = null;

test('two node processes: both acknowledge appends, exactly one integrates, every acknowledged batch is in the tree once', async () => {
  const s = await setup('two');
  const a = start(s.cfg('node-a'));
  await a.waitEvent('ready');
  await a.waitEvent('lease', (e) => e.epoch !== null, 15_000);
  const b = start(s.cfg('node-b'));
  await b.waitEvent('ready');
  a.send({ cmd: 'append', batches: 30, count: 37 });
  b.send({ cmd: 'append', batches: 30, count: 23 });
  await a.waitEvent('appended', undefined, 60_000);
  await b.waitEvent('appended', undefined, 60_000);
  assert.equal(a.events.filter((e) => e.event === 'nack').length, 0, 'node a refused nothing');
  assert.equal(b.events.filter((e) => e.event === 'nack').length, 0, 'node b refused nothing');
  assert.equal(a.acks.length, 30);
  assert.equal(b.acks.length, 30);
  const head = await settle(s);
  assert.equal(head, 30 * 37 + 30 * 23);

  // exactly one integrates: node a (it took the lock first) and never node b
  const now = Date.now();
  assert.equal(leaderships(a, now).length, 1);
  assert.equal(leaderships(b, now).length, 0, 'node b never integrated');
  const st = await readLogState(pool, s.log);
  assert.equal(st.leader, 'node-a');
  assert.equal(st.epoch, leaderships(a, now)[0]![2]);
  // both nodes see the final checkpoint (b from the database, after mirroring the tiles)
  await b.waitEvent('published', (e) => e.size === head, 10_000);

  const store = await openLogStore(s.cfg('x').s3, `shared.example/${s.log}`, s.keys);
  try {
    const entries = await readAll(store, head);
    const { problems } = checkTree(entries, [...a.acks, ...b.acks]);
    assert.deepEqual(problems, []);
    // both nodes' batches are interleaved in one sequence
    assert.ok(a.acks.some((x) => b.acks.some((y) => y.first < x.first)) || b.acks.some((x) => a.acks.some((y) => y.first < x.first)));
    // a third node that only follows serves proofs from its tile mirror for both nodes' entries
    const c = s.cfg('node-c');
    const follower = await openSharedLogSequencer({ name: s.log, origin: c.origin, keys: s.keys, pool, connectionString: pgs.url, nodeId: 'node-c', s3: c.s3, cacheDir: c.cacheDir, logger: pino({ level: 'silent' }), integrate: false, create: false });
    try {
      const cp = await follower.waitForCheckpoint(head, 10_000);
      const root = openCheckpoint(cp.text, follower.verifier).checkpoint.rootHash;
      for (const x of [a.acks[0]!, b.acks[0]!, a.acks[29]!, b.acks[29]!]) {
        const i = x.first + x.count - 1;
        verifyInclusion(hashLeaf(entries[i]!, nativeSha256), i, head, proveInclusion(i, head, follower.nodeReader(head), nativeSha256), root, nativeSha256);
      }
      assert.equal(follower.lease, null, 'a node that may not integrate never leads');
    } finally {
      await follower.close();
    }
  } finally {
    store.close();
  }
  a.send({ cmd: 'close' });
  b.send({ cmd: 'close' });
  await Promise.all([a.waitEvent('closed'), b.waitEvent('closed')]);
});

test('kill -9 of the integrating node mid-ingest: the other node publishes within 5 s and no acknowledged entry is lost', async (t) => {
  const s = await setup('kill');
  killedLog = s;
  const a = start(s.cfg('node-a'));
  await a.waitEvent('ready');
  await a.waitEvent('lease', (e) => e.epoch !== null, 15_000);
  const b = start(s.cfg('node-b'));
  await b.waitEvent('ready');
  a.send({ cmd: 'stream', count: 20, everyMs: 15 });
  b.send({ cmd: 'stream', count: 11, everyMs: 15 });
  await b.waitEvent('published', (e) => (e.size as number) > 1500, 30_000);
  assert.ok(a.leading && !b.leading);

  const sizeAtKill = (await readLogState(pool, s.log)).size;
  const acksBefore = a.acks.length;
  a.proc.kill('SIGKILL');
  const killedAt = Date.now();
  await a.exited();
  const took = await b.waitEvent('lease', (e) => e.epoch !== null, 10_000);
  const next = await b.waitEvent('published', (e) => e.t > took.t && (e.size as number) > sizeAtKill, 10_000);
  const ms = next.t - killedAt;
  t.diagnostic(`takeover: ${ms} ms from kill -9 to a larger checkpoint published by the other node`);
  assert.ok(ms < 5_000, `the other node published a larger checkpoint ${ms} ms after the kill`);
  assert.ok(acksBefore > 0);

  await new Promise((r) => setTimeout(r, 500)); // b keeps appending under its own leadership
  b.send({ cmd: 'stop' });
  await new Promise((r) => setTimeout(r, 300));
  const head = await settle(s);
  const st = await readLogState(pool, s.log);
  assert.equal(st.leader, 'node-b');
  assert.equal(st.epoch, took.epoch);
  assert.ok((took.epoch as number) > (a.events.find((e) => e.event === 'lease' && e.epoch !== null)!.epoch as number));
  assert.equal(b.events.filter((e) => e.event === 'nack').length, 0, 'node b refused nothing while a was killed');

  const store = await openLogStore(s.cfg('x').s3, `shared.example/${s.log}`, s.keys);
  try {
    const entries = await readAll(store, head);
    const { problems } = checkTree(entries, [...a.acks, ...b.acks]);
    assert.deepEqual(problems, [], 'every acknowledged batch (the killed node\'s too) is in the tree once');
    const acked = [...a.acks, ...b.acks].reduce((n, x) => n + x.count, 0);
    // a batch committed as the node died was never acknowledged; it is in the tree (counted by head), nothing more
    assert.ok(head >= acked && head - acked <= 20 * 50, `head ${head}, acknowledged ${acked}`);
  } finally {
    store.close();
  }
  b.send({ cmd: 'close' });
  await b.waitEvent('closed');
});

async function tlogcheckFull(s: Setup): Promise<void> {
  const store = await openLogStore(s.cfg('x').s3, `shared.example/${s.log}`, s.keys);
  const srv = await serveStore(store);
  try {
    const st = await readLogState(pool, s.log);
    // S3's checkpoint object is the published one
    await waitFor('the S3 checkpoint to be the published one', async () => (await store.readCheckpoint()) === st.checkpoint, 10_000, 100);
    const vkey = new Ed25519NoteSigner(`shared.example/${s.log}`, s.keys.signingSeed).verifierKey;
    assert.equal(openCheckpoint(st.checkpoint!, parseVerifierKey(vkey)).checkpoint.size, st.size);
    const r = await runProcess(goTool('tlogcheck'), ['-base', srv.url, '-vkey', vkey, '-full']);
    assert.equal(r.code, 0, `tlogcheck failed: ${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`OK origin=\\S+ size=${st.size} root=\\S+ entries-recomputed=${st.size}`));
    // and it refuses a wrong key (the check can fail)
    const wrong = new Ed25519NoteSigner(`shared.example/${s.log}`, Buffer.alloc(32, 9)).verifierKey;
    const bad = await runProcess(goTool('tlogcheck'), ['-base', srv.url, '-vkey', wrong, '-full']);
    assert.notEqual(bad.code, 0);
  } finally {
    await srv.close();
    store.close();
  }
}

test("Go's tlogcheck -full accepts the log written by two nodes, served from S3", async () => {
  assert.ok(killedLog, 'the kill test wrote the log');
  await tlogcheckFull(killedLog);
});

test('a leader stalled past its lock (SIGSTOP) stops at once when it resumes and publishes nothing; the log stays intact', async (t) => {
  const s = await setup('stall');
  const a = start(s.cfg('node-a'));
  await a.waitEvent('ready');
  await a.waitEvent('lease', (e) => e.epoch !== null, 15_000);
  const b = start(s.cfg('node-b'));
  await b.waitEvent('ready');
  a.send({ cmd: 'stream', count: 9, everyMs: 10 });
  b.send({ cmd: 'stream', count: 13, everyMs: 15 });
  await b.waitEvent('published', (e) => (e.size as number) > 1000, 30_000);
  a.proc.kill('SIGSTOP');
  const stoppedAt = Date.now();
  const took = await b.waitEvent('lease', (e) => e.epoch !== null, 15_000);
  t.diagnostic(`node b took over ${took.t - stoppedAt} ms after node a stalled`);
  await b.waitEvent('published', (e) => e.t > took.t, 10_000);
  a.proc.kill('SIGCONT');
  const resumedAt = Date.now();
  const gaveUp = await a.waitEvent('lease', (e) => e.epoch === null, 10_000);
  assert.ok(gaveUp.t - resumedAt < 2_000, `the stalled leader stopped ${gaveUp.t - resumedAt} ms after it resumed`);
  await new Promise((r) => setTimeout(r, 1_000));
  a.send({ cmd: 'stop' });
  b.send({ cmd: 'stop' });
  await new Promise((r) => setTimeout(r, 300));
  const head = await settle(s);
  const st = await readLogState(pool, s.log);
  assert.equal(st.leader, 'node-b', 'the resumed node did not take the log back');
  assert.equal(st.epoch, took.epoch);
  assert.ok(!a.events.some((e) => e.event === 'lease' && e.t > gaveUp.t && e.epoch !== null), 'node a never led again');
  const store = await openLogStore(s.cfg('x').s3, `shared.example/${s.log}`, s.keys);
  try {
    const entries = await readAll(store, head);
    assert.deepEqual(checkTree(entries, [...a.acks, ...b.acks]).problems, []);
  } finally {
    store.close();
  }
  await tlogcheckFull(s);
  a.send({ cmd: 'close' });
  b.send({ cmd: 'close' });
  await Promise.all([a.waitEvent('closed', undefined, 15_000), b.waitEvent('closed', undefined, 15_000)]);
});
