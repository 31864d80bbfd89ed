/**
 * Admins' TOTP state in the shared PostgreSQL (tables custody_admin_totp and
 * custody_admin_totp_failures, migration 201), so a code used on one node is refused on every
 * other and wrong codes on any node count towards one lockout. Secrets arrive sealed by
 * AdminTotp (AES-256-GCM under the keyring's vault key "totp-secrets"); this store never sees
 * one in the clear.
 *
 * A step is used up by one compare-and-set UPDATE (`last_step < $step`): under READ COMMITTED
 * a concurrent UPDATE of the same admin waits for the row lock, then re-checks its WHERE on
 * the committed row (PostgreSQL manual 13.2.1), so of two requests carrying one code — on two
 * nodes — exactly one passes. Keeping the last step (not a set of used steps) also refuses an
 * older code once a newer one was used, as the custody.db store does (RFC 6238 §5.2: a
 * verifier must not accept the second attempt of the OTP after the first succeeded).
 */
import type pg from 'pg';
import type { TotpFailures, TotpRecord, TotpStoreApi } from '../../auth/totp.js';
import { pgStorageError } from './pool.js';

export class PgTotpStore implements TotpStoreApi {
  constructor(private readonly pool: pg.Pool) {}

  private async q<R extends pg.QueryResultRow>(what: string, sql: string, args: unknown[], outcome: 'not-committed' | 'read' = 'not-committed'): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, args);
    } catch (e) {
      throw pgStorageError(e, what, outcome);
    }
  }

  async get(principalId: string): Promise<TotpRecord | undefined> {
    const r = await this.q<{ secret: Buffer | null; pending: Buffer | null; last_step: string | null }>(
      'read the second factor',
      'SELECT secret, pending, last_step FROM custody_admin_totp WHERE principal_id = $1',
      [principalId],
      'read',
    );
    const row = r.rows[0];
    return row && { secret: row.secret, pending: row.pending, lastStep: row.last_step === null ? null : Number(row.last_step) };
  }

  async setPending(principalId: string, sealed: Buffer, atIso: string): Promise<void> {
    await this.q(
      'store the new second-factor secret',
      `INSERT INTO custody_admin_totp (principal_id, pending, pending_at) VALUES ($1, $2, $3)
       ON CONFLICT (principal_id) DO UPDATE SET pending = excluded.pending, pending_at = excluded.pending_at`,
      [principalId, sealed, atIso],
    );
  }

  async activate(principalId: string, active: Buffer, atIso: string, step: number, expectedPending: Buffer): Promise<boolean> {
    const r = await this.q(
      'activate the second factor',
      `UPDATE custody_admin_totp SET secret = $1, enrolled_at = $2, pending = NULL, pending_at = NULL, last_step = $3
        WHERE principal_id = $4 AND pending = $5`,
      [active, atIso, step, principalId, expectedPending],
    );
    return r.rowCount === 1;
  }

  async useStep(principalId: string, step: number): Promise<boolean> {
    const r = await this.q(
      'record the used code',
      `UPDATE custody_admin_totp SET last_step = $1
        WHERE principal_id = $2 AND secret IS NOT NULL AND (last_step IS NULL OR last_step < $1)`,
      [step, principalId],
    );
    return r.rowCount === 1;
  }

  async failures(principalId: string): Promise<TotpFailures | undefined> {
    const r = await this.q<{ count: number; last_ms: string }>('read the wrong-code count', 'SELECT count, last_ms FROM custody_admin_totp_failures WHERE principal_id = $1', [principalId], 'read');
    const row = r.rows[0];
    return row && { count: row.count, last: Number(row.last_ms) };
  }

  async addFailure(principalId: string, now: number, windowMs: number): Promise<void> {
    // One statement: wrong codes arriving on several nodes at once all count.
    await this.q(
      'count the wrong code',
      `INSERT INTO custody_admin_totp_failures AS f (principal_id, count, last_ms) VALUES ($1, 1, $2)
       ON CONFLICT (principal_id) DO UPDATE SET
         count = CASE WHEN $2 - f.last_ms < $3 THEN f.count + 1 ELSE 1 END,
         last_ms = GREATEST(f.last_ms, $2)`,
      [principalId, now, windowMs],
    );
  }

  async clearFailures(principalId: string): Promise<void> {
    await this.q('clear the wrong-code count', 'DELETE FROM custody_admin_totp_failures WHERE principal_id = $1', [principalId]);
  }

  /** Forgets an admin's second factor (the admin enrolls again). */
  async reset(principalId: string): Promise<boolean> {
    const r = await this.q('reset the second factor', 'DELETE FROM custody_admin_totp WHERE principal_id = $1', [principalId]);
    await this.clearFailures(principalId);
    return (r.rowCount ?? 0) > 0;
  }
}
