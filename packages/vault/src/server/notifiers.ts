/**
 * Notifiers (admin): GET /v1/notifiers lists them with every secret as "***";
 * POST /v1/notifiers adds one (TOTP); POST /v1/notifiers/:id/test sends a test message through
 * one now and answers how it went (TOTP). Removing a notifier weakens alerting, so it is the
 * two-person action "notifier.remove" (POST /v1/approvals), never a direct DELETE.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import type { Services } from '../services.js';
import type { NotifierHub } from '../alarms/notify/index.js';
import { publicView } from '../alarms/notify/config.js';
import { auditContext } from './auth.js';

const ADMIN = { roles: ['admin' as const] };
/** A notifier configuration is small; anything larger is refused before it is parsed. */
const MAX_CONFIG_BYTES = 64 * 1024;

async function tooLarge(req: FastifyRequest): Promise<void> {
  const n = Number(req.headers['content-length']);
  if (Number.isFinite(n) && n > MAX_CONFIG_BYTES) {
    throw new CustodyError('NOTIFIER_INVALID', `The notifier configuration is ${n} bytes; at most ${MAX_CONFIG_BYTES} are allowed (a notifier is a small JSON object).`, { field: '(body)' });
  }
}
const ADMIN_TOTP = { roles: ['admin' as const], totp: true };

export async function notifierRoutes(app: FastifyInstance, opts: { vault: Vault; services?: Services }): Promise<void> {
  const { vault } = opts;
  const hub = (): NotifierHub => {
    const h = opts.services?.notifiers;
    if (!h) throw new CustodyError('NOT_READY', 'Notifiers are not running on this server (its background services were not started).');
    return h;
  };

  app.get('/v1/notifiers', { config: ADMIN }, async () => ({ notifiers: hub().list() }));

  app.post<{ Body: unknown }>('/v1/notifiers', { config: ADMIN_TOTP, preParsing: tooLarge }, async (req, reply) => {
    if (!req.body || typeof req.body !== 'object' || Array.isArray(req.body)) {
      throw new CustodyError('NOTIFIER_INVALID', 'Send one notifier as a JSON object, like {"type": "webhook", "url": "https://…", "secret": "…"} (docs/NOTIFIERS.md).', { field: '(body)' });
    }
    const n = await hub().add(req.body, req.principal!.name);
    const view = publicView(n);
    await vault.audit({ type: 'notifier.added', notifier: view, ...auditContext(req) });
    return reply.code(201).send({ notifier: view, note: `Send a test message with POST /v1/notifiers/${n.id}/test (custody notifiers test ${n.id}).` });
  });

  app.post<{ Params: { id: string } }>('/v1/notifiers/:id/test', { config: ADMIN_TOTP, bodyLimit: 1024 }, async (req) => {
    const h = hub();
    h.get(req.params.id); // NOTIFIER_NOT_FOUND
    const outcome = await h.test(req.params.id);
    await vault.audit({ type: 'notifier.tested', notifier: outcome.notifier, notifierType: outcome.type, ok: outcome.ok, ...(outcome.status !== undefined ? { status: outcome.status } : {}), ...(outcome.error ? { error: outcome.error } : {}), ...auditContext(req) });
    return { test: outcome };
  });
}
