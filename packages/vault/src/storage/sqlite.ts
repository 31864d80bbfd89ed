/**
 * Every SQLite file of a data directory is opened here, encrypted page by page with SQLite3
 * Multiple Ciphers (better-sqlite3-multiple-ciphers, the better-sqlite3 12 API): cipher
 * AEGIS-256 ("aegis", authenticated: a changed page is an error, never silently different
 * data; AES instructions where the CPU has them), a fresh random nonce per page write, a raw
 * 32-byte key from the keyring (no passphrase KDF), WAL and rollback journals encrypted like
 * the file, temporary tables and sorts kept in memory. docs/ENCRYPTION.md says what is encrypted
 * where, with which key, and why this cipher (measured against ChaCha20-Poly1305).
 *
 * A plaintext file written by an earlier version is encrypted on its first read-write open:
 * an encrypted copy is filled beside it and swapped in only once complete and synced, so a crash
 * at any point leaves either the old file or the new one (see `encryptInPlace`).
 */
import Database from 'better-sqlite3-multiple-ciphers';
import type BetterSqlite3 from 'better-sqlite3';
import { closeSync, existsSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CustodyError } from '../errors.js';
import { fsyncDirSync } from './atomic.js';

/**
 * The connection type the rest of the vault uses. better-sqlite3-multiple-ciphers is the
 * better-sqlite3 12 API plus key()/rekey(), so its connections are typed as better-sqlite3's.
 */
export type SqliteDatabase = BetterSqlite3.Database;

/** The page cipher: AEGIS-256, a 32-byte random nonce and a 32-byte tag per page (64 reserved bytes). */
export const SQLITE_CIPHER = 'aegis';
export const SQLITE_CIPHER_ALGORITHM = 'aegis-256';

/** The first 16 bytes of every plaintext SQLite file. An encrypted file starts with its random salt instead. */
const PLAINTEXT_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

export interface SqliteKey {
  /** 32 random bytes. */
  bytes: Uint8Array;
  /** Where the key lives, for error messages: `key "sqlite-custody" of the keyring /data/keyring.json`. */
  source: string;
}

/** The databases of a data directory and the keyring purpose of each one's key. */
export const DATA_DIR_DBS = {
  custody: { file: 'custody.db', purpose: 'sqlite-custody', what: 'the vault database' },
  dedupe: { file: 'dedupe.db', purpose: 'sqlite-dedupe', what: 'the dedupe database' },
  search: { file: 'search.db', purpose: 'sqlite-search', what: 'the search index' },
} as const;
export type DataDirDb = keyof typeof DATA_DIR_DBS;

/** What the keyring offers for this (crypto/keyring.ts Keyring). */
export interface VaultKeySource {
  readonly path: string;
  hasVaultKey(purpose: string): boolean;
  vaultKey(purpose: string): Buffer;
}

/**
 * The key of one of a data directory's databases. Created in the keyring on first use — but
 * never for a file that is already encrypted: that file was written under a key this keyring
 * does not hold, and a new key would not open it.
 */
export function dataDirDbKey(keyring: VaultKeySource, dataDir: string, which: DataDirDb): SqliteKey {
  const d = DATA_DIR_DBS[which];
  const path = join(dataDir, d.file);
  const source = `key "${d.purpose}" of the keyring ${keyring.path}`;
  if (!keyring.hasVaultKey(d.purpose) && which !== 'search' && fileState(path) === 'encrypted') {
    throw new CustodyError(
      'KEYRING',
      `${cap(d.what)} ${path} is encrypted, but the keyring ${keyring.path} holds no key for it (${d.purpose}): this keyring does not belong to this data directory. Restore the keyring.json that was backed up with it.`,
    );
  }
  return { bytes: keyring.vaultKey(d.purpose), source };
}

const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** "missing" (absent or empty), "plaintext" (an unencrypted SQLite file) or "encrypted". */
export function fileState(path: string): 'missing' | 'plaintext' | 'encrypted' {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw e;
  }
  try {
    const head = Buffer.alloc(16);
    const n = readSync(fd, head, 0, 16, 0);
    if (n === 0) return 'missing';
    return n === 16 && head.equals(PLAINTEXT_HEADER) ? 'plaintext' : 'encrypted';
  } finally {
    closeSync(fd);
  }
}

export interface OpenEncryptedOptions {
  /** What the file is, for messages: "the vault database". */
  what: string;
  readonly?: boolean;
  fileMustExist?: boolean;
  /**
   * A plaintext file opened read-write: "encrypt" it in place (the default), or "refuse" it —
   * for a file the caller rebuilds instead (the search index).
   */
  plaintext?: 'encrypt' | 'refuse';
}

/**
 * Keys a fresh connection: cipher and its variant first (pinned, so a later library default
 * cannot change what opens the files), then the raw key (x'…' skips the passphrase KDF).
 */
function applyKey(db: Database.Database, key: SqliteKey): void {
  const bytes = Buffer.from(key.bytes);
  if (bytes.length !== 32) throw new CustodyError('KEYRING', `The ${key.source} is not 32 bytes: restore the keyring from your backup.`);
  db.pragma(`cipher = '${SQLITE_CIPHER}'`);
  db.pragma(`algorithm = '${SQLITE_CIPHER_ALGORITHM}'`);
  db.pragma(`key = "x'${bytes.toString('hex')}'"`);
}

/**
 * Opens an SQLite file encrypted under `key` (creating it, encrypted, unless it must exist).
 * A plaintext file from an earlier version is first encrypted in place; opened read-only, it
 * is read as it is (its next read-write open encrypts it). A key that does not open the file
 * is a KEYRING error naming the file and the key. `key` null opens a plaintext file as it is:
 * only for files that hold no vault's data (a benchmark's baseline).
 */
export function openEncrypted(path: string, key: SqliteKey | null, opts: OpenEncryptedOptions): SqliteDatabase {
  if (key && !opts.readonly) finishEncryption(path);
  // A reader does not finish an interrupted encryption; it reads the complete copy if there is one.
  if (key && opts.readonly && existsSync(doneName(path))) path = doneName(path);
  let state = fileState(path);
  if (key && state === 'plaintext' && !opts.readonly) {
    if (opts.plaintext === 'refuse') throw new CustodyError('CONFIG', `${cap(opts.what)} ${path} is not encrypted (an earlier version wrote it): remove it, and it is built again.`);
    encryptInPlace(path, key, opts.what);
    state = 'encrypted';
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.fileMustExist ?? opts.readonly ?? false });
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot open ${opts.what} ${path}: ${(e as Error).message}.`);
  }
  try {
    if (key && state !== 'plaintext') applyKey(db, key);
    // Reading the schema is what tries the key.
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    // Temporary tables, sorts and indexes under construction stay in memory: SQLite's temporary
    // files would hold them unencrypted.
    db.pragma('temp_store = MEMORY');
  } catch (e) {
    db.close();
    if (e instanceof CustodyError) throw e;
    if ((e as { code?: string }).code === 'SQLITE_NOTADB') {
      if (!key) throw new CustodyError('KEYRING', `${cap(opts.what)} ${path} is encrypted or is not an SQLite file; it opens only with its key from the keyring.`);
      throw new CustodyError(
        'KEYRING',
        `${cap(opts.what)} ${path} does not open with the ${key.source}: the keyring does not belong to this data directory, or the file is damaged. Restore the keyring.json that was backed up with this data directory.`,
      );
    }
    throw new CustodyError('CONFIG', `Cannot open ${opts.what} ${path}: ${(e as Error).message}.`);
  }
  return db as unknown as SqliteDatabase;
}

// ---- encrypting a plaintext file -----------------------------------------------------------

const partName = (path: string): string => `${path}.encrypting`;
const doneName = (path: string): string => `${path}.encrypted`;

function removeWithSidecars(path: string): void {
  for (const p of [path, `${path}-journal`, `${path}-wal`, `${path}-shm`]) rmSync(p, { force: true });
}

/** Overwrites a file's bytes with zeros and syncs them (best effort: see docs/ENCRYPTION.md). */
function scrub(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch {
    return;
  }
  try {
    const size = statSync(path).size;
    const zeros = Buffer.alloc(Math.min(size, 1 << 20));
    for (let off = 0; off < size; ) off += writeSync(fd, zeros, 0, Math.min(zeros.length, size - off), off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Finishes or undoes an encryption a crash interrupted: a complete encrypted copy
 * (`<file>.encrypted`, synced before it got that name) replaces the file; a partial one
 * (`<file>.encrypting`) is removed.
 */
function finishEncryption(path: string): void {
  removeWithSidecars(partName(path));
  const done = doneName(path);
  if (!existsSync(done)) return;
  if (fileState(path) === 'plaintext') scrub(path);
  // The plaintext file's WAL was checkpointed into it before the copy was made.
  for (const p of [`${path}-journal`, `${path}-wal`, `${path}-shm`]) rmSync(p, { force: true });
  renameSync(done, path);
  fsyncDirSync(dirname(path));
}

/**
 * Encrypts a plaintext SQLite file (from a version before encryption) without ever leaving a
 * half-encrypted one: (1) its WAL is checkpointed into it; (2) a new file keyed from its first
 * page, `<file>.encrypting`, gets every table, row, index and the user_version, read from the
 * plaintext file attached to it, and is checked; (3) it is synced and renamed
 * `<file>.encrypted`; (4) the plaintext file is overwritten with zeros and the encrypted copy
 * renamed over it. `finishEncryption` completes (4) after a crash, or discards a partial (2).
 * Unlike PRAGMA rekey, this never builds the whole database in memory or in a temporary file.
 */
export function encryptInPlace(path: string, key: SqliteKey, what: string): void {
  const fail = (e: unknown): CustodyError =>
    e instanceof CustodyError ? e : new CustodyError('CONFIG', `Could not encrypt ${what} ${path} (written unencrypted by an earlier version): ${(e as Error).message}. The file is unchanged; free disk space or fix permissions, then start again.`);
  try {
    const plain = new Database(path, { fileMustExist: true });
    try {
      plain.pragma('busy_timeout = 5000');
      const [cp] = plain.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
      if (cp && cp.busy !== 0) throw new CustodyError('CONFIG', `Cannot encrypt ${what} ${path}: another process has it open. Stop it (custody serve, or another custody command on this directory) and start again.`);
    } finally {
      plain.close();
    }
  } catch (e) {
    throw fail(e);
  }
  const part = partName(path);
  removeWithSidecars(part);
  try {
    const enc = new Database(part);
    try {
      applyKey(enc, key);
      // The copy is thrown away if anything goes wrong, so it needs no journal of its own.
      enc.pragma('journal_mode = OFF');
      enc.pragma('synchronous = OFF');
      enc.pragma('temp_store = MEMORY');
      enc.pragma('foreign_keys = OFF');
      enc.prepare("ATTACH DATABASE ? AS plain KEY ''").run(path);
      const objects = enc.prepare("SELECT type, name, sql FROM plain.sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").all() as Array<{ type: string; name: string; sql: string }>;
      if (objects.some((o) => /^\s*CREATE\s+VIRTUAL\s+TABLE/i.test(o.sql))) throw new Error('it holds a virtual table, which cannot be copied');
      const tables = objects.filter((o) => o.type === 'table' && !o.name.startsWith('sqlite_'));
      const q = (name: string): string => `"${name.replaceAll('"', '""')}"`;
      enc.exec('BEGIN');
      for (const t of tables) enc.exec(t.sql);
      for (const t of tables) enc.exec(`INSERT INTO main.${q(t.name)} SELECT * FROM plain.${q(t.name)}`);
      if (objects.some((o) => o.name === 'sqlite_sequence')) {
        enc.exec('DELETE FROM main.sqlite_sequence; INSERT INTO main.sqlite_sequence SELECT * FROM plain.sqlite_sequence');
      }
      for (const o of objects) if (o.type !== 'table') enc.exec(o.sql);
      enc.exec('COMMIT');
      enc.pragma(`user_version = ${Number(enc.pragma('plain.user_version', { simple: true }))}`);
      for (const t of tables) {
        const a = (enc.prepare(`SELECT count(*) AS n FROM main.${q(t.name)}`).get() as { n: number }).n;
        const b = (enc.prepare(`SELECT count(*) AS n FROM plain.${q(t.name)}`).get() as { n: number }).n;
        if (a !== b) throw new Error(`table ${t.name} has ${b} rows, the copy ${a}`);
      }
      enc.exec('DETACH DATABASE plain');
      const check = enc.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new Error(`the encrypted copy does not check out: ${String(check)}`);
    } finally {
      enc.close();
    }
    const fd = openSync(part, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(part, doneName(path));
    fsyncDirSync(dirname(path));
  } catch (e) {
    removeWithSidecars(part);
    throw fail(e);
  }
  finishEncryption(path);
}
