/**
 * What a rule sees and how it tests it: the subject (an audit event or an ingested record),
 * field access by name, compiled conditions and title templates.
 *
 * Records are looked at lazily: the common fields the parser already extracted (`actor`,
 * `action`, `srcIp` …) and the envelope (`source`, `producer`) cost nothing; a field of the
 * record's JSON (`eventName`, `requestParameters.enable`) parses the record once, and only for
 * records that passed every cheaper condition of some rule.
 */
import type { IngestedRecord } from '../../vault.js';
import { checkRegex, type Condition } from './rule.js';

/** Names answered from the parser's common fields (ingest/types.ts CommonFields). */
export const COMMON_FIELDS = new Set(['time', 'account', 'region', 'actor', 'action', 'outcome', 'srcIp', 'dstIp', 'severity', 'resource', 'ocsfClass', 'ocsfClassName']);
/** Names answered from the envelope of a record. */
export const ENVELOPE_FIELDS = new Set(['source', 'producer', 'log', 'index']);

/** Extra values a template may name (counts of a threshold, a silence's durations). */
export type Vars = Record<string, unknown>;

/** One thing a rule looks at. */
export interface Subject {
  /** The value of a field, or undefined. `path` is the dotted name split. */
  get(path: readonly string[], name: string): unknown;
  /** Whether looking this field up is free (no parsing). */
  readonly kind: 'audit' | 'record';
}

function walk(v: unknown, path: readonly string[], from = 0): unknown {
  let cur = v;
  for (let i = from; i < path.length; i++) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    const k = path[i]!;
    if (!Object.hasOwn(cur, k)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

export class AuditSubject implements Subject {
  readonly kind = 'audit';
  constructor(
    readonly event: Record<string, unknown>,
    readonly index: number,
  ) {}
  get(path: readonly string[]): unknown {
    return walk(this.event, path);
  }
}

const UNPARSED = Symbol('unparsed');

export class RecordSubject implements Subject {
  readonly kind = 'record';
  private outer: unknown = UNPARSED;
  private inner: unknown = undefined;
  constructor(readonly record: IngestedRecord) {}

  /** The record's JSON (once), and the event it carries (EventBridge `detail`, CloudWatch Logs `message`). */
  private parse(): void {
    this.outer = null;
    const b = this.record.bytes;
    let i = 0;
    while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
    if (b[i] !== 0x7b) return; // not a JSON object: no JSON fields
    try {
      this.outer = JSON.parse(b.toString('utf8'));
    } catch {
      return;
    }
    const o = this.outer as Record<string, unknown>;
    if (o === null || typeof o !== 'object' || Array.isArray(o) || typeof o.eventName === 'string') return;
    const d = o.detail;
    if (d !== null && typeof d === 'object' && !Array.isArray(d)) {
      this.inner = d;
      return;
    }
    const m = o.message;
    if (typeof m === 'string' && m.length < 1024 * 1024 && m.trimStart().startsWith('{')) {
      try {
        const p = JSON.parse(m) as unknown;
        if (p !== null && typeof p === 'object' && !Array.isArray(p)) this.inner = p;
      } catch {
        /* a message that is not JSON has no inner event */
      }
    }
  }

  json(path: readonly string[], from: number): unknown {
    if (this.outer === UNPARSED) this.parse();
    if (this.inner !== undefined) {
      const v = walk(this.inner, path, from);
      if (v !== undefined) return v;
    }
    return walk(this.outer, path, from);
  }

  get(path: readonly string[]): unknown {
    const first = path[0]!;
    const r = this.record;
    if (path.length === 1) {
      if (COMMON_FIELDS.has(first)) return (r.fields as Record<string, unknown>)[first];
      if (ENVELOPE_FIELDS.has(first)) return (r as unknown as Record<string, unknown>)[first];
    } else if (first === 'extra' && path.length === 2) {
      const v = r.fields.extra?.[path[1]!];
      if (v !== undefined) return v;
    }
    return this.json(path, first === 'record' && path.length > 1 ? 1 : 0);
  }
}

/** Whether a field can be read without parsing the record. */
export function isCheapField(name: string): boolean {
  const parts = name.split('.');
  if (parts[0] === 'record' && parts.length > 1) return false;
  return (parts.length === 1 && (COMMON_FIELDS.has(name) || ENVELOPE_FIELDS.has(name))) || (parts[0] === 'extra' && parts.length === 2);
}

export interface CompiledCondition {
  readonly path: readonly string[];
  readonly name: string;
  readonly cheap: boolean;
  test(v: unknown): boolean;
}

const REGEX_INPUT_MAX = 4096;

export function compileCondition(c: Condition, on: 'audit' | 'record'): CompiledCondition {
  let test: (v: unknown) => boolean;
  if (c.equals !== undefined) {
    const want = c.equals;
    test = want === null ? (v) => v === null : (v) => v === want;
  } else if (c.in !== undefined) {
    const set = new Set<unknown>(c.in);
    test = (v) => set.has(v);
  } else if (c.prefix !== undefined) {
    const p = c.prefix;
    test = (v) => typeof v === 'string' && v.startsWith(p);
  } else if (c.regex !== undefined) {
    const re = checkRegex(c.regex, c.ignoreCase === true, 'regex');
    test = (v) => (typeof v === 'string' || typeof v === 'number') && re.test(String(v).slice(0, REGEX_INPUT_MAX));
  } else {
    const want = c.exists === true;
    test = (v) => (v !== undefined && v !== null) === want;
  }
  const inner = test;
  return { path: c.field.split('.'), name: c.field, cheap: on === 'audit' || isCheapField(c.field), test: c.not ? (v) => !inner(v) : inner };
}

/** Conditions in the order that costs least: fields already at hand before the record's JSON. */
export function compileConditions(cs: Condition[], on: 'audit' | 'record'): CompiledCondition[] {
  const all = cs.map((c) => compileCondition(c, on));
  return [...all.filter((c) => c.cheap), ...all.filter((c) => !c.cheap)];
}

export function allHold(cs: readonly CompiledCondition[], s: Subject): boolean {
  for (const c of cs) if (!c.test(s.get(c.path, c.name))) return false;
  return true;
}

// ---- values and templates ----------------------------------------------------------------

const TITLE_VALUE_MAX = 200;

/** A value as one line of plain text: no control characters, at most `max` characters. */
export function text(v: unknown, max = TITLE_VALUE_MAX): string | undefined {
  if (v === undefined || v === null) return undefined;
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number' || typeof v === 'boolean') s = String(v);
  else {
    try {
      s = JSON.stringify(v);
    } catch {
      return undefined;
    }
  }
  s = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
  if (s.length === 0) return undefined;
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A value for an alarm's details: itself when small, else its JSON cut to `max` characters. */
export function detailValue(v: unknown, max = 2048): unknown {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v.length > max ? `${v.slice(0, max - 1)}…` : v;
  if (typeof v !== 'object' || v === null) return v;
  const s = JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : v;
}

type Choice = { literal: string } | { path: string[]; name: string };
type Part = string | Choice[];

export class Template {
  private readonly parts: Part[] = [];
  constructor(readonly source: string) {
    let last = 0;
    for (const m of source.matchAll(/\{([^{}]*)\}/g)) {
      if (m.index > last) this.parts.push(source.slice(last, m.index));
      this.parts.push(
        m[1]!.split('|').map((a) => {
          const s = a.trim();
          return /^'[^']*'$/.test(s) ? { literal: s.slice(1, -1) } : { path: s.split('.'), name: s };
        }),
      );
      last = m.index + m[0].length;
    }
    if (last < source.length) this.parts.push(source.slice(last));
  }

  /** Fills the placeholders: each takes its first present choice, or "?". */
  render(s: Subject | null, vars: Vars = {}): string {
    let out = '';
    for (const p of this.parts) {
      if (typeof p === 'string') {
        out += p;
        continue;
      }
      let v: string | undefined;
      for (const c of p) {
        if ('literal' in c) v = c.literal;
        else v = text(Object.hasOwn(vars, c.name) ? vars[c.name] : s?.get(c.path, c.name));
        if (v !== undefined) break;
      }
      out += v ?? '?';
    }
    return out.length > 500 ? `${out.slice(0, 499)}…` : out;
  }
}

/** The values of some fields, for details. */
export function pick(s: Subject, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    const v = detailValue(s.get(f.split('.'), f));
    if (v !== undefined) out[f] = v;
  }
  return out;
}

/** A group key from some fields' values. */
export function groupValues(s: Subject, fields: readonly string[]): string[] {
  return fields.map((f) => text(s.get(f.split('.'), f), 256) ?? '-');
}
