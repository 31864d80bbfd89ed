/**
 * The pure pieces of the rules, in addition to the end-to-end tests: the validator (every
 * default rule valid; hostile input only ever RULE_INVALID, never another exception), the
 * tighten/loosen judgement, templates and the regex guard.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CustodyError } from '../../src/errors.js';
import { DEFAULT_PACK, compareRules, loosenings, validateRule, type Rule, type SilenceRule } from '../../src/alarms/detectors/index.js';
import { AuditSubject, Template } from '../../src/alarms/detectors/match.js';

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
const byId = (id: string): Rule => clone(DEFAULT_PACK.find((r) => r.id === id)!);
const effects = (a: Rule, b: Rule): string[] => compareRules(a, b).map((c) => `${c.field}:${c.effect}`).sort();

test('every default rule is valid and unchanged by validation; ids are distinct', () => {
  const ids = new Set<string>();
  for (const r of DEFAULT_PACK) {
    assert.deepEqual(validateRule(clone(r)), r, r.id);
    assert.ok(!ids.has(r.id), r.id);
    ids.add(r.id);
  }
  const logOff = DEFAULT_PACK.filter((r) => r.kind === 'log-generation-off');
  assert.ok(logOff.every((r) => r.severity === 'high' || r.severity === 'critical'));
});

test('hostile input to the validator is only ever RULE_INVALID with a field', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
      try {
        validateRule(v);
      } catch (e) {
        assert.ok(e instanceof CustodyError && e.code === 'RULE_INVALID', String(e));
        assert.equal(typeof e.details?.['field'], 'string');
      }
    }),
    { numRuns: 500 },
  );
  // Mutations of real rules: one member replaced by something arbitrary.
  fc.assert(
    fc.property(fc.constantFrom(...DEFAULT_PACK), fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), (r, key, val) => {
      const m = { ...clone(r), [key]: val } as Record<string, unknown>;
      try {
        validateRule(m);
      } catch (e) {
        assert.ok(e instanceof CustodyError && e.code === 'RULE_INVALID', String(e));
      }
    }),
    { numRuns: 500 },
  );
});

test('tightening: enable, raise severity, lower a count, longer window, more values, fewer conditions', () => {
  const t = byId('auth.burst-per-address');
  assert.deepEqual(effects(t, { ...t, severity: 'critical' }), ['severity:tightens']);
  assert.deepEqual(effects(t, { ...t, count: 5 } as Rule), ['count:tightens']);
  assert.deepEqual(effects(t, { ...t, windowMs: 120_000 } as Rule), ['windowMs:tightens']);
  const m = byId('tamper.writer-read');
  assert.deepEqual(effects({ ...m, enabled: false }, m), ['enabled:tightens']);
  assert.deepEqual(effects(m, { ...m, when: [{ field: 'type', equals: 'request.refused' }, { field: 'kind', in: ['writer-read', 'admin-read'] }] } as Rule), ['when:tightens']);
  assert.deepEqual(effects(m, { ...m, when: [{ field: 'type', equals: 'request.refused' }] } as Rule), ['when:tightens']);
  assert.deepEqual(effects(m, { ...m, when: [{ field: 'type', prefix: 'request.' }, { field: 'kind', regex: '^writer' }] } as Rule), ['when:tightens']);
  assert.deepEqual(effects(m, { ...m, description: 'reworded' }), ['description:neutral']);
  const s = byId('silence.learned') as SilenceRule;
  assert.deepEqual(effects(s, { ...s, learn: { ...s.learn!, factor: 2, floorMs: 60_000 } } as Rule), ['learn.factor:tightens', 'learn.floorMs:tightens']);
  assert.deepEqual(effects(s, { ...s, learn: undefined, thresholdMs: 300_000 } as Rule), ['thresholdMs:tightens']);
  const lo = byId('log-off.cloudtrail.StopLogging');
  assert.deepEqual(effects({ ...lo, source: ['aws.cloudtrail'] } as Rule, lo), ['source:tightens']);
});

test('loosening: disable, lower severity, higher count, shorter window, fewer values, new conditions, anything unprovable', () => {
  const t = byId('auth.burst-per-address');
  const loosens = (a: Rule, b: Rule): boolean => loosenings(compareRules(a, b)).length > 0;
  assert.ok(loosens(t, { ...t, enabled: false }));
  assert.ok(loosens(t, { ...t, severity: 'low' }));
  assert.ok(loosens(t, { ...t, count: 11 } as Rule));
  assert.ok(loosens(t, { ...t, windowMs: 30_000 } as Rule));
  assert.ok(loosens(t, { ...t, groupBy: ['address', 'path'] } as Rule));
  assert.ok(loosens(t, { ...t, when: [{ field: 'type', in: ['auth.failed'] }] } as Rule));
  assert.ok(loosens(t, { ...t, kind: 'content' }));
  assert.ok(loosens(t, { ...t, title: 'nothing to see' }));
  const m = byId('tamper.writer-read');
  assert.ok(loosens(m, { ...m, when: [...(m as { when: unknown[] }).when, { field: 'address', not: true, prefix: '10.' }] } as Rule));
  // A regex that accepts every value the old list did is proved wider; one that does not, is not.
  assert.ok(!loosens(m, { ...m, when: [{ field: 'type', regex: '^request\\.refused$' }, { field: 'kind', equals: 'writer-read' }] } as Rule));
  assert.ok(loosens(m, { ...m, when: [{ field: 'type', regex: '^request\\.denied$' }, { field: 'kind', equals: 'writer-read' }] } as Rule));
  assert.ok(loosens(m, { ...m, when: [{ field: 'type', prefix: 'request.' }, { field: 'kind', regex: '^w' }] } as Rule) === false);
  assert.ok(loosens({ ...m, when: [{ field: 'type', prefix: 'request.' }] } as Rule, { ...m, when: [{ field: 'type', equals: 'request.refused' }] } as Rule));
  assert.ok(loosens(m, { ...m, type: 'threshold', groupBy: [], count: 1, windowMs: 1000 } as Rule));
  const s = byId('silence.learned') as SilenceRule;
  assert.ok(loosens(s, { ...s, learn: { ...s.learn!, ceilingMs: s.learn!.ceilingMs * 2 } } as Rule));
  assert.ok(loosens(s, { ...s, learn: undefined, thresholdMs: 3600_000 } as Rule));
  assert.ok(loosens(s, { ...s, source: ['aws.cloudtrail'] } as Rule));
  assert.ok(loosens(s, { ...s, per: 'source' } as Rule));
  const lo = byId('log-off.cloudtrail.StopLogging');
  assert.ok(loosens(lo, { ...lo, source: ['aws.cloudtrail'] } as Rule));
});

test('templates: placeholders, choices, literals, hostile values flattened and cut', () => {
  const s = new AuditSubject({ type: 'x', principal: { name: 'w1' }, address: '10.0.0.1', note: 'a\nb\u0000c', big: 'y'.repeat(1000), obj: { a: 1 } }, 7);
  assert.equal(new Template('{principal.name} from {address}').render(s), 'w1 from 10.0.0.1');
  assert.equal(new Template("{missing|'nobody'} / {missing} / {missing|address}").render(s), 'nobody / ? / 10.0.0.1');
  assert.equal(new Template('{note}').render(s), 'a b c');
  assert.equal(new Template('{big}').render(s).length, 200);
  assert.equal(new Template('{obj} {count}').render(s, { count: 3 }), '{"a":1} 3');
});

test('the regex guard refuses nested quantifiers and back-references', () => {
  const base = byId('tamper.writer-read');
  for (const re of ['(a+)+', '(a*)*b', '([a-z]+)*$', '(x|y)+', '(a)\\1', '(?<n>a)\\k<n>']) {
    assert.throws(() => validateRule({ ...base, when: [{ field: 'path', regex: re }] }), (e: unknown) => e instanceof CustodyError && e.details?.['field'] === 'when[0].regex', re);
  }
  for (const re of ['^/v1/logs/[^/]+/entries/\\d+$', 'a+b*', '(abc)?d', '[a-z]{2,5}']) validateRule({ ...base, when: [{ field: 'path', regex: re }] });
});
