/**
 * Outages under a shared log (real PostgreSQL, real Ceph S3): a PostgreSQL restart mid-ingest
 * gives producers STORAGE_UNAVAILABLE (503 with Retry-After) and loses nothing acknowledged;
 * S3 unreachable for a while (a TCP proxy in front of Ceph is cut): integration rounds fail and
 * are retried, appends are still acknowledged (PostgreSQL), and everything is published once S3
 * is back.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { startCeph, type CephS3 } from '../support/ceph.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { PgJournal } from '../../src/storage/pg/journal.js';
import { readLogState } from '../../src/storage/pg/leader.js';
import { openSharedLogSequencer, type SharedLogSequencer } from '../../src/sequencer/shared-sequencer.js';
import type { SharedSequencerOptions } from '../../src/sequencer/api.js';
import { isCustodyError } from '../../src/errors.js';
import { waitFor } from '../support/server.js';
import { makeKeys, batch, readAll, checkTree, type Ack } from './support.js';

const DAY = 86_400_000;
let pgs: TestPostgres;
let ceph: CephS3;
let pool: Pool;
const dirs: string[] = [];
const open: SharedLogSequencer[] = [];

before(async () => {
  pgs = await startPostgres('shared5', { own: true });
  ceph = await startCeph('shared');
  pool = createPool({ connectionString: pgs.url, max: 6, connectTimeoutMs: 1_000 });
  await migrate(pool);
});
after(async () => {
  for (const s of open) await s.close().catch(() => undefined);
  await pool?.end().catch(() => undefined);
  await pgs?.stop();
  await ceph?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A TCP proxy to S3 that can be cut (connections refused and reset) and restored. */
async function s3Proxy(target: URL): Promise<{ url: string; down(): Promise<void>; up(): Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  const listen = async (): Promise<void> => {
    server = createServer((c) => {
      const u = connect(Number(target.port), target.hostname);
      sockets.add(c).add(u);
      c.pipe(u).pipe(c);
      const drop = (): void => {
        c.destroy();
        u.destroy();
        sockets.delete(c);
        sockets.delete(u);
      };
      c.on('error', drop).on('close', drop);
      u.on('error', drop).on('close', drop);
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  };
  await listen();
  const down = async (): Promise<void> => {
    await new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    });
  };
  return { url: `http://127.0.0.1:${port}`, down, up: listen, close: down };
}

async function setup(log: string, s3Endpoint?: string): Promise<(node: string) => SharedSequencerOptions> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-shared5-'));
  dirs.push(dir);
  const { keys } = makeKeys(dir, log);
  const bucket = await ceph.lockedBucket(`sh5-${log}`);
  const env = s3Endpoint ? { ...ceph.env, AWS_ENDPOINT_URL_S3: s3Endpoint } : ceph.env;
  return (node) => ({
    name: log,
    origin: `shared.example/${log}`,
    keys,
    pool,
    connectionString: pgs.url,
    nodeId: node,
    s3: { kind: 's3', bucket, prefix: 'custody/', log, retainUntil: new Date(Date.now() + 2 * DAY).toISOString(), env, retryDeadlineMs: 1_000 },
    cacheDir: join(dir, `cache-${node}`),
    logger: pino({ level: 'silent' }),
    checkpointIntervalMs: 50,
    followPollMs: 100,
    leaderPollMs: 250,
  });
}

/** Appends batches one after another (3 producers) until stopped; records acks and refusals. */
function producers(s: SharedLogSequencer, node: string): { acks: Ack[]; refused: unknown[]; stop(): Promise<void> } {
  const acks: Ack[] = [];
  const refused: unknown[] = [];
  let going = true;
  let seq = 0;
  const loops = Array.from({ length: 3 }, async () => {
    while (going) {
      const my = seq++;
      const count = 1 + (my % 17);
      try {
        const r = await s.add(batch(node, my, count), count);
        acks.push({ node, seq: my, first: r.first, count: r.count });
      } catch (e) {
        refused.push(e);
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  });
  return {
    acks,
    refused,
    async stop() {
      going = false;
      await Promise.all(loops);
    },
  };
}

async function head(log: string): Promise<number> {
  return waitFor('the journal head', () => new PgJournal(pool, { node: 't' }).head(log).catch(() => undefined), 30_000, 200);
}

test('PostgreSQL restart mid-ingest: producers get STORAGE_UNAVAILABLE with Retry-After, nothing acknowledged is lost', async () => {
  const opts = await setup('pgrestart');
  const s = await openSharedLogSequencer(opts('n1'));
  open.push(s);
  const p = producers(s, 'n1');
  await waitFor('some entries published', () => s.size > 300, 30_000);
  const before = p.acks.length;
  await pgs.restart();
  await waitFor('appends acknowledged again after the restart', () => p.acks.length > before + 50, 60_000, 100);
  await p.stop();
  assert.ok(p.refused.length > 0, 'some appends were refused while PostgreSQL restarted');
  for (const e of p.refused) {
    assert.ok(isCustodyError(e) && e.code === 'STORAGE_UNAVAILABLE', `refused with ${(e as Error).message}`);
    assert.equal(e.details?.retryAfter, 1);
  }
  const h = await head('pgrestart');
  await s.waitForCheckpoint(h, 60_000);
  const st = await readLogState(pool, 'pgrestart');
  assert.ok(st.size >= h);
  assert.ok(st.epoch >= 2, 'the node took the leader lock again after the restart (new epoch)');
  const entries = await readAll(s.store, st.size);
  assert.deepEqual(checkTree(entries, p.acks).problems, []);
  await s.close();
  open.splice(open.indexOf(s), 1);
});

test('S3 unreachable for a while: rounds fail and retry, appends are still acknowledged, all is published when S3 returns', async () => {
  const proxy = await s3Proxy(new URL(ceph.endpoint));
  try {
    const opts = await setup('s3down', proxy.url);
    const s = await openSharedLogSequencer(opts('n1'));
    open.push(s);
    const p = producers(s, 'n1');
    await waitFor('some entries published', () => s.size > 200, 30_000);
    await proxy.down();
    const acksAtCut = p.acks.length;
    await new Promise((r) => setTimeout(r, 300));
    const sizeDuring = s.size;
    await new Promise((r) => setTimeout(r, 3_000));
    // appends went on (PostgreSQL), nothing new was published, and the problem is reported
    assert.ok(p.acks.length > acksAtCut + 50, `appends were acknowledged while S3 was down (${p.acks.length - acksAtCut})`);
    assert.equal(p.refused.length, 0);
    assert.ok(s.size <= sizeDuring + 0, 'nothing was published while S3 was unreachable');
    assert.ok(s.lastError, 'the integration problem is reported');
    await p.stop();
    const h = await head('s3down');
    assert.ok(h > s.size);
    await proxy.up();
    const cp = await s.waitForCheckpoint(h, 60_000);
    assert.ok(cp.size >= h);
    await waitFor('the error to clear', () => s.lastError === null, 10_000);
    const entries = await readAll(s.store, cp.size);
    assert.deepEqual(checkTree(entries, p.acks).problems, []);
    await s.close();
    open.splice(open.indexOf(s), 1);
  } finally {
    await proxy.close().catch(() => undefined);
  }
});
