/**
 * Connections to the shared PostgreSQL, and how its failures reach the API.
 *
 * A lost connection, a server that is restarting or refusing connections, or a transaction
 * PostgreSQL aborted to resolve a conflict is temporary: it becomes STORAGE_UNAVAILABLE (503
 * with Retry-After) so producers retry instead of the vault buffering without bound.
 */
import pg from 'pg';
import { CustodyError } from '../../errors.js';

export type { Pool, PoolClient } from 'pg';

export interface PgPoolOptions {
  /** postgres://user:password@host:port/database (the password is never logged). */
  connectionString: string;
  max?: number;
  /** Fail a connection attempt after this long (the server is down or unreachable). */
  connectTimeoutMs?: number;
  /** Give up on a query after this long (a hung server or a partition); a COMMIT that times out has an unknown outcome. */
  queryTimeoutMs?: number;
  /** Called for errors on idle connections (the server restarted); they are dropped either way. */
  onIdleError?: (e: Error) => void;
}

/** A pool with TCP keepalive, a connect timeout and idle-error handling (an unhandled one would kill the process). */
export function createPool(o: PgPoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: o.connectionString,
    max: o.max ?? 10,
    connectionTimeoutMillis: o.connectTimeoutMs ?? 5_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 1_000,
    idleTimeoutMillis: 30_000,
    query_timeout: o.queryTimeoutMs ?? 15_000,
  });
  pool.on('error', (e) => o.onIdleError?.(e));
  return pool;
}

/**
 * SQLSTATE classes after which the same request may succeed later: 08 connection exception,
 * 53 insufficient resources, 57P01-57P03 admin/crash shutdown or "cannot connect now", 40001
 * serialization failure, 40P01 deadlock (PostgreSQL 15 manual, appendix A "Error Codes").
 */
function temporarySqlState(code: string | undefined): boolean {
  if (!code) return false;
  return code.startsWith('08') || code.startsWith('53') || code === '57P01' || code === '57P02' || code === '57P03' || code === '40001' || code === '40P01' || code === '55P03';
}

const NET_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

/** Whether `e` is a failure of the connection or a temporary refusal (worth a retry). */
export function isTemporaryPgError(e: unknown): boolean {
  const err = e as { code?: string; message?: string } | undefined;
  if (!err) return false;
  if (temporarySqlState(err.code) || NET_ERRNO.has(err.code ?? '')) return true;
  const m = err.message ?? '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended|the database system is (starting up|shutting down|in recovery)/i.test(m);
}

/**
 * Maps a PostgreSQL failure to the API's error. `outcome` says what is known about the write:
 * 'not-committed' (nothing was stored; a retry is safe) or 'unknown' (the connection dropped
 * while COMMIT was in flight: the batch may or may not be stored; the producer's retry is
 * deduplicated by its dedupe key). Never used for a write that is known to be committed.
 */
export function pgStorageError(e: unknown, what: string, outcome: 'not-committed' | 'unknown' | 'read' = 'not-committed'): CustodyError {
  if (e instanceof CustodyError) return e;
  const err = e as { code?: string; message?: string };
  const sqlstate = typeof err?.code === 'string' ? err.code : undefined;
  if (isTemporaryPgError(e)) {
    const tail =
      outcome === 'unknown'
        ? ' The connection was lost while the commit was in flight, so it is not known whether the batch was stored; send it again (the vault drops a repeat with the same dedupe key).'
        : outcome === 'not-committed'
          ? ' Nothing was stored; send it again.'
          : '';
    return new CustodyError('STORAGE_UNAVAILABLE', `Could not ${what}: the database cannot be reached or is restarting; retry in a second.${tail}`, { retryAfter: 1, outcome, sqlstate }, { cause: e });
  }
  if (sqlstate?.startsWith('28') || sqlstate === '3D000') {
    return new CustodyError('CONFIG', `Could not ${what}: the database refused the connection (${sqlstate}: ${err.message}). Check the user, password and database name in the --database URL.`, { outcome, sqlstate }, { cause: e });
  }
  return new CustodyError('INTERNAL', `Could not ${what}: the database refused it (${sqlstate ?? 'no SQLSTATE'}: ${err?.message ?? String(e)}).`, { outcome, sqlstate }, { cause: e });
}

/** Whether `e` is a write whose outcome is unknown (see pgStorageError). */
export function isUnknownOutcome(e: unknown): boolean {
  return e instanceof CustodyError && e.details?.outcome === 'unknown';
}

const swallow = (): void => undefined;

/**
 * Checks a client out of the pool with an 'error' listener attached: a server that ends the
 * session between two queries of a checked-out client (a restart) makes the client emit
 * 'error', which would otherwise be an uncaught exception. The failure still reaches the
 * caller through its next query. Give it back with `checkin`.
 */
export async function checkout(pool: pg.Pool): Promise<pg.PoolClient> {
  const c = await pool.connect();
  c.on('error', swallow);
  return c;
}

/** Returns a client from `checkout`; a client that failed is destroyed, not reused. */
export function checkin(c: pg.PoolClient, failed?: Error): void {
  c.off('error', swallow);
  c.release(failed);
}
