/**
 * Admins' second factor: TOTP (RFC 6238 over RFC 4226 HOTP; HMAC-SHA1, 30 s steps, 6 digits —
 * what every authenticator app speaks). A code is accepted for the current step and one step
 * either side (clock drift), and each step only once per admin: the last used step is kept in
 * custody.db (or, with several nodes, in the shared PostgreSQL: storage/pg/totp.ts), so a code
 * seen over someone's shoulder, or replayed from a captured request, is refused even after a
 * restart, and on every node.
 *
 * Secrets are 20 random bytes, shown once (base32, in an otpauth:// URI) and stored in
 * custody.db only encrypted (AES-256-GCM) under the keyring's vault key "totp-secrets", so a
 * copy of the database alone does not yield them. Rows sealed by older versions (a key derived
 * from the audit signing seed) are re-sealed under that key when the store opens. Neither a secret nor a code is ever logged or audited.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type Database from 'better-sqlite3';
import { CustodyError, type ErrorCode } from '../errors.js';
import { PgTotpStore } from '../storage/pg/totp.js';
import { sharedOf } from '../storage/pg/vault-shared.js';

// ---- RFC 4226 / RFC 6238 ---------------------------------------------------------------------

/** HOTP (RFC 4226 §5.3): HMAC-SHA1 of the 8-byte big-endian counter, dynamically truncated. */
export function hotp(secret: Uint8Array, counter: number | bigint, digits = 6): string {
  if (!Number.isInteger(digits) || digits < 6 || digits > 10) throw new RangeError('digits must be 6 to 10');
  const c = BigInt(counter);
  if (c < 0n || c > 0xffff_ffff_ffff_ffffn) throw new RangeError('counter out of range');
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(c);
  const mac = createHmac('sha1', secret).update(msg).digest();
  const off = mac[19]! & 0x0f;
  const bin = ((mac[off]! & 0x7f) << 24) | (mac[off + 1]! << 16) | (mac[off + 2]! << 8) | mac[off + 3]!;
  return String(bin % 10 ** digits).padStart(digits, '0');
}

export interface TotpParams {
  /** Seconds per step (RFC 6238 "X"); default 30. */
  period?: number;
  /** Digits per code; default 6. */
  digits?: number;
  /** The clock, in ms since the epoch; default Date.now. Tests inject their own. */
  now?: () => number;
}

/** TOTP codes of one secret's algorithm parameters, on an injectable clock. */
export class Totp {
  readonly period: number;
  readonly digits: number;
  readonly now: () => number;

  constructor(p: TotpParams = {}) {
    this.period = p.period ?? 30;
    this.digits = p.digits ?? 6;
    this.now = p.now ?? Date.now;
    if (!Number.isInteger(this.period) || this.period < 1) throw new RangeError('period must be a whole number of seconds');
  }

  /** The time step of a moment (default: now). */
  step(atMs = this.now()): number {
    return Math.floor(atMs / 1000 / this.period);
  }

  /** The code of a time step. */
  codeAt(secret: Uint8Array, step: number): string {
    return hotp(secret, step, this.digits);
  }

  /** The code at a moment (default: now). */
  generate(secret: Uint8Array, atMs = this.now()): string {
    return this.codeAt(secret, this.step(atMs));
  }

  /**
   * The step `code` belongs to among `steps` (compared in constant time per step), or null.
   */
  match(secret: Uint8Array, code: string, steps: number[]): number | null {
    if (code.length !== this.digits || !/^[0-9]+$/.test(code)) return null;
    const given = Buffer.from(code);
    let found: number | null = null;
    for (const s of steps) {
      if (timingSafeEqual(Buffer.from(this.codeAt(secret, s)), given) && found === null) found = s;
    }
    return found;
  }
}

// ---- base32 (RFC 4648 §6, no padding) and the otpauth URI -----------------------------------

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** Decodes base32 as authenticator apps show it: any case, spaces and padding ignored. */
export function base32Decode(text: string): Buffer {
  const clean = text.replace(/[\s=]/g, '').toUpperCase();
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const v = B32.indexOf(ch);
    if (v < 0) throw new CustodyError('BAD_REQUEST', `"${ch}" is not a base32 character (A–Z, 2–7).`);
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The otpauth:// URI an authenticator app imports (Key Uri Format). */
export function otpauthUri(account: string, secretB32: string, p: { period?: number; digits?: number; issuer?: string } = {}): string {
  const issuer = p.issuer ?? 'Custody';
  const q = new URLSearchParams({ secret: secretB32, issuer, algorithm: 'SHA1', digits: String(p.digits ?? 6), period: String(p.period ?? 30) });
  return `otpauth://totp/${encodeURIComponent(issuer)}:${encodeURIComponent(account)}?${q}`;
}

// ---- the admins' enrolled secrets ------------------------------------------------------------

/** Why a code was refused; recorded in the audit log as `admin.totp.failed` {reason}. */
export type TotpFailure = 'missing' | 'not-enrolled' | 'malformed' | 'wrong' | 'replayed' | 'expired' | 'throttled' | 'no-pending-enrollment';

export type TotpCheck = { ok: true; step: number } | { ok: false; reason: TotpFailure; code: ErrorCode; message: string };

const MESSAGES: Record<TotpFailure, [ErrorCode, string]> = {
  missing: ['TOTP_REQUIRED', 'This action needs a current code from your authenticator app: send it in the X-Custody-TOTP header (CLI: --totp <code> or CUSTODY_TOTP).'],
  'not-enrolled': ['TOTP_NOT_ENROLLED', 'This action needs a second factor and you have none yet: run `custody admin totp enroll`, add the secret to your authenticator app, then `custody admin totp confirm <code>`.'],
  malformed: ['TOTP_INVALID', 'A code is the 6 digits your authenticator app shows for Custody; send only those digits.'],
  wrong: ['TOTP_INVALID', 'The code is wrong. Use the current code your authenticator app shows for Custody; if it keeps failing, check that the device\'s clock is right. The attempt was recorded.'],
  replayed: ['TOTP_INVALID', 'This code was already used; each code works once. Wait for the next code in your authenticator app (at most 30 s).'],
  expired: ['TOTP_INVALID', 'This code has expired; use the code your authenticator app shows now (and check the device\'s clock).'],
  throttled: ['TOTP_INVALID', 'Too many wrong codes in a row: wait a minute, then use the current code. The attempts were recorded.'],
  'no-pending-enrollment': ['TOTP_INVALID', 'There is no enrollment to confirm: start one with `custody admin totp enroll` (POST /v1/admin/totp).'],
};

function failure(reason: TotpFailure): TotpCheck {
  const [code, message] = MESSAGES[reason];
  return { ok: false, reason, code, message };
}

/** After this many wrong codes in a row, an admin's codes are refused unchecked for a while. */
const MAX_FAILURES = 10;
const LOCKOUT_MS = 60_000;
/** How far back a matching code is called "expired" rather than "wrong" (in steps). */
const EXPIRED_LOOKBACK = 10;

interface TotpRow {
  principal_id: string;
  secret: Buffer | null;
  enrolled_at: string | null;
  pending: Buffer | null;
  pending_at: string | null;
  last_step: number | null;
}

/** One admin's sealed secrets and last used step, as a store keeps them. */
export interface TotpRecord {
  secret: Buffer | null;
  pending: Buffer | null;
  lastStep: number | null;
}

/** Wrong codes in a row of one admin: how many, and when the last one came (ms). */
export interface TotpFailures {
  count: number;
  last: number;
}

/**
 * Where the admins' sealed TOTP secrets, last used steps and wrong-code counts are kept:
 * custody.db on one node (SqliteTotpStore), or the shared PostgreSQL when several nodes serve
 * one vault (storage/pg/totp.ts), so a code used on one node is refused on every other and
 * wrong codes count towards one lockout. Sealing and code checks stay in AdminTotp.
 */
export interface TotpStoreApi {
  get(principalId: string): Promise<TotpRecord | undefined>;
  /** Stores a new pending (sealed) secret; an active one stays. */
  setPending(principalId: string, sealed: Buffer, atIso: string): Promise<void>;
  /** Makes the pending secret active if it is still `expectedPending`; false if another call won. */
  activate(principalId: string, active: Buffer, atIso: string, step: number, expectedPending: Buffer): Promise<boolean>;
  /** Uses up `step`: true only if the admin has an active secret and no step at or after it was used. */
  useStep(principalId: string, step: number): Promise<boolean>;
  failures(principalId: string): Promise<TotpFailures | undefined>;
  /** Counts a wrong code at `now`: one more in a row when the last was less than `windowMs` ago, else the first. */
  addFailure(principalId: string, now: number, windowMs: number): Promise<void>;
  clearFailures(principalId: string): Promise<void>;
}

/** The admin_totp table of custody.db (one node). Wrong-code counts live in memory, as before. */
export class SqliteTotpStore implements TotpStoreApi {
  private readonly fails = new Map<string, TotpFailures>();

  constructor(readonly db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS admin_totp (
      principal_id TEXT PRIMARY KEY,
      secret BLOB, enrolled_at TEXT,
      pending BLOB, pending_at TEXT,
      last_step INTEGER)`);
  }

  getSync(principalId: string): TotpRecord | undefined {
    const r = this.db.prepare('SELECT * FROM admin_totp WHERE principal_id = ?').get(principalId) as TotpRow | undefined;
    return r && { secret: r.secret, pending: r.pending, lastStep: r.last_step };
  }

  async get(principalId: string): Promise<TotpRecord | undefined> {
    return this.getSync(principalId);
  }

  async setPending(principalId: string, sealed: Buffer, atIso: string): Promise<void> {
    this.db
      .prepare(`INSERT INTO admin_totp (principal_id, pending, pending_at) VALUES (?, ?, ?)
                ON CONFLICT(principal_id) DO UPDATE SET pending = excluded.pending, pending_at = excluded.pending_at`)
      .run(principalId, sealed, atIso);
  }

  async activate(principalId: string, active: Buffer, atIso: string, step: number, expectedPending: Buffer): Promise<boolean> {
    return (
      this.db
        .prepare('UPDATE admin_totp SET secret = ?, enrolled_at = ?, pending = NULL, pending_at = NULL, last_step = ? WHERE principal_id = ? AND pending = ?')
        .run(active, atIso, step, principalId, expectedPending).changes === 1
    );
  }

  async useStep(principalId: string, step: number): Promise<boolean> {
    return (
      this.db
        .prepare('UPDATE admin_totp SET last_step = ? WHERE principal_id = ? AND secret IS NOT NULL AND (last_step IS NULL OR last_step < ?)')
        .run(step, principalId, step).changes === 1
    );
  }

  async failures(principalId: string): Promise<TotpFailures | undefined> {
    const f = this.fails.get(principalId);
    return f && { ...f };
  }

  async addFailure(principalId: string, now: number, windowMs: number): Promise<void> {
    const f = this.fails.get(principalId);
    if (f && now - f.last < windowMs) {
      f.count++;
      f.last = now;
    } else this.fails.set(principalId, { count: 1, last: now });
    if (this.fails.size > 10_000) this.fails.clear();
  }

  async clearFailures(principalId: string): Promise<void> {
    this.fails.delete(principalId);
  }
}

/**
 * The key that sealed TOTP secrets before the keyring had vault-level keys (seal version 1):
 * HKDF-SHA256 of the audit log's signing seed. Used only to migrate version-1 rows to the
 * vault key "totp-secrets" (version 2) when the store opens; nothing is sealed with it any more.
 */
export function legacyTotpSealingKey(auditSigningSeed: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', auditSigningSeed, Buffer.from('custody'), Buffer.from('custody admin totp v1'), 32));
}

/** Version 1: key from the audit signing seed (legacy). Version 2: the vault key "totp-secrets". */
const SEAL_V1 = 1;
const SEAL_VERSION = 2;

export interface AdminTotpOptions {
  now?: () => number;
  /**
   * The version-1 key (legacyTotpSealingKey), asked for only when version-1 rows exist: they are
   * re-sealed under the current key when the store opens.
   */
  legacyKey?: () => Buffer;
}

/** A version-1 sealed secret opened with the legacy key, or null. */
function openV1(key: Buffer, principalId: string, slot: string, blob: Buffer): Buffer | null {
  try {
    if (blob[0] !== SEAL_V1 || blob.length < 1 + 12 + 16 + 1) return null;
    const d = createDecipheriv('aes-256-gcm', key, blob.subarray(1, 13));
    d.setAAD(Buffer.from(`admin_totp ${principalId} ${slot}`));
    d.setAuthTag(blob.subarray(blob.length - 16));
    return Buffer.concat([d.update(blob.subarray(13, blob.length - 16)), d.final()]);
  } catch {
    return null;
  }
}

/** The admins' TOTP secrets and last used steps (custody.db, or the shared PostgreSQL). */
export class AdminTotp {
  readonly totp: Totp;
  readonly store: TotpStoreApi;
  private readonly db: Database.Database | null;

  /** How many sealed secrets the last open re-sealed from version 1 (see migrate). */
  readonly migrated: number;

  /** `store`: custody.db (its admin_totp table) or another TotpStoreApi (the shared PostgreSQL). */
  constructor(
    store: Database.Database | TotpStoreApi,
    private readonly key: Buffer,
    private readonly opts: AdminTotpOptions = {},
  ) {
    this.totp = new Totp({ now: () => this.now() });
    if (isSqlite(store)) {
      this.db = store;
      this.store = new SqliteTotpStore(store);
      this.migrated = this.migrate();
    } else {
      // The shared store never held version-1 rows: they predate shared mode.
      this.db = null;
      this.store = store;
      this.migrated = 0;
    }
  }

  /**
   * Re-seals version-1 secrets (key derived from the audit signing seed) under the current key,
   * in one transaction: afterwards no row has version 1. A row that does not open with the old
   * key either is left as it is; using it gives the KEYRING error that says how to reset it.
   */
  private migrate(): number {
    const db = this.db!;
    const rows = db.prepare('SELECT principal_id, secret, pending FROM admin_totp').all() as Array<Pick<TotpRow, 'principal_id' | 'secret' | 'pending'>>;
    const old = rows.filter((r) => r.secret?.[0] === SEAL_V1 || r.pending?.[0] === SEAL_V1);
    if (old.length === 0 || !this.opts.legacyKey) return 0;
    const legacy = this.opts.legacyKey();
    let n = 0;
    db.transaction(() => {
      for (const r of old) {
        const next: Record<'secret' | 'pending', Buffer | null> = { secret: r.secret, pending: r.pending };
        for (const [slot, col] of [['active', 'secret'], ['pending', 'pending']] as const) {
          const blob = r[col];
          if (!blob || blob[0] !== SEAL_V1) continue;
          const plain = openV1(legacy, r.principal_id, slot, blob);
          if (!plain) continue;
          next[col] = this.seal(r.principal_id, slot, plain);
          plain.fill(0);
          n++;
        }
        db.prepare('UPDATE admin_totp SET secret = ?, pending = ? WHERE principal_id = ?').run(next.secret, next.pending, r.principal_id);
      }
    })();
    legacy.fill(0);
    return n;
  }

  now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private seal(principalId: string, slot: string, secret: Buffer): Buffer {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(`admin_totp v${SEAL_VERSION} ${principalId} ${slot}`));
    const ct = Buffer.concat([c.update(secret), c.final()]);
    return Buffer.concat([Buffer.from([SEAL_VERSION]), iv, ct, c.getAuthTag()]);
  }

  private unseal(principalId: string, slot: string, blob: Buffer): Buffer {
    try {
      if (blob[0] !== SEAL_VERSION || blob.length < 1 + 12 + 16 + 1) throw new Error('format');
      const d = createDecipheriv('aes-256-gcm', this.key, blob.subarray(1, 13));
      d.setAAD(Buffer.from(`admin_totp v${SEAL_VERSION} ${principalId} ${slot}`));
      d.setAuthTag(blob.subarray(blob.length - 16));
      return Buffer.concat([d.update(blob.subarray(13, blob.length - 16)), d.final()]);
    } catch {
      throw new CustodyError(
        'KEYRING',
        'This admin\'s second-factor secret cannot be decrypted with this keyring (it was altered, or the keyring was replaced). Reset it on the server with `custody admin totp reset <name> --data <dir>` and enroll again.',
      );
    }
  }

  async isEnrolled(principalId: string): Promise<boolean> {
    return (await this.store.get(principalId))?.secret != null;
  }

  async hasPending(principalId: string): Promise<boolean> {
    return (await this.store.get(principalId))?.pending != null;
  }

  /**
   * Starts an enrollment: a new secret, pending until confirmed with a code from it. An
   * enrolled admin's current secret stays active until then.
   */
  async begin(principalId: string, account: string): Promise<{ secret: string; otpauthUri: string }> {
    const secret = randomBytes(20);
    const sealed = this.seal(principalId, 'pending', secret);
    const b32 = base32Encode(secret);
    secret.fill(0);
    await this.store.setPending(principalId, sealed, new Date(this.now()).toISOString());
    return { secret: b32, otpauthUri: otpauthUri(account, b32) };
  }

  /** Makes the pending secret the active one when `code` is a current code of it. */
  async confirm(principalId: string, code: string | undefined): Promise<TotpCheck> {
    const r = await this.store.get(principalId);
    if (!r?.pending) return failure('no-pending-enrollment');
    const pre = await this.precheck(principalId, code);
    if (pre) return pre;
    const secret = this.unseal(principalId, 'pending', r.pending);
    let step: number | null;
    let active: Buffer;
    try {
      const t = this.totp.step();
      step = this.totp.match(secret, code!, [t - 1, t, t + 1]);
      if (step !== null) active = this.seal(principalId, 'active', secret);
    } finally {
      secret.fill(0);
    }
    if (step === null) return this.fail(principalId, 'wrong');
    const done = await this.store.activate(principalId, active!, new Date(this.now()).toISOString(), step, r.pending);
    if (!done) return this.fail(principalId, 'no-pending-enrollment'); // a concurrent confirm or a new enrollment won
    await this.store.clearFailures(principalId);
    return { ok: true, step };
  }

  /**
   * Checks a code for a sensitive action and, when it is good, uses it up: its step becomes the
   * admin's last used one (atomically in the store, so two requests with one code cannot both
   * pass — on one node or on two).
   */
  async check(principalId: string, code: string | undefined): Promise<TotpCheck> {
    const r = await this.store.get(principalId);
    if (!r?.secret) return failure('not-enrolled');
    const pre = await this.precheck(principalId, code);
    if (pre) return pre;
    const secret = this.unseal(principalId, 'active', r.secret);
    let step: number | null;
    let old: number | null = null;
    try {
      const t = this.totp.step();
      step = this.totp.match(secret, code!, [t - 1, t, t + 1]);
      if (step === null) old = this.totp.match(secret, code!, Array.from({ length: EXPIRED_LOOKBACK }, (_, i) => t - 2 - i));
    } finally {
      secret.fill(0);
    }
    if (step === null) return this.fail(principalId, old === null ? 'wrong' : 'expired');
    if (!(await this.store.useStep(principalId, step))) return this.fail(principalId, 'replayed');
    await this.store.clearFailures(principalId);
    return { ok: true, step };
  }

  /** Forgets an admin's second factor (offline reset; the admin enrolls again). */
  static reset(db: Database.Database, principalId: string): boolean {
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'admin_totp'").get();
    return has !== undefined && db.prepare('DELETE FROM admin_totp WHERE principal_id = ?').run(principalId).changes > 0;
  }

  private async precheck(principalId: string, code: string | undefined): Promise<TotpCheck | null> {
    if (code === undefined || code === '') return failure('missing');
    const f = await this.store.failures(principalId);
    if (f && f.count >= MAX_FAILURES && this.now() - f.last < LOCKOUT_MS) return failure('throttled');
    if (!/^[0-9]{6}$/.test(code)) return this.fail(principalId, 'malformed');
    return null;
  }

  private async fail(principalId: string, reason: TotpFailure): Promise<TotpCheck> {
    await this.store.addFailure(principalId, this.now(), LOCKOUT_MS);
    return failure(reason);
  }
}

function isSqlite(s: Database.Database | TotpStoreApi): s is Database.Database {
  return typeof (s as Database.Database).prepare === 'function' && typeof (s as Database.Database).exec === 'function';
}

// ---- one per vault ---------------------------------------------------------------------------

/** What AdminTotp needs of a vault (kept structural: auth/ does not depend on vault.ts). */
export interface TotpVault {
  db: { sqlite: Database.Database };
  keyring: { vaultKey(purpose: string): Buffer; forLog(log: string): { signingSeed: Buffer } };
}

/** The keyring's vault-level key that seals the admins' TOTP secrets (docs/ENCRYPTION.md). */
export const TOTP_KEY_PURPOSE = 'totp-secrets';

const stores = new WeakMap<object, AdminTotp>();
const clocks = new WeakMap<object, () => number>();

/**
 * The clock of a vault's second factor and approvals (TOTP steps, request expiry). Production
 * uses the system clock; a test may set a fake one before the first request.
 */
export function setAdminClock(vault: object, now: () => number): void {
  clocks.set(vault, now);
}

export function adminClock(vault: object): () => number {
  return () => (clocks.get(vault) ?? Date.now)();
}

/** The vault's admin TOTP store (created on first use). */
export function adminTotp(vault: TotpVault): AdminTotp {
  let s = stores.get(vault);
  if (!s) {
    const shared = sharedOf(vault);
    s = new AdminTotp(shared ? new PgTotpStore(shared.pool) : vault.db.sqlite, vault.keyring.vaultKey(TOTP_KEY_PURPOSE), {
      now: adminClock(vault),
      legacyKey: () => legacyTotpSealingKey(vault.keyring.forLog('audit').signingSeed),
    });
    stores.set(vault, s);
  }
  return s;
}
