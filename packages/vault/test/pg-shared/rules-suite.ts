/**
 * The alarm rule store conformance suite (alarms/detectors/store.ts RuleStoreApi), run on
 * custody.db and on PostgreSQL (stores.test.ts). `b` is a second handle on the same store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RuleStoreApi } from '../../src/alarms/detectors/store.js';
import { validateRule, type Rule } from '../../src/alarms/detectors/rule.js';

export interface RuleFixture {
  a: RuleStoreApi;
  b: RuleStoreApi;
  /** Writes a row around the store (a damaged or tampered database). */
  writeRaw(id: string, body: string): Promise<void>;
}

export function ruleOf(id: string, severity = 'medium', value = 'x'): Rule {
  return validateRule({ id, description: 'test rule', enabled: true, type: 'match', kind: 'content', severity, on: 'record', when: [{ field: 'action', equals: value }], title: 'matched {action}' });
}

export function ruleStoreSuite(name: string, make: () => Promise<RuleFixture>, shared: boolean): void {
  test(`rule store (${name}): a rule put on one handle is read on the other, with origin and author`, async () => {
    const { a, b } = await make();
    assert.equal(await b.get('content.one'), undefined);
    await a.put(ruleOf('content.one'), 'api', 'alice');
    const got = await b.get('content.one');
    assert.ok(got);
    assert.deepEqual(got.rule, ruleOf('content.one'));
    assert.equal(got.origin, 'api');
    assert.equal(got.updatedBy, 'alice');
    await b.put(ruleOf('content.one', 'high'), 'api', 'bob');
    const changed = await a.get('content.one');
    assert.equal(changed!.rule.severity, 'high');
    assert.equal(changed!.updatedBy, 'bob');
    assert.equal(changed!.origin, 'api', 'a change keeps where the rule came from');
    assert.deepEqual((await a.rules()).map((r) => ('rule' in r ? r.rule.id : r.id)), ['content.one']);
  });

  test(`rule store (${name}): seeding the default pack never overwrites a rule that is already there`, async () => {
    const { a, b } = await make();
    await a.put(ruleOf('content.pack', 'critical'), 'api', 'alice');
    await b.putMany([ruleOf('content.pack', 'low'), ruleOf('content.pack2', 'low')], 'default', 'default pack');
    const pack = await a.get('content.pack');
    // the shared store must keep the admin's rule (custody.db's engine seeds missing ids only)
    if (shared) assert.equal(pack!.rule.severity, 'critical');
    assert.equal((await a.get('content.pack2'))!.origin, 'default');
  });

  test(`rule store (${name}): a stored row that no longer validates is reported, not run`, async () => {
    const { a, writeRaw } = await make();
    await writeRaw('content.bad', '{"id":"content.bad","type":"magic"}');
    await a.put(ruleOf('content.good'), 'api', 'alice');
    const all = await a.rules();
    const bad = all.find((r) => 'error' in r);
    assert.ok(bad && 'error' in bad && bad.id === 'content.bad');
    assert.ok(all.some((r) => 'rule' in r && r.rule.id === 'content.good'));
    await writeRaw('content.junk', 'not json');
    assert.ok((await a.rules()).some((r) => 'error' in r && r.id === 'content.junk'));
  });

  if (!shared) return;
  test(`rule store (${name}): the revision moves with every change made on any handle`, async () => {
    const { a, b } = await make();
    assert.ok(a.revision && b.revision);
    const r0 = await a.revision();
    await b.put(ruleOf('content.rev'), 'api', 'bob');
    const r1 = await a.revision();
    assert.notEqual(r1, r0);
    await b.put(ruleOf('content.rev', 'high'), 'api', 'bob');
    const r2 = await a.revision();
    assert.ok(BigInt(r2) > BigInt(r1));
    await b.putMany([ruleOf('content.rev', 'low')], 'default', 'default pack');
    assert.equal(await a.revision(), r2, 'a skipped default seed is no change');
  });
}
