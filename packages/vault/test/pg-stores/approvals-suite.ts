/**
 * The approvals store conformance suite: the same tests on custody.db (one node, two
 * connections) and on the shared PostgreSQL (two pools = two nodes). The two-person rule must
 * hold across the two handles: a decision is a compare-and-set, so of two racing approvals
 * exactly one wins, and the action runs once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApprovalStoreApi } from '../../src/auth/approvals.js';
import { Approvals } from '../../src/auth/approvals.js';
import { ActionRegistry } from '../../src/auth/actions.js';
import { isCustodyError } from '../../src/errors.js';
import type { PrincipalRow } from '../../src/storage/db.js';
import type { Vault } from '../../src/vault.js';

export interface ApprovalNodes {
  /** Two handles on one store (two nodes on PostgreSQL), on one clock the test moves. */
  a: ApprovalStoreApi;
  b: ApprovalStoreApi;
  clock: { now: number };
}

const admin = (id: string): PrincipalRow => ({ id, name: `admin-${id}`, role: 'admin', logs: null, createdAt: '2026-01-01T00:00:00.000Z', createdBy: 'test', revokedAt: null, revokedBy: null });
const ALICE = admin('p_alice');
const BOB = admin('p_bob');
const CAROL = admin('p_carol');

/** The approvals service of one node over `store`, with a counting test action; audit and alarms recorded in memory. */
function service(store: ApprovalStoreApi, runs: { n: number }, audit: Array<Record<string, unknown>>): Approvals {
  const actions = new ActionRegistry();
  actions.register<{ n: number }>('test.count', {
    validate: (p) => ({ n: Number((p as { n?: unknown }).n ?? 0) }),
    describe: (p) => `Count run ${p.n}.`,
    async execute(p) {
      runs.n++;
      await new Promise((r) => setTimeout(r, 20)); // the action takes a moment: a racing approver must not run it too
      return { ran: p.n, token: 'secret-token-xyz' };
    },
  });
  const vault = {
    actions,
    audit: async (e: Record<string, unknown>) => void audit.push(e),
    alarms: { raise: async () => ({}) },
  } as unknown as Vault;
  return new Approvals(vault, store);
}

export function approvalStoreSuite(label: string, make: () => Promise<ApprovalNodes>): void {
  test(`${label}: add, get and list (newest first, by status, limit) agree on both handles`, async () => {
    const { a, b, clock } = await make();
    const first = await a.add({ action: 'test.count', params: { n: 1, note: 'ünïcode \' ; DROP TABLE x' }, description: 'one', by: ALICE, expiresInMinutes: 60 });
    clock.now += 1_000;
    const second = await b.add({ action: 'test.count', params: { n: 2 }, description: 'two', by: BOB, expiresInMinutes: 60 });
    assert.match(first.id, /^apr_[A-Za-z0-9_-]{12}$/);
    assert.notEqual(first.id, second.id);
    assert.deepEqual(await b.get(first.id), first, 'node B reads what node A stored');
    assert.deepEqual(first.params, { n: 1, note: 'ünïcode \' ; DROP TABLE x' });
    assert.equal(first.status, 'pending');
    assert.equal(first.requestedBy, 'admin-p_alice');
    assert.equal(first.requestedById, 'p_alice');
    assert.equal(first.expiresAt, new Date(Date.parse(first.requestedAt) + 60 * 60_000).toISOString());
    assert.deepEqual((await a.list()).map((x) => x.id), [second.id, first.id]);
    assert.deepEqual((await a.list({ limit: 1 })).map((x) => x.id), [second.id]);
    assert.deepEqual(await a.list({ status: 'approved' }), []);
    assert.equal(await a.get('apr_nope'), undefined);
    assert.equal(await b.get("' OR 1=1 --"), undefined, 'a hostile id is just an unknown id');
  });

  test(`${label}: decide is a compare-and-set: decided on one handle, closed on the other`, async () => {
    const { a, b } = await make();
    const r = await a.add({ action: 'test.count', params: {}, description: 'x', by: ALICE, expiresInMinutes: 5 });
    assert.equal(await a.decide(r.id, 'approved', 'admin-p_bob'), true);
    assert.equal(await b.decide(r.id, 'denied', 'admin-p_carol', { reason: 'late' }), false, 'closed on node B');
    assert.equal(await b.decide(r.id, 'approved', 'admin-p_carol'), false);
    const got = (await b.get(r.id))!;
    assert.equal(got.status, 'approved');
    assert.equal(got.decidedBy, 'admin-p_bob');
    assert.equal(got.result, null);
    await b.finish(r.id, 'failed', { error: { code: 'X' } });
    assert.deepEqual((await a.get(r.id))!.result, { error: { code: 'X' } });
    assert.equal((await a.get(r.id))!.status, 'failed');
    await a.finish(r.id, 'approved', { late: true });
    assert.equal((await a.get(r.id))!.status, 'failed', 'finish only touches an approved request');
    assert.equal(await a.decide('apr_unknown', 'approved', 'x'), false);
  });

  test(`${label}: twenty racing decisions over both handles: exactly one wins`, async () => {
    const { a, b } = await make();
    const r = await a.add({ action: 'test.count', params: {}, description: 'race', by: ALICE, expiresInMinutes: 5 });
    const wins = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).decide(r.id, i % 3 ? 'approved' : 'denied', `admin-${i}`)));
    assert.equal(wins.filter(Boolean).length, 1, JSON.stringify(wins));
    const winner = wins.indexOf(true);
    assert.equal((await a.get(r.id))!.decidedBy, `admin-${winner}`);
  });

  test(`${label}: expiry: overdue requests expire once, and cannot be decided`, async () => {
    const { a, b, clock } = await make();
    const short = await a.add({ action: 'test.count', params: {}, description: 'short', by: ALICE, expiresInMinutes: 1 });
    const long = await a.add({ action: 'test.count', params: {}, description: 'long', by: ALICE, expiresInMinutes: 10 });
    assert.deepEqual(await b.expireDue(), []);
    clock.now += 60_000; // exactly at expiry: expired (expires_at <= now), no longer decidable
    assert.equal(await b.decide(short.id, 'approved', 'admin-p_bob'), false, 'not decidable at its expiry time');
    const [x, y] = await Promise.all([a.expireDue(), b.expireDue()]);
    assert.deepEqual([...x, ...y].map((e) => e.id), [short.id], 'expired by exactly one of the two handles');
    const e = [...x, ...y][0]!;
    assert.equal(e.status, 'expired');
    assert.equal(e.decidedAt, new Date(clock.now).toISOString());
    assert.equal((await b.get(short.id))!.status, 'expired');
    assert.equal((await a.get(long.id))!.status, 'pending');
    assert.deepEqual((await a.list({ status: 'expired' })).map((r) => r.id), [short.id]);
  });

  test(`${label}: the service refuses self-approval, runs an approval once across nodes, and closes it everywhere`, async () => {
    const { a, b } = await make();
    const runs = { n: 0 };
    const audit: Array<Record<string, unknown>> = [];
    const nodeA = service(a, runs, audit);
    const nodeB = service(b, runs, audit);
    const { approval } = await nodeA.request({ action: 'test.count', params: { n: 7 } }, ALICE, {});
    assert.ok(approval);
    await assert.rejects(nodeB.approve(approval.id, ALICE, {}), (e: unknown) => isCustodyError(e, 'SELF_APPROVAL'));
    assert.equal((await nodeA.get(approval.id)).status, 'pending', 'a refused self-approval changes nothing');
    // Bob on node A and Carol on node B approve at the same moment: one runs the action.
    const both = await Promise.allSettled([nodeA.approve(approval.id, BOB, {}), nodeB.approve(approval.id, CAROL, {})]);
    const ok = both.filter((r) => r.status === 'fulfilled');
    const refused = both.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 1, JSON.stringify(both.map((r) => r.status)));
    assert.equal(refused.length, 1);
    assert.ok(isCustodyError(refused[0]!.reason, 'APPROVAL_CLOSED'), String(refused[0]!.reason));
    assert.equal(runs.n, 1, 'the action ran once');
    const done = await nodeB.get(approval.id);
    assert.equal(done.status, 'approved');
    assert.deepEqual(done.result, { ran: 7, token: "(shown once, in the approver's answer)" }, 'the stored result has no secret');
    assert.ok(!JSON.stringify(audit).includes('secret-token-xyz'), 'nor does the audit');
    await assert.rejects(nodeA.deny(approval.id, CAROL, {}), (e: unknown) => isCustodyError(e, 'APPROVAL_CLOSED'));
    // a denial on one node closes it on the other
    const { approval: other } = await nodeB.request({ action: 'test.count', params: { n: 8 } }, BOB, {});
    assert.equal((await nodeA.deny(other!.id, CAROL, {}, 'no')).status, 'denied');
    await assert.rejects(nodeB.approve(other!.id, ALICE, {}), (e: unknown) => isCustodyError(e, 'APPROVAL_CLOSED'));
    assert.equal(runs.n, 1);
  });
}
