/** Admin API: create, list and revoke principals. A token is shown once, in the create answer. */
import type { FastifyInstance } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { ROLES, type Role } from '../storage/db.js';
import { auditContext } from './auth.js';
import { approvals } from '../auth/approvals.js';

const ADMIN = { roles: ['admin' as const] };
/** Creating and revoking principals needs a current TOTP code (docs/ADMIN.md). */
const ADMIN_TOTP = { roles: ['admin' as const], totp: true };

export async function principalRoutes(app: FastifyInstance, opts: { vault: Vault }): Promise<void> {
  const { vault } = opts;

  app.get('/v1/principals', { config: ADMIN }, async () => ({ principals: vault.db.listPrincipals() }));

  app.post<{ Body: unknown }>('/v1/principals', { config: ADMIN_TOTP }, async (req, reply) => {
    const b = req.body as { name?: unknown; role?: unknown; logs?: unknown } | null;
    if (!b || typeof b !== 'object') throw new CustodyError('BAD_REQUEST', 'Send a JSON object: {"name": "...", "role": "writer|auditor|admin", "logs": ["..."]}.');
    if (typeof b.name !== 'string') throw new CustodyError('BAD_REQUEST', '"name" is required (a string).');
    if (typeof b.role !== 'string' || !ROLES.includes(b.role as Role)) throw new CustodyError('BAD_REQUEST', `"role" must be one of ${ROLES.join(', ')}.`);
    if (b.logs !== undefined && (!Array.isArray(b.logs) || !b.logs.every((l) => typeof l === 'string'))) {
      throw new CustodyError('BAD_REQUEST', '"logs" must be a list of log names.');
    }
    if (b.role === 'admin') {
      // Two-person rule: with two active admins this becomes an admin.add request (auth/approvals.ts).
      if (Array.isArray(b.logs) && b.logs.length > 0) throw new CustodyError('BAD_REQUEST', 'Only writers are scoped to logs; leave "logs" out for auditors and admins.');
      const r = await approvals(vault).addAdmin(b.name, req.principal!, auditContext(req));
      if ('approval' in r) {
        return reply.code(202).send({ approval: r.approval, code: 'APPROVAL_REQUIRED', note: `Adding an admin needs a second admin: it takes effect when a different admin approves ${r.approval.id} (custody admin approve ${r.approval.id} --totp <code>).` });
      }
      return reply.code(201).send({ principal: r.principal, token: r.token, note: 'This token is shown only once; store it in your secret manager now. The vault had fewer than two admins, so this was done without a second approval and raised an alarm.' });
    }
    const { principal, token } = await vault.createPrincipal({ name: b.name, role: b.role as Role, logs: (b.logs as string[] | undefined) ?? null, createdBy: req.principal!.name });
    await vault.audit({ type: 'admin.principal.created', target: { id: principal.id, name: principal.name, role: principal.role, logs: principal.logs }, ...auditContext(req) });
    return reply.code(201).send({ principal, token, note: 'This token is shown only once; store it in your secret manager now.' });
  });

  app.post<{ Params: { id: string } }>('/v1/principals/:id/revoke', { config: ADMIN_TOTP }, async (req, reply) => {
    const target = vault.db.getPrincipal(req.params.id);
    if (target?.role === 'admin' && !target.revokedAt) {
      // Two-person rule: revoking an admin is an admin.revoke request (auth/approvals.ts).
      const r = await approvals(vault).request({ action: 'admin.revoke', params: { id: target.id } }, req.principal!, auditContext(req));
      return reply.code(202).send({ approval: r.approval, code: 'APPROVAL_REQUIRED', note: `Revoking an admin needs a second admin: it takes effect when a different admin approves ${r.approval?.id} (custody admin approve ${r.approval?.id} --totp <code>).` });
    }
    const p = await vault.revokePrincipal(req.params.id, req.principal!.name);
    await vault.audit({ type: 'admin.principal.revoked', target: { id: p.id, name: p.name, role: p.role }, ...auditContext(req) });
    return { principal: p };
  });
}
