/**
 * Leader election and fencing against a real PostgreSQL: one leader per log; a killed leader
 * (kill -9 of a real node process) is replaced within 5 s; a leader whose session ends or whose
 * heartbeat stalls stops before the standby takes over; a stale leader's writes are refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { sleep, waitFor } from '../support/server.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { PgJournal } from '../../src/storage/pg/journal.js';
import { PgLeader, publishState, readLogState, isFenced, type Lease } from '../../src/storage/pg/leader.js';
import { isCustodyError } from '../../src/errors.js';

let pgs: TestPostgres;
let pool: Pool;
const children: ChildProcess[] = [];
const leaders: PgLeader[] = [];

before(async () => {
  pgs = await startPostgres('leader');
  pool = createPool({ connectionString: pgs.url, max: 4 });
  await migrate(pool);
  for (const name of ['kill9', 'term', 'stall', 'fence', 'stop']) await PgJournal.createLog(pool, { name, origin: `vault.example/${name}` });
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const l of leaders) await l.stop().catch(() => undefined);
  await pool?.end().catch(() => undefined);
  await pgs?.stop();
});

interface Event {
  event: string;
  node: string;
  t: number;
  log?: string;
  epoch?: number;
  reason?: string;
}

function child(node: string, log: string): { proc: ChildProcess; events: Event[] } {
  const script = fileURLToPath(new URL('./leader-child.js', import.meta.url));
  const proc = spawn(process.execPath, [script, pgs.url, node, log], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(proc);
  const events: Event[] = [];
  let buf = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
    buf += s;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buf.slice(0, i)) as Event);
      buf = buf.slice(i + 1);
    }
  });
  return { proc, events };
}

function inProcess(node: string, log: string): { leader: PgLeader; acquired: Lease[]; lost: Array<{ t: number; reason: string }> } {
  const acquired: Lease[] = [];
  const lost: Array<{ t: number; reason: string }> = [];
  const leader = new PgLeader({
    connectionString: pgs.url,
    node,
    logs: [log],
    pollMs: 250,
    onAcquire: (l) => acquired.push(l),
    onLose: (_log, reason) => lost.push({ t: Date.now(), reason }),
  });
  leaders.push(leader);
  leader.start();
  return { leader, acquired, lost };
}

test('kill -9 of the leading node process: the standby process leads within 5 s, with a higher epoch', async () => {
  const a = child('node-a', 'kill9');
  const aGot = await waitFor('node-a to lead', () => a.events.find((e) => e.event === 'acquire'), 15_000);
  const b = child('node-b', 'kill9');
  await waitFor('node-b to stand by', () => b.events.find((e) => e.event === 'standby'), 15_000);
  await sleep(600); // a few standby polls that must fail while node-a lives
  assert.equal(b.events.filter((e) => e.event === 'acquire').length, 0, 'only one leader while node-a lives');
  const killedAt = Date.now();
  a.proc.kill('SIGKILL');
  const bGot = await waitFor('node-b to take over', () => b.events.find((e) => e.event === 'acquire'), 10_000);
  const takeoverMs = bGot.t - killedAt;
  console.log(`# takeover after kill -9: ${takeoverMs} ms`);
  assert.ok(takeoverMs < 5_000, `takeover took ${takeoverMs} ms`);
  assert.ok(bGot.epoch! > aGot.epoch!, 'the new leader has a higher fencing epoch');
  const st = await readLogState(pool, 'kill9');
  assert.equal(st.leader, 'node-b');
  assert.equal(st.epoch, bGot.epoch);
});

test('the leader whose session is ended stops at once; a new leadership starts; the old lease is fenced', async () => {
  const a = inProcess('a', 'term');
  await waitFor('a to lead', () => a.acquired[0], 10_000);
  const b = inProcess('b', 'term');
  await waitFor('b to stand by', () => b.leader.connected || undefined, 10_000);
  const oldLease = a.acquired[0]!;
  await publishState(pool, oldLease, 5, 'checkpoint at 5');
  assert.equal(b.acquired.length, 0);

  // The server ends node a's lock session (as a failover or a network cut would). Either node
  // may lead next (node a reconnects and competes too); either way it is a new epoch.
  const cutAt = Date.now();
  await pool.query('SELECT pg_terminate_backend($1)', [oldLease.pid]);
  const lost = await waitFor('a to give up', () => a.lost[0], 5_000);
  const newLease = await waitFor('a new leader', () => b.acquired[0] ?? a.acquired[1], 5_000);
  console.log(`# session ended: a stopped after ${lost.t - cutAt} ms, ${b.acquired[0] ? 'b' : 'a (new session)'} led after ${newLease.acquiredAt - cutAt} ms`);
  assert.ok(lost.t <= newLease.acquiredAt);
  assert.ok(newLease.acquiredAt - cutAt < 5_000);
  assert.ok(newLease.epoch > oldLease.epoch);
  assert.notEqual(newLease.pid, oldLease.pid);
  assert.equal(newLease.size, 5, 'the new leader recovers from what the old one recorded');
  assert.equal(newLease.checkpoint, 'checkpoint at 5');
  assert.equal(a.acquired.length + b.acquired.length, 2, 'exactly one new leadership');

  await assert.rejects(publishState(pool, oldLease, 9, 'stale checkpoint'), (e: unknown) => isFenced(e) && isCustodyError(e, 'STORAGE_UNAVAILABLE'));
  await publishState(pool, newLease, 9, 'checkpoint at 9');
  await assert.rejects(publishState(pool, newLease, 7, 'shrinks'), (e: unknown) => isCustodyError(e, 'STORAGE_CORRUPT'));
  const st = await readLogState(pool, 'term');
  assert.deepEqual([st.size, st.checkpoint, st.epoch], [9, 'checkpoint at 9', newLease.epoch]);
});

test('a stalled heartbeat: the leader stops before the standby can lead, and within 5 s the standby leads', async () => {
  const a = inProcess('stall-a', 'stall');
  await waitFor('stall-a to lead', () => a.acquired[0], 10_000);
  const b = inProcess('stall-b', 'stall');
  await waitFor('stall-b to stand by', () => b.leader.connected || undefined, 10_000);
  // Hold node a's heartbeat row locked: its heartbeat UPDATE hangs (as on a hung server or a
  // half-open connection).
  const blocker = await pool.connect();
  let stalledAt = 0;
  try {
    await blocker.query('BEGIN');
    await blocker.query(`SELECT 1 FROM custody_nodes WHERE id = 'stall-a' FOR UPDATE`);
    stalledAt = Date.now();
    const lost = await waitFor('stall-a to give up', () => a.lost[0], 6_000);
    const got = await waitFor('stall-b to lead', () => b.acquired[0], 6_000);
    console.log(`# stalled heartbeat: the leader stopped after ${lost.t - stalledAt} ms, the standby led after ${got.acquiredAt - stalledAt} ms`);
    assert.ok(lost.t <= got.acquiredAt, 'the old leader stopped before the new one started');
    assert.ok(got.acquiredAt - stalledAt < 5_000, `takeover took ${got.acquiredAt - stalledAt} ms`);
    await assert.rejects(publishState(pool, a.acquired[0]!, 1, 'stale'), (e: unknown) => isFenced(e));
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    blocker.release();
  }
});

test('fencing: a stale epoch, or a lock session that is gone, writes nothing', async () => {
  const a = inProcess('fence-a', 'fence');
  const lease = await waitFor('fence-a to lead', () => a.acquired[0], 10_000);
  await publishState(pool, lease, 3, 'cp3');
  await assert.rejects(publishState(pool, { ...lease, epoch: lease.epoch - 1 }, 4, 'stale epoch'), (e: unknown) => isFenced(e));
  await assert.rejects(publishState(pool, { ...lease, epoch: lease.epoch + 1 }, 4, 'future epoch'), (e: unknown) => isFenced(e));
  const other = (await pool.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  await assert.rejects(publishState(pool, { ...lease, pid: other }, 4, 'not the lock holder'), (e: unknown) => isFenced(e));
  await assert.rejects(publishState(pool, { ...lease, log: "fence' OR '1'='1" }, 4, 'hostile name'), (e: unknown) => isCustodyError(e, 'LOG_NOT_FOUND'));
  const st = await readLogState(pool, 'fence');
  assert.deepEqual([st.size, st.checkpoint, st.epoch], [3, 'cp3', lease.epoch], 'none of the refused writes changed anything');
});

test('a clean stop hands the log over at the standby’s next poll', async () => {
  const a = inProcess('stop-a', 'stop');
  await waitFor('stop-a to lead', () => a.acquired[0], 10_000);
  const b = inProcess('stop-b', 'stop');
  await waitFor('stop-b to stand by', () => b.leader.connected || undefined, 10_000);
  const t0 = Date.now();
  await a.leader.stop();
  assert.equal(a.lost[0]?.reason, 'this node is stopping');
  const got = await waitFor('stop-b to lead', () => b.acquired[0], 5_000);
  assert.ok(got.acquiredAt - t0 < 2_000);
});
