/**
 * The two-person rule. A dangerous action (its handler registered in vault.actions) is requested
 * by one admin and runs only when a *different* admin approves it, with their own TOTP code,
 * before the request expires. Requests live in custody.db (table `approvals`); every step is in
 * the audit log, and a new request raises an `admin` alarm so the other admins hear of it.
 *
 * A decision is atomic: one UPDATE moves a request from pending to its decision, and only the
 * caller whose UPDATE changed the row goes on to execute; a racing second approver finds it
 * closed. Results are stored and audited with secrets (a new admin's token) replaced by a note:
 * they are shown once, in the approver's answer.
 */
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { CustodyError, isCustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import type { PrincipalRow } from '../storage/db.js';
import type { ActionHandler } from './actions.js';
import { adminClock } from './totp.js';
import { PgApprovalStore } from '../storage/pg/approvals.js';
import { sharedOf } from '../storage/pg/vault-shared.js';

export const APPROVAL_STATUSES = ['pending', 'approved', 'denied', 'expired', 'failed', 'cancelled'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

export interface Approval {
  id: string;
  action: string;
  params: Record<string, unknown>;
  /** What approving it does, in one sentence (the handler's describe). */
  description: string;
  /** Principal name and id of the admin who asked. */
  requestedBy: string;
  requestedById: string;
  requestedAt: string;
  expiresAt: string;
  status: ApprovalStatus;
  decidedBy: string | null;
  decidedAt: string | null;
  /** What executing returned (secrets replaced), or {error} when it failed, or {reason} of a denial. */
  result: Record<string, unknown> | null;
}

/** An approval row as stored (times as ISO text); storage/pg/approvals.ts maps its rows to this. */
export interface ApprovalDbRow {
  id: string;
  action: string;
  params: string;
  description: string;
  requested_by: string;
  requested_by_id: string;
  requested_at: string;
  expires_at: string;
  status: ApprovalStatus;
  decided_by: string | null;
  decided_at: string | null;
  result: string | null;
}

export function toApproval(r: ApprovalDbRow): Approval {
  return {
    id: r.id,
    action: r.action,
    params: JSON.parse(r.params) as Record<string, unknown>,
    description: r.description,
    requestedBy: r.requested_by,
    requestedById: r.requested_by_id,
    requestedAt: r.requested_at,
    expiresAt: r.expires_at,
    status: r.status,
    decidedBy: r.decided_by,
    decidedAt: r.decided_at,
    result: r.result === null ? null : (JSON.parse(r.result) as Record<string, unknown>),
  };
}

export const DEFAULT_EXPIRY_MINUTES = 1440;
export const MAX_EXPIRY_MINUTES = 10080;
const MAX_PARAMS_BYTES = 16 * 1024;

/**
 * Where approval requests are kept: custody.db on one node (ApprovalStore), or the shared
 * PostgreSQL when several nodes serve one vault (storage/pg/approvals.ts). Every decision is a
 * compare-and-set in the store, so the two-person rule holds across nodes: a request approved
 * on one node is closed on every other.
 */
export interface ApprovalStoreApi {
  readonly now: () => number;
  add(a: { action: string; params: Record<string, unknown>; description: string; by: PrincipalRow; expiresInMinutes: number }): Promise<Approval>;
  get(id: string): Promise<Approval | undefined>;
  /** Newest first. */
  list(q?: { status?: ApprovalStatus; limit?: number }): Promise<Approval[]>;
  /** Marks pending requests past their expiry as expired; returns those this call marked. */
  expireDue(): Promise<Approval[]>;
  /**
   * Moves a pending, unexpired request to `status` (approved, denied, cancelled). True only for
   * the one caller whose update took effect.
   */
  decide(id: string, status: 'approved' | 'denied' | 'cancelled', by: string, result?: Record<string, unknown> | null): Promise<boolean>;
  /** Records what executing an approved request gave (status stays approved, or becomes failed). */
  finish(id: string, status: 'approved' | 'failed', result: Record<string, unknown>): Promise<void>;
}

/** A new request id (both stores). */
export function newApprovalId(): string {
  return 'apr_' + randomBytes(9).toString('base64url');
}

/** The approvals table in custody.db (one node). Times are ISO strings from the injected clock. */
export class ApprovalStore implements ApprovalStoreApi {
  constructor(
    private readonly db: Database.Database,
    readonly now: () => number = Date.now,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS approvals (
      id TEXT PRIMARY KEY, action TEXT NOT NULL, params TEXT NOT NULL, description TEXT NOT NULL,
      requested_by TEXT NOT NULL, requested_by_id TEXT NOT NULL, requested_at TEXT NOT NULL,
      expires_at TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('pending','approved','denied','expired','failed','cancelled')),
      decided_by TEXT, decided_at TEXT, result TEXT);
    CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, expires_at);`);
  }

  nowIso(): string {
    return new Date(this.now()).toISOString();
  }

  async add(a: { action: string; params: Record<string, unknown>; description: string; by: PrincipalRow; expiresInMinutes: number }): Promise<Approval> {
    const id = newApprovalId();
    const now = this.now();
    this.db
      .prepare(`INSERT INTO approvals (id, action, params, description, requested_by, requested_by_id, requested_at, expires_at, status)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')`)
      .run(id, a.action, JSON.stringify(a.params), a.description, a.by.name, a.by.id, new Date(now).toISOString(), new Date(now + a.expiresInMinutes * 60_000).toISOString());
    return this.getSync(id)!;
  }

  private getSync(id: string): Approval | undefined {
    const r = this.db.prepare('SELECT * FROM approvals WHERE id = ?').get(id) as ApprovalDbRow | undefined;
    return r && toApproval(r);
  }

  async get(id: string): Promise<Approval | undefined> {
    return this.getSync(id);
  }

  /** Newest first. */
  async list(q: { status?: ApprovalStatus; limit?: number } = {}): Promise<Approval[]> {
    const limit = q.limit ?? 100;
    const rows = (q.status
      ? this.db.prepare('SELECT * FROM approvals WHERE status = ? ORDER BY requested_at DESC, rowid DESC LIMIT ?').all(q.status, limit)
      : this.db.prepare('SELECT * FROM approvals ORDER BY requested_at DESC, rowid DESC LIMIT ?').all(limit)) as ApprovalDbRow[];
    return rows.map(toApproval);
  }

  /** Marks pending requests past their expiry as expired; returns them. */
  async expireDue(): Promise<Approval[]> {
    const now = this.nowIso();
    return this.db.transaction(() => {
      const due = this.db.prepare("SELECT * FROM approvals WHERE status = 'pending' AND expires_at <= ?").all(now) as ApprovalDbRow[];
      const mark = this.db.prepare("UPDATE approvals SET status = 'expired', decided_at = ? WHERE id = ? AND status = 'pending'");
      return due.filter((r) => mark.run(now, r.id).changes === 1).map((r) => toApproval({ ...r, status: 'expired', decided_at: now }));
    }).immediate();
  }

  async decide(id: string, status: 'approved' | 'denied' | 'cancelled', by: string, result: Record<string, unknown> | null = null): Promise<boolean> {
    const now = this.nowIso();
    return this.db.transaction(
      () =>
        this.db
          .prepare("UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, result = ? WHERE id = ? AND status = 'pending' AND expires_at > ?")
          .run(status, by, now, result === null ? null : JSON.stringify(result), id, now).changes === 1,
    ).immediate();
  }

  async finish(id: string, status: 'approved' | 'failed', result: Record<string, unknown>): Promise<void> {
    this.db.prepare("UPDATE approvals SET status = ?, result = ? WHERE id = ? AND status = 'approved'").run(status, JSON.stringify(result), id);
  }
}

/** Keys whose values are shown once and never stored or audited. */
const SECRET_KEY = /^(token|secret|password|privateKey)$/i;
export const SHOWN_ONCE = '(shown once, in the approver\'s answer)';

/** A copy of `v` with secret-named keys replaced by a note. */
export function redactSecrets(v: unknown, depth = 0): unknown {
  if (depth > 20 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => redactSecrets(x, depth + 1));
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, SECRET_KEY.test(k) ? SHOWN_ONCE : redactSecrets(x, depth + 1)]));
}

function errorOf(e: unknown): { code: string; message: string } {
  return isCustodyError(e) ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: 'The action failed unexpectedly; the server log has the details.' };
}

/** Audit context of a request: method, path, address, principal (server/auth.ts auditContext). */
export type AuditContext = Record<string, unknown>;

function summary(a: Approval): Record<string, unknown> {
  return { id: a.id, action: a.action, description: a.description, requestedBy: a.requestedBy, expiresAt: a.expiresAt };
}

/** The approvals of one vault: requests, decisions, and their record in the audit log. */
export class Approvals {
  constructor(
    private readonly vault: Vault,
    readonly store: ApprovalStoreApi,
  ) {}

  /** Marks overdue requests expired (audited). Called whenever requests are looked at. */
  async expireDue(): Promise<void> {
    for (const a of await this.store.expireDue()) {
      await this.vault.audit({ type: 'approval.expired', ...summary(a), principal: null });
    }
  }

  /**
   * Asks for a dangerous action. When its handler says this particular change needs no second
   * person (needsApproval false) it is done at once and `result` is returned instead.
   */
  async request(
    input: { action: unknown; params?: unknown; expiresInMinutes?: unknown },
    by: PrincipalRow,
    ctx: AuditContext,
  ): Promise<{ approval: Approval; result?: undefined } | { approval?: undefined; result: Record<string, unknown>; id: string; description: string }> {
    if (typeof input.action !== 'string' || input.action.length === 0 || input.action.length > 64) {
      throw new CustodyError('BAD_REQUEST', `"action" is required: one of ${this.vault.actions.types().join(', ')}.`);
    }
    const handler: ActionHandler = this.vault.actions.get(input.action);
    const raw = input.params ?? {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CustodyError('BAD_REQUEST', '"params" must be a JSON object, e.g. {"name": "alice"}.');
    if (JSON.stringify(raw).length > MAX_PARAMS_BYTES) throw new CustodyError('BAD_REQUEST', `"params" is larger than ${MAX_PARAMS_BYTES} bytes.`);
    const minutes = input.expiresInMinutes ?? DEFAULT_EXPIRY_MINUTES;
    if (typeof minutes !== 'number' || !Number.isInteger(minutes) || minutes < 1 || minutes > MAX_EXPIRY_MINUTES) {
      throw new CustodyError('BAD_REQUEST', `"expiresInMinutes" must be a whole number from 1 to ${MAX_EXPIRY_MINUTES} (7 days); the default is ${DEFAULT_EXPIRY_MINUTES}.`);
    }
    const params = handler.validate(raw) as Record<string, unknown>;
    const description = handler.describe(params);
    await this.expireDue();
    if (handler.needsApproval?.(params) === false) {
      const id = newApprovalId();
      let result: Record<string, unknown>;
      try {
        result = await handler.execute(params, { requestId: id, requestedBy: by.name, approvedBy: by.name });
      } catch (e) {
        await this.vault.audit({ type: 'approval.failed', id, action: input.action, description, direct: true, error: errorOf(e), ...ctx });
        throw e;
      }
      await this.vault.audit({ type: 'approval.executed-directly', id, action: input.action, description, result: redactSecrets(result), ...ctx });
      return { result, id, description };
    }
    const approval = await this.store.add({ action: input.action, params, description, by, expiresInMinutes: minutes });
    await this.vault.audit({ type: 'approval.requested', ...summary(approval), params: redactSecrets(params), ...ctx });
    await this.vault.alarms.raise({
      kind: 'admin',
      rule: 'approval.requested',
      severity: 'info',
      title: `${by.name} asks another admin to approve: ${description} (request ${approval.id}, expires ${approval.expiresAt})`,
      details: { id: approval.id, action: approval.action, description, requestedBy: by.name, address: ctx['address'], expiresAt: approval.expiresAt, approveWith: `custody admin approve ${approval.id} --totp <code>` },
    });
    return { approval };
  }

  async get(id: string): Promise<Approval> {
    await this.expireDue();
    const a = await this.store.get(id);
    if (!a) throw new CustodyError('APPROVAL_NOT_FOUND', `There is no approval request "${id.slice(0, 64)}". GET /v1/approvals lists them (custody admin approvals).`);
    return a;
  }

  async list(q: { status?: ApprovalStatus; limit?: number }): Promise<Approval[]> {
    await this.expireDue();
    return await this.store.list(q);
  }

  private async refuse(a: Approval, reason: string, ctx: AuditContext, e: CustodyError): Promise<never> {
    await this.vault.audit({ type: 'approval.refused', reason, ...summary(a), status: a.status, ...ctx });
    throw e;
  }

  private closed(a: Approval): CustodyError {
    const why = a.status === 'expired' ? `expired at ${a.expiresAt}` : `was already ${a.status}${a.decidedBy ? ` by ${a.decidedBy}` : ''}`;
    return new CustodyError('APPROVAL_CLOSED', `Request ${a.id} ${why}; nothing was done. Ask again with \`custody admin request ${a.action} …\` if it is still needed.`, { status: a.status });
  }

  /** A different admin approves: the action runs now; its result is returned (secrets once). */
  async approve(id: string, by: PrincipalRow, ctx: AuditContext): Promise<{ approval: Approval; result: Record<string, unknown> }> {
    const a = await this.get(id);
    if (a.requestedById === by.id) {
      await this.refuse(a, 'self-approval', ctx, new CustodyError('SELF_APPROVAL', `You asked for ${a.id} yourself; a different admin must approve it (they run \`custody admin approve ${a.id} --totp <code>\`).`));
    }
    if (a.status !== 'pending') await this.refuse(a, 'closed', ctx, this.closed(a));
    if (!(await this.store.decide(a.id, 'approved', by.name))) {
      await this.expireDue();
      const now = (await this.store.get(a.id))!;
      await this.refuse(now, 'closed', ctx, this.closed(now));
    }
    await this.vault.audit({ type: 'approval.approved', ...summary(a), approvedBy: by.name, ...ctx });
    let result: Record<string, unknown>;
    try {
      const handler: ActionHandler = this.vault.actions.get(a.action);
      const params = handler.validate(a.params);
      result = await handler.execute(params, { requestId: a.id, requestedBy: a.requestedBy, approvedBy: by.name });
    } catch (e) {
      const error = errorOf(e);
      await this.store.finish(a.id, 'failed', { error });
      await this.vault.audit({ type: 'approval.failed', ...summary(a), approvedBy: by.name, error, ...ctx });
      throw e;
    }
    const stored = redactSecrets(result) as Record<string, unknown>;
    await this.store.finish(a.id, 'approved', stored);
    await this.vault.audit({ type: 'approval.executed', ...summary(a), approvedBy: by.name, result: stored, ...ctx });
    return { approval: (await this.store.get(a.id))!, result };
  }

  /** Any admin may deny a pending request; the requester denying it cancels it. */
  async deny(id: string, by: PrincipalRow, ctx: AuditContext, reason?: string): Promise<Approval> {
    const a = await this.get(id);
    if (a.status !== 'pending') await this.refuse(a, 'closed', ctx, this.closed(a));
    const status = a.requestedById === by.id ? 'cancelled' : 'denied';
    if (!(await this.store.decide(a.id, status, by.name, reason ? { reason } : null))) {
      await this.expireDue();
      const now = (await this.store.get(a.id))!;
      await this.refuse(now, 'closed', ctx, this.closed(now));
    }
    await this.vault.audit({ type: `approval.${status}`, ...summary(a), decidedBy: by.name, ...(reason ? { reason } : {}), ...ctx });
    return (await this.store.get(a.id))!;
  }

  /**
   * POST /v1/principals with role admin. While the vault has fewer than two active admins
   * nobody could approve, so the admin is added at once (audited, and an alarm is raised);
   * after that it becomes an `admin.add` request.
   */
  async addAdmin(name: string, by: PrincipalRow, ctx: AuditContext): Promise<{ approval: Approval } | { principal: PrincipalRow; token: string }> {
    if (activeAdmins(this.vault) >= 2) {
      const r = await this.request({ action: 'admin.add', params: { name } }, by, ctx);
      if (!r.approval) throw new CustodyError('INTERNAL', 'admin.add must always need approval.');
      return { approval: r.approval };
    }
    const { principal, token } = await this.vault.createPrincipal({ name, role: 'admin', createdBy: by.name });
    await this.vault.audit({ type: 'admin.principal.created', bootstrap: true, target: { id: principal.id, name: principal.name, role: principal.role }, ...ctx });
    await this.vault.alarms.raise({
      kind: 'admin',
      rule: 'admin.bootstrap',
      severity: 'medium',
      title: `${by.name} added "${principal.name}" as an admin alone (bootstrap: the vault had fewer than two admins). From now on adding an admin needs a second admin's approval.`,
      details: { addedBy: by.name, admin: { id: principal.id, name: principal.name }, address: ctx['address'] },
    });
    return { principal, token };
  }
}

export function activeAdmins(vault: Vault): number {
  return vault.db.listPrincipals().filter((p) => p.role === 'admin' && !p.revokedAt).length;
}

// ---- the actions this concern owns -----------------------------------------------------------

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

function onlyKeys(p: unknown, keys: string[], example: string): Record<string, unknown> {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new CustodyError('BAD_REQUEST', `The parameters must be a JSON object like ${example}.`);
  const extra = Object.keys(p).filter((k) => !keys.includes(k));
  if (extra.length > 0) throw new CustodyError('BAD_REQUEST', `Unknown parameter ${JSON.stringify(extra[0]!.slice(0, 40))}; this action takes ${keys.map((k) => `"${k}"`).join(', ')}.`);
  return p as Record<string, unknown>;
}

/** `admin.add` {name}: a new admin principal; its token is in the approver's answer, once. */
export function adminAddAction(vault: Vault): ActionHandler<{ name: string }> {
  return {
    validate(p) {
      const { name } = onlyKeys(p, ['name'], '{"name": "alice"}');
      if (typeof name !== 'string' || !NAME_RE.test(name)) {
        throw new CustodyError('BAD_REQUEST', '"name" is required: 1 to 64 characters, letters, digits and . _ @ - (starting with a letter or digit).');
      }
      if (vault.db.getPrincipal(name)) throw new CustodyError('PRINCIPAL_EXISTS', `A principal named "${name}" already exists; choose another name.`);
      return { name };
    },
    describe: (p) => `Add "${p.name}" as an admin (a new admin token, shown once to the approver).`,
    async execute(p, ctx) {
      const { principal, token } = await vault.createPrincipal({ name: p.name, role: 'admin', createdBy: `${ctx.requestedBy} (approved by ${ctx.approvedBy}, ${ctx.requestId})` });
      await vault.audit({ type: 'admin.principal.created', approval: ctx.requestId, requestedBy: ctx.requestedBy, approvedBy: ctx.approvedBy, target: { id: principal.id, name: principal.name, role: principal.role }, principal: null });
      return { principal, token, note: `This is the only time the token of "${principal.name}" is shown: hand it to them over a safe channel. They enroll a second factor with \`custody admin totp enroll\`.` };
    },
  };
}

/**
 * `admin.revoke` {id}: revokes an admin. Two-person like adding one — otherwise one admin could
 * revoke the other, fall below two admins and add a new one alone through the bootstrap rule.
 * The last active admin is never revoked (nobody could then manage the vault).
 */
export function adminRevokeAction(vault: Vault): ActionHandler<{ id: string }> {
  return {
    validate(p) {
      const { id } = onlyKeys(p, ['id'], '{"id": "<principal id or name>"}');
      if (typeof id !== 'string' || id.length === 0 || id.length > 128) throw new CustodyError('BAD_REQUEST', '"id" is required: the admin\'s principal id or name.');
      const target = vault.db.getPrincipal(id);
      if (!target || target.role !== 'admin') throw new CustodyError('PRINCIPAL_NOT_FOUND', `There is no admin "${id.slice(0, 64)}". GET /v1/principals lists them.`);
      if (target.revokedAt) throw new CustodyError('BAD_REQUEST', `Admin "${target.name}" was already revoked on ${target.revokedAt}.`);
      if (activeAdmins(vault) <= 1) throw new CustodyError('BAD_REQUEST', `"${target.name}" is the last active admin; add another admin before revoking this one.`);
      return { id: target.id };
    },
    describe: (p) => `Revoke admin "${vault.db.getPrincipal(p.id)?.name ?? p.id}" (their token stops working at once).`,
    async execute(p, ctx) {
      if (activeAdmins(vault) <= 1) throw new CustodyError('BAD_REQUEST', 'This would revoke the last active admin; add another admin first.');
      const r = await vault.revokePrincipal(p.id, `${ctx.requestedBy} (approved by ${ctx.approvedBy}, ${ctx.requestId})`);
      await vault.audit({ type: 'admin.principal.revoked', approval: ctx.requestId, requestedBy: ctx.requestedBy, approvedBy: ctx.approvedBy, target: { id: r.id, name: r.name, role: r.role }, principal: null });
      return { revoked: { id: r.id, name: r.name } };
    },
  };
}

interface WritersRevokeParams {
  log?: string;
  namePrefix?: string;
}

function matchingWriters(vault: Vault, p: WritersRevokeParams): PrincipalRow[] {
  return vault.db
    .listPrincipals()
    .filter((w) => w.role === 'writer' && !w.revokedAt)
    .filter((w) => p.log === undefined || w.logs === null || w.logs.includes(p.log))
    .filter((w) => p.namePrefix === undefined || w.name.startsWith(p.namePrefix));
}

/**
 * `writers.revoke` {log?, namePrefix?}: revokes every active writer that can append to `log`
 * (a writer with no scope appends to every log, so it matches) and whose name starts with
 * `namePrefix` — both conditions when both are given.
 */
export function writersRevokeAction(vault: Vault): ActionHandler<WritersRevokeParams> {
  return {
    validate(raw) {
      const p = onlyKeys(raw, ['log', 'namePrefix'], '{"log": "eu-west-1"} or {"namePrefix": "vector-"}');
      const out: WritersRevokeParams = {};
      if (p['log'] !== undefined) {
        if (typeof p['log'] !== 'string') throw new CustodyError('BAD_REQUEST', '"log" must be a log name.');
        if (!vault.regionLogs().includes(p['log'])) throw new CustodyError('LOG_NOT_FOUND', `There is no log "${p['log'].slice(0, 64)}" writers append to; the logs are: ${vault.regionLogs().join(', ')}.`);
        out.log = p['log'];
      }
      if (p['namePrefix'] !== undefined) {
        if (typeof p['namePrefix'] !== 'string' || p['namePrefix'].length < 1 || p['namePrefix'].length > 64) throw new CustodyError('BAD_REQUEST', '"namePrefix" must be 1 to 64 characters.');
        out.namePrefix = p['namePrefix'];
      }
      if (out.log === undefined && out.namePrefix === undefined) throw new CustodyError('BAD_REQUEST', 'Say which writers: "log" (every writer that can append to it), "namePrefix", or both.');
      return out;
    },
    describe(p) {
      const which = [p.log !== undefined ? `that can append to log "${p.log}"` : '', p.namePrefix !== undefined ? `whose name starts with "${p.namePrefix}"` : ''].filter(Boolean).join(' and ');
      const now = matchingWriters(vault, p).map((w) => w.name);
      const names = now.length === 0 ? 'none right now' : `${now.length} right now: ${now.slice(0, 10).join(', ')}${now.length > 10 ? ', …' : ''}`;
      return `Revoke every active writer ${which} (${names}).`;
    },
    async execute(p, ctx) {
      const revoked: Array<{ id: string; name: string; logs: string[] | null }> = [];
      for (const w of matchingWriters(vault, p)) {
        const r = await vault.revokePrincipal(w.id, `${ctx.requestedBy} (approved by ${ctx.approvedBy}, ${ctx.requestId})`);
        revoked.push({ id: r.id, name: r.name, logs: r.logs });
        await vault.audit({ type: 'admin.principal.revoked', approval: ctx.requestId, requestedBy: ctx.requestedBy, approvedBy: ctx.approvedBy, target: { id: r.id, name: r.name, role: r.role }, principal: null });
      }
      return { revoked, count: revoked.length };
    },
  };
}

// ---- one per vault ---------------------------------------------------------------------------

const services = new WeakMap<Vault, Approvals>();

/** The vault's approvals (created on first use; registers admin.add and writers.revoke). */
export function approvals(vault: Vault): Approvals {
  let a = services.get(vault);
  if (!a) {
    if (!vault.actions.has('admin.add')) vault.actions.register('admin.add', adminAddAction(vault));
    if (!vault.actions.has('writers.revoke')) vault.actions.register('writers.revoke', writersRevokeAction(vault));
    if (!vault.actions.has('admin.revoke')) vault.actions.register('admin.revoke', adminRevokeAction(vault));
    const shared = sharedOf(vault);
    a = new Approvals(vault, shared ? new PgApprovalStore(shared.pool, adminClock(vault)) : new ApprovalStore(vault.db.sqlite, adminClock(vault)));
    services.set(vault, a);
  }
  return a;
}
