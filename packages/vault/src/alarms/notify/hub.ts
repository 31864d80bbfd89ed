/**
 * The notifier hub: hears every alarm (vault.alarms.onAlarm), sends it to each notifier whose
 * filter admits it, retries with backoff, groups repeats, and records every delivery and every
 * final failure in the vault's audit log. docs/NOTIFIERS.md.
 *
 * Grouping: the first sighting of an alarm goes out at once and opens a window (notifyGroupMs).
 * Repeats inside the window are counted; at its end one "repeated N more times" notice goes out
 * (and the window opens again); a window without repeats closes quietly. A repeat with no open
 * window (after a quiet spell, or after a restart) goes out at once and opens one.
 *
 * Queue: deliveries wait in memory (at most notifyMaxQueue; beyond that the oldest are dropped
 * and the count is recorded as `alarm.delivery.dropped`). What is still queued when the vault
 * stops is recorded the same way (reason "shutdown").
 *
 * The audit events written here all start with "alarm." so the detectors never alarm on them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CustodyError } from '../../errors.js';
import type { Vault } from '../../vault.js';
import { SEVERITIES, type Alarm } from '../types.js';
import { describeTarget, parseId, parseNotifierConfig, publicView, scrub, secretValues, isNotifierId } from './config.js';
import { toPayload } from './message.js';
import { SecretBox, NOTIFIER_KEY_PURPOSE } from './secrets.js';
import { NotifierStore, localNotifierStore, type NotifierStoreApi } from './store.js';
import { PgNotifierStore } from '../../storage/pg/notifiers.js';
import { DeliveryError, type Notice, type Notifier, type NotifierConfig, type SendResult, type Transport } from './types.js';
import { SlackTransport, WebhookTransport } from './transports/http.js';
import { EmailTransport } from './transports/email.js';
import { SnsTransport } from './transports/sns.js';

export const NOTIFIERS_FILE = 'notifiers.json';
const MAX_NOTIFIERS = 100;
const MAX_GROUPS = 10_000;
/** At most this many alarms raised while the notifiers were stopped are sent at the next start. */
const CATCH_UP_MAX = 500;

export interface NotifierHubOptions {
  logger: Logger;
  /**
   * notifyGroupMs (5 min), notifyRetryBaseMs (2 s), notifyRetryMaxMs (5 min),
   * notifyMaxAttempts (8), notifyTimeoutMs (10 s per attempt), notifyMaxQueue (10,000),
   * notifyConcurrency (8).
   */
  timing?: Record<string, number>;
}

interface Job {
  deliveryId: string;
  notifierId: string;
  notice: Notice;
  attempt: number;
  dueAt: number;
  lastError?: string;
}

interface Group {
  alarmId: number;
  repeats: number;
  last: Alarm;
  timer: NodeJS.Timeout;
}

interface Stats {
  delivered: number;
  failed: number;
  lastDeliveredAt: string | null;
  lastFailure: { at: string; error: string } | null;
}

export interface TestOutcome {
  ok: boolean;
  notifier: string;
  type: string;
  status?: number;
  messageId?: string;
  error?: string;
  ms: number;
}

/** A notifier whose transport could not be built (e.g. its CA file went missing). */
class BrokenTransport implements Transport {
  constructor(private readonly problem: string) {}
  send(): Promise<SendResult> {
    return Promise.reject(new DeliveryError(this.problem, false));
  }
  close(): void {}
}

export class NotifierHub {
  private readonly store: NotifierStore;
  /** The configurations: custody.db, or PostgreSQL on a shared vault (storage/pg/notifiers.ts). */
  private readonly configs: NotifierStoreApi;
  private configsRev: string | undefined;
  private configsTimer: NodeJS.Timeout | null = null;
  private readonly configsPollMs: number;
  private readonly notifiers = new Map<string, { n: Notifier; t: Transport; secrets: string[] }>();
  private readonly stats = new Map<string, Stats>();
  private readonly groups = new Map<number, Group>();
  private pending: Job[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private pumpTimer: NodeJS.Timeout | null = null;
  private dropTimer: NodeJS.Timeout | null = null;
  private dropped = { count: 0, notifiers: {} as Record<string, number> };
  private closed = false;
  private readonly abort = new AbortController();
  private readonly log: Logger;
  readonly groupMs: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly maxAttempts: number;
  readonly timeoutMs: number;
  readonly maxQueue: number;
  private readonly concurrency: number;

  private constructor(
    private readonly vault: Vault,
    opts: NotifierHubOptions,
  ) {
    const t = opts.timing ?? {};
    const pos = (k: string, d: number): number => (typeof t[k] === 'number' && t[k]! > 0 ? t[k]! : d);
    this.log = opts.logger.child({ component: 'notifiers' });
    this.groupMs = pos('notifyGroupMs', 5 * 60_000);
    this.retryBaseMs = pos('notifyRetryBaseMs', 2_000);
    this.retryMaxMs = pos('notifyRetryMaxMs', 5 * 60_000);
    this.maxAttempts = Math.floor(pos('notifyMaxAttempts', 8));
    this.timeoutMs = pos('notifyTimeoutMs', 10_000);
    this.maxQueue = Math.floor(pos('notifyMaxQueue', 10_000));
    this.concurrency = Math.floor(pos('notifyConcurrency', 8));
    this.store = new NotifierStore(vault.db.sqlite, new SecretBox(vault.keyring.vaultKey(NOTIFIER_KEY_PURPOSE)), {
      legacy: () => SecretBox.legacy(vault.keyring.forLog('audit').signingSeed),
    });
    this.configs = vault.shared
      ? new PgNotifierStore(vault.shared.pool, new SecretBox(vault.keyring.vaultKey(NOTIFIER_KEY_PURPOSE)))
      : localNotifierStore(this.store);
    this.configsPollMs = Math.max(10, pos('notifyConfigPollMs', 2_000));
  }

  /**
   * Opens the store, reads <data>/notifiers.json (a bad file refuses the start with
   * NOTIFIER_INVALID naming the file and field), and starts listening for alarms.
   */
  static async start(vault: Vault, opts: NotifierHubOptions): Promise<NotifierHub> {
    const hub = new NotifierHub(vault, opts);
    const m = hub.store.migration;
    if (m.resealed.length > 0) {
      // No secret in it: ids only.
      await vault.audit({ type: 'notifier.secrets.migrated', key: `vault key ${NOTIFIER_KEY_PURPOSE}`, resealed: m.resealed, renamed: m.renamed, unreadable: m.unreadable });
      hub.log.info({ resealed: m.resealed.length, renamed: m.renamed.length }, 'notifier secrets re-sealed under the vault key');
    }
    if (m.unreadable.length > 0) hub.log.warn({ notifiers: m.unreadable }, 'secrets of an older version that open with no key of this keyring; these notifiers are broken: add them again');
    const file = join(vault.dataDir, NOTIFIERS_FILE);
    // Shared vault: a node without notifiers.json leaves the file notifiers of the others alone.
    if (!hub.configs.revision || existsSync(file)) await hub.loadFile(file);
    if (hub.configs.revision) hub.configsRev = await hub.configs.revision();
    for (const n of await hub.configs.list()) hub.attach(n);
    if (hub.configs.revision) {
      hub.configsTimer = setInterval(() => void hub.refreshConfigs().catch((err: unknown) => hub.log.warn({ err: (err as Error).message }, 'cannot read the shared notifiers; delivering to the current ones')), hub.configsPollMs);
      hub.configsTimer.unref();
    }
    vault.alarms.onAlarm((a, isNew) => hub.onAlarm(a, isNew));
    await hub.catchUp();
    if (!vault.actions.has('notifier.remove')) vault.actions.register('notifier.remove', hub.removeAction());
    hub.log.info({ notifiers: [...hub.notifiers.keys()] }, 'notifiers ready');
    return hub;
  }

  // ---- configuration -------------------------------------------------------------------

  private async loadFile(path: string): Promise<void> {
    const previous = await this.configs.fileState();
    const apiIds = new Set((await this.configs.list()).filter((n) => n.source === 'api').map((n) => n.id));
    const list: Notifier[] = [];
    if (existsSync(path)) {
      const fail = (field: string, problem: string): never => {
        throw new CustodyError('NOTIFIER_INVALID', `${path}: ${problem}`, { file: path, field });
      };
      const st = statSync(path);
      if (st.size > 1024 * 1024) fail('(file)', `the file is ${st.size} bytes; at most 1 MiB is allowed.`);
      if ((st.mode & 0o077) !== 0) this.log.warn({ file: path }, 'notifiers.json can be read by other users; it may hold secrets: chmod 600 it');
      let parsed: unknown;
      try {
        parsed = JSON.parse(readFileSync(path, 'utf8'));
      } catch (e) {
        fail('(file)', `the file is not valid JSON (${(e as Error).message.slice(0, 200)}).`);
      }
      const entries: unknown[] = Array.isArray(parsed) ? parsed : fail('(file)', 'the file must hold a JSON array of notifiers: [{"type": "webhook", …}, …].');
      if (entries.length > MAX_NOTIFIERS) fail('(file)', `the file holds ${entries.length} notifiers; at most ${MAX_NOTIFIERS} are allowed.`);
      const seen = new Set<string>();
      const loadedAt = new Date().toISOString();
      entries.forEach((entry, i) => {
        const origin = { file: path, at: `[${i}]` };
        const { id: rawId, ...rest } = entry && typeof entry === 'object' && !Array.isArray(entry) ? (entry as Record<string, unknown>) : { id: undefined };
        const config = parseNotifierConfig(entry && typeof entry === 'object' && !Array.isArray(entry) ? rest : entry, origin);
        const id = parseId(rawId, origin) ?? `ntf_file-${this.configs.fingerprint(config).slice(0, 12)}`;
        if (seen.has(id)) fail(`[${i}].id`, `notifier ${id} appears twice${rawId === undefined ? ' (two entries are the same; give each an "id")' : ''}.`);
        if (apiIds.has(id)) fail(`[${i}].id`, `${id} is already the id of a notifier added through the API; choose another.`);
        seen.add(id);
        list.push({ id, config, source: 'file', createdAt: loadedAt, createdBy: NOTIFIERS_FILE });
      });
    }
    const now = new Map(list.map((n) => [n.id, this.configs.fingerprint(n.config)]));
    const added = [...now.keys()].filter((id) => !previous.has(id));
    const removed = [...previous.keys()].filter((id) => !now.has(id));
    const changed = [...now.keys()].filter((id) => previous.has(id) && previous.get(id) !== now.get(id));
    await this.configs.replaceFile(list);
    if (added.length + removed.length + changed.length > 0) {
      await this.vault.audit({ type: 'notifier.file.loaded', file: path, notifiers: list.map(publicView), added, removed, changed });
    }
  }

  /**
   * Shared vault: when the notifiers' revision moved (another node added or removed one, or
   * loaded its notifiers.json), takes the stored set: new ones are attached, changed ones
   * re-attached, gone ones closed and their queued deliveries dropped from this node's queue.
   */
  async refreshConfigs(): Promise<boolean> {
    if (!this.configs.revision || this.closed) return false;
    const rev = await this.configs.revision();
    if (rev === this.configsRev) return false;
    const stored = await this.configs.list();
    if (this.closed) return false;
    const ids = new Set(stored.map((n) => n.id));
    for (const n of stored) {
      const cur = this.notifiers.get(n.id);
      if (!cur || this.configs.fingerprint(cur.n.config) !== this.configs.fingerprint(n.config) || n.broken) this.attach(n);
    }
    for (const [id, e] of [...this.notifiers]) {
      if (ids.has(id)) continue;
      e.t.close();
      this.notifiers.delete(id);
      this.pending = this.pending.filter((j) => j.notifierId !== id);
    }
    this.configsRev = rev;
    this.log.info({ notifiers: [...this.notifiers.keys()] }, 'notifiers reloaded from the shared database');
    return true;
  }

  private attach(n: Notifier & { broken?: string }): void {
    let t: Transport;
    try {
      if (n.broken) throw new Error(n.broken);
      t = this.transportFor(n.config);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      this.log.error({ notifier: n.id, error: scrub(msg, secretValues(n.config)) }, 'a notifier cannot be set up; its deliveries will fail');
      t = new BrokenTransport(scrub(msg, secretValues(n.config)));
    }
    this.notifiers.get(n.id)?.t.close();
    this.notifiers.set(n.id, { n: { id: n.id, config: n.config, source: n.source, createdAt: n.createdAt, createdBy: n.createdBy }, t, secrets: secretValues(n.config) });
    if (!this.stats.has(n.id)) this.stats.set(n.id, { delivered: 0, failed: 0, lastDeliveredAt: null, lastFailure: null });
  }

  private transportFor(c: NotifierConfig): Transport {
    switch (c.type) {
      case 'webhook':
        return new WebhookTransport(c, this.timeoutMs);
      case 'slack':
        return new SlackTransport(c, this.timeoutMs);
      case 'email':
        return new EmailTransport(c, this.timeoutMs);
      case 'sns':
        return new SnsTransport(c, this.timeoutMs);
    }
  }

  /** Every notifier as the API shows it (secrets "***"), with its delivery counts since start. */
  list(): Array<Record<string, unknown>> {
    return [...this.notifiers.values()].map(({ n }) => ({ ...publicView(n), deliveries: { ...this.stats.get(n.id)!, pending: this.pending.filter((j) => j.notifierId === n.id).length } }));
  }

  get(id: string): Notifier {
    const e = this.notifiers.get(id);
    if (!e) throw new CustodyError('NOTIFIER_NOT_FOUND', `There is no notifier ${JSON.stringify(id.slice(0, 60))}. GET /v1/notifiers lists them.`);
    return e.n;
  }

  /** Checks and stores a new notifier (the caller records `notifier.added`). */
  async add(input: unknown, by: string): Promise<Notifier> {
    const config = parseNotifierConfig(input);
    if (this.notifiers.size >= MAX_NOTIFIERS) throw new CustodyError('BAD_REQUEST', `This vault already has ${MAX_NOTIFIERS} notifiers; remove one first.`);
    const n: Notifier = { id: `ntf_${randomBytes(8).toString('hex')}`, config, source: 'api', createdAt: new Date().toISOString(), createdBy: by };
    await this.configs.add(n);
    this.attach(n);
    this.log.info({ notifier: n.id, type: config.type }, 'notifier added');
    return n;
  }

  /** The two-person action "notifier.remove" (auth/actions.ts): weakening alerting needs a second admin. */
  private removeAction() {
    return {
      describe: (p: { id: string }): string => {
        const e = this.notifiers.get(p.id);
        return e ? `Stop sending alarms to ${describeTarget(e.n.config)} (notifier ${p.id}${e.n.config.name ? `, "${e.n.config.name}"` : ''})` : `Stop sending alarms to notifier ${p.id}`;
      },
      validate: (params: unknown): { id: string } => {
        const id = (params as { id?: unknown } | null)?.id;
        if (typeof id !== 'string' || !isNotifierId(id)) throw new CustodyError('BAD_REQUEST', 'Give the notifier to remove as {"id": "ntf_…"} (GET /v1/notifiers lists them).');
        const n = this.get(id);
        if (n.source === 'file') throw new CustodyError('BAD_REQUEST', `Notifier ${id} comes from ${NOTIFIERS_FILE} in the data directory; remove it from that file and restart the vault.`);
        return { id };
      },
      execute: async (p: { id: string }, ctx: { requestId: string; requestedBy: string; approvedBy: string }): Promise<Record<string, unknown>> => {
        const n = this.get(p.id);
        await this.configs.remove(p.id);
        this.notifiers.get(p.id)?.t.close();
        this.notifiers.delete(p.id);
        this.pending = this.pending.filter((j) => j.notifierId !== p.id);
        this.log.info({ notifier: p.id }, 'notifier removed');
        await this.vault.audit({ type: 'notifier.removed', notifier: publicView(n), approval: ctx.requestId, requestedBy: ctx.requestedBy, approvedBy: ctx.approvedBy });
        return { removed: p.id, target: describeTarget(n.config) };
      },
    };
  }

  /** Sends a test notice through one notifier now (one attempt, no retries) and says how it went. */
  async test(id: string): Promise<TestOutcome> {
    const e = this.notifiers.get(id);
    if (!e) this.get(id);
    const { n, t, secrets } = e!;
    const now = new Date().toISOString();
    const notice: Notice = {
      event: 'test',
      vault: this.vaultInfo(),
      alarm: { id: 0, kind: 'admin', rule: 'notifier.test', severity: 'info', title: `Test message from Custody: notifier ${id} (${describeTarget(n.config)}) works.`, details: { notifier: id, test: true }, time: now, lastTime: now, count: 1, log: null, entry: null },
    };
    const started = Date.now();
    try {
      const r = await t.send(notice, { deliveryId: randomUUID(), signal: this.abort.signal });
      return { ok: true, notifier: id, type: n.config.type, status: r.status, ...(r.messageId ? { messageId: r.messageId } : {}), ms: Date.now() - started };
    } catch (err) {
      const de = err instanceof DeliveryError ? err : new DeliveryError(String((err as Error)?.message ?? err), false);
      return { ok: false, notifier: id, type: n.config.type, ...(de.status !== undefined ? { status: de.status } : {}), error: scrub(de.message, secrets), ms: Date.now() - started };
    }
  }

  private vaultInfo(): Notice['vault'] {
    return { id: this.vault.config.vaultId, prefix: this.vault.config.prefix };
  }

  // ---- alarms and grouping -------------------------------------------------------------

  /**
   * Alarms raised while the notifiers were not running (the vault stopped after raising them,
   * or another service raised them while starting) go out now, oldest first. On the very first
   * start nothing old is sent: only what comes after.
   */
  private async catchUp(): Promise<void> {
    const last = this.store.lastAlarm(); // read before waiting: onAlarm may move it meanwhile
    const newest = (await this.vault.alarms.list({ limit: 1 }))[0]?.id ?? 0;
    if (last !== undefined && newest > last) {
      const missed = (await this.vault.alarms.list({ limit: CATCH_UP_MAX })).filter((a) => a.id > last && a.id <= newest).reverse();
      if (newest - last > missed.length) this.log.warn({ missed: newest - last, sending: missed.length }, 'more alarms were raised while the notifiers were stopped than are sent now; GET /v1/alarms lists them all');
      this.log.info({ alarms: missed.map((a) => a.id) }, 'sending alarms raised while the notifiers were not running');
      for (const a of missed) {
        this.enqueueAll(a, 'raised', undefined);
        this.openGroup(a);
      }
    }
    this.store.setLastAlarm(Math.max(newest, this.store.lastAlarm() ?? 0));
  }

  private onAlarm(a: Alarm, isNew: boolean): void {
    if (this.closed) return;
    if (isNew) this.store.setLastAlarm(a.id);
    const g = this.groups.get(a.id);
    if (g && !isNew) {
      g.repeats++;
      g.last = a;
      return;
    }
    this.enqueueAll(a, isNew ? 'raised' : 'repeated', isNew ? undefined : 1);
    this.openGroup(a);
  }

  private openGroup(a: Alarm): void {
    const old = this.groups.get(a.id);
    if (old) clearTimeout(old.timer);
    if (!old && this.groups.size >= MAX_GROUPS) {
      const oldest = this.groups.values().next().value as Group;
      clearTimeout(oldest.timer);
      this.closeGroup(oldest, false);
    }
    const g: Group = { alarmId: a.id, repeats: 0, last: a, timer: setTimeout(() => this.closeGroup(g, true), this.groupMs) };
    g.timer.unref();
    this.groups.set(a.id, g);
  }

  private closeGroup(g: Group, reopen: boolean): void {
    this.groups.delete(g.alarmId);
    if (this.closed || g.repeats === 0) return;
    this.enqueueAll(g.last, 'repeated', g.repeats);
    if (reopen) this.openGroup(g.last);
  }

  private admits(c: NotifierConfig, a: Alarm): boolean {
    if (SEVERITIES.indexOf(a.severity) < SEVERITIES.indexOf(c.minSeverity)) return false;
    return c.kinds === undefined || c.kinds.includes(a.kind);
  }

  private enqueueAll(a: Alarm, event: Notice['event'], repeats: number | undefined): void {
    const notice: Notice = { event, alarm: toPayload(a), ...(repeats !== undefined ? { repeats } : {}), vault: this.vaultInfo() };
    const now = Date.now();
    for (const { n } of this.notifiers.values()) {
      if (!this.admits(n.config, a)) continue;
      this.enqueue({ deliveryId: randomUUID(), notifierId: n.id, notice, attempt: 0, dueAt: now });
    }
    this.pump();
  }

  /** Queues a delivery; over the bound, the oldest waiting one is dropped (and counted). */
  private enqueue(j: Job): void {
    this.pending.push(j);
    if (this.pending.length > this.maxQueue) this.drop(this.pending.shift()!);
  }

  private drop(j: Job): void {
    this.dropped.count++;
    this.dropped.notifiers[j.notifierId] = (this.dropped.notifiers[j.notifierId] ?? 0) + 1;
    if (!this.dropTimer) {
      this.dropTimer = setTimeout(() => void this.reportDropped('queue full'), 1000);
      this.dropTimer.unref();
    }
  }

  private async reportDropped(reason: string): Promise<void> {
    if (this.dropTimer) clearTimeout(this.dropTimer);
    this.dropTimer = null;
    const d = this.dropped;
    if (d.count === 0) return;
    this.dropped = { count: 0, notifiers: {} };
    this.log.error({ count: d.count, reason }, 'alarm deliveries were dropped');
    await this.vault
      .audit({ type: 'alarm.delivery.dropped', count: d.count, notifiers: d.notifiers, reason, maxQueue: this.maxQueue })
      .catch((e: unknown) => this.log.error({ err: e }, 'could not record dropped alarm deliveries in the audit log'));
  }

  // ---- the queue -----------------------------------------------------------------------

  private pump(): void {
    if (this.closed) return;
    if (this.pumpTimer) {
      clearTimeout(this.pumpTimer);
      this.pumpTimer = null;
    }
    const now = Date.now();
    while (this.inflight.size < this.concurrency) {
      let best = -1;
      for (let i = 0; i < this.pending.length; i++) {
        const j = this.pending[i]!;
        if (j.dueAt <= now && (best < 0 || j.dueAt < this.pending[best]!.dueAt)) best = i;
      }
      if (best < 0) break;
      const job = this.pending.splice(best, 1)[0]!;
      const p: Promise<void> = this.run(job).finally(() => {
        this.inflight.delete(p);
        this.pump();
      });
      this.inflight.add(p);
    }
    if (this.pending.length > 0 && this.inflight.size < this.concurrency) {
      let next = Infinity;
      for (const j of this.pending) next = Math.min(next, j.dueAt);
      this.pumpTimer = setTimeout(() => this.pump(), Math.max(0, next - Date.now()));
      this.pumpTimer.unref();
    }
  }

  /** Exponential backoff with jitter: base·2^(attempt−1), capped, times a random 0.5–1. */
  backoff(attempt: number): number {
    const exp = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(attempt - 1, 30));
    return Math.round(exp * (0.5 + Math.random() * 0.5));
  }

  private async run(job: Job): Promise<void> {
    const entry = this.notifiers.get(job.notifierId);
    if (!entry) return; // removed meanwhile
    job.attempt++;
    const { n, t, secrets } = entry;
    const base = { alarm: job.notice.alarm.id, notifier: n.id, notifierType: n.config.type, delivery: job.deliveryId, event: job.notice.event, ...(job.notice.repeats !== undefined ? { repeats: job.notice.repeats } : {}) };
    const stats = this.stats.get(n.id)!;
    let result: SendResult;
    try {
      result = await t.send(job.notice, { deliveryId: job.deliveryId, signal: this.abort.signal });
    } catch (err) {
      const de = err instanceof DeliveryError ? err : new DeliveryError(String((err as Error)?.message ?? err), false);
      const error = scrub(de.message, secrets).slice(0, 500);
      job.lastError = error;
      if (this.closed) {
        this.pending.push(job); // counted as dropped on shutdown
        return;
      }
      if (de.retryable && job.attempt < this.maxAttempts) {
        let delay = this.backoff(job.attempt);
        if (de.retryAfterMs !== undefined) delay = Math.max(delay, Math.min(de.retryAfterMs, this.retryMaxMs));
        job.dueAt = Date.now() + delay;
        this.enqueue(job);
        this.log.warn({ ...base, attempt: job.attempt, status: de.status, error, retryInMs: delay }, 'alarm delivery failed; will retry');
        return;
      }
      stats.failed++;
      stats.lastFailure = { at: new Date().toISOString(), error };
      this.log.error({ ...base, attempt: job.attempt, status: de.status, error }, 'alarm delivery failed for good');
      await this.vault
        .audit({ type: 'alarm.delivery.failed', ...base, final: true, attempts: job.attempt, ...(de.status !== undefined ? { status: de.status } : {}), error, reason: de.retryable ? 'gave up after the last attempt' : 'refused (not retried)' })
        .catch((e: unknown) => this.log.error({ err: e }, 'could not record a failed alarm delivery in the audit log'));
      return;
    }
    stats.delivered++;
    stats.lastDeliveredAt = new Date().toISOString();
    this.log.info({ ...base, attempt: job.attempt, status: result.status }, 'alarm delivered');
    await this.vault
      .audit({ type: 'alarm.delivered', ...base, attempt: job.attempt, status: result.status, ...(result.messageId ? { messageId: result.messageId.slice(0, 200) } : {}), failedAttempts: job.attempt - 1, ...(job.lastError ? { lastError: job.lastError } : {}) })
      .catch((e: unknown) => this.log.error({ err: e }, 'could not record an alarm delivery in the audit log'));
  }

  /** Deliveries waiting (for retries or their turn). */
  get queued(): number {
    return this.pending.length;
  }

  /**
   * Stops: no new deliveries, timers cleared; in-flight sends get up to 2 s, then are cut off.
   * What is left (queued retries, unsent repeat summaries) is recorded as dropped.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.configsTimer) clearInterval(this.configsTimer);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    let unsentSummaries = 0;
    for (const g of this.groups.values()) {
      clearTimeout(g.timer);
      if (g.repeats > 0) unsentSummaries++;
    }
    this.groups.clear();
    if (this.inflight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.inflight]), new Promise<void>((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
    }
    this.abort.abort();
    if (this.inflight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.inflight]), new Promise<void>((r) => (timer = setTimeout(r, 500)))]);
      clearTimeout(timer);
    }
    for (const j of this.pending) this.drop(j);
    this.pending = [];
    this.dropped.count += unsentSummaries;
    if (unsentSummaries > 0) this.dropped.notifiers['(repeat summaries)'] = unsentSummaries;
    await this.reportDropped('shutdown');
    for (const { t } of this.notifiers.values()) t.close();
  }
}
