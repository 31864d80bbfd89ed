/**
 * GET /v1/alarms — alarms, newest first, for auditors and admins; filter by kind and time,
 * page with `before` (the `next` of the previous answer). GET /v1/alarms/:id — one alarm.
 */
import type { FastifyInstance } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import type { Services } from '../services.js';
import { ALARM_KINDS, type AlarmKind } from '../alarms/index.js';

const READERS = { roles: ['auditor' as const, 'admin' as const] };

function time(v: unknown, name: string): string | undefined {
  if (v === undefined || v === '') return undefined;
  const d = typeof v === 'string' ? new Date(v) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw new CustodyError('BAD_REQUEST', `"${name}" must be a time like 2026-12-03T00:00:00Z.`);
  return d.toISOString();
}

function int(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new CustodyError('BAD_REQUEST', `"${name}" must be a whole number from ${min} to ${max}.`);
  return n;
}

export async function alarmRoutes(app: FastifyInstance, opts: { vault: Vault; services?: Services }): Promise<void> {
  const { vault } = opts;
  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/alarms', { config: READERS }, async (req) => {
    const q = req.query;
    let kinds: AlarmKind[] | undefined;
    if (q.kind) {
      kinds = q.kind.split(',').map((k) => k.trim()) as AlarmKind[];
      const bad = kinds.find((k) => !ALARM_KINDS.includes(k));
      if (bad !== undefined) throw new CustodyError('BAD_REQUEST', `"${bad.slice(0, 40)}" is not an alarm kind; use ${ALARM_KINDS.join(', ')}.`);
    }
    const limit = int(q.limit, 'limit', 1, 500) ?? 100;
    const alarms = await vault.alarms.list({ kinds, since: time(q.since, 'since'), until: time(q.until, 'until'), limit, before: int(q.before, 'before', 1, Number.MAX_SAFE_INTEGER) });
    return { alarms, next: alarms.length === limit ? alarms[alarms.length - 1]!.id : null };
  });
  app.get<{ Params: { id: string } }>('/v1/alarms/:id', { config: READERS }, async (req) => {
    const id = int(req.params.id, 'id', 1, Number.MAX_SAFE_INTEGER)!;
    const a = await vault.alarms.get(id);
    if (!a) throw new CustodyError('NOT_FOUND', `There is no alarm ${id}. GET /v1/alarms lists them.`);
    return { alarm: a };
  });
}
