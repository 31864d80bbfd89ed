/**
 * Baseline A: the do-it-yourself tamper-evident log in PostgreSQL. A throwaway server
 * (initdb into a temp dir, run as a non-root user, unix socket only, durability settings left
 * at their defaults: fsync=on, synchronous_commit=on, full_page_writes=on) holds one table
 * whose BEFORE INSERT trigger links every row to the previous one:
 *
 *   hash = sha256(prev_hash || record)
 *
 * Rows are serialised by a transaction-scoped advisory lock taken in the trigger (held until
 * COMMIT, so the next writer's trigger sees the committed last row), and the trigger assigns
 * the id itself after taking the lock, so id order is chain order. Each batch is one
 * multi-row INSERT (one prepared statement, one parameter per record) in its own
 * transaction; the INSERT returns once COMMIT is durable.
 */
import { readFileSync, readdirSync, existsSync, appendFileSync, chownSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import type { BatchTemplate } from './records.js';
import { stampLines } from './records.js';
import { onCleanup, tempDir, dropTempDir, freePort, sh, sleep, percentile, clockTicks, cpuSnapshot, busyCores, type CpuSnapshot } from './util.js';

export type PgRecordType = 'jsonb' | 'text';
/** How the trigger serialises the chain: an advisory lock + the last row, or a one-row head table read FOR UPDATE and updated per row. */
export type PgChainMode = 'lock' | 'head';

export interface PgOptions {
  writers: number;
  warmupS: number;
  durationS: number;
  templates: BatchTemplate[][];
  recordType: PgRecordType;
  chain: PgChainMode;
  /** Memory and WAL sizing only (durability settings stay at their defaults). */
  tune: boolean;
}

export interface PgResult {
  version: string;
  recordType: PgRecordType;
  chain: PgChainMode;
  settings: Record<string, string>;
  entries: number;
  batches: number;
  bytes: number;
  seconds: number;
  entriesPerSec: number;
  mbPerSec: number;
  totalRows: number;
  commitMs: { p50: number; p99: number };
  chainOk: boolean;
  chainDetail: string;
  serverCpuCores: number;
  clientCpuCores: number;
  otherCpuCores: number;
}

/** The newest Debian PostgreSQL server binaries, or null. */
export function findPgBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : null;
}

/** PostgreSQL refuses to run as root: pick a system user to run it as. */
function pgUser(): { name: string; uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  for (const name of ['postgres', 'nobody']) {
    const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
    if (r.status === 0 && g.status === 0) return { name, uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
  }
  throw new Error('running as root and neither a "postgres" nor a "nobody" user exists to run PostgreSQL as');
}

/** CPU seconds of the postmaster and all its children (the backends). */
function pgCpuSeconds(postmaster: number): number {
  let ticks = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pid = Number(d);
      const ppid = Number(f[1]);
      if (pid === postmaster || ppid === postmaster) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* process ended */
    }
  }
  return ticks / clockTicks();
}

const GENESIS = '\\x' + '00'.repeat(32);

function schema(t: PgRecordType, mode: PgChainMode): string {
  const bytes = t === 'jsonb' ? "convert_to(NEW.record::text, 'UTF8')" : "convert_to(NEW.record, 'UTF8')";
  const table = `
CREATE SEQUENCE chain_seq;
CREATE TABLE chain (
  id        bigint PRIMARY KEY,      -- assigned by the trigger under the chain lock (chain order)
  record    ${t} NOT NULL,
  prev_hash bytea NOT NULL,
  hash      bytea NOT NULL
);`;
  if (mode === 'head') {
    return `${table}
CREATE TABLE chain_head (id int PRIMARY KEY, seq bigint NOT NULL, hash bytea NOT NULL);
INSERT INTO chain_head VALUES (1, 0, '${GENESIS}'::bytea);
CREATE FUNCTION chain_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE h record;
BEGIN
  -- The head row is locked until COMMIT; FOR UPDATE returns its latest committed version.
  SELECT seq, hash INTO h FROM chain_head WHERE id = 1 FOR UPDATE;
  NEW.id := h.seq + 1;
  NEW.prev_hash := h.hash;
  NEW.hash := sha256(h.hash || ${bytes});
  UPDATE chain_head SET seq = NEW.id, hash = NEW.hash WHERE id = 1;
  RETURN NEW;
END $$;
CREATE TRIGGER chain_link BEFORE INSERT ON chain FOR EACH ROW EXECUTE FUNCTION chain_link();
`;
  }
  return `${table}
CREATE FUNCTION chain_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE prev bytea;
BEGIN
  -- One writer at a time, until its COMMIT: the next transaction's trigger then sees this
  -- transaction's rows (READ COMMITTED takes a fresh snapshot per statement in the trigger).
  PERFORM pg_advisory_xact_lock(7231);
  SELECT c.hash INTO prev FROM chain c ORDER BY c.id DESC LIMIT 1;
  IF prev IS NULL THEN prev := '${GENESIS}'::bytea; END IF;
  NEW.id := nextval('chain_seq');
  NEW.prev_hash := prev;
  NEW.hash := sha256(prev || ${bytes});
  RETURN NEW;
END $$;
CREATE TRIGGER chain_link BEFORE INSERT ON chain FOR EACH ROW EXECUTE FUNCTION chain_link();
`;
}

function chainCheck(t: PgRecordType): string {
  const bytes = t === 'jsonb' ? "convert_to(record::text, 'UTF8')" : "convert_to(record, 'UTF8')";
  return `
WITH c AS (SELECT id, record, prev_hash, hash, lag(hash) OVER (ORDER BY id) AS want_prev FROM chain)
SELECT count(*)::bigint AS n,
       count(*) FILTER (WHERE want_prev IS NULL AND prev_hash <> '${GENESIS}'::bytea)::bigint AS bad_genesis,
       count(*) FILTER (WHERE want_prev IS NOT NULL AND prev_hash <> want_prev)::bigint AS broken_links,
       count(*) FILTER (WHERE hash <> sha256(prev_hash || ${bytes}))::bigint AS bad_hashes
FROM c`;
}

export async function pgBaseline(o: PgOptions, progress: (s: string) => void): Promise<PgResult> {
  const bin = findPgBin();
  if (!bin) throw new Error('no PostgreSQL server found under /usr/lib/postgresql (apt-get install postgresql)');
  const dir = tempDir('custody-bench-pg-');
  const data = join(dir, 'data');
  const user = pgUser();
  const as = (cmd: string, args: string[]): [string, string[]] => (user ? ['runuser', ['-u', user.name, '--', cmd, ...args]] : [cmd, args]);
  if (user) chownSync(dir, user.uid, user.gid);

  const port = await freePort();
  const [c1, a1] = as(join(bin, 'initdb'), ['-D', data, '-U', 'bench', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
  sh(c1, a1);
  const settings: Record<string, string> = {
    listen_addresses: "''",
    port: String(port),
    unix_socket_directories: `'${dir}'`,
    fsync: 'on',
    synchronous_commit: 'on',
    full_page_writes: 'on',
    max_connections: String(Math.max(20, o.writers + 5)),
    ...(o.tune ? { shared_buffers: "'1GB'", max_wal_size: "'8GB'", checkpoint_timeout: "'15min'", wal_buffers: "'64MB'" } : {}),
  };
  appendFileSync(join(data, 'postgresql.conf'), '\n# custody bench\n' + Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  const [c2, a2] = as(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'postgres.log'), '-w', '-t', '60', 'start']);
  sh(c2, a2);
  const stopPg = onCleanup(`stop PostgreSQL in ${data}`, () => {
    const [c, a] = as(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
    spawnSync(c, a, { stdio: 'ignore' });
  });
  const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);

  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({ host: dir, port, user: 'bench', database: 'postgres' });
    await c.connect();
    return c;
  };
  const admin = await connect();
  const clients: pg.Client[] = [];
  try {
    const version = ((await admin.query('SHOW server_version')).rows[0] as { server_version: string }).server_version;
    for (const k of ['fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers', 'max_wal_size']) {
      settings[k] = ((await admin.query(`SHOW ${k}`)).rows[0] as Record<string, string>)[k]!;
    }
    await admin.query(schema(o.recordType, o.chain));
    for (let w = 0; w < o.writers; w++) clients.push(await connect());

    const batchSize = o.templates[0]![0]!.lines.length;
    const text = `INSERT INTO chain (record) VALUES ${Array.from({ length: batchSize }, (_, i) => `($${i + 1})`).join(',')}`;
    const t0 = performance.now();
    const tMeasure = t0 + o.warmupS * 1000;
    const tEnd = tMeasure + o.durationS * 1000;
    let stopping = false;
    let entries = 0;
    let batches = 0;
    let bytes = 0;
    let total = 0;
    const commitMs: number[] = [];
    let cpu0 = NaN;
    let cpu1 = NaN;
    let m0: CpuSnapshot = cpuSnapshot();
    let m1: CpuSnapshot | null = null;
    let c0 = process.cpuUsage();
    let c1: NodeJS.CpuUsage | null = null;
    const cpuStart = setTimeout(() => {
      cpu0 = pgCpuSeconds(postmaster);
      m0 = cpuSnapshot();
      c0 = process.cpuUsage();
    }, Math.max(0, tMeasure - performance.now()));
    const cpuEnd = setTimeout(() => {
      cpu1 = pgCpuSeconds(postmaster);
      m1 = cpuSnapshot();
      c1 = process.cpuUsage(c0);
    }, Math.max(0, tEnd - performance.now()));
    const ticker = setInterval(() => progress(`  ${((performance.now() - t0) / 1000).toFixed(0)} s: ${total.toLocaleString('en-US')} rows committed`), 2000);
    const writer = async (w: number): Promise<void> => {
      const c = clients[w]!;
      const mine = o.templates[w]!;
      let seq = 0;
      let k = 0;
      while (!stopping) {
        const t = mine[k++ % mine.length]!;
        const { values, next } = stampLines(t, w, seq);
        seq = next;
        const sent = performance.now();
        await c.query({ name: `chain_insert_${batchSize}`, text, values });
        const at = performance.now();
        total += values.length;
        if (at > tMeasure && at <= tEnd) {
          entries += values.length;
          batches++;
          bytes += t.body.length;
          commitMs.push(at - sent);
        }
        if (at >= tEnd) stopping = true;
      }
    };
    try {
      await Promise.all(clients.map((_, w) => writer(w)));
    } finally {
      clearInterval(ticker);
      clearTimeout(cpuStart);
      clearTimeout(cpuEnd);
    }
    if (!Number.isFinite(cpu1)) cpu1 = pgCpuSeconds(postmaster);
    m1 ??= cpuSnapshot();
    c1 ??= process.cpuUsage(c0);
    const seconds = (tEnd - tMeasure) / 1000;
    const pgCores = (cpu1 - cpu0) / seconds;
    const clientCores = (c1.user + c1.system) / 1e6 / seconds;

    progress('  checking the PostgreSQL chain (every link and every hash)');
    const chk = (await admin.query(chainCheck(o.recordType))).rows[0] as { n: string; bad_genesis: string; broken_links: string; bad_hashes: string };
    const n = Number(chk.n);
    const chainOk = n === total && chk.bad_genesis === '0' && chk.broken_links === '0' && chk.bad_hashes === '0';
    const sorted = commitMs.sort((a, b) => a - b);
    return {
      version,
      recordType: o.recordType,
      chain: o.chain,
      settings,
      entries,
      batches,
      bytes,
      seconds,
      entriesPerSec: entries / seconds,
      mbPerSec: bytes / 1e6 / seconds,
      totalRows: n,
      commitMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99) },
      chainOk,
      chainDetail: `${n} rows (${total} committed), ${chk.broken_links} broken links, ${chk.bad_hashes} wrong hashes, ${chk.bad_genesis} bad genesis`,
      serverCpuCores: pgCores,
      clientCpuCores: clientCores,
      otherCpuCores: Math.max(0, busyCores(m0, m1) - pgCores - clientCores),
    };
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
    await sleep(10);
    stopPg();
    dropTempDir(dir);
  }
}
