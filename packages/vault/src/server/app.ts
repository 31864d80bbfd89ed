/**
 * The HTTP API: one Fastify plugin per area, each with its own parsers and limits.
 * docs/API.md lists the routes, the role that may call each, and the error codes.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import './types.js';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { registerAuth, auditContext } from './auth.js';
import { registerErrorHandling, sendError } from './errors.js';
import { readRoutes } from './read.js';
import { entryRoutes } from './entries.js';
import { principalRoutes } from './principals.js';
import { healthRoutes, Metrics } from './health.js';
import { protocolRoutes } from '../ingest/protocols/index.js';
import { exportRoutes } from './export.js';
import { trustRoutes } from './trust.js';
import { searchRoutes, type SearchService } from './search.js';
import type { SearchIndex } from '../search/index.js';
import { webRoutes } from './web.js';
import { alarmRoutes } from './alarms.js';
import { ruleRoutes } from './rules.js';
import { notifierRoutes } from './notifiers.js';
import { retentionRoutes } from './retention.js';
import { adminRoutes } from './admin.js';
import type { Services } from '../services.js';

export interface ServerOptions {
  vault: Vault;
  logger: Logger;
  metrics?: Metrics;
  https?: { key: Buffer; cert: Buffer };
  /** The vault's search index (search/index.ts); without it the search routes answer 503. */
  search?: SearchIndex | SearchService;
  /** Background services (services.ts) whose routes need them (rules, notifiers, retention …). */
  services?: Services;
}

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { vault } = opts;
  const metrics = opts.metrics ?? new Metrics();
  metrics.watch(vault);
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    trustProxy: false,
    return503OnClosing: true,
    // A client must send its whole request within this time (slow-body attacks hold sockets).
    requestTimeout: 120_000,
    ...(opts.https ? { https: opts.https } : {}),
  }) as unknown as FastifyInstance;

  registerErrorHandling(app);
  registerAuth(app, vault);

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unknown';
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    if (reply.statusCode === 401 || reply.statusCode === 403 || reply.statusCode === 405) {
      metrics.refused.inc({ reason: String(reply.statusCode) });
    }
    if (reply.statusCode >= 400) {
      req.log.info({ method: req.method, route, status: reply.statusCode, address: req.ip, principal: req.principal?.name }, 'request refused or failed');
    }
  });

  await app.register(tamperRoutes, { vault });

  app.get('/v1/whoami', { config: { roles: ['writer', 'auditor', 'admin'] } }, async (req) => ({
    id: req.principal!.id,
    name: req.principal!.name,
    role: req.principal!.role,
    logs: req.principal!.logs,
  }));

  await app.register(healthRoutes, { vault, metrics });
  await app.register(readRoutes, { vault });
  await app.register(searchRoutes, { vault, search: opts.search });
  await app.register(exportRoutes, { vault, search: opts.search && 'iterate' in opts.search ? opts.search : undefined });
  await app.register(principalRoutes, { vault });
  await app.register(trustRoutes, { vault });
  await app.register(alarmRoutes, { vault, services: opts.services });
  await app.register(ruleRoutes, { vault, services: opts.services });
  await app.register(notifierRoutes, { vault, services: opts.services });
  await app.register(retentionRoutes, { vault, services: opts.services });
  await app.register(adminRoutes, { vault, services: opts.services });
  await app.register(webRoutes, { tls: opts.https !== undefined });
  await app.register(entryRoutes, { vault, metrics });
  await app.register(protocolRoutes, { vault, metrics });
  return app;
}

/**
 * No API edits or deletes a record. Any attempt (PUT/PATCH/DELETE on log data, a POST into the
 * read tree) is refused with 405 and recorded (ARCHITECTURE.md, Roles) — whatever the body or
 * its content type, which are never parsed here.
 */
async function tamperRoutes(app: FastifyInstance, opts: { vault: Vault }): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => {
    payload.resume(); // drain and ignore
    payload.on('end', () => done(null, undefined));
    payload.on('error', () => done(null, undefined));
  });
  const tamper = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const event = { type: 'tamper.attempt', kind: 'modify-log-data', ...auditContext(req) };
    await (req.principal ? opts.vault.audit(event) : opts.vault.auditAnonymous(event)).catch(() => undefined);
    reply.header('Allow', /^\/v1\/logs\/[^/]+\/entries\/?$/.test(req.url.split('?')[0]!) ? 'POST' : 'GET');
    return sendError(reply, new CustodyError('METHOD_NOT_ALLOWED', `Records in Custody cannot be changed or deleted; ${req.method} is refused and the attempt was recorded.`));
  };
  for (const url of ['/logs/*', '/v1/logs/*', '/v1/logs']) {
    app.route({ method: ['DELETE', 'PUT', 'PATCH'], url, config: { tamper: true }, bodyLimit: 1024 * 1024 * 1024, handler: tamper });
  }
  app.route({ method: ['POST'], url: '/logs/*', config: { tamper: true }, bodyLimit: 1024 * 1024 * 1024, handler: tamper });
}

export { Metrics };
