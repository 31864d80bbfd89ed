/**
 * POST /v1/trust/report — an auditor's client (the CLI or the web UI) found that a log no longer
 * agrees with the checkpoint it verified before: a changed key, a smaller log, or a checkpoint
 * that is not an extension of the trusted one (history rewritten or forked). The client is the
 * witness here; the vault records what it says in its own audit log as an alarm
 * (`alarm.trust`), where the alarms feature and every auditor see it. Nothing in the report is
 * trusted beyond being recorded: values are checked for shape and size, never acted on.
 */
import type { FastifyInstance } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { auditContext } from './auth.js';

const REASONS = new Set(['KEY_CHANGED', 'ROLLBACK', 'NOT_A_PREFIX', 'CONSISTENCY_FAILED', 'CHECKPOINT_INVALID', 'ROOT_MISMATCH']);
const B64_HASH = /^[A-Za-z0-9+/]{43}=$/;

function point(v: unknown, name: string): { size: number; root: string } {
  const o = v as { size?: unknown; root?: unknown } | null;
  if (!o || typeof o !== 'object' || !Number.isSafeInteger(o.size) || (o.size as number) < 0 || typeof o.root !== 'string' || !B64_HASH.test(o.root)) {
    throw new CustodyError('BAD_REQUEST', `"${name}" must be {"size": <entries>, "root": "<base64 SHA-256 root hash>"}.`);
  }
  return { size: o.size as number, root: o.root };
}

export async function trustRoutes(app: FastifyInstance, opts: { vault: Vault }): Promise<void> {
  app.post('/v1/trust/report', { config: { roles: ['auditor'] }, bodyLimit: 16 * 1024 }, async (req, reply) => {
    const b = req.body as Record<string, unknown> | null;
    if (!b || typeof b !== 'object') throw new CustodyError('BAD_REQUEST', 'Send a JSON object: {"log", "reason", "trusted": {"size","root"}, "seen": {"size","root"}}.');
    const log = typeof b['log'] === 'string' ? b['log'] : '';
    opts.vault.logRow(log); // LOG_NOT_FOUND for anything else
    const reason = typeof b['reason'] === 'string' ? b['reason'] : '';
    if (!REASONS.has(reason)) throw new CustodyError('BAD_REQUEST', `"reason" must be one of ${[...REASONS].join(', ')}.`);
    const message = typeof b['message'] === 'string' ? b['message'].slice(0, 1000) : undefined;
    const client = typeof b['client'] === 'string' ? b['client'].slice(0, 64) : undefined;
    const report = {
      reason,
      log,
      trusted: point(b['trusted'], 'trusted'),
      seen: point(b['seen'], 'seen'),
      ...(typeof b['trustedKey'] === 'string' ? { trustedKey: b['trustedKey'].slice(0, 300) } : {}),
      ...(typeof b['seenKey'] === 'string' ? { seenKey: b['seenKey'].slice(0, 300) } : {}),
      ...(message ? { message } : {}),
      ...(client ? { client } : {}),
    };
    const ctx = auditContext(req);
    await opts.vault.audit({ type: 'alarm.trust', ...report, ...ctx });
    const alarm = await opts.vault.alarms.raise({
      kind: 'trust',
      rule: 'trust.report',
      severity: 'critical',
      title: `Auditor ${req.principal!.name} found log ${log} inconsistent with the checkpoint they verified before (${reason}): its history may have been rewritten or forked.`,
      details: { ...report, reportedBy: req.principal!.name, address: ctx['address'] },
      log,
    });
    return reply.code(202).send({ recorded: true, alarm: alarm.id, message: 'Recorded in the vault\'s audit log as an alarm. Keep your own copy of both checkpoints: they are the evidence.' });
  });
}
