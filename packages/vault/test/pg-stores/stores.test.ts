/**
 * Approvals, admins' TOTP and alarms on both stores: the conformance suites of this folder run
 * on custody.db (a real encrypted SQLite file, two connections) and on a real PostgreSQL (two
 * pools standing for two vault nodes; the schema from storage/pg/schema.ts's migrations).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { isCustodyError } from '../../src/errors.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { createPool, type Pool } from '../../src/storage/pg/pool.js';
import { migrate } from '../../src/storage/pg/schema.js';
import { VaultDb } from '../../src/storage/db.js';
import { ApprovalStore } from '../../src/auth/approvals.js';
import { AdminTotp } from '../../src/auth/totp.js';
import { AlarmStore } from '../../src/alarms/store.js';
import { PgApprovalStore } from '../../src/storage/pg/approvals.js';
import { PgTotpStore } from '../../src/storage/pg/totp.js';
import { PgAlarmStore } from '../../src/storage/pg/alarms.js';
import { approvalStoreSuite } from './approvals-suite.js';
import { totpStoreSuite } from './totp-suite.js';
import { alarmStoreSuite } from './alarms-suite.js';

let pgs: TestPostgres;
let poolA: Pool;
let poolB: Pool;
const dirs: string[] = [];
const dbs: VaultDb[] = [];

before(async () => {
  pgs = await startPostgres('stores');
  poolA = createPool({ connectionString: pgs.url, max: 6 });
  poolB = createPool({ connectionString: pgs.url, max: 6 });
  await Promise.all([migrate(poolA), migrate(poolB)]);
});
after(async () => {
  for (const d of dbs) d.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await poolA?.end();
  await poolB?.end();
  await pgs?.stop();
});

/** custody.db in a fresh directory, opened twice (two connections on one encrypted file). */
function twoSqlite(): [VaultDb, VaultDb] {
  const dir = mkdtempSync(join(tmpdir(), 'custody-stores-'));
  dirs.push(dir);
  const key = { bytes: randomBytes(32), source: 'test key' };
  const one = new VaultDb(join(dir, 'custody.db'), key);
  const two = new VaultDb(join(dir, 'custody.db'), key);
  dbs.push(one, two);
  return [one, two];
}

/** Empties this concern's tables so every test starts from nothing. */
async function freshPg(): Promise<void> {
  await poolA.query('TRUNCATE custody_approvals, custody_admin_totp, custody_admin_totp_failures, custody_alarms RESTART IDENTITY');
}

const start = (): { now: number } => ({ now: Date.parse('2026-12-01T10:00:07.000Z') });

approvalStoreSuite('custody.db', async () => {
  const clock = start();
  const [one, two] = twoSqlite();
  return { a: new ApprovalStore(one.sqlite, () => clock.now), b: new ApprovalStore(two.sqlite, () => clock.now), clock };
});
approvalStoreSuite('PostgreSQL', async () => {
  await freshPg();
  const clock = start();
  return { a: new PgApprovalStore(poolA, () => clock.now), b: new PgApprovalStore(poolB, () => clock.now), clock };
});

const KEY = Buffer.alloc(32, 7);
const OTHER_KEY = Buffer.alloc(32, 8);

totpStoreSuite('custody.db', async () => {
  const clock = start();
  const [one, two] = twoSqlite();
  const node = new AdminTotp(one.sqlite, KEY, { now: () => clock.now });
  return { a: node, b: node, wrongKey: new AdminTotp(two.sqlite, OTHER_KEY, { now: () => clock.now }), clock };
});
totpStoreSuite('PostgreSQL', async () => {
  await freshPg();
  const clock = start();
  const now = (): number => clock.now;
  return {
    a: new AdminTotp(new PgTotpStore(poolA), KEY, { now }),
    b: new AdminTotp(new PgTotpStore(poolB), KEY, { now }),
    wrongKey: new AdminTotp(new PgTotpStore(poolB), OTHER_KEY, { now }),
    clock,
  };
});

alarmStoreSuite('custody.db', async () => {
  const [one, two] = twoSqlite();
  return { a: new AlarmStore(one.sqlite), b: new AlarmStore(two.sqlite) };
});
alarmStoreSuite('PostgreSQL', async () => {
  await freshPg();
  return { a: new PgAlarmStore(poolA), b: new PgAlarmStore(poolB) };
});

test('PostgreSQL unreachable: every store answers STORAGE_UNAVAILABLE (503, retry), never a crash or a wrong answer', async () => {
  const u = new URL(pgs.url);
  u.port = '1';
  const dead = createPool({ connectionString: u.toString(), connectTimeoutMs: 1_000 });
  try {
    const unavailable = (e: unknown): boolean => isCustodyError(e, 'STORAGE_UNAVAILABLE') && (e.details?.retryAfter as number) > 0 && !String(e.message).includes(u.password);
    const apr = new PgApprovalStore(dead);
    await assert.rejects(apr.decide('apr_x', 'approved', 'bob'), unavailable);
    await assert.rejects(apr.get('apr_x'), unavailable);
    const totp = new AdminTotp(new PgTotpStore(dead), KEY);
    await assert.rejects(totp.check('p_1', '123456'), unavailable, 'a code is refused, not accepted, when the store cannot say it is unused');
    const alarms = new PgAlarmStore(dead);
    await assert.rejects(alarms.record({ kind: 'auth', rule: 'r', severity: 'low', title: 't', details: {}, groupKey: 'k' }, new Date().toISOString(), new Date(0).toISOString()), unavailable);
    await assert.rejects(alarms.list({}), unavailable);
  } finally {
    await dead.end();
  }
});
