/**
 * SearchIndex: a vault's search index — queries on this thread (one read connection), the
 * follower in a worker thread (follower-worker.ts) that keeps the index up with every log's
 * published checkpoints. One per vault: `open` hands out the same one and counts the holders.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { prepareSearchFile, SEARCH_DB } from './store.js';
import { dataDirDbKey, type SqliteKey } from '../storage/sqlite.js';
import { SearchReader, type Hit, type SearchResult, type SearchOptions, type TimeInput, type IngestBucket } from './reader.js';
import type { FollowerInit, FollowedLog } from './follower-worker.js';

export type { Hit, SearchResult, SearchOptions, TimeInput, IngestBucket } from './reader.js';
export { TOTAL_CAP, MAX_LIMIT, DEFAULT_LIMIT } from './reader.js';

export interface SearchIndexOptions {
  logger?: Logger;
  /** Follow the logs (default true). Off: a read-only view of what is indexed. */
  follow?: boolean;
  /** How often the published sizes are checked (ms). */
  pollMs?: number;
  /** CPU priority of the follower thread; 0 = the server's. */
  nice?: number;
}

const shared = new WeakMap<Vault, SearchIndex>();
/** Entries per follower transaction. */
const BATCH = 1024;
/** Entries waiting for a checkpoint (all region logs) above which ingest counts as saturating. */
const PAUSE_BACKLOG = 10_000;

export class SearchIndex {
  readonly path: string;
  /** The page key of search.db (the keyring's "sqlite-search" key); the follower gets it too. */
  private readonly key: SqliteKey;
  /** The query side, on this thread's own read connection. */
  readonly reader: SearchReader;
  private readonly log: Logger | undefined;
  private holders = 1;
  private closed = false;
  private worker: Worker | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly posted = new Map<string, number>();
  private readonly following = new Set<string>();
  private readonly indexedNow = new Map<string, number>();
  private readonly waiters: Array<{ check: () => boolean; resolve: () => void; reject: (e: Error) => void }> = [];
  private restarts = 0;
  /** Follower crashes so far: each halves its batches (down to one entry). */
  private crashes = 0;
  private lastPost = 0;
  private closeWorker: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  /** The last error per log the follower reported (cleared when it moves on). */
  readonly followerErrors = new Map<string, string>();

  private constructor(
    private readonly vault: Vault,
    private readonly opts: SearchIndexOptions,
  ) {
    this.path = join(vault.dataDir, SEARCH_DB);
    this.log = opts.logger;
    const sizes = new Map(vault.logRows.map((r) => [r.name, vault.sequencer(r.name).size]));
    this.key = dataDirDbKey(vault.keyring, vault.dataDir, 'search');
    const prep = prepareSearchFile(this.path, vault.config.vaultId, sizes, this.key);
    prep.db.close();
    this.reader = new SearchReader(this.path, { key: this.key });
    for (const [log, n] of this.reader.indexed()) this.indexedNow.set(log, n);
    const behind = [...sizes].reduce((s, [log, size]) => s + Math.max(0, size - (this.indexedNow.get(log) ?? 0)), 0);
    if (prep.created) this.log?.info({ path: this.path, reason: prep.created, entries: behind }, 'search index: building it from the logs');
    else if (behind > 0) this.log?.info({ entries: behind }, 'search index: catching up with the logs');
    if (opts.follow !== false) {
      this.startFollower();
      // A retention purge crypto-shredded entries: the index drops their rows and tokens too.
      // (A follower started later finds the purge in the log's shredded.json itself.)
      this.unsubscribe = vault.events.on('audit', (e) => {
        if (e['type'] !== 'retention.purged') return;
        const range = e['range'] as { from?: unknown; to?: unknown } | undefined;
        if (typeof e['log'] === 'string' && typeof range?.from === 'number' && typeof range.to === 'number') {
          this.worker?.postMessage({ t: 'forget', name: e['log'], from: range.from, to: range.to });
        }
      });
    }
  }

  /**
   * The search index of a vault: opened (created, or rebuilt when it is not this vault's or is
   * of another version) on first call; later calls hand out the same one until every holder
   * has closed it.
   */
  static open(vault: Vault, opts: SearchIndexOptions = {}): SearchIndex {
    const have = shared.get(vault);
    if (have && !have.closed) {
      have.holders++;
      return have;
    }
    const s = new SearchIndex(vault, opts);
    shared.set(vault, s);
    return s;
  }

  // ---- follower ---------------------------------------------------------------------------

  private startFollower(): void {
    // After a crash (say, out of memory on unusually large records) the batches get smaller.
    const shrink = 2 ** Math.min(this.crashes, 20);
    const init: FollowerInit = { dbPath: this.path, dbKey: this.key, nice: this.opts.nice ?? 10, batchEntries: Math.max(1, Math.floor(BATCH / shrink)), batchBytes: Math.max(1, Math.floor((4 * 1024 * 1024) / shrink)) };
    // A small heap of its own: it holds one batch (at most 4 MiB of records) at a time.
    const w = new Worker(new URL('./follower-worker.js', import.meta.url), { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 32 } });
    w.unref();
    this.worker = w;
    this.following.clear();
    this.posted.clear();
    w.on('message', (m: { t: string; log?: string; indexed?: number; message?: string }) => {
      if (m.t === 'indexed' && m.log !== undefined) {
        this.indexedNow.set(m.log, m.indexed!);
        if (this.followerErrors.delete(m.log)) this.log?.info({ log: m.log }, 'search index: reading the log again');
        this.restarts = 0;
        this.wakeWaiters();
      } else if (m.t === 'error' && m.log !== undefined) {
        if (this.followerErrors.get(m.log) !== m.message) this.log?.error({ log: m.log, err: m.message }, 'search index: cannot read this log; retrying');
        this.followerErrors.set(m.log, m.message ?? 'unknown error');
      }
    });
    w.on('error', (e) => this.log?.error({ err: e }, 'search index: the follower failed'));
    w.on('exit', () => {
      if (this.worker !== w) return;
      this.worker = null;
      if (this.closed) return;
      this.crashes++;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(this.restarts++, 6));
      this.log?.error({ restartInMs: delay }, 'search index: the follower stopped; restarting it');
      setTimeout(() => {
        if (!this.closed && !this.worker) this.startFollower();
      }, delay).unref();
    });
    if (!this.timer) {
      this.timer = setInterval(() => this.poll(), this.opts.pollMs ?? 100);
      this.timer.unref();
    }
    this.poll();
  }

  /**
   * Tells the follower about new logs and newly published sizes. While ingest saturates the
   * vault (more than PAUSE_BACKLOG entries wait for a checkpoint), the follower — which then
   * gets almost no CPU at its lower priority anyway — is handed one batch per log a second, so
   * its memory and disk writes do not add to ingest's; it catches up when the load drops.
   */
  private poll(): void {
    const w = this.worker;
    if (!w || this.closed) return;
    const busy = this.vault.pendingEntries() > PAUSE_BACKLOG;
    if (busy && Date.now() - this.lastPost < 1000) return;
    this.lastPost = Date.now();
    const sizes: Record<string, number> = {};
    let changed = false;
    for (const row of this.vault.logRows) {
      const seq = this.vault.logs.get(row.name);
      if (!seq) continue;
      if (!this.following.has(row.name)) {
        const log: FollowedLog = { name: row.name, origin: row.origin, dir: join(this.vault.dataDir, 'logs', row.name), keys: this.vault.keyring.forLog(row.name).exportForWorker() };
        w.postMessage({ t: 'log', log });
        this.following.add(row.name);
      }
      const size = busy ? Math.min(seq.size, (this.indexedNow.get(row.name) ?? 0) + BATCH) : seq.size;
      if (this.posted.get(row.name) !== size) {
        this.posted.set(row.name, size);
        sizes[row.name] = size;
        changed = true;
      }
    }
    if (changed) w.postMessage({ t: 'sizes', sizes });
  }

  private wakeWaiters(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.check()) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** Per log, entries published but not yet indexed. */
  lag(): Record<string, number> {
    const indexed = this.reader.indexed();
    const out: Record<string, number> = {};
    for (const row of this.vault.logRows) {
      const seq = this.vault.logs.get(row.name);
      if (seq) out[row.name] = Math.max(0, seq.size - (indexed.get(row.name) ?? 0));
    }
    return out;
  }

  /**
   * Resolves once every log (or `log`) is indexed up to its size now (or `size`); rejects
   * after `timeoutMs`. For tests and tools that must see what was just written.
   */
  whenIndexed(opts: { log?: string; size?: number; timeoutMs?: number } = {}): Promise<void> {
    const want = new Map<string, number>();
    for (const row of this.vault.logRows) {
      if (opts.log !== undefined && row.name !== opts.log) continue;
      want.set(row.name, opts.size ?? this.vault.sequencer(row.name).size);
    }
    const check = (): boolean => [...want].every(([log, n]) => (this.indexedNow.get(log) ?? 0) >= n);
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        const i = this.waiters.findIndex((w) => w.resolve === done);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new CustodyError('NOT_READY', `The search index did not catch up within ${opts.timeoutMs ?? 30_000} ms (lag ${JSON.stringify(this.lag())}).`));
      }, opts.timeoutMs ?? 30_000);
      const done = (): void => {
        clearTimeout(t);
        resolve();
      };
      this.waiters.push({
        check,
        resolve: done,
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
    });
  }

  // ---- queries ----------------------------------------------------------------------------

  private open(): SearchReader {
    if (this.closed) throw new CustodyError('NOT_READY', 'The search index is closed.');
    return this.reader;
  }

  /** One page of hits, the total (up to 10,000), the cursor of the next page and the lag. */
  query(q: string, opts: SearchOptions = {}): SearchResult {
    return { ...this.open().query(q, opts), lag: this.lag() };
  }

  /**
   * Every hit of a query in order (all pages; at most `limit` when given), read lazily: memory
   * stays bounded whatever the number of hits.
   */
  iterate(q: string, opts: SearchOptions = {}): Generator<Hit> {
    return this.open().iterate(q, opts);
  }

  /**
   * Entries received per bucket (minute or hour) and source, from the index: the ingest rate
   * per source over time. Default window: the last 6 hours by minute, the last 7 days by hour.
   */
  ingestStats(opts: { log?: string; bucket?: 'minute' | 'hour'; from?: TimeInput; to?: TimeInput } = {}): { log: string | null; bucket: 'minute' | 'hour'; from: string; to: string; buckets: IngestBucket[] } {
    if (opts.log !== undefined) this.vault.logRow(opts.log); // LOG_NOT_FOUND
    return this.open().ingestStats(opts);
  }

  /** Releases this holder; the last one stops the follower (after its batch) and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (--this.holders > 0) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const w of this.waiters.splice(0)) w.reject(new CustodyError('NOT_READY', 'The search index was closed.'));
    const w = this.worker;
    this.worker = null;
    this.unsubscribe?.();
    if (w) {
      this.closeWorker = new Promise<void>((resolve) => {
        const t = setTimeout(() => void w.terminate().then(() => resolve()), 10_000);
        w.on('message', (m: { t: string }) => {
          if (m.t === 'closed') {
            clearTimeout(t);
            void w.terminate().then(() => resolve());
          }
        });
        w.on('exit', () => {
          clearTimeout(t);
          resolve();
        });
        w.postMessage({ t: 'close' });
      });
      await this.closeWorker;
    }
    this.reader.close();
    if (shared.get(this.vault) === this) shared.delete(this.vault);
  }
}
