/**
 * The SQLite files of a data directory at rest (storage/sqlite.ts, docs/ENCRYPTION.md):
 * - a data directory written before encryption (plaintext custody.db, dedupe.db, search.db, no
 *   vault keys in the keyring) is encrypted on its first open and keeps every row: principals,
 *   alarms, dedupe keys, the schema version; the search index is rebuilt;
 * - an encryption a crash interrupted is finished (complete copy) or undone (partial copy), and
 *   one that cannot run leaves the plaintext file as it was;
 * - a wrong or missing key is a KEYRING error that names the file, the key and what to do — for
 *   the server, the offline CLI and `custody verify --data` alike; a search index that does not
 *   open with its key is rebuilt instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import Database from 'better-sqlite3-multiple-ciphers';
import { openHarness } from '../lifecycle/harness.js';
import { bearer, type InProcVault } from '../support/inproc.js';
import { runCli } from '../support/server.js';
import { callRecord, ingestCloudTrail, SAMPLE_ACTOR, SAMPLE_IP } from '../alarms/detectors-support.js';
import { initVault, Vault } from '../../src/vault.js';
import { isCustodyError } from '../../src/errors.js';
import { encryptInPlace, fileState, openEncrypted, DATA_DIR_DBS, type SqliteKey } from '../../src/storage/sqlite.js';
import { prepareSearchFile } from '../../src/search/index.js';

const logger = pino({ level: 'silent' });
const DBS = ['custody.db', 'dedupe.db', 'search.db'] as const;
const tmp = (label: string): string => mkdtempSync(join(tmpdir(), `custody-sqlite-${label}-`));
const keyOf = (bytes: Buffer): SqliteKey => ({ bytes, source: 'the test key' });

function readKeyring(dataDir: string): { vault?: Record<string, string> } & Record<string, unknown> {
  return JSON.parse(readFileSync(join(dataDir, 'keyring.json'), 'utf8')) as { vault?: Record<string, string> };
}

/** Turns an encrypted database back into what an earlier version wrote: plaintext, WAL mode. */
function decrypt(path: string, key: Buffer): void {
  const db = new Database(path);
  db.pragma("cipher = 'aegis'");
  db.pragma("algorithm = 'aegis-256'");
  db.pragma(`key = "x'${key.toString('hex')}'"`);
  db.pragma('journal_mode = DELETE');
  db.pragma("rekey = ''");
  db.pragma('journal_mode = WAL');
  db.close();
  assert.equal(fileState(path), 'plaintext', `${path} is plaintext now`);
}

/** A plaintext SQLite file (as an earlier version wrote it) with `n` rows holding `word`. */
function plainDb(path: string, word: string, n = 300): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL); CREATE INDEX t_v ON t(v)');
  const put = db.prepare('INSERT INTO t (v) VALUES (?)');
  for (let i = 0; i < n; i++) put.run(`${word}-${i}`);
  db.prepare('DELETE FROM t WHERE id = ?').run(n); // the sequence stays ahead of max(id)
  db.pragma('user_version = 5');
  db.close();
}

function rowsOf(path: string, key: SqliteKey): { n: number; seq: number; version: number } {
  const db = openEncrypted(path, key, { what: 'a test database' });
  try {
    const n = (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
    const seq = (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 't'").get() as { seq: number }).seq;
    return { n, seq, version: db.pragma('user_version', { simple: true }) as number };
  } finally {
    db.close();
  }
}

test('a data directory from before encryption is encrypted on first open and keeps every row; its search index is rebuilt', { timeout: 60_000 }, async (t) => {
  // A vault with principals, records, dedupe keys, an alarm carrying record content and an index …
  const h = await openHarness({ search: true });
  t.after(() => rmSync(h.dataDir, { recursive: true, force: true }));
  const dataDir = h.dataDir;
  const created = await h.vault.createPrincipal({ name: 'kept-auditor', role: 'auditor', createdBy: 'test' });
  const stop = callRecord('cloudtrail.amazonaws.com', 'StopLogging', { name: 'management-events' });
  const quiet = callRecord('cloudtrail.amazonaws.com', 'DescribeTrails', {});
  assert.equal((await ingestCloudTrail(h as unknown as InProcVault, [stop, quiet])).stored, 2);
  await h.services.detectors!.idle();
  const alarmsBefore = (await h.app.inject({ method: 'GET', url: '/v1/alarms', headers: bearer(h.tokens.auditor) })).json<{ alarms: Array<{ rule: string }> }>().alarms;
  assert.ok(alarmsBefore.some((a) => a.rule === 'log-off.cloudtrail.StopLogging'));
  await h.search!.whenIndexed({ timeoutMs: 20_000 });
  await h.stop();

  // … turned into what an earlier version left: plaintext files, no vault keys in the keyring.
  const ring = readKeyring(dataDir);
  for (const d of Object.values(DATA_DIR_DBS)) decrypt(join(dataDir, d.file), Buffer.from(ring.vault![d.purpose]!, 'base64'));
  delete ring.vault;
  writeFileSync(join(dataDir, 'keyring.json'), JSON.stringify(ring, null, 2) + '\n', { mode: 0o600 });
  assert.ok(readFileSync(join(dataDir, 'custody.db')).includes(SAMPLE_IP), 'the plaintext custody.db shows the alarm’s address');

  const again = await openHarness({ dataDir, search: true });
  t.after(() => again.stop());
  for (const f of DBS) assert.equal(fileState(join(dataDir, f)), 'encrypted', `${f} is encrypted`);
  assert.deepEqual(readdirSync(dataDir).filter((f) => /\.encrypt(ing|ed)$/.test(f)), [], 'no copy is left behind');
  // The three page keys, and the keys sealing notifier and TOTP secrets in their rows.
  assert.deepEqual(Object.keys(readKeyring(dataDir).vault ?? {}).sort(), ['notifier-secrets', 'sqlite-custody', 'sqlite-dedupe', 'sqlite-search', 'totp-secrets']);
  for (const f of ['custody.db', 'custody.db-wal', 'dedupe.db']) {
    if (existsSync(join(dataDir, f))) assert.ok(!readFileSync(join(dataDir, f)).includes(SAMPLE_IP), `${f} no longer shows the address`);
  }

  // Every row is still there: the principal authenticates, the alarm is listed, the records are known duplicates.
  const who = await again.app.inject({ method: 'GET', url: '/v1/whoami', headers: bearer(created.token) });
  assert.equal(who.statusCode, 200, who.body);
  const alarmsAfter = (await again.app.inject({ method: 'GET', url: '/v1/alarms', headers: bearer(again.tokens.auditor) })).json<{ alarms: Array<{ rule: string; details: Record<string, unknown> }> }>().alarms;
  assert.deepEqual(alarmsAfter.map((a) => a.rule), alarmsBefore.map((a) => a.rule));
  assert.ok(JSON.stringify(alarmsAfter).includes(SAMPLE_ACTOR));
  const dup = await ingestCloudTrail(again as unknown as InProcVault, [stop, quiet]);
  assert.deepEqual([dup.stored, dup.duplicates], [0, 2], 'the dedupe keys survived');
  // The index was rebuilt from the logs (encrypted) and answers.
  await again.search!.whenIndexed({ timeoutMs: 20_000 });
  const s = await again.app.inject({ method: 'GET', url: `/v1/search?q=${encodeURIComponent(`actor:${SAMPLE_ACTOR}`)}`, headers: bearer(again.tokens.auditor) });
  assert.equal(s.statusCode, 200, s.body);
  assert.ok(s.json<{ total: number }>().total >= 2);
});

test('an encryption a crash interrupted is finished (complete copy) or undone (partial copy) on the next open', () => {
  const dir = tmp('crash');
  try {
    const key = keyOf(randomBytes(32));
    // Complete copy: the plaintext file and <file>.encrypted, as left between steps 3 and 4.
    const p = join(dir, 'a.db');
    plainDb(p, 'alpha-word');
    copyFileSync(p, join(dir, 'copy.db'));
    encryptInPlace(join(dir, 'copy.db'), key, 'a test database');
    renameSync(join(dir, 'copy.db'), `${p}.encrypted`);
    assert.equal(fileState(p), 'plaintext');
    // A reader (custody verify --data) reads the complete copy and changes nothing.
    const ro = openEncrypted(p, key, { what: 'a test database', readonly: true });
    assert.equal((ro.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 299);
    ro.close();
    assert.ok(existsSync(`${p}.encrypted`) && fileState(p) === 'plaintext');
    assert.deepEqual(rowsOf(p, key), { n: 299, seq: 300, version: 5 });
    assert.equal(fileState(p), 'encrypted');
    assert.ok(!existsSync(`${p}.encrypted`));
    assert.ok(!readFileSync(p).includes('alpha-word'));

    // Partial copy: <file>.encrypting (with a journal) is thrown away and the file encrypted anew.
    const q = join(dir, 'b.db');
    plainDb(q, 'beta-word');
    writeFileSync(`${q}.encrypting`, randomBytes(8192));
    writeFileSync(`${q}.encrypting-journal`, randomBytes(512));
    assert.deepEqual(rowsOf(q, key), { n: 299, seq: 300, version: 5 });
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('b.db.')), []);
    for (const f of readdirSync(dir)) assert.ok(!readFileSync(join(dir, f)).includes('beta-word'), `${f} holds no plaintext row`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an encryption that cannot run leaves the plaintext file as it was', { timeout: 30_000 }, () => {
  const dir = tmp('busy');
  try {
    const p = join(dir, 'c.db');
    plainDb(p, 'gamma-word');
    // Another process keeps a read transaction open: the WAL cannot be checkpointed.
    const other = new Database(p);
    other.exec('BEGIN');
    other.prepare('SELECT count(*) FROM t').get();
    other.prepare('INSERT INTO t (v) VALUES (?)').run('gamma-word-late'); // a write only in the WAL
    try {
      const reader = new Database(p, { readonly: true });
      reader.exec('BEGIN');
      reader.prepare('SELECT count(*) FROM t').get();
      other.exec('COMMIT');
      assert.throws(
        () => openEncrypted(p, keyOf(randomBytes(32)), { what: 'a test database' }),
        (e: unknown) => isCustodyError(e, 'CONFIG') && /another process has it open/.test(e.message) && e.message.includes(p),
      );
      reader.exec('COMMIT');
      reader.close();
    } finally {
      other.close();
    }
    assert.equal(fileState(p), 'plaintext');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.encrypt')), [], 'no copy is left');
    const db = new Database(p, { readonly: true });
    assert.equal((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 300);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a wrong or missing key is a KEYRING error naming the file, the key and what to do', { timeout: 60_000 }, async () => {
  const dataDir = tmp('keys');
  try {
    initVault(dataDir, {});
    const good = readFileSync(join(dataDir, 'keyring.json'), 'utf8');
    const ring = JSON.parse(good) as { vault: Record<string, string> };
    assert.deepEqual(Object.keys(ring.vault).sort(), ['sqlite-custody'], 'init keys custody.db');
    const v0 = await Vault.open(dataDir, { logger });
    await v0.close();
    assert.deepEqual(Object.keys(readKeyring(dataDir).vault!).sort(), ['sqlite-custody', 'sqlite-dedupe']);
    const withKeys = readFileSync(join(dataDir, 'keyring.json'), 'utf8');

    const expectKeyring = async (what: RegExp): Promise<void> => {
      await assert.rejects(Vault.open(dataDir, { logger }), (e: unknown) => {
        assert.ok(isCustodyError(e, 'KEYRING'), String(e));
        assert.match(e.message, what);
        assert.match(e.message, /keyring\.json/);
        assert.match(e.message, /Restore the keyring\.json/);
        return true;
      });
    };
    // Another key for custody.db.
    const wrong = JSON.parse(withKeys) as { vault: Record<string, string> };
    wrong.vault['sqlite-custody'] = randomBytes(32).toString('base64');
    writeFileSync(join(dataDir, 'keyring.json'), JSON.stringify(wrong));
    await expectKeyring(/custody\.db does not open with the key "sqlite-custody"/);
    // Another key for dedupe.db.
    const wrongDedupe = JSON.parse(withKeys) as { vault: Record<string, string> };
    wrongDedupe.vault['sqlite-dedupe'] = randomBytes(32).toString('base64');
    writeFileSync(join(dataDir, 'keyring.json'), JSON.stringify(wrongDedupe));
    await expectKeyring(/dedupe\.db does not open with the key "sqlite-dedupe"/);
    // No key at all (a keyring from before the databases were encrypted): refused, and no new key is written.
    const missing = JSON.parse(withKeys) as { vault?: Record<string, string> };
    delete missing.vault;
    const missingText = JSON.stringify(missing);
    writeFileSync(join(dataDir, 'keyring.json'), missingText);
    await expectKeyring(/custody\.db is encrypted, but the keyring .* holds no key for it \(sqlite-custody\)/);
    assert.equal(readFileSync(join(dataDir, 'keyring.json'), 'utf8'), missingText, 'the keyring is left as it was');

    // The offline CLI and `custody verify --data` say the same and exit 2.
    writeFileSync(join(dataDir, 'keyring.json'), JSON.stringify(wrong));
    for (const args of [['token', 'list', '--data', dataDir], ['verify', '--data', dataDir, '--json']]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout + r.stderr, /KEYRING/);
      assert.match(r.stdout + r.stderr, /custody\.db does not open with the key \\?"sqlite-custody\\?" of the keyring/);
    }

    // A search index under another key is rebuilt, never refused: it is derived from the logs.
    writeFileSync(join(dataDir, 'keyring.json'), withKeys);
    const path = join(dataDir, 'search.db');
    const first = prepareSearchFile(path, 'v1', new Map(), keyOf(randomBytes(32)));
    first.db.close();
    const other = prepareSearchFile(path, 'v1', new Map(), keyOf(randomBytes(32)));
    other.db.close();
    assert.match(other.created ?? '', /rebuilt: it does not open with the key/);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('connections use the AEGIS-256 cipher, keep temporary data in memory; a plaintext or damaged search index is rebuilt, not converted', () => {
  const dir = tmp('pragmas');
  try {
    const key = keyOf(randomBytes(32));
    const db = openEncrypted(join(dir, 'x.db'), key, { what: 'a test database' });
    assert.equal(db.pragma('cipher', { simple: true }), 'aegis');
    assert.equal(db.pragma('algorithm', { simple: true }), 'aegis-256');
    assert.equal(db.pragma('temp_store', { simple: true }), 2, 'temp_store = MEMORY');
    db.close();
    plainDb(join(dir, 'search.db'), 'delta-word');
    assert.throws(() => openEncrypted(join(dir, 'search.db'), key, { what: 'the search index', plaintext: 'refuse' }), (e: unknown) => isCustodyError(e, 'CONFIG') && /is not encrypted/.test(e.message));
    assert.equal(fileState(join(dir, 'search.db')), 'plaintext');
    const prep = prepareSearchFile(join(dir, 'search.db'), 'v1', new Map(), key);
    prep.db.close();
    assert.match(prep.created ?? '', /rebuilt: it was not encrypted/);
    assert.equal(fileState(join(dir, 'search.db')), 'encrypted');
    // A damaged one is rebuilt too (the index is derived from the logs).
    writeFileSync(join(dir, 'search.db'), randomBytes(16384));
    const again = prepareSearchFile(join(dir, 'search.db'), 'v1', new Map(), key);
    again.db.close();
    assert.match(again.created ?? '', /^rebuilt: /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
