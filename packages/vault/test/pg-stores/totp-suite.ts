/**
 * The admins' TOTP store conformance suite: the same tests on custody.db and on the shared
 * PostgreSQL. On PostgreSQL the two handles are two nodes (two pools, two AdminTotp); a code
 * used on one is refused on the other, and wrong codes on both count towards one lockout.
 * custody.db serves one node, so there both handles are that node's AdminTotp.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminTotp, base32Decode, hotp } from '../../src/auth/totp.js';
import { step } from '../support/totp.js';

export interface TotpNodes {
  a: AdminTotp;
  b: AdminTotp;
  /** A third handle on the same store whose sealing key is a different one. */
  wrongKey: AdminTotp;
  clock: { now: number };
}

const reason = (r: { ok: boolean }): string => (r as { reason?: string }).reason ?? 'ok';

export function totpStoreSuite(label: string, make: () => Promise<TotpNodes>): void {
  test(`${label}: enroll on one handle, confirm and use it on the other; each step once, in order`, async () => {
    const { a, b, clock } = await make();
    assert.equal(await b.isEnrolled('p_1'), false);
    const { secret } = await a.begin('p_1', 'alice');
    assert.equal(await b.hasPending('p_1'), true);
    assert.equal(await b.isEnrolled('p_1'), false);
    const key = base32Decode(secret);
    const at = (s: number): string => hotp(key, s);
    const t = step(clock.now);
    assert.equal(reason(await b.check('p_1', at(t))), 'not-enrolled');
    assert.equal(reason(await b.confirm('p_1', '123')), 'malformed');
    assert.deepEqual(await b.confirm('p_1', at(t)), { ok: true, step: t });
    assert.equal(reason(await a.confirm('p_1', at(t))), 'no-pending-enrollment', 'confirmed already, on the other node');
    assert.equal(await a.isEnrolled('p_1'), true);
    assert.equal(await a.hasPending('p_1'), false);
    assert.equal(reason(await a.check('p_1', at(t))), 'replayed', 'the confirming code is used up on both');
    assert.deepEqual(await a.check('p_1', at(t + 1)), { ok: true, step: t + 1 });
    assert.equal(reason(await b.check('p_1', at(t + 1))), 'replayed', 'used on A, refused on B');
    assert.equal(reason(await b.check('p_1', at(t - 1))), 'replayed', 'an older step after a newer one is refused');
    assert.equal(reason(await b.check('p_1', at(t + 2))), 'wrong', 'two steps ahead is too far');
    assert.equal(reason(await b.check('p_1', at(t - 3))), 'expired');
    clock.now += 60_000;
    assert.deepEqual(await b.check('p_1', at(t + 3)), { ok: true, step: t + 3 });
    assert.equal(reason(await a.check('p_1', at(t + 3))), 'replayed');
  });

  test(`${label}: one code sent to both handles at once passes exactly once`, async () => {
    const { a, b, clock } = await make();
    const { secret } = await a.begin('p_race', 'bob');
    const key = base32Decode(secret);
    const t = step(clock.now);
    assert.equal((await a.confirm('p_race', hotp(key, t - 1))).ok, true);
    for (const s of [t, t + 1]) {
      const code = hotp(key, s);
      // six at once, three per node (two rounds of five refusals stay below the lockout of ten)
      const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).check('p_race', code)));
      assert.equal(rs.filter((r) => r.ok).length, 1, JSON.stringify(rs.map(reason)));
      assert.deepEqual([...new Set(rs.filter((r) => !r.ok).map(reason))], ['replayed']);
    }
  });

  test(`${label}: wrong codes on both handles count towards one lockout; a good code clears it`, async () => {
    const { a, b, clock } = await make();
    const { secret } = await b.begin('p_lock', 'carol');
    const key = base32Decode(secret);
    assert.equal((await b.confirm('p_lock', hotp(key, step(clock.now)))).ok, true);
    clock.now += 30_000;
    const good = (): string => hotp(key, step(clock.now));
    const bad = (): string => (good() === '000000' ? '111111' : '000000');
    for (let i = 0; i < 5; i++) assert.equal(reason(await a.check('p_lock', bad())), 'wrong');
    for (let i = 0; i < 4; i++) assert.equal(reason(await b.check('p_lock', bad())), 'wrong');
    assert.equal(reason(await b.check('p_lock', 'abc')), 'malformed', 'a malformed code counts too');
    assert.equal(reason(await a.check('p_lock', good())), 'throttled', 'ten wrong codes on two nodes lock the admin out');
    assert.equal(reason(await b.check('p_lock', good())), 'throttled');
    clock.now += 61_000;
    assert.equal((await a.check('p_lock', good())).ok, true, 'after a minute the right code works');
    assert.equal(reason(await b.check('p_lock', bad())), 'wrong', 'and the count started again (not throttled)');
  });

  test(`${label}: secrets are sealed: a handle with another key cannot use them`, async () => {
    const { a, wrongKey, clock } = await make();
    const { secret } = await a.begin('p_key', 'dave');
    const key = base32Decode(secret);
    assert.equal((await a.confirm('p_key', hotp(key, step(clock.now)))).ok, true);
    await assert.rejects(wrongKey.check('p_key', hotp(key, step(clock.now) + 1)), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'KEYRING');
      assert.ok(!String((e as Error).message).includes(secret));
      return true;
    });
    assert.equal(reason(await wrongKey.check("p' OR '1'='1", '123456')), 'not-enrolled', 'a hostile id is an unknown admin');
  });
}
