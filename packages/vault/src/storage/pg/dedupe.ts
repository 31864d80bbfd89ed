/**
 * Dedupe keys in the shared PostgreSQL (table custody_dedupe, migration 400): a record resent to
 * another node is stored once.
 *
 * One node alone orders requests carrying the same key in memory (ingest/pipeline.ts); across
 * nodes the database does it, with a claim taken BEFORE the append:
 *
 *   claim    INSERT … ON CONFLICT (key) DO UPDATE … WHERE the row is a stale claim … RETURNING key
 *            A returned key is ours: this node appends the record. A key not returned is either
 *            stored (log/idx set: answered "duplicate" with where the first copy is) or claimed
 *            by another node right now (waited for, up to CLAIM_WAIT_MS, polling).
 *   remember UPDATE the claims to point at the stored index, once the record is durable.
 *   release  DELETE our claims whose append failed, so a resend (or the waiting node) stores it.
 *
 * A claim whose node died between claim and remember (crash, lost connection) is never released
 * by that node. It becomes stale after CLAIM_TTL_MS and the next copy takes it over. So a crash
 * can cost a second copy of a record (if the append was durable but the remember was not) —
 * never a lost record — the same promise as the embedded store (storage/db.ts DedupeStore).
 * A copy arriving while another node's claim is held and not resolved within CLAIM_WAIT_MS is
 * refused with PUSHBACK (retryable), not answered "duplicate": the first copy may still fail.
 * CLAIM_TTL_MS must exceed any append's duration, else two nodes could both store the record.
 *
 * Keys: the pipeline's 16-byte SHA-256 prefix of the dedupe key is keyed again with HMAC-SHA-256
 * under the vault key "sqlite-dedupe" (shared by all nodes) before it reaches the database, so the
 * table — unencrypted at rest, unlike dedupe.db — cannot confirm that a guessable eventID is held.
 */
import { createHmac } from 'node:crypto';
import type pg from 'pg';
import type { DedupeStoreApi, DedupePosition } from '../db.js';
import { pgStorageError } from './pool.js';

export class PgDedupeStore implements DedupeStoreApi {
  static CLAIM_TTL_MS = 120_000;
  static CLAIM_WAIT_MS = 10_000;
  static POLL_MS = 50;
  private readonly mac: Buffer;

  constructor(
    private readonly pool: pg.Pool,
    private readonly nodeId: string,
    vaultKey: Buffer,
  ) {
    this.mac = createHmac('sha256', vaultKey).update('custody shared dedupe keys v1').digest();
  }

  private dbKey(k: Buffer): Buffer {
    return createHmac('sha256', this.mac).update(k).digest().subarray(0, 16);
  }

  /**
   * Claims the keys not stored yet. Returns where the already stored ones are; `busy` holds the
   * keys (hex of the caller's keys) another node still claimed after waiting CLAIM_WAIT_MS.
   */
  async claim(keys: Buffer[]): Promise<{ seen: Map<string, DedupePosition>; busy: Set<string> }> {
    const seen = new Map<string, DedupePosition>();
    const busy = new Set<string>();
    if (keys.length === 0) return { seen, busy };
    const byDb = new Map<string, string>();
    const todo0: Buffer[] = [];
    for (const k of keys) {
      const d = this.dbKey(k);
      const dh = d.toString('hex');
      if (byDb.has(dh)) continue;
      byDb.set(dh, k.toString('hex'));
      todo0.push(d);
    }
    let todo = todo0.sort(Buffer.compare);
    const deadline = Date.now() + PgDedupeStore.CLAIM_WAIT_MS;
    for (;;) {
      let rows: Array<{ key: Buffer; log: string | null; idx: string | null; mine: boolean }>;
      try {
        const r = await this.pool.query<{ key: Buffer; log: string | null; idx: string | null; mine: boolean }>(
          `WITH want AS (SELECT unnest($1::bytea[]) AS key),
           got AS (
             INSERT INTO custody_dedupe (key, claimed_by, claimed_at)
             SELECT key, $2, now() FROM want ORDER BY key
             ON CONFLICT (key) DO UPDATE SET claimed_by = EXCLUDED.claimed_by, claimed_at = now()
               WHERE custody_dedupe.idx IS NULL AND custody_dedupe.claimed_at < now() - make_interval(secs => $3::double precision / 1000)
             RETURNING key)
           SELECT w.key, d.log, d.idx::text AS idx, (g.key IS NOT NULL) AS mine
             FROM want w LEFT JOIN got g ON g.key = w.key LEFT JOIN custody_dedupe d ON d.key = w.key`,
          [todo, this.nodeId, PgDedupeStore.CLAIM_TTL_MS],
        );
        rows = r.rows;
      } catch (e) {
        // Two nodes inserting overlapping key sets: the keys go in sorted order (ORDER BY key),
        // so they lock rows in one order; a deadlock or serialization failure that still
        // happens rolled the whole statement back: ask again.
        const code = (e as { code?: string }).code;
        if ((code === '40P01' || code === '40001') && Date.now() < deadline) {
          await new Promise((res) => setTimeout(res, PgDedupeStore.POLL_MS));
          continue;
        }
        throw pgStorageError(e, 'claim dedupe keys', 'not-committed');
      }
      const again: Buffer[] = [];
      for (const r of rows) {
        if (r.mine) continue;
        // The CTE's SELECT sees the table as before the statement: a row absent there was
        // inserted concurrently by another statement only if `mine` is false and it is absent,
        // so it is held by someone else; ask again.
        if (r.log !== null && r.idx !== null) seen.set(byDb.get(r.key.toString('hex'))!, { log: r.log, index: Number(r.idx) });
        else again.push(r.key);
      }
      if (again.length === 0) break;
      if (Date.now() >= deadline) {
        for (const k of again) busy.add(byDb.get(k.toString('hex'))!);
        break;
      }
      await new Promise((res) => setTimeout(res, PgDedupeStore.POLL_MS));
      todo = again;
    }
    return { seen, busy };
  }

  /** Points this node's claims at the stored records (their records are durable). */
  async remember(rows: Array<{ key: Buffer; log: string; index: number }>): Promise<void> {
    if (rows.length === 0) return;
    // sorted by key, so two statements lock shared rows in one order
    const sorted = rows.map((r) => ({ k: this.dbKey(r.key), r })).sort((x, y) => Buffer.compare(x.k, y.k));
    try {
      await this.pool.query(
        `UPDATE custody_dedupe d SET log = u.log, idx = u.idx
           FROM (SELECT unnest($1::bytea[]) AS key, unnest($2::text[]) AS log, unnest($3::bigint[]) AS idx) u
          WHERE d.key = u.key AND d.idx IS NULL`,
        [sorted.map((x) => x.k), sorted.map((x) => x.r.log), sorted.map((x) => String(x.r.index))],
      );
    } catch (e) {
      // The records are stored; a lost pointer only lets a later copy (after CLAIM_TTL_MS) in again.
      throw pgStorageError(e, 'remember dedupe keys', 'unknown');
    }
  }

  /** Drops this node's open claims of keys whose records were not stored. */
  async release(keys: Buffer[]): Promise<void> {
    if (keys.length === 0) return;
    try {
      await this.pool.query('DELETE FROM custody_dedupe WHERE key = ANY($1::bytea[]) AND idx IS NULL AND claimed_by = $2', [keys.map((k) => this.dbKey(k)).sort(Buffer.compare), this.nodeId]);
    } catch {
      // Left as a claim: it goes stale after CLAIM_TTL_MS and the next copy takes it over.
    }
  }
}
