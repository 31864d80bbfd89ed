/**
 * Retention settings of a shared vault in PostgreSQL (tables custody_retention_settings and
 * custody_retention, migration 402): every node shows and enforces the same retention, and an
 * extension approved on one node holds on all.
 *
 * Extend-only, atomically: `extend` locks the log's row (SELECT … FOR UPDATE, after inserting
 * the default row if the log has none), refuses RETENTION_SHORTENED unless the new value is
 * longer, and updates it, in one transaction; two nodes extending at once are ordered by the
 * row lock, and the second compares against the first's committed value. A trigger refuses
 * any UPDATE that lowers `days`, and DELETEs are ignored (a rule), whatever SQL a node sends.
 *
 * Reads (`retention`, `defaultDays`) are synchronous in the lifecycle service, so they answer
 * from a copy refreshed every REFRESH_MS and after every extension made here; the refusal of a
 * shortening in an approval's validate() may thus see a value up to REFRESH_MS old, but the
 * extension itself always compares against the database. Purge records stay in the node's
 * custody.db (purges are not available on a shared vault: docs/PRODUCTION.md).
 */
import type Database from 'better-sqlite3';
import type pg from 'pg';
import { CustodyError } from '../../errors.js';
import { RetentionStore, checkDays, type RetentionRow } from '../../lifecycle/store.js';
import { checkin, checkout, pgStorageError } from './pool.js';

interface Row {
  log: string;
  days: number;
  updated_at: string;
  updated_by: string;
  approval: string | null;
}

const toRow = (r: Row): RetentionRow => ({ log: r.log, days: r.days, updatedAt: r.updated_at, updatedBy: r.updated_by, approval: r.approval });

export class PgRetentionStore extends RetentionStore {
  static REFRESH_MS = 2_000;
  private readonly rows = new Map<string, RetentionRow>();
  private def: number;
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    db: Database.Database,
    private readonly pool: pg.Pool,
  ) {
    super(db);
    this.def = super.defaultDays;
  }

  /** Opens the shared settings: the default is the first node's (its custody.db's) unless set. */
  static async open(db: Database.Database, pool: pg.Pool, logs: string[]): Promise<PgRetentionStore> {
    const s = new PgRetentionStore(db, pool);
    try {
      await pool.query("INSERT INTO custody_retention_settings (key, value) VALUES ('defaultDays', $1) ON CONFLICT (key) DO NOTHING", [String(s.def)]);
    } catch (e) {
      throw pgStorageError(e, 'store the default retention', 'not-committed');
    }
    await s.refresh();
    for (const l of logs) await s.ensure(l);
    s.timer = setInterval(() => void s.refresh().catch(() => undefined), PgRetentionStore.REFRESH_MS);
    s.timer.unref();
    return s;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reloads the copy from the database. */
  async refresh(): Promise<void> {
    let rows: Row[];
    let def: Array<{ value: string }>;
    try {
      [rows, def] = await Promise.all([
        this.pool.query<Row>('SELECT log, days, updated_at, updated_by, approval FROM custody_retention').then((r) => r.rows),
        this.pool.query<{ value: string }>("SELECT value FROM custody_retention_settings WHERE key = 'defaultDays'").then((r) => r.rows),
      ]);
    } catch (e) {
      throw pgStorageError(e, 'read the retention settings', 'read');
    }
    const n = Number(def[0]?.value);
    if (Number.isSafeInteger(n) && n > 0) this.def = n;
    for (const r of rows) {
      const cur = this.rows.get(r.log);
      // never show a shorter value than one already seen (a reply older than an extension)
      if (!cur || r.days >= cur.days) this.rows.set(r.log, toRow(r));
    }
  }

  /** Records the default retention for a log the database does not have yet. */
  private async ensure(log: string): Promise<void> {
    try {
      await this.pool.query('INSERT INTO custody_retention (log, days, updated_at, updated_by) VALUES ($1, $2, $3, $4) ON CONFLICT (log) DO NOTHING', [log, this.def, new Date().toISOString(), 'default']);
    } catch (e) {
      throw pgStorageError(e, 'record a log\'s retention', 'not-committed');
    }
    await this.refresh();
  }

  override get defaultDays(): number {
    return this.def;
  }

  override setDefaultDays(_days: number): void {
    throw new CustodyError('NOT_AVAILABLE', 'The default retention of a shared vault is set when it is created; extend each log\'s retention instead (custody retention extend).');
  }

  override retention(log: string): RetentionRow {
    const have = this.rows.get(log);
    if (have) return have;
    void this.ensure(log).catch(() => undefined);
    return { log, days: this.def, updatedAt: new Date().toISOString(), updatedBy: 'default', approval: null };
  }

  override async extend(log: string, days: number, by: string, approval: string | null): Promise<{ from: number; to: number }> {
    checkDays(days);
    let c: pg.PoolClient;
    try {
      c = await checkout(this.pool);
    } catch (e) {
      throw pgStorageError(e, 'extend a retention', 'not-committed');
    }
    let failed: Error | undefined;
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO custody_retention (log, days, updated_at, updated_by) VALUES ($1, $2, $3, $4) ON CONFLICT (log) DO NOTHING', [log, this.def, new Date().toISOString(), 'default']);
      const cur = (await c.query<{ days: number }>('SELECT days FROM custody_retention WHERE log = $1 FOR UPDATE', [log])).rows[0]!.days;
      if (days <= cur) {
        await c.query('ROLLBACK');
        throw new CustodyError('RETENTION_SHORTENED', `Retention of ${log} is ${cur} days; it can only be extended, so ${days} days is refused. Ask for more than ${cur} days.`, { log, days: cur, requested: days });
      }
      await c.query('UPDATE custody_retention SET days = $2, updated_at = $3, updated_by = $4, approval = $5 WHERE log = $1', [log, days, new Date().toISOString(), by, approval]);
      await c.query('COMMIT');
      this.rows.set(log, { log, days, updatedAt: new Date().toISOString(), updatedBy: by, approval });
      return { from: cur, to: days };
    } catch (e) {
      if (e instanceof CustodyError) throw e;
      failed = e as Error;
      await c.query('ROLLBACK').catch(() => undefined);
      throw pgStorageError(e, 'extend a retention', 'unknown');
    } finally {
      checkin(c, failed);
    }
  }
}
