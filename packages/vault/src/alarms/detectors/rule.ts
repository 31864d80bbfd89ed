/**
 * Alarm rules are data (docs/ALARMS.md): JSON objects of three types — `match`, `threshold`
 * and `silence`. This file holds their shape and the validator every rule passes before it is
 * stored or run, whether it came from the default pack, `<data>/rules.json` or the API. A bad
 * rule is refused with RULE_INVALID whose details name the field (`when[1].regex`).
 */
import { CustodyError } from '../../errors.js';
import { ALARM_KINDS, SEVERITIES, type AlarmKind, type Severity } from '../types.js';

export type Scalar = string | number | boolean | null;

/** One test on one field; exactly one of the operators. All conditions of a rule must hold. */
export interface Condition {
  /** A field name (docs/ALARMS.md, "Fields"); dots walk into objects: `requestParameters.enable`. */
  field: string;
  equals?: Scalar;
  in?: Array<string | number | boolean>;
  prefix?: string;
  /** A JavaScript regular expression, at most 200 characters, tested on at most 4096 characters. */
  regex?: string;
  /** With regex: ignore case. */
  ignoreCase?: boolean;
  /** True: the field is present (not null); false: it is absent. */
  exists?: boolean;
  /** Inverts the test. */
  not?: boolean;
}

interface RuleBase {
  id: string;
  description: string;
  enabled: boolean;
  kind: AlarmKind;
  severity: Severity;
}

export interface MatchRule extends RuleBase {
  type: 'match';
  /** "audit": the vault's own audit events; "record": ingested records. */
  on: 'audit' | 'record';
  /** Records only: the source types the rule looks at (absent: all). */
  source?: string[];
  when: Condition[];
  /** The alarm's title: text with `{field}` placeholders; `{a|b|'text'}` takes the first present. */
  title: string;
  /** Fields copied into the alarm's details (absent: a default set for `on`). */
  details?: string[];
  /** Repeats with the same values of these fields count on one alarm (alarm grouping window). */
  groupBy?: string[];
}

export interface ThresholdRule extends RuleBase {
  type: 'threshold';
  on: 'audit' | 'record';
  source?: string[];
  when: Condition[];
  /** Events are counted per value of these fields (e.g. ["address"]). Empty: one count. */
  groupBy: string[];
  /** At least this many matching events … */
  count: number;
  /** … within this many milliseconds raise one alarm. */
  windowMs: number;
  /** A numeric field that counts as that many events (e.g. "count" of `auth.failed.suppressed`). */
  weightField?: string;
  title: string;
  details?: string[];
}

export interface SilenceLearn {
  /** The threshold is this many times the usual gap … */
  factor: number;
  /** … but never below floorMs … */
  floorMs: number;
  /** … nor above ceilingMs (also the threshold until minSamples gaps were seen). */
  ceilingMs: number;
  minSamples: number;
  /** Arrivals closer together than this count as one (bursts do not teach a short cadence). */
  minGapMs: number;
}

export interface SilenceRule extends RuleBase {
  type: 'silence';
  /** What is watched: each source, each producer (writer), or each pair. */
  per: 'source' | 'producer' | 'source+producer';
  /** Only these sources / producers (absent: all). A rule naming them replaces catch-all rules for them. */
  source?: string[];
  producer?: string[];
  /** A set threshold … */
  thresholdMs?: number;
  /** … or a learned one (exactly one of the two). */
  learn?: SilenceLearn;
  title?: string;
}

export type Rule = MatchRule | ThresholdRule | SilenceRule;

export const RULE_TYPES = ['match', 'threshold', 'silence'] as const;
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
const SEGMENT_RE = /^[A-Za-z0-9_@$-]{1,64}$/;
export const MAX_CONDITIONS = 16;
export const MAX_IN_VALUES = 1000;
export const MAX_REGEX = 200;
export const MAX_STRING = 1024;
export const MAX_TITLE = 300;
export const LEARN_DEFAULTS: SilenceLearn = { factor: 3, floorMs: 10 * 60_000, ceilingMs: 24 * 3600_000, minSamples: 5, minGapMs: 1000 };

const TOP_KEYS: Record<Rule['type'], string[]> = {
  match: ['id', 'description', 'enabled', 'type', 'kind', 'severity', 'on', 'source', 'when', 'title', 'details', 'groupBy'],
  threshold: ['id', 'description', 'enabled', 'type', 'kind', 'severity', 'on', 'source', 'when', 'groupBy', 'count', 'windowMs', 'weightField', 'title', 'details'],
  silence: ['id', 'description', 'enabled', 'type', 'kind', 'severity', 'per', 'source', 'producer', 'thresholdMs', 'learn', 'title'],
};
const OPERATORS = ['equals', 'in', 'prefix', 'regex', 'exists'] as const;

function bad(field: string, what: string, where?: string): never {
  const at = where ? `${where}: ` : '';
  throw new CustodyError('RULE_INVALID', `${at}${field}: ${what}`, { field, ...(where ? { file: where } : {}) });
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Record<string, unknown>, k: string, f: string, max: number, required = true): string | undefined {
  const v = o[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v.length === 0) bad(f + k, `must be a non-empty string${required ? '' : ' when given'}.`);
  if (v.length > max) bad(f + k, `is ${v.length} characters long; the limit is ${max}.`);
  return v;
}

function int(o: Record<string, unknown>, k: string, f: string, min: number, max: number, required = true): number | undefined {
  const v = o[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) bad(f + k, `must be a whole number from ${min} to ${max}.`);
  return v;
}

/** A field name: dot-separated segments of letters, digits, _ @ $ -; at most 8 deep. */
export function checkFieldName(v: unknown, f: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 200) bad(f, 'must be a field name like "actor" or "requestParameters.bucketName".');
  const parts = v.split('.');
  if (parts.length > 8 || !parts.every((p) => SEGMENT_RE.test(p))) bad(f, `"${v.slice(0, 60)}" is not a field name: use dot-separated names of letters, digits, _ @ $ - (at most 8 deep).`);
  return v;
}

function fieldList(o: Record<string, unknown>, k: string, f: string, min: number, max: number, required: boolean): string[] | undefined {
  const v = o[k];
  if (v === undefined && !required) return undefined;
  if (!Array.isArray(v) || v.length < min || v.length > max) bad(f + k, `must be a list of ${min} to ${max} field names.`);
  return v.map((x, i) => checkFieldName(x, `${f}${k}[${i}]`));
}

function nameList(o: Record<string, unknown>, k: string, f: string): string[] | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > 100) bad(f + k, 'must be a name or a list of 1 to 100 names.');
  return list.map((x, i) => {
    if (typeof x !== 'string' || x.length === 0 || x.length > 200) bad(`${f}${k}[${i}]`, 'must be a non-empty string of at most 200 characters.');
    return x;
  });
}

/**
 * Refuses patterns that can take exponential time (nested quantifiers, backreferences) — a
 * rule runs on every matching event, and its author is not the only one who pays for it.
 */
export function checkRegex(src: string, ignoreCase: boolean, f: string): RegExp {
  if (src.length > MAX_REGEX) bad(f, `is ${src.length} characters long; the limit is ${MAX_REGEX}.`);
  if (/\\[1-9]|\\k</.test(src)) bad(f, 'back-references are not allowed.');
  if (/\((?:[^()\\]|\\.)*[+*}](?:\?)?\)[+*{]/.test(src) || /\((?:[^()\\]|\\.)*\|(?:[^()\\]|\\.)*\)[+*{]/.test(src)) {
    bad(f, 'a quantified group that itself repeats, like (a+)+ or (a|b)*, can take exponential time; rewrite it without nesting.');
  }
  try {
    return new RegExp(src, ignoreCase ? 'i' : '');
  } catch (e) {
    bad(f, `is not a valid regular expression (${(e as Error).message.slice(0, 120)}).`);
  }
}

function scalar(v: unknown): v is string | number | boolean {
  return (typeof v === 'string' && v.length <= MAX_STRING) || (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean';
}

function condition(v: unknown, f: string): Condition {
  if (!isObj(v)) bad(f, 'must be an object like {"field":"type","equals":"auth.failed"}.');
  for (const k of Object.keys(v)) if (!['field', 'not', 'ignoreCase', ...OPERATORS].includes(k)) bad(`${f}.${k}`, `is not a condition member; use field, one of ${OPERATORS.join(', ')}, and optionally not, ignoreCase.`);
  const ops = OPERATORS.filter((o) => v[o] !== undefined);
  if (ops.length !== 1) bad(f, `needs exactly one of ${OPERATORS.join(', ')} (it has ${ops.length === 0 ? 'none' : ops.join(', ')}).`);
  const c: Condition = { field: checkFieldName(v.field, `${f}.field`) };
  const op = ops[0]!;
  if (op === 'equals') {
    if (v.equals !== null && !scalar(v.equals)) bad(`${f}.equals`, `must be a string (at most ${MAX_STRING} characters), number, true, false or null.`);
    c.equals = v.equals as Scalar;
  } else if (op === 'in') {
    if (!Array.isArray(v.in) || v.in.length === 0 || v.in.length > MAX_IN_VALUES) bad(`${f}.in`, `must be a list of 1 to ${MAX_IN_VALUES} values.`);
    v.in.forEach((x, i) => {
      if (!scalar(x)) bad(`${f}.in[${i}]`, `must be a string (at most ${MAX_STRING} characters), number, true or false.`);
    });
    c.in = [...(v.in as Array<string | number | boolean>)];
  } else if (op === 'prefix') {
    if (typeof v.prefix !== 'string' || v.prefix.length === 0 || v.prefix.length > MAX_STRING) bad(`${f}.prefix`, `must be a non-empty string of at most ${MAX_STRING} characters.`);
    c.prefix = v.prefix;
  } else if (op === 'regex') {
    if (typeof v.regex !== 'string' || v.regex.length === 0) bad(`${f}.regex`, 'must be a non-empty string.');
    if (v.ignoreCase !== undefined && typeof v.ignoreCase !== 'boolean') bad(`${f}.ignoreCase`, 'must be true or false.');
    checkRegex(v.regex, v.ignoreCase === true, `${f}.regex`);
    c.regex = v.regex;
    if (v.ignoreCase === true) c.ignoreCase = true;
  } else {
    if (typeof v.exists !== 'boolean') bad(`${f}.exists`, 'must be true or false.');
    c.exists = v.exists;
  }
  if (v.ignoreCase !== undefined && op !== 'regex') bad(`${f}.ignoreCase`, 'goes only with regex.');
  if (v.not !== undefined) {
    if (typeof v.not !== 'boolean') bad(`${f}.not`, 'must be true or false.');
    if (v.not) c.not = true;
  }
  return c;
}

/** Checks a title template: balanced braces, field names or 'literals' inside. */
export function checkTemplate(t: string, f: string): void {
  const re = /\{([^{}]*)\}/g;
  const stripped = t.replace(re, (_m, inner: string) => {
    const alts = inner.split('|');
    alts.forEach((a, i) => {
      const s = a.trim();
      if (/^'[^']*'$/.test(s)) return;
      checkFieldName(s, `${f} (placeholder {${inner.slice(0, 60)}}, choice ${i + 1})`);
    });
    return '';
  });
  if (/[{}]/.test(stripped)) bad(f, 'has an unbalanced { or }; placeholders look like {actor} or {actor|\'unknown\'}.');
}

function learn(v: unknown, f: string): SilenceLearn {
  if (v === true) return { ...LEARN_DEFAULTS };
  if (!isObj(v)) bad(f, 'must be true (the defaults) or an object {factor, floorMs, ceilingMs, minSamples, minGapMs}.');
  for (const k of Object.keys(v)) if (!(k in LEARN_DEFAULTS)) bad(`${f}.${k}`, 'is not a learn setting; use factor, floorMs, ceilingMs, minSamples, minGapMs.');
  const factor = v.factor ?? LEARN_DEFAULTS.factor;
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor < 1 || factor > 1000) bad(`${f}.factor`, 'must be a number from 1 to 1000.');
  const w = { ...LEARN_DEFAULTS, ...v } as Record<string, unknown>;
  const floorMs = int(w, 'floorMs', `${f}.`, 100, 365 * 86400_000)!;
  const ceilingMs = int(w, 'ceilingMs', `${f}.`, 100, 365 * 86400_000)!;
  if (ceilingMs < floorMs) bad(`${f}.ceilingMs`, `must not be below floorMs (${floorMs}).`);
  return { factor, floorMs, ceilingMs, minSamples: int(w, 'minSamples', `${f}.`, 1, 10_000)!, minGapMs: int(w, 'minGapMs', `${f}.`, 0, 86400_000)! };
}

/**
 * Validates one rule and returns it normalised (no unknown members, defaults filled in).
 * `where` names the file it came from, for the message.
 */
export function validateRule(v: unknown, where?: string, prefix = ''): Rule {
  try {
    return validate(v, prefix);
  } catch (e) {
    if (where && e instanceof CustodyError && e.code === 'RULE_INVALID') {
      const field = String(e.details?.['field'] ?? '');
      throw new CustodyError('RULE_INVALID', `${where}: ${e.message}`, { field, file: where });
    }
    throw e;
  }
}

function validate(v: unknown, p: string): Rule {
  if (!isObj(v)) bad(p || '(rule)', 'a rule must be a JSON object with id, description, enabled, type, kind and severity.');
  const f = p ? `${p}.` : '';
  const type = v.type;
  if (typeof type !== 'string' || !(RULE_TYPES as readonly string[]).includes(type)) bad(`${f}type`, `must be one of ${RULE_TYPES.join(', ')}.`);
  const t = type as Rule['type'];
  for (const k of Object.keys(v)) if (!TOP_KEYS[t].includes(k)) bad(`${f}${k}`, `is not a member of a ${t} rule; it may have ${TOP_KEYS[t].join(', ')}.`);
  const id = str(v, 'id', f, 100)!;
  if (!ID_RE.test(id)) bad(`${f}id`, 'must start with a letter or digit and hold only letters, digits and . _ : - (at most 100).');
  const description = str(v, 'description', f, 500)!;
  if (typeof v.enabled !== 'boolean') bad(`${f}enabled`, 'must be true or false.');
  if (typeof v.kind !== 'string' || !(ALARM_KINDS as readonly string[]).includes(v.kind)) bad(`${f}kind`, `must be one of ${ALARM_KINDS.join(', ')}.`);
  if (typeof v.severity !== 'string' || !(SEVERITIES as readonly string[]).includes(v.severity)) bad(`${f}severity`, `must be one of ${SEVERITIES.join(', ')}.`);
  const base = { id, description, enabled: v.enabled, kind: v.kind as AlarmKind, severity: v.severity as Severity };

  if (t === 'silence') {
    const per = v.per ?? 'source+producer';
    if (per !== 'source' && per !== 'producer' && per !== 'source+producer') bad(`${f}per`, 'must be "source", "producer" or "source+producer".');
    const r: SilenceRule = { ...base, type: 'silence', per };
    const source = nameList(v, 'source', f);
    const producer = nameList(v, 'producer', f);
    if (source) r.source = source;
    if (producer) r.producer = producer;
    if ((v.thresholdMs === undefined) === (v.learn === undefined)) bad(`${f}thresholdMs`, 'a silence rule needs exactly one of thresholdMs (a set threshold) or learn (a learned one).');
    if (v.thresholdMs !== undefined) r.thresholdMs = int(v, 'thresholdMs', f, 100, 365 * 86400_000)!;
    else r.learn = learn(v.learn, `${f}learn`);
    if (v.title !== undefined) {
      r.title = str(v, 'title', f, MAX_TITLE)!;
      checkTemplate(r.title, `${f}title`);
    }
    return r;
  }

  const on = v.on;
  if (on !== 'audit' && on !== 'record') bad(`${f}on`, 'must be "audit" (the vault\'s audit events) or "record" (ingested records).');
  const source = nameList(v, 'source', f);
  if (source && on !== 'record') bad(`${f}source`, 'goes only with "on": "record".');
  if (!Array.isArray(v.when) || v.when.length === 0 || v.when.length > MAX_CONDITIONS) bad(`${f}when`, `must be a list of 1 to ${MAX_CONDITIONS} conditions.`);
  const when = v.when.map((c, i) => condition(c, `${f}when[${i}]`));
  const title = str(v, 'title', f, MAX_TITLE)!;
  checkTemplate(title, `${f}title`);
  const details = fieldList(v, 'details', f, 0, 32, false);
  if (t === 'match') {
    const r: MatchRule = { ...base, type: 'match', on, when, title };
    if (source) r.source = source;
    if (details) r.details = details;
    const groupBy = fieldList(v, 'groupBy', f, 1, 4, false);
    if (groupBy) r.groupBy = groupBy;
    return r;
  }
  const r: ThresholdRule = {
    ...base,
    type: 'threshold',
    on,
    when,
    groupBy: fieldList(v, 'groupBy', f, 0, 4, true)!,
    count: int(v, 'count', f, 1, 1_000_000)!,
    windowMs: int(v, 'windowMs', f, 1000, 7 * 86400_000)!,
    title,
  };
  if (source) r.source = source;
  if (details) r.details = details;
  if (v.weightField !== undefined) r.weightField = checkFieldName(v.weightField, `${f}weightField`);
  return r;
}

/** Validates a rules file's content: a JSON array of rules with distinct ids. */
export function validateRuleFile(text: string, where: string): Rule[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CustodyError('RULE_INVALID', `${where}: is not valid JSON (${(e as Error).message.slice(0, 200)}); it must hold a JSON array of rules.`, { field: '(file)', file: where });
  }
  if (!Array.isArray(v)) throw new CustodyError('RULE_INVALID', `${where}: must hold a JSON array of rules, [ {…}, {…} ].`, { field: '(file)', file: where });
  if (v.length > 1000) throw new CustodyError('RULE_INVALID', `${where}: holds ${v.length} rules; the limit is 1000.`, { field: '(file)', file: where });
  const seen = new Set<string>();
  return v.map((r, i) => {
    const rule = validateRule(r, where, `[${i}]`);
    if (seen.has(rule.id)) throw new CustodyError('RULE_INVALID', `${where}: [${i}].id: "${rule.id}" appears twice in the file.`, { field: `[${i}].id`, file: where });
    seen.add(rule.id);
    return rule;
  });
}
