/**
 * The retention service: per-log retention (extend only), purges past retention and KEK
 * rotation, each a two-person action (auth/actions.ts):
 *
 *   retention.extend  {log, days}  days must be longer than now, else RETENTION_SHORTENED
 *   purge             {log}        crypto-shred the whole bundles past retention (purge.ts)
 *   log.rotate-keys   {log}        a new active KEK for the log (rotation.ts)
 *
 * Work on one log runs one at a time (a purge never races an extension of the same log).
 * At start it finishes any purge a crash interrupted.
 */
import type { Logger } from 'pino';
import type { Vault } from '../vault.js';
import type { ActionContext } from '../auth/actions.js';
import { CustodyError } from '../errors.js';
import { RetentionStore, checkDays, type PurgeRecord } from './store.js';
import { PurgeExecutor, type PurgeOptions, type PurgeOutcome } from './purge.js';
import { previewPurge, bundleFacts, BUNDLE, type PurgePreview } from './planner.js';
import { rotateLogKek, checkRotationKmsKey, type RotationOutcome } from './rotation.js';

const DAY_MS = 86_400_000;

export interface LifecycleOptions {
  logger: Logger;
  /**
   * Tests: added to the clock that retention is measured against (a clock far in the future
   * makes every entry old). Never reachable from the API or the CLI.
   */
  clockOffsetMs?: number;
  /** A blob stored or reused more recently than this is never deleted (default 1 hour). */
  blobIdleMs?: number;
}

/** A purge as GET /v1/retention lists it: the record without its blob list, `at` its creation. */
export type PurgeSummary = Pick<PurgeRecord, 'id' | 'from' | 'to' | 'count' | 'approval' | 'requestedBy' | 'approvedBy' | 'retentionDays' | 'cutoff' | 'state' | 'completedAt'> & { at: string };

export interface LogRetention {
  log: string;
  days: number;
  updatedAt: string;
  updatedBy: string;
  /** Published entries. */
  size: number;
  /** Entries received before this are past retention. */
  cutoff: string;
  /** The oldest entry still held (not shredded), or null when there is none. */
  oldest: { index: number; received: string } | null;
  /** What a purge would remove now (whole bundles only; an estimate, see planner.ts). */
  purgeable: PurgePreview;
  shredded: { entries: number; purges: PurgeSummary[] };
  /** Set when the log cannot be examined (e.g. a bundle is missing): the reason. */
  problem?: string;
}

function summary(p: PurgeRecord): PurgeSummary {
  return {
    id: p.id,
    from: p.from,
    to: p.to,
    count: p.count,
    approval: p.approval,
    requestedBy: p.requestedBy,
    approvedBy: p.approvedBy,
    retentionDays: p.retentionDays,
    cutoff: p.cutoff,
    state: p.state,
    at: p.createdAt,
    completedAt: p.completedAt,
  };
}

function params(v: unknown, keys: string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CustodyError('BAD_REQUEST', `The parameters must be a JSON object with ${keys.join(' and ')}.`);
  const extra = Object.keys(v).find((k) => !keys.includes(k));
  if (extra !== undefined) throw new CustodyError('BAD_REQUEST', `Unknown parameter "${extra.slice(0, 40)}"; give only ${keys.join(' and ')}.`);
  return v as Record<string, unknown>;
}

export class LifecycleService {
  readonly store: RetentionStore;
  private readonly purges: PurgeExecutor;
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly offset: number;

  constructor(
    private readonly vault: Vault,
    private readonly opts: LifecycleOptions,
    store?: RetentionStore,
  ) {
    this.store = store ?? new RetentionStore(vault.db.sqlite);
    this.offset = opts.clockOffsetMs ?? 0;
    this.purges = new PurgeExecutor(vault, this.store, opts.logger.child({ service: 'retention' }), opts.blobIdleMs ?? 3_600_000);
  }

  /** Registers the actions and finishes interrupted purges. */
  static async start(vault: Vault, opts: LifecycleOptions): Promise<LifecycleService> {
    // Shared vault: retention settings in PostgreSQL (storage/pg/retention.ts).
    const sh = vault.shared;
    const s = new LifecycleService(vault, opts, sh ? await (await import('../storage/pg/retention.js')).PgRetentionStore.open(vault.db.sqlite, sh.pool, vault.logRows.map((r) => r.name)) : undefined);
    for (const row of vault.logRows) s.store.retention(row.name);
    s.register();
    try {
      await s.purges.resume();
    } catch (e) {
      opts.logger.error({ err: e }, 'finishing an interrupted purge failed; it is retried at the next start');
    }
    return s;
  }

  /** The time retention is measured from. */
  now(): number {
    return Date.now() + this.offset;
  }

  private exclusive<T>(log: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(log) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(log, tail);
    void tail.then(() => {
      if (this.locks.get(log) === tail) this.locks.delete(log);
    });
    return run;
  }

  private logName(v: unknown): string {
    if (typeof v !== 'string' || v.length === 0 || v.length > 64) throw new CustodyError('BAD_REQUEST', 'log must be the name of a log (GET /v1/logs lists them).');
    this.vault.sequencer(v); // LOG_NOT_FOUND
    return v;
  }

  private register(): void {
    const a = this.vault.actions;
    a.register<{ log: string; days: number }>('retention.extend', {
      describe: (p) => `Extend retention of ${p.log} from ${this.store.retention(p.log).days} to ${p.days} days`,
      validate: (v) => {
        const p = params(v, ['log', 'days']);
        const log = this.logName(p['log']);
        const days = checkDays(p['days']);
        const cur = this.store.retention(log).days;
        if (days <= cur) {
          throw new CustodyError('RETENTION_SHORTENED', `Retention of ${log} is ${cur} days; it can only be extended, so ${days} days is refused. Ask for more than ${cur} days.`, { log, days: cur, requested: days });
        }
        return { log, days };
      },
      execute: (p, ctx) => this.extend(p.log, p.days, ctx),
    });
    a.register<{ log: string }>('purge', {
      describe: (p) => `Purge ${p.log}: crypto-shred the whole 256-entry bundles whose every entry is older than its retention of ${this.store.retention(p.log).days} days; tiles and checkpoints stay`,
      validate: (v) => {
        // Shared mode (S3 + PostgreSQL): a purge deletes bundles from the data directory's tree;
        // on S3 the bundles are locked until their retention date anyway (docs/PRODUCTION.md).
        if (this.vault.shared) {
          throw new CustodyError('NOT_AVAILABLE', 'Purges are not available on a shared vault (S3 + PostgreSQL) yet: its bundles are locked in S3 (Object Lock) until their retention date, and nothing is shredded before then. No approval was requested.');
        }
        return { log: this.logName(params(v, ['log'])['log']) };
      },
      execute: async (p, ctx) => ({ ...(await this.purge(p.log, ctx)) }),
    });
    a.register<{ log: string; kmsKey?: string }>('log.rotate-keys', {
      describe: (p) =>
        `Rotate the encryption key (KEK) of ${p.log}: new bundles and blobs are sealed with a new key, old ones stay readable; the signing key stays` +
        (p.kmsKey ? `; new bundles use the AWS KMS key ${p.kmsKey}` : ''),
      validate: (v) => {
        const o = params(v, ['log', 'kmsKey']);
        const log = this.logName(o['log']);
        return o['kmsKey'] === undefined ? { log } : { log, kmsKey: checkRotationKmsKey(this.vault, log, o['kmsKey']) };
      },
      execute: async (p, ctx) => ({ ...(await this.rotate(p.log, ctx, p.kmsKey)) }),
    });
  }

  /** Raises the retention of a log (the approved `retention.extend`). */
  extend(log: string, days: number, ctx: ActionContext): Promise<Record<string, unknown>> {
    return this.exclusive(log, async () => {
      const r = await this.store.extend(log, days, ctx.approvedBy, ctx.requestId);
      await this.vault.audit({ type: 'retention.extended', log, from: r.from, to: r.to, approval: { request: ctx.requestId, requestedBy: ctx.requestedBy, approvedBy: ctx.approvedBy } });
      return { log, from: r.from, to: r.to, message: `Retention of ${log} is now ${r.to} days (was ${r.from}).` };
    });
  }

  /** Purges what is past retention (the approved `purge`); `opts.now` for tests. */
  purge(log: string, ctx: ActionContext, opts: PurgeOptions = {}): Promise<PurgeOutcome> {
    return this.exclusive(log, () => this.purges.purge(log, ctx, opts.now ?? this.now(), opts));
  }

  /** Finishes interrupted purges (also run at start). */
  resume(): Promise<PurgeOutcome[]> {
    return this.purges.resume();
  }

  rotate(log: string, ctx: ActionContext, kmsKey?: string): Promise<RotationOutcome> {
    return this.exclusive(log, () => rotateLogKek(this.vault, log, ctx, kmsKey));
  }

  /** Every log's retention, oldest entry, shredded ranges and what a purge would remove now. */
  async overview(nowMs = this.now()): Promise<{ now: string; defaultDays: number; logs: LogRetention[] }> {
    const logs: LogRetention[] = [];
    for (const row of this.vault.logRows) {
      const seq = this.vault.logs.get(row.name);
      if (!seq) continue;
      const r = this.store.retention(row.name);
      const cutoffMs = nowMs - r.days * DAY_MS;
      const purges = this.store.purges(row.name);
      const from = this.store.shreddedEnd(row.name);
      const size = seq.size;
      const item: LogRetention = {
        log: row.name,
        days: r.days,
        updatedAt: r.updatedAt,
        updatedBy: r.updatedBy,
        size,
        cutoff: new Date(cutoffMs).toISOString(),
        oldest: null,
        purgeable: { from, to: from, count: 0, bundles: 0 },
        shredded: { entries: purges.reduce((n, p) => n + p.count, 0), purges: purges.map(summary) },
      };
      try {
        if (from < size) {
          const k = from / BUNDLE;
          item.oldest = (await bundleFacts(seq.store, row.name, k, Math.min(BUNDLE, size - from))).oldestEntry;
        }
        item.purgeable = await previewPurge({ store: seq.store, log: row.name, size, from, cutoffMs });
      } catch (e) {
        item.problem = (e as Error).message;
      }
      logs.push(item);
    }
    return { now: new Date(nowMs).toISOString(), defaultDays: this.store.defaultDays, logs };
  }

  async close(): Promise<void> {
    await Promise.all([...this.locks.values()]);
  }
}
