/**
 * `custody admin …`: an admin's second factor (TOTP) and the two-person approvals
 * (docs/ADMIN.md). Sensitive commands take the current code from --totp or $CUSTODY_TOTP.
 */
import { resolve } from 'node:path';
import { CustodyError } from '../errors.js';
import { VaultDb } from '../storage/db.js';
import { readConfig } from '../vault.js';
import { AdminTotp } from '../auth/totp.js';
import type { Approval } from '../auth/approvals.js';
import { CustodyClient } from './client.js';
import { print, type ClientFlags } from './commands.js';

export interface TotpFlags extends ClientFlags {
  totp?: string;
}

/** The X-Custody-TOTP header from --totp or $CUSTODY_TOTP (none: the server says what to do). */
export function totpHeaders(o: { totp?: string }): Record<string, string> {
  const code = (o.totp ?? process.env.CUSTODY_TOTP ?? '').trim();
  return code ? { 'x-custody-totp': code } : {};
}

async function call<T>(c: CustodyClient, method: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const res = await c.request(method, path, { body: JSON.stringify(body ?? {}), headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.status, body: (await res.json()) as T };
}

function client(o: ClientFlags): CustodyClient {
  const c = new CustodyClient(o);
  c.requireToken();
  return c;
}

function describe(a: Approval): string {
  const decided = a.decidedBy ? ` by ${a.decidedBy} at ${a.decidedAt}` : a.decidedAt ? ` at ${a.decidedAt}` : '';
  return [
    `${a.id}  ${a.status.toUpperCase()}${decided}`,
    `  ${a.description}`,
    `  action ${a.action} ${JSON.stringify(a.params)}`,
    `  asked by ${a.requestedBy} at ${a.requestedAt}; expires ${a.expiresAt}`,
    ...(a.result && a.status !== 'pending' ? [`  result ${JSON.stringify(a.result)}`] : []),
  ].join('\n');
}

// ---- the second factor -------------------------------------------------------------------------

export async function totpEnroll(o: TotpFlags): Promise<void> {
  const { body } = await call<{ secret: string; otpauthUri: string; note: string }>(client(o), 'POST', '/v1/admin/totp', {}, totpHeaders(o));
  print(o.json, body, () =>
    [
      'Add this to your authenticator app (Google Authenticator, 1Password, Aegis, …): scan the URI',
      'as a QR code (e.g. `qrencode -t ansiutf8 "<uri>"`) or type the secret by hand.',
      '',
      `  secret  ${body.secret}`,
      `  URI     ${body.otpauthUri}`,
      '',
      'Then confirm with the code the app shows:  custody admin totp confirm <code>',
      'The secret is shown only now; until you confirm, it is not active.',
    ].join('\n'),
  );
}

export async function totpConfirm(code: string, o: ClientFlags): Promise<void> {
  const { body } = await call<{ enrolled: boolean; note: string }>(client(o), 'POST', '/v1/admin/totp/confirm', { code });
  print(o.json, body, () => 'Your second factor is active. Sensitive commands now take --totp <code> (or CUSTODY_TOTP).');
}

export async function me(o: ClientFlags): Promise<void> {
  const body = await client(o).json<{ id: string; name: string; role: string; totpEnrolled: boolean; totpPending: boolean }>('GET', '/v1/admin/me');
  print(o.json, body, () =>
    `${body.name} (${body.role}, ${body.id}): second factor ${body.totpEnrolled ? 'enrolled' : 'NOT enrolled — run custody admin totp enroll'}${body.totpPending ? '; an enrollment waits for confirmation' : ''}.`,
  );
}

/** Offline, on the server's data directory: forgets an admin's second factor (lost device). */
export async function totpReset(name: string, o: { data?: string; json?: boolean }): Promise<void> {
  if (!o.data) throw new CustodyError('CONFIG', 'Resetting a second factor works only on the data directory: pass --data <dir> (on the server).');
  const dataDir = resolve(o.data);
  readConfig(dataDir);
  const db = VaultDb.inDataDir(dataDir);
  try {
    const p = db.getPrincipal(name);
    if (!p || p.role !== 'admin') throw new CustodyError('PRINCIPAL_NOT_FOUND', `There is no admin "${name}": list them with \`custody token list --data ${o.data}\`.`);
    const had = AdminTotp.reset(db.sqlite, p.id);
    db.addPendingAudit({ type: 'admin.totp.reset', offline: true, target: { id: p.id, name: p.name }, had, principal: null, via: 'custody admin totp reset --data' });
    print(o.json, { reset: had, admin: { id: p.id, name: p.name } }, () =>
      had ? `The second factor of ${p.name} is gone; they enroll again with custody admin totp enroll. This is recorded in the audit log.` : `${p.name} had no second factor.`,
    );
  } finally {
    db.close();
  }
}

// ---- approvals ---------------------------------------------------------------------------------

/** --param k=v (a string) and k:=<json> (a number, true, a list …), then --params-json on top. */
export function parseParams(pairs: string[] = [], json?: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (json !== undefined) {
    let v: unknown;
    try {
      v = JSON.parse(json);
    } catch {
      throw new CustodyError('BAD_REQUEST', `--params-json is not valid JSON; for example '{"name":"alice"}'.`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CustodyError('BAD_REQUEST', '--params-json must be a JSON object.');
    Object.assign(out, v);
  }
  for (const p of pairs) {
    const typed = /^([A-Za-z_][A-Za-z0-9_.-]*):=(.*)$/s.exec(p);
    const plain = /^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$/s.exec(p);
    if (typed) {
      try {
        out[typed[1]!] = JSON.parse(typed[2]!);
      } catch {
        throw new CustodyError('BAD_REQUEST', `--param ${typed[1]}:=… must be JSON (e.g. days:=400); use ${typed[1]}=… for a string.`);
      }
    } else if (plain) out[plain[1]!] = plain[2]!;
    else throw new CustodyError('BAD_REQUEST', `--param "${p.slice(0, 40)}" must look like key=value (a string) or key:=json (e.g. days:=400).`);
  }
  return out;
}

export async function request(action: string, o: TotpFlags & { param?: string[]; paramsJson?: string; expires?: number }): Promise<void> {
  const params = parseParams(o.param, o.paramsJson);
  const { status, body } = await call<{ approval?: Approval; result?: Record<string, unknown>; description?: string }>(
    client(o),
    'POST',
    '/v1/approvals',
    { action, params, ...(o.expires !== undefined ? { expiresInMinutes: o.expires } : {}) },
    totpHeaders(o),
  );
  print(o.json, body, () =>
    status === 202 && body.approval
      ? [`Requested ${body.approval.id}: ${body.approval.description}`, `It takes effect when a different admin approves it before ${body.approval.expiresAt}:`, `  custody admin approve ${body.approval.id} --totp <code>`].join('\n')
      : `Done at once (this change needs no second admin): ${body.description ?? action}\n${JSON.stringify(body.result, null, 2)}`,
  );
}

export async function list(o: ClientFlags & { status?: string; limit?: number }): Promise<void> {
  const q = new URLSearchParams();
  if (o.status) q.set('status', o.status);
  if (o.limit !== undefined) q.set('limit', String(o.limit));
  const body = await client(o).json<{ approvals: Approval[] }>('GET', `/v1/approvals${q.size ? '?' + q : ''}`);
  print(o.json, body, () => (body.approvals.length === 0 ? `No ${o.status ?? ''} approval requests.`.replace('  ', ' ') : body.approvals.map(describe).join('\n\n')));
}

export async function approve(id: string, o: TotpFlags): Promise<void> {
  const { body } = await call<{ approval: Approval; result: Record<string, unknown> }>(client(o), 'POST', `/v1/approvals/${encodeURIComponent(id)}/approve`, {}, totpHeaders(o));
  const token = typeof body.result['token'] === 'string' ? body.result['token'] : undefined;
  print(o.json, body, () =>
    [
      `Approved and done: ${body.approval.description}`,
      ...(token ? [`The new token (shown only now; hand it over safely):`, token] : [`Result: ${JSON.stringify(body.result)}`]),
    ].join('\n'),
  );
}

export async function deny(id: string, o: TotpFlags & { reason?: string }): Promise<void> {
  const { body } = await call<{ approval: Approval }>(client(o), 'POST', `/v1/approvals/${encodeURIComponent(id)}/deny`, o.reason ? { reason: o.reason } : {}, totpHeaders(o));
  print(o.json, body, () => `${body.approval.id} is ${body.approval.status}: ${body.approval.description}`);
}
