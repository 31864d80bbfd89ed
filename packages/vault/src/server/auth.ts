/**
 * Authentication and the role policy for every route. A route states the roles it admits
 * (`config.roles`); everything else is refused. Refusals and failed authentication are
 * recorded in the vault's audit log before the answer goes out.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { adminTotp } from '../auth/totp.js';
import { checkWriterCertificate } from './mtls.js';

export function bearerToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer +(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

/**
 * The forms a route accepts a token in (config.credentials; default bearer only):
 *   bearer   Authorization: Bearer <token>
 *   basic    Authorization: Basic base64(<any user>:<token>) — Vector, Fluent Bit (a token in
 *            the user part with an empty password is accepted too)
 *   splunk   Authorization: Splunk <token> — Splunk HEC
 *   firehose X-Amz-Firehose-Access-Key: <token> — Firehose HTTP endpoint delivery
 *   apikey   Authorization: ApiKey base64(<any id>:<token>) — Elasticsearch clients, Beats,
 *            Logstash (`api_key: "custody:<token>"`)
 */
export type CredentialForm = 'bearer' | 'basic' | 'splunk' | 'firehose' | 'apikey';

function afterColon(b64: string): string | null {
  const plain = Buffer.from(b64, 'base64').toString('utf8');
  const colon = plain.indexOf(':');
  if (colon < 0) return plain || null;
  return plain.slice(colon + 1) || plain.slice(0, colon) || null;
}

export function presentedToken(req: FastifyRequest, forms: readonly CredentialForm[]): string | null {
  const h = req.headers.authorization;
  if (typeof h === 'string') {
    const m = /^(Bearer|Basic|Splunk|ApiKey) +(\S+)\s*$/i.exec(h);
    const scheme = m?.[1]!.toLowerCase();
    if (m && scheme === 'bearer' && forms.includes('bearer')) return m[2]!;
    if (m && scheme === 'splunk' && forms.includes('splunk')) return m[2]!;
    if (m && scheme === 'basic' && forms.includes('basic')) return afterColon(m[2]!);
    if (m && scheme === 'apikey' && forms.includes('apikey')) return afterColon(m[2]!);
  }
  if (forms.includes('firehose')) {
    const k = req.headers['x-amz-firehose-access-key'];
    if (typeof k === 'string' && k.length > 0) return k.trim();
  }
  return null;
}

const DEFAULT_FORMS: readonly CredentialForm[] = ['bearer'];

function howToSend(forms: readonly CredentialForm[]): string {
  const ways: Record<CredentialForm, string> = {
    bearer: '"Authorization: Bearer <token>"',
    basic: 'HTTP Basic auth with the token as password',
    splunk: '"Authorization: Splunk <token>"',
    firehose: 'the endpoint access key (X-Amz-Firehose-Access-Key) set to the token',
    apikey: '"Authorization: ApiKey base64(custody:<token>)"',
  };
  return forms.map((f) => ways[f]).join(' or ');
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
  app.addHook('onRequest', async (req) => {
    const cfg = req.routeOptions.config ?? {};
    const forms = cfg.credentials ?? DEFAULT_FORMS;
    const token = presentedToken(req, forms);
    if (token) req.principal = vault.auth.authenticate(token);
    if (cfg.public || cfg.tamper || req.is404) return; // unknown routes get a plain 404
    if (!req.principal) {
      const revoked = token !== null && vault.auth.isRevoked(token);
      const reason = token === null ? 'no token' : revoked ? 'revoked token' : 'unknown token';
      await vault.auditAnonymous({ type: 'auth.failed', reason, ...auditContext(req) }).catch(() => undefined);
      // Thrown, not sent: a protocol plugin's own error handler words it the protocol's way.
      throw new CustodyError(
        'UNAUTHENTICATED',
        token === null
          ? `Send your token as ${howToSend(forms)}.`
          : revoked
            ? 'This token was revoked; ask an admin for a new one.'
            : 'The token is not valid; check that you copied all of it.',
        { reason: token === null ? 'missing' : revoked ? 'revoked' : 'invalid' },
      );
    }
    const roles = cfg.roles ?? [];
    if (!roles.includes(req.principal.role)) {
      const kind = refusalKind(req.principal.role, req.method);
      await vault.audit({ type: 'request.refused', kind, ...auditContext(req) }).catch(() => undefined);
      throw new CustodyError('FORBIDDEN', `A ${req.principal.role} token may not ${req.method} ${req.url.split('?')[0]}; this needs the ${roles.join(' or ') || 'no'} role. The attempt was recorded.`, { kind });
    }
    await checkWriterCertificate(app, vault, req); // --tls-client-ca: writers also need a client certificate (mtls.ts)
    if (cfg.totp) await requireTotp(vault, req);
  });
}

/**
 * A sensitive admin action (config.totp, docs/ADMIN.md): the caller must have enrolled a second
 * factor and send a current, unused code in X-Custody-TOTP. The code is used up here. Every
 * refusal is recorded as `admin.totp.failed` with its reason — never the code.
 */
export async function requireTotp(vault: Vault, req: FastifyRequest): Promise<void> {
  const h = req.headers['x-custody-totp'];
  const code = typeof h === 'string' ? h.trim().slice(0, 16) : undefined;
  const r = await adminTotp(vault).check(req.principal!.id, code);
  if (r.ok) return;
  await vault.audit({ type: 'admin.totp.failed', reason: r.reason, ...auditContext(req) }).catch(() => undefined);
  throw new CustodyError(r.code, r.message, { reason: r.reason });
}
