/**
 * The dedupe store conformance suite (storage/db.ts DedupeStoreApi), run on dedupe.db and on
 * PostgreSQL (stores.test.ts). `b` is a second handle on the same store: on PostgreSQL another
 * pool with another node id, standing for another vault node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { DedupeStoreApi } from '../../src/storage/db.js';

export interface DedupeFixture {
  a: DedupeStoreApi;
  b: DedupeStoreApi;
  /** True when a and b are two nodes ordered by the database (claims visible across handles). */
  crossNode: boolean;
}

let n = 0;
export function keyOf(s: string): Buffer {
  return createHash('sha256').update(s).digest().subarray(0, 16);
}
const fresh = (): Buffer => keyOf(`event-${process.pid}-${Date.now()}-${n++}`);

export function dedupeStoreSuite(name: string, make: () => Promise<DedupeFixture>): void {
  test(`dedupe store (${name}): a new key is not seen; once remembered it is seen with its position, by every handle`, async () => {
    const { a, b } = await make();
    const k = fresh();
    const first = await a.claim([k]);
    assert.equal(first.seen.size, 0);
    assert.equal(first.busy.size, 0);
    await a.remember([{ key: k, log: 'eu-west-1', index: 41 }]);
    const again = await a.claim([k]);
    assert.deepEqual(again.seen.get(k.toString('hex')), { log: 'eu-west-1', index: 41 });
    if ((b as unknown) !== (a as unknown)) {
      // on dedupe.db the second handle is another file view: flush makes the batch visible
      (a as unknown as { flush?: () => void }).flush?.();
      const other = await b.claim([k]);
      assert.deepEqual(other.seen.get(k.toString('hex')), { log: 'eu-west-1', index: 41 });
    }
  });

  test(`dedupe store (${name}): many keys at once, repeated keys and an empty list`, async () => {
    const { a } = await make();
    assert.deepEqual((await a.claim([])).seen.size, 0);
    const ks = Array.from({ length: 300 }, fresh);
    const c = await a.claim([...ks, ks[0]!, ks[1]!]);
    assert.equal(c.seen.size, 0);
    assert.equal(c.busy.size, 0);
    await a.remember(ks.map((key, i) => ({ key, log: 'local', index: i })));
    const seen = (await a.claim(ks)).seen;
    assert.equal(seen.size, 300);
    assert.equal(seen.get(ks[299]!.toString('hex'))!.index, 299);
    // first writer wins: remembering a key again does not move it
    await a.remember([{ key: ks[5]!, log: 'other', index: 9999 }]);
    assert.deepEqual((await a.claim([ks[5]!])).seen.get(ks[5]!.toString('hex')), { log: 'local', index: 5 });
  });

  test(`dedupe store (${name}): a released claim is claimable again and was never seen`, async () => {
    const { a, b } = await make();
    const k = fresh();
    await a.claim([k]);
    await a.release([k]);
    const c = await b.claim([k]);
    assert.equal(c.seen.size, 0);
    assert.equal(c.busy.size, 0);
    await b.remember([{ key: k, log: 'local', index: 3 }]);
    (b as unknown as { flush?: () => void }).flush?.();
    assert.equal((await a.claim([k])).seen.get(k.toString('hex'))!.index, 3);
  });
}
