/**
 * The vault's shared state in PostgreSQL (migration 100, README.md in this folder): the
 * configuration (what vault.json holds on an embedded vault), the keyring in its sealed form
 * only, the logs (custody_logs + kind) and the principals (token hashes only).
 *
 * Every node reads it at start; the first node to start creates it, inside one transaction
 * that holds the advisory lock VAULT_LOCK, so two nodes starting at once cannot both create a
 * vault. Changes bump custody_vault.keyring_version / principals_version in the same
 * transaction and NOTIFY custody_vault, so other nodes notice them at once (LISTEN) or at
 * their next poll (`versions()`).
 */
import type pg from 'pg';
import { CustodyError } from '../../errors.js';
import type { LogRow, PrincipalRow } from '../db.js';
import { checkout, checkin, pgStorageError } from './pool.js';

/** Advisory lock of vault creation and keyring changes: "CUVT". */
export const VAULT_LOCK: readonly [number, number] = [0x43555654, 0];
export const VAULT_CHANNEL = 'custody_vault';

export interface SharedVaultRow {
  config: Record<string, unknown>;
  keyring: string;
  keyringVersion: number;
  principalsVersion: number;
}

interface PrincipalPgRow {
  id: string;
  name: string;
  role: PrincipalRow['role'];
  logs: string[] | null;
  token_hash: Buffer;
  created_at: string;
  created_by: string;
  revoked_at: string | null;
  revoked_by: string | null;
}

const toPrincipal = (r: PrincipalPgRow): PrincipalRow => ({
  id: r.id,
  name: r.name,
  role: r.role,
  logs: r.logs,
  createdAt: r.created_at,
  createdBy: r.created_by,
  revokedAt: r.revoked_at,
  revokedBy: r.revoked_by,
});

type Q = Pick<pg.PoolClient, 'query'>;

export class PgVaultStore {
  constructor(readonly pool: pg.Pool) {}

  /** The shared vault, or undefined when no node has created it yet. */
  async load(q: Q = this.pool): Promise<SharedVaultRow | undefined> {
    try {
      const r = await q.query<{ config: Record<string, unknown>; keyring: string; keyring_version: string; principals_version: string }>(
        'SELECT config, keyring, keyring_version, principals_version FROM custody_vault WHERE id = 1',
      );
      const row = r.rows[0];
      return row && { config: row.config, keyring: row.keyring, keyringVersion: Number(row.keyring_version), principalsVersion: Number(row.principals_version) };
    } catch (e) {
      throw pgStorageError(e, 'read the vault configuration', 'read');
    }
  }

  /** The change counters (one cheap query for the periodic reload). */
  async versions(): Promise<{ keyring: number; principals: number; logs: number }> {
    try {
      const r = await this.pool.query<{ k: string; p: string; n: string }>(
        'SELECT keyring_version AS k, principals_version AS p, (SELECT count(*) FROM custody_logs) AS n FROM custody_vault WHERE id = 1',
      );
      const row = r.rows[0];
      if (!row) throw new CustodyError('CONFIG', 'The shared vault configuration is missing from the database (custody_vault is empty): was the database replaced? Restore it from its backup.');
      return { keyring: Number(row.k), principals: Number(row.p), logs: Number(row.n) };
    } catch (e) {
      throw pgStorageError(e, 'read the vault change counters', 'read');
    }
  }

  /**
   * Runs `fn` in one transaction holding VAULT_LOCK (vault creation, a new log, a keyring
   * change): nodes doing the same wait for each other. Commits when `fn` resolves.
   */
  async withLock<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let c: pg.PoolClient;
    try {
      c = await checkout(this.pool);
    } catch (e) {
      throw pgStorageError(e, what);
    }
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1, $2)', [VAULT_LOCK[0], VAULT_LOCK[1]]);
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch((re: unknown) => {
        broken = re as Error;
      });
      throw pgStorageError(e, what);
    } finally {
      checkin(c, broken);
    }
  }

  /** Inside withLock: creates the vault row. */
  async create(c: Q, config: Record<string, unknown>, keyring: string): Promise<void> {
    await c.query('INSERT INTO custody_vault (id, config, keyring) VALUES (1, $1, $2)', [JSON.stringify(config), keyring]);
    await c.query(`SELECT pg_notify('${VAULT_CHANNEL}', 'created')`);
  }

  /** Inside withLock: replaces the sealed keyring (a new log, a rotation, a new vault key). */
  async saveKeyring(c: Q, keyring: string): Promise<number> {
    const r = await c.query<{ v: string }>('UPDATE custody_vault SET keyring = $1, keyring_version = keyring_version + 1 WHERE id = 1 RETURNING keyring_version AS v', [keyring]);
    await c.query(`SELECT pg_notify('${VAULT_CHANNEL}', 'keyring')`);
    return Number(r.rows[0]!.v);
  }

  /** Inside withLock: registers a log (its journal head and published state start at 0). */
  async addLog(c: Q, row: LogRow): Promise<void> {
    const have = await c.query<{ origin: string }>('SELECT origin FROM custody_logs WHERE name = $1', [row.name]);
    if (have.rows[0]) {
      if (have.rows[0].origin !== row.origin) throw new CustodyError('CONFIG', `Log "${row.name}" is registered in the database with origin "${have.rows[0].origin}", not "${row.origin}".`);
      await c.query('UPDATE custody_logs SET kind = $2 WHERE name = $1', [row.name, row.kind]);
      return;
    }
    await c.query('INSERT INTO custody_logs (name, origin, region, kind, created) VALUES ($1, $2, $3, $4, $5)', [row.name, row.origin, row.region, row.kind, row.createdAt]);
    await c.query('INSERT INTO custody_log_heads (log, next_index) VALUES ($1, 0)', [row.name]);
    await c.query('INSERT INTO custody_log_state (log, size) VALUES ($1, 0)', [row.name]);
    await c.query(`SELECT pg_notify('${VAULT_CHANNEL}', 'log')`);
  }

  async listLogs(q: Q = this.pool): Promise<LogRow[]> {
    try {
      const r = await q.query<{ name: string; origin: string; region: string | null; kind: 'region' | 'audit'; created: Date }>(
        `SELECT name, origin, region, kind, created FROM custody_logs ORDER BY kind DESC, name`,
      );
      return r.rows.map((x) => ({ name: x.name, origin: x.origin, region: x.region ?? x.name, kind: x.kind, createdAt: new Date(x.created).toISOString() }));
    } catch (e) {
      throw pgStorageError(e, 'read the list of logs', 'read');
    }
  }

  /** Adds a principal (the token's hash only); PRINCIPAL_EXISTS for a taken name. */
  async addPrincipal(p: Omit<PrincipalRow, 'revokedAt' | 'revokedBy'>, tokenHash: Buffer, q?: Q): Promise<void> {
    const run = async (c: Q): Promise<void> => {
      await c.query('INSERT INTO custody_principals (id, name, role, logs, token_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
        p.id,
        p.name,
        p.role,
        p.logs === null ? null : JSON.stringify(p.logs),
        tokenHash,
        p.createdAt,
        p.createdBy,
      ]);
      await c.query('UPDATE custody_vault SET principals_version = principals_version + 1 WHERE id = 1');
      await c.query(`SELECT pg_notify('${VAULT_CHANNEL}', 'principals')`);
    };
    try {
      if (q) await run(q);
      else await this.tx('add a principal', run);
    } catch (e) {
      if ((e as { code?: string }).code === '23505' || (e instanceof CustodyError && (e.cause as { code?: string } | undefined)?.code === '23505')) {
        throw new CustodyError('PRINCIPAL_EXISTS', `A principal named "${p.name}" already exists; choose another name.`);
      }
      throw e;
    }
  }

  /** Revokes a principal (idempotent); resolves once the revocation is committed. */
  async revokePrincipal(idOrName: string, by: string): Promise<PrincipalRow> {
    return this.tx('revoke a principal', async (c) => {
      const r = await c.query<PrincipalPgRow>('SELECT * FROM custody_principals WHERE id = $1 OR name = $1 FOR UPDATE', [idOrName]);
      const row = r.rows[0];
      if (!row) throw new CustodyError('PRINCIPAL_NOT_FOUND', `No principal "${idOrName}": list them with \`custody token list\`.`);
      if (row.revoked_at) return toPrincipal(row);
      const u = await c.query<PrincipalPgRow>('UPDATE custody_principals SET revoked_at = $2, revoked_by = $3 WHERE id = $1 RETURNING *', [row.id, new Date().toISOString(), by]);
      await c.query('UPDATE custody_vault SET principals_version = principals_version + 1 WHERE id = 1');
      await c.query(`SELECT pg_notify('${VAULT_CHANNEL}', 'principals')`);
      return toPrincipal(u.rows[0]!);
    });
  }

  /** Every principal with its token hash (for the node's in-memory authenticator). */
  async principalsWithHashes(): Promise<Array<{ principal: PrincipalRow; tokenHash: Buffer }>> {
    try {
      const r = await this.pool.query<PrincipalPgRow>('SELECT * FROM custody_principals ORDER BY created_at, name');
      return r.rows.map((x) => ({ principal: toPrincipal(x), tokenHash: x.token_hash }));
    } catch (e) {
      throw pgStorageError(e, 'read the principals', 'read');
    }
  }

  private async tx<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let c: pg.PoolClient;
    try {
      c = await checkout(this.pool);
    } catch (e) {
      throw pgStorageError(e, what);
    }
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch((re: unknown) => {
        broken = re as Error;
      });
      if (e instanceof CustodyError) throw e;
      if ((e as { code?: string }).code === '23505') throw e;
      throw pgStorageError(e, what);
    } finally {
      checkin(c, broken);
    }
  }
}
