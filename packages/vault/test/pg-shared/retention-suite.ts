/**
 * The retention settings conformance suite (lifecycle/store.ts RetentionStore and its shared
 * subclass storage/pg/retention.ts), run on custody.db and on PostgreSQL (stores.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCustodyError } from '../../src/errors.js';
import type { RetentionStore } from '../../src/lifecycle/store.js';

export interface RetentionFixture {
  a: RetentionStore;
  b: RetentionStore;
  /** Makes each handle see what the other wrote (the shared store refreshes its copy on a timer). */
  sync(): Promise<void>;
}

async function code(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    assert.ok(isCustodyError(e), String(e));
    return e.code;
  }
  assert.fail('expected a refusal');
}

export function retentionStoreSuite(name: string, make: () => Promise<RetentionFixture>): void {
  test(`retention store (${name}): a new log gets the default; extensions only grow; every handle sees them`, async () => {
    const { a, b, sync } = await make();
    const def = a.defaultDays;
    assert.equal(a.retention('eu-west-1').days, def);
    assert.deepEqual(await a.extend('eu-west-1', def + 100, 'bob', 'apr_1'), { from: def, to: def + 100 });
    await sync();
    const seen = b.retention('eu-west-1');
    assert.equal(seen.days, def + 100);
    assert.equal(seen.updatedBy, 'bob');
    assert.equal(seen.approval, 'apr_1');
    assert.equal(await code(() => b.extend('eu-west-1', def + 100, 'mallory', null)), 'RETENTION_SHORTENED');
    assert.equal(await code(() => b.extend('eu-west-1', def + 99, 'mallory', null)), 'RETENTION_SHORTENED');
    assert.equal(await code(() => b.extend('eu-west-1', 1, 'mallory', null)), 'RETENTION_SHORTENED');
    assert.deepEqual(await b.extend('eu-west-1', def + 101, 'carol', 'apr_2'), { from: def + 100, to: def + 101 });
    await sync();
    assert.equal(a.retention('eu-west-1').days, def + 101);
  });

  test(`retention store (${name}): nonsense days are refused before anything is read`, async () => {
    const { a } = await make();
    for (const bad of [0, -5, 1.5, 36_501, Number.NaN]) assert.equal(await code(() => a.extend('local', bad, 'x', null)), 'BAD_REQUEST', String(bad));
    assert.equal(a.retention('local').days, a.defaultDays);
  });
}
