/**
 * PostgreSQL restarting under a steady stream of appends from two nodes: failures are
 * STORAGE_UNAVAILABLE (503 with Retry-After), every acknowledged batch is stored where its
 * caller was told, a batch reported "not committed" is not stored, no index is assigned twice
 * and the journal has no gap.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { sleep } from '../support/server.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { PgJournal } from '../../src/storage/pg/journal.js';
import { isCustodyError } from '../../src/errors.js';

let pgs: TestPostgres;
const pools: Pool[] = [];

before(async () => {
  pgs = await startPostgres('restart', { own: true });
});
after(async () => {
  for (const p of pools) await p.end().catch(() => undefined);
  await pgs?.stop();
});

test('pg_ctl restart mid-append: 503s only, nothing acknowledged is lost, no index twice, no gap', async () => {
  const idleErrors: Error[] = [];
  const mk = (): Pool => {
    const p = createPool({ connectionString: pgs.url, max: 3, connectTimeoutMs: 2_000, onIdleError: (e) => idleErrors.push(e) });
    pools.push(p);
    return p;
  };
  const [pa, pb] = [mk(), mk()];
  await migrate(pa);
  await PgJournal.createLog(pa, { name: 'r', origin: 'vault.example/r' });
  const nodes = [new PgJournal(pa, { node: 'a' }), new PgJournal(pb, { node: 'b' })];

  const acked = new Map<string, { first: number; count: number }>();
  const notCommitted = new Set<string>();
  const unknown = new Set<string>();
  const badErrors: unknown[] = [];
  let restarted = false;
  let ackedAfterRestart = 0;
  const deadline = Date.now() + 30_000;
  const writer = async (w: number): Promise<void> => {
    const j = nodes[w % 2]!;
    for (let seq = 0; ; seq++) {
      if (restarted && ackedAfterRestart >= 40) return;
      if (Date.now() > deadline) throw new Error(`appends did not resume after the restart (${ackedAfterRestart} acknowledged since)`);
      const id = `w${w}-${seq}`;
      const count = 1 + (seq % 3);
      try {
        const first = await j.append('r', count, Buffer.from(id));
        acked.set(id, { first, count });
        if (restarted) ackedAfterRestart++;
      } catch (e) {
        if (!isCustodyError(e, 'STORAGE_UNAVAILABLE') || !((e.details?.retryAfter as number) > 0)) badErrors.push(e);
        else if (e.details?.outcome === 'unknown') unknown.add(id);
        else if (e.details?.outcome === 'not-committed') notCommitted.add(id);
        else badErrors.push(e);
        await sleep(50); // the producer honours Retry-After (shortened here)
      }
    }
  };
  const writers = Promise.all([0, 1, 2, 3].map(writer));
  await sleep(500);
  const before = acked.size;
  await pgs.restart();
  restarted = true;
  await writers;

  assert.deepEqual(badErrors, [], 'every failure is a retryable STORAGE_UNAVAILABLE');
  assert.ok(before > 0, 'appends were acknowledged before the restart');
  assert.ok(notCommitted.size + unknown.size > 0, 'the restart hit appends in flight');
  const rows = await new PgJournal(pa, { node: 'check' }).readFrom('r', 0, 1_000_000);
  const byId = new Map(rows.map((r) => [r.sealed.toString(), r]));
  const unknownStored = [...unknown].filter((id) => byId.has(id)).length;
  console.log(`# restart: ${acked.size} acknowledged (${before} before), ${notCommitted.size} not committed, ${unknown.size} unknown outcome (${unknownStored} of them stored), ${idleErrors.length} idle connections dropped`);
  assert.equal(byId.size, rows.length, 'no batch stored twice');
  let next = 0;
  for (const r of rows) {
    assert.equal(r.firstIndex, next, `the journal has a gap or overlap at ${next}`);
    next += r.count;
  }
  const pool = pa;
  const head = Number((await pool.query('SELECT next_index FROM custody_log_heads WHERE log = $1', ['r'])).rows[0].next_index);
  assert.equal(next, head, 'every assigned index is in a stored batch');
  for (const [id, a] of acked) {
    const r = byId.get(id);
    assert.ok(r, `acknowledged batch ${id} is missing`);
    assert.equal(r.firstIndex, a.first, `${id} stored at another index than acknowledged`);
    assert.equal(r.count, a.count);
  }
  for (const id of notCommitted) assert.ok(!byId.has(id), `${id} was reported not committed but is stored`);
  for (const r of rows) {
    const id = r.sealed.toString();
    assert.ok(acked.has(id) || unknown.has(id), `${id} is stored but its caller was told it failed`);
  }
});
