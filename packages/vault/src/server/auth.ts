/**
 * Authentication and the role policy for every route. A route states the roles it admits
 * (`config.roles`); everything else is refused. Refusals and failed authentication are
 * recorded in the vault's audit log before the answer goes out.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { sendError } from './errors.js';

export function bearerToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer +(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

export function auditContext(req: FastifyRequest): Record<string, unknown> {
  return {
    method: req.method,
    path: req.url.split('?')[0]!.slice(0, 512),
    address: req.ip,
    principal: req.principal ? { id: req.principal.id, name: req.principal.name, role: req.principal.role } : null,
    userAgent: typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'].slice(0, 200) : undefined,
  };
}

/** The kind of refusal, named for the detectors (issue: alarms) and the audit log. */
function refusalKind(role: string, method: string): string {
  const write = method !== 'GET' && method !== 'HEAD';
  if (role === 'writer' && !write) return 'writer-read';
  if (role === 'auditor' && write) return 'auditor-write';
  if (role === 'admin' && !write) return 'admin-read';
  return 'role-refused';
}

export function registerAuth(app: FastifyInstance, vault: Vault): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (req, reply) => {
    const cfg = req.routeOptions.config ?? {};
    const token = bearerToken(req);
    if (token) req.principal = vault.auth.authenticate(token);
    if (cfg.public || cfg.tamper || req.is404) return; // unknown routes get a plain 404
    if (!req.principal) {
      const revoked = token !== null && vault.auth.isRevoked(token);
      const reason = token === null ? 'no token' : revoked ? 'revoked token' : 'unknown token';
      await vault.auditAnonymous({ type: 'auth.failed', reason, ...auditContext(req) }).catch(() => undefined);
      return sendError(
        reply,
        new CustodyError(
          'UNAUTHENTICATED',
          token === null
            ? 'Send your token as "Authorization: Bearer <token>".'
            : revoked
              ? 'This token was revoked; ask an admin for a new one.'
              : 'The token is not valid; check that you copied all of it.',
        ),
      );
    }
    const roles = cfg.roles ?? [];
    if (!roles.includes(req.principal.role)) {
      const kind = refusalKind(req.principal.role, req.method);
      await vault.audit({ type: 'request.refused', kind, ...auditContext(req) }).catch(() => undefined);
      return sendError(
        reply,
        new CustodyError('FORBIDDEN', `A ${req.principal.role} token may not ${req.method} ${req.url.split('?')[0]}; this needs the ${roles.join(' or ') || 'no'} role. The attempt was recorded.`, { kind }),
      );
    }
  });
}
