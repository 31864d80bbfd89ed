/**
 * The life of an entry in one log (Tessera's model): sequence → durable ack → integrate →
 * publish.
 *
 * - `add()` queues entries; the flush loop appends everything queued as one journal record
 *   and fdatasyncs it (group commit), then resolves each caller with its contiguous indices.
 *   Nothing is acknowledged before it is durable.
 * - The integrator (a worker thread, see integrator.ts), at most `checkpointIntervalMs` after
 *   new entries became durable, hashes them into the tree and writes entry bundles and tiles
 *   (each fsynced). This thread then checks the new tree is consistent with the last
 *   published checkpoint, signs and atomically publishes the new checkpoint, and only then
 *   trims the journal.
 * - `open()` recovers: it checks the stored checkpoint against its signature, the database
 *   and the tiles, then replays the journal, so every acknowledged entry is integrated.
 */
import {
  Ed25519NoteSigner,
  formatCheckpoint,
  openCheckpoint,
  parseVerifierKey,
  proveConsistency,
  tileNodeReader,
  signNote,
  hashLeaf,
  decodeBundle,
  encodeBundle,
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
import type { Kek } from '../crypto/aead.js';
import { PosixLogStore, TileCache } from '../storage/posix.js';
import { Journal } from '../storage/journal.js';
import type { VaultDb } from '../storage/db.js';
import { TreeBuilder } from '../log/tree.js';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { WorkerInit } from './integrator-worker.js';
import type { JournalBatch } from '../storage/journal.js';
import type { WitnessSet } from '../witness/client.js';
import { checkAndSign, cosignOrRefuse } from './round.js';

import type { LogSequencerApi, PublishedCheckpoint, AppendResult } from './api.js';
export type { PublishedCheckpoint, AppendResult } from './api.js';

const TILE = 256;

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
  /** Back-pressure: new batches wait while this many entries wait for a checkpoint. */
  maxPendingEntries?: number;
  /** How long a batch may wait for admission before PUSHBACK (503). */
  admissionTimeoutMs?: number;
  /**
   * Entries waiting for a checkpoint in all logs of the vault together, and the cap on it: a
   * vault with many region logs keeps one memory bound, not one per log. A log with nothing
   * pending is always admitted (it cannot be what holds the others up).
   */
  sharedPending?: { total(): number; max: number };
  /** Most entries one integration round takes. */
  maxRoundEntries?: number;
  onPublish?: (log: string, cp: PublishedCheckpoint, stats: { entries: number; ms: number }) => void;
  /**
   * Witnesses (docs/WITNESS.md): a new checkpoint is published only once the witness policy
   * (k of n valid cosignatures) is met; until then the previous one stays and the round is
   * retried with backoff. Absent: checkpoints are published at once (no added latency).
   */
  witnesses?: WitnessSet;
}

interface QueuedAppend {
  /** The entries, encoded (uint16 length ‖ bytes each); handed to the integrator afterwards. */
  buf: Buffer;
  count: number;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

/** Wakes every waiter when something happens (here: a checkpoint is published). */
class Signal {
  private waiters: Array<() => void> = [];
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, timeoutMs);
      const self = this;
      function done(): void {
        clearTimeout(t);
        self.waiters = self.waiters.filter((x) => x !== done);
        resolve();
      }
      this.waiters.push(done);
    });
  }
}

export class LogSequencer implements LogSequencerApi {
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
  private readonly maxBacklog: number;
  private readonly admissionTimeoutMs: number;
  private readonly sharedPending: { total(): number; max: number } | undefined;
  private readonly published$ = new Signal();
  private readonly maxRound: number;

  private journal!: Journal;
  private worker: Worker | null = null;
  private published!: PublishedCheckpoint;
  private next = 0;
  private queue: QueuedAppend[] = [];
  private queuedEntries = 0;
  private flushing = false;
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
    this.interval = opts.checkpointIntervalMs ?? 100;
    this.maxBacklog = opts.maxPendingEntries ?? 40_000;
    this.admissionTimeoutMs = opts.admissionTimeoutMs ?? 10_000;
    this.sharedPending = opts.sharedPending;
    this.maxRound = opts.maxRoundEntries ?? 65_536;
  }

  static async open(opts: SequencerOptions): Promise<LogSequencer> {
    const s = new LogSequencer(opts);
    await s.recover();
    return s;
  }

  get keys(): LogKeys {
    return this.opts.keys;
  }
  get dir(): string {
    return this.opts.dir;
  }

  get size(): number {
    return this.published.size;
  }
  get sequencedSize(): number {
    return this.next;
  }
  get pendingEntries(): number {
    return this.next - this.published.size + this.queuedEntries;
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
    const builder = new TreeBuilder(this.h, size, partial);
    if (!bytesEqual(builder.root(), root)) {
      throw new CustodyError('STORAGE_CORRUPT', `The hash tiles of log "${name}" do not match its checkpoint: a tile was altered. Run \`custody verify\` to find it.`);
    }
    let tail: Uint8Array[] = [];
    const w0 = size % TILE;
    if (w0 > 0) {
      const b = await this.store.readBundle(Math.floor(size / TILE), w0);
      if (!b) throw new CustodyError('STORAGE_CORRUPT', `The last entry bundle of log "${name}" is missing.`);
      tail = decodeBundle(b, w0);
      for (let i = 0; i < w0; i++) {
        if (!bytesEqual(hashLeaf(tail[i]!, this.h), partial[0]![i]!)) {
          throw new CustodyError('STORAGE_CORRUPT', `Entry ${size - w0 + i} of log "${name}" does not match its leaf hash.`);
        }
      }
    }
    this.published = { size, root, text: text ?? '', publishedAt: Date.now() };
    if (text !== null && (!state || state.size < size)) db.setLogState(name, size, text);
    if (text === null) this.publishEmpty(); // an empty log still has a signed checkpoint

    const swept = await this.store.sweepTemporaryFiles(size);
    if (swept > 0) this.log.info({ swept }, 'removed temporary files left by an interrupted write');
    const { journal, batches } = await Journal.open(join(this.opts.dir, 'journal'), () => this.opts.keys.activeKek, this.opts.keys.lookup, this.origin);
    this.journal = journal;
    this.startWorker({ size, partial, tail: tail.length > 0 ? Buffer.from(encodeBundle(tail)) : Buffer.alloc(0) });
    this.next = size;
    const replayed = this.replay(batches, size);
    if (replayed > 0) {
      this.log.info({ replayed, from: size }, 'recovered acknowledged entries from the journal; integrating them');
      try {
        await this.waitForCheckpoint(this.next, 120_000);
      } catch (e) {
        this.log.error({ err: e }, 'recovered entries are not integrated yet; the integrator keeps trying');
      }
    }
  }

  /** Hands the journal's entries beyond `size` to the integrator; returns how many. */
  private replay(batches: JournalBatch[], size: number): number {
    let replayed = 0;
    for (const b of batches) {
      const end = b.firstIndex + b.count;
      if (end <= size) continue;
      if (b.firstIndex > this.next) {
        throw new CustodyError('STORAGE_CORRUPT', `The journal of log "${this.name}" starts at ${b.firstIndex} but the log holds only ${this.next} entries: acknowledged entries are missing.`);
      }
      let off = 0;
      for (let i = b.firstIndex; i < this.next; i++) off += 2 + b.plain.readUInt16BE(off);
      const buf = Buffer.from(b.plain.subarray(off));
      this.toIntegrator(this.next, end - this.next, buf);
      replayed += end - this.next;
      this.next = end;
    }
    return replayed;
  }

  private startWorker(state: { size: number; partial: Uint8Array[][]; tail: Buffer }): void {
    const init: WorkerInit = {
      store: { kind: 'posix', dir: this.opts.dir },
      origin: this.origin,
      keys: this.opts.keys.exportForWorker(),
      state,
      intervalMs: this.interval,
      maxRound: this.maxRound,
    };
    // A small young generation: the integrator's garbage is large sealed buffers, which are
    // returned to the system only when their (young) wrappers are collected.
    const w = new Worker(new URL('./integrator-worker.js', import.meta.url), { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 8 } });
    w.on('message', (m: { t: string; size?: number; root?: Uint8Array; entries?: number; code?: string; message?: string; computeMs?: number; writeMs?: number; files?: number }) => {
      if (m.t === 'round') {
        this.log.debug({ entries: m.entries, computeMs: Math.round(m.computeMs!), writeMs: Math.round(m.writeMs!), files: m.files }, 'integration round written');
        this.onRound(m.size!, new Uint8Array(m.root!), m.entries!);
      }
      else if (m.t === 'error') {
        this.lastError = new CustodyError((m.code as CustodyError['code']) ?? 'INTERNAL', m.message ?? 'integration failed');
        this.log.error({ code: m.code, message: m.message }, 'integration failed; will retry');
      }
    });
    w.on('error', (e) => {
      this.lastError = new CustodyError('INTERNAL', `The integrator of log "${this.name}" stopped: ${e.message}. Restart the vault; acknowledged entries are safe in the journal.`);
      this.log.fatal({ err: e }, 'integrator worker crashed');
      this.worker = null;
    });
    w.unref();
    this.worker = w;
  }

  private toIntegrator(first: number, count: number, buf: Buffer): void {
    if (!this.worker) return; // crashed: entries stay in the journal for the next start
    // Transfer the bytes to the worker without copying when the buffer owns its memory; a
    // small Buffer lives in Node's shared pool, which must never be transferred: copy it.
    let ab: ArrayBuffer;
    if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) ab = buf.buffer as ArrayBuffer;
    else {
      ab = new ArrayBuffer(buf.byteLength);
      new Uint8Array(ab).set(buf);
    }
    this.worker.postMessage({ t: 'append', first, count, buf: ab }, [ab]);
  }

  /**
   * Queues entries (encoded: uint16 length ‖ bytes each); resolves once they are durable.
   * Back-pressure: while more than `maxBacklog` entries wait for a checkpoint, new batches wait
   * for the integrator to catch up (this keeps ack → checkpoint latency and memory bounded);
   * a batch that cannot be admitted within `admissionTimeoutMs` gets PUSHBACK (503).
   */
  async add(buf: Buffer, count: number): Promise<AppendResult> {
    const started = Date.now();
    for (;;) {
      if (this.closed) throw new CustodyError('NOT_READY', `Log "${this.name}" is shutting down; retry in a moment.`);
      if (!this.worker) throw this.lastError ?? new CustodyError('NOT_READY', `Log "${this.name}" cannot integrate; see /readyz.`);
      const pending = this.pendingEntries;
      if (pending === 0) break;
      if (pending + count <= this.maxBacklog && (!this.sharedPending || this.sharedPending.total() + count <= this.sharedPending.max)) break;
      if (Date.now() - started > this.admissionTimeoutMs) {
        throw new CustodyError('PUSHBACK', `Log "${this.name}" has ${pending} entries waiting for integration; retry after a second.`, { retryAfter: 1 });
      }
      await this.published$.wait(250);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ buf, count, resolve, reject });
      this.queuedEntries += count;
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
      let count = 0;
      for (const g of groups) count += g.count;
      this.queuedEntries -= count;
      const first = this.next;
      try {
        await this.journal.append(first, count, groups.map((g) => g.buf));
      } catch (e) {
        this.log.error({ err: e }, 'journal append failed; batch refused');
        for (const g of groups) g.reject(e);
        continue;
      }
      this.next += count;
      let at = first;
      for (const g of groups) {
        g.resolve({ first: at, count: g.count });
        this.toIntegrator(at, g.count, g.buf);
        at += g.count;
      }
    }
    this.flushing = false;
  }

  /** The integrator wrote a round: check it, sign it, publish it, tell the integrator. */
  private onRound(N: number, root: Uint8Array, entries: number): void {
    const S = this.published.size;
    let text: string;
    try {
      text = checkAndSign({ name: this.name, origin: this.origin, S, publishedRoot: this.published.root, N, root, entries, reader: this.nodeReader(N), h: this.h, signer: this.signer });
    } catch (e) {
      this.publishFailed(e);
      return;
    }
    if (this.opts.witnesses) {
      void this.publishWitnessed(this.opts.witnesses, N, root, entries, text);
      return;
    }
    this.publish(N, root, entries, text);
  }

  private publishFailed(e: unknown): void {
    this.lastError = e instanceof CustodyError ? e : new CustodyError('STORAGE_UNAVAILABLE', String((e as Error)?.message ?? e));
    this.log.error({ err: e }, 'publishing the checkpoint failed; will retry');
    this.worker?.postMessage({ t: 'rejected' });
  }

  /**
   * Sends the signed checkpoint to the witnesses and publishes it, with their cosignature lines
   * appended, only when the policy is met. Otherwise the previous checkpoint stays published,
   * the entries stay acknowledged in the journal, and the integrator retries with backoff
   * ('rejected'); the witness client raises the alarms.
   */
  private async publishWitnessed(witnesses: WitnessSet, N: number, root: Uint8Array, entries: number, text: string): Promise<void> {
    let cosigned: string;
    try {
      cosigned = await cosignOrRefuse(witnesses, {
        name: this.name,
        origin: this.origin,
        N,
        text,
        publishedSize: this.published.size,
        prove: (from) => proveConsistency(from, N, this.nodeReader(N), this.h),
      });
    } catch (e) {
      if (this.worker) this.publishFailed(e);
      return;
    }
    if (!this.worker) return; // closed while the witnesses answered
    this.publish(N, root, entries, cosigned);
  }

  private publish(N: number, root: Uint8Array, entries: number, text: string): void {
    try {
      this.store.writeCheckpointSync(text);
      this.opts.db.setLogState(this.name, N, text);
    } catch (e) {
      this.publishFailed(e);
      return;
    }
    const t0 = this.published.publishedAt;
    this.published = { size: N, root, text, publishedAt: Date.now() };
    this.lastError = null;
    this.worker?.postMessage({ t: 'published' });
    this.published$.notify();
    const ready = this.waiters.filter((w) => w.size <= N);
    this.waiters = this.waiters.filter((w) => w.size > N);
    for (const w of ready) w.resolve(this.published);
    this.opts.onPublish?.(this.name, this.published, { entries, ms: this.published.publishedAt - t0 });
    this.journal.trim(N).catch((e: unknown) => this.log.warn({ err: e }, 'trimming the journal failed'));
    this.log.debug({ size: N, root: toBase64(root), entries }, 'checkpoint published');
  }

  private publishEmpty(): void {
    const text = signNote(formatCheckpoint({ origin: this.origin, size: 0, rootHash: EMPTY_ROOT, extensions: [] }), [this.signer]);
    this.store.writeCheckpointSync(text);
    this.opts.db.setLogState(this.name, 0, text);
    this.published = { size: 0, root: EMPTY_ROOT, text, publishedAt: Date.now() };
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

  /**
   * A new KEK was added to the keyring (lifecycle/rotation.ts): blobs, journal segments and the
   * integrator's bundles are sealed with it from now on; older objects open with the old KEKs.
   */
  useKek(kek: Kek, kmsKeyId?: string): void {
    this.opts.keys.addKek(kek);
    if (kmsKeyId) this.opts.keys.useKmsKey(kmsKeyId);
    this.worker?.postMessage({ t: 'kek', id: kek.id, key: new Uint8Array(kek.key), kmsKeyId });
  }

  /** Stops accepting appends, finishes what is queued and integrates it, then closes. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await new Promise((r) => setTimeout(r, 5));
    if (this.worker && this.published.size < this.next) {
      try {
        await this.waitForCheckpoint(this.next, 30_000);
      } catch (e) {
        this.log.warn({ err: e }, 'closing before every entry was integrated; the journal keeps them for the next start');
      }
    }
    for (const w of this.waiters) w.reject(new CustodyError('NOT_READY', 'The vault is shutting down.'));
    this.waiters = [];
    await this.worker?.terminate();
    this.worker = null;
    await this.journal?.close();
  }
}
