/**
 * Where rules and learned cadences live: custody.db, tables `detector_rules` (one row per
 * rule, its JSON as stored) and `detector_cadence` (per silence rule and watched key: when
 * it was last seen, its usual gap, whether it is silent now), so a restart forgets neither.
 */
import type Database from 'better-sqlite3';
import { validateRule, type Rule } from './rule.js';

export type RuleOrigin = 'default' | 'file' | 'api';

export interface StoredRule {
  rule: Rule;
  origin: RuleOrigin;
  createdAt: string;
  updatedAt: string;
  /** Who last changed it: a principal name, "default pack" or the rules file. */
  updatedBy: string;
}

export interface RuleRow {
  id: string;
  body: string;
  origin: string;
  created_at: string;
  updated_at: string;
  updated_by: string;
}

export interface CadenceRow {
  rule: string;
  key: string;
  source: string;
  producer: string;
  lastSeen: number;
  /** Average gap between arrivals (EWMA), ms; null before the first gap. */
  ewmaMs: number | null;
  /** Longest recent gap, ms (decays with each arrival). */
  maxGapMs: number;
  samples: number;
  /** When the silence alarm was raised; null while the key is not silent. */
  silentSince: number | null;
}

/**
 * Where the engine's rule set lives: this node's custody.db (localRuleStore) or, on a shared
 * vault, PostgreSQL (storage/pg/rules.ts PgRuleStore) so every node runs the same rules.
 * Learned cadences stay in custody.db on each node (DetectorStore) either way.
 */
export interface RuleStoreApi {
  rules(): Promise<Array<StoredRule | { id: string; error: string }>>;
  get(id: string): Promise<StoredRule | undefined>;
  put(rule: Rule, origin: RuleOrigin, by: string): Promise<void>;
  /** Origin "default": rules already present (another node's, or an admin's change) are kept. */
  putMany(rules: Rule[], origin: RuleOrigin, by: string): Promise<void>;
  /** Changes with every change on any node; absent when only this process changes the rules. */
  revision?(): Promise<string>;
}

/** A stored row as a rule, or the reason it no longer validates. */
export function storedRuleOf(r: RuleRow): StoredRule | { id: string; error: string } {
  try {
    return { rule: validateRule(JSON.parse(r.body)), origin: r.origin as RuleOrigin, createdAt: r.created_at, updatedAt: r.updated_at, updatedBy: r.updated_by };
  } catch (e) {
    return { id: r.id, error: (e as Error).message };
  }
}

/** custody.db's rules behind the async interface (the embedded vault). */
export function localRuleStore(s: DetectorStore): RuleStoreApi {
  return {
    rules: async () => s.rules(),
    get: async (id) => s.get(id),
    put: async (rule, origin, by) => s.put(rule, origin, by),
    putMany: async (rules, origin, by) => s.putMany(rules, origin, by),
  };
}

export class DetectorStore {
  constructor(private readonly db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS detector_rules (id TEXT PRIMARY KEY, body TEXT NOT NULL, origin TEXT NOT NULL,
               created_at TEXT NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS detector_cadence (rule TEXT NOT NULL, key TEXT NOT NULL, source TEXT NOT NULL,
               producer TEXT NOT NULL, last_seen INTEGER NOT NULL, ewma_ms REAL, max_gap_ms REAL NOT NULL,
               samples INTEGER NOT NULL, silent_since INTEGER, PRIMARY KEY (rule, key)) WITHOUT ROWID;`);
  }

  /** Every stored rule; a row that no longer validates is returned as an error instead. */
  rules(): Array<StoredRule | { id: string; error: string }> {
    const rows = this.db.prepare('SELECT * FROM detector_rules ORDER BY id').all() as RuleRow[];
    return rows.map((r) => {
      try {
        return { rule: validateRule(JSON.parse(r.body)), origin: r.origin as RuleOrigin, createdAt: r.created_at, updatedAt: r.updated_at, updatedBy: r.updated_by };
      } catch (e) {
        return { id: r.id, error: (e as Error).message };
      }
    });
  }

  get(id: string): StoredRule | undefined {
    const r = this.db.prepare('SELECT * FROM detector_rules WHERE id = ?').get(id) as RuleRow | undefined;
    if (!r) return undefined;
    return { rule: validateRule(JSON.parse(r.body)), origin: r.origin as RuleOrigin, createdAt: r.created_at, updatedAt: r.updated_at, updatedBy: r.updated_by };
  }

  has(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM detector_rules WHERE id = ?').get(id) !== undefined;
  }

  put(rule: Rule, origin: RuleOrigin, by: string): void {
    const now = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO detector_rules (id, body, origin, created_at, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      )
      .run(rule.id, JSON.stringify(rule), origin, now, now, by);
  }

  putMany(rules: Rule[], origin: RuleOrigin, by: string): void {
    this.db.transaction(() => {
      for (const r of rules) this.put(r, origin, by);
    })();
  }

  cadences(): CadenceRow[] {
    const rows = this.db.prepare('SELECT * FROM detector_cadence').all() as Array<{ rule: string; key: string; source: string; producer: string; last_seen: number; ewma_ms: number | null; max_gap_ms: number; samples: number; silent_since: number | null }>;
    return rows.map((r) => ({ rule: r.rule, key: r.key, source: r.source, producer: r.producer, lastSeen: r.last_seen, ewmaMs: r.ewma_ms, maxGapMs: r.max_gap_ms, samples: r.samples, silentSince: r.silent_since }));
  }

  saveCadences(rows: CadenceRow[]): void {
    if (rows.length === 0) return;
    const st = this.db.prepare(
      `INSERT INTO detector_cadence (rule, key, source, producer, last_seen, ewma_ms, max_gap_ms, samples, silent_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (rule, key) DO UPDATE SET last_seen = excluded.last_seen, ewma_ms = excluded.ewma_ms, max_gap_ms = excluded.max_gap_ms,
         samples = excluded.samples, silent_since = excluded.silent_since`,
    );
    this.db.transaction(() => {
      for (const r of rows) st.run(r.rule, r.key, r.source, r.producer, r.lastSeen, r.ewmaMs, r.maxGapMs, r.samples, r.silentSince);
    })();
  }
}
