/**
 * SearchReader: the query side of a search file — pages of hits with a total and a cursor,
 * every hit lazily, ingest counts per source. No follower, no vault: SearchIndex wraps one for
 * a vault, and the benchmark runs one on an index it built itself.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { CustodyError } from '../errors.js';
import { parseQuery, parseTimeBound, type QueryNode } from './query.js';
import { QueryRunner, type Order, type Prepared } from './engine.js';
import { openSearchDb } from './store.js';
import type { SqliteKey } from '../storage/sqlite.js';

export interface Hit {
  log: string;
  index: number;
  /** RFC 3339: the record's own time, else when the vault received it. */
  time: string;
  received: string;
  source: string;
  region: string | null;
  account: string | null;
  actor: string | null;
  action: string | null;
  outcome: string | null;
  srcIp: string | null;
  dstIp: string | null;
  severity: string | null;
  resource: string | null;
  ocsfClass: number | null;
  /** The API path of the entry: its record, envelope and inclusion proof. */
  entry: string;
}

export interface SearchResult {
  query: string;
  hits: Hit[];
  /** Cursor of the next page, or null on the last. */
  next: string | null;
  /** Hits in all pages, counted up to TOTAL_CAP. */
  total: number;
  totalCapped: boolean;
  /** Per log, entries published but not yet in the index. */
  lag: Record<string, number>;
}

export type TimeInput = string | number | Date;

export interface SearchOptions {
  /** Only hits at or after this time (a time text as in docs/SEARCH.md, ms since the epoch or a Date). */
  from?: TimeInput;
  /** Only hits at or before this time (a date-only text covers the whole day). */
  to?: TimeInput;
  order?: Order;
  /** Hits per page, 1–1000 (default 50); for iterate, the most hits in all (default: all). */
  limit?: number;
  cursor?: string | null;
}

export interface IngestBucket {
  t: string;
  source: string;
  count: number;
}

export const TOTAL_CAP = 10_000;
export const MAX_LIMIT = 1000;
export const DEFAULT_LIMIT = 50;

/** A from/to bound of a search (a Date, epoch ms or text like 2024-01-31 or now-1h); shared with search/pg-store.ts. */
export function timeOf(v: TimeInput | undefined, side: 'start' | 'end', name: string): number | null {
  if (v === undefined || v === '') return null;
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new CustodyError('BAD_REQUEST', `${name} must be a time.`);
    return v;
  }
  const t = parseTimeBound(v, side);
  if (t === null) throw new CustodyError('BAD_REQUEST', `${name}=${JSON.stringify(v.slice(0, 60))} is not a time; write a time like 2024-01-31, 2024-01-31T12:00:00Z or now-1h.`);
  return t;
}

export interface Cursor {
  id: bigint;
}

export function cursorKey(q: string, from: number | null, to: number | null, order: Order): string {
  return createHash('sha256').update(`${q}\u0000${from}\u0000${to}\u0000${order}`).digest('base64url').slice(0, 12);
}

export function encodeCursor(id: bigint, key: string): string {
  return Buffer.from(`1.${id.toString(36)}.${key}`).toString('base64url');
}

export function decodeCursor(c: string, key: string): Cursor {
  const bad = (): never => {
    throw new CustodyError('BAD_REQUEST', 'The cursor is not one this search gave out; pass the "next" of the previous page of the same query, with the same from, to and order.');
  };
  if (c.length > 200 || !/^[A-Za-z0-9_-]+$/.test(c)) bad();
  const m = /^1\.([0-9a-z]{1,14})\.([A-Za-z0-9_-]{12})$/.exec(Buffer.from(c, 'base64url').toString('latin1'));
  if (!m || m[2] !== key) bad();
  let id = 0n;
  for (const ch of m![1]!) id = id * 36n + BigInt(parseInt(ch, 36));
  return { id };
}

export interface HitRow {
  log: string;
  idx: number;
  time: number;
  received: number;
  source: string;
  region: string | null;
  account: string | null;
  actor: string | null;
  action: string | null;
  outcome: string | null;
  src_ip: string | null;
  dst_ip: string | null;
  severity: string | null;
  resource: string | null;
  ocsf: number | null;
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isFinite(d.getTime()) ? d.toISOString() : new Date(0).toISOString();
}

export function toHit(r: HitRow): Hit {
  return {
    log: r.log,
    index: r.idx,
    time: iso(r.time),
    received: iso(r.received),
    source: r.source,
    region: r.region,
    account: r.account,
    actor: r.actor,
    action: r.action,
    outcome: r.outcome,
    srcIp: r.src_ip,
    dstIp: r.dst_ip,
    severity: r.severity,
    resource: r.resource,
    ocsfClass: r.ocsf,
    entry: `/v1/logs/${encodeURIComponent(r.log)}/entries/${r.idx}`,
  };
}

export class SearchReader {
  readonly db: Database.Database;
  private readonly runner: QueryRunner;
  private readonly hitStmt: Database.Statement;
  private closed = false;

  constructor(
    readonly path: string,
    /** key: the page key of a vault's index (storage/sqlite.ts); none for a plaintext file. */
    opts: { cacheMb?: number; key?: SqliteKey } = {},
  ) {
    this.db = openSearchDb(path, { cacheMb: opts.cacheMb ?? 8, key: opts.key });
    this.db.pragma('query_only = ON');
    this.runner = new QueryRunner(this.db);
    this.hitStmt = this.db.prepare(
      `SELECT l.name AS log, e.idx, e.time, e.received, e.source, e.region, e.account, e.actor, e.action, e.outcome, e.src_ip, e.dst_ip, e.severity, e.resource, e.ocsf
       FROM entries e JOIN logs l ON l.id = e.log WHERE e.id = ?`,
    );
  }

  /** Per log, how many of its entries are indexed. */
  indexed(): Map<string, number> {
    return new Map((this.db.prepare('SELECT name, indexed FROM logs').all() as Array<{ name: string; indexed: number }>).map((r) => [r.name, r.indexed]));
  }

  // ---- queries ----------------------------------------------------------------------------

  catalog(): { logIds: Map<string, number> } {
    return { logIds: new Map((this.db.prepare('SELECT name, id FROM logs').all() as Array<{ name: string; id: number }>).map((r) => [r.name, r.id])) };
  }

  private prepared(q: string, opts: SearchOptions): { tree: QueryNode; prep: Prepared; key: string; order: Order } {
    if (this.closed) throw new CustodyError('NOT_READY', 'The search index is closed.');
    if (typeof q !== 'string') throw new CustodyError('BAD_QUERY', 'The query must be text.', { position: 0, expected: 'a query' });
    const order: Order = opts.order ?? 'desc';
    if (order !== 'asc' && order !== 'desc') throw new CustodyError('BAD_REQUEST', 'order must be "desc" (newest first) or "asc".');
    const from = timeOf(opts.from, 'start', 'from');
    const to = timeOf(opts.to, 'end', 'to');
    if (from !== null && to !== null && from > to) throw new CustodyError('BAD_REQUEST', 'from is after to: nothing can match. Swap them.');
    const tree = parseQuery(q);
    const prep = this.runner.prepare(tree, { from, to }, order, this.catalog());
    return { tree, prep, key: cursorKey(q, from, to, order), order };
  }

  private hitOf(id: bigint): Hit | null {
    const r = this.hitStmt.get(id) as HitRow | undefined;
    return r ? toHit(r) : null;
  }

  /** One page of hits, the total (up to 10,000) and the cursor of the next page. */
  query(q: string, opts: SearchOptions = {}): Omit<SearchResult, 'lag'> {
    const limit = opts.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new CustodyError('BAD_REQUEST', `limit must be a whole number from 1 to ${MAX_LIMIT}.`);
    const { prep, key } = this.prepared(q, opts);
    const after = opts.cursor ? decodeCursor(opts.cursor, key).id : undefined;
    // One read transaction: the page and the total see the same index.
    const run = this.db.transaction(() => {
      const s = prep.stream(after);
      const ids: bigint[] = [];
      while (s.cur !== null && ids.length <= limit) {
        ids.push(s.cur);
        s.next();
      }
      const more = ids.length > limit;
      if (more) ids.pop();
      const hits: Hit[] = [];
      for (const id of ids) {
        const h = this.hitOf(id);
        if (h) hits.push(h);
      }
      const counted = prep.count(TOTAL_CAP + 1);
      return { hits, next: more ? encodeCursor(ids[ids.length - 1]!, key) : null, total: Math.min(counted, TOTAL_CAP), totalCapped: counted > TOTAL_CAP };
    });
    const r = run();
    return { query: q, ...r };
  }

  /**
   * Every hit of a query in order (all pages; at most `limit` when given), read lazily: memory
   * stays bounded whatever the number of hits.
   */
  *iterate(q: string, opts: SearchOptions = {}): Generator<Hit> {
    const max = opts.limit ?? Infinity;
    if (max !== Infinity && (!Number.isInteger(max) || max < 0)) throw new CustodyError('BAD_REQUEST', 'limit must be a whole number.');
    const { prep, key } = this.prepared(q, opts);
    const s = prep.stream(opts.cursor ? decodeCursor(opts.cursor, key).id : undefined);
    let n = 0;
    while (s.cur !== null && n < max) {
      const h = this.hitOf(s.cur);
      s.next();
      if (h) {
        n++;
        yield h;
      }
    }
  }

  /**
   * Entries received per bucket (minute or hour) and source, from the index: the ingest rate
   * per source over time. Default window: the last 6 hours by minute, the last 7 days by hour.
   */
  ingestStats(opts: { log?: string; bucket?: 'minute' | 'hour'; from?: TimeInput; to?: TimeInput } = {}): { log: string | null; bucket: 'minute' | 'hour'; from: string; to: string; buckets: IngestBucket[] } {
    if (this.closed) throw new CustodyError('NOT_READY', 'The search index is closed.');
    const bucket = opts.bucket ?? 'minute';
    if (bucket !== 'minute' && bucket !== 'hour') throw new CustodyError('BAD_REQUEST', 'bucket must be "minute" or "hour".');
    const unit = bucket === 'minute' ? 60_000 : 3_600_000;
    const to = timeOf(opts.to, 'end', 'to') ?? Date.now();
    const from = timeOf(opts.from, 'start', 'from') ?? to - (bucket === 'minute' ? 6 * 3_600_000 : 7 * 86_400_000);
    if (from > to) throw new CustodyError('BAD_REQUEST', 'from is after to. Swap them.');
    if ((to - from) / unit > 10_000) throw new CustodyError('BAD_REQUEST', `That is more than 10,000 ${bucket}s; choose a shorter window or bucket=hour.`);
    const cat = this.catalog().logIds;
    let logIds: number[];
    if (opts.log !== undefined) {
      const id = cat.get(opts.log);
      logIds = id === undefined ? [] : [id];
    } else logIds = [...cat.values()];
    const counts = new Map<string, number>();
    const stmt = this.db.prepare('SELECT CAST(received / ? AS INTEGER) AS b, source, count(*) AS n FROM entries WHERE log = ? AND received BETWEEN ? AND ? GROUP BY b, source');
    for (const id of logIds) {
      for (const r of stmt.all(BigInt(unit), id, from, to) as Array<{ b: number; source: string; n: number }>) {
        const k = `${r.b}\u0000${r.source}`;
        counts.set(k, (counts.get(k) ?? 0) + r.n);
      }
    }
    const buckets = [...counts]
      .map(([k, count]) => {
        const [b, source] = k.split('\u0000') as [string, string];
        return { t: new Date(Number(b) * unit).toISOString(), source, count };
      })
      .sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
    return { log: opts.log ?? null, bucket, from: new Date(from).toISOString(), to: new Date(to).toISOString(), buckets };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
