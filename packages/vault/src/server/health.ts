/** Unauthenticated: liveness, readiness and Prometheus metrics (no record content, no secrets). */
import type { FastifyInstance } from 'fastify';
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { Vault } from '../vault.js';

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'custody_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [this.registry] });
  readonly appended = new Counter({ name: 'custody_appended_entries_total', help: 'Entries acknowledged as durable', labelNames: ['log'], registers: [this.registry] });
  readonly refused = new Counter({ name: 'custody_refused_requests_total', help: 'Requests refused for authentication, role or tamper reasons', labelNames: ['reason'], registers: [this.registry] });
  readonly integration = new Histogram({ name: 'custody_integration_seconds', help: 'Duration of one integration round (bundles, tiles, checkpoint)', labelNames: ['log'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5], registers: [this.registry] });
  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
  watch(vault: Vault): void {
    new Gauge({
      name: 'custody_log_size',
      help: 'Entries covered by the latest signed checkpoint',
      labelNames: ['log'],
      registers: [this.registry],
      collect() {
        for (const [n, s] of vault.logs) this.set({ log: n }, s.size);
      },
    });
    new Gauge({
      name: 'custody_pending_entries',
      help: 'Durable entries not yet in a checkpoint, plus queued ones',
      labelNames: ['log'],
      registers: [this.registry],
      collect() {
        for (const [n, s] of vault.logs) this.set({ log: n }, s.pendingEntries);
      },
    });
  }
}

export async function healthRoutes(app: FastifyInstance, opts: { vault: Vault; metrics: Metrics }): Promise<void> {
  const { vault, metrics } = opts;
  const PUBLIC = { public: true };
  app.get('/healthz', { config: PUBLIC }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: PUBLIC }, async (_req, reply) => {
    const problems: Array<Record<string, unknown>> = [...vault.logs.values()].filter((s) => s.lastError).map((s) => ({ log: s.name, code: s.lastError!.code, message: s.lastError!.message }));
    // Shared mode: can this node reach PostgreSQL and the bucket right now?
    const shared = vault.shared && vault.sharedInfo ? await sharedReadiness(vault) : undefined;
    if (shared) for (const [what, r] of Object.entries(shared.checks)) if (!r.ok) problems.push({ check: what, code: 'STORAGE_UNAVAILABLE', message: r.message });
    if (problems.length > 0) return reply.code(503).header('Retry-After', '1').send({ status: 'degraded', problems, ...(shared ? { node: shared.node } : {}) });
    return { status: 'ready', logs: Object.fromEntries([...vault.logs].map(([n, s]) => [n, s.size])), ...(shared ? { node: shared.node, database: 'ok', storage: 'ok' } : {}) };
  });
  app.get('/metrics', { config: PUBLIC }, async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
}

/** PostgreSQL (SELECT 1) and S3 (reading a log's checkpoint object), each within 2 s. Messages carry no URL or secret. */
async function sharedReadiness(vault: Vault): Promise<{ node: string; checks: Record<'database' | 'storage', { ok: boolean; message?: string }> }> {
  const within = <T>(p: Promise<T>, what: string): Promise<T> =>
    Promise.race([p, new Promise<T>((_r, reject) => setTimeout(() => reject(new Error(`${what} did not answer within 2 s`)), 2_000).unref())]);
  const check = async (what: string, fn: () => Promise<unknown>): Promise<{ ok: boolean; message?: string }> => {
    try {
      await within(fn(), what);
      return { ok: true };
    } catch (e) {
      return { ok: false, message: `${what} cannot be reached: ${(e as Error).message.slice(0, 200)}` };
    }
  };
  const anyLog = [...vault.logs.values()][0];
  const [database, storage] = await Promise.all([
    check('PostgreSQL', () => vault.shared!.pool.query('SELECT 1')),
    check('S3', async () => {
      const store = anyLog?.store as unknown as { readCheckpoint(): Promise<string | null> } | undefined;
      await store?.readCheckpoint();
    }),
  ]);
  return { node: vault.shared!.nodeId, checks: { database, storage } };
}
