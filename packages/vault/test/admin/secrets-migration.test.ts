/**
 * Vault-level keys for the admins' TOTP secrets and the notifiers' secrets (issue 6): a
 * custody.db written by an older version — rows sealed under keys derived from the audit log's
 * signing seed, produced here with that old derivation written out independently of src/ — is
 * migrated when the vault opens: TOTP codes still verify, webhooks are still signed with the
 * stored secret, no row keeps the old version, and the new rows open with the keyring's vault
 * keys "totp-secrets" / "notifier-secrets" (checked here with plain AES-GCM). A row that does
 * not open with the old key either is left alone and refused with KEYRING, never guessed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { initVault, Vault } from '../../src/vault.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { VaultDb } from '../../src/storage/db.js';
import { buildServer } from '../../src/server/index.js';
import { startServices, type Services } from '../../src/services.js';
import { bearer, auditRecords, type InProcVault } from '../support/inproc.js';
import { refHotp, useFakeClock, step } from '../support/totp.js';
import { startReceiver, verifyWebhook, eventually, FAST } from '../alarms/notify-support.js';

// ---- the old (version 1) sealing, as older Custody versions wrote it ------------------------

function oldTotpKey(auditSeed: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', auditSeed, Buffer.from('custody'), Buffer.from('custody admin totp v1'), 32));
}

/** [1] ‖ iv ‖ ciphertext ‖ tag, AAD "admin_totp <principal> <slot>". */
function oldTotpSeal(key: Buffer, principal: string, slot: string, secret: Buffer): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(`admin_totp ${principal} ${slot}`));
  const ct = Buffer.concat([c.update(secret), c.final()]);
  return Buffer.concat([Buffer.from([1]), iv, ct, c.getAuthTag()]);
}

function oldNotifierKey(auditSeed: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', auditSeed, Buffer.alloc(0), 'custody notifier secrets v1', 32));
}

/** "v1:" ‖ base64(iv ‖ ciphertext ‖ tag), AAD the notifier id. */
function oldNotifierSeal(key: Buffer, id: string, secrets: Record<string, string>): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(id));
  const ct = Buffer.concat([c.update(JSON.stringify(secrets), 'utf8'), c.final()]);
  return 'v1:' + Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64');
}

function oldFingerprint(key: Buffer, config: unknown): string {
  return createHmac('sha256', key).update('fingerprint\n').update(JSON.stringify(config)).digest('base64url');
}

/** AES-256-GCM open, or null. */
function gcmOpen(key: Buffer, iv: Buffer, ct: Buffer, tag: Buffer, aad: Buffer): Buffer | null {
  try {
    const d = createDecipheriv('aes-256-gcm', key, iv);
    d.setAAD(aad);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(ct), d.final()]);
  } catch {
    return null;
  }
}

// ---- a vault on an existing data directory ---------------------------------------------------

interface Prepared {
  dataDir: string;
  tokens: { admin: string; writer: string; auditor: string };
  adminId: string;
  auditSeed: Buffer;
}

function prepare(): Prepared {
  const dataDir = mkdtempSync(join(tmpdir(), 'custody-migrate-'));
  const init = initVault(dataDir);
  const tok = (role: string): string => init.tokens.find((t) => t.role === role)!.token;
  const keyring = Keyring.load(join(dataDir, 'keyring.json'));
  const db = VaultDb.inDataDir(dataDir, keyring);
  const adminId = db.getPrincipal('initial-admin')!.id;
  db.close();
  return { dataDir, tokens: { admin: tok('admin'), writer: tok('writer'), auditor: tok('auditor') }, adminId, auditSeed: keyring.forLog('audit').signingSeed };
}

/** Writes rows into custody.db the way an older version left them (the vault is not running). */
function withDb(dataDir: string, fn: (db: VaultDb) => void): void {
  const db = VaultDb.inDataDir(dataDir, Keyring.load(join(dataDir, 'keyring.json')));
  try {
    fn(db);
  } finally {
    db.close();
  }
}

async function open(p: Prepared, clockAt?: number): Promise<InProcVault & { services: Services; app: FastifyInstance }> {
  const logger = pino({ level: 'silent' });
  const vault = await Vault.open(p.dataDir, { logger, checkpointIntervalMs: 20 });
  if (clockAt !== undefined) useFakeClock(vault, clockAt);
  const services = await startServices(vault, { logger, timing: FAST });
  const app = await buildServer({ vault, logger, services });
  await app.ready();
  return {
    dataDir: p.dataDir,
    vault,
    app,
    services,
    tokens: p.tokens,
    async close() {
      await app.close();
      await services.close();
      await vault.close();
    },
  };
}

const ADMIN_TOTP_TABLE = `CREATE TABLE IF NOT EXISTS admin_totp (
  principal_id TEXT PRIMARY KEY, secret BLOB, enrolled_at TEXT, pending BLOB, pending_at TEXT, last_step INTEGER)`;

// ---- TOTP ------------------------------------------------------------------------------------

test('TOTP secrets sealed by an older version are re-sealed under the vault key "totp-secrets" and still verify codes', async (t) => {
  const p = prepare();
  t.after(() => rmSync(p.dataDir, { recursive: true, force: true }));
  const secret = randomBytes(20);
  const pendingSecret = randomBytes(20);
  const legacy = oldTotpKey(p.auditSeed);
  const start = Date.now();
  withDb(p.dataDir, (db) => {
    db.sqlite.exec(ADMIN_TOTP_TABLE);
    const ins = db.sqlite.prepare('INSERT INTO admin_totp (principal_id, secret, enrolled_at, pending, pending_at, last_step) VALUES (?, ?, ?, ?, ?, ?)');
    ins.run(p.adminId, oldTotpSeal(legacy, p.adminId, 'active', secret), new Date(start).toISOString(), null, null, step(start) - 5);
    ins.run('p_pending', null, null, oldTotpSeal(legacy, 'p_pending', 'pending', pendingSecret), new Date(start).toISOString(), null);
    // Hostile: a row sealed under some other key (altered, or from another vault).
    ins.run('p_foreign', oldTotpSeal(randomBytes(32), 'p_foreign', 'active', randomBytes(20)), new Date(start).toISOString(), null, null, null);
  });
  assert.equal(Keyring.load(join(p.dataDir, 'keyring.json')).hasVaultKey('totp-secrets'), false, 'no vault key before the migration');

  let clock = start;
  let v = await open(p, clock);
  try {
    // A sensitive action with a code from the migrated secret (the test's own HOTP).
    const r = await v.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...bearer(p.tokens.admin), 'content-type': 'application/json', 'x-custody-totp': refHotp(secret, step(clock)) }, payload: { name: 'w-after-migration', role: 'writer' } });
    assert.equal(r.statusCode, 201, r.body);
    // A wrong code is still refused (the check is real, not skipped for migrated rows).
    const bad = await v.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...bearer(p.tokens.admin), 'content-type': 'application/json', 'x-custody-totp': refHotp(randomBytes(20), step(clock) + 1) }, payload: { name: 'w-bad', role: 'writer' } });
    assert.equal(bad.statusCode, 401, bad.body);
    assert.equal(bad.json<{ error: { code: string } }>().error.code, 'TOTP_INVALID');
  } finally {
    await v.close();
  }

  const keyring = Keyring.load(join(p.dataDir, 'keyring.json'));
  assert.ok(keyring.hasVaultKey('totp-secrets'), 'the vault key was created');
  const vaultKey = keyring.vaultKey('totp-secrets');
  withDb(p.dataDir, (db) => {
    const rows = db.sqlite.prepare('SELECT principal_id, secret, pending FROM admin_totp ORDER BY principal_id').all() as Array<{ principal_id: string; secret: Buffer | null; pending: Buffer | null }>;
    const byId = new Map(rows.map((r) => [r.principal_id, r]));
    const admin = byId.get(p.adminId)!;
    assert.equal(admin.secret![0], 2, 'the admin row has version 2');
    assert.equal(byId.get('p_pending')!.pending![0], 2, 'a pending enrollment is migrated too');
    // Opened independently with the keyring's vault key: the same secrets.
    const openV2 = (b: Buffer, id: string, slot: string): Buffer | null => gcmOpen(vaultKey, b.subarray(1, 13), b.subarray(13, b.length - 16), b.subarray(b.length - 16), Buffer.from(`admin_totp v2 ${id} ${slot}`));
    assert.deepEqual(openV2(admin.secret!, p.adminId, 'active'), secret);
    assert.deepEqual(openV2(byId.get('p_pending')!.pending!, 'p_pending', 'pending'), pendingSecret);
    assert.equal(gcmOpen(legacy, admin.secret!.subarray(1, 13), admin.secret!.subarray(13, admin.secret!.length - 16), admin.secret!.subarray(admin.secret!.length - 16), Buffer.from(`admin_totp v2 ${p.adminId} active`)), null, 'the old key no longer opens it');
    // Only the row no key opens keeps version 1.
    assert.deepEqual(rows.filter((r) => r.secret?.[0] === 1 || r.pending?.[0] === 1).map((r) => r.principal_id), ['p_foreign']);
  });

  // After a restart (nothing left to migrate) the next code still works.
  clock += 30_000;
  v = await open(p, clock);
  try {
    const r = await v.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...bearer(p.tokens.admin), 'content-type': 'application/json', 'x-custody-totp': refHotp(secret, step(clock)) }, payload: { name: 'w-after-restart', role: 'writer' } });
    assert.equal(r.statusCode, 201, r.body);
  } finally {
    await v.close();
  }
});

// ---- notifiers -------------------------------------------------------------------------------

test('notifier secrets sealed by an older version are re-sealed under "notifier-secrets"; webhooks are still signed with them', async (t) => {
  const p = prepare();
  const rx = await startReceiver();
  const fileRx = await startReceiver();
  t.after(async () => {
    await rx.close();
    await fileRx.close();
    rmSync(p.dataDir, { recursive: true, force: true });
  });
  const SECRET = 'whsec-migrated-0123456789';
  const FILE_SECRET = 'whsec-file-notifier-0123456789';
  const legacy = oldNotifierKey(p.auditSeed);
  // An API notifier, and a file notifier without an id of its own (its id came from the fingerprint).
  const apiConfig = { type: 'webhook', url: rx.url, secret: SECRET, kinds: ['tamper'] };
  const fileConfig = { type: 'webhook', url: fileRx.url, secret: FILE_SECRET, kinds: ['tamper'] };
  // As the old version stored it: the parsed configuration (defaults filled in, the parser's key order).
  const fileParsed = { type: 'webhook', minSeverity: 'low', kinds: ['tamper'], url: fileRx.url, secret: FILE_SECRET };
  const fileFp = oldFingerprint(legacy, fileParsed);
  const fileId = `ntf_file-${fileFp.slice(0, 12)}`;
  writeFileSync(join(p.dataDir, 'notifiers.json'), JSON.stringify([fileConfig]), { mode: 0o600 });
  withDb(p.dataDir, (db) => {
    db.sqlite.exec(`CREATE TABLE IF NOT EXISTS notifier_configs (
      id TEXT PRIMARY KEY, type TEXT NOT NULL, source TEXT NOT NULL CHECK (source IN ('api','file')),
      config TEXT NOT NULL, secrets TEXT NOT NULL, fingerprint TEXT NOT NULL,
      created_at TEXT NOT NULL, created_by TEXT NOT NULL)`);
    const ins = db.sqlite.prepare('INSERT INTO notifier_configs (id, type, source, config, secrets, fingerprint, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    const { secret: _s, ...apiPlain } = apiConfig;
    ins.run('ntf_old', 'webhook', 'api', JSON.stringify(apiPlain), oldNotifierSeal(legacy, 'ntf_old', { secret: SECRET }), oldFingerprint(legacy, apiConfig), new Date().toISOString(), 'initial-admin');
    const { secret: _f, ...filePlain } = fileParsed;
    ins.run(fileId, 'webhook', 'file', JSON.stringify(filePlain), oldNotifierSeal(legacy, fileId, { secret: FILE_SECRET }), fileFp, new Date().toISOString(), 'notifiers.json');
    // Hostile: sealed under another key.
    ins.run('ntf_foreign', 'webhook', 'api', JSON.stringify({ type: 'webhook', url: rx.url + '/foreign', kinds: ['tamper'] }), oldNotifierSeal(randomBytes(32), 'ntf_foreign', { secret: 'x'.repeat(20) }), 'fp', new Date().toISOString(), 'initial-admin');
  });

  const v = await open(p);
  let newFileId: string;
  try {
    // A tamper attempt raises an alarm; both migrated webhooks deliver it, signed with their secrets.
    const del = await v.app.inject({ method: 'DELETE', url: '/v1/logs/local/entries/0', headers: bearer(p.tokens.writer) });
    assert.equal(del.statusCode, 405);
    await eventually('the API notifier delivery', () => rx.got.some((g) => g.url === '/hook'));
    await eventually('the file notifier delivery', () => fileRx.got.length >= 1);
    const got = rx.got.find((g) => g.url === '/hook')!;
    assert.ok(verifyWebhook(SECRET, got.headers, got.raw), 'signed with the migrated secret');
    assert.ok(!verifyWebhook('whsec-some-other-secret', got.headers, got.raw), 'the check can fail');
    assert.ok(verifyWebhook(FILE_SECRET, fileRx.got[0]!.headers, fileRx.got[0]!.raw));
    assert.equal(rx.got.filter((g) => g.url.endsWith('/foreign')).length, 0, 'the notifier whose secrets open with no key delivers nothing');

    const audit = await auditRecords(v);
    const migrated = audit.filter((e) => e['type'] === 'notifier.secrets.migrated');
    assert.equal(migrated.length, 1, 'the migration is audited once');
    const m = migrated[0]! as { resealed: string[]; renamed: Array<{ from: string; to: string }>; unreadable: string[] };
    assert.equal(m.renamed.length, 1);
    assert.equal(m.renamed[0]!.from, fileId);
    newFileId = m.renamed[0]!.to;
    assert.deepEqual([...m.resealed].sort(), ['ntf_old', newFileId].sort());
    assert.deepEqual(m.unreadable, ['ntf_foreign']);
    assert.ok(!JSON.stringify(migrated).includes(SECRET) && !JSON.stringify(migrated).includes(FILE_SECRET), 'no secret in the audit log');
    // The file is unchanged, so loading it records no change.
    assert.equal(audit.filter((e) => e['type'] === 'notifier.file.loaded').length, 0, JSON.stringify(audit.filter((e) => e['type'] === 'notifier.file.loaded')));
    const list = await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(p.tokens.admin) });
    assert.equal(list.statusCode, 200, list.body);
    assert.ok(list.body.includes(newFileId), 'the file notifier is listed under its new id');
  } finally {
    await v.close();
  }

  const keyring = Keyring.load(join(p.dataDir, 'keyring.json'));
  assert.ok(keyring.hasVaultKey('notifier-secrets'));
  const sealKey = Buffer.from(hkdfSync('sha256', keyring.vaultKey('notifier-secrets'), Buffer.alloc(0), 'custody notifier secrets v2 seal', 32));
  withDb(p.dataDir, (db) => {
    const rows = db.sqlite.prepare('SELECT id, secrets FROM notifier_configs ORDER BY id').all() as Array<{ id: string; secrets: string }>;
    assert.deepEqual(rows.filter((r) => r.secrets.startsWith('v1:')).map((r) => r.id), ['ntf_foreign'], 'only the row no key opens keeps version 1');
    const old = rows.find((r) => r.id === 'ntf_old')!;
    assert.ok(old.secrets.startsWith('v2:'));
    const b = Buffer.from(old.secrets.slice(3), 'base64');
    const plain = gcmOpen(sealKey, b.subarray(0, 12), b.subarray(12, b.length - 16), b.subarray(b.length - 16), Buffer.from('ntf_old'));
    assert.deepEqual(JSON.parse(plain!.toString('utf8')), { secret: SECRET }, 'opens with the vault key "notifier-secrets"');
    assert.ok(rows.some((r) => r.id === newFileId && r.secrets.startsWith('v2:')));
  });

  // A second start migrates nothing and audits nothing new about it.
  const again = await open(p);
  try {
    const audit = await auditRecords(again);
    assert.equal(audit.filter((e) => e['type'] === 'notifier.secrets.migrated').length, 1);
    assert.equal(audit.filter((e) => e['type'] === 'notifier.file.loaded').length, 0);
  } finally {
    await again.close();
  }
});
