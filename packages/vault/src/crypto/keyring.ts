/**
 * The local keyring: one file, mode 0600, holding per log the Ed25519 signing seed of its
 * checkpoints, its key-encryption keys (KEKs; the newest is active, older ones stay to open
 * old objects) and a key that names blobs on disk (so a file name never reveals a record hash).
 */
import { randomBytes, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CustodyError } from '../errors.js';
import { writeFileAtomicSync } from '../storage/atomic.js';
import type { Kek, KekLookup } from './aead.js';

interface KeyringFileLog {
  signingSeed: string;
  blobNameKey: string;
  keks: Array<{ id: number; key: string; created: string }>;
}
interface KeyringFile {
  version: 1;
  logs: Record<string, KeyringFileLog>;
  /** Keys of the vault as a whole, by purpose (e.g. "sqlite-custody"): 32 bytes, base64. */
  vault?: Record<string, string>;
}

export class LogKeys {
  constructor(
    readonly log: string,
    readonly signingSeed: Buffer,
    private readonly keks: Kek[],
    private readonly blobNameKey: Buffer,
    /** The keyring file these keys came from: a KEK added later (rotation) is looked up there. */
    private readonly keyringPath?: string,
  ) {}
  /** Key material for an integrator worker thread (same process; never written anywhere). */
  exportForWorker(): { log: string; signingSeed: Buffer; keks: Kek[]; blobNameKey: Buffer; keyringPath?: string } {
    return { log: this.log, signingSeed: this.signingSeed, keks: this.keks, blobNameKey: this.blobNameKey, keyringPath: this.keyringPath };
  }

  static fromWorker(k: { log: string; signingSeed: Uint8Array; keks: Array<{ id: number; key: Uint8Array }>; blobNameKey: Uint8Array; keyringPath?: string }): LogKeys {
    return new LogKeys(k.log, Buffer.from(k.signingSeed), k.keks.map((x) => ({ id: x.id, key: Buffer.from(x.key) })), Buffer.from(k.blobNameKey), k.keyringPath);
  }

  /** Adds a KEK (after a rotation); the one with the highest id is the active one. */
  addKek(kek: Kek): void {
    if (this.keks.some((x) => x.id === kek.id)) return;
    this.keks.push({ id: kek.id, key: Buffer.from(kek.key) });
    this.keks.sort((a, b) => a.id - b.id);
  }

  get activeKek(): Kek {
    const k = this.keks[this.keks.length - 1];
    if (!k) throw new CustodyError('KEYRING', `The keyring holds no encryption key for log "${this.log}".`);
    return k;
  }
  readonly lookup: KekLookup = (id) => {
    let k = this.keks.find((x) => x.id === id);
    // A reader that started before a rotation (e.g. a worker thread) learns the new KEK from the file.
    if (!k && this.keyringPath && id > (this.keks[this.keks.length - 1]?.id ?? 0)) {
      try {
        for (const x of Keyring.load(this.keyringPath).forLog(this.log).keks) this.addKek(x);
      } catch {
        /* reported below as a missing key */
      }
      k = this.keks.find((x) => x.id === id);
    }
    if (!k) {
      throw new CustodyError('KEYRING', `The keyring has no key ${id} for log "${this.log}": restore the keyring file that belongs to this data directory.`);
    }
    return k;
  };
  blobName(recordSha256: Uint8Array): string {
    return createHmac('sha256', this.blobNameKey).update(recordSha256).digest('hex');
  }
}

export class Keyring {
  private constructor(
    readonly path: string,
    private file: KeyringFile,
  ) {}

  static load(path: string): Keyring {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new CustodyError('KEYRING', `Cannot read the keyring ${path}: ${(e as Error).message}. Restore it from your backup; without it the stored records cannot be read.`);
    }
    let parsed: KeyringFile;
    try {
      parsed = JSON.parse(text) as KeyringFile;
    } catch {
      throw new CustodyError('KEYRING', `The keyring ${path} is not valid JSON: restore it from your backup.`);
    }
    if (parsed?.version !== 1 || typeof parsed.logs !== 'object') {
      throw new CustodyError('KEYRING', `The keyring ${path} has an unknown format.`);
    }
    return new Keyring(path, parsed);
  }

  static create(path: string): Keyring {
    const k = new Keyring(path, { version: 1, logs: {} });
    k.save();
    return k;
  }

  private save(): void {
    writeFileAtomicSync(this.path, JSON.stringify(this.file, null, 2) + '\n', 0o600);
  }

  has(log: string): boolean {
    return Object.hasOwn(this.file.logs, log);
  }

  /** Creates the keys of a new log; refuses to overwrite (that would orphan its data). */
  addLog(log: string): LogKeys {
    if (this.has(log)) throw new CustodyError('KEYRING', `The keyring already holds keys for log "${log}".`);
    this.file.logs[log] = {
      signingSeed: randomBytes(32).toString('base64'),
      blobNameKey: randomBytes(32).toString('base64'),
      keks: [{ id: 1, key: randomBytes(32).toString('base64'), created: new Date().toISOString() }],
    };
    this.save();
    return this.forLog(log);
  }

  /**
   * Rotates the KEK of a log: adds a new key with the next id, which becomes the active one.
   * Older KEKs stay (old objects are sealed with them). Saved atomically before it is returned.
   */
  rotateKek(log: string): Kek {
    const l = this.file.logs[log];
    if (!l) throw new CustodyError('KEYRING', `The keyring ${this.path} has no keys for log "${log}".`);
    const id = Math.max(0, ...l.keks.map((k) => k.id)) + 1;
    const key = randomBytes(32);
    const next: KeyringFile = structuredClone(this.file);
    next.logs[log]!.keks.push({ id, key: key.toString('base64'), created: new Date().toISOString() });
    writeFileAtomicSync(this.path, JSON.stringify(next, null, 2) + '\n', 0o600);
    this.file = next;
    return { id, key };
  }

  /** Whether the keyring holds the vault-level key of `purpose` (see vaultKey). */
  hasVaultKey(purpose: string): boolean {
    const v = this.file.vault;
    return typeof v === 'object' && v !== null && Object.hasOwn(v, purpose);
  }

  /**
   * A 32-byte key of the vault as a whole for one purpose (the page key of an SQLite file:
   * "sqlite-custody", "sqlite-dedupe", "sqlite-search"; see docs/ENCRYPTION.md). Created on
   * first use and saved atomically (0600) before it is returned, so data is never written under
   * a key the file does not hold.
   */
  vaultKey(purpose: string): Buffer {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(purpose)) throw new CustodyError('KEYRING', `"${purpose}" is not a key purpose.`);
    if (this.hasVaultKey(purpose)) {
      const have = this.file.vault![purpose];
      const v = typeof have === 'string' ? Buffer.from(have, 'base64') : Buffer.alloc(0);
      if (v.length !== 32) throw new CustodyError('KEYRING', `The keyring ${this.path} entry vault.${purpose} is damaged: restore the keyring from your backup.`);
      return v;
    }
    const key = randomBytes(32);
    const next: KeyringFile = structuredClone(this.file);
    next.vault = { ...(next.vault ?? {}), [purpose]: key.toString('base64') };
    writeFileAtomicSync(this.path, JSON.stringify(next, null, 2) + '\n', 0o600);
    this.file = next;
    return key;
  }

  forLog(log: string): LogKeys {
    const l = this.file.logs[log];
    if (!l) throw new CustodyError('KEYRING', `The keyring ${this.path} has no keys for log "${log}": it does not belong to this data directory.`);
    const b = (s: string, what: string): Buffer => {
      const v = Buffer.from(s, 'base64');
      if (v.length !== 32) throw new CustodyError('KEYRING', `The keyring entry ${what} of log "${log}" is damaged.`);
      return v;
    };
    return new LogKeys(
      log,
      b(l.signingSeed, 'signingSeed'),
      l.keks.map((k) => ({ id: k.id, key: b(k.key, `kek ${k.id}`) })),
      b(l.blobNameKey, 'blobNameKey'),
      this.path,
    );
  }
}
