/**
 * The index file on its own: rows that want the same time-ordered id all get one (and their
 * words go with them), a crash between batches never indexes anything twice, and a search file
 * of another vault, another schema or ahead of its logs is rebuilt.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IndexWriter, SearchReader, createSchema, openSearchDb, prepareSearchFile, type IndexRow } from '../src/search/index.js';

function row(log: string, index: number, time: number, text: string): IndexRow {
  return { log, index, time, received: time, source: 'text', text };
}

test('rows that want the same id (same millisecond, same low index bits) each get their own, with their words', () => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-search-store-'));
  try {
    const path = join(dir, 'search.db');
    const db = openSearchDb(path);
    createSchema(db, 'v1');
    const w = new IndexWriter(db);
    const t = Date.UTC(2024, 0, 1);
    // Index 0 and 65536 share their low 16 bits; three logs' entry 0 share everything but the log.
    const rows = [row('a', 0, t, 'alpha one'), row('b', 0, t, 'alpha two'), row('c', 0, t, 'alpha three'), row('a', 65536, t, 'alpha four'), row('a', 1, t + 1, 'later')];
    w.insert(rows.slice(0, 2), [['a', 1], ['b', 1]]);
    w.insert(rows.slice(2), [['a', 65537], ['c', 1]]);
    db.close();
    const r = new SearchReader(path);
    try {
      const all = r.query('alpha', { limit: 100, order: 'asc' });
      assert.deepEqual(all.hits.map((h) => `${h.log}:${h.index}`).sort(), ['a:0', 'a:65536', 'b:0', 'c:0']);
      assert.equal(all.total, 4);
      for (const [word, id] of [['one', 'a:0'], ['two', 'b:0'], ['three', 'c:0'], ['four', 'a:65536']]) {
        assert.deepEqual(r.query(word!, {}).hits.map((h) => `${h.log}:${h.index}`), [id], `${word} stays with its row`);
      }
      // All four share the millisecond: a range of exactly that millisecond holds them all, and the later one after.
      const at = new Date(t).toISOString();
      assert.equal(r.query(`time:[${at} TO ${at}]`, {}).total, 4);
      assert.deepEqual(r.query('', { order: 'desc', limit: 1 }).hits.map((h) => `${h.log}:${h.index}`), ['a:1']);
      assert.deepEqual([...r.indexed()].sort(), [['a', 65537], ['b', 1], ['c', 1]]);
    } finally {
      r.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a search file of another vault, of another schema, or ahead of its log is rebuilt; a good one is kept', () => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-search-store-'));
  try {
    const path = join(dir, 'search.db');
    const first = prepareSearchFile(path, 'vault-1', new Map([['local', 5]]));
    assert.match(first.created!, /no search index/);
    new IndexWriter(first.db).insert([row('local', 0, 1, 'x'), row('local', 1, 2, 'y')], [['local', 2]]);
    first.db.close();
    const again = prepareSearchFile(path, 'vault-1', new Map([['local', 5]]));
    assert.equal(again.created, null, 'kept');
    again.db.close();
    const ahead = prepareSearchFile(path, 'vault-1', new Map([['local', 1]]));
    assert.match(ahead.created!, /holds 2 entries of log "local", which has 1/);
    new IndexWriter(ahead.db).insert([], [['local', 1]]);
    ahead.db.close();
    const other = prepareSearchFile(path, 'vault-2', new Map([['local', 1]]));
    assert.match(other.created!, /another vault/);
    other.db.exec("UPDATE meta SET value = '0' WHERE key = 'version'");
    other.db.close();
    const old = prepareSearchFile(path, 'vault-2', new Map([['local', 1]]));
    assert.match(old.created!, /schema version 0/);
    old.db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
