/**
 * Notifier configuration stores (alarms/notify/store.ts NotifierStoreApi): one suite on
 * custody.db (NotifierStore through localNotifierStore) and on a real PostgreSQL
 * (storage/pg/notifiers.ts, two pools standing for two nodes). Then what only the shared store
 * does: secrets sealed at rest in the row, a revision that moves on every change.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { NotifierStore, localNotifierStore, type NotifierStoreApi } from '../../src/alarms/notify/store.js';
import { PgNotifierStore } from '../../src/storage/pg/notifiers.js';
import { SecretBox } from '../../src/alarms/notify/secrets.js';
import type { Notifier } from '../../src/alarms/notify/types.js';

let pgs: TestPostgres;
let poolA: Pool;
let poolB: Pool;
const dirs: string[] = [];
const dbs: Database.Database[] = [];
const SECRET = 'hmac-secret-' + randomBytes(8).toString('hex');

before(async () => {
  pgs = await startPostgres('pg-shared-notifiers');
  poolA = createPool({ connectionString: pgs.url, max: 4 });
  poolB = createPool({ connectionString: pgs.url, max: 4 });
  await Promise.all([migrate(poolA), migrate(poolB)]);
});
after(async () => {
  for (const d of dbs) d.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await poolA?.end();
  await poolB?.end();
  await pgs?.stop();
});

function webhook(id: string, source: Notifier['source'] = 'api', secret = SECRET): Notifier {
  return { id, config: { type: 'webhook', url: `https://hooks.example.org/${id}`, secret, minSeverity: 'low' }, source, createdAt: new Date().toISOString(), createdBy: 'alice' };
}

interface Fixture {
  a: NotifierStoreApi;
  b: NotifierStoreApi;
  /** The stored rows as the storage holds them (to check what is at rest). */
  raw(): Promise<string>;
}

function suite(name: string, make: () => Promise<Fixture>): void {
  test(`notifier store (${name}): add on one handle, list/get on the other, remove`, async () => {
    const { a, b } = await make();
    assert.deepEqual(await b.list(), []);
    await a.add(webhook('ntf_aaaa000000000001'));
    await a.add(webhook('ntf_aaaa000000000002'));
    const got = await b.list();
    assert.deepEqual(got.map((n) => n.id), ['ntf_aaaa000000000001', 'ntf_aaaa000000000002']);
    assert.equal(got[0]!.config.type, 'webhook');
    assert.equal(got[0]!.createdBy, 'alice');
    assert.equal(got[0]!.broken, undefined);
    assert.equal(await b.sourceOf('ntf_aaaa000000000001'), 'api');
    assert.equal(await b.sourceOf('ntf_nope'), undefined);
    assert.equal(await b.remove('ntf_aaaa000000000001'), true);
    assert.equal(await a.remove('ntf_aaaa000000000001'), false, 'removing twice says nothing was removed');
    assert.deepEqual((await a.list()).map((n) => n.id), ['ntf_aaaa000000000002']);
  });

  test(`notifier store (${name}): secrets open for the hub only, and are sealed at rest`, async () => {
    const { a, b, raw } = await make();
    await a.add(webhook('ntf_bbbb000000000001'));
    const [n] = await b.list();
    assert.equal((n!.config as { secret: string }).secret, SECRET, 'the hub gets the secret back to sign with');
    const rows = await raw();
    assert.ok(rows.includes('ntf_bbbb000000000001') && rows.includes('webhook'), 'the row is there');
    assert.ok(!rows.includes(SECRET), 'no HMAC secret in the clear in the stored row');
    assert.ok(!rows.includes('hooks.example.org'), 'nor the webhook URL (a secret field: it may carry a token)');
  });

  test(`notifier store (${name}): the same id twice is refused`, async () => {
    const { a, b } = await make();
    await a.add(webhook('ntf_cccc000000000001'));
    await assert.rejects(b.add(webhook('ntf_cccc000000000001')));
    assert.equal((await a.list()).length, 1);
  });

  test(`notifier store (${name}): replaceFile replaces only the file notifiers; fingerprints are the same on both handles`, async () => {
    const { a, b } = await make();
    await a.add(webhook('ntf_dddd000000000001'));
    await a.replaceFile([webhook('ntf_file-one', 'file'), webhook('ntf_file-two', 'file')]);
    await b.replaceFile([webhook('ntf_file-two', 'file', 'another-secret-of-16+')]);
    assert.deepEqual((await a.list()).map((n) => n.id).sort(), ['ntf_dddd000000000001', 'ntf_file-two']);
    const state = await a.fileState();
    assert.deepEqual([...state.keys()], ['ntf_file-two']);
    assert.equal(state.get('ntf_file-two'), b.fingerprint(webhook('ntf_file-two', 'file', 'another-secret-of-16+').config));
    assert.notEqual(state.get('ntf_file-two'), a.fingerprint(webhook('ntf_file-two').config), 'the fingerprint covers the secret');
  });

  test(`notifier store (${name}): a row whose seal was tampered with is listed as broken, not dropped`, async () => {
    const { a, b } = await make();
    await a.add(webhook('ntf_eeee000000000001'));
    await a.add(webhook('ntf_eeee000000000002'));
    // Swap: a sealed value is bound to its notifier id, so moving it to another row fails to open.
    await tamper(name);
    const got = await b.list();
    assert.equal(got.length, 2);
    assert.ok(got.every((n) => typeof n.broken === 'string'), 'both rows are reported broken');
    assert.ok(got.every((n) => (n.config as { secret?: string }).secret === undefined), 'no secret from a broken seal');
  });
}

let currentSqlite: Database.Database | undefined;
async function tamper(name: string): Promise<void> {
  if (name === 'PostgreSQL') {
    await poolA.query(`UPDATE custody_notifier_configs SET secrets = CASE id WHEN 'ntf_eeee000000000001' THEN (SELECT secrets FROM custody_notifier_configs WHERE id = 'ntf_eeee000000000002') ELSE (SELECT secrets FROM custody_notifier_configs WHERE id = 'ntf_eeee000000000001') END`);
  } else {
    const rows = currentSqlite!.prepare('SELECT id, secrets FROM notifier_configs ORDER BY id').all() as Array<{ id: string; secrets: string }>;
    currentSqlite!.prepare('UPDATE notifier_configs SET secrets = ? WHERE id = ?').run(rows[1]!.secrets, rows[0]!.id);
    currentSqlite!.prepare('UPDATE notifier_configs SET secrets = ? WHERE id = ?').run(rows[0]!.secrets, rows[1]!.id);
  }
}

suite('custody.db', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-notifiers-'));
  dirs.push(dir);
  const key = randomBytes(32);
  const one = new Database(join(dir, 'custody.db'));
  const two = new Database(join(dir, 'custody.db'));
  dbs.push(one, two);
  currentSqlite = one;
  return {
    a: localNotifierStore(new NotifierStore(one, new SecretBox(key))),
    b: localNotifierStore(new NotifierStore(two, new SecretBox(key))),
    raw: async () => JSON.stringify(one.prepare('SELECT * FROM notifier_configs').all()),
  };
});

suite('PostgreSQL', async () => {
  await poolA.query('TRUNCATE custody_notifier_configs');
  const key = randomBytes(32);
  return {
    a: new PgNotifierStore(poolA, new SecretBox(key)),
    b: new PgNotifierStore(poolB, new SecretBox(key)),
    raw: async () => JSON.stringify((await poolB.query('SELECT * FROM custody_notifier_configs')).rows),
  };
});

test('PostgreSQL notifiers: the revision moves on add, remove and replaceFile, and not on reads or a failed add', async () => {
  const key = randomBytes(32);
  const a = new PgNotifierStore(poolA, new SecretBox(key));
  const b = new PgNotifierStore(poolB, new SecretBox(key));
  const r0 = BigInt(await b.revision());
  await a.add(webhook('ntf_ffff000000000001'));
  const r1 = BigInt(await b.revision());
  assert.ok(r1 > r0);
  await a.list();
  assert.equal(BigInt(await b.revision()), r1, 'a read does not move it');
  await assert.rejects(a.add(webhook('ntf_ffff000000000001')));
  assert.equal(BigInt(await b.revision()), r1, 'a failed write does not move it');
  await a.remove('ntf_ffff000000000001');
  const r2 = BigInt(await b.revision());
  assert.ok(r2 > r1);
  await a.replaceFile([]);
  assert.ok(BigInt(await b.revision()) > r2);
  assert.equal(localNotifierStore({} as NotifierStore).revision, undefined, 'the node-local store has none: the hub does not poll');
});

test('PostgreSQL notifiers: a node with another vault key cannot open the secrets', async () => {
  await poolA.query('TRUNCATE custody_notifier_configs');
  await new PgNotifierStore(poolA, new SecretBox(randomBytes(32))).add(webhook('ntf_gggg000000000001'));
  const [n] = await new PgNotifierStore(poolB, new SecretBox(randomBytes(32))).list();
  assert.ok(n!.broken);
  assert.equal((n!.config as { secret?: string }).secret, undefined);
});
