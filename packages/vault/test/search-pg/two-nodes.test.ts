/**
 * Search on a shared vault, two real `custody serve` nodes on one PostgreSQL and one Ceph S3
 * bucket: entries appended on one node are found by a search on the other within seconds, and
 * when the indexing node is killed (SIGKILL, mid-ingest) the other one takes over the indexing
 * from the recorded position — every entry indexed exactly once, none skipped.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { startCeph, type CephS3 } from '../support/ceph.js';
import { cleanup, waitFor, type Tokens } from '../support/server.js';
import { Node, post, getJson } from '../multinode/support.js';

let pgs: TestPostgres;
let ceph: CephS3;
let a: Node;
let b: Node;
let tokens: Tokens;

interface Page {
  hits: Array<{ log: string; index: number }>;
  total: number;
  lag: Record<string, number>;
}

function lines(word: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => JSON.stringify({ id: `${word}-${i}-${randomBytes(4).toString('hex')}`, action: 'user.login', user: 'alice', note: `${word} number${i}` }));
}

async function searchOn(node: Node, q: string): Promise<Page> {
  const r = await getJson<Page>(node.url, tokens.auditor, `/v1/search?${new URLSearchParams({ q, limit: '1000' })}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function db<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: pgs.url });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}


/** No duplicates and no gaps: every log's indexed count is its published size, and its rows are exactly the entries 0 … size-1. */
async function exactlyOnce(): Promise<void> {
  await waitFor('every log fully indexed', async () => {
    const rows = await db<{ log: string; size: string; indexed: string | null }>('SELECT s.log, s.size, x.indexed FROM custody_log_state s LEFT JOIN custody_search_logs x ON x.log = s.log');
    return rows.every((r) => Number(r.indexed ?? 0) === Number(r.size)) ? true : undefined;
  }, 30_000, 200);
  const dup = await db('SELECT log, idx FROM custody_search_entries GROUP BY log, idx HAVING count(*) > 1');
  assert.deepEqual(dup, []);
  const per = await db<{ log: string; n: string; lo: string; hi: string; size: string }>(
    'SELECT e.log, count(*) AS n, min(e.idx) AS lo, max(e.idx) AS hi, s.size FROM custody_search_entries e JOIN custody_log_state s ON s.log = e.log GROUP BY e.log, s.size',
  );
  assert.ok(per.some((r) => r.log === 'local'));
  for (const r of per) {
    assert.equal(Number(r.n), Number(r.size), `${r.log}: one row per entry`);
    assert.equal(Number(r.lo), 0);
    assert.equal(Number(r.hi), Number(r.size) - 1);
  }
}

/**
 * Whether a node indexes now, from its log lines (read as they come: Node keeps only the last
 * 20 KB of its output, and request logs would push the line out).
 */
const indexing = new Map<Node, boolean>();
function watch(n: Node): void {
  let tail = '';
  const scan = (s: string): void => {
    const text = tail + s;
    for (const m of text.matchAll(/this node indexes the logs now|this node stopped indexing/g)) indexing.set(n, m[0].startsWith('this node indexes'));
    tail = text.slice(-200);
  };
  indexing.set(n, false);
  scan(n.out);
  n.proc.stdout!.on('data', (s: string) => scan(s));
}
const indexes = (n: Node): boolean => indexing.get(n) === true;

async function lockHolders(): Promise<number> {
  return Number((await db<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = ${0x43555358} AND objid = 0 AND granted`))[0]!.n);
}

before(async () => {
  pgs = await startPostgres('search-pg-two', { own: true });
  ceph = await startCeph('search-pg-two');
  const bucket = await ceph.lockedBucket('search-pg-two');
  const common = { bucket, pgUrl: pgs.url, awsEnv: ceph.env, search: true, env: { CUSTODY_LOG_LEVEL: 'info' } };
  a = new Node({ ...common, nodeId: 'node-a' });
  b = new Node({ ...common, nodeId: 'node-b' });
  await a.start();
  watch(a);
  await b.start();
  watch(b);
  tokens = a.tokens();
});

after(async () => {
  await a?.stop().catch(() => undefined);
  await b?.stop().catch(() => undefined);
  await pgs?.stop();
  await ceph?.stop();
  await cleanup();
});

test('entries appended on node A are found by a search on node B within a few seconds', async () => {
  const r = await post(a.url, tokens.writer, lines('phaseone', 300));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const t0 = Date.now();
  const page = await waitFor('node B finds the 300 entries appended on node A', async () => {
    const p = await searchOn(b, 'phaseone');
    return p.total === 300 ? p : undefined;
  }, 15_000, 100);
  assert.ok(Date.now() - t0 < 15_000);
  assert.equal(new Set(page.hits.map((h) => `${h.log}:${h.index}`)).size, 300);
  // Both nodes give the same answer, and a query that should miss misses on both.
  assert.equal((await searchOn(a, 'phaseone')).total, 300);
  assert.equal((await searchOn(b, 'phaseone -number7')).total, 299);
  assert.equal((await searchOn(a, 'nosuchword')).total, 0);
  // A bad query is a 400 with a position on a shared vault too.
  const bad = await getJson<{ error: { code: string; details: { position: number } } }>(b.url, tokens.auditor, `/v1/search?q=${encodeURIComponent('actor:')}`);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'BAD_QUERY');
  // Exactly one node indexes: one session holds the indexer lock, one node says it indexes.
  assert.equal(await lockHolders(), 1);
  assert.equal(Number(indexes(a)) + Number(indexes(b)), 1, 'one indexer');
});

test('kill the indexing node mid-ingest: the other continues, no entry twice, none skipped', async (t) => {
  const indexer = indexes(a) ? a : b;
  const other = indexer === a ? b : a;
  let acked = 0;
  // The node's process is unref'ed: keep this test's event loop alive while it exits.
  const keep = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keep));
  for (let round = 0; round < 12; round++) {
    if (round === 3) await indexer.kill();
    const r = await post(other.url, tokens.writer, lines('phasetwo', 50));
    if (r.status === 200) acked += 50;
  }
  assert.ok(acked >= 400, `most appends on the surviving node were acknowledged (${acked})`);
  await waitFor('the surviving node indexes every entry appended', async () => {
    const p = await searchOn(other, 'phasetwo');
    return p.total === acked ? p : undefined;
  }, 30_000, 200);
  assert.ok(indexes(other), 'the surviving node took over the indexing');
  await exactlyOnce();
});

test('a restarted node waits; a clean stop of the indexer hands the indexing over at once', async (t) => {
  const keep = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keep));
  const indexer = a.running ? a : b;
  const back = indexer === a ? b : a;
  assert.ok(!back.running);
  await back.start();
  watch(back);
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(!indexes(back), 'the restarted node does not index while the other holds the lock');
  assert.equal(await lockHolders(), 1);
  await indexer.stop();
  const r = await post(back.url, tokens.writer, lines('phasethree', 100));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await waitFor('the restarted node indexes the new entries', async () => ((await searchOn(back, 'phasethree')).total === 100 ? true : undefined), 30_000, 200);
  assert.ok(indexes(back));
  await exactlyOnce();
});
