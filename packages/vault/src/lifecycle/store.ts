/**
 * Retention and purges in custody.db. Tables (created here, prefixed `lifecycle_`):
 *
 *   lifecycle_settings(key, value)            defaultDays: the retention new logs start with
 *   lifecycle_retention(log, days, …)         one row per log; `days` only ever grows
 *   lifecycle_purges(id, log, from_index, to_index, count, approval, …, state)
 *                                             one row per purge, written BEFORE any file is
 *                                             deleted (state "shredding"), "done" once finished
 */
import type Database from 'better-sqlite3';
import { CustodyError } from '../errors.js';
import { VaultDb } from '../storage/db.js';

export const DEFAULT_RETENTION_DAYS = 365;
/** Longest retention accepted (100 years): a bigger number is a typo, not a policy. */
export const MAX_RETENTION_DAYS = 36_500;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS lifecycle_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lifecycle_retention (
  log TEXT PRIMARY KEY,
  days INTEGER NOT NULL CHECK (days > 0),
  updated_at TEXT NOT NULL,
  updated_by TEXT NOT NULL,
  approval TEXT
);
CREATE TABLE IF NOT EXISTS lifecycle_purges (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  log TEXT NOT NULL,
  from_index INTEGER NOT NULL,
  to_index INTEGER NOT NULL,
  count INTEGER NOT NULL,
  approval TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  approved_by TEXT NOT NULL,
  retention_days INTEGER NOT NULL,
  cutoff TEXT NOT NULL,
  blobs TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('shredding', 'done')),
  created_at TEXT NOT NULL,
  completed_at TEXT,
  blobs_removed INTEGER,
  blobs_kept INTEGER
);
CREATE INDEX IF NOT EXISTS lifecycle_purges_log ON lifecycle_purges (log, from_index);
`;

export interface RetentionRow {
  log: string;
  days: number;
  updatedAt: string;
  updatedBy: string;
  approval: string | null;
}

export interface PurgeRecord {
  id: number;
  log: string;
  from: number;
  to: number;
  count: number;
  approval: string;
  requestedBy: string;
  approvedBy: string;
  retentionDays: number;
  cutoff: string;
  /** File names (HMACs) of the blobs to delete: referenced only from the shredded entries. */
  blobs: string[];
  state: 'shredding' | 'done';
  createdAt: string;
  completedAt: string | null;
  blobsRemoved: number | null;
  blobsKept: number | null;
}

interface PurgeDbRow {
  id: number;
  log: string;
  from_index: number;
  to_index: number;
  count: number;
  approval: string;
  requested_by: string;
  approved_by: string;
  retention_days: number;
  cutoff: string;
  blobs: string;
  state: 'shredding' | 'done';
  created_at: string;
  completed_at: string | null;
  blobs_removed: number | null;
  blobs_kept: number | null;
}

function toPurge(r: PurgeDbRow): PurgeRecord {
  return {
    id: r.id,
    log: r.log,
    from: r.from_index,
    to: r.to_index,
    count: r.count,
    approval: r.approval,
    requestedBy: r.requested_by,
    approvedBy: r.approved_by,
    retentionDays: r.retention_days,
    cutoff: r.cutoff,
    blobs: JSON.parse(r.blobs) as string[],
    state: r.state,
    createdAt: r.created_at,
    completedAt: r.completed_at,
    blobsRemoved: r.blobs_removed,
    blobsKept: r.blobs_kept,
  };
}

export function checkDays(v: unknown, name = 'days'): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_RETENTION_DAYS) {
    throw new CustodyError('BAD_REQUEST', `${name} must be a whole number of days from 1 to ${MAX_RETENTION_DAYS}; got ${JSON.stringify(v)?.slice(0, 40)}.`);
  }
  return v;
}

export class RetentionStore {
  constructor(private readonly db: Database.Database) {
    db.exec(SCHEMA);
  }

  get defaultDays(): number {
    const r = this.db.prepare("SELECT value FROM lifecycle_settings WHERE key = 'defaultDays'").get() as { value: string } | undefined;
    const n = r ? Number(r.value) : NaN;
    return Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_RETENTION_DAYS;
  }

  /** Sets the default for logs created from now on (vault initialisation only). */
  setDefaultDays(days: number): void {
    this.db.prepare("INSERT INTO lifecycle_settings (key, value) VALUES ('defaultDays', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(checkDays(days)));
  }

  /** The retention of a log; a log seen for the first time gets the default (recorded). */
  retention(log: string): RetentionRow {
    const get = (): RetentionRow | undefined => {
      const r = this.db.prepare('SELECT log, days, updated_at, updated_by, approval FROM lifecycle_retention WHERE log = ?').get(log) as
        | { log: string; days: number; updated_at: string; updated_by: string; approval: string | null }
        | undefined;
      return r && { log: r.log, days: r.days, updatedAt: r.updated_at, updatedBy: r.updated_by, approval: r.approval };
    };
    const have = get();
    if (have) return have;
    this.db.prepare('INSERT OR IGNORE INTO lifecycle_retention (log, days, updated_at, updated_by) VALUES (?, ?, ?, ?)').run(log, this.defaultDays, new Date().toISOString(), 'default');
    return get()!;
  }

  /**
   * Raises a log's retention. Refuses anything not longer (RETENTION_SHORTENED): no path shortens
   * it. Synchronous here; a shared vault's store (storage/pg/retention.ts) answers a promise.
   */
  extend(log: string, days: number, by: string, approval: string | null): { from: number; to: number } | Promise<{ from: number; to: number }> {
    checkDays(days);
    return this.db.transaction(() => {
      const cur = this.retention(log);
      if (days <= cur.days) throw shortened(log, cur.days, days);
      const r = this.db.prepare('UPDATE lifecycle_retention SET days = ?, updated_at = ?, updated_by = ?, approval = ? WHERE log = ? AND days < ?').run(days, new Date().toISOString(), by, approval, log, days);
      if (r.changes !== 1) throw shortened(log, cur.days, days);
      return { from: cur.days, to: days };
    })();
  }

  purges(log?: string): PurgeRecord[] {
    const rows = (log === undefined
      ? this.db.prepare('SELECT * FROM lifecycle_purges ORDER BY id').all()
      : this.db.prepare('SELECT * FROM lifecycle_purges WHERE log = ? ORDER BY id').all(log)) as PurgeDbRow[];
    return rows.map(toPurge);
  }

  purge(id: number): PurgeRecord | null {
    const r = this.db.prepare('SELECT * FROM lifecycle_purges WHERE id = ?').get(id) as PurgeDbRow | undefined;
    return r ? toPurge(r) : null;
  }

  /** Where the next purge of a log starts: the end of the last one (purges shred a prefix). */
  shreddedEnd(log: string): number {
    const r = this.db.prepare('SELECT MAX(to_index) AS end FROM lifecycle_purges WHERE log = ?').get(log) as { end: number | null };
    return r.end ?? 0;
  }

  /** Records a purge before anything is deleted; returns its id. */
  beginPurge(p: Omit<PurgeRecord, 'id' | 'state' | 'createdAt' | 'completedAt' | 'blobsRemoved' | 'blobsKept'>): PurgeRecord {
    const now = new Date().toISOString();
    const info = this.db
      .prepare(
        `INSERT INTO lifecycle_purges (log, from_index, to_index, count, approval, requested_by, approved_by, retention_days, cutoff, blobs, state, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'shredding', ?)`,
      )
      .run(p.log, p.from, p.to, p.count, p.approval, p.requestedBy, p.approvedBy, p.retentionDays, p.cutoff, JSON.stringify(p.blobs), now);
    return this.purge(Number(info.lastInsertRowid))!;
  }

  finishPurge(id: number, blobsRemoved: number, blobsKept: number): void {
    this.db.prepare("UPDATE lifecycle_purges SET state = 'done', completed_at = ?, blobs_removed = ?, blobs_kept = ? WHERE id = ?").run(new Date().toISOString(), blobsRemoved, blobsKept, id);
  }

  unfinished(): PurgeRecord[] {
    return (this.db.prepare("SELECT * FROM lifecycle_purges WHERE state = 'shredding' ORDER BY id").all() as PurgeDbRow[]).map(toPurge);
  }
}

function shortened(log: string, cur: number, asked: number): CustodyError {
  return new CustodyError('RETENTION_SHORTENED', `Retention of ${log} is ${cur} days; it can only be extended, so ${asked} days is refused. Ask for more than ${cur} days.`, { log, days: cur, requested: asked });
}

/**
 * The purges recorded in a data directory's custody.db (a connection the caller opened, e.g.
 * read-only for `custody verify --data`); empty when the vault never purged anything.
 */
export function readPurges(db: Database.Database): PurgeRecord[] {
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lifecycle_purges'").get();
  if (!has) return [];
  return (db.prepare('SELECT * FROM lifecycle_purges ORDER BY id').all() as PurgeDbRow[]).map(toPurge);
}

/** The purge `id` of `log` if custody.db holds it (the server checks a shred marker with this). */
export function purgeOnRecord(db: Database.Database, log: string, id: number, index: number): PurgeRecord | null {
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lifecycle_purges'").get();
  if (!has) return null;
  const r = db.prepare('SELECT * FROM lifecycle_purges WHERE id = ? AND log = ? AND from_index <= ? AND to_index > ?').get(id, log, index, index) as PurgeDbRow | undefined;
  return r ? toPurge(r) : null;
}

/** `custody init --retention-days N`: the default retention of the new vault's logs. */
export function setInitialRetention(dataDir: string, days: number, logs: string[]): void {
  const db = VaultDb.inDataDir(dataDir);
  try {
    const s = new RetentionStore(db.sqlite);
    s.setDefaultDays(days);
    for (const l of logs) s.retention(l);
  } finally {
    db.close();
  }
}
