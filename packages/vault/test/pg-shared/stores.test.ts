/**
 * Stores a shared vault keeps in PostgreSQL (H12): the conformance suites of this folder run on
 * the node-local SQLite store and on a real PostgreSQL (two pools with two node ids standing for
 * two vault nodes; the schema from storage/pg/schema.ts's migrations). Then what only the shared
 * store must do: order two nodes claiming one key, take over a stale claim, keep keys unreadable.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isCustodyError } from '../../src/errors.js';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { DedupeStore } from '../../src/storage/db.js';
import { PgDedupeStore } from '../../src/storage/pg/dedupe.js';
import { dedupeStoreSuite, keyOf } from './dedupe-suite.js';
import { VaultDb } from '../../src/storage/db.js';
import { DetectorStore, localRuleStore } from '../../src/alarms/detectors/store.js';
import { PgRuleStore } from '../../src/storage/pg/rules.js';
import { ruleStoreSuite } from './rules-suite.js';
import { RetentionStore } from '../../src/lifecycle/store.js';
import { PgRetentionStore } from '../../src/storage/pg/retention.js';
import { retentionStoreSuite } from './retention-suite.js';

let pgs: TestPostgres;
let poolA: Pool;
let poolB: Pool;
const dirs: string[] = [];
const locals: Array<DedupeStore | VaultDb> = [];
const VAULT_KEY = randomBytes(32);

before(async () => {
  pgs = await startPostgres('pg-shared');
  poolA = createPool({ connectionString: pgs.url, max: 6 });
  poolB = createPool({ connectionString: pgs.url, max: 6 });
  await Promise.all([migrate(poolA), migrate(poolB)]);
});
after(async () => {
  for (const d of locals) d.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await poolA?.end();
  await poolB?.end();
  await pgs?.stop();
});

dedupeStoreSuite('dedupe.db', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-dedupe-'));
  dirs.push(dir);
  const key = { bytes: randomBytes(32), source: 'test key' };
  const a = new DedupeStore(join(dir, 'dedupe.db'), key);
  const b = new DedupeStore(join(dir, 'dedupe.db'), key);
  locals.push(a, b);
  return { a, b, crossNode: false };
});

ruleStoreSuite('custody.db', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-rules-'));
  dirs.push(dir);
  const key = { bytes: randomBytes(32), source: 'test key' };
  const one = new VaultDb(join(dir, 'custody.db'), key);
  const two = new VaultDb(join(dir, 'custody.db'), key);
  locals.push(one, two);
  const a = localRuleStore(new DetectorStore(one.sqlite));
  const b = localRuleStore(new DetectorStore(two.sqlite));
  return {
    a,
    b,
    writeRaw: async (id, body) => {
      one.sqlite.prepare("INSERT INTO detector_rules (id, body, origin, created_at, updated_at, updated_by) VALUES (?, ?, 'api', 'x', 'x', 'x')").run(id, body);
    },
  };
}, false);

ruleStoreSuite('PostgreSQL', async () => {
  await poolA.query('TRUNCATE custody_detector_rules');
  return {
    a: new PgRuleStore(poolA),
    b: new PgRuleStore(poolB),
    writeRaw: async (id, body) => {
      await poolB.query("INSERT INTO custody_detector_rules (id, body, origin, created_at, updated_at, updated_by) VALUES ($1, $2, 'api', 'x', 'x', 'x')", [id, body]);
    },
  };
}, true);

test('PostgreSQL rules: the shared store has a revision (the nodes poll it); the node-local one does not', () => {
  assert.equal(typeof new PgRuleStore(poolA).revision, 'function');
  assert.equal(localRuleStore({} as DetectorStore).revision, undefined);
});

/** custody.db in a fresh directory, opened twice. */
function twoVaultDbs(): [VaultDb, VaultDb] {
  const dir = mkdtempSync(join(tmpdir(), 'custody-ret-'));
  dirs.push(dir);
  const key = { bytes: randomBytes(32), source: 'test key' };
  const one = new VaultDb(join(dir, 'custody.db'), key);
  const two = new VaultDb(join(dir, 'custody.db'), key);
  locals.push(one, two);
  return [one, two];
}
const pgRetention: PgRetentionStore[] = [];
after(() => {
  for (const s of pgRetention) s.close();
});

retentionStoreSuite('custody.db', async () => {
  const [one, two] = twoVaultDbs();
  return { a: new RetentionStore(one.sqlite), b: new RetentionStore(two.sqlite), sync: async () => undefined };
});

/** Two nodes: each its own custody.db, one PostgreSQL. */
async function twoRetention(): Promise<{ a: PgRetentionStore; b: PgRetentionStore }> {
  await poolA.query('TRUNCATE custody_retention, custody_retention_settings');
  const [one] = twoVaultDbs();
  const [two] = twoVaultDbs();
  const a = await PgRetentionStore.open(one.sqlite, poolA, ['local']);
  const b = await PgRetentionStore.open(two.sqlite, poolB, ['local']);
  pgRetention.push(a, b);
  return { a, b };
}

retentionStoreSuite('PostgreSQL', async () => {
  const { a, b } = await twoRetention();
  return { a, b, sync: async () => void (await Promise.all([a.refresh(), b.refresh()])) };
});

test('PostgreSQL retention: two nodes extending one log at once end at the longer value; none is lost or lowered', async () => {
  const { a, b } = await twoRetention();
  const def = a.defaultDays;
  for (let round = 1; round <= 10; round++) {
    const base = def + round * 100;
    const [ra, rb] = await Promise.allSettled([a.extend('local', base + 50, 'alice', null), b.extend('local', base + 10, 'bob', null)]);
    assert.equal(ra.status, 'fulfilled', 'the longer one always succeeds');
    if (rb.status === 'rejected') assert.equal((rb.reason as { code: string }).code, 'RETENTION_SHORTENED');
    const now = await poolA.query<{ days: number }>("SELECT days FROM custody_retention WHERE log = 'local'");
    assert.equal(now.rows[0]!.days, base + 50);
  }
});

test('PostgreSQL retention: the database itself refuses a lower value and ignores deletes (SQL sent around the store)', async () => {
  const { a } = await twoRetention();
  await a.extend('local', a.defaultDays + 5, 'alice', null);
  await assert.rejects(poolB.query("UPDATE custody_retention SET days = 1 WHERE log = 'local'"), /only be extended/);
  await poolB.query("DELETE FROM custody_retention WHERE log = 'local'");
  await assert.rejects(poolB.query("UPDATE custody_retention SET days = 40000 WHERE log = 'local'"));
  const r = await poolA.query<{ days: number }>("SELECT days FROM custody_retention WHERE log = 'local'");
  assert.equal(r.rows[0]!.days, a.defaultDays + 5);
  // the first node's default is the vault's: a later node with another local default uses it
  const dir = twoVaultDbs()[0];
  new RetentionStore(dir.sqlite).setDefaultDays(9);
  const late = await PgRetentionStore.open(dir.sqlite, poolB, []);
  pgRetention.push(late);
  assert.equal(late.defaultDays, a.defaultDays);
  assert.throws(() => late.setDefaultDays(10), (e: unknown) => isCustodyError(e) && e.code === 'NOT_AVAILABLE');
});

function twoNodes(): { a: PgDedupeStore; b: PgDedupeStore } {
  return { a: new PgDedupeStore(poolA, 'node-a', VAULT_KEY), b: new PgDedupeStore(poolB, 'node-b', VAULT_KEY) };
}

dedupeStoreSuite('PostgreSQL', async () => {
  await poolA.query('TRUNCATE custody_dedupe');
  return { ...twoNodes(), crossNode: true };
});

test('PostgreSQL dedupe: two nodes claiming one key at the same moment: exactly one may store it; the other learns where it is', async () => {
  await poolA.query('TRUNCATE custody_dedupe');
  const { a, b } = twoNodes();
  for (let round = 0; round < 20; round++) {
    const k = keyOf(`race-${round}-${randomBytes(4).toString('hex')}`);
    const hex = k.toString('hex');
    const [ca, cb] = await Promise.all([
      a.claim([k]).then(async (c) => {
        const mine = !c.seen.has(hex) && !c.busy.has(hex);
        if (mine) await a.remember([{ key: k, log: 'local', index: round * 2 }]);
        return { c, mine };
      }),
      b.claim([k]).then(async (c) => {
        const mine = !c.seen.has(hex) && !c.busy.has(hex);
        if (mine) await b.remember([{ key: k, log: 'local', index: round * 2 + 1 }]);
        return { c, mine };
      }),
    ]);
    assert.equal(Number(ca.mine) + Number(cb.mine), 1, `round ${round}: one claim wins`);
    const loser = ca.mine ? cb : ca;
    assert.deepEqual(loser.c.seen.get(hex), { log: 'local', index: ca.mine ? round * 2 : round * 2 + 1 });
  }
});

test('PostgreSQL dedupe: two nodes claiming the same 200 keys in opposite orders do not deadlock; each key is claimed once', async () => {
  await poolA.query('TRUNCATE custody_dedupe');
  const { a, b } = twoNodes();
  for (let round = 0; round < 5; round++) {
    const ks = Array.from({ length: 200 }, (_, i) => keyOf(`order-${round}-${i}-${randomBytes(4).toString('hex')}`));
    const run = async (s: PgDedupeStore, list: Buffer[], base: number): Promise<Set<string>> => {
      const c = await s.claim(list);
      const mine = list.filter((k) => !c.seen.has(k.toString('hex')) && !c.busy.has(k.toString('hex')));
      await s.remember(mine.map((key, i) => ({ key, log: 'local', index: base + i })));
      return new Set(mine.map((k) => k.toString('hex')));
    };
    const [ma, mb] = await Promise.all([run(a, ks, 0), run(b, [...ks].reverse(), 1000)]);
    assert.equal(ma.size + mb.size, 200, `round ${round}`);
    for (const k of ma) assert.ok(!mb.has(k));
  }
});

test('PostgreSQL dedupe: a claim held by another node past the wait is "busy"; released, the waiting node gets it', async () => {
  await poolA.query('TRUNCATE custody_dedupe');
  const { a, b } = twoNodes();
  const wait = PgDedupeStore.CLAIM_WAIT_MS;
  PgDedupeStore.CLAIM_WAIT_MS = 300;
  try {
    const k = keyOf('held');
    await a.claim([k]);
    const t0 = Date.now();
    const held = await b.claim([k]);
    assert.ok(held.busy.has(k.toString('hex')));
    assert.equal(held.seen.size, 0);
    assert.ok(Date.now() - t0 >= 250, 'it waited for the other node');
    // b's release must not drop a's claim
    await b.release([k]);
    assert.ok((await b.claim([k])).busy.has(k.toString('hex')));
    PgDedupeStore.CLAIM_WAIT_MS = 5_000;
    const waiting = b.claim([k]);
    await new Promise((r) => setTimeout(r, 200));
    await a.release([k]); // a's append failed
    const got = await waiting;
    assert.equal(got.busy.size, 0);
    assert.equal(got.seen.size, 0, 'b may store it now');
    const row = await poolA.query<{ claimed_by: string }>('SELECT claimed_by FROM custody_dedupe');
    assert.deepEqual(row.rows.map((r) => r.claimed_by), ['node-b']);
  } finally {
    PgDedupeStore.CLAIM_WAIT_MS = wait;
  }
});

test('PostgreSQL dedupe: a claim left by a node that died is taken over once stale; a stored key never is', async () => {
  await poolA.query('TRUNCATE custody_dedupe');
  const { a, b } = twoNodes();
  const ttl = PgDedupeStore.CLAIM_TTL_MS;
  const wait = PgDedupeStore.CLAIM_WAIT_MS;
  PgDedupeStore.CLAIM_WAIT_MS = 100;
  try {
    const dead = keyOf('dead node');
    const stored = keyOf('stored long ago');
    await a.claim([dead, stored]);
    await a.remember([{ key: stored, log: 'local', index: 7 }]);
    await poolA.query("UPDATE custody_dedupe SET claimed_at = now() - interval '1 hour'");
    const c = await b.claim([dead, stored]);
    assert.equal(c.busy.size, 0, 'the stale claim was taken over');
    assert.deepEqual(c.seen.get(stored.toString('hex')), { log: 'local', index: 7 });
    assert.ok(!c.seen.has(dead.toString('hex')));
    const rows = await poolA.query<{ claimed_by: string; idx: string | null }>('SELECT claimed_by, idx FROM custody_dedupe ORDER BY idx NULLS FIRST');
    assert.deepEqual(rows.rows, [{ claimed_by: 'node-b', idx: null }, { claimed_by: 'node-a', idx: '7' }]);
    // a fresh claim is not stale
    PgDedupeStore.CLAIM_TTL_MS = 60_000;
    assert.ok((await a.claim([dead])).busy.has(dead.toString('hex')));
  } finally {
    PgDedupeStore.CLAIM_TTL_MS = ttl;
    PgDedupeStore.CLAIM_WAIT_MS = wait;
  }
});

test('PostgreSQL dedupe: the table holds keyed hashes, not the key hashes; another vault key does not see them', async () => {
  await poolA.query('TRUNCATE custody_dedupe');
  const { a } = twoNodes();
  const k = keyOf('0f5d2c2a-guessable-event-id');
  await a.claim([k]);
  await a.remember([{ key: k, log: 'local', index: 1 }]);
  const rows = await poolA.query<{ key: Buffer }>('SELECT key FROM custody_dedupe');
  assert.equal(rows.rows.length, 1);
  assert.equal(rows.rows[0]!.key.length, 16);
  assert.ok(!rows.rows[0]!.key.equals(k));
  const other = new PgDedupeStore(poolB, 'node-x', randomBytes(32));
  assert.equal((await other.claim([k])).seen.size, 0);
  // hostile: a row written around the store with a wrong key length is refused by the schema
  await assert.rejects(poolA.query("INSERT INTO custody_dedupe (key, claimed_by) VALUES ('\\x00'::bytea, 'x')"));
  await assert.rejects(poolA.query("INSERT INTO custody_dedupe (key, log, claimed_by) VALUES (decode(repeat('00', 16), 'hex'), 'local', 'x')"));
});
