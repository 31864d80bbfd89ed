/**
 * A witness's data directory (docs/WITNESS.md):
 *
 *   <dir>/witness.json          name, and the logs it witnesses: origin → log verifier key
 *   <dir>/witness.key           the Ed25519 cosigning seed, base64 (0600)
 *   <dir>/state/<sha256(origin)>.json
 *                               the latest checkpoint it cosigned for that origin
 *   <dir>/serve.lock            held by the running `custody witness serve`
 *
 * Every file is replaced atomically (write temp, fsync, rename, fsync dir: storage/atomic.ts),
 * so a crash leaves the old state or the new one, never a torn one. The state of an origin is
 * written BEFORE the witness answers with a cosignature (C2SP tlog-witness: the witness
 * persists its state before answering; ../shared/reference/transparency-log.md).
 */
import { existsSync, mkdirSync, readFileSync, statSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Ed25519CosignatureSigner, fromBase64, isValidKeyName, parseVerifierKey, toBase64, KEY_TYPE_ED25519, type NoteVerifier } from '@custody/verify';
import { CustodyError } from '../errors.js';
import { writeFileAtomicSync } from '../storage/atomic.js';

export interface WitnessConfigFile {
  version: 1;
  /** The witness's key name (in its vkey and on every cosignature line). */
  name: string;
  createdAt: string;
  /** origin → the log's signed-note verifier key (type 0x01). */
  logs: Record<string, string>;
}

export interface OriginState {
  origin: string;
  size: number;
  /** base64 root hash of the cosigned checkpoint */
  root: string;
  /** the log-signed checkpoint note it cosigned */
  checkpoint: string;
  /** POSIX seconds of the cosignature */
  cosignedAt: number;
}

const CONFIG = 'witness.json';
const KEY = 'witness.key';

export class WitnessStore {
  private config: WitnessConfigFile;
  private configMtime = 0;
  readonly signer: Ed25519CosignatureSigner;

  private constructor(readonly dir: string) {
    this.config = this.readConfig();
    let seed: Uint8Array;
    try {
      seed = fromBase64(readFileSync(join(dir, KEY), 'utf8').trim(), 32);
    } catch (e) {
      throw new CustodyError('KEYRING', `Cannot read the witness key ${join(dir, KEY)} (${(e as Error).message}). A witness whose key is lost must be replaced by a new one (custody witness init).`);
    }
    this.signer = new Ed25519CosignatureSigner(this.config.name, seed);
  }

  /** `custody witness init`: a new key and an empty list of logs. Never over an existing witness. */
  static init(dir: string, name: string): WitnessStore {
    if (!isValidKeyName(name)) throw new CustodyError('CONFIG', `"${name}" is not a valid witness name: use a name without spaces or "+", e.g. witness.example.org.`);
    if (existsSync(join(dir, CONFIG)) || existsSync(join(dir, KEY))) {
      throw new CustodyError('CONFIG', `${dir} already holds a witness; it is never initialised twice (its key and state must stay).`);
    }
    mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    writeFileAtomicSync(join(dir, KEY), toBase64(randomBytes(32)) + '\n', 0o600);
    const cfg: WitnessConfigFile = { version: 1, name, createdAt: new Date().toISOString(), logs: {} };
    writeFileAtomicSync(join(dir, CONFIG), JSON.stringify(cfg, null, 2) + '\n', 0o600);
    return new WitnessStore(dir);
  }

  static open(dir: string): WitnessStore {
    if (!existsSync(join(dir, CONFIG))) {
      throw new CustodyError('CONFIG', `${dir} is not a witness directory (no ${CONFIG}). Run \`custody witness init --data ${dir} --name <name>\` first.`);
    }
    return new WitnessStore(dir);
  }

  private readConfig(): WitnessConfigFile {
    const p = join(this.dir, CONFIG);
    let c: WitnessConfigFile;
    try {
      this.configMtime = statSync(p).mtimeMs;
      c = JSON.parse(readFileSync(p, 'utf8')) as WitnessConfigFile;
    } catch (e) {
      throw new CustodyError('CONFIG', `Cannot read ${p}: ${(e as Error).message}.`);
    }
    if (c?.version !== 1 || !isValidKeyName(c.name) || typeof c.logs !== 'object' || c.logs === null) throw new CustodyError('CONFIG', `${p} has an unknown format.`);
    return c;
  }

  /** Picks up logs added by `custody witness add-log` while the server runs. */
  private refresh(): void {
    try {
      if (statSync(join(this.dir, CONFIG)).mtimeMs !== this.configMtime) this.config = this.readConfig();
    } catch {
      /* keep the config we have */
    }
  }

  get name(): string {
    return this.config.name;
  }

  get verifierKey(): string {
    return this.signer.verifierKey;
  }

  logs(): Record<string, string> {
    this.refresh();
    return { ...this.config.logs };
  }

  /** The verifier of a witnessed origin, or undefined (unknown origin). */
  logVerifier(origin: string): NoteVerifier | undefined {
    this.refresh();
    const v = Object.prototype.hasOwnProperty.call(this.config.logs, origin) ? this.config.logs[origin] : undefined;
    return v === undefined ? undefined : parseVerifierKey(v);
  }

  /** `custody witness add-log`: witness a log (its origin and its Ed25519 verifier key). */
  addLog(origin: string, vkey: string): void {
    let v: NoteVerifier;
    try {
      v = parseVerifierKey(vkey);
    } catch (e) {
      throw new CustodyError('CONFIG', `--vkey is not a signed-note verifier key: ${(e as Error).message}. Use the key \`custody logs\` prints.`);
    }
    if (v.type !== KEY_TYPE_ED25519) throw new CustodyError('CONFIG', '--vkey must be a log key (Ed25519, type 0x01), not a witness key.');
    if (v.name !== origin) throw new CustodyError('CONFIG', `The key is named "${v.name}" but the origin is "${origin}"; a Custody log's key is named after its origin.`);
    this.config = this.readConfig();
    const have = this.config.logs[origin];
    if (have !== undefined && have !== vkey) {
      throw new CustodyError('CONFIG', `This witness already witnesses "${origin}" with another key (${have}). A log's key never changes; if it really did, set up a new witness.`);
    }
    this.config.logs[origin] = vkey;
    writeFileAtomicSync(join(this.dir, CONFIG), JSON.stringify(this.config, null, 2) + '\n', 0o600);
    this.configMtime = statSync(join(this.dir, CONFIG)).mtimeMs;
  }

  private statePath(origin: string): string {
    return join(this.dir, 'state', createHash('sha256').update(origin).digest('hex') + '.json');
  }

  /** The latest checkpoint cosigned for `origin`, or null (never cosigned: size 0). */
  state(origin: string): OriginState | null {
    let text: string;
    try {
      text = readFileSync(this.statePath(origin), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CustodyError('STORAGE_UNAVAILABLE', `Cannot read the witness state of "${origin}": ${(e as Error).message}.`);
    }
    const s = JSON.parse(text) as OriginState;
    if (s.origin !== origin || !Number.isSafeInteger(s.size) || typeof s.root !== 'string') {
      throw new CustodyError('STORAGE_CORRUPT', `The witness state of "${origin}" is damaged; restore the witness directory from backup or retire this witness.`);
    }
    return s;
  }

  /** Durably replaces the state of an origin (fsync + rename + fsync dir). */
  saveState(s: OriginState): void {
    writeFileAtomicSync(this.statePath(s.origin), JSON.stringify(s) + '\n', 0o600);
  }
}
