/**
 * Retention (docs/RETENTION.md), for auditors and admins:
 *
 *   GET /v1/retention               every log: retention in days, the oldest entry still held,
 *                                   what a purge would remove now, and the purges so far
 *   GET /v1/retention/purges[?log=] the purges (what `custody verify` reports as shredded)
 *
 * Changes go through two-person approval (POST /v1/approvals): `retention.extend`, `purge`,
 * `log.rotate-keys` (lifecycle/service.ts).
 */
import type { FastifyInstance } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import type { Services } from '../services.js';
import type { LifecycleService } from '../lifecycle/index.js';

const READERS = { roles: ['auditor' as const, 'admin' as const] };

export async function retentionRoutes(app: FastifyInstance, opts: { vault: Vault; services?: Services }): Promise<void> {
  const service = (): LifecycleService => {
    const s = opts.services?.retention;
    if (!s) throw new CustodyError('NOT_READY', 'The retention service is not running on this server; restart it with its background services.');
    return s;
  };

  app.get('/v1/retention', { config: READERS }, async () => service().overview());

  app.get<{ Querystring: { log?: string } }>('/v1/retention/purges', { config: READERS }, async (req) => {
    const log = req.query.log;
    if (log !== undefined) {
      if (typeof log !== 'string') throw new CustodyError('BAD_REQUEST', 'Give log once.');
      opts.vault.sequencer(log); // LOG_NOT_FOUND
    }
    const purges = service().store.purges(log || undefined).map(({ blobs: _blobs, ...p }) => p);
    return { purges };
  });
}
