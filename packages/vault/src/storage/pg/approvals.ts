/**
 * Approval requests in the shared PostgreSQL (table custody_approvals, migration 200), so the
 * two-person rule holds across nodes: every decision is one compare-and-set UPDATE
 * (`WHERE status = 'pending' AND expires_at > $now`), and only the caller whose UPDATE changed
 * the row executes the action. Under READ COMMITTED a second, racing UPDATE waits for the
 * first one's row lock, then re-checks its WHERE on the committed row (PostgreSQL manual,
 * 13.2.1 "Read Committed Isolation Level"), finds it no longer pending and changes nothing.
 *
 * Times come from the injected clock (like the custody.db store), not from now(), so tests
 * with a fake admin clock see the same expiry on both stores.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { toApproval as approvalOf, type Approval, type ApprovalDbRow, type ApprovalStatus, type ApprovalStoreApi } from '../../auth/approvals.js';
import type { PrincipalRow } from '../db.js';
import { pgStorageError } from './pool.js';

/** An approval row as PostgreSQL returns it: times as Dates. */
interface Row extends Omit<ApprovalDbRow, 'requested_at' | 'expires_at' | 'decided_at'> {
  requested_at: Date;
  expires_at: Date;
  decided_at: Date | null;
}

function toApproval(r: Row): Approval {
  return approvalOf({ ...r, requested_at: r.requested_at.toISOString(), expires_at: r.expires_at.toISOString(), decided_at: r.decided_at === null ? null : r.decided_at.toISOString() });
}

const COLUMNS = 'id, action, params, description, requested_by, requested_by_id, requested_at, expires_at, status, decided_by, decided_at, result';

export class PgApprovalStore implements ApprovalStoreApi {
  constructor(
    private readonly pool: pg.Pool,
    readonly now: () => number = Date.now,
  ) {}

  private async q<R extends pg.QueryResultRow>(what: string, sql: string, args: unknown[], outcome: 'not-committed' | 'read' = 'not-committed'): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, args);
    } catch (e) {
      throw pgStorageError(e, what, outcome);
    }
  }

  async add(a: { action: string; params: Record<string, unknown>; description: string; by: PrincipalRow; expiresInMinutes: number }): Promise<Approval> {
    const now = this.now();
    const r = await this.q<Row>(
      'store the approval request',
      `INSERT INTO custody_approvals (id, action, params, description, requested_by, requested_by_id, requested_at, expires_at, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending') RETURNING ${COLUMNS}`,
      ['apr_' + randomBytes(9).toString('base64url'), a.action, JSON.stringify(a.params), a.description, a.by.name, a.by.id, new Date(now), new Date(now + a.expiresInMinutes * 60_000)],
    );
    return toApproval(r.rows[0]!);
  }

  async get(id: string): Promise<Approval | undefined> {
    const r = await this.q<Row>('read the approval request', `SELECT ${COLUMNS} FROM custody_approvals WHERE id = $1`, [id], 'read');
    return r.rows[0] && toApproval(r.rows[0]);
  }

  async list(q: { status?: ApprovalStatus; limit?: number } = {}): Promise<Approval[]> {
    const limit = q.limit ?? 100;
    const r = q.status
      ? await this.q<Row>('list approval requests', `SELECT ${COLUMNS} FROM custody_approvals WHERE status = $1 ORDER BY requested_at DESC, seq DESC LIMIT $2`, [q.status, limit], 'read')
      : await this.q<Row>('list approval requests', `SELECT ${COLUMNS} FROM custody_approvals ORDER BY requested_at DESC, seq DESC LIMIT $1`, [limit], 'read');
    return r.rows.map(toApproval);
  }

  async expireDue(): Promise<Approval[]> {
    // One statement: a request expired by another node at the same moment is returned by only
    // one of them (the row lock + re-check of status), so each expiry is audited once.
    const r = await this.q<Row>(
      'expire approval requests',
      `UPDATE custody_approvals SET status = 'expired', decided_at = $1
        WHERE status = 'pending' AND expires_at <= $1 RETURNING ${COLUMNS}`,
      [new Date(this.now())],
    );
    return r.rows.map(toApproval);
  }

  async decide(id: string, status: 'approved' | 'denied' | 'cancelled', by: string, result: Record<string, unknown> | null = null): Promise<boolean> {
    const now = new Date(this.now());
    const r = await this.q(
      'record the decision',
      `UPDATE custody_approvals SET status = $1, decided_by = $2, decided_at = $3, result = $4
        WHERE id = $5 AND status = 'pending' AND expires_at > $3 RETURNING id`,
      [status, by, now, result === null ? null : JSON.stringify(result), id],
    );
    return r.rowCount === 1;
  }

  async finish(id: string, status: 'approved' | 'failed', result: Record<string, unknown>): Promise<void> {
    await this.q('record the result of the approved action', `UPDATE custody_approvals SET status = $1, result = $2 WHERE id = $3 AND status = 'approved'`, [status, JSON.stringify(result), id]);
  }
}
