/**
 * Where alarms are kept: custody.db on one node (AlarmStore, table created by storage/db.ts's
 * migrations), or the shared PostgreSQL when several nodes serve one vault
 * (storage/pg/alarms.ts), so alarms raised on any node are listed on every node and repeats
 * on different nodes count on one alarm.
 */
import type Database from 'better-sqlite3';
import type pg from 'pg';
import { PgAlarmStore } from '../storage/pg/alarms.js';
import type { Alarm, AlarmInput, AlarmKind, AlarmQuery, Severity } from './types.js';

interface Row {
  id: number;
  kind: string;
  rule: string;
  severity: string;
  title: string;
  details: string;
  group_key: string | null;
  log: string | null;
  entry: number | null;
  first_at: string;
  last_at: string;
  count: number;
}

function toAlarm(r: Row): Alarm {
  const a: Alarm = {
    id: r.id,
    kind: r.kind as AlarmKind,
    rule: r.rule,
    severity: r.severity as Severity,
    title: r.title,
    details: JSON.parse(r.details) as Record<string, unknown>,
    time: r.first_at,
    lastTime: r.last_at,
    count: r.count,
  };
  if (r.group_key !== null) a.groupKey = r.group_key;
  if (r.log !== null) a.log = r.log;
  if (r.entry !== null) a.entry = r.entry;
  return a;
}

export interface AlarmStoreApi {
  /**
   * Stores an alarm, or counts a repeat: with a group key, an alarm of the same key last seen
   * after `groupSince` gets its count raised and its time of last sighting moved.
   * Returns the alarm and whether it is new.
   */
  record(a: AlarmInput, now: string, groupSince: string | null): Promise<{ alarm: Alarm; isNew: boolean }>;
  get(id: number): Promise<Alarm | undefined>;
  /** Newest first (highest id first). */
  list(q: AlarmQuery): Promise<Alarm[]>;
  count(): Promise<number>;
}

/** The alarms table of custody.db (one node). */
export class AlarmStore implements AlarmStoreApi {
  constructor(private readonly db: Database.Database) {}

  /**
   * Stores an alarm, or counts a repeat: with a group key, an alarm of the same key last seen
   * after `groupSince` gets its count raised and its time of last sighting moved.
   * Returns the alarm and whether it is new.
   */
  async record(a: AlarmInput, now: string, groupSince: string | null): Promise<{ alarm: Alarm; isNew: boolean }> {
    return this.db.transaction(() => {
      if (a.groupKey !== undefined && groupSince !== null) {
        const open = this.db.prepare('SELECT * FROM alarms WHERE group_key = ? AND last_at >= ? ORDER BY id DESC LIMIT 1').get(a.groupKey, groupSince) as Row | undefined;
        if (open) {
          this.db.prepare('UPDATE alarms SET count = count + 1, last_at = ? WHERE id = ?').run(now, open.id);
          return { alarm: toAlarm({ ...open, count: open.count + 1, last_at: now }), isNew: false };
        }
      }
      const info = this.db
        .prepare('INSERT INTO alarms (kind, rule, severity, title, details, group_key, log, entry, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(a.kind, a.rule, a.severity, a.title, JSON.stringify(a.details), a.groupKey ?? null, a.log ?? null, a.entry ?? null, now, now);
      return { alarm: toAlarm({ id: Number(info.lastInsertRowid), kind: a.kind, rule: a.rule, severity: a.severity, title: a.title, details: JSON.stringify(a.details), group_key: a.groupKey ?? null, log: a.log ?? null, entry: a.entry ?? null, first_at: now, last_at: now, count: 1 }), isNew: true };
    })();
  }

  async get(id: number): Promise<Alarm | undefined> {
    const r = this.db.prepare('SELECT * FROM alarms WHERE id = ?').get(id) as Row | undefined;
    return r ? toAlarm(r) : undefined;
  }

  /** Newest first. */
  async list(q: AlarmQuery): Promise<Alarm[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.kinds && q.kinds.length > 0) {
      where.push(`kind IN (${q.kinds.map(() => '?').join(',')})`);
      args.push(...q.kinds);
    }
    if (q.since) {
      where.push('last_at >= ?');
      args.push(q.since);
    }
    if (q.until) {
      where.push('first_at < ?');
      args.push(q.until);
    }
    if (q.before !== undefined) {
      where.push('id < ?');
      args.push(q.before);
    }
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 500);
    const sql = `SELECT * FROM alarms ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ${limit}`;
    return (this.db.prepare(sql).all(...args) as Row[]).map(toAlarm);
  }

  async count(): Promise<number> {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM alarms').get() as { n: number }).n;
  }
}

/**
 * The vault's alarm store, named at each use: the shared PostgreSQL once the vault has one
 * (`vault.shared`, several nodes), custody.db otherwise.
 */
export function vaultAlarmStore(db: Database.Database, shared: () => { pool: pg.Pool } | undefined): () => AlarmStoreApi {
  const local = new AlarmStore(db);
  let remote: { pool: pg.Pool; store: PgAlarmStore } | undefined;
  return () => {
    const s = shared();
    if (!s) return local;
    if (remote?.pool !== s.pool) remote = { pool: s.pool, store: new PgAlarmStore(s.pool) };
    return remote.store;
  };
}
