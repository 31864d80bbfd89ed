/**
 * A vault on a data directory that survives a restart (close, then open again on the same
 * directory), with the real Fastify app and background services — for retention tests.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { initVault, Vault } from '../../src/vault.js';
import { buildServer } from '../../src/server/index.js';
import { startServices, type Services } from '../../src/services.js';
import type { LifecycleService } from '../../src/lifecycle/index.js';
import type { ActionContext } from '../../src/auth/actions.js';

export const DAY = 86_400_000;

export interface Harness {
  dataDir: string;
  vault: Vault;
  app: FastifyInstance;
  services: Services;
  retention: LifecycleService;
  /** The search index, when opened with `search: true`. */
  search?: import('../../src/search/index.js').SearchIndex;
  tokens: { admin: string; writer: string; auditor: string };
  /** Stops everything but keeps the data directory. */
  stop(): Promise<void>;
  /** Stops and removes the data directory. */
  close(): Promise<void>;
}

export interface HarnessOptions {
  dataDir?: string;
  timing?: Record<string, number>;
  search?: boolean;
}

export async function openHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'custody-lifecycle-'));
  if (!existsSync(join(dataDir, 'vault.json'))) initVault(dataDir, {});
  const text = readFileSync(join(dataDir, 'initial-tokens.txt'), 'utf8');
  const tok = (k: string): string => new RegExp(`^${k}_TOKEN=(\\S+)$`, 'm').exec(text)![1]!;
  const logger = pino({ level: 'silent' });
  const vault = await Vault.open(dataDir, { logger, checkpointIntervalMs: 20 });
  let search: import('../../src/search/index.js').SearchIndex | undefined;
  let services: Services | undefined;
  let app: FastifyInstance | undefined;
  try {
    if (opts.search) {
      const { SearchIndex } = await import('../../src/search/index.js');
      search = SearchIndex.open(vault, { logger, pollMs: 20 });
    }
    services = await startServices(vault, { logger, timing: { selfAuditIntervalMs: 3_600_000, ...(opts.timing ?? {}) } });
    app = await buildServer({ vault, logger, services, search });
    await app.ready();
  } catch (e) {
    await app?.close();
    await services?.close();
    await search?.close();
    await vault.close();
    throw e;
  }
  const stop = async (): Promise<void> => {
    await app!.close();
    await services!.close();
    await search?.close();
    await vault.close();
  };
  return {
    dataDir,
    vault,
    app,
    services,
    retention: services.retention!,
    search,
    tokens: { admin: tok('ADMIN'), writer: tok('WRITER'), auditor: tok('AUDITOR') },
    stop,
    async close() {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Serves the harness's app on a loopback port (for the CLI and Go's tlogcheck); returns its URL. */
export async function listen(h: Harness): Promise<string> {
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  const a = h.app.server.address();
  if (a === null || typeof a === 'string') throw new Error('no address');
  return `http://127.0.0.1:${a.port}`;
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

export const CTX: ActionContext = { requestId: 'test-request', requestedBy: 'alice', approvedBy: 'bob' };

/** Appends records (JSON lines) to a log through the API; waits until they are in a checkpoint. */
export async function append(h: Harness, records: string[], log = 'local'): Promise<{ first: number; received: string }> {
  const r = await h.app.inject({ method: 'POST', url: `/v1/logs/${log}/entries`, headers: { ...bearer(h.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: records.join('\n') + '\n' });
  if (r.statusCode !== 200) throw new Error(`append: ${r.statusCode} ${r.body.slice(0, 300)}`);
  const a = r.json<{ first: number; count: number; received: string; indices: number[] }>();
  const seq = h.vault.sequencer(log);
  await seq.waitForCheckpoint(seq.sequencedSize);
  return { first: a.indices[0]!, received: a.received };
}

/** `n` small distinct records. */
export function records(n: number, tag: string): string[] {
  return Array.from({ length: n }, (_, i) => JSON.stringify({ tag, i, msg: `event ${tag} ${i}` }));
}

/** A record too large for an entry: stored as a blob. */
export function bigRecord(tag: string): string {
  return JSON.stringify({ tag, pad: tag.repeat(Math.ceil(70_000 / tag.length)).slice(0, 70_000) });
}

export function treeDir(h: Harness, log = 'local'): string {
  return join(h.dataDir, 'logs', log, 'tree');
}

export function bundleFile(h: Harness, k: number, log = 'local'): string {
  return join(treeDir(h, log), 'tile', 'entries', String(k).padStart(3, '0'));
}

/**
 * Every hash tile file and the checkpoint (path → bytes): what a purge must never touch. A
 * partial tile whose full tile exists is left out: the integrator removes those on its own.
 */
export function snapshotTree(h: Harness, log = 'local'): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string): void => {
    for (const n of readdirSync(dir)) {
      const p = join(dir, n);
      const r = rel ? `${rel}/${n}` : n;
      if (r === 'tile/entries') continue;
      if (n.endsWith('.p') && existsSync(p.slice(0, -2))) continue;
      if (statSync(p).isDirectory()) walk(p, r);
      else out.set(r, readFileSync(p).toString('base64'));
    }
  };
  walk(treeDir(h, log), '');
  return out;
}

/** Blob files of a log (file names). */
export function blobFiles(h: Harness, log = 'local'): string[] {
  const dir = join(h.dataDir, 'logs', log, 'blobs');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((d) => readdirSync(join(dir, d)));
}

/** Audit records (JSON), oldest first, read as an auditor over the API. */
export async function auditRecords(h: Harness): Promise<Array<Record<string, unknown>>> {
  const seq = h.vault.sequencer('audit');
  await seq.waitForCheckpoint(seq.sequencedSize);
  const out: Array<Record<string, unknown>> = [];
  for (let i = 0; i < seq.size; i++) {
    const r = await h.app.inject({ method: 'GET', url: `/v1/logs/audit/entries/${i}`, headers: bearer(h.tokens.auditor) });
    if (r.statusCode === 200) out.push(JSON.parse(r.json<{ record: string }>().record) as Record<string, unknown>);
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
