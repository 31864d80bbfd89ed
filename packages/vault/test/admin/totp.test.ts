/**
 * Admins' second factor: RFC 6238 / RFC 4226 / RFC 4648 vectors for the pure pieces, then the
 * real API (real clock, real codes from the secret the API returned): enrollment, and every
 * refusal — missing, wrong, expired, malformed, replayed, not enrolled, throttled, wrong role —
 * with its code and status, each recorded in the audit log without the code.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { Totp, hotp, base32Encode, base32Decode, otpauthUri, AdminTotp } from '../../src/auth/totp.js';
import { startInProc, bearer, auditRecords, type InProcVault } from '../support/inproc.js';
import { enrollTotp, refHotp, refBase32, useFakeClock, TotpDevice, step } from '../support/totp.js';

// ---- vectors from the RFCs -------------------------------------------------------------------

const RFC_SEED = Buffer.from('12345678901234567890', 'ascii');

test('TOTP matches the SHA-1 test vectors of RFC 6238 Appendix B (8 digits)', () => {
  const vectors: Array<[number, string]> = [
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ];
  const totp = new Totp({ digits: 8 });
  for (const [t, code] of vectors) {
    assert.equal(totp.generate(RFC_SEED, t * 1000), code, `T=${t}`);
    assert.equal(refHotp(RFC_SEED, Math.floor(t / 30), 8), code, `test helper at T=${t}`);
  }
  // the injected clock is what "now" means
  assert.equal(new Totp({ digits: 8, now: () => 1111111111_000 }).generate(RFC_SEED), '14050471');
});

test('HOTP matches RFC 4226 Appendix D', () => {
  const codes = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  codes.forEach((c, i) => assert.equal(hotp(RFC_SEED, i), c));
});

test('base32 matches RFC 4648 §10 (without padding) and round-trips', () => {
  const v: Array<[string, string]> = [['', ''], ['f', 'MY'], ['fo', 'MZXQ'], ['foo', 'MZXW6'], ['foob', 'MZXW6YQ'], ['fooba', 'MZXW6YTB'], ['foobar', 'MZXW6YTBOI']];
  for (const [plain, enc] of v) {
    assert.equal(base32Encode(Buffer.from(plain)), enc);
    assert.equal(base32Decode(enc).toString(), plain);
    assert.equal(base32Decode(enc.toLowerCase() + '===').toString(), plain);
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
    const enc = base32Encode(b);
    assert.deepEqual(new Uint8Array(base32Decode(enc)), b);
    assert.deepEqual(new Uint8Array(refBase32(enc)), b);
  }));
  assert.throws(() => base32Decode('MZ1W'), { code: 'BAD_REQUEST' });
});

test('the otpauth URI is what authenticator apps import', () => {
  assert.equal(otpauthUri('alice', 'JBSWY3DPEHPK3PXP'), 'otpauth://totp/Custody:alice?secret=JBSWY3DPEHPK3PXP&issuer=Custody&algorithm=SHA1&digits=6&period=30');
});

test('the store accepts the current step ±1, each step once and in order, on an injected clock', async () => {
  const db = new Database(':memory:');
  let now = 1_700_000_000_000;
  const store = new AdminTotp(db, Buffer.alloc(32, 7), { now: () => now });
  const { secret } = await store.begin('p_1', 'alice');
  const key = base32Decode(secret);
  const at = (s: number): string => hotp(key, s);
  const t = step(now);
  assert.equal((await store.check('p_1', at(t))).ok, false, 'not enrolled before confirming');
  assert.deepEqual(await store.confirm('p_1', at(t - 1)), { ok: true, step: t - 1 });
  assert.deepEqual(await store.check('p_1', at(t)), { ok: true, step: t });
  assert.equal(((await store.check('p_1', at(t - 1))) as { reason: string }).reason, 'replayed');
  assert.equal(((await store.check('p_1', at(t))) as { reason: string }).reason, 'replayed');
  assert.equal(((await store.check('p_1', at(t + 2))) as { reason: string }).reason, 'wrong', 'two steps ahead is too far');
  assert.equal(((await store.check('p_1', at(t - 3))) as { reason: string }).reason, 'expired');
  assert.deepEqual(await store.check('p_1', at(t + 1)), { ok: true, step: t + 1 });
  now += 30_000;
  assert.equal(((await store.check('p_1', at(t + 1))) as { reason: string }).reason, 'replayed');
  now += 30_000;
  assert.deepEqual(await store.check('p_1', at(t + 3)), { ok: true, step: t + 3 });
  // the secret is sealed: neither its bytes nor its text are in the row
  const row = db.prepare('SELECT * FROM admin_totp').get() as Record<string, unknown>;
  const dump = JSON.stringify(row) + Buffer.from(row['secret'] as Buffer).toString('latin1');
  assert.ok(!dump.includes(secret));
  assert.ok(!Buffer.from(row['secret'] as Buffer).includes(key));
  // another key cannot open it
  const other = new AdminTotp(db, Buffer.alloc(32, 8), { now: () => now });
  await assert.rejects(() => other.check('p_1', at(t + 4)), { code: 'KEYRING' });
  // ten wrong codes in a row lock the admin out for a minute, even for the right code
  for (let i = 0; i < 10; i++) assert.equal((await store.check('p_1', '000000' === at(step(now)) ? '111111' : '000000')).ok, false);
  assert.equal(((await store.check('p_1', at(step(now)))) as { reason: string }).reason, 'throttled');
  now += 61_000;
  assert.equal((await store.check('p_1', at(step(now)))).ok, true);
  db.close();
});

// ---- the API, on the real clock --------------------------------------------------------------

let v: InProcVault;
before(async () => {
  v = await startInProc({ checkpointIntervalMs: 20 });
});
after(async () => v.close());

const json = { 'content-type': 'application/json' };
const errorOf = (r: { json: <T>() => T }): { code: string; message: string; details?: { reason?: string } } => r.json<{ error: { code: string; message: string; details?: { reason?: string } } }>().error;
const createWriter = (name: string, headers: Record<string, string>) =>
  v.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...json, ...headers }, payload: { name, role: 'writer' } });

let device: TotpDevice;
const used: string[] = [];

test('an admin without a second factor cannot do a sensitive action', async () => {
  const me = await v.app.inject({ method: 'GET', url: '/v1/admin/me', headers: bearer(v.tokens.admin) });
  assert.equal(me.statusCode, 200);
  assert.deepEqual({ ...me.json<Record<string, unknown>>(), id: undefined }, { id: undefined, name: 'initial-admin', role: 'admin', totpEnrolled: false, totpPending: false });
  const r = await createWriter('w-before', { ...bearer(v.tokens.admin), 'x-custody-totp': '123456' });
  assert.equal(r.statusCode, 403);
  assert.equal(errorOf(r).code, 'TOTP_NOT_ENROLLED');
  assert.match(errorOf(r).message, /custody admin totp enroll/);
  assert.equal(v.vault.db.getPrincipal('w-before'), undefined);
});

test('writers and auditors cannot enroll', async () => {
  for (const who of ['writer', 'auditor'] as const) {
    const r = await v.app.inject({ method: 'POST', url: '/v1/admin/totp', headers: bearer(v.tokens[who]) });
    assert.equal(r.statusCode, 403, who);
    assert.equal(errorOf(r).code, 'FORBIDDEN');
    const c = await v.app.inject({ method: 'POST', url: '/v1/admin/totp/confirm', headers: { ...bearer(v.tokens[who]), ...json }, payload: { code: '123456' } });
    assert.equal(errorOf(c).code, 'FORBIDDEN');
  }
});

test('enrollment: a secret and URI, active only after a correct code', async () => {
  const r = await v.app.inject({ method: 'POST', url: '/v1/admin/totp', headers: bearer(v.tokens.admin) });
  assert.equal(r.statusCode, 200, r.body);
  const { secret, otpauthUri: uri } = r.json<{ secret: string; otpauthUri: string }>();
  assert.match(secret, /^[A-Z2-7]{32}$/, '20 random bytes, base32 without padding');
  assert.equal(uri, `otpauth://totp/Custody:initial-admin?secret=${secret}&issuer=Custody&algorithm=SHA1&digits=6&period=30`);
  device = new TotpDevice(secret);
  // a wrong code does not confirm it
  const wrong = await v.app.inject({ method: 'POST', url: '/v1/admin/totp/confirm', headers: { ...bearer(v.tokens.admin), ...json }, payload: { code: wrongCode(device) } });
  assert.equal(wrong.statusCode, 401);
  assert.equal(errorOf(wrong).code, 'TOTP_INVALID');
  const me1 = await v.app.inject({ method: 'GET', url: '/v1/admin/me', headers: bearer(v.tokens.admin) });
  assert.equal(me1.json<{ totpEnrolled: boolean; totpPending: boolean }>().totpEnrolled, false);
  assert.equal(me1.json<{ totpPending: boolean }>().totpPending, true);
  const code = await device.next();
  used.push(code);
  const ok = await v.app.inject({ method: 'POST', url: '/v1/admin/totp/confirm', headers: { ...bearer(v.tokens.admin), ...json }, payload: { code } });
  assert.equal(ok.statusCode, 200, ok.body);
  const me2 = await v.app.inject({ method: 'GET', url: '/v1/admin/me', headers: bearer(v.tokens.admin) });
  assert.equal(me2.json<{ totpEnrolled: boolean }>().totpEnrolled, true);
  // the secret is in custody.db only sealed
  const files = ['custody.db', 'custody.db-wal'].map((f) => join(v.dataDir, f)).filter(existsSync);
  for (const f of files) {
    const bytes = readFileSync(f);
    assert.ok(!bytes.includes(Buffer.from(secret)), `${f} holds the secret as text`);
    assert.ok(!bytes.includes(refBase32(secret)), `${f} holds the secret's bytes`);
  }
});

/** A 6-digit code that is none of the codes near now. */
function wrongCode(d: TotpDevice): string {
  const near = new Set([-3, -2, -1, 0, 1, 2].map((k) => d.codeAt(Date.now() + k * 30_000)));
  let n = Number(d.current());
  let c: string;
  do c = String(++n % 1_000_000).padStart(6, '0');
  while (near.has(c));
  return c;
}

test('a sensitive action without a code, with a wrong, expired or malformed one is refused', async () => {
  const missing = await createWriter('w-missing', bearer(v.tokens.admin));
  assert.equal(missing.statusCode, 401);
  assert.equal(errorOf(missing).code, 'TOTP_REQUIRED');
  assert.match(errorOf(missing).message, /X-Custody-TOTP/);

  const wrong = await createWriter('w-wrong', { ...bearer(v.tokens.admin), 'x-custody-totp': wrongCode(device) });
  assert.equal(wrong.statusCode, 401);
  assert.equal(errorOf(wrong).code, 'TOTP_INVALID');
  assert.equal(errorOf(wrong).details?.reason, 'wrong');

  const old = device.codeAt(Date.now() - 3 * 30_000); // a code from three steps ago
  const expired = await createWriter('w-expired', { ...bearer(v.tokens.admin), 'x-custody-totp': old });
  assert.equal(expired.statusCode, 401);
  assert.equal(errorOf(expired).code, 'TOTP_INVALID');
  assert.equal(errorOf(expired).details?.reason, 'expired');

  for (const bad of ['12a456', '1234567', '12345', ' ', 'x'.repeat(5000)]) {
    const r = await createWriter('w-malformed', { ...bearer(v.tokens.admin), 'x-custody-totp': bad });
    assert.equal(r.statusCode, 401);
    assert.equal(errorOf(r).code, bad.trim() === '' ? 'TOTP_REQUIRED' : 'TOTP_INVALID', JSON.stringify(bad.slice(0, 10)));
  }
  for (const n of ['w-missing', 'w-wrong', 'w-expired', 'w-malformed']) assert.equal(v.vault.db.getPrincipal(n), undefined);
});

test('a valid code works once; the same code again is refused as replayed', async () => {
  const code = await device.next();
  used.push(code);
  const ok = await createWriter('w-ok', { ...bearer(v.tokens.admin), 'x-custody-totp': code });
  assert.equal(ok.statusCode, 201, ok.body);
  const again = await createWriter('w-replay', { ...bearer(v.tokens.admin), 'x-custody-totp': code });
  assert.equal(again.statusCode, 401);
  assert.equal(errorOf(again).code, 'TOTP_INVALID');
  assert.equal(errorOf(again).details?.reason, 'replayed');
  assert.equal(v.vault.db.getPrincipal('w-replay'), undefined);
  // revoking needs a code too
  const rv = await v.app.inject({ method: 'POST', url: `/v1/principals/w-ok/revoke`, headers: bearer(v.tokens.admin) });
  assert.equal(errorOf(rv).code, 'TOTP_REQUIRED');
  assert.equal(v.vault.db.getPrincipal('w-ok')!.revokedAt, null);
});

test('re-enrolling needs a current code', async () => {
  const r = await v.app.inject({ method: 'POST', url: '/v1/admin/totp', headers: bearer(v.tokens.admin) });
  assert.equal(r.statusCode, 401);
  assert.equal(errorOf(r).code, 'TOTP_REQUIRED');
  const w = await v.app.inject({ method: 'POST', url: '/v1/admin/totp', headers: { ...bearer(v.tokens.admin), 'x-custody-totp': wrongCode(device) } });
  assert.equal(errorOf(w).code, 'TOTP_INVALID');
});

test('a run of wrong codes locks the admin out for a minute (checked before the code is)', async () => {
  // 2 wrong codes so far since the last good one (the replay and the wrong re-enrollment)
  for (let i = 0; i < 8; i++) {
    const r = await createWriter('w-guess', { ...bearer(v.tokens.admin), 'x-custody-totp': wrongCode(device) });
    assert.equal(errorOf(r).details?.reason, 'wrong');
  }
  const r = await createWriter('w-guess', { ...bearer(v.tokens.admin), 'x-custody-totp': device.current() });
  assert.equal(r.statusCode, 401);
  assert.equal(errorOf(r).details?.reason, 'throttled');
  assert.equal(v.vault.db.getPrincipal('w-guess'), undefined);
});

test('every refusal is in the audit log with its reason, who and from where — never a code or the secret', async () => {
  const audit = await auditRecords(v);
  const failed = audit.filter((a) => a.type === 'admin.totp.failed');
  const reasons = failed.map((a) => a.reason);
  for (const r of ['not-enrolled', 'wrong', 'missing', 'expired', 'malformed', 'replayed', 'throttled']) assert.ok(reasons.includes(r), `a ${r} refusal is recorded`);
  assert.ok(failed.some((a) => a.stage === 'confirm' && a.reason === 'wrong'), 'a wrong confirmation code is recorded');
  for (const a of failed) {
    assert.equal((a.principal as { name: string }).name, 'initial-admin');
    assert.equal(typeof a.address, 'string');
    assert.equal(typeof a.path, 'string');
  }
  assert.ok(audit.some((a) => a.type === 'admin.totp.enrollment-started'));
  assert.ok(audit.some((a) => a.type === 'admin.totp.enrolled'));
  const text = JSON.stringify(audit);
  assert.ok(!text.includes(device.secret));
  for (const c of used) assert.ok(!text.includes(c), 'a code reached the audit log');
  // role refusals of the enrollment routes are recorded as usual
  assert.ok(audit.some((a) => a.type === 'request.refused' && a.path === '/v1/admin/totp' && (a.principal as { role: string }).role === 'writer'));
});

test('with a fake clock a re-enrolled admin switches secrets only on confirmation', async (t) => {
  const w = await startInProc();
  t.after(() => w.close());
  const clock = useFakeClock(w.vault);
  const first = await enrollTotp(w.app, w.tokens.admin, clock);
  const r = await w.app.inject({ method: 'POST', url: '/v1/admin/totp', headers: await first.headers(w.tokens.admin) });
  assert.equal(r.statusCode, 200, r.body);
  const second = new TotpDevice(r.json<{ secret: string }>().secret, clock);
  assert.notEqual(second.secret, first.secret);
  // until confirmed, the old secret is the one that works
  const before = await createWriterOn(w, 'w-1', await first.headers(w.tokens.admin));
  assert.equal(before.statusCode, 201, before.body);
  const c = await w.app.inject({ method: 'POST', url: '/v1/admin/totp/confirm', headers: { ...bearer(w.tokens.admin), ...json }, payload: { code: await second.next() } });
  assert.equal(c.statusCode, 200, c.body);
  const old = await createWriterOn(w, 'w-2', await first.headers(w.tokens.admin));
  assert.equal(errorOf(old).code, 'TOTP_INVALID');
  const now = await createWriterOn(w, 'w-3', await second.headers(w.tokens.admin));
  assert.equal(now.statusCode, 201, now.body);
  const confirmAgain = await w.app.inject({ method: 'POST', url: '/v1/admin/totp/confirm', headers: { ...bearer(w.tokens.admin), ...json }, payload: { code: await second.next() } });
  assert.equal(errorOf(confirmAgain).details?.reason, 'no-pending-enrollment');
});

function createWriterOn(w: InProcVault, name: string, headers: Record<string, string>) {
  return w.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...json, ...headers }, payload: { name, role: 'writer' } });
}
