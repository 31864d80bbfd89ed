/**
 * Notifiers in custody.db, table `notifier_configs`: the configuration without its secrets in
 * plain JSON, the secrets sealed (secrets.ts). Notifiers from <data>/notifiers.json are written
 * here too (source "file") at every start, replacing the previous file's, so the audit log can
 * say what changed in the file.
 */
import type Database from 'better-sqlite3';
import type { SecretBox } from './secrets.js';
import type { Notifier, NotifierConfig } from './types.js';
import { splitSecrets } from './config.js';

interface Row {
  id: string;
  type: string;
  source: string;
  config: string;
  secrets: string;
  fingerprint: string;
  created_at: string;
  created_by: string;
}

export class NotifierStore {
  constructor(
    private readonly db: Database.Database,
    private readonly box: SecretBox,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS notifier_configs (
      id TEXT PRIMARY KEY, type TEXT NOT NULL, source TEXT NOT NULL CHECK (source IN ('api','file')),
      config TEXT NOT NULL, secrets TEXT NOT NULL, fingerprint TEXT NOT NULL,
      created_at TEXT NOT NULL, created_by TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS notifier_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
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
  private toNotifier(r: Row): Notifier & { broken?: string } {
    const plain = JSON.parse(r.config) as Record<string, unknown>;
    let secrets: Record<string, string> = {};
    let broken: string | undefined;
    try {
      secrets = this.box.open(r.id, r.secrets);
    } catch (e) {
      broken = (e as Error).message;
    }
    const config = { ...plain, ...secrets } as unknown as NotifierConfig;
    return { id: r.id, config, source: r.source as Notifier['source'], createdAt: r.created_at, createdBy: r.created_by, ...(broken ? { broken } : {}) };
  }

  list(): Array<Notifier & { broken?: string }> {
    return (this.db.prepare('SELECT * FROM notifier_configs ORDER BY created_at, id').all() as Row[]).map((r) => this.toNotifier(r));
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

  /** A keyed fingerprint of the whole configuration, secrets included. */
  fingerprint(c: NotifierConfig): string {
    return this.box.fingerprint(JSON.stringify(c));
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
