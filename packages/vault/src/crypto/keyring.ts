/**
 * The local keyring: one file, mode 0600, holding per log the Ed25519 signing seed of its
 * checkpoints, its key-encryption keys (KEKs; the newest is active, older ones stay to open
 * old objects) and a key that names blobs on disk (so a file name never reveals a record hash),
 * plus the vault's own keys by purpose (`vaultKey`).
 *
 * Three forms (docs/ENCRYPTION.md):
 * - version 1: the keys in the clear (protected by the file mode only). Still read and written.
 * - version 2, "passphrase": the secrets are one AES-256-GCM section sealed under a key from
 *   scrypt over a passphrase (crypto/passphrase.ts); salt and cost are in the file.
 * - version 2, "kms": one section per region, each sealed under a random key that AWS KMS
 *   encrypted with that region's key (`Encrypt`, context {"custody:keyring", "custody:section"});
 *   a log's secrets sit in its region's section, the vault's own keys in the section of the
 *   audit log's region. The file's public part names each log's region and KMS keys: the
 *   entry bundles of a log are sealed under KMS data keys of its region (crypto/kms.ts).
 *
 * A protected keyring is re-sealed on every write (new log, rotation, a new vault key): it never
 * reaches the disk in the clear, not even in the temporary file of the atomic write. The
 * sections' additional data binds the public part, so a changed region or key ARN does not open.
 *
 * Opening a protected file needs its key: `Keyring.load` (synchronous) derives it from a
 * passphrase (given, registered with `Keyring.usePassphrase`, or $CUSTODY_PASSPHRASE) or takes
 * it from keys already unlocked in this thread; `Keyring.open` / `Keyring.unlock` (async) also
 * ask KMS. Unlocked section keys are remembered in memory for the life of the thread, and are
 * handed to worker threads with the logs' keys (`exportForWorker`), never written anywhere.
 */
import { randomBytes, createHmac, createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CustodyError } from '../errors.js';
import { writeFileAtomicSync } from '../storage/atomic.js';
import { seal, open as openSealed, sealedVersion, readKmsHeader, sealWithDataKey, openWithDataKey, VERSION_KMS, type Kek, type KekLookup } from './aead.js';
import { checkScryptParams, deriveKeyringKey, newScryptParams, checkNewPassphrase, type ScryptParams } from './passphrase.js';
import { sharedKms, checkKmsKey, regionOfKeyArn, KMS_REGION_RE, type DataKey, type EncryptionContext } from './kms.js';

interface KeyringFileLog {
  signingSeed: string;
  blobNameKey: string;
  keks: Array<{ id: number; key: string; created: string }>;
}
/** The secrets: all of a version-1 file, the sealed sections' content of a version-2 one. */
interface Secrets {
  logs: Record<string, KeyringFileLog>;
  /** Keys of the vault as a whole, by purpose (e.g. "sqlite-custody"): 32 bytes, base64. */
  vault?: Record<string, string>;
}
interface KeyringFileV1 extends Secrets {
  version: 1;
}

/** A log's public facts in a KMS keyring: its region and the KMS keys of its bundles (newest active). */
interface PublicLog {
  region: string;
  kmsKeys: Array<{ id: number; keyId: string; created: string }>;
}
interface SectionKeyKms {
  kind: 'kms';
  region: string;
  keyId: string;
  /** The section key, encrypted by KMS (base64). */
  blob: string;
}
interface Section {
  name: string;
  key: { kind: 'passphrase' } | SectionKeyKms;
  iv: string;
  ct: string;
  tag: string;
}
interface KeyringFileV2 {
  version: 2;
  /** Random; in the KMS encryption context of the section keys. */
  id: string;
  protection: 'passphrase' | 'kms';
  kdf?: ScryptParams;
  kms?: { regions: Record<string, { keyId: string }>; vaultRegion: string };
  logs: Record<string, PublicLog>;
  sections: Section[];
}

/** How a protected keyring is opened: a passphrase, and/or section keys already unlocked. */
export interface KeyringUnlock {
  passphrase?: string;
  /** Section keys by fingerprint (see `fingerprintOf`). */
  keys?: Array<[string, Uint8Array]>;
}

export interface KmsProtection {
  /** Region → KMS key (ARN, key id or alias) of that region. */
  regions: Record<string, string>;
  /** The region whose key wraps the vault's own keys (the audit log's region). */
  vaultRegion: string;
}

// ---- keys unlocked in this thread ------------------------------------------------------------

const unlocked = new Map<string, Buffer>();
let processPassphrase: string | undefined;

function fingerprintOf(file: KeyringFileV2, s: Section): string {
  if (s.key.kind === 'passphrase') return `scrypt:${file.kdf!.salt}:${file.kdf!.N}:${file.kdf!.r}:${file.kdf!.p}`;
  return `kms:${createHash('sha256').update(s.key.blob).digest('base64')}`;
}

function defaultPassphrase(): string | undefined {
  const env = process.env['CUSTODY_PASSPHRASE'];
  return processPassphrase ?? (env !== undefined && env !== '' ? env : undefined);
}

function locked(path: string, why: string): CustodyError {
  return new CustodyError('KEYRING_LOCKED', `${why} Nothing was changed.`, { keyring: path });
}

// ---- sealing the sections ----------------------------------------------------------------------

function aadOf(file: KeyringFileV2, s: Section): Buffer {
  const head = JSON.stringify([file.version, file.id, file.protection, file.kdf ?? null, file.kms ?? null, file.logs]);
  return Buffer.from(`custody keyring v2\n${head}\n${JSON.stringify([s.name, s.key])}`);
}

function sealSection(file: KeyringFileV2, s: Omit<Section, 'iv' | 'ct' | 'tag'>, key: Buffer, secrets: Secrets): Section {
  const out: Section = { ...s, iv: '', ct: '', tag: '' };
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aadOf(file, out));
  const ct = Buffer.concat([c.update(JSON.stringify(secrets)), c.final()]);
  out.iv = iv.toString('base64');
  out.ct = ct.toString('base64');
  out.tag = c.getAuthTag().toString('base64');
  return out;
}

function openSection(file: KeyringFileV2, s: Section, key: Buffer): Secrets | null {
  try {
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(s.iv, 'base64'));
    d.setAAD(aadOf(file, s));
    d.setAuthTag(Buffer.from(s.tag, 'base64'));
    const plain = Buffer.concat([d.update(Buffer.from(s.ct, 'base64')), d.final()]);
    return JSON.parse(plain.toString('utf8')) as Secrets;
  } catch {
    return null;
  }
}

const kmsSectionContext = (file: KeyringFileV2, name: string): EncryptionContext => ({ 'custody:keyring': file.id, 'custody:section': name, 'custody:purpose': 'keyring' });

function checkFileV2(parsed: unknown, path: string): KeyringFileV2 {
  const f = parsed as KeyringFileV2;
  const bad = (why: string): never => {
    throw new CustodyError('KEYRING', `The keyring ${path} is damaged (${why}): restore it from your backup.`);
  };
  if (typeof f.id !== 'string' || !/^[0-9a-f]{32}$/.test(f.id)) bad('id');
  if (f.protection !== 'passphrase' && f.protection !== 'kms') bad('protection');
  if (typeof f.logs !== 'object' || f.logs === null || !Array.isArray(f.sections) || f.sections.length === 0 || f.sections.length > 256) bad('sections');
  if (f.protection === 'passphrase') {
    f.kdf = checkScryptParams(f.kdf, path);
    if (f.sections.length !== 1 || f.sections[0]!.key?.kind !== 'passphrase') bad('a passphrase keyring has one section');
  } else {
    if (!f.kms || typeof f.kms.regions !== 'object' || typeof f.kms.vaultRegion !== 'string') bad('kms');
    for (const [r, k] of Object.entries(f.kms!.regions)) checkKmsKey(r, k?.keyId);
    for (const [log, l] of Object.entries(f.logs)) {
      if (!l || !KMS_REGION_RE.test(l.region) || !Array.isArray(l.kmsKeys) || l.kmsKeys.length === 0) bad(`log ${log}`);
      for (const k of l.kmsKeys) checkKmsKey(l.region, k.keyId);
    }
    for (const s of f.sections) {
      if (s.key?.kind !== 'kms' || typeof s.key.blob !== 'string' || s.key.blob.length > 8192) bad(`section ${String(s.name)}`);
      checkKmsKey((s.key as SectionKeyKms).region, (s.key as SectionKeyKms).keyId);
    }
  }
  for (const s of f.sections) {
    if (typeof s.name !== 'string' || typeof s.iv !== 'string' || typeof s.ct !== 'string' || typeof s.tag !== 'string') bad('section');
  }
  return f;
}

function readParsed(path: string): KeyringFileV1 | KeyringFileV2 {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CustodyError('KEYRING', `Cannot read the keyring ${path}: ${(e as Error).message}. Restore it from your backup; without it the stored records cannot be read.`);
  }
  let parsed: KeyringFileV1 | KeyringFileV2;
  try {
    parsed = JSON.parse(text) as KeyringFileV1 | KeyringFileV2;
  } catch {
    throw new CustodyError('KEYRING', `The keyring ${path} is not valid JSON: restore it from your backup.`);
  }
  if (parsed?.version === 1 && typeof parsed.logs === 'object' && parsed.logs !== null) return parsed;
  if (parsed?.version === 2) return checkFileV2(parsed, path);
  throw new CustodyError('KEYRING', `The keyring ${path} has an unknown format.`);
}

/** The KMS configuration of a log: its region and the KMS key its new bundles use. */
export interface LogKms {
  region: string;
  keyId: string;
}

export class LogKeys {
  /** KMS data keys of bundles being written (by bundle index). */
  private readonly dataKeys = new Map<number, DataKey>();
  private readonly fetching = new Map<number, Promise<DataKey>>();

  constructor(
    readonly log: string,
    readonly signingSeed: Buffer,
    private readonly keks: Kek[],
    private readonly blobNameKey: Buffer,
    /** The keyring file these keys came from: a KEK added later (rotation) is looked up there. */
    private readonly keyringPath?: string,
    /** Set when the log's bundles are sealed under AWS KMS data keys. */
    private kms?: LogKms,
    /** The keyring's section keys, to read it again (a protected keyring). */
    private readonly unlock?: KeyringUnlock,
  ) {}
  /** Key material for a worker thread (same process; never written anywhere). */
  exportForWorker(): { log: string; signingSeed: Buffer; keks: Kek[]; blobNameKey: Buffer; keyringPath?: string; kms?: LogKms; unlock?: KeyringUnlock } {
    return { log: this.log, signingSeed: this.signingSeed, keks: this.keks, blobNameKey: this.blobNameKey, keyringPath: this.keyringPath, kms: this.kms, unlock: this.unlock };
  }

  static fromWorker(k: { log: string; signingSeed: Uint8Array; keks: Array<{ id: number; key: Uint8Array }>; blobNameKey: Uint8Array; keyringPath?: string; kms?: LogKms; unlock?: KeyringUnlock }): LogKeys {
    return new LogKeys(
      k.log,
      Buffer.from(k.signingSeed),
      k.keks.map((x) => ({ id: x.id, key: Buffer.from(x.key) })),
      Buffer.from(k.blobNameKey),
      k.keyringPath,
      k.kms ? { region: k.kms.region, keyId: k.kms.keyId } : undefined,
      k.unlock ? { keys: k.unlock.keys?.map(([f, b]) => [f, Buffer.from(b)] as [string, Buffer]) } : undefined,
    );
  }

  /** Adds a KEK (after a rotation); the one with the highest id is the active one. */
  addKek(kek: Kek): void {
    if (this.keks.some((x) => x.id === kek.id)) return;
    this.keks.push({ id: kek.id, key: Buffer.from(kek.key) });
    this.keks.sort((a, b) => a.id - b.id);
  }

  /** The KMS region and key of this log's new bundles, or undefined (local KEKs). */
  get kmsKey(): LogKms | undefined {
    return this.kms ? { ...this.kms } : undefined;
  }

  /** A rotation gave the log a new KMS key: bundles written from now on use it. */
  useKmsKey(keyId: string): void {
    if (!this.kms || this.kms.keyId === keyId) return;
    checkKmsKey(this.kms.region, keyId);
    this.kms = { region: this.kms.region, keyId };
    this.dataKeys.clear();
    this.fetching.clear();
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
        for (const x of Keyring.load(this.keyringPath, this.unlock).forLog(this.log).keks) this.addKek(x);
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

  // ---- entry bundles: a local KEK, or a KMS data key per bundle ---------------------------

  private bundleContext(origin: string, index: number): EncryptionContext {
    return { 'custody:origin': origin, 'custody:bundle': String(index), 'custody:purpose': 'bundle' };
  }

  /**
   * Makes sure the data keys of these bundles are at hand before a round seals them (KMS mode;
   * nothing otherwise): one GenerateDataKey per bundle index, at most 8 at a time, reused for
   * every width of that bundle. Keys of bundles before the first index are forgotten.
   */
  async prepareBundles(origin: string, indices: number[]): Promise<void> {
    const kms = this.kms;
    if (!kms || indices.length === 0) return;
    const low = Math.min(...indices);
    for (const i of [...this.dataKeys.keys()]) if (i < low) this.dataKeys.delete(i);
    const todo = indices.filter((i) => !this.dataKeys.has(i));
    for (let at = 0; at < todo.length; at += 8) {
      await Promise.all(todo.slice(at, at + 8).map((i) => this.fetchDataKey(origin, i)));
    }
  }

  /** Starts fetching the data key of the bundle after these (errors are retried when it is needed). */
  prefetchBundle(origin: string, index: number): void {
    if (!this.kms || this.dataKeys.has(index) || this.dataKeys.size > 64) return;
    this.fetchDataKey(origin, index).catch(() => undefined);
  }

  private fetchDataKey(origin: string, index: number): Promise<DataKey> {
    const kms = this.kms!;
    let p = this.fetching.get(index);
    if (!p) {
      p = sharedKms()
        .generateDataKey(kms.region, kms.keyId, this.bundleContext(origin, index), `entry bundle ${index} of ${origin}`)
        .then((dk) => {
          // A rotation meanwhile (a different key now): not kept.
          if (this.fetching.get(index) === p && this.kms?.keyId === kms.keyId) this.dataKeys.set(index, dk);
          return dk;
        })
        .finally(() => {
          if (this.fetching.get(index) === p) this.fetching.delete(index);
        });
      this.fetching.set(index, p);
    }
    return p;
  }

  /** Seals an entry bundle (`context` binds origin, index and width; crypto/aead.ts). */
  sealBundle(origin: string, index: number, context: string, pieces: Uint8Array[]): Buffer {
    if (!this.kms) return seal(this.activeKek, context, pieces);
    const dk = this.dataKeys.get(index);
    if (!dk) throw new CustodyError('KMS_UNAVAILABLE', `No AWS KMS data key is at hand for entry bundle ${index} of ${origin}; the integrator retries.`);
    return sealWithDataKey(dk, context, pieces);
  }

  /** Opens an entry bundle sealed under a local KEK (version 1) or a KMS data key (version 2). */
  async openBundle(origin: string, index: number, context: string, sealed: Uint8Array, what: string): Promise<Buffer> {
    if (sealedVersion(sealed) !== VERSION_KMS) return openSealed(this.lookup, context, sealed, what);
    const h = readKmsHeader(sealed, what);
    const region = this.kms?.region;
    if (!region) {
      throw new CustodyError('KEYRING', `${what} is sealed with the AWS KMS key ${h.keyId}, but the keyring of this data directory has no KMS configuration for log "${this.log}": use the keyring that belongs to it.`, { what });
    }
    const named = regionOfKeyArn(h.keyId);
    if (named !== null && named !== region) {
      throw new CustodyError('STORAGE_CORRUPT', `${what} names a KMS key in region ${named}, but log "${this.log}" is in ${region}: it does not belong to this log.`, { what });
    }
    const key = await sharedKms().decrypt(region, h.keyId, h.blob, this.bundleContext(origin, index), what);
    return openWithDataKey(key, h, context, sealed, what);
  }
}

export class Keyring {
  private constructor(
    readonly path: string,
    private secrets: Secrets,
    /** null: a version-1 file (keys in the clear). */
    private file: KeyringFileV2 | null,
    /** Section name → its key (a protected keyring). */
    private sectionKeys: Map<string, Buffer>,
  ) {}

  /** The passphrase `load` and `create` use when none is given (the CLI's --passphrase-file or prompt). */
  static usePassphrase(passphrase: string | undefined): void {
    processPassphrase = passphrase;
  }

  /** Whether `create` would protect a new keyring with a passphrase (the process's or $CUSTODY_PASSPHRASE). */
  static hasDefaultPassphrase(): boolean {
    return defaultPassphrase() !== undefined;
  }

  /** How the file at `path` is protected: "none" (version 1), "passphrase" or "kms". */
  static protectionOf(path: string): 'none' | 'passphrase' | 'kms' {
    const f = readParsed(path);
    return f.version === 1 ? 'none' : f.protection;
  }

  /**
   * Opens the keyring synchronously. A protected one opens with `unlock`, keys already unlocked
   * in this thread, or (passphrase) the process's passphrase or $CUSTODY_PASSPHRASE; a KMS one
   * must have been unlocked (`Keyring.unlock`/`open`) first. A wrong passphrase: KEYRING_LOCKED.
   */
  static load(path: string, unlock?: KeyringUnlock): Keyring {
    const f = readParsed(path);
    if (f.version === 1) return new Keyring(path, { logs: f.logs, ...(f.vault ? { vault: f.vault } : {}) }, null, new Map());
    const given = new Map<string, Buffer>((unlock?.keys ?? []).map(([k, v]) => [k, Buffer.from(v)]));
    const secrets: Secrets = { logs: {} };
    const keys = new Map<string, Buffer>();
    for (const s of f.sections) {
      const fp = fingerprintOf(f, s);
      // An explicit passphrase is always checked; otherwise keys unlocked before are used.
      let key = given.get(fp) ?? (unlock?.passphrase !== undefined && s.key.kind === 'passphrase' ? undefined : unlocked.get(fp));
      if (!key && s.key.kind === 'passphrase') {
        const passphrase = unlock?.passphrase ?? defaultPassphrase();
        if (passphrase === undefined) {
          throw locked(path, `The keyring ${path} is protected by a passphrase: give it with --passphrase-file <file>, $CUSTODY_PASSPHRASE, or --passphrase (asks on the terminal).`);
        }
        key = deriveKeyringKey(passphrase, f.kdf!);
      }
      if (!key) {
        throw locked(path, `The keyring ${path} is protected by AWS KMS and has not been unlocked (section ${s.name}).`);
      }
      const part = openSection(f, s, key);
      if (!part || typeof part.logs !== 'object' || part.logs === null) {
        throw locked(
          path,
          s.key.kind === 'passphrase'
            ? `The passphrase does not open the keyring ${path}: check it (the one given when the keyring was created or last changed), or restore the keyring from your backup.`
            : `The keyring ${path} section ${s.name} does not open with the key AWS KMS returned: the file was altered; restore it from your backup.`,
        );
      }
      unlocked.set(fp, key);
      keys.set(s.name, key);
      Object.assign(secrets.logs, part.logs);
      if (part.vault) secrets.vault = { ...(secrets.vault ?? {}), ...part.vault };
    }
    return new Keyring(path, secrets, f, keys);
  }

  /**
   * Unlocks a protected keyring in this thread (asks KMS for the section keys it needs, checks
   * a passphrase), so later `load`s of it work. Nothing to do for a version-1 file or one
   * already unlocked.
   */
  static async unlock(path: string, unlock?: KeyringUnlock): Promise<void> {
    const f = readParsed(path);
    if (f.version === 1) return;
    for (const s of f.sections) {
      if (s.key.kind !== 'kms' || unlocked.has(fingerprintOf(f, s))) continue;
      const k = s.key;
      const key = await sharedKms().decrypt(k.region, k.keyId, Buffer.from(k.blob, 'base64'), kmsSectionContext(f, s.name), `the keyring ${path} (section ${s.name})`).catch((e: unknown) => {
        if (e instanceof CustodyError && e.code === 'STORAGE_CORRUPT') {
          throw locked(path, `AWS KMS does not decrypt the key of the keyring ${path} (section ${s.name}) with ${k.keyId}: the file was altered or belongs to another key; restore it from your backup.`);
        }
        throw e;
      });
      unlocked.set(fingerprintOf(f, s), key);
    }
    Keyring.load(path, unlock); // checks a passphrase; remembers the keys
  }

  /** `unlock`, then `load`. */
  static async open(path: string, unlock?: KeyringUnlock): Promise<Keyring> {
    await Keyring.unlock(path, unlock);
    return Keyring.load(path, unlock);
  }

  /**
   * Creates an empty keyring: protected by `passphrase` when one is given — by default the
   * process's passphrase or $CUSTODY_PASSPHRASE — else in the clear (version 1).
   */
  static create(path: string, opts: { passphrase?: string | null } = {}): Keyring {
    const passphrase = opts.passphrase === undefined ? defaultPassphrase() : (opts.passphrase ?? undefined);
    const k = new Keyring(path, { logs: {} }, null, new Map());
    if (passphrase !== undefined) k.protectWithPassphrase(passphrase);
    else k.save();
    return k;
  }

  /** Creates an empty keyring protected by AWS KMS: a section per region, its key encrypted by that region's KMS key. */
  static async createKms(path: string, p: KmsProtection): Promise<Keyring> {
    const regions = Object.entries(p.regions);
    if (regions.length === 0) throw new CustodyError('CONFIG', 'Give at least one --kms-key <region>=<key ARN or alias>.');
    for (const [r, k] of regions) checkKmsKey(r, k);
    if (!Object.hasOwn(p.regions, p.vaultRegion)) throw new CustodyError('CONFIG', `The vault's own keys are kept under the key of region ${p.vaultRegion}, which has no --kms-key.`);
    const file: KeyringFileV2 = {
      version: 2,
      id: randomBytes(16).toString('hex'),
      protection: 'kms',
      kms: { regions: Object.fromEntries(regions.map(([r, k]) => [r, { keyId: k }])), vaultRegion: p.vaultRegion },
      logs: {},
      sections: [],
    };
    const keys = new Map<string, Buffer>();
    for (const [r, k] of regions) {
      const name = `region:${r}`;
      const key = randomBytes(32);
      const blob = await sharedKms().encrypt(r, k, key, kmsSectionContext(file, name), `the keyring ${path} (section ${name})`);
      file.sections.push({ name, key: { kind: 'kms', region: r, keyId: k, blob: blob.toString('base64') }, iv: '', ct: '', tag: '' });
      keys.set(name, key);
      unlocked.set(fingerprintOf(file, file.sections[file.sections.length - 1]!), key);
    }
    const ring = new Keyring(path, { logs: {} }, file, keys);
    ring.save();
    return ring;
  }

  /** "none", "passphrase" or "kms". */
  get protection(): 'none' | 'passphrase' | 'kms' {
    return this.file?.protection ?? 'none';
  }

  /** Region → KMS key of a KMS keyring (public facts), else null. */
  get kmsRegions(): Record<string, string> | null {
    const k = this.file?.kms;
    return k ? Object.fromEntries(Object.entries(k.regions).map(([r, v]) => [r, v.keyId])) : null;
  }

  /**
   * Protects the keyring with a (new) passphrase: a new salt and key, the whole file rewritten
   * atomically. A version-1 file becomes protected; a KMS one is refused.
   */
  setPassphrase(passphrase: string): void {
    checkNewPassphrase(passphrase);
    if (this.file?.protection === 'kms') throw new CustodyError('CONFIG', `The keyring ${this.path} is protected by AWS KMS; a passphrase is not added to it.`);
    this.protectWithPassphrase(passphrase);
  }

  private protectWithPassphrase(passphrase: string): void {
    const kdf = newScryptParams();
    const key = deriveKeyringKey(passphrase, kdf);
    const file: KeyringFileV2 = { version: 2, id: this.file?.id ?? randomBytes(16).toString('hex'), protection: 'passphrase', kdf, logs: {}, sections: [{ name: 'all', key: { kind: 'passphrase' }, iv: '', ct: '', tag: '' }] };
    this.write(this.secrets, file, new Map([['all', key]]));
    this.file = file;
    this.sectionKeys = new Map([['all', key]]);
    unlocked.set(fingerprintOf(file, file.sections[0]!), key);
  }

  /** The section keys of this keyring, for a worker thread that may read it again. */
  private unlockMaterial(): KeyringUnlock | undefined {
    if (!this.file) return undefined;
    return { keys: this.file.sections.map((s) => [fingerprintOf(this.file!, s), this.sectionKeys.get(s.name)!] as [string, Buffer]) };
  }

  /** Writes `secrets` (sealed when protected) atomically; the file on disk is never in the clear. */
  private write(secrets: Secrets, file: KeyringFileV2 | null, keys: Map<string, Buffer>): void {
    if (!file) {
      const v1: KeyringFileV1 = { version: 1, logs: secrets.logs, ...(secrets.vault ? { vault: secrets.vault } : {}) };
      writeFileAtomicSync(this.path, JSON.stringify(v1, null, 2) + '\n', 0o600);
      return;
    }
    const parts = new Map<string, Secrets>(file.sections.map((s) => [s.name, { logs: {} }]));
    const partOf = (name: string): Secrets => {
      const p = parts.get(name);
      if (!p) throw new CustodyError('INTERNAL', `keyring: no section ${name}`);
      return p;
    };
    for (const [log, l] of Object.entries(secrets.logs)) {
      const name = file.protection === 'passphrase' ? 'all' : `region:${file.logs[log]?.region}`;
      partOf(name).logs[log] = l;
    }
    if (secrets.vault) partOf(file.protection === 'passphrase' ? 'all' : `region:${file.kms!.vaultRegion}`).vault = secrets.vault;
    const out: KeyringFileV2 = { ...file, sections: [] };
    for (const s of file.sections) {
      const key = keys.get(s.name);
      if (!key) throw new CustodyError('INTERNAL', `keyring: section ${s.name} has no key`);
      out.sections.push(sealSection(out, { name: s.name, key: s.key }, key, parts.get(s.name)!));
    }
    const text = JSON.stringify(out, null, 2) + '\n';
    writeFileAtomicSync(this.path, text, 0o600);
    this.onSaved?.(text);
  }

  /**
   * Called with the sealed file's text after every save of a protected keyring (shared mode:
   * vault.ts copies it to PostgreSQL). Never called for a version-1 (clear) keyring.
   */
  onSaved?: (sealedText: string) => void;

  /** Adopts the keyring file at `path` again (another node changed it; shared mode). */
  reload(): void {
    const k = Keyring.load(this.path, this.unlockMaterial());
    this.secrets = k.secrets;
    this.file = k.file;
    this.sectionKeys = k.sectionKeys;
  }

  private save(): void {
    this.write(this.secrets, this.file, this.sectionKeys);
  }

  /** Saves a changed copy (secrets and public part) first, then adopts it: a failed write changes nothing. */
  private commit(secrets: Secrets, file: KeyringFileV2 | null): void {
    this.write(secrets, file, this.sectionKeys);
    this.secrets = secrets;
    this.file = file;
  }

  /** The logs this keyring holds keys of. */
  get logNames(): string[] {
    return Object.keys(this.secrets.logs);
  }

  /** The purposes of the vault-level keys it holds. */
  get vaultKeyPurposes(): string[] {
    return Object.keys(this.secrets.vault ?? {});
  }

  has(log: string): boolean {
    return Object.hasOwn(this.secrets.logs, log);
  }

  /**
   * Creates the keys of a new log; refuses to overwrite (that would orphan its data). In a KMS
   * keyring the log's `region` must have a KMS key: its bundles and its secrets use that key.
   */
  addLog(log: string, opts: { region?: string } = {}): LogKeys {
    if (this.has(log)) throw new CustodyError('KEYRING', `The keyring already holds keys for log "${log}".`);
    const secrets = structuredClone(this.secrets);
    const file = this.file ? structuredClone(this.file) : null;
    secrets.logs[log] = {
      signingSeed: randomBytes(32).toString('base64'),
      blobNameKey: randomBytes(32).toString('base64'),
      keks: [{ id: 1, key: randomBytes(32).toString('base64'), created: new Date().toISOString() }],
    };
    if (file?.protection === 'kms') {
      const region = opts.region ?? log;
      const k = file.kms!.regions[region];
      if (!k) {
        throw new CustodyError('REGION_NOT_ALLOWED', `This vault keeps its keys in AWS KMS and has no KMS key for region "${region}", so log "${log}" cannot be created there; its records are refused rather than stored under another region's key.`, { region });
      }
      file.logs[log] = { region, kmsKeys: [{ id: 1, keyId: k.keyId, created: new Date().toISOString() }] };
    }
    this.commit(secrets, file);
    return this.forLog(log);
  }

  /**
   * Rotates the KEK of a log: adds a new key with the next id, which becomes the active one.
   * Older KEKs stay (old objects are sealed with them). In a KMS keyring, `kmsKeyId` (of the
   * log's region) becomes the key of its new bundles; old bundles name theirs. Saved
   * atomically before it is returned.
   */
  rotateKek(log: string, opts: { kmsKeyId?: string } = {}): Kek {
    const l = this.secrets.logs[log];
    if (!l) throw new CustodyError('KEYRING', `The keyring ${this.path} has no keys for log "${log}".`);
    const secrets = structuredClone(this.secrets);
    const file = this.file ? structuredClone(this.file) : null;
    if (opts.kmsKeyId !== undefined) {
      const pub = file?.protection === 'kms' ? file.logs[log] : undefined;
      if (!pub) throw new CustodyError('CONFIG', `Log "${log}" does not keep its keys in AWS KMS: --kms-key applies only to a vault initialised with --kms-key.`);
      checkKmsKey(pub.region, opts.kmsKeyId);
      const id = Math.max(0, ...pub.kmsKeys.map((k) => k.id)) + 1;
      pub.kmsKeys.push({ id, keyId: opts.kmsKeyId, created: new Date().toISOString() });
    }
    const id = Math.max(0, ...l.keks.map((k) => k.id)) + 1;
    const key = randomBytes(32);
    secrets.logs[log]!.keks.push({ id, key: key.toString('base64'), created: new Date().toISOString() });
    this.commit(secrets, file);
    return { id, key };
  }

  /** Whether the keyring holds the vault-level key of `purpose` (see vaultKey). */
  hasVaultKey(purpose: string): boolean {
    const v = this.secrets.vault;
    return typeof v === 'object' && v !== null && Object.hasOwn(v, purpose);
  }

  /**
   * A 32-byte key of the vault as a whole for one purpose (the page key of an SQLite file:
   * "sqlite-custody", "sqlite-dedupe", "sqlite-search"; see docs/ENCRYPTION.md). Created on
   * first use and saved atomically (0600, sealed when the keyring is protected) before it is
   * returned, so data is never written under a key the file does not hold.
   */
  vaultKey(purpose: string): Buffer {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(purpose)) throw new CustodyError('KEYRING', `"${purpose}" is not a key purpose.`);
    if (this.hasVaultKey(purpose)) {
      const have = this.secrets.vault![purpose];
      const v = typeof have === 'string' ? Buffer.from(have, 'base64') : Buffer.alloc(0);
      if (v.length !== 32) throw new CustodyError('KEYRING', `The keyring ${this.path} entry vault.${purpose} is damaged: restore the keyring from your backup.`);
      return v;
    }
    const key = randomBytes(32);
    const secrets = structuredClone(this.secrets);
    secrets.vault = { ...(secrets.vault ?? {}), [purpose]: key.toString('base64') };
    this.commit(secrets, this.file);
    return key;
  }

  forLog(log: string): LogKeys {
    const l = this.secrets.logs[log];
    if (!l) throw new CustodyError('KEYRING', `The keyring ${this.path} has no keys for log "${log}": it does not belong to this data directory.`);
    const b = (s: string, what: string): Buffer => {
      const v = Buffer.from(s, 'base64');
      if (v.length !== 32) throw new CustodyError('KEYRING', `The keyring entry ${what} of log "${log}" is damaged.`);
      return v;
    };
    const pub = this.file?.protection === 'kms' ? this.file.logs[log] : undefined;
    if (this.file?.protection === 'kms' && !pub) throw new CustodyError('KEYRING', `The keyring ${this.path} names no region for log "${log}": restore it from your backup.`);
    const active = pub?.kmsKeys[pub.kmsKeys.length - 1];
    return new LogKeys(
      log,
      b(l.signingSeed, 'signingSeed'),
      l.keks.map((k) => ({ id: k.id, key: b(k.key, `kek ${k.id}`) })),
      b(l.blobNameKey, 'blobNameKey'),
      this.path,
      pub && active ? { region: pub.region, keyId: active.keyId } : undefined,
      this.unlockMaterial(),
    );
  }
}
