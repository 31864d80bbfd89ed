/**
 * The integrator: turns durable entries into the tree. It runs in a worker thread
 * (integrator-worker.ts) so hashing, sealing and writing never stall the HTTP event loop.
 *
 * A round takes up to `maxRound` pending entries, hashes them into a copy of the tree's
 * right edge, seals the entry bundles, writes full and new partial hash tiles durably, and
 * reports the new size and root. The main thread signs and publishes the checkpoint, then
 * answers `commit()` (adopt the round) or `abort()` (forget it; the entries stay pending).
 * Tiles and bundles are deterministic from the entries, so a retried round rewrites the same
 * content.
 */
import { TreeBuilder } from '../log/tree.js';
import type { LogKeys } from '../crypto/keyring.js';
import type { LogStore, PendingWrite } from '../storage/log-store.js';
import { nativeSha256 } from '../crypto/sha256.js';
import { toBase64 } from '@custody/verify';

const TILE = 256;

interface Group {
  first: number;
  count: number;
  buf: Buffer; // entries, each uint16 length ‖ bytes
  arrived: number;
}

/** Where the next unintegrated entry is: group, byte offset in it, and entries already taken. */
interface Cursor {
  group: number;
  off: number;
  taken: number;
}

export interface IntegratorState {
  size: number;
  /** partial[l] = the hashes of the incomplete tile at level l. */
  partial: Uint8Array[][];
  /** The entries of the incomplete bundle, encoded. */
  tail: Buffer;
}

export interface RoundResult {
  size: number;
  root: Uint8Array;
  entries: number;
  /** Milliseconds spent hashing and sealing, and writing files durably. */
  computeMs: number;
  writeMs: number;
  files: number;
}

interface Staged {
  builder: TreeBuilder;
  tail: Buffer[];
  tailCount: number;
  cursor: Cursor;
  size: number;
  fullBundles: number[];
  completed: Array<{ level: number; index: number }>;
  partialKeys: Set<string>;
}

export class Integrator {
  private builder: TreeBuilder;
  private tail: Buffer[];
  private tailCount: number;
  private size: number;
  private groups: Group[] = [];
  private cursor: Cursor = { group: 0, off: 0, taken: 0 };
  private pendingCount = 0;
  private staged: Staged | null = null;
  /** Partial tiles already on disk (level/index/width), so an unchanged one is not rewritten. */
  private writtenPartials = new Set<string>();
  constructor(
    /** Where the tree is written: files (PosixLogStore) or locked S3 objects (S3LogStore). */
    readonly store: LogStore,
    private readonly origin: string,
    private readonly keys: LogKeys,
    state: IntegratorState,
    private readonly maxRound: number,
  ) {
    this.builder = new TreeBuilder(nativeSha256, state.size, state.partial);
    this.size = state.size;
    this.tail = state.tail.length > 0 ? [state.tail] : [];
    this.tailCount = state.size % TILE;
  }

  get pending(): number {
    return this.pendingCount;
  }

  /** Arrival time of the oldest pending group (for batching), or null. */
  get oldestPending(): number | null {
    return this.groups[this.cursor.group]?.arrived ?? null;
  }

  add(first: number, count: number, buf: Buffer): void {
    const last = this.groups[this.groups.length - 1];
    const expected = last ? last.first + last.count : this.size;
    if (first !== expected) throw new Error(`integrator: entries arrive at ${first}, expected ${expected}`);
    this.groups.push({ first, count, buf, arrived: Date.now() });
    this.pendingCount += count;
  }

  /** Computes and writes the next round; returns null when nothing is pending. */
  async round(): Promise<RoundResult | null> {
    if (this.staged) throw new Error('integrator: a round is already staged');
    if (this.pendingCount === 0) return null;
    // With AWS KMS keys: the data keys of the bundles this round writes, before anything is
    // sealed (one GenerateDataKey per bundle, reused for its partial widths), and the next
    // bundle's in the background. A KMS failure fails the round; its entries stay pending.
    const firstBundle = Math.floor(this.size / TILE);
    const lastBundle = Math.floor((this.size + Math.min(this.pendingCount, this.maxRound) - 1) / TILE);
    await this.keys.prepareBundles(this.origin, Array.from({ length: lastBundle - firstBundle + 1 }, (_, i) => firstBundle + i));
    this.keys.prefetchBundle(this.origin, lastBundle + 1);
    const t0 = performance.now();
    const builder = this.builder.clone();
    let tail = [...this.tail];
    let tailCount = this.tailCount;
    let bundleIndex = Math.floor(this.size / TILE);
    const writes: PendingWrite[] = [];
    const fullBundles: number[] = [];
    const cur = { ...this.cursor };
    const take = Math.min(this.pendingCount, this.maxRound);
    let runStart = cur.off; // start of the run of entries of the current group in the current bundle
    for (let i = 0; i < take; i++) {
      const g = this.groups[cur.group]!;
      const buf = g.buf;
      const o = cur.off;
      const len = buf.readUInt16BE(o);
      // leaf hash = SHA-256(0x00 ‖ entry): borrow the length's low byte as the 0x00 (no copy)
      const low = buf[o + 1]!;
      buf[o + 1] = 0;
      builder.append(nativeSha256(buf.subarray(o + 1, o + 2 + len)));
      buf[o + 1] = low;
      cur.off = o + 2 + len;
      cur.taken++;
      tailCount++;
      const groupDone = cur.taken === g.count;
      if (tailCount === TILE || groupDone || i === take - 1) {
        tail.push(buf.subarray(runStart, cur.off));
        runStart = cur.off;
      }
      if (tailCount === TILE) {
        writes.push(this.store.bundleWrite(bundleIndex, tail, TILE));
        fullBundles.push(bundleIndex);
        bundleIndex++;
        tail = [];
        tailCount = 0;
      }
      if (groupDone) {
        cur.group++;
        cur.off = 0;
        cur.taken = 0;
        runStart = 0;
      }
    }
    if (tailCount > 0) writes.push(this.store.bundleWrite(bundleIndex, tail, tailCount));
    const completed = builder.takeCompleted();
    for (const t of completed) writes.push(this.store.tileWrite(t));
    const partialKeys = new Set<string>();
    for (const t of builder.partialTiles()) {
      const k = `${t.level}/${t.index}/${t.width}`;
      partialKeys.add(k);
      if (!this.writtenPartials.has(k)) writes.push(this.store.tileWrite(t));
    }
    const t1 = performance.now();
    await this.store.writeAll(writes);
    const t2 = performance.now();
    // The tail must outlive the group buffers it points into.
    const ownTail = tailCount > 0 ? [Buffer.concat(tail)] : [];
    this.staged = {
      builder,
      tail: ownTail,
      tailCount,
      cursor: cur,
      size: this.size + take,
      fullBundles,
      completed: completed.map((t) => ({ level: t.level, index: t.index })),
      partialKeys,
    };
    return { size: this.size + take, root: builder.root(), entries: take, computeMs: t1 - t0, writeMs: t2 - t1, files: writes.length };
  }

  /** The staged round was published: adopt it and clean up what it made obsolete. */
  async commit(): Promise<void> {
    const s = this.staged;
    if (!s) return;
    this.staged = null;
    this.builder = s.builder;
    this.tail = s.tail;
    this.tailCount = s.tailCount;
    this.pendingCount -= s.size - this.size;
    this.size = s.size;
    this.groups.splice(0, s.cursor.group);
    this.cursor = { group: 0, off: s.cursor.off, taken: s.cursor.taken };
    this.writtenPartials = s.partialKeys;
    // Partial versions of tiles that are now full are no longer needed (C2SP tlog-tiles).
    for (const b of s.fullBundles) await this.store.removePartials('entries', b).catch(() => undefined);
    for (const t of s.completed) await this.store.removePartials(t.level, t.index).catch(() => undefined);
  }

  /** The staged round was not published: forget it; its entries stay pending. */
  abort(): void {
    this.staged = null;
  }

  describe(): string {
    return `size ${this.size}, pending ${this.pendingCount}, root ${toBase64(this.builder.root())}`;
  }
}
