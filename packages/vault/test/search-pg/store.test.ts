/**
 * The PostgreSQL search store (search/pg-store.ts) answers the same search semantics cases as
 * the embedded SQLite index (support/search-cases.ts): the corpus is written into a real vault,
 * its entries are read back through each log's LogStore and indexed into a real PostgreSQL,
 * and the cases run against the PostgreSQL store. Plus: tokens like FTS5's, hostile query
 * text, the crash-safety check of the writer's position.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, bearer, type InProcVault } from '../support/inproc.js';
import { records, N, REGIONS, scoped, semanticsTests, type Page } from '../support/search-cases.js';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { readRows } from '../../src/search/follow.js';
import { PgSearchStore, IndexPositionMoved, ftsTokens, tsvectorOf } from '../../src/search/pg-store.js';
import type { IndexRow } from '../../src/search/store.js';
import { isCustodyError } from '../../src/errors.js';

let v: InProcVault;
let pgs: TestPostgres;
let pool: Pool;
let store: PgSearchStore;

async function search(params: Record<string, string>): Promise<Page> {
  const r = await store.query(params['q'] ?? '', {
    ...(params['limit'] ? { limit: Number(params['limit']) } : {}),
    ...(params['order'] ? { order: params['order'] as 'asc' | 'desc' } : {}),
    ...(params['cursor'] ? { cursor: params['cursor'] } : {}),
    ...(params['from'] ? { from: params['from'] } : {}),
    ...(params['to'] ? { to: params['to'] } : {}),
  });
  return r;
}

before(async () => {
  pgs = await startPostgres('search-pg-store');
  pool = createPool({ connectionString: pgs.url, max: 4 });
  await migrate(pool);
  store = new PgSearchStore(pool);
  v = await startInProc({ search: false });
  const r = await v.app.inject({
    method: 'POST',
    url: '/v1/logs/local/entries?source=cloudtrail',
    headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' },
    payload: records.map((x) => x.line).join('\n') + '\n',
  });
  assert.equal(r.statusCode, 200, r.body);
  const ans = r.json<{ stored: number; appends: Array<{ log: string; first: number; count: number }> }>();
  assert.equal(ans.stored, N);
  for (const region of REGIONS) {
    const a = ans.appends.find((x) => x.log === region)!;
    let next = a.first;
    for (const rec of records) if (rec.log === region) rec.index = next++;
    assert.equal(next - a.first, a.count);
  }
  for (const seq of v.vault.logs.values()) await seq.waitForCheckpoint(seq.sequencedSize);
  // Index every log the way the shared indexer does: batches from the recorded position.
  for (const [name, seq] of v.vault.logs) {
    let from = 0;
    while (from < seq.size) {
      // Whole bundles (256 entries), capped by bytes so batches also end inside a bundle.
      const { rows, next } = await readRows(seq.store, name, from, Math.min(seq.size, (Math.floor(from / 256) + 1) * 256), 20_000);
      await store.insert(name, from, next, rows);
      from = next;
    }
  }
});

after(async () => {
  await v?.close();
  await pool?.end();
  await pgs?.stop();
});

semanticsTests(search);

test('pg: a cursor is tied to its query; a bad query is BAD_QUERY with its position', async () => {
  const p = await search({ q: scoped('quartz'), limit: '2' });
  assert.ok(p.next);
  const others: Array<Record<string, string>> = [{ q: scoped('zebra') }, { q: scoped('quartz'), order: 'asc' }, { q: scoped('quartz'), from: '2024-03-01' }];
  for (const other of others) {
    await assert.rejects(search({ ...other, limit: '2', cursor: p.next! }), (e) => isCustodyError(e, 'BAD_REQUEST'));
  }
  await assert.rejects(search({ q: 'a', cursor: '%%%' }), (e) => isCustodyError(e, 'BAD_REQUEST'));
  await assert.rejects(search({ q: 'actor:' }), (e) => isCustodyError(e, 'BAD_QUERY') && typeof (e as { details?: { position?: number } }).details?.position === 'number');
});

test('pg: every indexed entry is there once; the progress per log equals the log size', async () => {
  const indexed = await store.indexed();
  for (const [name, seq] of v.vault.logs) assert.equal(indexed.get(name) ?? 0, seq.size, name);
  const dup = await pool.query('SELECT log, idx FROM custody_search_entries GROUP BY log, idx HAVING count(*) > 1');
  assert.equal(dup.rowCount, 0);
  const n = await pool.query<{ n: string }>('SELECT count(*) AS n FROM custody_search_entries');
  assert.equal(Number(n.rows[0]!.n), [...v.vault.logs.values()].reduce((s, x) => s + x.size, 0));
});

function row(log: string, index: number, text: string, extra: Partial<IndexRow> = {}): IndexRow {
  return { log, index, time: Date.UTC(2030, 0, 1) + index, received: Date.UTC(2030, 0, 1) + index, source: 'test.src', text, ...extra };
}

test('pg: tokens like FTS5 unicode61 (remove_diacritics 2); quotes, backslashes and SQL in queries are only text', async () => {
  assert.deepEqual(ftsTokens('Café DÉJÀ-vu 10.0.0.1 a@b.com'), ['cafe', 'deja', 'vu', '10', '0', '0', '1', 'a', 'b', 'com']);
  assert.equal(tsvectorOf(''), '');
  await store.insert('hostile', 0, 4, [
    row('hostile', 0, "Café it's O'Brien back\\slash"),
    row('hostile', 1, "'); DROP TABLE custody_search_entries; --", { actor: "O'Brien%_\\x" }),
    row('hostile', 2, 'plain words here', { actor: 'O_Brien' }),
    row('hostile', 3, ''),
  ]);
  const ids = async (q: string): Promise<number[]> => (await store.query(`source:test.src (${q})`, { limit: 1000, order: 'asc' })).hits.map((h) => h.index);
  assert.deepEqual(await ids('cafe'), [0]);
  assert.deepEqual(await ids('CAFÉ'), [0]);
  assert.deepEqual(await ids('"it\'s"'), [0]);
  assert.deepEqual(await ids('"o\'brien back"'), [0]);
  assert.deepEqual(await ids('back\\slash'), [0]);
  assert.deepEqual(await ids('"\'); DROP TABLE custody_search_entries; --"'), [1]);
  assert.deepEqual(await ids('drop*'), [1]);
  // LIKE wildcards in a prefix are literal: O_ matches "O_Brien" only, not "O'Brien…".
  assert.deepEqual(await ids('actor:O_*'), [2]);
  assert.deepEqual(await ids('actor:"o\'brien%_\\x"'), [1]);
  assert.deepEqual(await ids('actor:*'), [1, 2]);
  assert.deepEqual(await ids('NOT actor:o_brien'), [0, 1, 3]);
  assert.deepEqual(await ids('NOT here'), [0, 1, 3]);
  assert.deepEqual(await ids('"words here"'), [2]);
  assert.deepEqual(await ids('"here words"'), []);
  assert.deepEqual(await ids('"plain wor"*'), [2]);
  assert.deepEqual(await ids('log:HOSTILE'), [0, 1, 2, 3]);
  const left = await pool.query('SELECT 1 FROM custody_search_entries LIMIT 1');
  assert.equal(left.rowCount, 1);
});

test('pg: a writer whose position moved writes nothing (no entry twice, none skipped)', async () => {
  await store.insert('pos', 0, 2, [row('pos', 0, 'alpha'), row('pos', 1, 'beta')]);
  // A second indexer that still thinks the log is at 0.
  await assert.rejects(store.insert('pos', 0, 2, [row('pos', 0, 'alpha'), row('pos', 1, 'beta')]), (e) => e instanceof IndexPositionMoved);
  await assert.rejects(store.insert('pos', 5, 6, [row('pos', 5, 'gamma')]), (e) => e instanceof IndexPositionMoved);
  assert.equal((await store.indexed()).get('pos'), 2);
  const n = await pool.query<{ n: string }>("SELECT count(*) AS n FROM custody_search_entries WHERE log = 'pos'");
  assert.equal(Number(n.rows[0]!.n), 2);
  // Equal times: ids take the next free slot, all rows are there and in order.
  const same = Array.from({ length: 5 }, (_, i) => row('pos', 2 + i, `tie${i}`, { time: Date.UTC(2031, 0, 1), index: 2 + i }));
  await store.insert('pos', 2, 7, same);
  const got = (await store.query('log:pos', { order: 'asc', limit: 100 })).hits.map((h) => h.index);
  assert.deepEqual(got.sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
});

test('pg: ingest counts per bucket and source', async () => {
  const s = await store.ingestStats({ log: 'pos', bucket: 'hour', from: '2029-12-31', to: '2031-01-02' });
  assert.deepEqual(s.buckets, [{ t: '2030-01-01T00:00:00.000Z', source: 'test.src', count: 7 }]);
  const none = await store.ingestStats({ log: 'pos', bucket: 'hour', from: '2031-01-01', to: '2031-01-02' });
  assert.deepEqual(none.buckets, []);
});
