/**
 * The search index of a shared vault, in PostgreSQL (docs/SEARCH.md, "Search on a shared vault";
 * tables: storage/pg/schema.ts migration 300). Same query language and the same answers as the
 * SQLite index (store.ts, engine.ts, reader.ts), compiled to one PostgreSQL statement:
 *
 *   - common fields are columns compared lower-cased, each with a btree index on
 *     (lower(col) text_pattern_ops, id) — equality and prefixes (LIKE 'p%') use it;
 *   - full text is a tsvector column with a GIN index. The tokens are made here, in JS, the way
 *     FTS5's unicode61 tokenizer (remove_diacritics 2) makes them — runs of letters, digits and
 *     private-use characters, diacritics removed, lower-cased — and handed to PostgreSQL as a
 *     tsvector/tsquery literal, so PostgreSQL's own parser (which keeps "10.0.0.1" or
 *     "a@b.com" whole) never decides what a token is. A phrase is `'a' <-> 'b'`, a prefix `'a':*`;
 *   - ids order the index by time exactly as in store.ts, so paging, cursors and time ranges are
 *     the same; a cursor of one store is never accepted by a query of another (its key hashes
 *     the query), and has the same format.
 *
 * Rows are written with each log's `indexed` count in one transaction, and that count is
 * checked (SELECT … FOR UPDATE) against where the writer started: two indexers at once (a node
 * that lost the lock but did not notice yet) cannot write an entry twice or skip one.
 */
import type pg from 'pg';
import { CustodyError } from '../errors.js';
import { parseQuery, type QueryNode } from './query.js';
import { idAtStart, idAtEnd, MIN_ID, MAX_ID, TEXT_COLUMNS, type IndexRow } from './store.js';
import { TOTAL_CAP, MAX_LIMIT, DEFAULT_LIMIT, timeOf, cursorKey, encodeCursor, decodeCursor, toHit, type HitRow, type Hit, type SearchOptions, type SearchResult, type TimeInput, type IngestBucket } from './reader.js';
import type { Order } from './engine.js';
import { checkout, checkin, pgStorageError } from '../storage/pg/pool.js';

const SLOTS = 1 << 16;
/** Longest token kept (a PostgreSQL lexeme is at most 2046 bytes); longer ones are cut, in records and queries alike. */
export const MAX_TOKEN_CHARS = 500;
/** PostgreSQL keeps positions up to 16383 (later ones count as 16383) and 256 per lexeme. */
const MAX_POSITION = 16383;
const MAX_POSITIONS_PER_TOKEN = 256;
/** A tsvector is at most 1 MiB: tokens past this estimate are not indexed (docs/SEARCH.md). */
const MAX_TSVECTOR_BYTES = 900_000;

const TOKEN_RE = /[\p{L}\p{N}\p{Co}]+/gu;

/** FTS5 unicode61 (remove_diacritics 2) tokens of a text, approximated: see the file comment. */
export function ftsTokens(text: string): string[] {
  const folded = text.toLowerCase().normalize('NFD').replace(/\p{M}+/gu, '');
  const out: string[] = [];
  for (const m of folded.matchAll(TOKEN_RE)) out.push(m[0].length > MAX_TOKEN_CHARS ? m[0].slice(0, MAX_TOKEN_CHARS) : m[0]);
  return out;
}

/**
 * The tsvector literal of a record's text. Tokens hold only letters, digits and private-use
 * characters, so they need no escaping inside '…'.
 */
export function tsvectorOf(text: string): string {
  const pos = new Map<string, number[]>();
  let bytes = 0;
  let p = 0;
  for (const t of ftsTokens(text)) {
    p++;
    let list = pos.get(t);
    if (!list) {
      bytes += Buffer.byteLength(t) + 8;
      if (bytes > MAX_TSVECTOR_BYTES) break;
      list = [];
      pos.set(t, list);
    }
    if (list.length < MAX_POSITIONS_PER_TOKEN) {
      const at = Math.min(p, MAX_POSITION);
      if (list[list.length - 1] !== at) {
        list.push(at);
        bytes += 2;
      }
    }
  }
  return [...pos].map(([t, ps]) => `'${t}':${ps.join(',')}`).join(' ');
}

/** The tsquery of a full-text term: its tokens as a phrase, the last one a prefix when asked. */
export function tsqueryOf(value: string, prefix: boolean): string | null {
  const toks = ftsTokens(value);
  if (toks.length === 0) return null;
  return toks.map((t, i) => `'${t}'${prefix && i === toks.length - 1 ? ':*' : ''}`).join(' <-> ');
}

/** LIKE pattern text with its wildcards escaped (the default escape is "\"). */
function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

/** One SQL condition for a query tree; never NULL (NOT treats "no value" as "not equal", as engine.ts does). */
function condOf(n: QueryNode, p: Params): string {
  switch (n.kind) {
    case 'all':
      return 'TRUE';
    case 'and':
      return `(${n.children.map((c) => condOf(c, p)).join(' AND ')})`;
    case 'or':
      return `(${n.children.map((c) => condOf(c, p)).join(' OR ')})`;
    case 'not':
      return `(NOT ${condOf(n.child, p)})`;
    case 'time':
      return `(id BETWEEN ${p.add((n.from === null ? MIN_ID : idAtStart(n.from)).toString())}::bigint AND ${p.add((n.to === null ? MAX_ID : idAtEnd(n.to)).toString())}::bigint)`;
    case 'text': {
      const q = tsqueryOf(n.value, n.prefix);
      return q === null ? 'FALSE' : `(tsv @@ ${p.add(q)}::tsquery)`;
    }
    case 'field': {
      if (n.field === 'log') {
        return n.prefix ? `(lower(log) LIKE lower(${p.add(likeEscape(n.value) + '%')}))` : `(lower(log) = lower(${p.add(n.value)}))`;
      }
      if (n.field === 'ocsf') return n.prefix ? '(ocsf IS NOT NULL)' : `(ocsf IS NOT NULL AND ocsf = ${p.add(Number(n.value))}::integer)`;
      const col = TEXT_COLUMNS[n.field];
      if (n.prefix && n.value === '') return `(${col} IS NOT NULL)`;
      if (n.prefix) return `(${col} IS NOT NULL AND lower(${col}) LIKE lower(${p.add(likeEscape(n.value) + '%')}))`;
      return `(${col} IS NOT NULL AND lower(${col}) = lower(${p.add(n.value)}))`;
    }
  }
}

// Cursors, time bounds and hits: the same formats as reader.ts (imported from there).

/** A hit row as PostgreSQL returns it: bigint columns arrive as strings. */
interface PgHitRow extends Omit<HitRow, 'idx' | 'time' | 'received'> {
  id: string;
  idx: string;
  time: string;
  received: string;
}

function pgHit(r: PgHitRow): Hit {
  return toHit({ ...r, idx: Number(r.idx), time: Number(r.time), received: Number(r.received) });
}

const HIT_COLUMNS = 'id, log, idx, time, received, source, region, account, actor, action, outcome, src_ip, dst_ip, severity, resource, ocsf';

/** The index's position moved under a writer: another indexer wrote this log meanwhile. */
export class IndexPositionMoved extends Error {}

export class PgSearchStore {
  constructor(private readonly pool: pg.Pool) {}

  /** Per log, how many of its entries are indexed. */
  async indexed(): Promise<Map<string, number>> {
    try {
      const r = await this.pool.query<{ log: string; indexed: string }>('SELECT log, indexed FROM custody_search_logs');
      return new Map(r.rows.map((x) => [x.log, Number(x.indexed)]));
    } catch (e) {
      throw pgStorageError(e, 'read the search index progress', 'read');
    }
  }

  /**
   * Inserts the rows of entries [from, next) of `log` and sets its indexed count to `next`, in
   * one transaction — refused (IndexPositionMoved, nothing written) unless the count is `from`.
   */
  async insert(log: string, from: number, next: number, rows: IndexRow[]): Promise<void> {
    const c = await checkout(this.pool);
    let failed: Error | undefined;
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO custody_search_logs (log, indexed) VALUES ($1, 0) ON CONFLICT (log) DO NOTHING', [log]);
      const cur = Number((await c.query<{ indexed: string }>('SELECT indexed FROM custody_search_logs WHERE log = $1 FOR UPDATE', [log])).rows[0]!.indexed);
      if (cur !== from) {
        await c.query('ROLLBACK');
        throw new IndexPositionMoved(`the search index of log "${log}" is at ${cur}, not ${from}`);
      }
      // Rows in id order, each at its wanted id or the next free one (store.ts IndexWriter.place).
      let pending = rows
        .map((r) => ({ r, id: idAtStart(r.time) | BigInt(r.index & (SLOTS - 1)), tsv: tsvectorOf(r.text) }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      while (pending.length > 0) {
        const missed: typeof pending = [];
        for (let k = 0; k < pending.length; k += 500) {
          const chunk = pending.slice(k, k + 500);
          const p = new Params();
          const values = chunk.map(({ r, id, tsv }) => {
            const v = [id.toString(), r.log, r.index, r.time, r.received, r.source, r.region ?? null, r.account ?? null, r.actor ?? null, r.action ?? null, r.outcome ?? null, r.srcIp ?? null, r.dstIp ?? null, r.severity ?? null, r.resource ?? null, r.ocsf ?? null, tsv];
            return `(${v.map((x, i) => p.add(x) + (i === 0 || i === 2 || i === 3 || i === 4 ? '::bigint' : i === 15 ? '::integer' : i === 16 ? '::tsvector' : '')).join(', ')})`;
          });
          const done = await c.query<{ idx: string }>(
            `INSERT INTO custody_search_entries (id, log, idx, time, received, source, region, account, actor, action, outcome, src_ip, dst_ip, severity, resource, ocsf, tsv)
             VALUES ${values.join(', ')} ON CONFLICT (id) DO NOTHING RETURNING idx`,
            p.values,
          );
          const placed = new Set(done.rows.map((x) => Number(x.idx)));
          for (const x of chunk) if (!placed.has(x.r.index)) missed.push(x);
        }
        for (const x of missed) {
          if (x.id >= MAX_ID) throw new CustodyError('INTERNAL', 'The search index has no free id left at the end of time.');
          x.id += 1n;
        }
        pending = missed;
      }
      await c.query('UPDATE custody_search_logs SET indexed = $2 WHERE log = $1', [log, next]);
      await c.query('COMMIT');
    } catch (e) {
      failed = e as Error;
      await c.query('ROLLBACK').catch(() => undefined);
      if (e instanceof IndexPositionMoved) {
        failed = undefined;
        throw e;
      }
      throw pgStorageError(e, 'write the search index');
    } finally {
      checkin(c, failed);
    }
  }

  private prepared(q: string, opts: SearchOptions): { where: string; params: Params; key: string; order: Order } {
    if (typeof q !== 'string') throw new CustodyError('BAD_QUERY', 'The query must be text.', { position: 0, expected: 'a query' });
    const order: Order = opts.order ?? 'desc';
    if (order !== 'asc' && order !== 'desc') throw new CustodyError('BAD_REQUEST', 'order must be "desc" (newest first) or "asc".');
    const from = timeOf(opts.from, 'start', 'from');
    const to = timeOf(opts.to, 'end', 'to');
    if (from !== null && to !== null && from > to) throw new CustodyError('BAD_REQUEST', 'from is after to: nothing can match. Swap them.');
    const tree = parseQuery(q);
    const p = new Params();
    const lo = from === null ? MIN_ID : idAtStart(from);
    const hi = to === null ? MAX_ID : idAtEnd(to);
    const where = `id BETWEEN ${p.add(lo.toString())}::bigint AND ${p.add(hi.toString())}::bigint AND ${condOf(tree, p)}`;
    return { where, params: p, key: cursorKey(q, from, to, order), order };
  }

  /** One page of hits, the total (up to 10,000) and the cursor of the next page. */
  async query(q: string, opts: SearchOptions = {}): Promise<Omit<SearchResult, 'lag'>> {
    const limit = opts.limit ?? DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new CustodyError('BAD_REQUEST', `limit must be a whole number from 1 to ${MAX_LIMIT}.`);
    const { where, params, key, order } = this.prepared(q, opts);
    const after = opts.cursor ? decodeCursor(opts.cursor, key).id : undefined;
    const countSql = `SELECT count(*)::integer AS n FROM (SELECT 1 FROM custody_search_entries WHERE ${where} LIMIT ${TOTAL_CAP + 1}) t`;
    const countParams = [...params.values];
    const pageWhere = after === undefined ? where : `${where} AND id ${order === 'desc' ? '<' : '>'} ${params.add(after.toString())}::bigint`;
    const pageSql = `SELECT ${HIT_COLUMNS} FROM custody_search_entries WHERE ${pageWhere} ORDER BY id ${order === 'desc' ? 'DESC' : 'ASC'} LIMIT ${limit + 1}`;
    const c = await checkout(this.pool).catch((e: unknown) => {
      throw pgStorageError(e, 'search', 'read');
    });
    let failed: Error | undefined;
    try {
      // One snapshot: the page and the total see the same index.
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const page = (await c.query<PgHitRow>(pageSql, params.values)).rows;
      const counted = (await c.query<{ n: number }>(countSql, countParams)).rows[0]!.n;
      await c.query('COMMIT');
      const more = page.length > limit;
      if (more) page.pop();
      return { query: q, hits: page.map(pgHit), next: more ? encodeCursor(BigInt(page[page.length - 1]!.id), key) : null, total: Math.min(counted, TOTAL_CAP), totalCapped: counted > TOTAL_CAP };
    } catch (e) {
      failed = e as Error;
      await c.query('ROLLBACK').catch(() => undefined);
      throw pgStorageError(e, 'search', 'read');
    } finally {
      checkin(c, failed);
    }
  }

  /** Every hit of a query in order, a page at a time (at most `limit` when given). */
  async *iterate(q: string, opts: SearchOptions = {}): AsyncGenerator<Hit> {
    const max = opts.limit ?? Infinity;
    let n = 0;
    let cursor = opts.cursor ?? null;
    for (;;) {
      const page = await this.query(q, { ...opts, limit: Math.min(MAX_LIMIT, max - n), cursor });
      for (const h of page.hits) {
        yield h;
        if (++n >= max) return;
      }
      if (!page.next) return;
      cursor = page.next;
    }
  }

  /** Entries received per bucket and source (reader.ts ingestStats). */
  async ingestStats(opts: { log?: string; bucket?: 'minute' | 'hour'; from?: TimeInput; to?: TimeInput } = {}): Promise<{ log: string | null; bucket: 'minute' | 'hour'; from: string; to: string; buckets: IngestBucket[] }> {
    const bucket = opts.bucket ?? 'minute';
    if (bucket !== 'minute' && bucket !== 'hour') throw new CustodyError('BAD_REQUEST', 'bucket must be "minute" or "hour".');
    const unit = bucket === 'minute' ? 60_000 : 3_600_000;
    const to = timeOf(opts.to, 'end', 'to') ?? Date.now();
    const from = timeOf(opts.from, 'start', 'from') ?? to - (bucket === 'minute' ? 6 * 3_600_000 : 7 * 86_400_000);
    if (from > to) throw new CustodyError('BAD_REQUEST', 'from is after to. Swap them.');
    if ((to - from) / unit > 10_000) throw new CustodyError('BAD_REQUEST', `That is more than 10,000 ${bucket}s; choose a shorter window or bucket=hour.`);
    let rows: Array<{ b: string; source: string; n: string }>;
    try {
      rows = (
        await this.pool.query<{ b: string; source: string; n: string }>(
          `SELECT received / $1::bigint AS b, source, count(*) AS n FROM custody_search_entries
           WHERE ($2::text IS NULL OR log = $2) AND received BETWEEN $3::bigint AND $4::bigint GROUP BY 1, 2`,
          [unit, opts.log ?? null, Math.floor(from), Math.floor(to)],
        )
      ).rows;
    } catch (e) {
      throw pgStorageError(e, 'read the ingest counts', 'read');
    }
    const buckets = rows
      .map((r) => ({ t: new Date(Number(r.b) * unit).toISOString(), source: r.source, count: Number(r.n) }))
      .sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
    return { log: opts.log ?? null, bucket, from: new Date(from).toISOString(), to: new Date(to).toISOString(), buckets };
  }
}
