/**
 * Runs a parsed query against the index. Every part of a query becomes a stream of row ids in
 * time order (ids are time-ordered, store.ts):
 *
 *   - a full-text subtree becomes one FTS5 MATCH expression (FTS5 does its own AND, OR, NOT,
 *     phrases and prefixes, and walks doclists in rowid order);
 *   - a subtree of field conditions becomes one SQL WHERE over `entries` (an index per field,
 *     each ordered by id within a value), except that ORs are split into streams merged here;
 *   - the rest is combined here: AND by leapfrogging (each stream seeks to the furthest id),
 *     OR by merging, NOT by checking the excluded stream at each candidate.
 *
 * A leaf reads ids in batches (`ORDER BY id LIMIT n` inside the id range still to go), so a
 * page of 50 newest hits reads little more than 50 ids however large the index is, and a seek
 * far ahead is a new indexed lookup rather than a scan. Time ranges are id ranges.
 */
import type Database from 'better-sqlite3';
import { CustodyError } from '../errors.js';
import type { QueryNode, FieldName } from './query.js';
import { idAtStart, idAtEnd, MIN_ID, MAX_ID, TEXT_COLUMNS } from './store.js';

export type Order = 'asc' | 'desc';

/** A stream of ids in query order. `cur` is null once exhausted. */
interface Stream {
  cur: bigint | null;
  /** Moves to the next id. */
  next(): void;
  /** Moves to the first id at or after `t` (in query order); never moves back. */
  seek(t: bigint): void;
}

interface Range {
  lo: bigint;
  hi: bigint;
  desc: boolean;
}

/** `a` is at or after `b` in query order. */
function atOrAfter(a: bigint, b: bigint, desc: boolean): boolean {
  return desc ? a <= b : a >= b;
}

type Fetch = (a: bigint, b: bigint, limit: number) => bigint[];

const FIRST_BATCH = 64;
const MAX_BATCH = 4096;

/** Ids from one SQL statement, a batch at a time. */
class LeafStream implements Stream {
  cur: bigint | null = null;
  private buf: bigint[] = [];
  private pos = 0;
  private done = false;
  private batch = FIRST_BATCH;

  constructor(
    private readonly fetch: Fetch,
    private readonly r: Range,
  ) {
    this.load(r.desc ? r.hi : r.lo);
  }

  /** Loads a batch starting at `from` (inclusive). */
  private load(from: bigint): void {
    const a = this.r.desc ? this.r.lo : from;
    const b = this.r.desc ? from : this.r.hi;
    if (a > b) {
      this.buf = [];
      this.done = true;
    } else {
      this.buf = this.fetch(a, b, this.batch);
      this.done = this.buf.length < this.batch;
    }
    this.pos = 0;
    this.cur = this.buf[0] ?? null;
  }

  next(): void {
    if (this.cur === null) return;
    this.pos++;
    if (this.pos < this.buf.length) {
      this.cur = this.buf[this.pos]!;
      return;
    }
    if (this.done) {
      this.cur = null;
      return;
    }
    const last = this.buf[this.buf.length - 1]!;
    this.batch = Math.min(this.batch * 2, MAX_BATCH);
    this.load(this.r.desc ? last - 1n : last + 1n);
  }

  seek(t: bigint): void {
    if (this.cur === null || atOrAfter(this.cur, t, this.r.desc)) return;
    const last = this.buf[this.buf.length - 1]!;
    if (atOrAfter(last, t, this.r.desc)) {
      // Within the batch: binary search for the first id at or after t.
      let lo = this.pos + 1;
      let hi = this.buf.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (atOrAfter(this.buf[mid]!, t, this.r.desc)) hi = mid;
        else lo = mid + 1;
      }
      this.pos = lo;
      this.cur = this.buf[lo]!;
      return;
    }
    if (this.done) {
      this.cur = null;
      return;
    }
    // Batches keep growing on seeks too: in an AND of two dense streams most seeks then land
    // inside the batch in hand; against a sparse stream a larger batch costs little more.
    this.batch = Math.min(this.batch * 2, MAX_BATCH);
    this.load(t);
  }
}

/** Ids in every positive stream and in no negative one. */
class AndStream implements Stream {
  cur: bigint | null = null;
  constructor(
    private readonly pos: Stream[],
    private readonly neg: Stream[],
    private readonly desc: boolean,
  ) {
    this.align();
  }

  private align(): void {
    for (;;) {
      let target: bigint | null = null;
      for (const s of this.pos) {
        if (s.cur === null) {
          this.cur = null;
          return;
        }
        if (target === null || atOrAfter(s.cur, target, this.desc)) target = s.cur;
      }
      let agreed = true;
      for (const s of this.pos) {
        s.seek(target!);
        if (s.cur === null) {
          this.cur = null;
          return;
        }
        if (s.cur !== target) agreed = false;
      }
      if (!agreed) continue;
      let excluded = false;
      for (const n of this.neg) {
        n.seek(target!);
        if (n.cur === target) {
          excluded = true;
          break;
        }
      }
      if (!excluded) {
        this.cur = target;
        return;
      }
      this.pos[0]!.next();
    }
  }

  next(): void {
    if (this.cur === null) return;
    this.pos[0]!.next();
    this.align();
  }

  seek(t: bigint): void {
    if (this.cur === null || atOrAfter(this.cur, t, this.desc)) return;
    this.pos[0]!.seek(t);
    this.align();
  }
}

/** Ids in any of the streams, each once. */
class OrStream implements Stream {
  cur: bigint | null = null;
  constructor(
    private readonly parts: Stream[],
    private readonly desc: boolean,
  ) {
    this.pick();
  }

  private pick(): void {
    let best: bigint | null = null;
    for (const s of this.parts) {
      if (s.cur !== null && (best === null || !atOrAfter(s.cur, best, this.desc))) best = s.cur;
    }
    this.cur = best;
  }

  next(): void {
    if (this.cur === null) return;
    const c = this.cur;
    for (const s of this.parts) if (s.cur === c) s.next();
    this.pick();
  }

  seek(t: bigint): void {
    if (this.cur === null || atOrAfter(this.cur, t, this.desc)) return;
    for (const s of this.parts) s.seek(t);
    this.pick();
  }
}

// ---- planning -------------------------------------------------------------------------------

type Kind = 'text' | 'field' | 'mixed';

function kindOf(n: QueryNode): Kind {
  switch (n.kind) {
    case 'text':
      return 'text';
    case 'field':
    case 'time':
      return 'field';
    case 'all':
      return 'field';
    case 'not':
      return kindOf(n.child);
    case 'and':
    case 'or': {
      const ks = new Set(n.children.map(kindOf));
      return ks.size === 1 ? [...ks][0]! : 'mixed';
    }
  }
}

/** FTS5 string literal: the text in double quotes, inner quotes doubled. */
function ftsString(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** The FTS5 expression of a text-only subtree, or null when FTS5 cannot say it (a NOT without a positive part). */
function ftsExpr(n: QueryNode): string | null {
  switch (n.kind) {
    case 'text':
      return ftsString(n.value) + (n.prefix ? ' *' : '');
    case 'or': {
      const parts = n.children.map(ftsExpr);
      return parts.some((p) => p === null) ? null : `(${parts.join(' OR ')})`;
    }
    case 'and': {
      const pos: string[] = [];
      const neg: string[] = [];
      for (const c of n.children) {
        const e = ftsExpr(c.kind === 'not' ? c.child : c);
        if (e === null) return null;
        (c.kind === 'not' ? neg : pos).push(e);
      }
      if (pos.length === 0) return null;
      return `(${pos.join(' AND ')}${neg.map((x) => ` NOT ${x}`).join('')})`;
    }
    default:
      return null;
  }
}

interface Sql {
  where: string;
  params: Array<string | number | bigint>;
}

export interface IndexCatalog {
  /** Log ids by name (lower-case names are matched case-insensitively). */
  logIds: Map<string, number>;
}

function fieldSql(n: Extract<QueryNode, { kind: 'field' }>, cat: IndexCatalog): Sql {
  const f: FieldName = n.field;
  if (f === 'log') {
    const ids: number[] = [];
    const v = n.value.toLowerCase();
    for (const [name, id] of cat.logIds) if (n.prefix ? name.toLowerCase().startsWith(v) : name.toLowerCase() === v) ids.push(id);
    if (ids.length === 0) return { where: '0', params: [] };
    return { where: `log IN (${ids.map(() => '?').join(',')})`, params: ids };
  }
  if (f === 'ocsf') {
    if (n.prefix) return { where: 'ocsf IS NOT NULL', params: [] };
    return { where: 'ocsf = ?', params: [Number(n.value)] };
  }
  const col = TEXT_COLUMNS[f];
  if (!n.prefix) return { where: `${col} = ?`, params: [n.value] };
  if (n.value === '') return { where: `${col} IS NOT NULL`, params: [] };
  // A prefix is a range in the column's NOCASE order: [p, p + U+10FFFF).
  return { where: `(${col} >= ? AND ${col} < ?)`, params: [n.value, n.value + '\u{10FFFF}'] };
}

/** One SQL condition for a field-only subtree; NOT treats "no value" as "not equal". */
function sqlOf(n: QueryNode, cat: IndexCatalog): Sql {
  switch (n.kind) {
    case 'all':
      return { where: '1', params: [] };
    case 'field':
      return fieldSql(n, cat);
    case 'time':
      return { where: 'id BETWEEN ? AND ?', params: [n.from === null ? MIN_ID : idAtStart(n.from), n.to === null ? MAX_ID : idAtEnd(n.to)] };
    case 'not': {
      const s = sqlOf(n.child, cat);
      return { where: `((${s.where}) IS NOT 1)`, params: s.params };
    }
    case 'and':
    case 'or': {
      const parts = n.children.map((c) => sqlOf(c, cat));
      return { where: `(${parts.map((p) => p.where).join(n.kind === 'and' ? ' AND ' : ' OR ')})`, params: parts.flatMap((p) => p.params) };
    }
    case 'text':
      throw new CustodyError('INTERNAL', 'a text term reached the SQL planner');
  }
}

/** A plan node: builds its stream for a range. */
type Plan =
  | { t: 'fts'; expr: string }
  | { t: 'sql'; sql: Sql }
  | { t: 'and'; pos: Plan[]; neg: Plan[] }
  | { t: 'or'; parts: Plan[] };

const ALL: Plan = { t: 'sql', sql: { where: '1', params: [] } };

function planOf(n: QueryNode, cat: IndexCatalog): Plan {
  const k = kindOf(n);
  if (k === 'text') {
    const e = ftsExpr(n);
    if (e !== null) return { t: 'fts', expr: e };
  }
  if (k === 'field') {
    if (n.kind === 'or') return { t: 'or', parts: n.children.map((c) => planOf(c, cat)) };
    return { t: 'sql', sql: sqlOf(n, cat) };
  }
  if (n.kind === 'not') return { t: 'and', pos: [ALL], neg: [planOf(n.child, cat)] };
  if (n.kind === 'or') {
    const texts = n.children.filter((c) => kindOf(c) === 'text' && ftsExpr(c) !== null);
    const rest = n.children.filter((c) => !texts.includes(c));
    const parts = rest.map((c) => planOf(c, cat));
    if (texts.length > 0) parts.push({ t: 'fts', expr: `(${texts.map((c) => ftsExpr(c)!).join(' OR ')})` });
    return parts.length === 1 ? parts[0]! : { t: 'or', parts };
  }
  if (n.kind !== 'and') return ALL; // text leaves are handled above
  const pos: Plan[] = [];
  const neg: Plan[] = [];
  const textPos: string[] = [];
  const textNeg: string[] = [];
  const fields: QueryNode[] = [];
  for (const c of n.children) {
    const inner = c.kind === 'not' ? c.child : c;
    const ck = kindOf(inner);
    if (ck === 'field') fields.push(c);
    else if (ck === 'text' && ftsExpr(inner) !== null) (c.kind === 'not' ? textNeg : textPos).push(ftsExpr(inner)!);
    else if (c.kind === 'not') neg.push(planOf(inner, cat));
    else pos.push(planOf(c, cat));
  }
  if (textPos.length > 0) pos.push({ t: 'fts', expr: `(${textPos.join(' AND ')}${textNeg.map((x) => ` NOT ${x}`).join('')})` });
  else for (const e of textNeg) neg.push({ t: 'fts', expr: e });
  if (fields.length > 0) pos.push({ t: 'sql', sql: sqlOf({ kind: 'and', children: fields }, cat) });
  if (pos.length === 0) pos.push(ALL);
  return pos.length === 1 && neg.length === 0 ? pos[0]! : { t: 'and', pos, neg };
}

/**
 * Splits the time conditions every hit must meet (top-level ANDed time terms) off the tree:
 * they become the id range every stream walks.
 */
function hoistTime(n: QueryNode, r: { from: number | null; to: number | null }): QueryNode {
  const narrow = (t: Extract<QueryNode, { kind: 'time' }>): void => {
    if (t.from !== null) r.from = r.from === null ? t.from : Math.max(r.from, t.from);
    if (t.to !== null) r.to = r.to === null ? t.to : Math.min(r.to, t.to);
  };
  if (n.kind === 'time') {
    narrow(n);
    return { kind: 'all' };
  }
  if (n.kind !== 'and') return n;
  const rest: QueryNode[] = [];
  for (const c of n.children) {
    if (c.kind === 'time') narrow(c);
    else rest.push(c);
  }
  if (rest.length === 0) return { kind: 'all' };
  return rest.length === 1 ? rest[0]! : { kind: 'and', children: rest };
}

// ---- running --------------------------------------------------------------------------------

/** The reading side of the index on one connection: prepared statements cached by SQL text. */
export class QueryRunner {
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(readonly db: Database.Database) {}

  private stmt(sql: string, safeIntegers: boolean): Database.Statement {
    const key = `${safeIntegers ? 'B' : 'N'}${sql}`;
    let s = this.stmts.get(key);
    if (!s) {
      try {
        s = this.db.prepare(sql);
      } catch (e) {
        throw new CustodyError('BAD_QUERY', `The search could not be run: ${(e as Error).message}.`, { position: 0, expected: 'a simpler query' });
      }
      if (safeIntegers) s.safeIntegers(true);
      if (this.stmts.size > 500) this.stmts.clear();
      this.stmts.set(key, s);
    }
    return s;
  }

  private run(s: Database.Statement, params: unknown[]): bigint[] {
    try {
      return s.pluck().all(...params) as bigint[];
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_ERROR') {
        throw new CustodyError('BAD_QUERY', `The full-text part of the search could not be read: ${(e as Error).message}.`, { position: 0, expected: 'a simpler query' });
      }
      throw e;
    }
  }

  private fetcher(p: Extract<Plan, { t: 'fts' | 'sql' }>, desc: boolean): Fetch {
    const dir = desc ? 'DESC' : 'ASC';
    if (p.t === 'fts') {
      const s = this.stmt(`SELECT rowid FROM fts WHERE fts MATCH ? AND rowid BETWEEN ? AND ? ORDER BY rowid ${dir} LIMIT ?`, true);
      return (a, b, limit) => this.run(s, [p.expr, a, b, limit]);
    }
    const s = this.stmt(`SELECT id FROM entries WHERE ${p.sql.where} AND id BETWEEN ? AND ? ORDER BY id ${dir} LIMIT ?`, true);
    return (a, b, limit) => this.run(s, [...p.sql.params, a, b, limit]);
  }

  private streamOf(p: Plan, r: Range): Stream {
    switch (p.t) {
      case 'fts':
      case 'sql':
        return new LeafStream(this.fetcher(p, r.desc), r);
      case 'and':
        return new AndStream(p.pos.map((x) => this.streamOf(x, r)), p.neg.map((x) => this.streamOf(x, r)), r.desc);
      case 'or':
        return new OrStream(p.parts.map((x) => this.streamOf(x, r)), r.desc);
    }
  }

  /** Hits of a plan, up to `cap`, counted in SQL when the plan is one statement. */
  private count(p: Plan, r: Range, cap: number): number {
    if (p.t === 'fts') return Number(this.stmt('SELECT count(*) FROM (SELECT 1 FROM fts WHERE fts MATCH ? AND rowid BETWEEN ? AND ? LIMIT ?)', false).pluck().get(p.expr, r.lo, r.hi, cap));
    if (p.t === 'sql') return Number(this.stmt(`SELECT count(*) FROM (SELECT 1 FROM entries WHERE ${p.sql.where} AND id BETWEEN ? AND ? LIMIT ?)`, false).pluck().get(...p.sql.params, r.lo, r.hi, cap));
    const s = this.streamOf(p, r);
    let n = 0;
    while (s.cur !== null && n < cap) {
      n++;
      s.next();
    }
    return n;
  }

  /** Compiles a query for a time window into something that can be walked. */
  prepare(tree: QueryNode, window: { from: number | null; to: number | null }, order: Order, cat: IndexCatalog): Prepared {
    const t = { from: window.from, to: window.to };
    const rest = hoistTime(tree, t);
    const plan = planOf(rest, cat);
    const range: Range = { lo: t.from === null ? MIN_ID : idAtStart(t.from), hi: t.to === null ? MAX_ID : idAtEnd(t.to), desc: order === 'desc' };
    return {
      plan,
      range,
      stream: (after?: bigint) => {
        const r = after === undefined ? range : range.desc ? { ...range, hi: after - 1n } : { ...range, lo: after + 1n };
        return this.streamOf(plan, r);
      },
      count: (cap: number) => (range.lo > range.hi ? 0 : this.count(plan, range, cap)),
    };
  }
}

export interface Prepared {
  plan: Plan;
  range: Range;
  /** A stream from the start, or from just after the id `after` (a cursor). */
  stream(after?: bigint): Stream;
  /** How many hits, counting at most `cap`. */
  count(cap: number): number;
}

export type { Stream };
