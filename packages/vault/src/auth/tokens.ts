/**
 * Bearer tokens: 32 random bytes, shown once, stored only as their SHA-256 (a token has 256
 * bits of entropy, so a fast hash is enough; nothing to brute-force). Comparison is constant
 * time. The authenticator keeps principals in memory and reloads them when the database
 * changes (another process, e.g. `custody token create --data`, may have written it).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { CustodyError } from '../errors.js';
import type { PrincipalRow, Role, VaultDb } from '../storage/db.js';
import { ROLES } from '../storage/db.js';

export const TOKEN_PREFIX = 'cst_';
const TOKEN_RE = /^cst_[A-Za-z0-9_-]{43}$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export interface NewPrincipal {
  name: string;
  role: Role;
  logs?: string[] | null;
  createdBy: string;
}

/** Checks a new principal and makes its token; the caller stores it (`createPrincipal` below, or PostgreSQL). */
export function newPrincipal(p: NewPrincipal, knownLogs: string[]): { principal: PrincipalRow; token: string; tokenHash: Buffer } {
  if (!NAME_RE.test(p.name)) {
    throw new CustodyError('BAD_REQUEST', 'A principal name is 1 to 64 characters: letters, digits, and . _ @ - (starting with a letter or digit).');
  }
  if (!ROLES.includes(p.role)) throw new CustodyError('BAD_REQUEST', `Role must be one of ${ROLES.join(', ')}.`);
  const logs = p.logs && p.logs.length > 0 ? [...new Set(p.logs)] : null;
  if (logs && p.role !== 'writer') throw new CustodyError('BAD_REQUEST', 'Only writers are scoped to logs; leave "logs" out for auditors and admins.');
  for (const l of logs ?? []) {
    if (!knownLogs.includes(l)) throw new CustodyError('LOG_NOT_FOUND', `There is no log "${l}" a writer could append to; the logs are: ${knownLogs.join(', ')}.`);
  }
  const token = generateToken();
  const principal: PrincipalRow = {
    id: 'p_' + randomBytes(8).toString('hex'),
    name: p.name,
    role: p.role,
    logs,
    createdAt: new Date().toISOString(),
    createdBy: p.createdBy,
    revokedAt: null,
    revokedBy: null,
  };
  return { principal, token, tokenHash: hashToken(token) };
}

export function createPrincipal(db: VaultDb, p: NewPrincipal, knownLogs: string[]): { principal: PrincipalRow; token: string } {
  const { principal, token, tokenHash } = newPrincipal(p, knownLogs);
  db.addPrincipal(principal, tokenHash);
  return { principal, token };
}

/**
 * Where the authenticator reads principals from: the vault database (VaultDb), or in shared
 * mode the node's copy of PostgreSQL's principals (vault.ts keeps it current: LISTEN/NOTIFY and
 * a reload every second). Both are synchronous: a token check never waits for I/O.
 */
export interface PrincipalSource {
  principalsWithHashes(): Array<{ principal: PrincipalRow; tokenHash: Buffer }>;
  /** Changes whenever the principals may have changed. */
  dataVersion(): number;
}

export class Authenticator {
  private byHash = new Map<string, { principal: PrincipalRow; tokenHash: Buffer }>();
  private dataVersion = -1;
  private checkedAt = 0;

  constructor(private readonly db: PrincipalSource) {
    this.reload();
  }

  reload(): void {
    const next = new Map<string, { principal: PrincipalRow; tokenHash: Buffer }>();
    for (const r of this.db.principalsWithHashes()) next.set(r.tokenHash.toString('hex'), r);
    this.byHash = next;
    this.dataVersion = this.db.dataVersion();
    this.checkedAt = Date.now();
  }

  private refreshIfChanged(): void {
    const now = Date.now();
    if (now - this.checkedAt < 500) return;
    this.checkedAt = now;
    if (this.db.dataVersion() !== this.dataVersion) this.reload();
  }

  /** The active principal holding `token`, or null (unknown, malformed or revoked). */
  authenticate(token: string): PrincipalRow | null {
    if (!TOKEN_RE.test(token)) return null;
    this.refreshIfChanged();
    const h = hashToken(token);
    const hit = this.byHash.get(h.toString('hex'));
    if (!hit || !timingSafeEqual(hit.tokenHash, h)) return null;
    return hit.principal.revokedAt ? null : hit.principal;
  }

  /** Whether the token belongs to a revoked principal (for a clearer refusal message). */
  isRevoked(token: string): boolean {
    if (!TOKEN_RE.test(token)) return false;
    return this.byHash.get(hashToken(token).toString('hex'))?.principal.revokedAt != null;
  }
}
