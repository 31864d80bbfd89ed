/**
 * Leader election per log: which node integrates it (README.md in this folder).
 *
 * Each node keeps ONE dedicated connection (not from the pool) and takes, on it, the
 * session-level advisory lock pg_try_advisory_lock(LEADER_LOCK_NAMESPACE, custody_logs.id) of
 * every log it wants to integrate. The lock lives as long as the session: a killed process
 * closes its socket, PostgreSQL ends the session and the lock is free at once; a standby
 * polling every `pollMs` (≤ 1 s) then takes it.
 *
 * Losing the lock safely (network partition, hung server, stalled process):
 * - the session runs with idle_session_timeout = `sessionTimeoutMs` (3 s) and statement_timeout,
 *   so PostgreSQL itself ends a session that stops sending heartbeats, releasing its locks;
 * - the holder sends a heartbeat every `pollMs` and gives up (onLose, then closes the socket)
 *   when no heartbeat has succeeded for `heartbeatTimeoutMs` (2 s) measured from when it was
 *   SENT — strictly before the server can have ended the session (3 s after it went idle,
 *   which is after that send), so the old leader has stopped before a standby can acquire;
 * - fencing makes it safe even when that timing fails (a process paused for 10 s): every
 *   acquisition bumps custody_log_state.epoch, and `publishState` writes the new size and
 *   checkpoint only WHERE epoch = the writer's epoch AND the writer's lock session still holds
 *   the lock (pg_locks), in the same statement. A stale leader's write changes nothing and is
 *   refused.
 */
import pg from 'pg';
import { CustodyError } from '../../errors.js';
import { LEADER_LOCK_NAMESPACE } from './schema.js';
import { pgStorageError } from './pool.js';

/** What a node holds while it leads a log. */
export interface Lease {
  log: string;
  /** The fencing token: custody_log_state.epoch after this node's acquisition bumped it. */
  epoch: number;
  /** The backend pid of the session holding the lock (checked again at every publish). */
  pid: number;
  /** The published size and checkpoint as of the acquisition (recover from here). */
  size: number;
  checkpoint: string | null;
  acquiredAt: number;
}

export interface LeaderOptions {
  connectionString: string;
  node: string;
  address?: string;
  /** The logs this node is willing to integrate. */
  logs: string[];
  /** Heartbeat and standby poll interval; at most 1000 ms. */
  pollMs?: number;
  /** Give up leadership when no heartbeat succeeded for this long (< sessionTimeoutMs). */
  heartbeatTimeoutMs?: number;
  /** The server ends the lock session after this much silence (idle_session_timeout). */
  sessionTimeoutMs?: number;
  onAcquire: (lease: Lease) => void;
  /** Called at once when leadership is lost or given up: stop integrating `log`. */
  onLose: (log: string, reason: string) => void;
  onError?: (e: CustodyError) => void;
}

export class PgLeader {
  private client: pg.Client | null = null;
  private pid = 0;
  private ids = new Map<string, number>();
  private readonly held = new Map<string, Lease>();
  private lastOkSent = 0;
  private timer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;
  private tried = false;
  private readonly pollMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly sessionTimeoutMs: number;

  constructor(private readonly o: LeaderOptions) {
    this.pollMs = Math.min(1_000, Math.max(50, o.pollMs ?? 500));
    this.heartbeatTimeoutMs = o.heartbeatTimeoutMs ?? 2_000;
    this.sessionTimeoutMs = o.sessionTimeoutMs ?? 3_000;
    if (this.heartbeatTimeoutMs >= this.sessionTimeoutMs || this.pollMs * 2 > this.heartbeatTimeoutMs) {
      throw new CustodyError('CONFIG', 'Leader election timing must satisfy 2 × poll ≤ heartbeat timeout < session timeout.');
    }
  }

  start(): void {
    if (this.timer || this.stopped) return;
    const loop = (): void => {
      this.ticking = this.tick().finally(() => {
        this.ticking = null;
        if (!this.stopped) this.timer = setTimeout(loop, this.pollMs);
      });
    };
    this.timer = setTimeout(loop, 0);
    this.watchdog = setInterval(() => {
      if (this.held.size > 0 && Date.now() - this.lastOkSent > this.heartbeatTimeoutMs) {
        this.dropSession(`no heartbeat succeeded for ${this.heartbeatTimeoutMs} ms`);
      }
    }, 100);
  }

  /** The lease on `log` while this node leads it. */
  lease(log: string): Lease | undefined {
    return this.held.get(log);
  }

  /** Connected, and has tried at least once to take every log it does not lead. */
  get connected(): boolean {
    return this.client !== null && this.tried;
  }

  get leases(): Lease[] {
    return [...this.held.values()];
  }

  /** Gives up every lock (a clean shutdown: standbys take over at their next poll). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearInterval(this.watchdog);
    await this.ticking?.catch(() => undefined);
    const c = this.client;
    this.loseAll('this node is stopping');
    if (c) {
      this.client = null;
      await c.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
      await c.end().catch(() => undefined);
    }
  }

  private loseAll(reason: string): void {
    const logs = [...this.held.keys()];
    this.held.clear();
    for (const log of logs) {
      try {
        this.o.onLose(log, reason);
      } catch {
        /* the callback's own problem */
      }
    }
  }

  /** Stops leading (callbacks first), then cuts the session so the server frees the locks. */
  private dropSession(reason: string): void {
    this.tried = false;
    this.loseAll(reason);
    const c = this.client;
    this.client = null;
    if (c) {
      const stream = (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
      stream?.destroy();
      c.end().catch(() => undefined);
    }
  }

  private async connect(): Promise<pg.Client> {
    const c = new pg.Client({
      connectionString: this.o.connectionString,
      keepAlive: true,
      keepAliveInitialDelayMillis: 1_000,
      connectionTimeoutMillis: this.heartbeatTimeoutMs,
    });
    c.on('error', (e) => {
      if (this.client === c) this.dropSession(`the database connection failed: ${e.message}`);
    });
    c.on('end', () => {
      if (this.client === c) this.dropSession('the database connection ended');
    });
    await c.connect();
    try {
      const s = Math.round(this.sessionTimeoutMs);
      // Server-side limits for this session (PostgreSQL 14+ for idle_session_timeout and
      // client_connection_check_interval): a silent or stuck holder's session is ended.
      // A stuck statement is cancelled only after the session timeout, never before this node's
      // own heartbeat deadline has made it stop leading.
      await c.query(`SET statement_timeout = ${s}`);
      await c.query(`SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 2`);
      for (const set of [`SET idle_session_timeout = ${s}`, 'SET client_connection_check_interval = 1000']) {
        await c.query(set).catch(() => undefined); // older servers: TCP keepalives and fencing remain
      }
      this.pid = Number((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
      await c.query(
        `INSERT INTO custody_nodes (id, started, heartbeat, address) VALUES ($1, now(), now(), $2)
         ON CONFLICT (id) DO UPDATE SET started = now(), heartbeat = now(), address = EXCLUDED.address`,
        [this.o.node, this.o.address ?? null],
      );
      const r = await c.query<{ name: string; id: number }>('SELECT name, id FROM custody_logs WHERE name = ANY($1)', [this.o.logs]);
      this.ids = new Map(r.rows.map((x) => [x.name, x.id]));
    } catch (e) {
      await c.end().catch(() => undefined);
      throw e;
    }
    return c;
  }

  private async tick(): Promise<void> {
    try {
      if (!this.client) {
        const c = await this.connect();
        if (this.stopped) {
          await c.end().catch(() => undefined);
          return;
        }
        this.client = c;
        this.lastOkSent = Date.now();
      }
      const c = this.client;
      const sent = Date.now();
      await c.query('UPDATE custody_nodes SET heartbeat = now() WHERE id = $1', [this.o.node]);
      if (this.client !== c) return; // dropped while waiting
      this.lastOkSent = Math.max(this.lastOkSent, sent);
      for (const log of this.o.logs) {
        if (this.held.has(log) || this.stopped) continue;
        const id = this.ids.get(log);
        if (id === undefined) {
          const r = await c.query<{ id: number }>('SELECT id FROM custody_logs WHERE name = $1', [log]);
          if (!r.rows[0]) continue; // not registered yet
          this.ids.set(log, r.rows[0].id);
        }
        const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LEADER_LOCK_NAMESPACE, this.ids.get(log)!]);
        if (!got.rows[0]?.ok) continue;
        // The fencing token: bumped under the lock, before this node reads the state it recovers from.
        const st = await c.query<{ epoch: string; size: string; checkpoint: string | null }>(
          'UPDATE custody_log_state SET epoch = epoch + 1, leader = $2, updated = now() WHERE log = $1 RETURNING epoch, size, checkpoint',
          [log, this.o.node],
        );
        const row = st.rows[0];
        if (!row || this.client !== c) {
          await c.query('SELECT pg_advisory_unlock($1, $2)', [LEADER_LOCK_NAMESPACE, this.ids.get(log)!]).catch(() => undefined);
          continue;
        }
        const lease: Lease = { log, epoch: Number(row.epoch), pid: this.pid, size: Number(row.size), checkpoint: row.checkpoint, acquiredAt: Date.now() };
        this.held.set(log, lease);
        try {
          this.o.onAcquire(lease);
        } catch {
          /* the callback's own problem */
        }
      }
      this.tried = this.client === c;
    } catch (e) {
      this.o.onError?.(pgStorageError(e, 'take part in leader election', 'read'));
      if (this.client) this.dropSession(`the leader election query failed: ${(e as Error).message}`);
    }
  }
}

/** The published state of a log. */
export interface LogState {
  size: number;
  checkpoint: string | null;
  epoch: number;
  leader: string | null;
}

export async function readLogState(pool: pg.Pool | pg.ClientBase, log: string): Promise<LogState> {
  try {
    const r = await pool.query<{ size: string; checkpoint: string | null; epoch: string; leader: string | null }>('SELECT size, checkpoint, epoch, leader FROM custody_log_state WHERE log = $1', [log]);
    const row = r.rows[0];
    if (!row) throw new CustodyError('LOG_NOT_FOUND', `Log "${log}" is not registered in the database.`);
    return { size: Number(row.size), checkpoint: row.checkpoint, epoch: Number(row.epoch), leader: row.leader };
  } catch (e) {
    throw pgStorageError(e, `read the state of log "${log}"`, 'read');
  }
}

/** Whether `e` is a write refused because the writer no longer leads the log. */
export function isFenced(e: unknown): boolean {
  return e instanceof CustodyError && e.details?.reason === 'fenced';
}

/**
 * Records a newly published checkpoint, fenced: it takes effect only if `lease` is still the
 * current leadership of the log (same epoch, and the lease's lock session still holds the
 * lock, both checked in the same statement that writes) and the size does not shrink.
 * A stale leader gets STORAGE_UNAVAILABLE with details.reason 'fenced' (isFenced) and must
 * stop integrating; nothing was written.
 */
export async function publishState(pool: pg.Pool | pg.ClientBase, lease: Pick<Lease, 'log' | 'epoch' | 'pid'>, size: number, checkpoint: string): Promise<void> {
  let r: pg.QueryResult;
  try {
    r = await pool.query(
      `UPDATE custody_log_state s SET size = $3, checkpoint = $4, updated = now()
        WHERE s.log = $1 AND s.epoch = $2 AND s.size <= $3
          AND EXISTS (SELECT 1 FROM pg_locks l JOIN custody_logs g ON g.name = s.log
                       WHERE l.locktype = 'advisory' AND l.classid = $5::oid AND l.objid = g.id::oid
                         AND l.objsubid = 2 AND l.granted AND l.pid = $6)`,
      [lease.log, lease.epoch, size, checkpoint, LEADER_LOCK_NAMESPACE, lease.pid],
    );
  } catch (e) {
    throw pgStorageError(e, `record the checkpoint of log "${lease.log}"`, 'unknown');
  }
  if (r.rowCount === 1) return;
  const now = await readLogState(pool, lease.log);
  if (now.epoch === lease.epoch && now.size > size) {
    throw new CustodyError('STORAGE_CORRUPT', `Log "${lease.log}" already has a checkpoint of size ${now.size}; a checkpoint of size ${size} would shrink it.`, { size, stored: now.size });
  }
  throw new CustodyError(
    'STORAGE_UNAVAILABLE',
    `This node no longer integrates log "${lease.log}" (its leadership, epoch ${lease.epoch}, ended; the current epoch is ${now.epoch}); the new checkpoint was not recorded and another node continues.`,
    { reason: 'fenced', retryAfter: 1, epoch: lease.epoch, currentEpoch: now.epoch },
  );
}
