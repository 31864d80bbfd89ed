/**
 * What an auditor trusts, per log origin: the verifier key and the last checkpoint it
 * verified. Every later verification must prove the log grew from there (consistency); a
 * smaller or forked log is a loud failure. Kept in the user's config directory.
 */
import { readFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../storage/atomic.js';
import { CustodyError } from '../errors.js';
import { openCheckpoint, parseVerifierKey, verifyConsistency, fromBase64, toBase64 } from '@custody/verify';
import type { CustodyClient } from './client.js';

export interface TrustedLog {
  verifierKey: string;
  size: number;
  rootHash: string; // base64
  checkpoint: string;
  verifiedAt: string;
  source: string;
}

/** The newest checkpoint a light check (search, export …) verified: key and consistency only. */
export interface SeenLog {
  verifierKey: string;
  size: number;
  rootHash: string;
  checkpoint: string;
  seenAt: string;
}

interface TrustFile {
  version: 1;
  /** Fully verified checkpoints (`custody verify`): verify resumes from these. */
  logs: Record<string, TrustedLog>;
  /** Checkpoints seen by light checks; never used to skip verification of entries. */
  seen?: Record<string, SeenLog>;
}

export function defaultTrustFile(): string {
  if (process.env.CUSTODY_TRUST_FILE) return process.env.CUSTODY_TRUST_FILE;
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'custody', 'trust.json');
}

export class TrustStore {
  private file: TrustFile;
  constructor(readonly path: string = defaultTrustFile()) {
    if (!existsSync(path)) {
      this.file = { version: 1, logs: {} };
      return;
    }
    try {
      this.file = JSON.parse(readFileSync(path, 'utf8')) as TrustFile;
      if (this.file.version !== 1 || typeof this.file.logs !== 'object') throw new Error('unknown format');
    } catch (e) {
      throw new CustodyError('CONFIG', `The trust file ${path} is damaged (${(e as Error).message}); restore it or move it away to start trusting anew.`);
    }
  }

  get(origin: string): TrustedLog | undefined {
    return Object.hasOwn(this.file.logs, origin) ? this.file.logs[origin] : undefined;
  }

  set(origin: string, t: TrustedLog): void {
    this.file.logs[origin] = t;
    this.save();
  }

  getSeen(origin: string): SeenLog | undefined {
    const s = this.file.seen;
    return s && Object.hasOwn(s, origin) ? s[origin] : undefined;
  }

  setSeen(origin: string, t: SeenLog): void {
    (this.file.seen ??= {})[origin] = t;
    this.save();
  }

  private save(): void {
    writeFileAtomicSync(this.path, JSON.stringify(this.file, null, 2) + '\n', 0o600);
  }
}

// ---- a light check on every visit ------------------------------------------------------

/** What a client learns about one log when it checks the log against what it trusted before. */
export interface TrustCheck {
  log: string;
  origin: string;
  size: number;
  rootHash: string;
  /** This client had not seen the log before: its key and checkpoint are now pinned. */
  firstUse: boolean;
  /** Size of the checkpoint trusted before this visit (null on first use). */
  trustedSize: number | null;
}

interface LogListing {
  name: string;
  origin: string;
  verifierKey: string;
}

/**
 * Trust on first use for a log, on every visit (search, export, proof): the log's current
 * checkpoint must be signed by the key this client pinned, and must extend the checkpoint it
 * verified before (a consistency proof). On success the newer checkpoint is remembered; on
 * failure the vault is told (`POST /v1/trust/report`, recorded as an alarm) and a VERIFY_FAILED
 * error explains what it means. `custody verify` does the full job (every entry and tile).
 */
export async function checkTrust(client: CustodyClient, trust: TrustStore, log: string): Promise<TrustCheck> {
  const { logs } = await client.json<{ logs: LogListing[] }>('GET', '/v1/logs');
  const info = logs.find((l) => l.name === log);
  if (!info) throw new CustodyError('LOG_NOT_FOUND', `There is no log "${log}" at ${client.base}.`);
  const full = trust.get(info.origin);
  const light = trust.getSeen(info.origin);
  // The newest checkpoint this client has checked, fully or lightly: the log must extend it.
  const anchor: { verifierKey: string; size: number; rootHash: string } | undefined = full && light ? (light.size >= full.size ? light : full) : (full ?? light);
  const fail = async (reason: 'KEY_CHANGED' | 'ROLLBACK' | 'NOT_A_PREFIX' | 'CHECKPOINT_INVALID', seen: { size: number; root: string }, message: string): Promise<never> => {
    let reported = false;
    if (anchor) {
      reported = await client
        .json('POST', '/v1/trust/report', { log, reason, trusted: { size: anchor.size, root: anchor.rootHash }, seen, trustedKey: anchor.verifierKey, seenKey: info.verifierKey, message, client: 'custody-cli' })
        .then(() => true)
        .catch(() => false);
    }
    throw new CustodyError('VERIFY_FAILED', `${message} ${reported ? 'This was reported to the vault and recorded as an alarm.' : 'Tell the vault\'s operators and your team.'} Your trusted checkpoint (${trust.path}) was kept as evidence.`, { log, reason });
  };
  const key = anchor?.verifierKey ?? info.verifierKey;
  if (anchor && anchor.verifierKey !== info.verifierKey) {
    await fail('KEY_CHANGED', { size: anchor.size, root: anchor.rootHash }, `Log "${log}" now presents the key ${info.verifierKey}, but you trusted ${anchor.verifierKey}: someone replaced its signing key.`);
  }
  const text = await client.text(`/logs/${encodeURIComponent(log)}/checkpoint`);
  let cp: { size: number; rootHash: Uint8Array };
  try {
    cp = openCheckpoint(text, parseVerifierKey(key)).checkpoint;
  } catch (e) {
    return fail('CHECKPOINT_INVALID', { size: anchor?.size ?? 0, root: anchor?.rootHash ?? toBase64(new Uint8Array(32)) }, `The checkpoint of log "${log}" does not verify with key ${key}: ${(e as Error).message}.`);
  }
  const seen = { size: cp.size, root: toBase64(cp.rootHash) };
  if (anchor) {
    if (cp.size < anchor.size) await fail('ROLLBACK', seen, `Log "${log}" now has ${cp.size} entries, but you saw ${anchor.size} before: its history was rolled back.`);
    if (cp.size === anchor.size && seen.root !== anchor.rootHash) await fail('NOT_A_PREFIX', seen, `Log "${log}" has a different root at size ${cp.size} than the one you saw before: it was forked or rewritten.`);
    if (cp.size > anchor.size && anchor.size > 0) {
      const p = await client.json<{ proof: string[] }>('GET', `/v1/logs/${encodeURIComponent(log)}/proofs/consistency?from=${anchor.size}&to=${cp.size}`);
      try {
        verifyConsistency(anchor.size, cp.size, p.proof.map((x) => fromBase64(x)), fromBase64(anchor.rootHash, 32), cp.rootHash);
      } catch (e) {
        await fail('NOT_A_PREFIX', seen, `Log "${log}" at ${cp.size} entries does not extend the checkpoint at ${anchor.size} you saw before (${(e as Error).message}): its history was rewritten or forked.`);
      }
    }
  }
  trust.setSeen(info.origin, { verifierKey: key, size: cp.size, rootHash: seen.root, checkpoint: text, seenAt: new Date().toISOString() });
  return { log, origin: info.origin, size: cp.size, rootHash: seen.root, firstUse: !anchor, trustedSize: anchor?.size ?? null };
}
