/**
 * The alarm center: every alarm goes through `raise`, which stores it (grouping repeats),
 * records it in the vault's audit log, and hands it to whoever listens (the notifiers).
 */
import type { Logger } from 'pino';
import type { AlarmStoreApi } from './store.js';
import type { Alarm, AlarmInput, AlarmQuery, AlarmSink } from './types.js';

export interface AlarmCenterOptions {
  /** Appends an event to the audit log (Vault.audit). */
  audit: (event: Record<string, unknown>) => Promise<void>;
  logger: Logger;
  /** Repeats with one group key inside this window count on one alarm (default 10 minutes). */
  groupWindowMs?: number;
}

export type AlarmListener = (alarm: Alarm, isNew: boolean) => void;

export class AlarmCenter implements AlarmSink {
  private readonly listeners: AlarmListener[] = [];
  private readonly groupWindowMs: number;

  private readonly storeOf: () => AlarmStoreApi;

  /**
   * `store`: the store, or a function naming it at each call (the vault's: custody.db, or the
   * shared PostgreSQL once the vault has one).
   */
  constructor(
    store: AlarmStoreApi | (() => AlarmStoreApi),
    private readonly opts: AlarmCenterOptions,
  ) {
    this.storeOf = typeof store === 'function' ? store : () => store;
    this.groupWindowMs = opts.groupWindowMs ?? 10 * 60_000;
  }

  get store(): AlarmStoreApi {
    return this.storeOf();
  }

  /** Called for every alarm raised and every repeat counted. A listener must not throw. */
  onAlarm(fn: AlarmListener): void {
    this.listeners.push(fn);
  }

  async raise(a: AlarmInput): Promise<Alarm> {
    const now = new Date();
    const { alarm, isNew } = await this.store.record(a, now.toISOString(), a.groupKey !== undefined ? new Date(now.getTime() - this.groupWindowMs).toISOString() : null);
    this.opts.logger.warn({ alarm: { id: alarm.id, kind: alarm.kind, rule: alarm.rule, severity: alarm.severity, count: alarm.count } }, alarm.title);
    // The audit record names the alarm; its details are in the alarm (and in the entry it cites).
    await this.opts
      .audit({ type: isNew ? 'alarm.raised' : 'alarm.repeated', alarm: { id: alarm.id, kind: alarm.kind, rule: alarm.rule, severity: alarm.severity, title: alarm.title, count: alarm.count, log: alarm.log, entry: alarm.entry, details: isNew ? alarm.details : undefined } })
      .catch((e: unknown) => this.opts.logger.error({ err: e }, 'could not record an alarm in the audit log'));
    for (const l of this.listeners) {
      try {
        l(alarm, isNew);
      } catch (e) {
        this.opts.logger.error({ err: e }, 'an alarm listener failed');
      }
    }
    return alarm;
  }

  list(q: AlarmQuery): Promise<Alarm[]> {
    return this.store.list(q);
  }

  get(id: number): Promise<Alarm | undefined> {
    return this.store.get(id);
  }
}
