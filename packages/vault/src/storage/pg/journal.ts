/**
 * The shared journal: where an entry becomes durable, in PostgreSQL, before any node
 * acknowledges it (the multi-node counterpart of ../journal.ts; README.md in this folder).
 *
 * `append(log, count, sealed)` runs, in ONE transaction,
 *   UPDATE custody_log_heads SET next_index = next_index + n WHERE log = $1 RETURNING ...
 *   INSERT INTO custody_journal (one row per caller's batch)
 *   COMMIT                                  -- synchronous_commit on: durable when it returns
 * and resolves each caller with its first index only after COMMIT returned. The head row's
 * lock serialises appenders of one log on every node: the next appender's UPDATE waits for
 * this COMMIT and then reads the committed head, so indices are unique and gapless and rows
 * commit in index order. A rolled-back transaction rolls back its head bump too, so a failed
 * append leaves no gap.
 *
 * Group commit: appends to one log that arrive while a transaction is running are queued and
 * go into the next transaction together (one UPDATE, one multi-row INSERT, one COMMIT/fsync).
 *
 * The payload is opaque: the caller seals it with the log's key. A caller that wants the index
 * bound into the ciphertext (as ../journal.ts binds it into the AAD) passes a function that is
 * called with the first index inside the transaction, after the UPDATE assigned it.
 */
import type pg from 'pg';
import { CustodyError } from '../../errors.js';
import { pgStorageError, checkout, checkin } from './pool.js';

/** The sealed batch, or a function that seals it once its first index is known. */
export type Sealed = Buffer | ((firstIndex: number) => Buffer);

export interface PgJournalBatch {
  firstIndex: number;
  count: number;
  sealed: Buffer;
  node: string;
  receivedAt: Date;
}

export interface PgJournalOptions {
  /** This node's id, recorded with every batch it stored. */
  node: string;
  /** Most callers' batches one transaction takes (each is a row). */
  maxGroup?: number;
  /** Most sealed bytes one transaction takes (at least one batch is always taken). */
  maxGroupBytes?: number;
}

interface Queued {
  count: number;
  sealed: Sealed;
  resolve: (first: number) => void;
  reject: (e: unknown) => void;
}

interface LogQueue {
  items: Queued[];
  flushing: boolean;
}

/** Figures for the group commit: how many appends each transaction carried. */
export interface PgJournalStats {
  transactions: number;
  appends: number;
  entries: number;
}

const MAX_COUNT = 0x7fffffff;

export class PgJournal {
  private readonly queues = new Map<string, LogQueue>();
  private readonly node: string;
  private readonly maxGroup: number;
  private readonly maxGroupBytes: number;
  private idle: Array<() => void> = [];
  readonly stats: PgJournalStats = { transactions: 0, appends: 0, entries: 0 };

  constructor(
    private readonly pool: pg.Pool,
    opts: PgJournalOptions,
  ) {
    this.node = opts.node;
    this.maxGroup = Math.max(1, Math.min(opts.maxGroup ?? 1_000, 10_000));
    this.maxGroupBytes = opts.maxGroupBytes ?? 16 * 1024 * 1024;
  }

  /**
   * Registers a log (idempotent; every node may call it at start). `nextIndex` is where
   * sequencing starts (0 for a new log, the size of a log moved from an embedded vault).
   * Refuses (CONFIG) a name that exists with a different origin.
   */
  static async createLog(pool: pg.Pool, log: { name: string; origin: string; region?: string | null; nextIndex?: number }): Promise<boolean> {
    const start = log.nextIndex ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) throw new CustodyError('BAD_REQUEST', `The first index of log "${log.name}" must be a whole number ≥ 0.`);
    let client: pg.PoolClient;
    try {
      client = await checkout(pool);
    } catch (e) {
      throw pgStorageError(e, `register log "${log.name}"`);
    }
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const ins = await client.query('INSERT INTO custody_logs (name, origin, region) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [log.name, log.origin, log.region ?? null]);
      if (ins.rowCount === 0) {
        const r = await client.query<{ origin: string }>('SELECT origin FROM custody_logs WHERE name = $1', [log.name]);
        const have = r.rows[0]?.origin;
        await client.query('ROLLBACK');
        if (have !== log.origin) {
          throw new CustodyError('CONFIG', `Log "${log.name}" is registered in the database with origin "${have ?? '(another log has this origin)'}", not "${log.origin}". Check the vault configuration on this node.`);
        }
        return false;
      }
      await client.query('INSERT INTO custody_log_heads (log, next_index) VALUES ($1, $2)', [log.name, start]);
      await client.query('INSERT INTO custody_log_state (log, size) VALUES ($1, $2)', [log.name, start]);
      await client.query('COMMIT');
      return true;
    } catch (e) {
      if (!(e instanceof CustodyError)) {
        broken = e as Error;
        await client.query('ROLLBACK').catch(() => undefined);
      }
      throw pgStorageError(e, `register log "${log.name}"`);
    } finally {
      checkin(client, broken);
    }
  }

  /**
   * Appends one batch of `count` entries and resolves with its first index once the
   * transaction that stored it has committed. Rejects with STORAGE_UNAVAILABLE (details.outcome
   * 'not-committed': nothing stored; 'unknown': the connection dropped during COMMIT, see
   * README.md) or LOG_NOT_FOUND. Never resolves without a commit.
   */
  append(log: string, count: number, sealed: Sealed): Promise<number> {
    if (!Number.isInteger(count) || count <= 0 || count > MAX_COUNT) {
      return Promise.reject(new CustodyError('BAD_REQUEST', `A journal batch holds 1 to ${MAX_COUNT} entries, not ${count}.`));
    }
    return new Promise((resolve, reject) => {
      let q = this.queues.get(log);
      if (!q) {
        q = { items: [], flushing: false };
        this.queues.set(log, q);
      }
      q.items.push({ count, sealed, resolve, reject });
      if (!q.flushing) {
        q.flushing = true;
        setImmediate(() => void this.flush(log, q!));
      }
    });
  }

  private async flush(log: string, q: LogQueue): Promise<void> {
    while (q.items.length > 0) {
      let bytes = 0;
      let n = 0;
      while (n < q.items.length && n < this.maxGroup) {
        const s = q.items[n]!.sealed;
        const len = typeof s === 'function' ? 0 : s.length;
        if (n > 0 && bytes + len > this.maxGroupBytes) break;
        bytes += len;
        n++;
      }
      const group = q.items.splice(0, n);
      await this.commitGroup(log, group);
    }
    q.flushing = false;
    if (this.queues.get(log) === q && q.items.length === 0) this.queues.delete(log);
    if ([...this.queues.values()].every((x) => !x.flushing)) {
      const w = this.idle;
      this.idle = [];
      for (const f of w) f();
    }
  }

  private async commitGroup(log: string, group: Queued[]): Promise<void> {
    let total = 0;
    for (const g of group) total += g.count;
    let client: pg.PoolClient;
    try {
      client = await checkout(this.pool);
    } catch (e) {
      const err = pgStorageError(e, `append to the journal of log "${log}"`, 'not-committed');
      for (const g of group) g.reject(err);
      return;
    }
    let phase: 'work' | 'commit' = 'work';
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const head = await client.query<{ first: string }>('UPDATE custody_log_heads SET next_index = next_index + $2 WHERE log = $1 RETURNING next_index - $2 AS first', [log, total]);
      const row = head.rows[0];
      if (!row) {
        await client.query('ROLLBACK');
        const err = new CustodyError('LOG_NOT_FOUND', `Log "${log}" is not registered in the database. Check the vault configuration on this node.`);
        for (const g of group) g.reject(err);
        return;
      }
      const first = Number(row.first);
      if (!Number.isSafeInteger(first + total)) throw new CustodyError('INTERNAL', `Log "${log}" has run out of indices.`);
      const values: unknown[] = [log, this.node];
      const tuples: string[] = [];
      const firsts: number[] = [];
      let at = first;
      for (const g of group) {
        const sealed = typeof g.sealed === 'function' ? g.sealed(at) : g.sealed;
        if (!Buffer.isBuffer(sealed)) throw new CustodyError('INTERNAL', 'The journal batch was not sealed to bytes.');
        values.push(at, g.count, sealed);
        const k = values.length;
        tuples.push(`($1, $${k - 2}, $${k - 1}, $${k}, $2)`);
        firsts.push(at);
        at += g.count;
      }
      await client.query(`INSERT INTO custody_journal (log, first_index, count, sealed, node) VALUES ${tuples.join(', ')}`, values);
      phase = 'commit';
      await client.query('COMMIT');
      this.stats.transactions++;
      this.stats.appends += group.length;
      this.stats.entries += total;
      group.forEach((g, i) => g.resolve(firsts[i]!));
    } catch (e) {
      broken = e instanceof CustodyError ? undefined : (e as Error);
      if (phase === 'work') await client.query('ROLLBACK').catch(() => undefined);
      // A COMMIT the server answered with an error (not a lost connection) is known to have failed.
      const outcome = phase === 'commit' && !serverRefused(e) ? 'unknown' : 'not-committed';
      const err = pgStorageError(e, `append to the journal of log "${log}"`, outcome);
      for (const g of group) g.reject(err);
    } finally {
      checkin(client, broken);
    }
  }

  /**
   * Batches from the one holding `fromIndex` on, in index order, at most `limit`, stopping at
   * the first gap. A gap cannot persist (the index bump and the row commit together, in index
   * order; trim only removes rows below the integrated size), so a gap means the caller asked
   * below what was trimmed or beyond the head: the answer ends there.
   */
  async readFrom(log: string, fromIndex: number, limit = 1_000): Promise<PgJournalBatch[]> {
    let rows: Array<{ first_index: string; count: number; sealed: Buffer; node: string; received_at: Date }>;
    try {
      const r = await this.pool.query(
        `(SELECT first_index, count, sealed, node, received_at FROM custody_journal WHERE log = $1 AND first_index <= $2 ORDER BY first_index DESC LIMIT 1)
         UNION ALL
         (SELECT first_index, count, sealed, node, received_at FROM custody_journal WHERE log = $1 AND first_index > $2 ORDER BY first_index LIMIT $3)`,
        [log, fromIndex, Math.max(1, limit)],
      );
      rows = r.rows;
    } catch (e) {
      throw pgStorageError(e, `read the journal of log "${log}"`, 'read');
    }
    const batches = rows
      .map((r) => ({ firstIndex: Number(r.first_index), count: r.count, sealed: r.sealed, node: r.node, receivedAt: r.received_at }))
      .sort((a, b) => a.firstIndex - b.firstIndex);
    const out: PgJournalBatch[] = [];
    let expect = fromIndex;
    for (const b of batches) {
      if (out.length === 0) {
        if (b.firstIndex + b.count <= fromIndex) continue; // the batch before fromIndex
        if (b.firstIndex > fromIndex) break; // fromIndex itself is not stored
      } else if (b.firstIndex !== expect) break;
      out.push(b);
      expect = b.firstIndex + b.count;
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Deletes the batches wholly below `integratedSize` (covered by a published checkpoint); returns how many. */
  async trim(log: string, integratedSize: number): Promise<number> {
    try {
      const r = await this.pool.query('DELETE FROM custody_journal WHERE log = $1 AND first_index < $2 AND first_index + count <= $2', [log, integratedSize]);
      return r.rowCount ?? 0;
    } catch (e) {
      throw pgStorageError(e, `trim the journal of log "${log}"`, 'read');
    }
  }

  /** The next index the log will assign (committed appends only). */
  async head(log: string): Promise<number> {
    try {
      const r = await this.pool.query<{ next_index: string }>('SELECT next_index FROM custody_log_heads WHERE log = $1', [log]);
      const row = r.rows[0];
      if (!row) throw new CustodyError('LOG_NOT_FOUND', `Log "${log}" is not registered in the database.`);
      return Number(row.next_index);
    } catch (e) {
      throw pgStorageError(e, `read the head of log "${log}"`, 'read');
    }
  }

  /** Resolves once no append is queued or in flight (their callers have their answers). */
  drain(): Promise<void> {
    if ([...this.queues.values()].every((q) => !q.flushing)) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }
}

/** The server answered with an error of its own (not a lost connection or a restart). */
function serverRefused(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  if (e instanceof CustodyError || typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return false;
  // 08: the client lost the connection; 57: the server was shut down or crashed around the
  // commit; 53: out of resources. Anything else the server sent means the transaction rolled back.
  return !(code.startsWith('08') || code.startsWith('57') || code.startsWith('53'));
}
