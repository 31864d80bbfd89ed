/**
 * Alarm detector rules in the shared PostgreSQL (table custody_detector_rules, migration 401):
 * the rule set every node runs. A change made on one node (POST /v1/rules, an approved
 * loosening, a node's rules.json) is a row UPDATE that takes a new `rev` from one sequence;
 * every node's engine polls max(rev) (alarms/detectors/engine.ts, every second by default) and
 * reloads and recompiles the rules when it moved, so a change reaches the others within ~1 s.
 *
 * Seeding the default pack is insert-if-absent (ON CONFLICT DO NOTHING): two nodes starting at
 * once install it once, and a node starting later never undoes an admin's change to a rule of
 * the pack. Learned silence cadences stay per node (custody.db), as does the threshold counting:
 * a burst split across nodes is counted on each node separately (docs/PRODUCTION.md).
 */
import type pg from 'pg';
import type { Rule } from '../../alarms/detectors/rule.js';
import { storedRuleOf, type RuleOrigin, type RuleRow, type RuleStoreApi, type StoredRule } from '../../alarms/detectors/store.js';
import { pgStorageError } from './pool.js';

export class PgRuleStore implements RuleStoreApi {
  constructor(private readonly pool: pg.Pool) {}

  async rules(): Promise<Array<StoredRule | { id: string; error: string }>> {
    try {
      const r = await this.pool.query<RuleRow>('SELECT id, body, origin, created_at, updated_at, updated_by FROM custody_detector_rules ORDER BY id');
      return r.rows.map(storedRuleOf);
    } catch (e) {
      throw pgStorageError(e, 'read the alarm rules', 'read');
    }
  }

  async get(id: string): Promise<StoredRule | undefined> {
    let rows: RuleRow[];
    try {
      rows = (await this.pool.query<RuleRow>('SELECT id, body, origin, created_at, updated_at, updated_by FROM custody_detector_rules WHERE id = $1', [id])).rows;
    } catch (e) {
      throw pgStorageError(e, 'read an alarm rule', 'read');
    }
    if (rows.length === 0) return undefined;
    const s = storedRuleOf(rows[0]!);
    if ('error' in s) throw new Error(s.error);
    return s;
  }

  async put(rule: Rule, origin: RuleOrigin, by: string): Promise<void> {
    await this.write([rule], origin, by, false);
  }

  async putMany(rules: Rule[], origin: RuleOrigin, by: string): Promise<void> {
    await this.write(rules, origin, by, origin === 'default');
  }

  async revision(): Promise<string> {
    try {
      const r = await this.pool.query<{ rev: string }>('SELECT coalesce(max(rev), 0)::text AS rev FROM custody_detector_rules');
      return r.rows[0]!.rev;
    } catch (e) {
      throw pgStorageError(e, 'read the alarm rules revision', 'read');
    }
  }

  private async write(rules: Rule[], origin: RuleOrigin, by: string, ifAbsent: boolean): Promise<void> {
    if (rules.length === 0) return;
    const now = new Date().toISOString();
    const conflict = ifAbsent
      ? 'ON CONFLICT (id) DO NOTHING'
      : `ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by, rev = nextval('custody_detector_rules_rev')`;
    try {
      await this.pool.query(
        `INSERT INTO custody_detector_rules (id, body, origin, created_at, updated_at, updated_by)
         SELECT id, body, $3, $4, $4, $5 FROM unnest($1::text[], $2::text[]) AS t(id, body) ${conflict}`,
        [rules.map((r) => r.id), rules.map((r) => JSON.stringify(r)), origin, now, by],
      );
    } catch (e) {
      throw pgStorageError(e, 'store an alarm rule', 'not-committed');
    }
  }
}
