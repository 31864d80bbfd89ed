/**
 * One log shared by several vault nodes (issue 7; SHARED.md in this folder):
 *
 * - every node appends: `add()` seals the batch with the log's key bound to its first index and
 *   stores it through the PostgreSQL journal (storage/pg/journal.ts, group commit); the entries
 *   are acknowledged once that COMMIT returned;
 * - ONE node integrates: the holder of the log's leader lock (storage/pg/leader.ts). On
 *   acquiring it recovers from the published state (custody_log_state: signed checkpoint →
 *   S3 tiles → right edge of the tree, last partial bundle), starts the integrator worker on the
 *   S3 store and feeds it the journal from the published size on. Each round is checked
 *   (consistent with the last published checkpoint), signed, cosigned by witnesses if any,
 *   recorded with `publishState` (fenced: a node that lost the lock is refused and stops at
 *   once), written to S3 as the checkpoint object, and the journal is trimmed below it;
 * - every node follows: it polls custody_log_state, fetches the tiles the new checkpoint added
 *   into its local tile mirror (tile-mirror.ts), checks them against the signed root and only
 *   then exposes the checkpoint (`checkpoint`, `waitForCheckpoint`, `nodeReader`).
 */
import { Worker } from 'node:worker_threads';
import {
  Ed25519NoteSigner,
  formatCheckpoint,
  openCheckpoint,
  parseVerifierKey,
  proveConsistency,
  verifyConsistency,
  signNote,
  hashLeaf,
  decodeBundle,
  encodeBundle,
  bytesEqual,
  toBase64,
  EMPTY_ROOT,
  type NodeReader,
  type NoteVerifier,
} from '@custody/verify';
import type { Logger } from 'pino';
import type pg from 'pg';
import { CustodyError } from '../errors.js';
import type { LogKeys } from '../crypto/keyring.js';
import { seal, open as openSealed, type Kek } from '../crypto/aead.js';
import { nativeSha256 } from '../crypto/sha256.js';
import { TreeBuilder } from '../log/tree.js';
import { S3LogStore } from '../storage/s3/log-store.js';
import { PgJournal } from '../storage/pg/journal.js';
import { PgLeader, publishState, readLogState, isFenced, type Lease } from '../storage/pg/leader.js';
import type { WorkerInit } from './integrator-worker.js';
import type { LogSequencerApi, PublishedCheckpoint, AppendResult, SharedSequencerOptions } from './api.js';
import { TileMirror } from './tile-mirror.js';
import { checkAndSign, cosignOrRefuse } from './round.js';

export type { SharedSequencerOptions } from './api.js';

const TILE = 256;
/** Most journal rows one read takes, and most entries fed to the integrator ahead of the published size. */
const READ_ROWS = 1_000;
const MAX_FED_AHEAD = 200_000;

/** What this node holds while it integrates the log (one per acquisition of the lock). */
interface Session {
  lease: Lease;
  stopped: boolean;
  worker: Worker | null;
  /** Entries handed to the worker: [published size, fed). */
  fed: number;
  /** The size and root this session last published (or recovered). */
  size: number;
  root: Uint8Array;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The journal row's AEAD context: the log, its first index and its count are bound to the ciphertext. */
function journalContext(origin: string, first: number, count: number): string {
  return `pg-journal ${origin} ${first} ${count}`;
}

export class SharedLogSequencer implements LogSequencerApi {
  readonly name: string;
  readonly origin: string;
  readonly keys: LogKeys;
  readonly store: S3LogStore;
  readonly mirror: TileMirror;
  readonly verifier: NoteVerifier;
  readonly verifierKey: string;
  readonly journal: PgJournal;
  lastError: CustodyError | null = null;

  private readonly signer: Ed25519NoteSigner;
  private readonly pool: pg.Pool;
  private readonly log: Logger;
  private readonly interval: number;
  private readonly followMs: number;
  private readonly leader: PgLeader | null;
  private published: PublishedCheckpoint;
  private session: Session | null = null;
  /** End of the highest batch this node acknowledged. */
  private acked = 0;
  private inflight = 0;
  private closed = false;
  private followTimer: NodeJS.Timeout | null = null;
  private following: Promise<void> | null = null;
  /** The checkpoint S3 should hold (the latest this node published), and whether a write loop runs. */
  private s3Want: string | null = null;
  private s3Writing = false;
  private opened = false;
  private waiters: Array<{ size: number; resolve: (cp: PublishedCheckpoint) => void; reject: (e: unknown) => void }> = [];

  private constructor(private readonly opts: SharedSequencerOptions) {
    if (opts.s3.log !== opts.name) throw new CustodyError('CONFIG', `The S3 store of log "${opts.name}" names log "${opts.s3.log}".`);
    this.name = opts.name;
    this.origin = opts.origin;
    this.keys = opts.keys;
    this.pool = opts.pool;
    this.store = S3LogStore.fromInit(opts.s3, opts.origin, opts.keys);
    this.mirror = new TileMirror(opts.cacheDir, this.store, nativeSha256);
    this.signer = new Ed25519NoteSigner(opts.origin, opts.keys.signingSeed);
    this.verifierKey = this.signer.verifierKey;
    this.verifier = parseVerifierKey(this.verifierKey);
    this.log = opts.logger.child({ log: opts.name, node: opts.nodeId });
    this.interval = opts.checkpointIntervalMs ?? 100;
    this.followMs = opts.followPollMs ?? 200;
    this.journal = new PgJournal(opts.pool, { node: opts.nodeId });
    this.published = { size: 0, root: EMPTY_ROOT, text: this.signEmpty(), publishedAt: Date.now() };
    this.leader =
      opts.integrate === false
        ? null
        : new PgLeader({
            connectionString: opts.connectionString,
            node: opts.nodeId,
            logs: [opts.name],
            ...(opts.leaderPollMs !== undefined ? { pollMs: opts.leaderPollMs } : {}),
            onAcquire: (lease) => this.onAcquire(lease),
            onLose: (_log, reason) => this.onLose(reason),
            onError: (e) => this.log.warn({ code: e.code, message: e.message }, 'leader election'),
          });
  }

  static async open(opts: SharedSequencerOptions): Promise<SharedLogSequencer> {
    const s = new SharedLogSequencer(opts);
    try {
      if (opts.create !== false) await PgJournal.createLog(opts.pool, { name: opts.name, origin: opts.origin });
      await s.follow();
    } catch (e) {
      s.store.close();
      throw e;
    }
    s.opened = true;
    s.scheduleFollow();
    s.leader?.start();
    return s;
  }

  get size(): number {
    return this.published.size;
  }
  get sequencedSize(): number {
    return Math.max(this.acked, this.published.size);
  }
  get pendingEntries(): number {
    return Math.max(0, this.acked - this.published.size) + this.inflight;
  }
  get checkpoint(): PublishedCheckpoint {
    return this.published;
  }
  /** The leadership this node holds (epoch, lock session), or null when another node integrates. */
  get lease(): Lease | null {
    return this.session?.lease ?? null;
  }

  /** Reads hashes of the tree at `size` (≤ the published size) from this node's tile mirror. */
  nodeReader(size: number): NodeReader {
    return this.mirror.nodeReader(size);
  }

  // --- appending (every node) -----------------------------------------------------------

  /**
   * Stores entries (each uint16 length ‖ bytes) in the shared journal; resolves with their
   * indices once PostgreSQL committed them. A database that cannot be reached gives
   * STORAGE_UNAVAILABLE with retryAfter (503): nothing is acknowledged that is not committed.
   */
  async add(buf: Buffer, count: number): Promise<AppendResult> {
    if (this.closed) throw new CustodyError('NOT_READY', `Log "${this.name}" is shutting down; retry in a moment.`);
    this.inflight += count;
    let first: number;
    try {
      first = await this.journal.append(this.name, count, (at) => seal(this.keys.activeKek, journalContext(this.origin, at, count), buf));
    } finally {
      this.inflight -= count;
    }
    if (first + count > this.acked) this.acked = first + count;
    return { first, count };
  }

  // --- following (every node) -----------------------------------------------------------

  private scheduleFollow(): void {
    if (this.closed) return;
    this.followTimer = setTimeout(() => {
      this.followTimer = null;
      this.following = this.follow()
        .catch((e: unknown) => {
          if (!this.session) this.lastError = asCustody(e);
          this.log.warn({ err: e }, 'reading the published checkpoint failed; retrying');
        })
        .finally(() => {
          this.following = null;
          this.scheduleFollow();
        });
    }, this.followMs);
  }

  /** Reads the published state; adopts a newer checkpoint once its tiles are mirrored and checked. */
  private async follow(): Promise<void> {
    const st = await readLogState(this.pool, this.name);
    if (st.checkpoint === null && st.size > 0) {
      throw new CustodyError('STORAGE_CORRUPT', `Log "${this.name}" has ${st.size} entries in the database but no checkpoint: it cannot be served. Restore the database from backup.`);
    }
    if (st.checkpoint !== null && st.size > this.published.size) await this.adopt(st.checkpoint, st.size);
    if (!this.session) this.lastError = null;
  }

  /** Checks a checkpoint someone published and exposes it once this node's tiles give its root. */
  private async adopt(text: string, size: number): Promise<void> {
    let cp;
    try {
      cp = openCheckpoint(text, this.verifier).checkpoint;
    } catch (e) {
      throw new CustodyError('STORAGE_CORRUPT', `The published checkpoint of log "${this.name}" does not verify with the log's key (${(e as Error).message}): the database was altered.`);
    }
    if (cp.size !== size) throw new CustodyError('STORAGE_CORRUPT', `The published checkpoint of log "${this.name}" has ${cp.size} entries but the database says ${size}.`);
    await this.mirror.sync(size, cp.rootHash);
    const S = this.published.size;
    if (size <= S) return; // this node published it (or a newer one) meanwhile
    if (S > 0) {
      try {
        verifyConsistency(S, size, proveConsistency(S, size, this.mirror.nodeReader(size), nativeSha256), this.published.root, cp.rootHash, nativeSha256);
      } catch (e) {
        throw new CustodyError('STORAGE_CORRUPT', `The published checkpoint of log "${this.name}" at ${size} is not consistent with the one at ${S} (${(e as Error).message}).`);
      }
    }
    this.expose({ size, root: cp.rootHash, text, publishedAt: Date.now() });
  }

  private expose(cp: PublishedCheckpoint): void {
    if (cp.size <= this.published.size) return;
    const before = this.published;
    this.published = cp;
    const ready = this.waiters.filter((w) => w.size <= cp.size);
    this.waiters = this.waiters.filter((w) => w.size > cp.size);
    for (const w of ready) w.resolve(cp);
    if (this.opened) this.opts.onPublish?.(this.name, cp, { entries: cp.size - before.size, ms: cp.publishedAt - before.publishedAt });
  }

  private signEmpty(): string {
    return signNote(formatCheckpoint({ origin: this.origin, size: 0, rootHash: EMPTY_ROOT, extensions: [] }), [this.signer]);
  }

  /** Resolves with the first published checkpoint (seen by this node) whose size is at least `size`. */
  waitForCheckpoint(size: number, timeoutMs = 30_000): Promise<PublishedCheckpoint> {
    if (this.published.size >= size) return Promise.resolve(this.published);
    return new Promise((resolve, reject) => {
      const w = {
        size,
        resolve: (cp: PublishedCheckpoint) => {
          clearTimeout(timer);
          resolve(cp);
        },
        reject: (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new CustodyError('STORAGE_UNAVAILABLE', `The entries are durable but no checkpoint covers them yet (${this.lastError?.message ?? 'integration is slow'}); fetch the receipt later with GET /v1/logs/${this.name}/entries/{index}.`, { retryAfter: 1 }));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  // --- integrating (the leader) ---------------------------------------------------------

  private onAcquire(lease: Lease): void {
    if (this.closed) return;
    this.log.info({ epoch: lease.epoch, size: lease.size }, 'this node now integrates the log');
    const sess: Session = { lease, stopped: false, worker: null, fed: lease.size, size: lease.size, root: EMPTY_ROOT };
    this.stopSession('a new leadership replaced it');
    this.session = sess;
    void this.lead(sess);
  }

  private onLose(reason: string): void {
    if (this.session) this.log.warn({ reason }, 'this node no longer integrates the log');
    this.stopSession(reason);
  }

  /** Stops integrating at once: no further publication from this session. */
  private stopSession(_reason: string): void {
    const s = this.session;
    if (!s) return;
    this.session = null;
    s.stopped = true;
    const w = s.worker;
    s.worker = null;
    void w?.terminate();
  }

  private async lead(sess: Session): Promise<void> {
    let delay = 250;
    while (!sess.stopped) {
      try {
        await this.recoverAsLeader(sess);
        break;
      } catch (e) {
        if (isFenced(e)) return this.fenced(sess, e);
        this.lastError = asCustody(e);
        this.log.error({ err: e }, 'recovering the log as its integrator failed; retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, 5_000);
      }
    }
    delay = this.interval;
    while (!sess.stopped) {
      if (sess.fed - sess.size > MAX_FED_AHEAD) {
        await sleep(this.interval);
        continue;
      }
      let got = 0;
      try {
        const batches = await this.journal.readFrom(this.name, sess.fed, READ_ROWS);
        for (const b of batches) {
          if (sess.stopped) return;
          const end = b.firstIndex + b.count;
          if (end <= sess.fed) continue;
          let plain = openSealed(this.keys.lookup, journalContext(this.origin, b.firstIndex, b.count), b.sealed, `journal batch ${b.firstIndex} of log "${this.name}"`);
          if (b.firstIndex < sess.fed) {
            let off = 0;
            for (let i = b.firstIndex; i < sess.fed; i++) off += 2 + plain.readUInt16BE(off);
            plain = Buffer.from(plain.subarray(off));
          }
          this.toWorker(sess, sess.fed, end - sess.fed, plain);
          got += end - sess.fed;
          sess.fed = end;
        }
        delay = this.interval;
      } catch (e) {
        this.lastError = asCustody(e);
        this.log.warn({ err: e }, 'reading the journal failed; retrying');
        delay = Math.min(Math.max(delay * 2, 250), 2_000);
      }
      if (got === 0) await sleep(delay);
    }
  }

  /**
   * Recovery of a new leader: the published state from PostgreSQL (fresher than the lease's),
   * its checkpoint's signature, the S3 tiles against its root, the last partial bundle against
   * the tiles; then the integrator worker starts at that size.
   */
  private async recoverAsLeader(sess: Session): Promise<void> {
    const st = await readLogState(this.pool, this.name);
    let size = 0;
    let root: Uint8Array = EMPTY_ROOT;
    let text: string;
    if (st.checkpoint === null) {
      if (st.size > 0) throw new CustodyError('STORAGE_CORRUPT', `Log "${this.name}" has ${st.size} entries in the database but no checkpoint. Restore the database from backup.`);
      text = this.signEmpty();
      await publishState(this.pool, sess.lease, 0, text);
    } else {
      let cp;
      try {
        cp = openCheckpoint(st.checkpoint, this.verifier).checkpoint;
      } catch (e) {
        throw new CustodyError('STORAGE_CORRUPT', `The published checkpoint of log "${this.name}" does not verify with the log's key (${(e as Error).message}).`);
      }
      if (cp.size !== st.size) throw new CustodyError('STORAGE_CORRUPT', `The published checkpoint of log "${this.name}" has ${cp.size} entries but the database says ${st.size}.`);
      size = cp.size;
      root = cp.rootHash;
      text = st.checkpoint;
    }
    if (sess.stopped) return;
    await this.mirror.sync(size, root);
    const partial = this.mirror.rightEdge(size);
    const builder = new TreeBuilder(nativeSha256, size, partial);
    if (!bytesEqual(builder.root(), root)) throw new CustodyError('STORAGE_CORRUPT', `The hash tiles of log "${this.name}" in S3 do not match its checkpoint.`);
    let tail: Uint8Array[] = [];
    const w0 = size % TILE;
    if (w0 > 0) {
      const b = await this.store.readBundle(Math.floor(size / TILE), w0);
      if (!b) throw new CustodyError('STORAGE_CORRUPT', `The last entry bundle of log "${this.name}" is missing from S3.`);
      tail = decodeBundle(b, w0);
      for (let i = 0; i < w0; i++) {
        if (!bytesEqual(hashLeaf(tail[i]!, nativeSha256), partial[0]![i]!)) throw new CustodyError('STORAGE_CORRUPT', `Entry ${size - w0 + i} of log "${this.name}" in S3 does not match its leaf hash.`);
      }
    }
    if (sess.stopped) return;
    // S3's checkpoint object: the published one (a node that lost the lock may have left an older one).
    this.s3Want = text;
    void this.writeS3Checkpoint();
    this.expose({ size, root, text, publishedAt: Date.now() });
    sess.size = size;
    sess.root = root;
    sess.fed = size;
    this.startWorker(sess, { size, partial, tail: tail.length > 0 ? Buffer.from(encodeBundle(tail)) : Buffer.alloc(0) });
    this.lastError = null;
    this.log.info({ size, root: toBase64(root), epoch: sess.lease.epoch }, 'recovered; integrating');
  }

  private startWorker(sess: Session, state: { size: number; partial: Uint8Array[][]; tail: Buffer }): void {
    const init: WorkerInit = {
      store: this.opts.s3,
      origin: this.origin,
      keys: this.keys.exportForWorker(),
      state,
      intervalMs: this.interval,
      maxRound: this.opts.maxRoundEntries ?? 65_536,
    };
    const w = new Worker(new URL('./integrator-worker.js', import.meta.url), { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 8 } });
    w.on('message', (m: { t: string; size?: number; root?: Uint8Array; entries?: number; code?: string; message?: string }) => {
      if (sess.worker !== w || sess.stopped) return;
      if (m.t === 'round') void this.onRound(sess, m.size!, new Uint8Array(m.root!), m.entries!);
      else if (m.t === 'error') {
        this.lastError = new CustodyError((m.code as CustodyError['code']) ?? 'INTERNAL', m.message ?? 'integration failed');
        this.log.error({ code: m.code, message: m.message }, 'integration failed; will retry');
      }
    });
    w.on('error', (e) => {
      if (sess.worker !== w) return;
      this.lastError = new CustodyError('INTERNAL', `The integrator of log "${this.name}" stopped: ${e.message}; it restarts from the published state.`);
      this.log.fatal({ err: e }, 'integrator worker crashed; recovering again');
      sess.worker = null;
      if (this.session === sess && !this.closed) {
        sess.stopped = true;
        const again: Session = { ...sess, stopped: false, worker: null };
        this.session = again;
        void sleep(1_000).then(() => (again.stopped ? undefined : this.lead(again)));
      }
    });
    w.unref();
    sess.worker = w;
  }

  private toWorker(sess: Session, first: number, count: number, buf: Buffer): void {
    const w = sess.worker;
    if (!w) return;
    let ab: ArrayBuffer;
    if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) ab = buf.buffer as ArrayBuffer;
    else {
      ab = new ArrayBuffer(buf.byteLength);
      new Uint8Array(ab).set(buf);
    }
    w.postMessage({ t: 'append', first, count, buf: ab }, [ab]);
  }

  /** A round is in S3: mirror its tiles, check, sign, cosign, record (fenced), then S3 checkpoint and trim. */
  private async onRound(sess: Session, N: number, root: Uint8Array, entries: number): Promise<void> {
    let text: string;
    try {
      await this.mirror.sync(N, root);
      const reader = this.mirror.nodeReader(N);
      text = checkAndSign({ name: this.name, origin: this.origin, S: sess.size, publishedRoot: sess.root, N, root, entries, reader, h: nativeSha256, signer: this.signer });
      if (this.opts.witnesses) {
        text = await cosignOrRefuse(this.opts.witnesses, { name: this.name, origin: this.origin, N, text, publishedSize: sess.size, prove: (from) => proveConsistency(from, N, reader, nativeSha256) });
      }
      if (sess.stopped) return;
      await publishState(this.pool, sess.lease, N, text);
    } catch (e) {
      if (isFenced(e)) return this.fenced(sess, e);
      if (sess.stopped) return;
      this.lastError = asCustody(e);
      this.log.error({ err: e }, 'publishing the checkpoint failed; will retry');
      sess.worker?.postMessage({ t: 'rejected' });
      return;
    }
    sess.size = N;
    sess.root = root;
    this.lastError = null;
    sess.worker?.postMessage({ t: 'published' });
    this.expose({ size: N, root, text, publishedAt: Date.now() });
    this.s3Want = text;
    void this.writeS3Checkpoint();
    this.journal.trim(this.name, N).catch((e: unknown) => this.log.warn({ err: e }, 'trimming the journal failed'));
    this.log.debug({ size: N, entries }, 'checkpoint published');
  }

  /** Writes the latest published checkpoint to S3, retrying until it is there (one writer at a time). */
  private async writeS3Checkpoint(): Promise<void> {
    if (this.s3Writing) return;
    this.s3Writing = true;
    let delay = 250;
    let written: string | null = null;
    try {
      while (this.session && !this.closed) {
        const want = this.s3Want;
        if (want === null || want === written) break;
        try {
          await this.store.writeCheckpoint(want);
          written = want;
          delay = 250;
        } catch (e) {
          this.log.warn({ err: e }, 'writing the checkpoint to S3 failed; retrying');
          await sleep(delay);
          delay = Math.min(delay * 2, 5_000);
        }
      }
    } finally {
      this.s3Writing = false;
    }
  }

  private fenced(sess: Session, e: unknown): void {
    this.log.warn({ err: e }, 'fenced: another node integrates the log now; stopping');
    if (this.session === sess) this.stopSession('fenced');
    else {
      sess.stopped = true;
      void sess.worker?.terminate();
      sess.worker = null;
    }
  }

  // --- keys and shutdown ------------------------------------------------------------------

  useKek(kek: Kek, kmsKeyId?: string): void {
    this.keys.addKek(kek);
    if (kmsKeyId) this.keys.useKmsKey(kmsKeyId);
    this.session?.worker?.postMessage({ t: 'kek', id: kek.id, key: new Uint8Array(kek.key), kmsKeyId });
  }

  /**
   * Stops appending and following, and hands the log over: the lock is released, so another
   * node takes over at its next poll and integrates whatever this node acknowledged (it is in
   * the journal). When this node integrates, it first waits briefly for what it acknowledged.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.journal.drain();
    if (this.session && this.published.size < this.acked) {
      await this.waitForCheckpoint(this.acked, 5_000).catch((e: unknown) => this.log.warn({ err: e }, 'closing before every entry was integrated; another node integrates them from the journal'));
    }
    if (this.followTimer) clearTimeout(this.followTimer);
    this.followTimer = null;
    await this.following;
    await this.leader?.stop();
    this.stopSession('closing');
    for (const w of this.waiters) w.reject(new CustodyError('NOT_READY', 'The vault is shutting down.'));
    this.waiters = [];
    this.store.close();
  }
}

function asCustody(e: unknown): CustodyError {
  return e instanceof CustodyError ? e : new CustodyError('STORAGE_UNAVAILABLE', String((e as Error)?.message ?? e), { retryAfter: 1 });
}

/** Opens a log shared through PostgreSQL and S3 (see SharedLogSequencer). */
export function openSharedLogSequencer(opts: SharedSequencerOptions): Promise<SharedLogSequencer> {
  return SharedLogSequencer.open(opts);
}
