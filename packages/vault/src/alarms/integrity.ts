/**
 * The self-audit: a background check that what is stored still matches its proofs, so a
 * changed byte on disk raises an alarm without anyone running `custody verify`.
 *
 * Every tick, for every log, from storage (never from the sequencer's memory):
 *  1. the checkpoint file must carry a valid signature of the log's key;
 *  2. the root recomputed from the stored hash tiles must equal the checkpoint's root, and the
 *     root at the size this self-audit last accepted must still be the root it accepted then
 *     (the stored tree still extends every checkpoint seen before: nothing rewritten, nothing
 *     rolled back);
 *  3. a window of entry bundles (a cursor that walks the whole log and starts over) is opened
 *     (AES-GCM authentication catches any changed byte of the sealed file), every entry is
 *     hashed and compared with the level-0 hash tile, and records kept as blobs are re-hashed.
 * Whatever fails raises an `integrity` alarm (critical), grouped per log and problem so a
 * damaged file alarms once per grouping window rather than every tick.
 *
 * Cost: each tick works for at most `budgetMs` of wall time (default 1.5 s every 30 s), so a
 * pass over N entries takes about N / (entries checked per second × 5 %) — see
 * docs/ALARMS.md for measured figures.
 */
import type { Logger } from 'pino';
import {
  openCheckpoint,
  parseVerifierKey,
  decodeBundle,
  hashLeaf,
  treeRoot,
  tileNodeReader,
  toBase64,
  fromBase64,
  bytesEqual,
  tilePath,
} from '@custody/verify';
import type { Vault } from '../vault.js';
import { isCustodyError } from '../errors.js';
import { nativeSha256 } from '../crypto/sha256.js';
import { parseEntry } from '../log/entry.js';
import { perfectRoot } from '../log/tree.js';
import type { AlarmInput } from './types.js';
import { integratesHere, keysOfBundle, laterVersions, sharedStoreOf, takeNoted } from './integrity-shared.js';
import type { ReplacedObject } from '../storage/s3/log-store.js';

const TILE = 256;

export interface SelfAuditOptions {
  logger: Logger;
  /** Time between ticks (default 30 s). */
  intervalMs?: number;
  /** Wall-time budget for bundle checks per log per tick (default 1,500 ms). */
  budgetMs?: number;
  /**
   * Whether a bundle was crypto-shredded by an approved purge (lifecycle/): a missing bundle
   * is then expected. Default: asks the lifecycle_purges table when it exists.
   */
  isShredded?: (log: string, bundleIndex: number) => boolean;
}

export interface SelfAuditStatus {
  log: string;
  /** The size and time of the last checkpoint accepted. */
  checkedSize: number;
  checkedAt: string | null;
  /** Next bundle the rolling pass will check, and when the last full pass ended. */
  cursor: number;
  lastPassAt: string | null;
  bundlesChecked: number;
  problems: number;
}

interface State {
  size: number;
  root: string;
  cursor: number;
  checkedAt: string | null;
  lastPassAt: string | null;
}

const MISSING = Symbol('missing tile');

export class SelfAudit {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private readonly stats = new Map<string, { bundlesChecked: number; problems: number }>();
  private readonly intervalMs: number;
  private readonly budgetMs: number;
  /** Shared vault: replaced S3 keys already alarmed (integrity-shared.ts). */
  private readonly seenReplaced = new WeakSet<ReplacedObject>();

  constructor(
    private readonly vault: Vault,
    private readonly opts: SelfAuditOptions,
  ) {
    this.intervalMs = opts.intervalMs ?? 30_000;
    this.budgetMs = opts.budgetMs ?? 1_500;
    vault.db.sqlite.exec(`CREATE TABLE IF NOT EXISTS selfaudit_state (log TEXT PRIMARY KEY, size INTEGER NOT NULL, root TEXT NOT NULL,
      cursor INTEGER NOT NULL, checked_at TEXT, last_pass_at TEXT)`);
  }

  start(): void {
    const loop = (): void => {
      if (this.closed) return;
      this.running = this.tick()
        .catch((e: unknown) => this.opts.logger.error({ err: e }, 'self-audit: a tick failed'))
        .finally(() => {
          this.running = null;
          if (!this.closed) {
            this.timer = setTimeout(loop, this.intervalMs);
            this.timer.unref();
          }
        });
    };
    this.timer = setTimeout(loop, Math.min(this.intervalMs, 5_000));
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  status(): SelfAuditStatus[] {
    return this.vault.logRows.map((r) => {
      const s = this.state(r.name);
      const st = this.stats.get(r.name) ?? { bundlesChecked: 0, problems: 0 };
      return { log: r.name, checkedSize: s.size, checkedAt: s.checkedAt, cursor: s.cursor, lastPassAt: s.lastPassAt, ...st };
    });
  }

  /** One round over every log (exported for the benchmark and `custody` tooling). */
  async tick(): Promise<void> {
    for (const row of [...this.vault.logRows]) {
      if (this.closed) return;
      // A shared vault: only the node integrating the log audits it (integrity-shared.ts).
      if (this.vault.shared && !integratesHere(this.vault.sequencer(row.name))) continue;
      await this.checkLog(row.name);
      if (this.vault.shared) await this.alarmReplaced(row.name);
    }
  }

  private state(log: string): State {
    const r = this.vault.db.sqlite.prepare('SELECT size, root, cursor, checked_at, last_pass_at FROM selfaudit_state WHERE log = ?').get(log) as
      | { size: number; root: string; cursor: number; checked_at: string | null; last_pass_at: string | null }
      | undefined;
    return r ? { size: r.size, root: r.root, cursor: r.cursor, checkedAt: r.checked_at, lastPassAt: r.last_pass_at } : { size: 0, root: '', cursor: 0, checkedAt: null, lastPassAt: null };
  }

  private save(log: string, s: State): void {
    this.vault.db.sqlite
      .prepare('INSERT INTO selfaudit_state (log, size, root, cursor, checked_at, last_pass_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(log) DO UPDATE SET size = excluded.size, root = excluded.root, cursor = excluded.cursor, checked_at = excluded.checked_at, last_pass_at = excluded.last_pass_at')
      .run(log, s.size, s.root, s.cursor, s.checkedAt, s.lastPassAt);
  }

  private async alarm(log: string, what: string, title: string, details: Record<string, unknown>): Promise<void> {
    const st = this.stats.get(log) ?? { bundlesChecked: 0, problems: 0 };
    st.problems++;
    this.stats.set(log, st);
    const a: AlarmInput = {
      kind: 'integrity',
      rule: `self-audit.${what}`,
      severity: 'critical',
      title,
      details: {
        log,
        ...details,
        whatToDo: this.vault.shared
          ? 'Run `custody verify --url <node> --log ' + log + '` to see every problem; list the versions of the named S3 objects (aws s3api list-object-versions) to see what was written when and by whom (CloudTrail data events), and treat the change as an incident.'
          : 'Run `custody verify --data <dir> --log ' + log + '` (or against the server) to see every problem; restore the named files from a backup copy taken before the change, and treat the change as an incident.',
      },
      groupKey: `self-audit|${log}|${what}|${String(details['file'] ?? '')}`,
      log,
    };
    await this.vault.alarms.raise(a);
  }

  /** Shared vault: an alarm per immutable S3 key found with a later version (overwrite or delete marker). */
  private async alarmReplaced(log: string, extra: ReplacedObject[] = []): Promise<void> {
    const store = sharedStoreOf(this.vault.sequencer(log));
    if (!store) return;
    const found = [...takeNoted(store, this.seenReplaced), ...extra];
    const done = new Set<string>();
    for (const r of found) {
      if (done.has(r.key)) continue;
      done.add(r.key);
      await this.alarm(
        log,
        'replaced',
        `The S3 object ${r.key} of log ${log} was overwritten or hidden after it was written (${r.later} later version${r.later === 1 ? '' : 's'}): readers still use its first version, which the tree commits to, but someone changed a locked log object.`,
        { file: r.key, laterVersions: r.later, bucket: store.objects.bucket, key: `${store.objects.prefix}${store.keyOf(r.key)}` },
      );
    }
  }

  private isShredded(log: string, bundle: number): boolean {
    if (this.opts.isShredded) return this.opts.isShredded(log, bundle);
    const db = this.vault.db.sqlite;
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lifecycle_purges'").get();
    if (!has) return false;
    try {
      const first = bundle * TILE;
      return db.prepare('SELECT 1 FROM lifecycle_purges WHERE log = ? AND from_index <= ? AND to_index >= ?').get(log, first, first + TILE) !== undefined;
    } catch {
      return false;
    }
  }

  /** Runs `fn` with a synchronous tile reader over stored tiles, loading what it asks for. */
  private async withTiles<T>(log: string, fn: (read: (level: number, index: number, width: number) => Uint8Array) => T): Promise<T> {
    const store = this.vault.sequencer(log).store;
    const cache = new Map<string, Uint8Array>();
    for (let round = 0; round < 200; round++) {
      const missing: Array<[number, number, number]> = [];
      try {
        return fn((level, index, width) => {
          const t = cache.get(`${level}/${index}/${width}`);
          if (t) return t;
          missing.push([level, index, width]);
          throw MISSING;
        });
      } catch (e) {
        if (e !== MISSING) throw e;
        for (const [level, index, width] of missing) {
          const t = await store.readTile(level, index, width);
          if (t === null) throw new TileMissing(tilePath({ level, index, width }));
          cache.set(`${level}/${index}/${width}`, t);
        }
      }
    }
    throw new Error('self-audit: too many tile rounds');
  }

  private async checkLog(log: string): Promise<void> {
    const seq = this.vault.sequencer(log);
    const store = seq.store;
    const st = this.state(log);
    // 1. The stored checkpoint and its signature.
    const text = await store.readCheckpoint();
    if (text === null) {
      if (st.size > 0 || seq.size > 0) await this.alarm(log, 'checkpoint', `The checkpoint file of log ${log} is missing from storage.`, { file: 'checkpoint' });
      return;
    }
    let size: number;
    let root: Uint8Array;
    try {
      const { checkpoint } = openCheckpoint(text, parseVerifierKey(seq.verifierKey));
      size = checkpoint.size;
      root = checkpoint.rootHash;
    } catch (e) {
      await this.alarm(log, 'checkpoint', `The stored checkpoint of log ${log} does not carry a valid signature of the log's key: it was changed or replaced.`, { file: 'checkpoint', error: (e as Error).message });
      return;
    }
    // 2. The stored tree has the checkpoint's root, and still the root accepted before.
    if (size < st.size) {
      await this.alarm(log, 'rollback', `The stored checkpoint of log ${log} is at ${size} entries, but ${st.size} were checked before: the log was rolled back on disk.`, { file: 'checkpoint', size, before: st.size });
      return;
    }
    try {
      const [now, then] = await this.withTiles(log, (read) => {
        const nodes = tileNodeReader(size, read, nativeSha256);
        return [treeRoot(size, nodes, nativeSha256), st.size > 0 ? treeRoot(st.size, nodes, nativeSha256) : null];
      });
      if (!bytesEqual(now, root)) {
        await this.alarm(log, 'tiles', `The stored hash tiles of log ${log} do not add up to the root of its checkpoint at ${size} entries: tiles were changed.`, { size, root: toBase64(root), computed: toBase64(now) });
        return;
      }
      if (then !== null && !bytesEqual(then, fromBase64(st.root))) {
        await this.alarm(log, 'history', `The stored tree of log ${log} no longer extends the checkpoint at ${st.size} entries checked earlier: its history was rewritten.`, { size: st.size, root: st.root, computed: toBase64(then) });
        return;
      }
    } catch (e) {
      if (e instanceof TileMissing) {
        await this.alarm(log, 'tiles', `Hash tile ${e.path} of log ${log} is missing from storage.`, { file: e.path });
        return;
      }
      await this.alarm(log, 'tiles', `The stored hash tiles of log ${log} cannot be read as a tree: ${(e as Error).message}`, {});
      return;
    }
    st.size = size;
    st.root = toBase64(root);
    st.checkedAt = new Date().toISOString();
    // 3. A window of bundles against the level-0 tiles.
    const bundles = Math.ceil(size / TILE);
    const stats = this.stats.get(log) ?? { bundlesChecked: 0, problems: 0 };
    this.stats.set(log, stats);
    const t0 = Date.now();
    let checked = 0;
    while (bundles > 0 && checked < bundles && Date.now() - t0 < this.budgetMs && !this.closed) {
      if (st.cursor >= bundles) {
        st.cursor = 0;
        st.lastPassAt = new Date().toISOString();
      }
      const i = st.cursor;
      const width = Math.min(TILE, size - i * TILE);
      await this.checkBundle(log, i, width);
      st.cursor++;
      checked++;
      stats.bundlesChecked++;
    }
    if (st.cursor >= bundles && bundles > 0) {
      st.cursor = 0;
      st.lastPassAt = new Date().toISOString();
    }
    this.save(log, st);
  }

  private async checkBundle(log: string, i: number, width: number): Promise<void> {
    const store = this.vault.sequencer(log).store;
    const file = tilePath({ level: 'entries', index: i, width });
    let plain: Buffer | null;
    if (typeof store.isS3Archived === 'function' && store.isS3Archived(i)) return; // reading it may start an S3 restore (docs/ARCHIVE.md); a shared vault has no archive tier
    const s3 = this.vault.shared ? sharedStoreOf(this.vault.sequencer(log)) : null;
    if (s3) await this.alarmReplaced(log, await laterVersions(s3, keysOfBundle(i, width)));
    try {
      plain = await store.readBundle(i, width);
    } catch (e) {
      if (isCustodyError(e, 'ENTRY_SHREDDED')) return;
      // Archived and not readable now (a cold S3 class, an unreachable archive): not damage;
      // the archive mover alarms on an unreachable archive itself (docs/ARCHIVE.md).
      if (isCustodyError(e, 'ARCHIVE_RESTORE_PENDING') || isCustodyError(e, 'ARCHIVE_UNAVAILABLE')) return;
      await this.alarm(log, 'bundle', `Entry bundle ${file} of log ${log} fails its authentication check: a stored byte was changed (${(e as Error).message}).`, { file, first: i * TILE, count: width });
      return;
    }
    if (plain === null) {
      if (this.isShredded(log, i)) return;
      await this.alarm(log, 'bundle', `Entry bundle ${file} of log ${log} is missing from storage, and no approved purge removed it.`, { file, first: i * TILE, count: width });
      return;
    }
    let entries: Uint8Array[];
    let tile: Uint8Array;
    try {
      entries = decodeBundle(plain, width);
      const t = await store.readTile(0, i, width);
      if (t === null) throw new TileMissing(tilePath({ level: 0, index: i, width }));
      tile = t;
    } catch (e) {
      await this.alarm(log, 'bundle', `Entry bundle ${file} of log ${log} cannot be checked: ${(e as Error).message}`, { file, first: i * TILE });
      return;
    }
    if (width === TILE) {
      // A full level-0 tile must hash to its node in the level-1 tile (checked against the root
      // above), so a changed leaf hash is told apart from a changed entry.
      const size = Math.max(this.state(log).size, (i + 1) * TILE);
      let parent: Uint8Array | null = null;
      try {
        parent = await this.withTiles(log, (read) => tileNodeReader(size, read, nativeSha256)(8, i));
      } catch {
        parent = null; // the tile check of this tick reports missing or unreadable tiles
      }
      const hashes: Uint8Array[] = [];
      for (let k = 0; k < TILE; k++) hashes.push(tile.subarray(k * 32, k * 32 + 32));
      if (parent !== null && !bytesEqual(perfectRoot(hashes, nativeSha256), parent)) {
        await this.alarm(log, 'tiles', `Hash tile ${tilePath({ level: 0, index: i, width })} of log ${log} does not hash to its node in the tree above it: the tile was changed.`, { file: tilePath({ level: 0, index: i, width }) });
        return;
      }
    }
    for (let k = 0; k < entries.length; k++) {
      const leaf = hashLeaf(entries[k]!, nativeSha256);
      if (!bytesEqual(leaf, tile.subarray(k * 32, k * 32 + 32))) {
        await this.alarm(log, 'bundle', `Entry ${i * TILE + k} in bundle ${file} of log ${log} does not hash to its leaf in the tree: the stored entry was changed.`, { file, entry: i * TILE + k });
        return;
      }
      // A record kept as a blob: the blob must still be there and hash to its reference.
      let blob: { sha256: string } | null = null;
      try {
        blob = parseEntry(entries[k]!).blob;
      } catch {
        blob = null; // the leaf matched: the entry is as it was written
      }
      if (blob) {
        try {
          await store.readBlob(blob.sha256); // opens (AES-GCM) and checks the SHA-256 it is named by
        } catch (e) {
          if (isCustodyError(e, 'ENTRY_SHREDDED') || this.isShredded(log, i)) continue;
          await this.alarm(log, 'blob', `The record of entry ${i * TILE + k} of log ${log}, kept as blob ${blob.sha256}, is missing or changed: ${(e as Error).message}`, { file: `blobs/${blob.sha256}`, entry: i * TILE + k });
          return;
        }
      }
    }
  }
}

class TileMissing extends Error {
  constructor(readonly path: string) {
    super(`hash tile ${path} is missing`);
  }
}
