/**
 * The embedded database (SQLite, encrypted page by page: storage/sqlite.ts): vault metadata,
 * logs, the published state of each log (a second witness of the checkpoint, which catches a
 * tree rolled back on disk) and principals. Tokens are stored only as SHA-256 hashes.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { CustodyError } from '../errors.js';
import { Keyring } from '../crypto/keyring.js';
import { dataDirDbKey, openEncrypted, type SqliteKey } from './sqlite.js';

export type Role = 'writer' | 'auditor' | 'admin';
export const ROLES: readonly Role[] = ['writer', 'auditor', 'admin'];

export interface LogRow {
  name: string;
  origin: string;
  region: string;
  kind: 'region' | 'audit';
  createdAt: string;
}

export interface PrincipalRow {
  id: string;
  name: string;
  role: Role;
  /** Logs a writer may append to; null = every region log. */
  logs: string[] | null;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
  revokedBy: string | null;
}

interface PrincipalDbRow {
  id: string;
  name: string;
  role: Role;
  logs: string | null;
  token_hash: Buffer;
  created_at: string;
  created_by: string;
  revoked_at: string | null;
  revoked_by: string | null;
}

const MIGRATIONS = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE logs (name TEXT PRIMARY KEY, origin TEXT NOT NULL UNIQUE, region TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('region','audit')), created_at TEXT NOT NULL);
   CREATE TABLE log_state (log TEXT PRIMARY KEY REFERENCES logs(name), size INTEGER NOT NULL,
     checkpoint TEXT NOT NULL, updated_at TEXT NOT NULL);
   CREATE TABLE principals (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
     role TEXT NOT NULL CHECK (role IN ('writer','auditor','admin')), logs TEXT,
     token_hash BLOB NOT NULL UNIQUE, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
     revoked_at TEXT, revoked_by TEXT);`,
  // Admin actions taken offline (`custody token … --data`) wait here until the server appends
  // them to the audit log.
  `CREATE TABLE pending_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL);`,
  // Alarms (alarms/store.ts). A repeat of an alarm with the same group key inside its grouping
  // window raises the count of the open row instead of adding one.
  `CREATE TABLE alarms (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, rule TEXT NOT NULL,
     severity TEXT NOT NULL, title TEXT NOT NULL, details TEXT NOT NULL, group_key TEXT,
     log TEXT, entry INTEGER, first_at TEXT NOT NULL, last_at TEXT NOT NULL, count INTEGER NOT NULL DEFAULT 1);
   CREATE INDEX alarms_last ON alarms(last_at);
   CREATE INDEX alarms_group ON alarms(group_key, last_at) WHERE group_key IS NOT NULL;`,
];

function toPrincipal(r: PrincipalDbRow): PrincipalRow {
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    logs: r.logs === null ? null : (JSON.parse(r.logs) as string[]),
    createdAt: r.created_at,
    createdBy: r.created_by,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
  };
}

export class VaultDb {
  private readonly db: Database.Database;

  /** custody.db of a data directory, opened with its key from the keyring (read from the directory when not given). */
  static inDataDir(dataDir: string, keyring: Keyring = Keyring.load(join(dataDir, 'keyring.json'))): VaultDb {
    return new VaultDb(join(dataDir, 'custody.db'), dataDirDbKey(keyring, dataDir, 'custody'));
  }

  constructor(path: string, key: SqliteKey) {
    this.db = openEncrypted(path, key, { what: 'the vault database' });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /**
   * The connection itself, for the stores of other concerns (alarms, approvals, rules …) that
   * keep their own tables in custody.db. Each creates its tables with IF NOT EXISTS.
   */
  get sqlite(): Database.Database {
    return this.db;
  }

  /** Changes whenever another connection commits (PRAGMA data_version). */
  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  close(): void {
    this.db.close();
  }

  getMeta(key: string): string | undefined {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  addPendingAudit(event: Record<string, unknown>): void {
    this.db.prepare('INSERT INTO pending_audit (event) VALUES (?)').run(JSON.stringify({ time: new Date().toISOString(), ...event }));
  }

  /** Pending audit events, oldest first; `done(id)` removes one once it is in the audit log. */
  pendingAudit(): Array<{ id: number; event: Record<string, unknown> }> {
    return (this.db.prepare('SELECT id, event FROM pending_audit ORDER BY id').all() as Array<{ id: number; event: string }>).map((r) => ({
      id: r.id,
      event: JSON.parse(r.event) as Record<string, unknown>,
    }));
  }

  removePendingAudit(id: number): void {
    this.db.prepare('DELETE FROM pending_audit WHERE id = ?').run(id);
  }

  addLog(row: LogRow): void {
    this.db.prepare('INSERT INTO logs (name, origin, region, kind, created_at) VALUES (?, ?, ?, ?, ?)').run(row.name, row.origin, row.region, row.kind, row.createdAt);
  }

  listLogs(): LogRow[] {
    return (this.db.prepare('SELECT name, origin, region, kind, created_at AS createdAt FROM logs ORDER BY kind DESC, name').all() as LogRow[]);
  }

  getLogState(log: string): { size: number; checkpoint: string } | undefined {
    return this.db.prepare('SELECT size, checkpoint FROM log_state WHERE log = ?').get(log) as { size: number; checkpoint: string } | undefined;
  }

  setLogState(log: string, size: number, checkpoint: string): void {
    this.db
      .prepare(`INSERT INTO log_state (log, size, checkpoint, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(log) DO UPDATE SET size = excluded.size, checkpoint = excluded.checkpoint, updated_at = excluded.updated_at`)
      .run(log, size, checkpoint, new Date().toISOString());
  }

  addPrincipal(p: Omit<PrincipalRow, 'revokedAt' | 'revokedBy'>, tokenHash: Buffer): void {
    try {
      this.db
        .prepare('INSERT INTO principals (id, name, role, logs, token_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(p.id, p.name, p.role, p.logs === null ? null : JSON.stringify(p.logs), tokenHash, p.createdAt, p.createdBy);
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new CustodyError('PRINCIPAL_EXISTS', `A principal named "${p.name}" already exists; choose another name.`);
      }
      throw e;
    }
  }

  /**
   * Shared mode: makes the principals table an exact copy of PostgreSQL's (the source of truth;
   * vault.ts calls this on every change), in one transaction.
   */
  replacePrincipals(rows: Array<{ principal: PrincipalRow; tokenHash: Buffer }>): void {
    const ins = this.db.prepare(
      'INSERT INTO principals (id, name, role, logs, token_hash, created_at, created_by, revoked_at, revoked_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM principals').run();
      for (const { principal: p, tokenHash } of rows) {
        ins.run(p.id, p.name, p.role, p.logs === null ? null : JSON.stringify(p.logs), tokenHash, p.createdAt, p.createdBy, p.revokedAt, p.revokedBy);
      }
    })();
  }

  /** Adds a log row unless one of that name exists (shared mode: the copy of PostgreSQL's logs). */
  ensureLog(row: LogRow): void {
    this.db.prepare('INSERT OR IGNORE INTO logs (name, origin, region, kind, created_at) VALUES (?, ?, ?, ?, ?)').run(row.name, row.origin, row.region, row.kind, row.createdAt);
  }

  listPrincipals(): PrincipalRow[] {
    return (this.db.prepare('SELECT * FROM principals ORDER BY created_at, name').all() as PrincipalDbRow[]).map(toPrincipal);
  }

  /** Every principal with its token hash, for the in-memory authenticator. */
  principalsWithHashes(): Array<{ principal: PrincipalRow; tokenHash: Buffer }> {
    return (this.db.prepare('SELECT * FROM principals').all() as PrincipalDbRow[]).map((r) => ({ principal: toPrincipal(r), tokenHash: r.token_hash }));
  }

  getPrincipal(idOrName: string): PrincipalRow | undefined {
    const r = this.db.prepare('SELECT * FROM principals WHERE id = ? OR name = ?').get(idOrName, idOrName) as PrincipalDbRow | undefined;
    return r && toPrincipal(r);
  }

  revokePrincipal(id: string, by: string): PrincipalRow {
    const p = this.getPrincipal(id);
    if (!p) throw new CustodyError('PRINCIPAL_NOT_FOUND', `No principal "${id}": list them with \`custody token list\`.`);
    if (!p.revokedAt) {
      this.db.prepare('UPDATE principals SET revoked_at = ?, revoked_by = ? WHERE id = ?').run(new Date().toISOString(), by, p.id);
    }
    return this.getPrincipal(p.id)!;
  }
}

/**
 * Which records are already stored, by dedupe key (CloudTrail eventID, CloudWatch Logs event
 * id, an imported object's record number …): key = first 16 bytes of SHA-256 of the dedupe key,
 * so the file never holds record content. It is encrypted all the same (storage/sqlite.ts): an
 * unsalted hash of a guessable key (an eventID seen elsewhere) would confirm that the vault
 * holds that record, and where. A database of its own (`dedupe.db`), written with
 * synchronous=NORMAL: it is written on every ingest, after the records are durable in the
 * journal, and losing its last transactions to a power cut can only cause a second copy of a
 * record later — never a lost one — so it need not pay an fsync per request.
 */
export interface DedupePosition {
  log: string;
  index: number;
}

/**
 * What the ingest pipeline needs of a dedupe store: DedupeStore (dedupe.db, one node) or
 * storage/pg/dedupe.ts PgDedupeStore (a shared vault; claims taken before the append).
 * claim: where each already stored key is (keys: 16-byte hashes; map keys: their hex) and which
 * keys another node holds (`busy`); the other keys are the caller's to store, then to remember
 * (stored) or release (not stored).
 */
export interface DedupeStoreApi {
  claim(keys: Buffer[]): Promise<{ seen: Map<string, DedupePosition>; busy: Set<string> }>;
  remember(rows: Array<{ key: Buffer; log: string; index: number }>): void | Promise<void>;
  release(keys: Buffer[]): Promise<void>;
}

export class DedupeStore implements DedupeStoreApi {
  private readonly db: Database.Database;
  private readonly lookupStmts = new Map<number, Database.Statement>();
  private readonly rememberStmts = new Map<number, Database.Statement>();
  /**
   * Keys remembered but not yet written. Keys are random, so every insert lands on another
   * page of the B-tree; writing them in large batches touches each page once per batch
   * instead of once per key (measured: the per-request transaction was ~20% of import CPU).
   */
  private pending = new Map<string, { key: Buffer; log: string; index: number }>();
  private timer: NodeJS.Timeout | null = null;
  static readonly FLUSH_KEYS = 50_000;
  static readonly FLUSH_MS = 2_000;

  constructor(path: string, key: SqliteKey) {
    this.db = openEncrypted(path, key, { what: 'the dedupe database' });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('cache_size = -32768');
    this.db.exec('CREATE TABLE IF NOT EXISTS dedupe (key BLOB PRIMARY KEY, log TEXT NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID');
  }

  /** The stored position of each key already seen (keys: 16-byte hashes), looked up in chunks. */
  lookup(keys: Buffer[]): Map<string, { log: string; index: number }> {
    const out = new Map<string, { log: string; index: number }>();
    const ask: Buffer[] = [];
    for (const k of keys) {
      const p = this.pending.size > 0 ? this.pending.get(k.toString('hex')) : undefined;
      if (p) out.set(k.toString('hex'), { log: p.log, index: p.index });
      else ask.push(k);
    }
    const CHUNK = 128;
    for (let i = 0; i < ask.length; i += CHUNK) {
      const part = ask.slice(i, i + CHUNK);
      let stmt = this.lookupStmts.get(part.length);
      if (!stmt) {
        stmt = this.db.prepare(`SELECT key, log, idx FROM dedupe WHERE key IN (${part.map(() => '?').join(',')})`);
        this.lookupStmts.set(part.length, stmt);
      }
      for (const r of stmt.all(...part) as Array<{ key: Buffer; log: string; idx: number }>) out.set(r.key.toString('hex'), { log: r.log, index: r.idx });
    }
    return out;
  }

  /** One node: the pipeline orders its own requests in memory, so a claim is a lookup. */
  async claim(keys: Buffer[]): Promise<{ seen: Map<string, DedupePosition>; busy: Set<string> }> {
    return { seen: this.lookup(keys), busy: new Set() };
  }

  /** Nothing to release: claims are the pipeline's in-memory flights. */
  async release(_keys: Buffer[]): Promise<void> {}

  /**
   * Remembers keys of durable records (first writer wins). They are written in batches (at
   * most FLUSH_KEYS keys or FLUSH_MS old); until then lookups see them in memory. A crash before
   * a batch is written can only let a later copy of those records be stored again.
   */
  remember(rows: Array<{ key: Buffer; log: string; index: number }>): void {
    for (const r of rows) {
      const hex = r.key.toString('hex');
      if (!this.pending.has(hex)) this.pending.set(hex, r);
    }
    if (this.pending.size >= DedupeStore.FLUSH_KEYS) this.flush();
    else if (this.pending.size > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, DedupeStore.FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Writes the pending keys in one transaction, many rows per statement. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending.size === 0) return;
    const rows = [...this.pending.values()];
    this.pending = new Map();
    const CHUNK = 100;
    this.db.transaction(() => {
      for (let i = 0; i < rows.length; i += CHUNK) {
        const part = rows.slice(i, i + CHUNK);
        let stmt = this.rememberStmts.get(part.length);
        if (!stmt) {
          stmt = this.db.prepare(`INSERT OR IGNORE INTO dedupe (key, log, idx) VALUES ${part.map(() => '(?, ?, ?)').join(',')}`);
          this.rememberStmts.set(part.length, stmt);
        }
        const params: unknown[] = new Array(part.length * 3);
        part.forEach((r, n) => {
          params[n * 3] = r.key;
          params[n * 3 + 1] = r.log;
          params[n * 3 + 2] = r.index;
        });
        stmt.run(...params);
      }
    })();
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}
