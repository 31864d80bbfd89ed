/**
 * The archive mover (docs/ARCHIVE.md): a background loop that moves sealed entry bundles and
 * their blobs to the archive tier once every entry in them is older than the archive age.
 *
 * What moves: FULL bundles (256 entries) that are not the last bundle of the tree, in index
 * order from the start of the log, stopping at the first bundle holding an entry received
 * (the envelope's `received` line, docs/FORMAT.md) on or after now − archive age; with each,
 * the blobs its entries reference whose hot file was last stored or reused (mtime, writeBlob
 * touches it) before the same cutoff. Hash tiles, checkpoints, shredded.json and the
 * archive manifest stay hot, so every proof keeps working without the archive.
 *
 * Order per bundle, so a crash at any point leaves the hot copy or a complete, verified
 * archived copy (never neither):
 *   1. copy: write the sealed bytes to the archive (disk: temp + fsync + rename + fsync dir;
 *      S3: PutObject with the storage class, x-amz-checksum-sha256 and Object Lock);
 *   2. verify: read the copy back (or S3's stored SHA-256) and compare with the hot bytes;
 *   3. record: add it to <log>/archive.json (atomic replace) — from now on reads fall back;
 *   4. remove: unlink the hot copy and fsync its directory.
 * A rerun finds a bundle recorded but still hot (crash between 3 and 4): it checks the
 * archived copy again and removes the hot one. A copy without a record (crash between 1 and
 * 3) is written again. A bundle a retention purge shreds meanwhile is never left archived:
 * the mover re-checks shredded.json after recording, and the purge deletes recorded copies.
 */
import { readFileSync, statSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Vault } from '../vault.js';
import { CustodyError, isCustodyError } from '../errors.js';
import { fsyncDirSync } from '../storage/atomic.js';
import { normaliseLocation, sha256hex, blobRel, targetFor, type ArchiveStorageClass, type ArchiveTarget, type ArchivedFile } from '../storage/archive.js';
import type { PosixLogStore } from '../storage/posix.js';
import { bundleFacts, purgeableBundleLimit, BUNDLE, type BundleFacts } from './planner.js';

const DAY_MS = 86_400_000;

export interface ArchiveOptions {
  /** A directory (absolute path or file:///…) or s3://bucket/prefix. */
  location: string;
  /** Entries older than this many days move (≥ 0). */
  afterDays: number;
  storageClass?: ArchiveStorageClass;
  /** Days a restored S3 copy stays readable (default 7). */
  restoreDays?: number;
}

export interface MoverOptions extends ArchiveOptions {
  logger: Logger;
  /** How often the mover looks for work (default 1 hour). */
  intervalMs?: number;
  /** Tests: added to the clock (a clock in the future makes every entry old). */
  clockOffsetMs?: number;
  /** The log's retention in days (S3 Object Lock lasts until the entries' retention date). */
  retentionDays?: (log: string) => number;
  /** Tests: called between the steps; throwing there is a crash at that point. */
  hooks?: { afterCopy?: (log: string, k: number) => void; afterRecord?: (log: string, k: number) => void };
  /** At most this many bundles per log per run (default 64), so one run stays short. */
  batch?: number;
}

export interface LogArchiveRun {
  log: string;
  archived: number[];
  blobs: number;
  /** Bundles found recorded but still hot (an earlier crash) and finished now. */
  finished: number;
  /** Why the run stopped early, when it did. */
  error?: string;
}

export class ArchiveMover {
  readonly loc: string;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly log: Logger;

  constructor(
    private readonly vault: Vault,
    readonly opts: MoverOptions,
  ) {
    this.loc = normaliseLocation(opts.location);
    if (!Number.isFinite(opts.afterDays) || opts.afterDays < 0) throw new CustodyError('CONFIG', `--archive-after must be a number of days (0 or more), got ${opts.afterDays}.`);
    this.log = opts.logger.child({ service: 'archive' });
  }

  target(): Promise<ArchiveTarget> {
    return targetFor(this.loc, { storageClass: this.opts.storageClass });
  }

  now(): number {
    return Date.now() + (this.opts.clockOffsetMs ?? 0);
  }

  /** Checks the target (a clear log line when it cannot be written) and starts the loop. */
  async start(): Promise<void> {
    try {
      await (await this.target()).probe();
      this.log.info({ archive: this.loc, afterDays: this.opts.afterDays, storageClass: this.opts.storageClass }, 'archive tier on');
    } catch (e) {
      this.log.error({ archive: this.loc, err: (e as Error).message }, 'the archive tier cannot be written; bundles stay hot until it can');
    }
    const tick = (): void => {
      if (this.closed) return;
      this.running = this.runOnce()
        .catch((e: unknown) => this.log.error({ err: e }, 'archive run failed'))
        .finally(() => {
          if (!this.closed) this.timer = setTimeout(tick, this.opts.intervalMs ?? 3_600_000);
        });
    };
    this.timer = setTimeout(tick, Math.min(this.opts.intervalMs ?? 3_600_000, 5_000));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running.catch(() => undefined);
  }

  /** One pass over every log. */
  async runOnce(nowMs = this.now()): Promise<LogArchiveRun[]> {
    const out: LogArchiveRun[] = [];
    for (const row of this.vault.logRows) {
      if (this.closed) break;
      out.push(await this.archiveLog(row.name, nowMs));
    }
    return out;
  }

  /** Moves what is old enough in one log. Never throws for a target failure: it is reported. */
  async archiveLog(logName: string, nowMs = this.now()): Promise<LogArchiveRun> {
    const run: LogArchiveRun = { log: logName, archived: [], blobs: 0, finished: 0 };
    const seq = this.vault.sequencer(logName);
    const store = seq.store;
    const cutoff = nowMs - this.opts.afterDays * DAY_MS;
    const limit = purgeableBundleLimit(seq.size);
    const shredEnd = store.shreds().reduce((e, r) => Math.max(e, r.to), 0);
    let moved = 0;
    try {
      const target = await this.target();
      const m = store.archive.read();
      const want = { restoreDays: this.opts.restoreDays ?? 7, location: this.loc, afterDays: this.opts.afterDays, storageClass: this.loc.startsWith('s3://') ? (this.opts.storageClass ?? 'STANDARD') : undefined };
      if (m.restoreDays !== want.restoreDays || m.location !== want.location || m.afterDays !== want.afterDays || m.storageClass !== want.storageClass) {
        store.archive.update((x) => Object.assign(x, want));
      }
      for (let k = Math.ceil(shredEnd / BUNDLE); k < limit && moved < (this.opts.batch ?? 64) && !this.closed; k++) {
        const rec = store.archivedBundle(k);
        const hot = readOrNull(store.bundlePath(k));
        if (rec && hot === null) continue; // archived earlier
        if (hot === null) {
          if (store.shredOf(k * BUNDLE)) continue;
          throw new CustodyError('STORAGE_CORRUPT', `Entry bundle ${k} of log "${logName}" is neither hot nor archived; run \`custody verify\`.`);
        }
        if (rec) {
          // Recorded but still hot: a crash between recording and removing. Finish it.
          await (await targetFor(rec.loc)).check(logName, store.bundleRel(k), rec); // where it was written
          this.removeHot(store.bundlePath(k));
          const blobs = store.archive.read().blobs;
          for (const name of rec.facts?.blobs ?? []) if (blobs[name]) this.removeHotBlob(store, name, cutoff);
          run.finished++;
          continue;
        }
        const facts = await bundleFacts(store, logName, k);
        if (!(facts.newest < cutoff)) break; // receive times grow with the index
        await this.moveBundle(store, target, logName, k, hot, facts, cutoff, run);
        moved++;
      }
    } catch (e) {
      run.error = (e as Error).message;
      this.log.error({ log: logName, archive: this.loc, err: run.error, code: isCustodyError(e) ? e.code : undefined }, 'archiving stopped; the bundles not moved stay hot and readable');
      if (isCustodyError(e, 'ARCHIVE_UNAVAILABLE')) {
        await this.vault.alarms
          .raise({
            kind: 'integrity',
            rule: 'archive.unavailable',
            severity: 'high',
            title: `The archive tier ${this.loc} cannot be written; entry bundles of ${logName} stay hot.`,
            details: { log: logName, archive: this.loc, reason: run.error, whatToDo: 'Mount the archive volume or fix its permissions (or the S3 credentials and bucket); the mover retries every interval.' },
            groupKey: `archive|${this.loc}`,
            log: logName,
          })
          .catch(() => undefined);
      }
    }
    if (run.archived.length > 0 || run.finished > 0) {
      this.log.info({ log: logName, bundles: run.archived.length, blobs: run.blobs, finished: run.finished, archive: this.loc }, 'archived entry bundles');
    }
    return run;
  }

  private async moveBundle(store: PosixLogStore, target: ArchiveTarget, logName: string, k: number, hot: Buffer, facts: BundleFacts, cutoff: number, run: LogArchiveRun): Promise<void> {
    const at = new Date(this.now()).toISOString();
    const days = this.opts.retentionDays?.(logName);
    // S3 Object Lock (COMPLIANCE) until the retention date of the bundle's newest entry.
    const retainUntil = days !== undefined && Number.isFinite(facts.newest) ? new Date(facts.newest + days * DAY_MS) : undefined;
    const rel = store.bundleRel(k);
    const sha = sha256hex(hot);
    // 1. copy
    const put = await target.put(logName, rel, hot, { sha256: sha, ...(retainUntil ? { retainUntil } : {}) });
    const rec: ArchivedFile = { loc: this.loc, sha256: sha, size: hot.length, at, facts: { newest: facts.newest, oldest: facts.oldest, oldestEntry: facts.oldestEntry, blobs: facts.blobs }, ...put.storageClass ? { class: put.storageClass } : {}, ...(put.versionId ? { versionId: put.versionId } : {}), ...(put.lockUntil ? { lockUntil: put.lockUntil } : {}) };
    // 2. verify
    await target.check(logName, rel, rec);
    // Blobs: copied and verified before the record too.
    const blobs: Record<string, ArchivedFile> = {};
    for (const name of new Set(facts.blobs)) {
      const path = store.blobPathByName(name);
      let st;
      try {
        st = statSync(path);
      } catch {
        continue; // already archived (or shredded): nothing hot to move
      }
      if (st.mtimeMs >= cutoff) continue; // reused recently by a younger entry: stays hot
      const bytes = readFileSync(path);
      const bsha = sha256hex(bytes);
      const bput = await target.put(logName, blobRel(name), bytes, { sha256: bsha, ...(retainUntil ? { retainUntil } : {}) });
      const brec: ArchivedFile = { loc: this.loc, sha256: bsha, size: bytes.length, at, ...(bput.storageClass ? { class: bput.storageClass } : {}), ...(bput.versionId ? { versionId: bput.versionId } : {}), ...(bput.lockUntil ? { lockUntil: bput.lockUntil } : {}) };
      await target.check(logName, blobRel(name), brec);
      blobs[name] = brec;
    }
    this.opts.hooks?.afterCopy?.(logName, k);
    // A purge that began meanwhile: never leave a shredded bundle in the archive.
    if (store.shredOf(k * BUNDLE)) {
      await target.remove(logName, rel, rec);
      return;
    }
    // 3. record (synchronously with the shred re-check below: no purge step can run between)
    store.archive.update((m) => {
      m.bundles[String(k)] = rec;
      Object.assign(m.blobs, blobs);
    });
    if (store.shredOf(k * BUNDLE)) {
      store.archive.update((m) => void delete m.bundles[String(k)]);
      await target.remove(logName, rel, rec);
      return;
    }
    this.opts.hooks?.afterRecord?.(logName, k);
    // 4. remove the hot copies
    this.removeHot(store.bundlePath(k));
    for (const name of Object.keys(blobs)) if (this.removeHotBlob(store, name, cutoff)) run.blobs++;
    run.archived.push(k);
  }

  private removeHot(path: string): void {
    try {
      unlinkSync(path);
      fsyncDirSync(dirname(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  /** Removes a hot blob unless a new entry reused it since (synchronous, like writeBlob's touch). */
  private removeHotBlob(store: PosixLogStore, name: string, cutoff: number): boolean {
    const path = store.blobPathByName(name);
    try {
      if (statSync(path).mtimeMs >= cutoff) return false;
      unlinkSync(path);
      fsyncDirSync(dirname(path));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }
}

function readOrNull(path: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}
