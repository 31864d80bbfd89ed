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
    const problems = [...vault.logs.values()].filter((s) => s.lastError).map((s) => ({ log: s.name, code: s.lastError!.code, message: s.lastError!.message }));
    if (problems.length > 0) return reply.code(503).send({ status: 'degraded', problems });
    return { status: 'ready', logs: Object.fromEntries([...vault.logs].map(([n, s]) => [n, s.size])) };
  });
  app.get('/metrics', { config: PUBLIC }, async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
}
