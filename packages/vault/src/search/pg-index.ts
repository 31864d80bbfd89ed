/**
 * PgSearchIndex: the search index of a shared vault (docs/SEARCH.md, "Search on a shared vault").
 * Every node answers /v1/search and /v1/stats/ingest from PostgreSQL (pg-store.ts). One node at
 * a time indexes: the one holding the session advisory lock SEARCH_LOCK. It reads each log's
 * published entries through the log's LogStore (S3) from the position recorded in
 * custody_search_logs, and writes the rows and the new position in one transaction — a crash
 * loses both or neither. When the indexing node dies its session ends, the lock is free, and
 * another node continues from the recorded position: no entry is indexed twice or skipped (the
 * position is also checked inside each transaction, pg-store.ts insert).
 *
 * Purges do not apply: a shared vault refuses retention purges (docs/PRODUCTION.md section 14).
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { CustodyError, isCustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { checkout, checkin } from '../storage/pg/pool.js';
import { readRows } from './follow.js';
import { PgSearchStore, IndexPositionMoved } from './pg-store.js';
import type { SearchOptions, SearchResult, TimeInput, IngestBucket } from './reader.js';

/** Advisory lock of the search indexer (two-key form): "CUSX", 0. Distinct from storage/pg/schema.ts's. */
export const SEARCH_LOCK: readonly [number, number] = [0x43555358, 0];
/** Entries per transaction (a multiple of the bundle width). */
const BATCH = 1024;
const BUNDLE = 256;
/** Record bytes per transaction (at least one entry). */
const BATCH_BYTES = 4 * 1024 * 1024;

export interface PgSearchIndexOptions {
  logger?: Logger;
  /** Index (take part in the election for the indexer); default true. Off: answer queries only. */
  follow?: boolean;
  /** How often published sizes and progress are read (ms). */
  pollMs?: number;
}

export class PgSearchIndex {
  readonly store: PgSearchStore;
  private readonly pool: pg.Pool;
  private readonly log: Logger | undefined;
  private lockClient: pg.PoolClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private closed = false;
  private readonly indexedNow = new Map<string, number>();
  private readonly failures = new Map<string, { n: number; retryAt: number }>();
  /** The last error per log (cleared when it moves on). */
  readonly followerErrors = new Map<string, string>();

  constructor(
    private readonly vault: Vault,
    private readonly opts: PgSearchIndexOptions = {},
  ) {
    if (!vault.shared) throw new CustodyError('INTERNAL', 'PgSearchIndex is for a shared vault.');
    this.pool = vault.shared.pool;
    this.store = new PgSearchStore(this.pool);
    this.log = opts.logger;
    const loop = (): void => {
      this.ticking = this.tick()
        .catch((e: unknown) => this.log?.warn({ err: (e as Error).message }, 'search index: a round failed; retrying'))
        .finally(() => {
          this.ticking = null;
          if (!this.closed) {
            this.timer = setTimeout(loop, this.opts.pollMs ?? 250);
            this.timer.unref();
          }
        });
    };
    this.timer = setTimeout(loop, 0);
    this.timer.unref();
  }

  /** Whether this node is the indexer now. */
  get indexing(): boolean {
    return this.lockClient !== null;
  }

  private async tick(): Promise<void> {
    if (this.closed) return;
    if (this.opts.follow !== false) await this.holdLock();
    if (this.lockClient) await this.indexRound();
    for (const [log, n] of await this.store.indexed()) this.indexedNow.set(log, n);
  }

  /** Takes the indexer lock when free; checks the session that holds it is alive. */
  private async holdLock(): Promise<void> {
    if (this.lockClient) {
      try {
        // A session that hangs (a network partition) is given up: destroying it ends it on the server.
        let timer: NodeJS.Timeout | undefined;
        const hang = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('the indexer lock session did not answer within 10 s')), 10_000);
        });
        try {
          const ping = this.lockClient.query('SELECT 1');
          ping.catch(() => undefined); // its late failure, after a timeout, is not unhandled
          await Promise.race([ping, hang]);
        } finally {
          clearTimeout(timer);
        }
        return;
      } catch (e) {
        this.dropLock(e as Error, 'the database session holding the indexer lock was lost');
        return;
      }
    }
    let c: pg.PoolClient;
    try {
      c = await checkout(this.pool);
    } catch {
      return;
    }
    try {
      const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [SEARCH_LOCK[0], SEARCH_LOCK[1]]);
      if (r.rows[0]?.ok && !this.closed) {
        this.lockClient = c;
        this.log?.info({ node: this.vault.shared?.nodeId }, 'search index: this node indexes the logs now');
        return;
      }
      if (r.rows[0]?.ok) await c.query('SELECT pg_advisory_unlock($1, $2)', [SEARCH_LOCK[0], SEARCH_LOCK[1]]);
      checkin(c);
    } catch (e) {
      checkin(c, e as Error);
    }
  }

  private dropLock(err: Error | undefined, why: string): void {
    const c = this.lockClient;
    this.lockClient = null;
    if (c) {
      this.log?.warn({ reason: why }, 'search index: this node stopped indexing');
      // A failed session is destroyed, which ends it and frees the lock on the server.
      checkin(c, err ?? new Error(why));
    }
  }

  /** One batch per log that has published entries not yet indexed. */
  private async indexRound(): Promise<void> {
    const r = await this.pool.query<{ log: string; size: string; indexed: string | null }>(
      'SELECT s.log, s.size, x.indexed FROM custody_log_state s LEFT JOIN custody_search_logs x ON x.log = s.log ORDER BY s.log',
    );
    for (const row of r.rows) {
      if (this.closed || !this.lockClient) return;
      const name = row.log;
      const size = Number(row.size);
      const from = Number(row.indexed ?? 0);
      if (from >= size) continue;
      const f = this.failures.get(name);
      if (f && f.retryAt > Date.now()) continue;
      const seq = this.vault.logs.get(name);
      if (!seq) continue; // a log created on another node moments ago: next round
      try {
        // Whole bundles only (a partial bundle exists only at the published size): end on a bundle boundary.
        const end = Math.min(size, (Math.floor(from / BUNDLE) + BATCH / BUNDLE) * BUNDLE);
        const { rows, next } = await readRows(seq.store, name, from, end, BATCH_BYTES);
        if (next <= from) continue;
        await this.store.insert(name, from, next, rows);
        this.indexedNow.set(name, next);
        this.failures.delete(name);
        if (this.followerErrors.delete(name)) this.log?.info({ log: name }, 'search index: reading the log again');
      } catch (e) {
        if (e instanceof IndexPositionMoved) {
          // Another node indexed this log meanwhile (it took the lock after this one lost it).
          this.log?.warn({ log: name, reason: e.message }, 'search index: another node indexed this log; this node stops indexing');
          this.dropLock(undefined, e.message);
          return;
        }
        const n = (f?.n ?? 0) + 1;
        this.failures.set(name, { n, retryAt: Date.now() + Math.min(60_000, 1000 * 2 ** Math.min(n, 6)) });
        const msg = isCustodyError(e) ? e.message : (e as Error).message;
        if (this.followerErrors.get(name) !== msg) this.log?.error({ log: name, err: msg }, 'search index: cannot index this log; retrying');
        this.followerErrors.set(name, msg);
      }
    }
  }

  /** Per log, entries published (as this node knows) but not yet indexed (as of the last poll). */
  lag(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const row of this.vault.logRows) {
      const seq = this.vault.logs.get(row.name);
      if (seq) out[row.name] = Math.max(0, seq.size - (this.indexedNow.get(row.name) ?? 0));
    }
    return out;
  }

  /** Resolves once every log (or `log`) is indexed up to `size` (default: its published size now). */
  async whenIndexed(opts: { log?: string; size?: number; timeoutMs?: number } = {}): Promise<void> {
    const want = new Map<string, number>();
    for (const row of this.vault.logRows) {
      if (opts.log !== undefined && row.name !== opts.log) continue;
      want.set(row.name, opts.size ?? this.vault.logs.get(row.name)?.size ?? 0);
    }
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    for (;;) {
      const have = await this.store.indexed();
      if ([...want].every(([log, n]) => (have.get(log) ?? 0) >= n)) return;
      if (this.closed) throw new CustodyError('NOT_READY', 'The search index was closed.');
      if (Date.now() > deadline) throw new CustodyError('NOT_READY', `The search index did not catch up within ${opts.timeoutMs ?? 30_000} ms (lag ${JSON.stringify(this.lag())}).`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async query(q: string, opts: SearchOptions = {}): Promise<SearchResult> {
    if (this.closed) throw new CustodyError('NOT_READY', 'The search index is closed.');
    return { ...(await this.store.query(q, opts)), lag: this.lag() };
  }

  async ingestStats(opts: { log?: string; bucket?: 'minute' | 'hour'; from?: TimeInput; to?: TimeInput } = {}): Promise<{ log: string | null; bucket: 'minute' | 'hour'; from: string; to: string; buckets: IngestBucket[] }> {
    if (this.closed) throw new CustodyError('NOT_READY', 'The search index is closed.');
    if (opts.log !== undefined) this.vault.logRow(opts.log); // LOG_NOT_FOUND
    return this.store.ingestStats(opts);
  }

  /** Stops indexing (after the batch in hand) and gives up the lock: another node takes over. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking?.catch(() => undefined);
    const c = this.lockClient;
    this.lockClient = null;
    if (c) {
      try {
        await c.query('SELECT pg_advisory_unlock($1, $2)', [SEARCH_LOCK[0], SEARCH_LOCK[1]]);
        checkin(c);
      } catch (e) {
        checkin(c, e as Error);
      }
    }
  }
}
