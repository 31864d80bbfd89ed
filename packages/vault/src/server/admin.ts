/**
 * Admins' second factor and the two-person rule (docs/ADMIN.md):
 *
 *   GET  /v1/admin/me                 admin           name, role, whether a second factor is enrolled
 *   POST /v1/admin/totp               admin           start enrollment: {secret, otpauthUri} (re-enrolling needs a current code)
 *   POST /v1/admin/totp/confirm       admin           {code}: the pending secret becomes active
 *   POST /v1/approvals                admin + TOTP    request a dangerous action → 202 {approval}
 *   GET  /v1/approvals[?status=]      admin, auditor  requests, newest first
 *   GET  /v1/approvals/:id            admin, auditor  one request
 *   POST /v1/approvals/:id/approve    admin + TOTP    a different admin approves: it runs now
 *   POST /v1/approvals/:id/deny       admin + TOTP    deny (the requester: cancel)
 */
import type { FastifyInstance } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import type { Services } from '../services.js';
import { adminTotp } from '../auth/totp.js';
import { approvals, APPROVAL_STATUSES, type ApprovalStatus } from '../auth/approvals.js';
import { auditContext, requireTotp } from './auth.js';

const ADMIN = { roles: ['admin' as const] };
const ADMIN_TOTP = { roles: ['admin' as const], totp: true };
const READERS = { roles: ['admin' as const, 'auditor' as const] };

function body(b: unknown): Record<string, unknown> {
  if (b === undefined || b === null) return {};
  if (typeof b !== 'object' || Array.isArray(b)) throw new CustodyError('BAD_REQUEST', 'Send a JSON object.');
  return b as Record<string, unknown>;
}

export async function adminRoutes(app: FastifyInstance, opts: { vault: Vault; services?: Services }): Promise<void> {
  const { vault } = opts;
  const totp = adminTotp(vault);
  const apr = approvals(vault); // registers admin.add and writers.revoke

  app.get('/v1/admin/me', { config: ADMIN }, async (req) => ({
    id: req.principal!.id,
    name: req.principal!.name,
    role: req.principal!.role,
    totpEnrolled: await totp.isEnrolled(req.principal!.id),
    totpPending: await totp.hasPending(req.principal!.id),
  }));

  app.post('/v1/admin/totp', { config: ADMIN }, async (req) => {
    const p = req.principal!;
    const again = await totp.isEnrolled(p.id);
    // Replacing a second factor is itself sensitive: whoever holds only the token must not.
    if (again) await requireTotp(vault, req);
    const { secret, otpauthUri } = await totp.begin(p.id, p.name);
    await vault.audit({ type: 'admin.totp.enrollment-started', reenroll: again, ...auditContext(req) });
    return {
      secret,
      otpauthUri,
      note: 'Add this secret to your authenticator app (scan the otpauth URI as a QR code, or type the secret), then confirm with the code it shows: custody admin totp confirm <code>. The secret is shown only now.' + (again ? ' Your current second factor stays active until you confirm.' : ''),
    };
  });

  app.post<{ Body: unknown }>('/v1/admin/totp/confirm', { config: ADMIN }, async (req) => {
    const b = body(req.body);
    const code = typeof b['code'] === 'string' ? b['code'].trim() : b['code'] === undefined ? undefined : String(b['code']).slice(0, 16);
    const r = await totp.confirm(req.principal!.id, code);
    if (!r.ok) {
      await vault.audit({ type: 'admin.totp.failed', reason: r.reason, stage: 'confirm', ...auditContext(req) }).catch(() => undefined);
      throw new CustodyError(r.code, r.message, { reason: r.reason });
    }
    await vault.audit({ type: 'admin.totp.enrolled', ...auditContext(req) });
    return { enrolled: true, note: 'Your second factor is active: sensitive actions now take a current code (--totp <code>, or the X-Custody-TOTP header).' };
  });

  app.post<{ Body: unknown }>('/v1/approvals', { config: ADMIN_TOTP }, async (req, reply) => {
    const b = body(req.body);
    const r = await apr.request({ action: b['action'], params: b['params'], expiresInMinutes: b['expiresInMinutes'] }, req.principal!, auditContext(req));
    if (r.approval) {
      return reply.code(202).send({ approval: r.approval, note: `Requested. It takes effect when a different admin approves it before ${r.approval.expiresAt}: custody admin approve ${r.approval.id} --totp <code>.` });
    }
    return reply.code(200).send({ id: r.id, action: b['action'], description: r.description, result: r.result });
  });

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/approvals', { config: READERS }, async (req) => {
    const status = req.query.status || undefined;
    if (status !== undefined && !APPROVAL_STATUSES.includes(status as ApprovalStatus)) {
      throw new CustodyError('BAD_REQUEST', `"status" must be one of ${APPROVAL_STATUSES.join(', ')}.`);
    }
    let limit = 100;
    if (req.query.limit !== undefined && req.query.limit !== '') {
      limit = /^\d{1,4}$/.test(req.query.limit) ? Number(req.query.limit) : NaN;
      if (!(limit >= 1 && limit <= 1000)) throw new CustodyError('BAD_REQUEST', '"limit" must be a whole number from 1 to 1000.');
    }
    return { approvals: await apr.list({ status: status as ApprovalStatus | undefined, limit }) };
  });

  app.get<{ Params: { id: string } }>('/v1/approvals/:id', { config: READERS }, async (req) => ({ approval: await apr.get(req.params.id) }));

  app.post<{ Params: { id: string }; Body: unknown }>('/v1/approvals/:id/approve', { config: ADMIN_TOTP }, async (req) => {
    const { approval, result } = await apr.approve(req.params.id, req.principal!, auditContext(req));
    return { approval, result };
  });

  app.post<{ Params: { id: string }; Body: unknown }>('/v1/approvals/:id/deny', { config: ADMIN_TOTP }, async (req) => {
    const b = body(req.body);
    const reason = b['reason'];
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > 500)) throw new CustodyError('BAD_REQUEST', '"reason" must be a sentence of at most 500 characters.');
    return { approval: await apr.deny(req.params.id, req.principal!, auditContext(req), reason as string | undefined) };
  });
}
