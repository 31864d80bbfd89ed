/**
 * An in-process vault for API tests: a fresh data directory, the real storage, sequencer and
 * Fastify app, driven with `app.inject` (no sockets). For process-level tests (kill -9,
 * tlogcheck over HTTP) see support/server.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { initVault, Vault } from '../../src/vault.js';
import { buildServer } from '../../src/server/index.js';
import { SearchIndex } from '../../src/search/index.js';
import { startServices, type Services } from '../../src/services.js';

export interface InProcVault {
  dataDir: string;
  vault: Vault;
  app: FastifyInstance;
  tokens: { admin: string; writer: string; auditor: string };
  /** The search index, when started with `search: true`. */
  search?: SearchIndex;
  /** Background services (detectors, notifiers, self-audit, retention). */
  services: Services;
  close(): Promise<void>;
}

export async function startInProc(opts: { checkpointIntervalMs?: number; regions?: string[]; maxPendingEntries?: number; admissionTimeoutMs?: number; auditFloodLimit?: number; auditFloodWindowMs?: number; /** Start the search index (and its follower) with the server. */ search?: boolean; /** Background service timing overrides (services.ts). */ timing?: Record<string, number>; /** Runs before the services start (e.g. to write rule or notifier files into the data dir). */ beforeServices?: (dataDir: string) => void } = {}): Promise<InProcVault> {
  const dataDir = mkdtempSync(join(tmpdir(), 'custody-test-'));
  const init = initVault(dataDir, { regions: opts.regions });
  const tok = (role: string): string => init.tokens.find((t) => t.role === role)!.token;
  const logger = pino({ level: 'silent' });
  const vault = await Vault.open(dataDir, { logger, checkpointIntervalMs: opts.checkpointIntervalMs ?? 20, maxPendingEntries: opts.maxPendingEntries, admissionTimeoutMs: opts.admissionTimeoutMs, auditFloodLimit: opts.auditFloodLimit, auditFloodWindowMs: opts.auditFloodWindowMs });
  const search = opts.search ? SearchIndex.open(vault, { logger, pollMs: 20 }) : undefined;
  opts.beforeServices?.(dataDir);
  const services = await startServices(vault, { logger, timing: opts.timing });
  const app = await buildServer({ vault, logger, search, services });
  await app.ready();
  return {
    dataDir,
    vault,
    app,
    tokens: { admin: tok('admin'), writer: tok('writer'), auditor: tok('auditor') },
    search,
    services,
    async close() {
      await app.close();
      await services.close();
      await search?.close();
      await vault.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** Auditor reads of the audit log: the JSON records, oldest first. */
export async function auditRecords(v: InProcVault): Promise<Array<Record<string, unknown>>> {
  const seq = v.vault.sequencer('audit');
  await seq.waitForCheckpoint(seq.sequencedSize);
  const out: Array<Record<string, unknown>> = [];
  for (let i = 0; i < seq.size; i++) {
    const r = await v.app.inject({ method: 'GET', url: `/v1/logs/audit/entries/${i}`, headers: bearer(v.tokens.auditor) });
    out.push(JSON.parse(r.json<{ record: string }>().record) as Record<string, unknown>);
  }
  return out;
}
