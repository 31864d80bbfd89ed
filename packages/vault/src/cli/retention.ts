/**
 * `custody retention list|extend|purge` and `custody keys rotate` (docs/RETENTION.md).
 * Extending, purging and rotating are two-person actions: these commands file the request
 * (POST /v1/approvals with the requester's TOTP code); a different admin approves it with
 * `custody admin approve <id> --totp <code>`.
 */
import { CustodyError } from '../errors.js';
import { CustodyClient } from './client.js';
import { print, type ClientFlags } from './commands.js';
import { MAX_RETENTION_DAYS } from '../lifecycle/store.js';
import type { LogRetention } from '../lifecycle/index.js';

interface Overview {
  now: string;
  defaultDays: number;
  logs: LogRetention[];
}

function client(o: ClientFlags): CustodyClient {
  const c = new CustodyClient(o);
  c.requireToken();
  return c;
}

export async function retentionList(o: ClientFlags): Promise<void> {
  const r = await client(o).json<Overview>('GET', '/v1/retention');
  print(o.json, r, () =>
    r.logs.length === 0
      ? 'No logs.'
      : r.logs
          .map((l) =>
            [
              `${l.log}: kept ${l.days} days (entries received before ${l.cutoff} are past it); ${l.size} entries`,
              `  oldest entry held: ${l.oldest ? `#${l.oldest.index}, received ${l.oldest.received}` : 'none'}`,
              `  a purge now would remove: ${l.purgeable.count > 0 ? `${l.purgeable.count} entries (${l.purgeable.from}–${l.purgeable.to - 1}, ${l.purgeable.bundles} bundles)` : 'nothing'}`,
              ...l.shredded.purges.map((p) => `  ${p.count} entries shredded by approved purge #${p.id} (${p.from}–${p.to - 1}, ${p.at}${p.state === 'done' ? '' : ', unfinished: the server finishes it at its next start'})`),
              ...(l.problem ? [`  cannot examine: ${l.problem}`] : []),
            ].join('\n'),
          )
          .join('\n'),
  );
}

interface ApprovalAnswer {
  approval?: { id: string; description: string; expiresAt: string; status: string };
  note?: string;
  result?: Record<string, unknown>;
  description?: string;
}

async function requestAction(o: ClientFlags & { totp?: string; expires?: number }, action: string, params: Record<string, unknown>): Promise<void> {
  const code = o.totp ?? process.env.CUSTODY_TOTP;
  if (!code) throw new CustodyError('TOTP_REQUIRED', 'This needs a current code from your authenticator app: add --totp <code> (or set CUSTODY_TOTP).');
  const res = await client(o).request('POST', '/v1/approvals', {
    body: JSON.stringify({ action, params, ...(o.expires !== undefined ? { expiresInMinutes: o.expires } : {}) }),
    headers: { 'content-type': 'application/json', 'x-custody-totp': code },
  });
  const a = (await res.json()) as ApprovalAnswer;
  print(o.json, a, () =>
    a.approval
      ? [
          `Requested (approval ${a.approval.id}): ${a.approval.description}.`,
          `It takes effect only when a different admin approves it before ${a.approval.expiresAt}:`,
          `  custody admin approve ${a.approval.id} --totp <their code>`,
        ].join('\n')
      : `Done: ${a.description ?? action}. ${String(a.result?.['message'] ?? '')}`.trim(),
  );
}

export function retentionExtend(log: string, days: string, o: ClientFlags & { totp?: string; expires?: number }): Promise<void> {
  if (!/^[0-9]{1,6}$/.test(days) || Number(days) < 1 || Number(days) > MAX_RETENTION_DAYS) {
    throw new CustodyError('BAD_REQUEST', `<days> must be a whole number of days from 1 to ${MAX_RETENTION_DAYS}; got ${JSON.stringify(days.slice(0, 20))}.`);
  }
  return requestAction(o, 'retention.extend', { log, days: Number(days) });
}

export function retentionPurge(log: string, o: ClientFlags & { totp?: string; expires?: number }): Promise<void> {
  return requestAction(o, 'purge', { log });
}

export function keysRotate(log: string, o: ClientFlags & { totp?: string; expires?: number; kmsKey?: string }): Promise<void> {
  return requestAction(o, 'log.rotate-keys', o.kmsKey !== undefined ? { log, kmsKey: o.kmsKey } : { log });
}
