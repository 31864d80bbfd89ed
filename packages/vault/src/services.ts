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
  // --- archive (lifecycle/archive) ---
  /** The archive tier (docs/ARCHIVE.md); absent: off. */
  archive?: import('./lifecycle/archive.js').ArchiveOptions;
}

export interface Services {
  // --- detectors (alarms/detectors) ---
  /** Alarm rules run on audit events and ingested records (alarms/detectors, docs/ALARMS.md). */
  detectors?: import('./alarms/detectors/index.js').DetectorEngine;
  // --- notifiers (alarms/notify) ---
  /** Alarm deliveries: webhook, Slack, e-mail, SNS (alarms/notify, docs/NOTIFIERS.md). */
  notifiers?: import('./alarms/notify/index.js').NotifierHub;
  // --- self-audit (alarms/integrity) ---
  selfAudit?: SelfAudit;
  // --- retention (lifecycle) ---
  /** Retention, purges and key rotation (lifecycle/, docs/RETENTION.md). */
  retention?: import('./lifecycle/index.js').LifecycleService;
  // --- archive (lifecycle/archive) ---
  /** Moves old sealed bundles and blobs to the archive tier (docs/ARCHIVE.md). */
  archive?: import('./lifecycle/archive.js').ArchiveMover;
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
    // --- notifiers (alarms/notify) ---
    // A bad <data>/notifiers.json refuses the start (NOTIFIER_INVALID naming file and field).
    const { NotifierHub } = await import('./alarms/notify/index.js');
    const notifiers = await NotifierHub.start(vault, { logger: opts.logger, timing: opts.timing });
    services.notifiers = notifiers;
    closers.push(() => notifiers.close());
    // --- detectors (alarms/detectors) ---
    // A bad <data>/rules.json refuses the start (RULE_INVALID naming file and field).
    // Started after the notifiers, so the first alarm of a new vault is delivered too.
    // CUSTODY_BENCH_WITHOUT_DETECTORS=1 is the benchmark's baseline (npm run bench): it is
    // logged and recorded in the audit log, never silent.
    if (process.env['CUSTODY_BENCH_WITHOUT_DETECTORS'] === '1') {
      opts.logger.warn('detectors are OFF (CUSTODY_BENCH_WITHOUT_DETECTORS=1): no alarm rule runs; for benchmarks only');
      await vault.audit({ type: 'vault.detectors.disabled', reason: 'CUSTODY_BENCH_WITHOUT_DETECTORS=1 in the server environment' });
    } else {
      const { DetectorEngine } = await import('./alarms/detectors/index.js');
      const detectors = await DetectorEngine.start(vault, { logger: opts.logger, timing: opts.timing });
      services.detectors = detectors;
      closers.push(() => detectors.close());
    }
    // --- self-audit (alarms/integrity) ---
    // Shared mode (S3): each log is audited by the node that integrates it, reading S3 (alarms/integrity-shared.ts).
    {
      const selfAudit = new SelfAudit(vault, { logger: opts.logger, intervalMs: opts.timing?.['selfAuditIntervalMs'], budgetMs: opts.timing?.['selfAuditBudgetMs'] });
      selfAudit.start();
      services.selfAudit = selfAudit;
      closers.push(() => selfAudit.close());
    }
    // --- retention (lifecycle) ---
    // Registers its two-person actions and finishes any purge a crash interrupted.
    const { LifecycleService } = await import('./lifecycle/index.js');
    const retention = await LifecycleService.start(vault, {
      logger: opts.logger,
      clockOffsetMs: opts.timing?.['retentionClockOffsetMs'],
      blobIdleMs: opts.timing?.['retentionBlobIdleMs'],
    });
    services.retention = retention;
    closers.push(() => retention.close());
    // --- archive (lifecycle/archive) ---
    // Off unless configured. A target that cannot be written is logged (and alarmed on each
    // run); the vault still serves and the bundles stay hot.
    if (opts.archive) {
      const { ArchiveMover } = await import('./lifecycle/archive.js');
      const mover = new ArchiveMover(vault, {
        ...opts.archive,
        logger: opts.logger,
        intervalMs: opts.timing?.['archiveIntervalMs'],
        clockOffsetMs: opts.timing?.['archiveClockOffsetMs'],
        retentionDays: (log) => retention.store.retention(log).days,
      });
      await mover.start();
      services.archive = mover;
      closers.push(() => mover.close());
    }
  } catch (e) {
    await services.close();
    throw e;
  }
  void vault;
  return services;
}
