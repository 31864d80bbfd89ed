/**
 * Executing a purge: crypto-shredding whole entry bundles that lie wholly past retention.
 *
 * Each sealed bundle carries its own data key, wrapped inside the file (crypto/aead.ts), so
 * deleting the file destroys the key and the entries with it. The hash tiles and checkpoints
 * stay: every leaf hash is still in the tree, so every proof (for the shredded entries too)
 * still verifies.
 *
 * Order, so a crash at any point is recognisable and finished at the next start:
 *   1. the purge is recorded in custody.db (state "shredding", with the blobs to delete);
 *   2. the range is recorded in the log's shredded.json (readers answer ENTRY_SHREDDED);
 *   3. the bundle files are deleted, then the blobs only the shredded entries referenced —
 *      hot copies and archived copies alike (docs/ARCHIVE.md: the archive keeps no shredded
 *      bundle; removeBundle deletes the archived copy and its manifest record);
 *   4. `retention.purged` is appended to the audit log, and the purge marked "done".
 * Steps 2–4 are idempotent; `resume()` runs them again for a purge still "shredding".
 */
import type { Logger } from 'pino';
import type { Vault } from '../vault.js';
import type { ActionContext } from '../auth/actions.js';
import { RetentionStore, type PurgeRecord } from './store.js';
import { planPurge, BUNDLE } from './planner.js';

const DAY_MS = 86_400_000;

export interface PurgeOptions {
  /** The time the retention is measured from (ms); default: the service clock. */
  now?: number;
  /** Tests: stop (throw) after deleting this many bundles, as a crash would. */
  interruptAfter?: number;
}

export interface PurgeOutcome {
  purge: number | null;
  log: string;
  from: number;
  to: number;
  count: number;
  bundles: number;
  retentionDays: number;
  cutoff: string;
  blobsRemoved: number;
  blobsKept: number;
  message: string;
}

export class PurgeInterrupted extends Error {}

export class PurgeExecutor {
  constructor(
    private readonly vault: Vault,
    private readonly store: RetentionStore,
    private readonly log: Logger,
    /** A blob stored or reused more recently than this is kept (it may have a new reference). */
    private readonly blobIdleMs: number,
  ) {}

  async purge(logName: string, ctx: ActionContext, nowMs: number, opts: PurgeOptions = {}): Promise<PurgeOutcome> {
    const seq = this.vault.sequencer(logName);
    const days = this.store.retention(logName).days;
    const cutoffMs = nowMs - days * DAY_MS;
    const cutoff = new Date(cutoffMs).toISOString();
    const from = this.store.shreddedEnd(logName);
    const plan = await planPurge({ store: seq.store, log: logName, size: seq.size, from, cutoffMs });
    if (plan.count === 0) {
      return {
        purge: null,
        log: logName,
        from,
        to: from,
        count: 0,
        bundles: 0,
        retentionDays: days,
        cutoff,
        blobsRemoved: 0,
        blobsKept: 0,
        message: `Nothing in ${logName} is past its retention of ${days} days as whole bundles (entries received before ${cutoff}); nothing was removed.`,
      };
    }
    const rec = this.store.beginPurge({
      log: logName,
      from: plan.from,
      to: plan.to,
      count: plan.count,
      approval: ctx.requestId,
      requestedBy: ctx.requestedBy,
      approvedBy: ctx.approvedBy,
      retentionDays: days,
      cutoff,
      blobs: plan.blobs, // file names (planner.ts)
    });
    this.log.info({ purge: rec.id, log: logName, from: rec.from, to: rec.to }, 'retention purge recorded; shredding');
    return this.finish(rec, false, opts);
  }

  /** Finishes purges a crash interrupted (state "shredding"). */
  async resume(): Promise<PurgeOutcome[]> {
    const out: PurgeOutcome[] = [];
    for (const rec of this.store.unfinished()) {
      if (!this.vault.logs.has(rec.log)) {
        this.log.error({ purge: rec.id, log: rec.log }, 'an unfinished purge names a log this vault does not have');
        continue;
      }
      this.log.warn({ purge: rec.id, log: rec.log }, 'finishing a purge that was interrupted');
      out.push(await this.finish(rec, true));
    }
    return out;
  }

  private async finish(rec: PurgeRecord, resumed: boolean, opts: PurgeOptions = {}): Promise<PurgeOutcome> {
    const store = this.vault.sequencer(rec.log).store;
    store.recordShred({ purge: rec.id, from: rec.from, to: rec.to });
    let deleted = 0;
    for (let k = rec.from / BUNDLE; k < rec.to / BUNDLE; k++) {
      if (opts.interruptAfter !== undefined && deleted >= opts.interruptAfter) {
        throw new PurgeInterrupted(`purge #${rec.id} interrupted after ${deleted} bundles (test)`);
      }
      await store.removeBundle(k);
      deleted++;
    }
    let removed = 0;
    let kept = 0;
    for (const name of rec.blobs) {
      const r = store.removeIdleBlob(name, this.blobIdleMs);
      if (r === 'removed') removed++;
      else if (r === 'kept') kept++;
      // An archived copy goes too, unless the blob is in use again (then it is hot and kept).
      if (r !== 'kept' && (await store.removeArchivedBlob(name)) && r === 'absent') removed++;
    }
    const bundles = (rec.to - rec.from) / BUNDLE;
    await this.vault.audit({
      type: 'retention.purged',
      purge: rec.id,
      log: rec.log,
      range: { from: rec.from, to: rec.to },
      count: rec.count,
      bundles,
      retentionDays: rec.retentionDays,
      cutoff: rec.cutoff,
      blobs: { removed, kept },
      approval: { request: rec.approval, requestedBy: rec.requestedBy, approvedBy: rec.approvedBy },
      ...(resumed ? { resumed: true } : {}),
    });
    this.store.finishPurge(rec.id, removed, kept);
    this.log.info({ purge: rec.id, log: rec.log, count: rec.count, bundles, blobsRemoved: removed, resumed }, 'retention purge done');
    return {
      purge: rec.id,
      log: rec.log,
      from: rec.from,
      to: rec.to,
      count: rec.count,
      bundles,
      retentionDays: rec.retentionDays,
      cutoff: rec.cutoff,
      blobsRemoved: removed,
      blobsKept: kept,
      message: `${rec.count} entries of ${rec.log} (${rec.from}–${rec.to - 1}, received before ${rec.cutoff}) were crypto-shredded by purge #${rec.id}; their leaf hashes and proofs remain.`,
    };
  }
}
