/**
 * The life of an entry in one log (Tessera's model): sequence → durable ack → integrate →
 * publish.
 *
 * - `add()` queues entries; the flush loop appends everything queued as one journal record
 *   and fdatasyncs it (group commit), then resolves each caller with its contiguous indices.
 *   Nothing is acknowledged before it is durable.
 * - The integrator, at most `checkpointIntervalMs` after new entries became durable, hashes
 *   them into the tree, writes entry bundles and tiles (each fsynced), checks the new tree is
 *   consistent with the last published checkpoint, signs and atomically publishes the new
 *   checkpoint, and only then trims the journal.
 * - `open()` recovers: it checks the stored checkpoint against its signature, the database
 *   and the tiles, then replays the journal, so every acknowledged entry is integrated.
 */
import {
  Ed25519NoteSigner,
  formatCheckpoint,
  openCheckpoint,
  parseVerifierKey,
  proveConsistency,
  verifyConsistency,
  tileNodeReader,
  signNote,
  decodeBundle,
  toBase64,
  bytesEqual,
  EMPTY_ROOT,
  type NodeReader,
  type NoteVerifier,
  type Sha256,
} from '@custody/verify';
import type { Logger } from 'pino';
import { CustodyError } from '../errors.js';
import type { LogKeys } from '../crypto/keyring.js';
import { PosixLogStore, TileCache } from '../storage/posix.js';
import { Journal } from '../storage/journal.js';
import type { VaultDb } from '../storage/db.js';
import { TreeBuilder } from '../log/tree.js';
import { join } from 'node:path';

const TILE = 256;

export interface PublishedCheckpoint {
  size: number;
  root: Uint8Array;
  text: string;
  publishedAt: number;
}

export interface AppendResult {
  first: number;
  count: number;
}

export interface SequencerOptions {
  name: string;
  origin: string;
  dir: string;
  keys: LogKeys;
  db: VaultDb;
  hash: Sha256;
  logger: Logger;
  /** Longest wait between new durable entries and the checkpoint that covers them. */
  checkpointIntervalMs?: number;
  /** Back-pressure: refuse appends (PUSHBACK) when this many entries wait for integration. */
  maxPendingEntries?: number;
  /** Most entries one integration round takes. */
  maxRoundEntries?: number;
  onPublish?: (log: string, cp: PublishedCheckpoint, stats: { entries: number; ms: number }) => void;
}

interface QueuedAppend {
  entries: Buffer[];
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

export class LogSequencer {
  readonly name: string;
  readonly origin: string;
  readonly store: PosixLogStore;
  readonly tiles: TileCache;
  readonly verifier: NoteVerifier;
  readonly verifierKey: string;
  private readonly signer: Ed25519NoteSigner;
  private readonly h: Sha256;
  private readonly log: Logger;
  private readonly interval: number;
  private readonly maxPending: number;
  private readonly maxRound: number;

  private journal!: Journal;
  private builder!: TreeBuilder;
  private bundleTail: Buffer[] = [];
  private published!: PublishedCheckpoint;
  private next = 0;
  /** Durable entries not yet integrated: indices [published.size, next). */
  private durable: Buffer[] = [];
  private queue: QueuedAppend[] = [];
  private queuedEntries = 0;
  private flushing = false;
  private integrating = false;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;
  private waiters: Array<{ size: number; resolve: (cp: PublishedCheckpoint) => void; reject: (e: unknown) => void }> = [];
  lastError: CustodyError | null = null;

  private constructor(private readonly opts: SequencerOptions) {
    this.name = opts.name;
    this.origin = opts.origin;
    this.store = new PosixLogStore(opts.dir, opts.origin, opts.keys);
    this.tiles = new TileCache(this.store.treeDir);
    this.signer = new Ed25519NoteSigner(opts.origin, opts.keys.signingSeed);
    this.verifierKey = this.signer.verifierKey;
    this.verifier = parseVerifierKey(this.verifierKey);
    this.h = opts.hash;
    this.log = opts.logger.child({ log: opts.name });
    this.interval = opts.checkpointIntervalMs ?? 250;
    this.maxPending = opts.maxPendingEntries ?? 500_000;
    this.maxRound = opts.maxRoundEntries ?? 65_536;
  }

  static async open(opts: SequencerOptions): Promise<LogSequencer> {
    const s = new LogSequencer(opts);
    await s.recover();
    return s;
  }

  get size(): number {
    return this.published.size;
  }
  get sequencedSize(): number {
    return this.next;
  }
  get pendingEntries(): number {
    return this.durable.length + this.queuedEntries;
  }
  get checkpoint(): PublishedCheckpoint {
    return this.published;
  }

  /** Reads hashes of the tree at `size` (≤ the published size) from the stored tiles. */
  nodeReader(size: number): NodeReader {
    const memo = new Map<string, Uint8Array>();
    const base = tileNodeReader(size, this.tiles.readSync, this.h);
    return (level, index) => {
      const k = `${level}/${index}`;
      let v = memo.get(k);
      if (!v) {
        v = base(level, index);
        memo.set(k, v);
      }
      return v;
    };
  }

  private async recover(): Promise<void> {
    const { name, db } = this.opts;
    const text = await this.store.readCheckpoint();
    const state = db.getLogState(name);
    let size = 0;
    let root: Uint8Array = EMPTY_ROOT;
    if (text === null) {
      if (state && state.size > 0) {
        throw new CustodyError('STORAGE_CORRUPT', `The checkpoint of log "${name}" is missing but the database says it held ${state.size} entries: the data directory was damaged or rolled back. Restore it from backup.`);
      }
    } else {
      let cp;
      try {
        cp = openCheckpoint(text, this.verifier).checkpoint;
      } catch (e) {
        throw new CustodyError('STORAGE_CORRUPT', `The stored checkpoint of log "${name}" does not verify with the log's key (${(e as Error).message}): it was altered.`);
      }
      if (state && state.size > cp.size) {
        throw new CustodyError('STORAGE_CORRUPT', `The stored checkpoint of log "${name}" has ${cp.size} entries but ${state.size} were already published: the tree was rolled back. Restore it from backup.`);
      }
      if (state && state.size === cp.size && state.checkpoint !== text && !bytesEqual(openCheckpoint(state.checkpoint, this.verifier).checkpoint.rootHash, cp.rootHash)) {
        throw new CustodyError('STORAGE_CORRUPT', `The stored checkpoint of log "${name}" differs from the one recorded as published at the same size.`);
      }
      size = cp.size;
      root = cp.rootHash;
    }
    // The right edge of the tree: the partial tile at every level.
    const partial: Uint8Array[][] = [];
    for (let l = 0, count = size; count > 0; l++, count = Math.floor(count / TILE)) {
      const w = count % TILE;
      const hashes: Uint8Array[] = [];
      if (w > 0) {
        const t = this.tiles.readSync(l, Math.floor(count / TILE), w);
        if (t.length !== w * 32) throw new CustodyError('STORAGE_CORRUPT', `Hash tile at level ${l} of log "${name}" has the wrong length.`);
        for (let i = 0; i < w; i++) hashes.push(t.subarray(i * 32, i * 32 + 32));
      }
      partial.push(hashes);
    }
    this.builder = new TreeBuilder(this.h, size, partial);
    if (!bytesEqual(this.builder.root(), root)) {
      throw new CustodyError('STORAGE_CORRUPT', `The hash tiles of log "${name}" do not match its checkpoint: a tile was altered. Run \`custody verify\` to find it.`);
    }
    const w0 = size % TILE;
    if (w0 > 0) {
      const b = await this.store.readBundle(Math.floor(size / TILE), w0);
      if (!b) throw new CustodyError('STORAGE_CORRUPT', `The last entry bundle of log "${name}" is missing.`);
      this.bundleTail = decodeBundle(b, w0).map((e) => Buffer.from(e));
      for (let i = 0; i < w0; i++) {
        if (!bytesEqual(this.leafHash(this.bundleTail[i]!), partial[0]![i]!)) {
          throw new CustodyError('STORAGE_CORRUPT', `Entry ${size - w0 + i} of log "${name}" does not match its leaf hash.`);
        }
      }
    }
    this.published = { size, root, text: text ?? '', publishedAt: Date.now() };
    if (text !== null && (!state || state.size < size)) db.setLogState(name, size, text);

    const { journal, batches } = await Journal.open(join(this.opts.dir, 'journal'), () => this.opts.keys.activeKek, this.opts.keys.lookup, this.origin);
    this.journal = journal;
    this.next = size;
    let replayed = 0;
    for (const b of batches) {
      const end = b.firstIndex + b.entries.length;
      if (end <= size) continue;
      if (b.firstIndex > this.next) {
        throw new CustodyError('STORAGE_CORRUPT', `The journal of log "${name}" starts at ${b.firstIndex} but the log holds only ${this.next} entries: acknowledged entries are missing.`);
      }
      for (let i = this.next - b.firstIndex; i < b.entries.length; i++) this.durable.push(b.entries[i]!);
      replayed += end - this.next;
      this.next = end;
    }
    if (replayed > 0) {
      this.log.info({ replayed, from: size }, 'recovered acknowledged entries from the journal; integrating them');
      await this.integrate();
    }
    if (this.published.text === '') await this.publish(this.builder, 0, []); // an empty log still has a signed checkpoint
  }

  private leafHash(entry: Uint8Array): Uint8Array {
    const buf = Buffer.allocUnsafe(entry.length + 1);
    buf[0] = 0;
    buf.set(entry, 1);
    return this.h(buf);
  }

  /** Queues entries; resolves once they are durable, with their contiguous indices. */
  add(entries: Buffer[]): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new CustodyError('NOT_READY', `Log "${this.name}" is shutting down; retry in a moment.`));
    if (this.pendingEntries + entries.length > this.maxPending) {
      return Promise.reject(
        new CustodyError('PUSHBACK', `Log "${this.name}" has ${this.pendingEntries} entries waiting for integration; retry after a second.`, { retryAfter: 1 }),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ entries, resolve, reject });
      this.queuedEntries += entries.length;
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const groups = this.queue;
      this.queue = [];
      const entries: Buffer[] = [];
      for (const g of groups) for (const e of g.entries) entries.push(e);
      this.queuedEntries -= entries.length;
      const first = this.next;
      try {
        await this.journal.append(first, entries);
      } catch (e) {
        this.log.error({ err: e }, 'journal append failed; batch refused');
        for (const g of groups) g.reject(e);
        continue;
      }
      this.next += entries.length;
      for (const e of entries) this.durable.push(e);
      let at = first;
      for (const g of groups) {
        g.resolve({ first: at, count: g.entries.length });
        at += g.entries.length;
      }
      this.scheduleIntegration(this.interval);
    }
    this.flushing = false;
  }

  private scheduleIntegration(delay: number): void {
    if (this.integrating || this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.integrate();
    }, delay);
  }

  /** Integrates everything durable; on failure keeps it queued and retries with backoff. */
  private async integrate(): Promise<void> {
    if (this.integrating) return;
    this.integrating = true;
    try {
      while (this.durable.length > 0) {
        const started = Date.now();
        try {
          await this.integrateRound();
          this.failures = 0;
          this.lastError = null;
        } catch (e) {
          this.failures++;
          this.lastError = e instanceof CustodyError ? e : new CustodyError('INTERNAL', String((e as Error)?.message ?? e));
          const delay = Math.min(10_000, 250 * 2 ** Math.min(this.failures, 6));
          this.log.error({ err: e, retryInMs: delay }, 'integration failed; will retry');
          this.integrating = false;
          this.scheduleIntegration(delay);
          return;
        }
        if (this.durable.length > 0 && !this.closed) {
          const wait = this.interval - (Date.now() - started);
          if (wait > 0) {
            this.integrating = false;
            this.scheduleIntegration(wait);
            return;
          }
        }
      }
    } finally {
      this.integrating = false;
    }
  }

  private async integrateRound(): Promise<void> {
    const t0 = Date.now();
    const take = Math.min(this.durable.length, this.maxRound);
    const entries = this.durable.slice(0, take);
    const builder = this.builder.clone();
    for (const e of entries) builder.append(this.leafHash(e));
    await this.publish(builder, take, entries);
    this.durable.splice(0, take);
    this.opts.onPublish?.(this.name, this.published, { entries: take, ms: Date.now() - t0 });
  }

  /** Writes bundles and tiles for the entries just appended to `builder`, then signs and publishes. */
  private async publish(builder: TreeBuilder, count: number, entries: Buffer[]): Promise<void> {
    const S = this.published?.size ?? 0;
    const N = builder.size;
    if (N !== S + count) throw new Error('integrator: size mismatch');
    const writes = [];
    const fullBundles: number[] = [];
    let tail = [...this.bundleTail];
    let bIndex = Math.floor(S / TILE);
    for (const e of entries) {
      tail.push(e);
      if (tail.length === TILE) {
        writes.push(this.store.bundleWrite(bIndex, tail));
        fullBundles.push(bIndex);
        bIndex++;
        tail = [];
      }
    }
    if (tail.length > 0 && count > 0) writes.push(this.store.bundleWrite(bIndex, tail));
    const completed = builder.takeCompleted();
    const tiles = [...completed, ...builder.partialTiles().filter(() => count > 0)];
    for (const t of tiles) writes.push(this.store.tileWrite(t));
    await this.store.writeAll(writes);
    for (const t of tiles) this.tiles.put(t.level, t.index, t.width, t.data);

    const root = builder.root();
    if (S > 0 && this.published) {
      // Never sign a checkpoint that is not an extension of the last one (C2SP tlog-checkpoint).
      try {
        const proof = proveConsistency(S, N, this.nodeReader(N), this.h);
        verifyConsistency(S, N, proof, this.published.root, root, this.h);
      } catch (e) {
        throw new CustodyError('STORAGE_CORRUPT', `Refusing to sign: the tree of log "${this.name}" at ${N} is not consistent with the published checkpoint at ${S} (${(e as Error).message}).`);
      }
    }
    const text = signNote(formatCheckpoint({ origin: this.origin, size: N, rootHash: root, extensions: [] }), [this.signer]);
    this.store.writeCheckpointSync(text);
    this.opts.db.setLogState(this.name, N, text);

    this.builder = builder;
    this.bundleTail = tail;
    this.published = { size: N, root, text, publishedAt: Date.now() };
    const ready = this.waiters.filter((w) => w.size <= N);
    this.waiters = this.waiters.filter((w) => w.size > N);
    for (const w of ready) w.resolve(this.published);

    // Housekeeping; failures here never undo a publication.
    try {
      for (const b of fullBundles) await this.store.removePartials('entries', b);
      for (const t of completed) await this.store.removePartials(t.level, t.index);
      await this.journal.trim(N);
    } catch (e) {
      this.log.warn({ err: e }, 'cleanup after publishing failed');
    }
    this.log.debug({ size: N, root: toBase64(root), entries: count }, 'checkpoint published');
  }

  /** Resolves with the first published checkpoint whose size is at least `size`. */
  waitForCheckpoint(size: number, timeoutMs = 30_000): Promise<PublishedCheckpoint> {
    if (this.published.size >= size) return Promise.resolve(this.published);
    return new Promise((resolve, reject) => {
      const w = {
        size,
        resolve: (cp: PublishedCheckpoint) => {
          clearTimeout(timer);
          resolve(cp);
        },
        reject,
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new CustodyError('STORAGE_UNAVAILABLE', `The entries are durable but no checkpoint covers them yet (${this.lastError?.message ?? 'integration is slow'}); fetch the receipt later with GET /v1/logs/${this.name}/entries/{index}.`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Stops accepting appends, finishes what is queued, integrates, and closes the journal. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await new Promise((r) => setTimeout(r, 5));
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.integrating) await new Promise((r) => setTimeout(r, 5));
    if (this.durable.length > 0) {
      this.closed = false;
      try {
        await this.integrate();
      } finally {
        this.closed = true;
        if (this.timer) clearTimeout(this.timer);
        this.timer = null;
      }
    }
    for (const w of this.waiters) w.reject(new CustodyError('NOT_READY', 'The vault is shutting down.'));
    this.waiters = [];
    await this.journal.close();
  }
}
