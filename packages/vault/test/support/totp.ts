/**
 * A test authenticator app: enrolls an admin's second factor through the API and computes
 * codes from the secret the API returned, with its own small HOTP (RFC 4226) — not the vault's
 * — so the vault's TOTP is checked against an independent implementation (and both against the
 * RFC 6238 vectors in test/admin/totp.test.ts).
 *
 * Each step's code works once per admin, so an admin can use only a few codes per 30 s. Tests
 * that need many use a FakeClock (the vault's admin clock, moved on one step per code); with
 * the real clock `next()` waits for the next step when it must.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { setAdminClock } from '../../src/auth/totp.js';

const PERIOD_MS = 30_000;

/** RFC 4226 HOTP, written out independently of src/auth/totp.ts. */
export function refHotp(key: Buffer, counter: number, digits = 6): string {
  const msg = Buffer.alloc(8);
  msg.writeUInt32BE(Math.floor(counter / 2 ** 32), 0);
  msg.writeUInt32BE(counter >>> 0, 4);
  const h = createHmac('sha1', key).update(msg).digest();
  const o = h[h.length - 1]! & 0xf;
  const n = h.readUInt32BE(o) & 0x7fffffff;
  return (n % 10 ** digits).toString().padStart(digits, '0');
}

/** RFC 4648 base32 decoding, independently of src/auth/totp.ts. */
export function refBase32(s: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bits = [...s.toUpperCase().replace(/=+$/, '')].map((c) => {
    const i = alphabet.indexOf(c);
    assert.ok(i >= 0, `not base32: ${c}`);
    return i.toString(2).padStart(5, '0');
  }).join('');
  const out: number[] = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}

/** The vault's admin clock, under the test's control. */
export class FakeClock {
  constructor(public t = Date.now()) {}
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** Puts a vault's TOTP steps and approval expiry on a fake clock. */
export function useFakeClock(vault: object, start = Date.now()): FakeClock {
  const c = new FakeClock(start);
  setAdminClock(vault, c.now);
  return c;
}

export const step = (ms: number): number => Math.floor(ms / PERIOD_MS);

/** An admin's authenticator app. */
export class TotpDevice {
  /** The last step this device handed out (the server refuses it and anything older). */
  last = -1;
  readonly key: Buffer;

  constructor(
    readonly secret: string,
    readonly clock?: FakeClock,
  ) {
    this.key = refBase32(secret);
  }

  now(): number {
    return this.clock ? this.clock.t : Date.now();
  }

  /** The code of the time step that holds `ms`. */
  codeAt(ms: number): string {
    return refHotp(this.key, step(ms));
  }

  /** The code of the current step, without marking it used (for replay and error tests). */
  current(): string {
    return this.codeAt(this.now());
  }

  /**
   * A code the server will accept: a step not used before, in the accepted window. A fake
   * clock moves one step on; with the real clock this waits when the window is used up.
   */
  async next(): Promise<string> {
    if (this.clock) {
      this.clock.advance(PERIOD_MS);
      const s = step(this.clock.t);
      this.last = s;
      return refHotp(this.key, s);
    }
    for (;;) {
      const t = step(Date.now());
      const s = Math.max(this.last + 1, t);
      if (s <= t + 1) {
        this.last = s;
        return refHotp(this.key, s);
      }
      await new Promise((r) => setTimeout(r, PERIOD_MS - (Date.now() % PERIOD_MS) + 50));
    }
  }

  /** Authorization and X-Custody-TOTP headers with a fresh code. */
  async headers(token: string): Promise<Record<string, string>> {
    return { authorization: `Bearer ${token}`, 'x-custody-totp': await this.next() };
  }
}

/** Enrolls `token`'s admin through the API (enroll + confirm) and returns its authenticator. */
export async function enrollTotp(app: FastifyInstance, token: string, clock?: FakeClock): Promise<TotpDevice> {
  const r = await app.inject({ method: 'POST', url: '/v1/admin/totp', headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.statusCode, 200, r.body);
  const { secret, otpauthUri } = r.json<{ secret: string; otpauthUri: string }>();
  assert.ok(otpauthUri.includes(`secret=${secret}`));
  const device = new TotpDevice(secret, clock);
  const c = await app.inject({ method: 'POST', url: '/v1/admin/totp/confirm', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: { code: await device.next() } });
  assert.equal(c.statusCode, 200, c.body);
  return device;
}
