/**
 * The alarm store conformance suite: the same tests on custody.db (two connections) and on the
 * shared PostgreSQL (two pools = two nodes): alarms raised on any handle are listed on every
 * handle, newest first; repeats with one group key inside the window count on one alarm even
 * when they arrive on both nodes at once; paging with `before` walks the whole list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AlarmStoreApi } from '../../src/alarms/store.js';
import type { AlarmInput } from '../../src/alarms/types.js';

export interface AlarmNodes {
  a: AlarmStoreApi;
  b: AlarmStoreApi;
}

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();
const WINDOW = 10 * 60_000;
const since = (ms: number): string => iso(ms - WINDOW);

const input = (over: Partial<AlarmInput> = {}): AlarmInput => ({ kind: 'auth', rule: 'test.rule', severity: 'high', title: 'failed logins', details: { n: 1 }, ...over });

export function alarmStoreSuite(label: string, make: () => Promise<AlarmNodes>): void {
  test(`${label}: an alarm raised on one handle is read on the other, field for field`, async () => {
    const { a, b } = await make();
    const { alarm, isNew } = await a.record(input({ kind: 'trust', details: { actor: 'ünï', nested: { x: [1, 2] } }, log: 'eu-west-1', entry: 9_007_199_254_740_991 }), iso(T0), null);
    assert.equal(isNew, true);
    assert.deepEqual(await b.get(alarm.id), alarm);
    assert.deepEqual(alarm, {
      id: alarm.id, kind: 'trust', rule: 'test.rule', severity: 'high', title: 'failed logins', details: { actor: 'ünï', nested: { x: [1, 2] } },
      time: iso(T0), lastTime: iso(T0), count: 1, log: 'eu-west-1', entry: 9_007_199_254_740_991,
    });
    assert.equal(await b.get(alarm.id + 1000), undefined);
    assert.equal(await b.count(), 1);
  });

  test(`${label}: repeats on both handles count on one alarm inside the window, a new one after it`, async () => {
    const { a, b } = await make();
    const key = "burst|10.0.0.9|' OR 1=1 --|ünï";
    const first = await a.record(input({ groupKey: key }), iso(T0), since(T0));
    assert.equal(first.isNew, true);
    const other = await b.record(input({ groupKey: 'another-key' }), iso(T0), since(T0));
    assert.equal(other.isNew, true, 'another key is another alarm');
    const at = T0 + 60_000;
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).record(input({ groupKey: key }), iso(at), since(at))));
    assert.ok(rs.every((r) => !r.isNew && r.alarm.id === first.alarm.id), JSON.stringify(rs.map((r) => [r.isNew, r.alarm.id])));
    assert.deepEqual(rs.map((r) => r.alarm.count).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 2), 'each repeat saw its own count');
    const now = (await b.get(first.alarm.id))!;
    assert.equal(now.count, 21);
    assert.equal(now.time, iso(T0));
    assert.equal(now.lastTime, iso(at));
    // an alarm without a group key is never grouped
    const plain1 = await a.record(input(), iso(at), null);
    const plain2 = await b.record(input(), iso(at), null);
    assert.ok(plain1.isNew && plain2.isNew && plain1.alarm.id !== plain2.alarm.id);
    // past the window (measured from the last sighting) a repeat starts a new alarm
    const later = at + WINDOW + 1;
    const fresh = await b.record(input({ groupKey: key }), iso(later), since(later));
    assert.equal(fresh.isNew, true);
    assert.ok(fresh.alarm.id > first.alarm.id);
    const again = await a.record(input({ groupKey: key }), iso(later + 1), since(later + 1));
    assert.equal(again.alarm.id, fresh.alarm.id, 'the new one is the open alarm now');
    assert.equal((await a.get(first.alarm.id))!.count, 21, 'the old alarm stays as it was');
    assert.equal(await a.count(), 5);
  });

  test(`${label}: the first sighting of a key arriving on both handles at once makes one alarm`, async () => {
    const { a, b } = await make();
    for (const key of ['k1', 'k2', 'k3']) {
      const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).record(input({ groupKey: key }), iso(T0), since(T0))));
      assert.equal(rs.filter((r) => r.isNew).length, 1, `${key}: ${JSON.stringify(rs.map((r) => [r.isNew, r.alarm.id]))}`);
      assert.equal(new Set(rs.map((r) => r.alarm.id)).size, 1);
      assert.equal((await a.get(rs[0]!.alarm.id))!.count, 12);
    }
    assert.equal(await b.count(), 3);
  });

  test(`${label}: list: newest first across handles, kinds, since/until, and paging with before`, async () => {
    const { a, b } = await make();
    const ids: number[] = [];
    for (let i = 0; i < 12; i++) {
      const h = i % 2 ? a : b;
      const r = await h.record(input({ kind: i % 3 === 0 ? 'silence' : 'tamper', title: `alarm ${i}` }), iso(T0 + i * 60_000), null);
      ids.push(r.alarm.id);
    }
    const newestFirst = [...ids].reverse();
    assert.deepEqual((await a.list({})).map((x) => x.id), newestFirst);
    assert.deepEqual((await b.list({})).map((x) => x.id), newestFirst, 'both handles list the same');
    assert.deepEqual((await a.list({ kinds: ['silence'] })).map((x) => x.title), ['alarm 9', 'alarm 6', 'alarm 3', 'alarm 0']);
    assert.deepEqual((await a.list({ kinds: ['silence', 'tamper'] })).length, 12);
    assert.deepEqual(await a.list({ kinds: ['witness'] }), []);
    assert.deepEqual((await b.list({ since: iso(T0 + 10 * 60_000) })).map((x) => x.title), ['alarm 11', 'alarm 10']);
    assert.deepEqual((await b.list({ until: iso(T0 + 60_000) })).map((x) => x.title), ['alarm 0']);
    // pages of 5 with the `before` cursor walk everything once
    const seen: number[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await (seen.length % 2 ? a : b).list({ limit: 5, before });
      seen.push(...page.map((x) => x.id));
      if (page.length < 5) break;
      before = page[page.length - 1]!.id;
    }
    assert.deepEqual(seen, newestFirst);
    // the limit is clamped to 1..500
    assert.equal((await a.list({ limit: 0 })).length, 1);
    assert.equal((await a.list({ limit: 10_000 })).length, 12);
  });
}
