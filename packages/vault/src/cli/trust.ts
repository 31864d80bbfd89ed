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

export interface TrustedLog {
  verifierKey: string;
  size: number;
  rootHash: string; // base64
  checkpoint: string;
  verifiedAt: string;
  source: string;
}

interface TrustFile {
  version: 1;
  logs: Record<string, TrustedLog>;
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
    writeFileAtomicSync(this.path, JSON.stringify(this.file, null, 2) + '\n', 0o600);
  }
}
