/**
 * `custody notifiers …` (admin; docs/NOTIFIERS.md): list the notifiers (secrets shown as ***),
 * add one from a JSON file, send a test message through one, and ask for one's removal (a
 * two-person action). Sensitive commands take the current code from --totp or $CUSTODY_TOTP.
 */
import { readFileSync, statSync } from 'node:fs';
import { CustodyError } from '../errors.js';
import { CustodyClient } from './client.js';
import type { TestOutcome } from '../alarms/notify/index.js';
import { print, type ClientFlags } from './commands.js';
import { totpHeaders, request as requestApproval } from './admin.js';

export interface NotifierFlags extends ClientFlags {
  totp?: string;
}

interface NotifierView {
  id: string;
  type: string;
  source: string;
  target: string;
  createdAt: string;
  createdBy: string;
  config: Record<string, unknown>;
  deliveries?: { delivered: number; failed: number; pending: number; lastDeliveredAt: string | null; lastFailure: { at: string; error: string } | null };
}


function client(o: ClientFlags): CustodyClient {
  const c = new CustodyClient(o);
  c.requireToken();
  return c;
}

async function post<T>(c: CustodyClient, path: string, body: unknown, headers: Record<string, string>): Promise<T> {
  const res = await c.request('POST', path, { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  return (await res.json()) as T;
}

function filterText(c: Record<string, unknown>): string {
  const kinds = Array.isArray(c['kinds']) ? ` kinds ${(c['kinds'] as string[]).join(',')}` : '';
  return `severity ≥ ${String(c['minSeverity'] ?? 'low')}${kinds}`;
}

export async function notifiersList(o: ClientFlags): Promise<void> {
  const body = await client(o).json<{ notifiers: NotifierView[] }>('GET', '/v1/notifiers');
  print(o.json, body, () =>
    body.notifiers.length === 0
      ? 'No notifiers: alarms are only recorded in the vault. Add one with `custody notifiers add <file.json> --totp <code>` (docs/NOTIFIERS.md).'
      : body.notifiers
          .map((n) => {
            const d = n.deliveries;
            const stats = d ? `  delivered ${d.delivered}, failed ${d.failed}, waiting ${d.pending}${d.lastFailure ? `; last failure ${d.lastFailure.at}: ${d.lastFailure.error}` : ''}` : '';
            const name = typeof n.config['name'] === 'string' ? ` "${n.config['name']}"` : '';
            return `${n.id}${name}  ${n.target}\n  ${filterText(n.config)}; from ${n.source === 'file' ? 'notifiers.json' : `the API (${n.createdBy}, ${n.createdAt})`}\n${stats}`;
          })
          .join('\n\n'),
  );
}

export async function notifiersAdd(file: string, o: NotifierFlags): Promise<void> {
  let text: string;
  try {
    if (statSync(file).size > 64 * 1024) throw new CustodyError('BAD_REQUEST', `${file} is larger than 64 KiB; a notifier configuration is a small JSON object.`);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof CustodyError) throw e;
    throw new CustodyError('BAD_REQUEST', `Cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new CustodyError('NOTIFIER_INVALID', `${file} is not valid JSON (${(e as Error).message}).`, { file });
  }
  if (Array.isArray(config)) throw new CustodyError('NOTIFIER_INVALID', `${file} holds a list; add one notifier at a time (a JSON object like {"type": "webhook", …}).`, { file });
  const body = await post<{ notifier: NotifierView; note: string }>(client(o), '/v1/notifiers', config, totpHeaders(o));
  print(o.json, body, () => `Added ${body.notifier.id}: ${body.notifier.target} (${filterText(body.notifier.config)}).\nSend a test message: custody notifiers test ${body.notifier.id} --totp <code>`);
}

export async function notifiersTest(id: string, o: NotifierFlags): Promise<boolean> {
  const body = await post<{ test: TestOutcome }>(client(o), `/v1/notifiers/${encodeURIComponent(id)}/test`, {}, totpHeaders(o));
  const t = body.test;
  print(o.json, body, () =>
    t.ok
      ? `Delivered a test message through ${t.notifier} (${t.type}) in ${t.ms} ms: status ${t.status}${t.messageId ? `, message id ${t.messageId}` : ''}.`
      : `The test message through ${t.notifier} (${t.type}) failed${t.status !== undefined ? ` with status ${t.status}` : ''}: ${t.error}`,
  );
  return t.ok;
}

/** Removing weakens alerting: this asks for it; a different admin approves (custody admin approve). */
export async function notifiersRemove(id: string, o: NotifierFlags & { expires?: number }): Promise<void> {
  await requestApproval('notifier.remove', { ...o, param: [`id=${id}`] });
}
