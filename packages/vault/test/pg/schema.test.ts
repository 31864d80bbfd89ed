/** The shared PostgreSQL schema: migrations run once, even when several nodes start at once. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate, schemaVersion, MIGRATIONS, type Migration } from '../../src/storage/pg/schema.js';
import { isCustodyError } from '../../src/errors.js';

let pgs: TestPostgres;
const pools: Pool[] = [];
const pool = (): Pool => {
  const p = createPool({ connectionString: pgs.url, max: 4 });
  pools.push(p);
  return p;
};

before(async () => {
  pgs = await startPostgres('schema');
});
after(async () => {
  for (const p of pools) await p.end().catch(() => undefined);
  await pgs?.stop();
});

test('four nodes migrating at once apply each migration exactly once; a second run does nothing', async () => {
  const nodes = [pool(), pool(), pool(), pool()];
  assert.equal(await schemaVersion(nodes[0]!), 0);
  const results = await Promise.all(nodes.map((p) => migrate(p)));
  const applied = results.flat();
  assert.deepEqual(applied, MIGRATIONS.map((m) => m.version), `applied: ${JSON.stringify(results)}`);
  assert.equal(results.filter((r) => r.length > 0).length, 1, 'one node did the work');
  assert.equal(await schemaVersion(nodes[1]!), MIGRATIONS.at(-1)!.version);
  assert.deepEqual(await migrate(nodes[2]!), []);
  const ledger = await nodes[0]!.query('SELECT version FROM custody_schema_migrations ORDER BY version');
  assert.deepEqual(ledger.rows.map((r: { version: number }) => r.version), MIGRATIONS.map((m) => m.version));
  const tables = await nodes[0]!.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'custody_%' ORDER BY 1`);
  assert.deepEqual(
    tables.rows.map((r: { table_name: string }) => r.table_name),
    [
      'custody_admin_totp', 'custody_admin_totp_failures', 'custody_alarms', 'custody_approvals', // 200-202: auth/approvals.ts, auth/totp.ts, alarms/store.ts
      'custody_dedupe', 'custody_detector_rules', // 400-401: storage/pg/dedupe.ts, storage/pg/rules.ts
      'custody_journal', 'custody_log_heads', 'custody_log_state', 'custody_logs', 'custody_nodes',
      'custody_notifier_configs', 'custody_notifier_revision', // 600: storage/pg/notifiers.ts
      'custody_principals', // 100
      'custody_retention', 'custody_retention_settings', // 402: storage/pg/retention.ts
      'custody_schema_migrations',
      'custody_search_entries', 'custody_search_logs', // 300: search/pg-store.ts
      'custody_vault', // 100
    ],
  );
});

test('a failing migration rolls back entirely and is not recorded; the next start retries it', async () => {
  const p = pool();
  const bad: Migration[] = [...MIGRATIONS, { version: 900, name: 'half of it fails', sql: 'CREATE TABLE custody_half (x int); SELECT 1/0;' }];
  await assert.rejects(migrate(p, bad), (e: unknown) => isCustodyError(e, 'INTERNAL'));
  assert.equal(await schemaVersion(p), MIGRATIONS.at(-1)!.version);
  const half = await p.query(`SELECT to_regclass('custody_half') AS t`);
  assert.equal(half.rows[0].t, null, 'the table created before the failure was rolled back');
  const good: Migration[] = [...MIGRATIONS, { version: 900, name: 'fixed', sql: 'CREATE TABLE custody_half (x int);' }];
  assert.deepEqual(await migrate(p, good), [900]);
  // a database migrated by a newer vault is refused by an older one
  await assert.rejects(migrate(p, MIGRATIONS), (e: unknown) => isCustodyError(e, 'CONFIG'));
});

test('an unreachable server is STORAGE_UNAVAILABLE, not a crash', async () => {
  const u = new URL(pgs.url);
  u.port = '1';
  const p = createPool({ connectionString: u.toString(), connectTimeoutMs: 1_000 });
  pools.push(p);
  await assert.rejects(migrate(p), (e: unknown) => isCustodyError(e, 'STORAGE_UNAVAILABLE') && (e.details?.retryAfter as number) > 0);
});

test('a wrong password is refused without the password in the message', async () => {
  const u = new URL(pgs.url);
  u.password = 'not-the-password-xyz';
  const p = createPool({ connectionString: u.toString() });
  pools.push(p);
  await assert.rejects(migrate(p), (e: unknown) => {
    assert.ok(isCustodyError(e, 'CONFIG'), String(e));
    assert.doesNotMatch(e.message, /not-the-password-xyz/);
    assert.doesNotMatch(e.message, new RegExp(new URL(pgs.url).password));
    return true;
  });
});
