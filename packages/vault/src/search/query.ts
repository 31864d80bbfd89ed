/**
 * The search query language (docs/SEARCH.md): a small, strict grammar that an auditor can type.
 *
 *   query   := or
 *   or      := and ( "OR" and )*
 *   and     := unary ( ["AND"] unary )*          terms side by side are ANDed
 *   unary   := "NOT" unary | "-" primary | primary
 *   primary := "(" or ")" | term
 *   term    := field ":" value | "quoted phrase" ["*"] | word ["*"]
 *   value   := word ["*"] | "quoted value" ["*"] | "[" bound "TO" bound "]"   (time only)
 *
 * Everything here is pure: the parser returns a tree, and every mistake is a CustodyError
 * BAD_QUERY whose details name the 0-based `position` in the query and what was `expected`.
 * Nothing from a query ever becomes a RegExp or SQL text; values travel as parameters.
 */
import { CustodyError } from '../errors.js';

/** Fields an auditor can name, with the names they may be typed as (case-insensitive). */
export const FIELDS = ['log', 'source', 'region', 'account', 'actor', 'action', 'outcome', 'srcIp', 'dstIp', 'severity', 'resource', 'ocsf'] as const;
export type FieldName = (typeof FIELDS)[number];

const FIELD_ALIASES: Record<string, FieldName | 'text' | 'time'> = {
  log: 'log',
  source: 'source',
  region: 'region',
  account: 'account',
  actor: 'actor',
  action: 'action',
  outcome: 'outcome',
  srcip: 'srcIp',
  src_ip: 'srcIp',
  dstip: 'dstIp',
  dst_ip: 'dstIp',
  severity: 'severity',
  resource: 'resource',
  ocsf: 'ocsf',
  ocsfclass: 'ocsf',
  text: 'text',
  time: 'time',
};

export type QueryNode =
  | { kind: 'all' }
  | { kind: 'and'; children: QueryNode[] }
  | { kind: 'or'; children: QueryNode[] }
  | { kind: 'not'; child: QueryNode }
  /** Full text: a word or a phrase (both are token sequences once tokenized), maybe a prefix. */
  | { kind: 'text'; value: string; prefix: boolean; position: number }
  /** A field equals a value (case-insensitive), or starts with it. */
  | { kind: 'field'; field: FieldName; value: string; prefix: boolean; position: number }
  /** A time range in ms since the epoch, both ends inclusive; null = open. */
  | { kind: 'time'; from: number | null; to: number | null; position: number };

export const MAX_QUERY_LENGTH = 4096;
const MAX_TERMS = 64;
const MAX_DEPTH = 32;

export function badQuery(position: number, expected: string, message: string): CustodyError {
  return new CustodyError('BAD_QUERY', `${message} (at character ${position + 1} of the query).`, { position, expected });
}

// ---- times ----------------------------------------------------------------------------------

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;
const RELATIVE_RE = /^now(?:-(\d{1,9})([smhdw]))?$/i;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A time as the first (`start`) or last (`end`) millisecond it names: `2024-01-31` is the whole
 * day, `2024-01-31T12:00` the whole minute, `…T12:00:00Z` the whole second, a time with
 * milliseconds exactly that instant. No zone means UTC. `now` and `now-15m` (s, m, h, d, w)
 * are relative to `now`. Returns null when the text is not a time.
 */
export function parseTimeBound(text: string, side: 'start' | 'end', now: number = Date.now()): number | null {
  const rel = RELATIVE_RE.exec(text);
  if (rel) return rel[1] === undefined ? now : now - Number(rel[1]) * UNIT_MS[rel[2]!.toLowerCase()]!;
  const m = DATE_RE.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  const month = Number(mo) - 1;
  const day = Number(d);
  const hour = h === undefined ? 0 : Number(h);
  const minute = mi === undefined ? 0 : Number(mi);
  const second = s === undefined ? 0 : Number(s);
  if (month > 11 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const ms = frac === undefined ? 0 : Number(frac.slice(0, 3).padEnd(3, '0'));
  let t = Date.UTC(year, month, day, hour, minute, second, ms);
  if (new Date(Date.UTC(year, month, day)).getUTCDate() !== day) return null; // Feb 30 …
  if (zone && zone.toUpperCase() !== 'Z') {
    const zm = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
    const off = (Number(zm[2]) * 60 + Number(zm[3])) * 60_000;
    if (Number(zm[2]) > 23 || Number(zm[3]) > 59) return null;
    t += zm[1] === '+' ? -off : off;
  }
  if (side === 'end') {
    // The last millisecond of the unit the text names.
    const unit = h === undefined ? 86_400_000 : s === undefined ? 60_000 : frac === undefined ? 1000 : 1;
    t += unit - 1;
  }
  return Number.isFinite(t) ? t : null;
}

const TIME_HINT = 'a time like 2024-01-31, 2024-01-31T12:00:00Z or now-1h';

// ---- lexer ----------------------------------------------------------------------------------

type Token =
  | { t: 'lparen' | 'rparen' | 'and' | 'or' | 'not' | 'neg'; pos: number }
  | { t: 'word'; pos: number; value: string }
  | { t: 'quoted'; pos: number; value: string; prefix: boolean }
  | { t: 'field'; pos: number; name: string; value: { kind: 'word'; text: string } | { kind: 'quoted'; text: string; prefix: boolean } | { kind: 'range'; text: string; at: number } };

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';
const WORD_STOP = (c: string | undefined): boolean => c === undefined || isSpace(c) || c === '(' || c === ')' || c === '"';

function readQuoted(q: string, start: number): { text: string; end: number } {
  let out = '';
  let i = start + 1;
  for (; i < q.length; i++) {
    const c = q[i]!;
    if (c === '\\' && (q[i + 1] === '"' || q[i + 1] === '\\')) {
      out += q[i + 1];
      i++;
    } else if (c === '"') return { text: out, end: i + 1 };
    else out += c;
  }
  throw badQuery(start, '"', 'This quoted text has no closing quote');
}

function lex(q: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i]!;
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c === '(') {
      out.push({ t: 'lparen', pos: i++ });
      continue;
    }
    if (c === ')') {
      out.push({ t: 'rparen', pos: i++ });
      continue;
    }
    if (c === '"') {
      const { text, end } = readQuoted(q, i);
      const prefix = q[end] === '*';
      out.push({ t: 'quoted', pos: i, value: text, prefix });
      i = end + (prefix ? 1 : 0);
      continue;
    }
    if (c === '-' && !WORD_STOP(q[i + 1]) || (c === '-' && q[i + 1] === '"') || (c === '-' && q[i + 1] === '(')) {
      out.push({ t: 'neg', pos: i++ });
      continue;
    }
    // A field name: letters and "_" directly followed by ":".
    const fm = /^([A-Za-z_]{1,32}):/.exec(q.slice(i, i + 34));
    if (fm) {
      const name = fm[1]!;
      const at = i + fm[0].length;
      const next = q[at];
      if (next === '"') {
        const { text, end } = readQuoted(q, at);
        const prefix = q[end] === '*';
        out.push({ t: 'field', pos: i, name, value: { kind: 'quoted', text, prefix } });
        i = end + (prefix ? 1 : 0);
        continue;
      }
      if (next === '[') {
        const close = q.indexOf(']', at);
        if (close < 0) throw badQuery(at, ']', 'This time range has no closing "]"');
        out.push({ t: 'field', pos: i, name, value: { kind: 'range', text: q.slice(at + 1, close), at: at + 1 } });
        i = close + 1;
        continue;
      }
      let j = at;
      while (!WORD_STOP(q[j])) j++;
      if (j === at) throw badQuery(at, 'a value', `"${name}:" needs a value right after the colon, like ${name}:value or ${name}:"a value"`);
      out.push({ t: 'field', pos: i, name, value: { kind: 'word', text: q.slice(at, j) } });
      i = j;
      continue;
    }
    let j = i;
    while (!WORD_STOP(q[j])) j++;
    const w = q.slice(i, j);
    if (w === 'AND') out.push({ t: 'and', pos: i });
    else if (w === 'OR') out.push({ t: 'or', pos: i });
    else if (w === 'NOT') out.push({ t: 'not', pos: i });
    else out.push({ t: 'word', pos: i, value: w });
    i = j;
  }
  return out;
}

// ---- parser ---------------------------------------------------------------------------------

/** Whether a text has something the full-text tokenizer keeps (a letter or a digit). */
export function hasTokens(s: string): boolean {
  return /[\p{L}\p{N}]/u.test(s);
}

const FIELD_LIST = 'log, source, region, account, actor, action, outcome, srcIp, dstIp, severity, resource, ocsf, text, time';

class Parser {
  private i = 0;
  private terms = 0;
  constructor(
    private readonly q: string,
    private readonly tokens: Token[],
    private readonly now: number,
  ) {}

  parse(): QueryNode {
    if (this.tokens.length === 0) return { kind: 'all' };
    const n = this.parseOr(0);
    const extra = this.tokens[this.i];
    if (extra) {
      if (extra.t === 'rparen') throw badQuery(extra.pos, 'a search term', 'This ")" closes a "(" that was never opened');
      throw badQuery(extra.pos, 'end of the query', 'Unexpected text');
    }
    return n;
  }

  private peek(): Token | undefined {
    return this.tokens[this.i];
  }

  private endPos(): number {
    return this.q.length;
  }

  private parseOr(depth: number): QueryNode {
    const children = [this.parseAnd(depth)];
    while (this.peek()?.t === 'or') {
      const op = this.tokens[this.i++]!;
      if (!this.startsUnary(this.peek())) throw badQuery(this.peek()?.pos ?? this.endPos(), 'a search term', `"OR" must be followed by a search term`);
      void op;
      children.push(this.parseAnd(depth));
    }
    return children.length === 1 ? children[0]! : { kind: 'or', children };
  }

  private startsUnary(t: Token | undefined): boolean {
    return t !== undefined && (t.t === 'word' || t.t === 'quoted' || t.t === 'field' || t.t === 'lparen' || t.t === 'not' || t.t === 'neg');
  }

  private parseAnd(depth: number): QueryNode {
    const first = this.peek();
    if (!this.startsUnary(first)) {
      if (first === undefined) throw badQuery(this.endPos(), 'a search term', 'The query ends where a search term was expected');
      if (first.t === 'rparen') throw badQuery(first.pos, 'a search term', 'Empty parentheses or a ")" where a search term was expected');
      throw badQuery(first.pos, 'a search term', `"${first.t.toUpperCase()}" must stand between two search terms`);
    }
    const children = [this.parseUnary(depth)];
    for (;;) {
      const t = this.peek();
      if (t?.t === 'and') {
        this.i++;
        if (!this.startsUnary(this.peek())) throw badQuery(this.peek()?.pos ?? this.endPos(), 'a search term', '"AND" must be followed by a search term');
        children.push(this.parseUnary(depth));
      } else if (this.startsUnary(t)) children.push(this.parseUnary(depth));
      else break;
    }
    return children.length === 1 ? children[0]! : { kind: 'and', children };
  }

  private parseUnary(depth: number): QueryNode {
    const t = this.peek()!;
    if (t.t === 'not' || t.t === 'neg') {
      this.i++;
      const next = this.peek();
      if (!this.startsUnary(next) || (t.t === 'neg' && (next!.t === 'not' || next!.t === 'neg'))) {
        throw badQuery(next?.pos ?? this.endPos(), 'a search term', `"${t.t === 'not' ? 'NOT' : '-'}" must be followed by a search term`);
      }
      const child = t.t === 'not' ? this.parseUnary(depth) : this.parsePrimary(depth);
      return { kind: 'not', child };
    }
    return this.parsePrimary(depth);
  }

  private parsePrimary(depth: number): QueryNode {
    const t = this.tokens[this.i++]!;
    if (t.t === 'lparen') {
      if (depth >= MAX_DEPTH) throw badQuery(t.pos, 'fewer parentheses', `Parentheses may nest at most ${MAX_DEPTH} deep`);
      if (this.peek()?.t === 'rparen') throw badQuery(this.peek()!.pos, 'a search term', 'Empty parentheses');
      const inner = this.parseOr(depth + 1);
      const close = this.peek();
      if (close?.t !== 'rparen') throw badQuery(close?.pos ?? this.endPos(), ')', 'This "(" is never closed');
      this.i++;
      return inner;
    }
    if (++this.terms > MAX_TERMS) throw badQuery(t.pos, 'fewer terms', `A query may hold at most ${MAX_TERMS} terms`);
    if (t.t === 'quoted') {
      if (!hasTokens(t.value)) throw badQuery(t.pos, 'a letter or digit', 'This quoted text has no letters or digits to search for');
      return { kind: 'text', value: t.value, prefix: t.prefix, position: t.pos };
    }
    if (t.t === 'word') return this.textTerm(t.value, t.pos);
    if (t.t === 'field') return this.fieldTerm(t);
    throw badQuery(t.pos, 'a search term', 'A search term was expected here');
  }

  private textTerm(raw: string, pos: number): QueryNode {
    const prefix = raw.length > 1 && raw.endsWith('*');
    const value = prefix ? raw.slice(0, -1) : raw;
    if (!hasTokens(value)) {
      throw badQuery(pos, 'a letter or digit', prefix ? 'A prefix search needs at least one letter or digit before the "*"' : `"${raw.slice(0, 40)}" has no letters or digits to search for`);
    }
    return { kind: 'text', value, prefix, position: pos };
  }

  private fieldTerm(t: Extract<Token, { t: 'field' }>): QueryNode {
    const name = FIELD_ALIASES[t.name.toLowerCase()];
    if (!name) {
      throw badQuery(t.pos, `one of the fields: ${FIELD_LIST}`, `There is no field "${t.name}". Fields are ${FIELD_LIST}; to search for text with a colon, put it in quotes`);
    }
    const v = t.value;
    if (name === 'time') return this.timeTerm(t, v);
    if (v.kind === 'range') throw badQuery(t.pos, 'a value', `Ranges "[… TO …]" are for time only; ${name} takes a value`);
    let value: string;
    let prefix: boolean;
    if (v.kind === 'quoted') {
      value = v.text;
      prefix = v.prefix;
    } else {
      prefix = v.text.endsWith('*');
      value = prefix ? v.text.slice(0, -1) : v.text;
    }
    if (name === 'text') {
      if (!hasTokens(value)) throw badQuery(t.pos, 'a letter or digit', 'text: needs words with letters or digits to search for');
      return { kind: 'text', value, prefix, position: t.pos };
    }
    if (value.length > 1024) throw badQuery(t.pos, 'a shorter value', 'Field values are at most 1024 characters');
    if (name === 'ocsf' && !(prefix && value === '') && !/^\d{1,9}$/.test(value)) {
      throw badQuery(t.pos, 'an OCSF class number', 'ocsf takes an OCSF class number, such as ocsf:6003 (API Activity) or ocsf:3002 (Authentication)');
    }
    if (name === 'ocsf' && prefix && value !== '') throw badQuery(t.pos, 'an OCSF class number', 'ocsf takes a whole class number, not a prefix');
    if (!prefix && value === '') throw badQuery(t.pos, 'a value', `${name}:"" is empty; use ${name}:* for "has any ${name}"`);
    return { kind: 'field', field: name, value, prefix, position: t.pos };
  }

  private timeTerm(t: Extract<Token, { t: 'field' }>, v: Extract<Token, { t: 'field' }>['value']): QueryNode {
    if (v.kind === 'range') {
      const m = /^\s*(\S+)\s+TO\s+(\S+)\s*$/.exec(v.text);
      if (!m) throw badQuery(v.at, '[<from> TO <to>]', `A time range is written time:[<from> TO <to>], each ${TIME_HINT} or *`);
      const fromText = m[1]!;
      const toText = m[2]!;
      const from = fromText === '*' ? null : parseTimeBound(fromText, 'start', this.now);
      const to = toText === '*' ? null : parseTimeBound(toText, 'end', this.now);
      if (fromText !== '*' && from === null) throw badQuery(v.at + v.text.indexOf(fromText), TIME_HINT, `"${fromText.slice(0, 40)}" is not a time`);
      if (toText !== '*' && to === null) throw badQuery(v.at + v.text.lastIndexOf(toText), TIME_HINT, `"${toText.slice(0, 40)}" is not a time`);
      if (from !== null && to !== null && from > to) throw badQuery(t.pos, 'a range whose start is not after its end', 'This time range starts after it ends');
      return { kind: 'time', from, to, position: t.pos };
    }
    const text = v.text;
    const from = parseTimeBound(text, 'start', this.now);
    const to = parseTimeBound(text, 'end', this.now);
    if (from === null || to === null) throw badQuery(t.pos, TIME_HINT, `"${text.slice(0, 40)}" is not a time; write ${TIME_HINT}, or a range time:[<from> TO <to>]`);
    return { kind: 'time', from, to, position: t.pos };
  }
}

/** Parses a query; throws CustodyError BAD_QUERY with {position, expected}. An empty query matches everything. */
export function parseQuery(q: string, now: number = Date.now()): QueryNode {
  if (q.length > MAX_QUERY_LENGTH) throw badQuery(MAX_QUERY_LENGTH, 'a shorter query', `A query may be at most ${MAX_QUERY_LENGTH} characters`);
  return new Parser(q, lex(q), now).parse();
}
