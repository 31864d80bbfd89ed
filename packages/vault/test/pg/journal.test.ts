/**
 * The shared journal in a real PostgreSQL: two nodes (two pools) appending to one log get
 * unique, gapless indices in commit order; group commit; readFrom and trim; bad input.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { PgJournal } from '../../src/storage/pg/journal.js';
import { isCustodyError } from '../../src/errors.js';

let pgs: TestPostgres;
let poolA: Pool;
let poolB: Pool;

before(async () => {
  pgs = await startPostgres('journal');
  poolA = createPool({ connectionString: pgs.url, max: 4 });
  poolB = createPool({ connectionString: pgs.url, max: 4 });
  await migrate(poolA);
});
after(async () => {
  await poolA?.end().catch(() => undefined);
  await poolB?.end().catch(() => undefined);
  await pgs?.stop();
});

/** A payload naming who sent it and the index the seal function was given. */
const payload = (who: string, seq: number, first: number): Buffer => Buffer.from(JSON.stringify({ who, seq, first }));

test('registering a log is idempotent; a different origin under the same name is refused', async () => {
  assert.equal(await PgJournal.createLog(poolA, { name: 'shared', origin: 'vault.example/shared' }), true);
  assert.equal(await PgJournal.createLog(poolB, { name: 'shared', origin: 'vault.example/shared' }), false);
  await assert.rejects(PgJournal.createLog(poolB, { name: 'shared', origin: 'evil.example/shared' }), (e: unknown) => isCustodyError(e, 'CONFIG'));
  // the same origin under another name is refused too (the origin identifies the log)
  await assert.rejects(PgJournal.createLog(poolB, { name: 'other', origin: 'vault.example/shared' }), (e: unknown) => isCustodyError(e));
  assert.equal(await new PgJournal(poolA, { node: 'a' }).head('shared'), 0);
});

test('4 clients on 2 nodes get unique, gapless indices; rows hold what each was told', async () => {
  await PgJournal.createLog(poolA, { name: 'race', origin: 'vault.example/race' });
  const ja = new PgJournal(poolA, { node: 'node-a' });
  const jb = new PgJournal(poolB, { node: 'node-b' });
  const acks: Array<{ who: string; seq: number; first: number; count: number; sealedAt: number }> = [];
  const client = async (who: string, j: PgJournal): Promise<void> => {
    for (let seq = 0; seq < 60; seq++) {
      const count = 1 + ((seq * 7 + who.length) % 5);
      let sealedAt = -1;
      const first = await j.append('race', count, (at) => {
        sealedAt = at;
        return payload(who, seq, at);
      });
      acks.push({ who, seq, first, count, sealedAt });
    }
  };
  await Promise.all([client('a1', ja), client('a2', ja), client('b1', jb), client('b2', jb)]);
  assert.equal(acks.length, 240);
  for (const a of acks) assert.equal(a.sealedAt, a.first, 'the seal function saw the index the caller was given');
  acks.sort((x, y) => x.first - y.first);
  let next = 0;
  for (const a of acks) {
    assert.equal(a.first, next, `gap or overlap at ${next}`);
    next += a.count;
  }
  assert.equal(await ja.head('race'), next);
  assert.equal(await jb.head('race'), next);
  const rows = await jb.readFrom('race', 0, 10_000);
  assert.equal(rows.length, 240);
  rows.forEach((r, i) => {
    const a = acks[i]!;
    assert.equal(r.firstIndex, a.first);
    assert.equal(r.count, a.count);
    assert.deepEqual(JSON.parse(r.sealed.toString()), { who: a.who, seq: a.seq, first: a.first });
    assert.equal(r.node, a.who.startsWith('a') ? 'node-a' : 'node-b');
  });
  // each client's own appends were acknowledged in the order it sent them
  for (const who of ['a1', 'a2', 'b1', 'b2']) {
    const mine = acks.filter((a) => a.who === who);
    for (let i = 1; i < mine.length; i++) assert.ok(mine[i]!.seq > mine[i - 1]!.seq);
  }
});

test('group commit: appends issued together share one transaction; figures', async () => {
  await PgJournal.createLog(poolA, { name: 'group', origin: 'vault.example/group' });
  const j = new PgJournal(poolA, { node: 'node-a' });
  const firsts = await Promise.all(Array.from({ length: 200 }, (_, i) => j.append('group', 1, payload('g', i, -1))));
  assert.equal(j.stats.transactions, 1, 'the 200 appends queued in one tick went into one transaction');
  assert.deepEqual([...firsts].sort((x, y) => x - y), Array.from({ length: 200 }, (_, i) => i));
  assert.deepEqual(firsts, Array.from({ length: 200 }, (_, i) => i), 'in the order they were queued');

  // Informational figures (not asserted): 64 writers, each appending as soon as its last ack came.
  const k = new PgJournal(poolB, { node: 'node-b' });
  const body = Buffer.alloc(4096, 7);
  const t0 = performance.now();
  let acked = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (performance.now() - t0 < 2_000) {
        await k.append('group', 16, body);
        acked++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  console.log(`# group commit: ${acked} appends (16 entries, 4 KiB each) in ${s.toFixed(2)} s = ${(acked / s).toFixed(0)} appends/s, ${k.stats.transactions} transactions (${(acked / k.stats.transactions).toFixed(1)} appends per commit)`);
  assert.equal(k.stats.appends, acked);
  assert.ok(k.stats.transactions <= acked);
});

test('readFrom starts at the batch holding the index, stops at the end and at limit; trim keeps what is not integrated', async () => {
  await PgJournal.createLog(poolA, { name: 'rt', origin: 'vault.example/rt' });
  const j = new PgJournal(poolA, { node: 'n' });
  const sizes = [3, 1, 4, 1, 5, 9, 2, 6];
  for (let i = 0; i < sizes.length; i++) await j.append('rt', sizes[i]!, payload('rt', i, -1));
  // batches: [0,3) [3,4) [4,8) [8,9) [9,14) [14,23) [23,25) [25,31)
  const firstOf = (bs: Array<{ firstIndex: number }>): number[] => bs.map((b) => b.firstIndex);
  assert.deepEqual(firstOf(await j.readFrom('rt', 0)), [0, 3, 4, 8, 9, 14, 23, 25]);
  assert.deepEqual(firstOf(await j.readFrom('rt', 5)), [4, 8, 9, 14, 23, 25]);
  assert.deepEqual(firstOf(await j.readFrom('rt', 14, 2)), [14, 23]);
  assert.deepEqual(firstOf(await j.readFrom('rt', 30)), [25]);
  assert.deepEqual(await j.readFrom('rt', 31), []);
  assert.deepEqual(await j.readFrom('rt', 1_000_000), []);
  // integrated up to 10: [0,3) [3,4) [4,8) [8,9) go; [9,14) straddles and stays
  assert.equal(await j.trim('rt', 10), 4);
  assert.deepEqual(firstOf(await j.readFrom('rt', 10)), [9, 14, 23, 25]);
  assert.deepEqual(await j.readFrom('rt', 2), [], 'below what was trimmed: nothing (never a later batch)');
  assert.equal(await j.trim('rt', 10), 0);
  assert.equal(await j.trim('rt', 31), 4);
  assert.deepEqual(await j.readFrom('rt', 25), []);
  assert.equal(await j.head('rt'), 31, 'trimming never moves the head');
});

test('a failed transaction leaves no gap: a seal that throws rolls the index back', async () => {
  await PgJournal.createLog(poolA, { name: 'rb', origin: 'vault.example/rb' });
  const j = new PgJournal(poolA, { node: 'n' });
  assert.equal(await j.append('rb', 2, payload('rb', 0, -1)), 0);
  const bad = j.append('rb', 3, () => {
    throw new Error('sealing failed');
  });
  const sameGroup = j.append('rb', 1, payload('rb', 1, -1));
  await assert.rejects(bad, (e: unknown) => isCustodyError(e) && e.details?.outcome === 'not-committed');
  await assert.rejects(sameGroup, (e: unknown) => isCustodyError(e) && e.details?.outcome === 'not-committed');
  assert.equal(await j.head('rb'), 2);
  assert.equal(await j.append('rb', 1, payload('rb', 2, -1)), 2);
  assert.deepEqual((await j.readFrom('rb', 0)).map((b) => [b.firstIndex, b.count]), [[0, 2], [2, 1]]);
});

test('bad input: unknown or hostile log names, bad counts', async () => {
  const j = new PgJournal(poolA, { node: 'n' });
  await assert.rejects(j.append('nope', 1, Buffer.from('x')), (e: unknown) => isCustodyError(e, 'LOG_NOT_FOUND'));
  await assert.rejects(j.append("x'; DROP TABLE custody_journal; --", 1, Buffer.from('x')), (e: unknown) => isCustodyError(e, 'LOG_NOT_FOUND'));
  assert.ok((await poolA.query(`SELECT to_regclass('custody_journal') AS t`)).rows[0].t, 'the table is still there');
  for (const n of [0, -1, 1.5, Number.NaN, 2 ** 31]) {
    await assert.rejects(j.append('shared', n, Buffer.from('x')), (e: unknown) => isCustodyError(e, 'BAD_REQUEST'), String(n));
  }
  await assert.rejects(j.head('nope'), (e: unknown) => isCustodyError(e, 'LOG_NOT_FOUND'));
  await assert.rejects(PgJournal.createLog(poolA, { name: 'neg', origin: 'o/neg', nextIndex: -5 }), (e: unknown) => isCustodyError(e, 'BAD_REQUEST'));
  assert.equal(await j.head('shared'), 0, 'refused appends assigned nothing');
});

test('a log moved from an embedded vault continues at its size', async () => {
  await PgJournal.createLog(poolA, { name: 'moved', origin: 'vault.example/moved', nextIndex: 1234 });
  const j = new PgJournal(poolB, { node: 'n' });
  assert.equal(await j.append('moved', 2, Buffer.from('x')), 1234);
  assert.equal(await j.head('moved'), 1236);
});
