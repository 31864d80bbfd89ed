/**
 * The index file, `<data>/search.db` (SQLite, WAL, synchronous=NORMAL: it is rebuildable, so a
 * power cut may cost its last transactions, never its consistency).
 *
 *   logs(id, name, indexed)     per log, how many of its entries are in the index
 *   entries(id, log, idx, …)    one row per entry: where it is, its times and common fields
 *   fts(text)                   FTS5, contentless: the tokens of each record, never the text
 *
 * A row's id orders the index by time: id = time_ms · 2^16 + slot, where the slot starts at the
 * low 16 bits of the entry's index and moves on when taken. Every query walks ids in order, so
 * "newest first" and a time range are a walk over one B-tree range (entries and FTS5 doclists
 * alike), a page ends after `limit` rows, and a cursor is the last id. Ids pass 2^53, so they
 * are BigInts in JS.
 *
 * The index holds nothing the log does not: every value is derived from an entry, the record
 * text is not stored (contentless FTS5 keeps tokens and positions only), and
 * `custody reindex` rebuilds the file from the logs. Its field values and FTS5 tokens are record
 * content all the same, so a vault's search file is encrypted page by page under the keyring's
 * "sqlite-search" key (storage/sqlite.ts); an unencrypted one from an earlier version is rebuilt.
 */
import type Database from 'better-sqlite3';
import { existsSync, rmSync } from 'node:fs';
import { CustodyError, isCustodyError } from '../errors.js';
import { fileState, openEncrypted, type SqliteKey } from '../storage/sqlite.js';

export const SEARCH_DB = 'search.db';
/** Bump when the schema or the derivation of rows changes: an older file is rebuilt. */
export const SCHEMA_VERSION = 2; // 2: deletable FTS rows (purges) and the (log, idx) index

const SLOT_BITS = 16n;
const SLOTS = 1 << 16;
/** Times beyond this (year 6429) share the last bucket; their `time` column keeps the truth. */
export const MAX_TIME_MS = 2 ** 47 - 1;
export const MIN_ID = 0n;
export const MAX_ID = (BigInt(MAX_TIME_MS) << SLOT_BITS) | BigInt(SLOTS - 1);

export function clampTime(ms: number): number {
  return ms < 0 || !Number.isFinite(ms) ? 0 : ms > MAX_TIME_MS ? MAX_TIME_MS : Math.floor(ms);
}

/** The first id of a millisecond. */
export function idAtStart(ms: number): bigint {
  return BigInt(clampTime(ms)) << SLOT_BITS;
}
/** The last id of a millisecond. */
export function idAtEnd(ms: number): bigint {
  return (BigInt(clampTime(ms)) << SLOT_BITS) | BigInt(SLOTS - 1);
}

/** The common-field columns, by the name the query language uses. */
export const TEXT_COLUMNS = {
  source: 'source',
  region: 'region',
  account: 'account',
  actor: 'actor',
  action: 'action',
  outcome: 'outcome',
  srcIp: 'src_ip',
  dstIp: 'dst_ip',
  severity: 'severity',
  resource: 'resource',
} as const;

const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE logs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, indexed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE entries (
  id INTEGER PRIMARY KEY,
  log INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  time INTEGER NOT NULL,
  received INTEGER NOT NULL,
  source TEXT NOT NULL COLLATE NOCASE,
  region TEXT COLLATE NOCASE,
  account TEXT COLLATE NOCASE,
  actor TEXT COLLATE NOCASE,
  action TEXT COLLATE NOCASE,
  outcome TEXT COLLATE NOCASE,
  src_ip TEXT COLLATE NOCASE,
  dst_ip TEXT COLLATE NOCASE,
  severity TEXT COLLATE NOCASE,
  resource TEXT COLLATE NOCASE,
  ocsf INTEGER
);
-- Each index ends (implicitly) in the id, so one value's rows come out in time order; rows
-- without the field are not in its index (col = ? and prefix ranges imply NOT NULL).
CREATE INDEX entries_log ON entries(log, idx);
CREATE INDEX entries_source ON entries(source);
CREATE INDEX entries_region ON entries(region) WHERE region IS NOT NULL;
CREATE INDEX entries_account ON entries(account) WHERE account IS NOT NULL;
CREATE INDEX entries_actor ON entries(actor) WHERE actor IS NOT NULL;
CREATE INDEX entries_action ON entries(action) WHERE action IS NOT NULL;
CREATE INDEX entries_outcome ON entries(outcome) WHERE outcome IS NOT NULL;
CREATE INDEX entries_src_ip ON entries(src_ip) WHERE src_ip IS NOT NULL;
CREATE INDEX entries_dst_ip ON entries(dst_ip) WHERE dst_ip IS NOT NULL;
CREATE INDEX entries_severity ON entries(severity) WHERE severity IS NOT NULL;
CREATE INDEX entries_resource ON entries(resource) WHERE resource IS NOT NULL;
CREATE INDEX entries_ocsf ON entries(ocsf) WHERE ocsf IS NOT NULL;
-- Ingest rate per source over receive time (GET /v1/stats/ingest), answered from the index alone.
CREATE INDEX entries_received ON entries(log, received, source);
-- Contentless (record text is never stored here), but deletable: a retention purge removes the
-- rows and tokens of crypto-shredded entries (docs/RETENTION.md).
CREATE VIRTUAL TABLE fts USING fts5(text, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
`;

export interface OpenOptions {
  readonly?: boolean;
  /** SQLite page cache in MiB. */
  cacheMb?: number;
  /**
   * The page key (a vault's index: the keyring's "sqlite-search" key). Without one the file is
   * plaintext — only for an index that holds no vault's records (the benchmark's own).
   */
  key?: SqliteKey;
}

/** Opens a search file (read-only: it must exist); a writer sets WAL and synchronous=NORMAL. */
export function openSearchDb(path: string, opts: OpenOptions = {}): Database.Database {
  const db = openEncrypted(path, opts.key ?? null, { what: 'the search index', readonly: opts.readonly, plaintext: 'refuse' });
  if (!opts.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('journal_size_limit = 67108864');
  }
  db.pragma(`cache_size = ${-1024 * (opts.cacheMb ?? 8)}`);
  db.pragma('temp_store = MEMORY');
  return db;
}

export interface SearchFileState {
  version: number;
  vaultId: string;
  logs: Map<string, number>;
}

/** The schema version, vault id and per-log progress of a search file, or null when it is not a search file. */
export function readState(db: Database.Database): SearchFileState | null {
  try {
    const meta = new Map((db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string; value: string }>).map((r) => [r.key, r.value]));
    const logs = new Map((db.prepare('SELECT name, indexed FROM logs').all() as Array<{ name: string; indexed: number }>).map((r) => [r.name, r.indexed]));
    return { version: Number(meta.get('version')), vaultId: meta.get('vaultId') ?? '', logs };
  } catch {
    return null;
  }
}

/** Creates the schema in an empty file. */
export function createSchema(db: Database.Database, vaultId: string): void {
  db.exec('BEGIN');
  try {
    db.exec(SCHEMA);
    const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
    put.run('version', String(SCHEMA_VERSION));
    put.run('vaultId', vaultId);
    put.run('created', new Date().toISOString());
    db.exec('COMMIT');
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}

/** Removes a search file and its WAL and shared-memory files. */
export function removeSearchFiles(path: string): void {
  for (const p of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(p)) rmSync(p, { force: true });
}

/**
 * Opens the search file of a vault for writing, creating it, or rebuilding it from scratch when
 * it is of another schema version or another vault, or claims more entries of a log than the
 * log holds (a data directory restored from an older backup). `sizes` are the logs' published
 * sizes. Returns the open database and why it was (re)created, if it was.
 */
export function prepareSearchFile(path: string, vaultId: string, sizes: Map<string, number>, key?: SqliteKey): { db: Database.Database; created: string | null } {
  let created: string | null = null;
  if (key && fileState(path) === 'plaintext') {
    // Written unencrypted by an earlier version: the index is derived, so it is rebuilt rather than converted.
    removeSearchFiles(path);
    created = 'rebuilt: it was not encrypted (written by an earlier version)';
  } else if (existsSync(path)) {
    let db: Database.Database;
    try {
      db = openSearchDb(path, { key });
    } catch (e) {
      // Not under this keyring's key (a keyring restored without its index), or damaged: rebuilt.
      removeSearchFiles(path);
      db = openSearchDb(path, { key });
      createSchema(db, vaultId);
      return { db, created: isCustodyError(e, 'KEYRING') ? 'rebuilt: it does not open with the key in the keyring' : `rebuilt: it could not be opened (${(e as Error).message})` };
    }
    const st = readState(db);
    let why: string | null = null;
    if (!st) why = 'it could not be read';
    else if (st.version !== SCHEMA_VERSION) why = `it has schema version ${st.version}, this vault uses ${SCHEMA_VERSION}`;
    else if (st.vaultId !== vaultId) why = 'it belongs to another vault';
    else {
      for (const [log, n] of st.logs) {
        const size = sizes.get(log);
        if (size === undefined || n > size) {
          why = `it holds ${n} entries of log "${log}", which has ${size ?? 0}`;
          break;
        }
      }
    }
    if (why === null) return { db, created: null };
    db.close();
    removeSearchFiles(path);
    created = `rebuilt: ${why}`;
  } else created = 'created: there was no search index';
  const db = openSearchDb(path, { key });
  createSchema(db, vaultId);
  return { db, created };
}

/** One row of the index: an entry's place, times, common fields and record text. */
export interface IndexRow {
  log: string;
  index: number;
  /** ms since the epoch: the record's own time, else the receive time. */
  time: number;
  received: number;
  source: string;
  region?: string;
  account?: string;
  actor?: string;
  action?: string;
  outcome?: string;
  srcIp?: string;
  dstIp?: string;
  severity?: string;
  resource?: string;
  ocsf?: number;
  /** The words of the record for full-text search (tokenized by FTS5, not stored). */
  text: string;
}

/**
 * The insert path: rows in, in one transaction per batch, with each log's `indexed` count moved
 * in the same transaction (a crash loses both or neither, so nothing is indexed twice).
 */
export class IndexWriter {
  private readonly logIds = new Map<string, number>();
  private readonly insertEntry: Database.Statement;
  private readonly insertText: Database.Statement;
  private readonly slotTaken: Database.Statement;
  private readonly setIndexed: Database.Statement;
  private readonly batch: (rows: IndexRow[], progress: Array<[string, number]>) => void;

  constructor(private readonly db: Database.Database) {
    for (const r of db.prepare('SELECT id, name FROM logs').all() as Array<{ id: number; name: string }>) this.logIds.set(r.name, r.id);
    this.insertEntry = db.prepare(
      `INSERT OR IGNORE INTO entries (id, log, idx, time, received, source, region, account, actor, action, outcome, src_ip, dst_ip, severity, resource, ocsf)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertText = db.prepare('INSERT INTO fts (rowid, text) VALUES (?, ?)');
    this.slotTaken = db.prepare('SELECT 1 FROM entries WHERE id = ?').pluck();
    this.setIndexed = db.prepare('UPDATE logs SET indexed = ? WHERE id = ?');
    this.batch = db.transaction((rows: IndexRow[], progress: Array<[string, number]>) => {
      // FTS5 flushes its in-memory segment whenever a rowid is lower than the last one, so rows
      // go in id order (within a batch ids are near their first guess).
      const keyed = rows.map((r) => ({ r, id: idAtStart(r.time) | BigInt(r.index & (SLOTS - 1)) }));
      keyed.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (const { r, id } of keyed) {
        const at = this.place(r, id);
        if (r.text.length > 0) this.insertText.run(at, r.text);
      }
      for (const [log, n] of progress) this.setIndexed.run(n, this.logId(log));
    });
  }

  logId(name: string): number {
    let id = this.logIds.get(name);
    if (id === undefined) {
      this.db.prepare('INSERT OR IGNORE INTO logs (name, indexed) VALUES (?, 0)').run(name);
      id = (this.db.prepare('SELECT id FROM logs WHERE name = ?').pluck().get(name) as number);
      this.logIds.set(name, id);
    }
    return id;
  }

  indexed(name: string): number {
    return (this.db.prepare('SELECT indexed FROM logs WHERE name = ?').pluck().get(name) as number | undefined) ?? 0;
  }

  /** Inserts the row at `id` or, when that slot is taken, the next free one (spilling into the next ms when a ms is full). */
  private place(r: IndexRow, want: bigint): bigint {
    const vals = [r.index, r.time, r.received, r.source, r.region ?? null, r.account ?? null, r.actor ?? null, r.action ?? null, r.outcome ?? null, r.srcIp ?? null, r.dstIp ?? null, r.severity ?? null, r.resource ?? null, r.ocsf ?? null];
    const log = this.logId(r.log);
    if (this.insertEntry.run(want, log, ...vals).changes === 1) return want;
    // Taken: the next free id after it (past the last id, the first free one before it).
    for (let id = want + 1n; id <= MAX_ID; id++) {
      if (!this.slotTaken.get(id) && this.insertEntry.run(id, log, ...vals).changes === 1) return id;
    }
    for (let id = want - 1n; ; id--) {
      if (!this.slotTaken.get(id) && this.insertEntry.run(id, log, ...vals).changes === 1) return id;
    }
  }

  /** Inserts rows and sets each log's indexed count, in one transaction. */
  /**
   * Removes the rows (fields and full-text tokens) of entries [from, to) of a log — entries a
   * retention purge crypto-shredded. Idempotent.
   */
  forget(log: string, from: number, to: number): number {
    const id = this.logIds.get(log) ?? (this.db.prepare('SELECT id FROM logs WHERE name = ?').pluck().get(log) as number | undefined);
    if (id === undefined) return 0;
    return this.db.transaction(() => {
      const ids = this.db.prepare('SELECT id FROM entries WHERE log = ? AND idx >= ? AND idx < ?').pluck().safeIntegers(true).all(id, from, to) as bigint[];
      const delText = this.db.prepare('DELETE FROM fts WHERE rowid = ?');
      const delRow = this.db.prepare('DELETE FROM entries WHERE id = ?');
      for (const x of ids) {
        delText.run(x);
        delRow.run(x);
      }
      // Deleted FTS rows are tombstones until their segments merge: merge now, so the tokens of
      // shredded records leave the file (a purge is rare; this rewrites the full-text index).
      if (ids.length > 0) this.db.prepare("INSERT INTO fts (fts) VALUES ('optimize')").run();
      return ids.length;
    })();
  }

  insert(rows: IndexRow[], progress: Array<[string, number]>): void {
    for (const [log] of progress) this.logId(log);
    for (const r of rows) this.logId(r.log);
    this.batch(rows, progress);
  }
}
