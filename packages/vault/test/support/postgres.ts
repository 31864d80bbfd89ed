/**
 * A real PostgreSQL for tests: Debian's server, started by scripts/start-postgres.sh in a temp
 * directory (as the `postgres` system user when the tests run as root), on 127.0.0.1 with a
 * random port and password auth. A test file calls startPostgres() in `before` and stop() in
 * `after`; one server per file.
 *
 * With CUSTODY_TEST_PG_URL set (for example by .ci/run after the script started a server), a
 * test file gets a fresh database in that server instead, dropped at stop(). A test that must
 * restart the server passes { own: true } and always gets its own server.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { ROOT, runProcess } from './server.js';

const SCRIPT = join(ROOT, 'scripts', 'start-postgres.sh');

export interface TestPostgres {
  /** postgres://user:password@127.0.0.1:port/database */
  url: string;
  /** pg_ctl restart -m fast (only for a server this file started). */
  restart(): Promise<void>;
  /** Stops the server and deletes its files (or drops the database in a shared server). */
  stop(): Promise<void>;
}

const owned = new Set<string>();
process.once('exit', () => {
  for (const dir of owned) spawnSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' });
});

export async function startPostgres(label: string, opts: { own?: boolean } = {}): Promise<TestPostgres> {
  const shared = process.env.CUSTODY_TEST_PG_URL;
  if (shared && !opts.own) return sharedDatabase(shared, label);
  const dir = mkdtempSync(join(tmpdir(), `custody-test-pg-${label}-`));
  const start = await runProcess('bash', [SCRIPT, 'start', dir], process.env, 120_000);
  if (start.code !== 0) throw new Error(`start-postgres.sh failed (exit ${start.code}):\n${start.stderr.slice(-4000)}`);
  owned.add(dir);
  const url = /^CUSTODY_TEST_PG_URL=(.+)$/m.exec(start.stdout)?.[1];
  if (!url) throw new Error(`start-postgres.sh printed no URL:\n${start.stdout}`);
  return {
    url,
    async restart() {
      const r = await runProcess('bash', [SCRIPT, 'restart', dir], process.env, 120_000);
      if (r.code !== 0) throw new Error(`restarting PostgreSQL failed:\n${r.stderr}`);
    },
    async stop() {
      await runProcess('bash', [SCRIPT, 'stop', dir], process.env, 120_000);
      owned.delete(dir);
    },
  };
}

async function sharedDatabase(serverUrl: string, label: string): Promise<TestPostgres> {
  const db = `custody_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${db}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${db}`;
  return {
    url: u.toString(),
    async restart() {
      throw new Error('restart() needs startPostgres(label, { own: true })');
    },
    async stop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
