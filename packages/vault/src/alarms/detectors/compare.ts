/**
 * Does a change to a rule only tighten it? A tightening (enable, raise severity, catch more
 * events, alarm sooner) takes effect at once; anything else loosens, and loosening an alarm
 * is a two-person action (docs/ALARMS.md). Whatever this file cannot prove to be a
 * tightening counts as loosening: a wrong "tightens" would let one admin blind the vault.
 */
import { SEVERITIES } from '../types.js';
import { checkRegex, type Condition, type MatchRule, type Rule, type SilenceRule, type ThresholdRule } from './rule.js';

export interface RuleChange {
  /** The member that changed: "enabled", "severity", "when", "count" … */
  field: string;
  effect: 'tightens' | 'loosens' | 'neutral';
  /** Plain words: "severity high → critical". */
  note: string;
}

const json = (v: unknown): string => JSON.stringify(v ?? null);
const same = (a: unknown, b: unknown): boolean => json(a) === json(b);

/** Does every value `c` accepts pass `d`? (Only what can be shown; false when unsure.) */
function implies(c: Condition, d: Condition): boolean {
  if (c.field !== d.field || !!c.not !== !!d.not) return false;
  if (same(c, d)) return true;
  if (c.not) {
    // not-conditions: "not in A" implies "not in B" when B ⊆ A (and likewise for equals).
    const cv = c.in ?? (c.equals !== undefined ? [c.equals] : null);
    const dv = d.in ?? (d.equals !== undefined ? [d.equals] : null);
    if (cv && dv) return dv.every((x) => cv.some((y) => y === x));
    return false;
  }
  const values = c.in ?? (c.equals !== undefined && c.equals !== null ? [c.equals] : null);
  if (values) {
    return values.every((v) => {
      if (d.equals !== undefined) return d.equals === v;
      if (d.in) return d.in.some((x) => x === v);
      if (d.prefix !== undefined) return typeof v === 'string' && v.startsWith(d.prefix);
      if (d.regex !== undefined) return (typeof v === 'string' || typeof v === 'number') && checkRegex(d.regex, d.ignoreCase === true, 'regex').test(String(v));
      if (d.exists !== undefined) return d.exists === true;
      return false;
    });
  }
  if (c.prefix !== undefined) {
    if (d.prefix !== undefined) return c.prefix.startsWith(d.prefix);
    if (d.exists === true) return true;
    return false;
  }
  if (c.regex !== undefined) return d.exists === true;
  return false;
}

/**
 * Conditions are all-of. The new set catches at least what the old one did when each new
 * condition follows from some old condition (removing a condition is a tightening).
 */
function conditionsWiden(before: Condition[], after: Condition[]): boolean {
  return after.every((d) => before.some((c) => implies(c, d)));
}

/** An optional allow-list: absent means everything. */
function listWidens(before: string[] | undefined, after: string[] | undefined): boolean {
  if (after === undefined) return true;
  if (before === undefined) return false;
  return before.every((x) => after.includes(x));
}

function rank(s: string): number {
  return (SEVERITIES as readonly string[]).indexOf(s);
}

/** Every difference between two versions of a rule (same id), each judged. */
export function compareRules(before: Rule, after: Rule): RuleChange[] {
  const out: RuleChange[] = [];
  const add = (field: string, effect: RuleChange['effect'], note: string): void => void out.push({ field, effect, note });
  if (before.type !== after.type) {
    add('type', 'loosens', `type ${before.type} → ${after.type}: a different kind of rule replaces this one`);
    return out;
  }
  if (before.enabled !== after.enabled) add('enabled', after.enabled ? 'tightens' : 'loosens', after.enabled ? 'enabled' : 'disabled');
  if (before.severity !== after.severity) add('severity', rank(after.severity) > rank(before.severity) ? 'tightens' : 'loosens', `severity ${before.severity} → ${after.severity}`);
  if (before.kind !== after.kind) add('kind', 'loosens', `kind ${before.kind} → ${after.kind} (notifiers and filters may route it elsewhere)`);
  if (before.description !== after.description) add('description', 'neutral', 'description reworded');
  if (!same(before.title, after.title)) add('title', 'loosens', 'title changed (what people read first)');

  if (before.type === 'silence') {
    compareSilence(before, after as SilenceRule, add);
    return out;
  }
  const a = after as MatchRule | ThresholdRule;
  if (before.on !== a.on) add('on', 'loosens', `on ${before.on} → ${a.on}`);
  else {
    if (!same(before.source, a.source)) add('source', listWidens(before.source, a.source) ? 'tightens' : 'loosens', 'sources looked at changed');
    if (!same(before.when, a.when)) add('when', conditionsWiden(before.when, a.when) ? 'tightens' : 'loosens', conditionsWiden(before.when, a.when) ? 'conditions now catch at least as much' : 'conditions may now catch less');
  }
  if (!same(before.details, a.details)) {
    // More detail fields lose nothing; fewer (or the default set swapped in or out) may.
    const kept = before.details !== undefined && a.details !== undefined && before.details.every((x) => a.details!.includes(x));
    add('details', kept ? 'neutral' : 'loosens', kept ? 'details fields added' : 'details fields changed');
  }
  if (before.type === 'match') {
    const m = a as MatchRule;
    if (!same(before.groupBy, m.groupBy)) add('groupBy', 'loosens', 'grouping changed (repeats may now fold into fewer alarms)');
    return out;
  }
  const t = a as ThresholdRule;
  if (!same(before.groupBy, t.groupBy)) add('groupBy', 'loosens', 'counting groups changed');
  if (before.count !== t.count) add('count', t.count < before.count ? 'tightens' : 'loosens', `count ${before.count} → ${t.count}`);
  if (before.windowMs !== t.windowMs) add('windowMs', t.windowMs > before.windowMs ? 'tightens' : 'loosens', `window ${before.windowMs} ms → ${t.windowMs} ms`);
  if (before.weightField !== t.weightField) add('weightField', t.weightField !== undefined && before.weightField === undefined ? 'tightens' : 'loosens', 'weight field changed');
  return out;
}

function compareSilence(b: SilenceRule, a: SilenceRule, add: (f: string, e: RuleChange['effect'], n: string) => void): void {
  if (b.per !== a.per) add('per', 'loosens', `per ${b.per} → ${a.per}`);
  if (!same(b.source, a.source)) add('source', listWidens(b.source, a.source) ? 'tightens' : 'loosens', 'sources watched changed');
  if (!same(b.producer, a.producer)) add('producer', listWidens(b.producer, a.producer) ? 'tightens' : 'loosens', 'producers watched changed');
  if (b.thresholdMs !== undefined && a.thresholdMs !== undefined) {
    if (b.thresholdMs !== a.thresholdMs) add('thresholdMs', a.thresholdMs < b.thresholdMs ? 'tightens' : 'loosens', `threshold ${b.thresholdMs} ms → ${a.thresholdMs} ms`);
  } else if (b.learn && a.learn) {
    const l = b.learn;
    const m = a.learn;
    if (l.factor !== m.factor) add('learn.factor', m.factor < l.factor ? 'tightens' : 'loosens', `factor ${l.factor} → ${m.factor}`);
    if (l.floorMs !== m.floorMs) add('learn.floorMs', m.floorMs < l.floorMs ? 'tightens' : 'loosens', `floor ${l.floorMs} ms → ${m.floorMs} ms`);
    if (l.ceilingMs !== m.ceilingMs) add('learn.ceilingMs', m.ceilingMs < l.ceilingMs ? 'tightens' : 'loosens', `ceiling ${l.ceilingMs} ms → ${m.ceilingMs} ms`);
    if (l.minSamples !== m.minSamples) add('learn.minSamples', m.minSamples < l.minSamples ? 'tightens' : 'loosens', `minSamples ${l.minSamples} → ${m.minSamples}`);
    if (l.minGapMs !== m.minGapMs) add('learn.minGapMs', 'loosens', `minGapMs ${l.minGapMs} → ${m.minGapMs}`);
  } else if (b.learn && a.thresholdMs !== undefined && a.thresholdMs <= b.learn.floorMs) {
    // A set threshold at or below the lowest a learned one could be is never later.
    add('thresholdMs', 'tightens', `learned threshold (≥ ${b.learn.floorMs} ms) → set ${a.thresholdMs} ms`);
  } else {
    add('thresholdMs', 'loosens', 'switched between a set and a learned threshold');
  }
}

/** The changes that loosen, or [] when the change only tightens (or changes nothing). */
export function loosenings(changes: RuleChange[]): RuleChange[] {
  return changes.filter((c) => c.effect === 'loosens');
}
