/**
 * A purge reaches the search index: the rows and full-text tokens of crypto-shredded entries
 * leave search.db (no query finds them, no byte of their unique words is left in the file),
 * the follower passes over shredded bundles instead of retrying them, and `custody reindex`
 * after a purge rebuilds without them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { openHarness, append, bearer, sleep, CTX, DAY } from './harness.js';
import { reindexDataDir } from '../../src/search/index.js';
import { openSearchDb } from '../../src/search/store.js';
import { dataDirDbKey } from '../../src/storage/sqlite.js';

const words = (tag: string, n: number): string[] => Array.from({ length: n }, (_, i) => JSON.stringify({ i, note: `${tag}word${i}x`, user: `${tag}user` }));

function searchFiles(dataDir: string): Buffer {
  const parts = ['search.db', 'search.db-wal'].map((f) => join(dataDir, f)).filter((f) => existsSync(f));
  return Buffer.concat(parts.map((f) => readFileSync(f)));
}

test('after a purge the index keeps nothing of the shredded entries, and reindex skips them', async (t) => {
  const h = await openHarness({ search: true, timing: { retentionBlobIdleMs: 0 } });
  let stopped = false;
  t.after(async () => {
    if (!stopped) await h.close();
  });
  const A = await append(h, words('oldzebra', 300));
  await sleep(30);
  const B = await append(h, words('newyak', 20));
  const total = 320;
  await h.search!.whenIndexed({ log: 'local', size: total, timeoutMs: 20_000 });
  const hits = async (q: string): Promise<number> => {
    const r = await h.app.inject({ method: 'GET', url: `/v1/search?q=${encodeURIComponent(q)}&limit=1000`, headers: bearer(h.tokens.auditor) });
    assert.equal(r.statusCode, 200, r.body);
    return r.json<{ hits: unknown[] }>().hits.length;
  };
  assert.equal(await hits('oldzebrauser'), 300);
  assert.equal(await hits('oldzebraword7x'), 1);

  const cutoff = (Date.parse(A.received) + Date.parse(B.received)) / 2;
  const r = await h.retention.purge('local', CTX, { now: cutoff + 365 * DAY });
  assert.deepEqual([r.from, r.to], [0, 256]);
  // The follower drops the rows of 0–255 when the purge is recorded.
  const t0 = Date.now();
  while ((await hits('oldzebrauser')) !== 44 && Date.now() - t0 < 10_000) await sleep(50);
  assert.equal(await hits('oldzebrauser'), 44, 'entries 256–299 of the old batch stay');
  assert.equal(await hits('oldzebraword7x'), 0);
  assert.equal(await hits('oldzebraword280x'), 1);
  assert.equal(await hits('newyakuser'), 20);
  // Let the follower's write reach the file; then no unique word of a shredded record is left in
  // the full-text index's vocabulary (search.db is encrypted, so it is read with its key; the
  // follower merged the FTS segments, so deleted rows left no tombstoned terms behind).
  await sleep(200);
  const db = openSearchDb(join(h.dataDir, 'search.db'), { readonly: true, key: dataDirDbKey(h.vault.keyring, h.dataDir, 'search') });
  try {
    db.exec("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, 'fts', 'row')");
    const has = db.prepare('SELECT doc FROM temp.vocab WHERE term = ?').pluck();
    for (const w of ['oldzebraword7x', 'oldzebraword100x', 'oldzebraword255x']) assert.equal(has.get(w), undefined, `${w} is gone from the index`);
    assert.equal(has.get('oldzebraword280x'), 1, 'a word of a kept entry is still there');
  } finally {
    db.close();
  }
  assert.equal(searchFiles(h.dataDir).indexOf('oldzebraword280x'), -1, 'and search.db holds no word in plaintext at all');

  // More entries after the purge are still indexed (the follower did not stall on bundle 0).
  await append(h, words('later', 5));
  await h.search!.whenIndexed({ log: 'local', size: total + 5, timeoutMs: 20_000 });
  assert.equal(await hits('lateruser'), 5);

  // Reindex from scratch: shredded bundles are passed over.
  await h.stop();
  stopped = true;
  const res = await reindexDataDir(h.dataDir, {});
  assert.ok(res, 'reindex ran');
  const again = await openHarness({ dataDir: h.dataDir, search: true });
  t.after(() => again.close());
  await again.search!.whenIndexed({ log: 'local', size: total + 5, timeoutMs: 20_000 });
  const r2 = await again.app.inject({ method: 'GET', url: `/v1/search?q=oldzebrauser&limit=1000`, headers: bearer(again.tokens.auditor) });
  assert.equal(r2.json<{ hits: unknown[] }>().hits.length, 44);
});
