/**
 * Notifiers in custody.db, table `notifier_configs`: the configuration without its secrets in
 * plain JSON, the secrets sealed (secrets.ts). Notifiers from <data>/notifiers.json are written
 * here too (source "file") at every start, replacing the previous file's, so the audit log can
 * say what changed in the file.
 *
 * Rows sealed by an older version (secrets.ts, "v1:") are re-sealed under the vault key when
 * the store opens, in one transaction (see migrate).
 */
import type Database from 'better-sqlite3';
import type { SecretBox } from './secrets.js';
import type { Notifier, NotifierConfig } from './types.js';
import { splitSecrets } from './config.js';

export interface NotifierRow {
  id: string;
  type: string;
  source: string;
  config: string;
  secrets: string;
  fingerprint: string;
  created_at: string;
  created_by: string;
}

/** What opening the store re-sealed from an older version (audited by the hub). */
export interface SecretsMigration {
  resealed: string[];
  /** File notifiers without an "id" of their own: their id is derived from the fingerprint key. */
  renamed: Array<{ from: string; to: string }>;
  /** Rows that open with neither key (left as they are; they show as broken). */
  unreadable: string[];
}

/** JSON with object keys sorted, so a configuration has one fingerprint whatever its key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** A stored row as a notifier (secrets opened; `broken` when they do not open). */
export function notifierOfRow(box: SecretBox, r: NotifierRow): Notifier & { broken?: string } {
  const plain = JSON.parse(r.config) as Record<string, unknown>;
  let secrets: Record<string, string> = {};
  let broken: string | undefined;
  try {
    secrets = box.open(r.id, r.secrets);
  } catch (e) {
    broken = (e as Error).message;
  }
  const config = { ...plain, ...secrets } as unknown as NotifierConfig;
  return { id: r.id, config, source: r.source as Notifier['source'], createdAt: r.created_at, createdBy: r.created_by, ...(broken ? { broken } : {}) };
}

/**
 * The notifier configurations as the hub uses them: custody.db on one node (NotifierStore via
 * localNotifierStore), PostgreSQL on a shared vault (storage/pg/notifiers.ts). Delivery state
 * (the last alarm handed on, queues, backoff) stays per node in custody.db.
 */
export interface NotifierStoreApi {
  list(): Promise<Array<Notifier & { broken?: string }>>;
  add(n: Notifier): Promise<void>;
  remove(id: string): Promise<boolean>;
  sourceOf(id: string): Promise<Notifier['source'] | undefined>;
  fileState(): Promise<Map<string, string>>;
  replaceFile(list: Notifier[]): Promise<void>;
  fingerprint(c: NotifierConfig): string;
  /** Shared store only: a counter that moves on every change (polled by each node's hub). */
  revision?(): Promise<string>;
}

/** The custody.db store behind the async interface (behaviour unchanged). */
export function localNotifierStore(s: NotifierStore): NotifierStoreApi {
  return {
    list: async () => s.list(),
    add: async (n) => s.add(n),
    remove: async (id) => s.remove(id),
    sourceOf: async (id) => s.sourceOf(id),
    fileState: async () => s.fileState(),
    replaceFile: async (list) => s.replaceFile(list),
    fingerprint: (c) => s.fingerprint(c),
  };
}

export class NotifierStore {
  readonly migration: SecretsMigration;

  constructor(
    private readonly db: Database.Database,
    private readonly box: SecretBox,
    opts: { legacy?: () => SecretBox } = {},
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS notifier_configs (
      id TEXT PRIMARY KEY, type TEXT NOT NULL, source TEXT NOT NULL CHECK (source IN ('api','file')),
      config TEXT NOT NULL, secrets TEXT NOT NULL, fingerprint TEXT NOT NULL,
      created_at TEXT NOT NULL, created_by TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS notifier_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    this.migration = this.migrate(opts.legacy);
  }

  /**
   * Re-seals rows of an older seal version under this store's box, with fingerprints under its
   * key, in one transaction: afterwards no readable row has the old version. A file notifier
   * whose id was derived from its old fingerprint gets the id derived from the new one, so the
   * next load of notifiers.json finds it unchanged.
   */
  private migrate(legacyOf?: () => SecretBox): SecretsMigration {
    const out: SecretsMigration = { resealed: [], renamed: [], unreadable: [] };
    const old = (this.db.prepare('SELECT * FROM notifier_configs').all() as NotifierRow[]).filter((r) => !this.box.sealedHere(r.secrets));
    if (old.length === 0 || !legacyOf) return out;
    const legacy = legacyOf();
    this.db.transaction(() => {
      for (const r of old) {
        let secrets: Record<string, string>;
        try {
          if (!legacy.sealedHere(r.secrets)) throw new Error('unknown version');
          secrets = legacy.open(r.id, r.secrets);
        } catch {
          out.unreadable.push(r.id);
          continue;
        }
        const config = { ...(JSON.parse(r.config) as Record<string, unknown>), ...secrets } as unknown as NotifierConfig;
        const fingerprint = this.fingerprint(config);
        let id = r.id;
        if (r.source === 'file' && r.id === `ntf_file-${r.fingerprint.slice(0, 12)}`) {
          const next = `ntf_file-${fingerprint.slice(0, 12)}`;
          if (!this.db.prepare('SELECT 1 FROM notifier_configs WHERE id = ?').get(next)) {
            id = next;
            out.renamed.push({ from: r.id, to: id });
          }
        }
        this.db.prepare('UPDATE notifier_configs SET id = ?, secrets = ?, fingerprint = ? WHERE id = ?').run(id, this.box.seal(id, secrets), fingerprint, r.id);
        out.resealed.push(id);
      }
    })();
    return out;
  }

  /** The newest alarm the notifiers were handed (to catch up on alarms raised while they were not running). */
  lastAlarm(): number | undefined {
    const r = this.db.prepare("SELECT value FROM notifier_state WHERE key = 'last_alarm'").get() as { value: string } | undefined;
    return r ? Number(r.value) : undefined;
  }

  setLastAlarm(id: number): void {
    this.db.prepare("INSERT INTO notifier_state (key, value) VALUES ('last_alarm', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE CAST(notifier_state.value AS INTEGER) < CAST(excluded.value AS INTEGER)").run(String(id));
  }

  /**
   * A row as a notifier. When its secrets do not decrypt (custody.db restored next to another
   * keyring), the notifier is still returned, without them and with `broken` saying why: its
   * deliveries then fail visibly instead of the notifier silently disappearing.
   */
  private toNotifier(r: NotifierRow): Notifier & { broken?: string } {
    return notifierOfRow(this.box, r);
  }

  list(): Array<Notifier & { broken?: string }> {
    return (this.db.prepare('SELECT * FROM notifier_configs ORDER BY created_at, id').all() as NotifierRow[]).map((r) => this.toNotifier(r));
  }

  /** Where the notifier with this id came from, if there is one. */
  sourceOf(id: string): Notifier['source'] | undefined {
    return (this.db.prepare('SELECT source FROM notifier_configs WHERE id = ?').get(id) as { source: Notifier['source'] } | undefined)?.source;
  }

  private insert(n: Notifier): void {
    const { plain, secrets } = splitSecrets(n.config);
    this.db
      .prepare('INSERT INTO notifier_configs (id, type, source, config, secrets, fingerprint, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(n.id, n.config.type, n.source, JSON.stringify(plain), this.box.seal(n.id, secrets), this.fingerprint(n.config), n.createdAt, n.createdBy);
  }

  add(n: Notifier): void {
    this.insert(n);
  }

  remove(id: string): boolean {
    return this.db.prepare('DELETE FROM notifier_configs WHERE id = ?').run(id).changes > 0;
  }

  /** A keyed fingerprint of the whole configuration, secrets included (key order does not matter). */
  fingerprint(c: NotifierConfig): string {
    return this.box.fingerprint(canonicalJson(c));
  }

  /** The ids of the file notifiers stored by the previous start, with their fingerprints. */
  fileState(): Map<string, string> {
    const rows = this.db.prepare("SELECT id, fingerprint FROM notifier_configs WHERE source = 'file'").all() as Array<{ id: string; fingerprint: string }>;
    return new Map(rows.map((r) => [r.id, r.fingerprint]));
  }

  /** Replaces every file notifier with these (one transaction). */
  replaceFile(list: Notifier[]): void {
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM notifier_configs WHERE source = 'file'").run();
      for (const n of list) this.insert(n);
    })();
  }
}
