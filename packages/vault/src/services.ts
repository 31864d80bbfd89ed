/**
 * The background services a serving vault runs beside its API: detectors (alarms/detectors),
 * notifiers (alarms/notify), the integrity self-audit (alarms/integrity) and retention
 * (lifecycle/). `custody serve` and the in-process test vault start them with startServices
 * and hand the result to buildServer, so the routes of each concern reach its service.
 *
 * Each concern owns one marked section below; keep edits inside your section.
 */
import type { Logger } from 'pino';
import type { Vault } from './vault.js';
import { SelfAudit } from './alarms/integrity.js';

export interface ServicesOptions {
  logger: Logger;
  /**
   * Timing overrides (tests make background loops fast). Keys are owned by each concern,
   * e.g. selfAuditIntervalMs, silenceCheckMs, notifyRetryBaseMs. Absent: production defaults.
   */
  timing?: Record<string, number>;
}

export interface Services {
  // --- detectors (alarms/detectors) ---
  // --- notifiers (alarms/notify) ---
  // --- self-audit (alarms/integrity) ---
  selfAudit?: SelfAudit;
  // --- retention (lifecycle) ---
  close(): Promise<void>;
}

export async function startServices(vault: Vault, opts: ServicesOptions): Promise<Services> {
  const closers: Array<() => Promise<void> | void> = [];
  const services: Services = {
    async close() {
      for (const c of closers.reverse()) {
        try {
          await c();
        } catch (e) {
          opts.logger.error({ err: e }, 'a background service did not stop cleanly');
        }
      }
    },
  };
  try {
    // --- detectors (alarms/detectors) ---
    // --- notifiers (alarms/notify) ---
    // --- self-audit (alarms/integrity) ---
    const selfAudit = new SelfAudit(vault, { logger: opts.logger, intervalMs: opts.timing?.['selfAuditIntervalMs'], budgetMs: opts.timing?.['selfAuditBudgetMs'] });
    selfAudit.start();
    services.selfAudit = selfAudit;
    closers.push(() => selfAudit.close());
    // --- retention (lifecycle) ---
  } catch (e) {
    await services.close();
    throw e;
  }
  void vault;
  return services;
}
