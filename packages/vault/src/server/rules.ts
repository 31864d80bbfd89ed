/**
 * Alarm rules (docs/ALARMS.md):
 *
 *   GET  /v1/rules        auditor, admin   every rule, with where it came from and who last changed it
 *   GET  /v1/rules/:id    auditor, admin   one rule (a silence rule also lists what it watches)
 *   POST /v1/rules        admin + TOTP     add a rule, or change one: the whole rule as it should be.
 *                                          A change that only tightens applies at once (200, 201 for
 *                                          a new rule); one that loosens becomes a two-person request
 *                                          (202 with the approval, action "rule.change").
 */
import type { FastifyInstance } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import type { Services } from '../services.js';
import type { DetectorEngine, StoredRule } from '../alarms/detectors/index.js';
import { approvals } from '../auth/approvals.js';
import { auditContext } from './auth.js';

const READERS = { roles: ['auditor' as const, 'admin' as const] };
const ADMIN_TOTP = { roles: ['admin' as const], totp: true };
const MAX_RULE_BODY = 256 * 1024;

function view(s: StoredRule): Record<string, unknown> {
  return { ...s.rule, origin: s.origin, createdAt: s.createdAt, updatedAt: s.updatedAt, updatedBy: s.updatedBy };
}

export async function ruleRoutes(app: FastifyInstance, opts: { vault: Vault; services?: Services }): Promise<void> {
  const { vault } = opts;
  const engine = (): DetectorEngine => {
    const e = opts.services?.detectors;
    if (!e) throw new CustodyError('NOT_READY', 'The detectors are not running on this server, so there are no rules to show or change.');
    return e;
  };

  // The body is read as text and parsed here, so malformed JSON is a RULE_INVALID like any bad rule.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_RULE_BODY }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err) => {
    if ((err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') throw new CustodyError('BODY_TOO_LARGE', `A rule is at most ${MAX_RULE_BODY / 1024} KiB of JSON.`);
    throw err;
  });

  app.get('/v1/rules', { config: READERS }, async () => ({ rules: engine().list().map(view) }));

  app.get<{ Params: { id: string } }>('/v1/rules/:id', { config: READERS }, async (req) => {
    const e = engine();
    const s = e.get(req.params.id);
    return s.rule.type === 'silence' ? { rule: view(s), watched: e.watched(s.rule.id) } : { rule: view(s) };
  });

  app.post<{ Body: string | undefined }>('/v1/rules', { config: ADMIN_TOTP }, async (req, reply) => {
    const e = engine();
    const text = typeof req.body === 'string' ? req.body : '';
    if (text.trim() === '') throw new CustodyError('RULE_INVALID', 'Send the rule as a JSON object in the body (docs/ALARMS.md has the format).', { field: '(body)' });
    let input: unknown;
    try {
      input = JSON.parse(text);
    } catch (err) {
      throw new CustodyError('RULE_INVALID', `The body is not valid JSON (${(err as Error).message.slice(0, 200)}).`, { field: '(body)' });
    }
    // Either the rule itself or {"rule": {…}} (the params of the "rule.change" action).
    if (typeof input === 'object' && input !== null && !Array.isArray(input) && 'rule' in input && !('id' in input)) input = (input as { rule: unknown }).rule;
    const principal = req.principal!;
    const ctx = auditContext(req);
    const a = e.assess(input);
    if (a.loosens.length > 0) {
      // Loosening: a two-person request; it applies when a different admin approves it.
      const r = await approvals(vault).request({ action: 'rule.change', params: { rule: a.rule } }, principal, ctx);
      if (!r.approval) throw new CustodyError('INTERNAL', 'A loosening rule change must need approval.');
      return reply.code(202).send({
        status: 'approval-needed',
        id: a.rule.id,
        loosens: a.loosens,
        approval: r.approval,
        note: `This change loosens rule ${a.rule.id} (${a.loosens.map((c) => c.note).join('; ')}), so it takes effect only when a different admin approves request ${r.approval.id} before ${r.approval.expiresAt}: custody admin approve ${r.approval.id} --totp <code>.`,
      });
    }
    const out = await e.change(a.rule, { by: principal.name, context: ctx });
    return reply.code(out.status === 'added' ? 201 : 200).send({ status: out.status, rule: view(e.get(out.rule.id)), changes: out.changes });
  });
}
