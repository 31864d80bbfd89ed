/**
 * The S3 storage driver (issue 7): one log's C2SP tlog-tiles tree as objects in a bucket with
 * Object Lock, on the object layer of object-store.ts. See README.md ("The life of an entry on
 * S3") for the layout, what is locked how long, and what a reader trusts.
 *
 *   <prefix><log>/checkpoint                   signed checkpoint (mutable: one version per publication)
 *   <prefix><log>/tile/<L>/<N>[.p/<W>]         hash tiles (C2SP tlog-tiles paths)
 *   <prefix><log>/tile/entries/<N>[.p/<W>]     sealed entry bundles (crypto/aead, like POSIX)
 *   <prefix><log>/blobs/<2 hex>/<64 hex>       sealed records larger than an entry allows
 *   <prefix><log>/shredded.json                bundle ranges crypto-shredded by retention purges
 *
 * Full tiles, full bundles and blobs are locked in COMPLIANCE mode until the log's retention
 * date; partial tiles and bundles (each key is also written once, then superseded by the full
 * tile) are locked for `partialLockDays` (default 1). Reads of immutable keys take the current
 * version (one GET); when those bytes do not open (sealed objects are authenticated) or have the
 * wrong size, or the caller asks for it because a hash did not verify, the key's first version
 * wins (readOriginal): it is the one the tree's hashes commit to.
 */
import { createHash } from 'node:crypto';
import { tilePath, parseTilePath, encodeBundle, decodeBundle, type TileId } from '@custody/verify';
import { seal, open as openSealed } from '../../crypto/aead.js';
import type { LogKeys } from '../../crypto/keyring.js';
import { CustodyError, isCustodyError } from '../../errors.js';
import type { LogStore, LogStoreInit, PendingWrite, ReadOptions, ShredRecord } from '../log-store.js';
import { S3ObjectStore, s3ClientFromEnv } from './object-store.js';

const DAY = 86_400_000;

/**
 * How partial tiles and bundles are locked (`custody serve --partial-lock`, README.md):
 *   none   no lock headers: the bucket's default retention applies (the AWS blueprint's lake
 *          policy allows a PUT without lock headers, packages/aws/src/lake-policies.ts);
 *   short  COMPLIANCE for 1 day (the store's historic default; denied by the blueprint policy,
 *          which wants COMPLIANCE for at least the lake's retention, or no headers);
 *   full   COMPLIANCE until the log's retention date, like full tiles.
 */
export const PARTIAL_LOCKS = ['none', 'short', 'full'] as const;
export type PartialLock = (typeof PARTIAL_LOCKS)[number];
/** The default of `custody serve`: what the AWS blueprint's bucket policy accepts. */
export const DEFAULT_PARTIAL_LOCK: PartialLock = 'none';

/** partialLockDays for a choice; `full` is longer than any retention, so lockFor caps it at the log's date. */
export function partialLockDaysOf(p: PartialLock): number {
  return p === 'none' ? 0 : p === 'short' ? 1 : 100_000;
}

export interface S3LogStoreOptions {
  objects: S3ObjectStore;
  /** The log's name: its objects are under <prefix><log>/. */
  log: string;
  origin: string;
  keys: LogKeys;
  /** Full tiles, bundles and blobs are locked (COMPLIANCE) until this date: the log's retention. */
  retainUntil: Date;
  /** How long partial tiles and bundles are locked (default 1 day; 0 = not locked). */
  partialLockDays?: number;
  /** Injected clock for tests. */
  now?: () => number;
}

/** What a read found replaced under an immutable key (served from the first version instead). */
export interface ReplacedObject {
  key: string;
  later: number;
  at: string;
}

export class S3LogStore implements LogStore {
  readonly kind = 's3' as const;
  readonly origin: string;
  readonly log: string;
  readonly objects: S3ObjectStore;
  retainUntil: Date;
  private readonly keys: LogKeys;
  private readonly partialLockDays: number;
  private readonly now: () => number;
  /** The checkpoint this store last published (what readCheckpoint falls back on is S3's latest version). */
  latestCheckpoint: string | null = null;
  /** Immutable keys whose current version was not the original (bounded), for alarms and tests. */
  readonly replaced: ReplacedObject[] = [];

  constructor(o: S3LogStoreOptions) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(o.log)) throw new CustodyError('CONFIG', `${JSON.stringify(o.log)} is not a log name.`);
    this.objects = o.objects;
    this.log = o.log;
    this.origin = o.origin;
    this.keys = o.keys;
    this.retainUntil = o.retainUntil;
    this.partialLockDays = o.partialLockDays ?? 1;
    this.now = o.now ?? Date.now;
  }

  /** Builds the store from a worker's init data (storage/log-store.ts). */
  static fromInit(init: Extract<LogStoreInit, { kind: 's3' }>, origin: string, keys: LogKeys): S3LogStore {
    const retainUntil = new Date(init.retainUntil);
    if (Number.isNaN(retainUntil.getTime())) throw new CustodyError('CONFIG', `The retain-until date ${JSON.stringify(init.retainUntil)} of log "${init.log}" is not a date.`);
    const objects = new S3ObjectStore({
      bucket: init.bucket,
      prefix: init.prefix,
      client: s3ClientFromEnv(init.env ? { ...process.env, ...init.env } : process.env, init.env?.AWS_ACCESS_KEY_ID ? { credentials: { accessKeyId: init.env.AWS_ACCESS_KEY_ID, secretAccessKey: init.env.AWS_SECRET_ACCESS_KEY ?? '' } } : {}),
      ...(init.retryDeadlineMs !== undefined ? { retryDeadlineMs: init.retryDeadlineMs } : {}),
    });
    return new S3LogStore({ objects, log: init.log, origin, keys, retainUntil, ...(init.partialLockDays !== undefined ? { partialLockDays: init.partialLockDays } : {}) });
  }

  /** The object key (relative to the store's prefix) of a store-relative key. */
  keyOf(rel: string): string {
    return `${this.log}/${rel}`;
  }

  private bundleContext(index: number, width: number): string {
    return `bundle ${this.origin} ${index} ${width}`;
  }

  /** Retention of a key: the log's date for full tiles, bundles and blobs, a short lock for partials. */
  lockFor(rel: string): Date | null {
    if (!rel.includes('.p/')) return this.retainUntil;
    if (this.partialLockDays <= 0) return null;
    const short = new Date(this.now() + this.partialLockDays * DAY);
    return short < this.retainUntil ? short : this.retainUntil;
  }

  // --- checkpoint -------------------------------------------------------------------------

  /**
   * The latest checkpoint: S3's current version; behind a delete marker, the newest real
   * version. Readers verify its signature, and the sequencer its size against the database.
   */
  async readCheckpoint(): Promise<string | null> {
    const key = this.keyOf('checkpoint');
    let b = await this.objects.read(key);
    if (b === null) {
      const newest = (await this.objects.versions(key)).filter((v) => !v.deleteMarker).pop();
      if (newest) b = await this.objects.read(key, newest.versionId);
    }
    return b === null ? this.latestCheckpoint : b.toString('utf8');
  }

  async writeCheckpoint(text: string): Promise<void> {
    await this.objects.put(this.keyOf('checkpoint'), Buffer.from(text, 'utf8'));
    this.latestCheckpoint = text;
  }

  // --- immutable reads ----------------------------------------------------------------------

  private noteReplaced(rel: string, later: number): void {
    if (later <= 0) return;
    if (this.replaced.length >= 100) this.replaced.shift();
    this.replaced.push({ key: rel, later, at: new Date(this.now()).toISOString() });
  }

  /** The first version of an immutable key, or null; notes when later versions exist. */
  private async readOriginal(rel: string): Promise<Buffer | null> {
    const o = await this.objects.readOriginal(this.keyOf(rel));
    if (o === null) return null;
    this.noteReplaced(rel, o.later);
    return o.body;
  }

  /**
   * The current version (one GET), or the first version when asked. A key without a current
   * version but with versions was "deleted" (a delete marker hides it): its first version is
   * still the one the tree commits to, so a miss also looks for it (one LIST).
   */
  private async readImmutable(rel: string, original: boolean): Promise<Buffer | null> {
    if (original) return this.readOriginal(rel);
    return (await this.objects.read(this.keyOf(rel))) ?? (await this.readOriginal(rel));
  }

  async readTile(level: number, index: number, width: number, opts: ReadOptions = {}): Promise<Buffer | null> {
    const rel = tilePath({ level, index, width });
    let b = await this.readImmutable(rel, !!opts.original);
    // A tile of the wrong size is not what was written: the first version wins.
    if (b !== null && b.length !== width * 32 && !opts.original) b = await this.readOriginal(rel);
    if (b !== null) {
      if (b.length !== width * 32) throw new CustodyError('STORAGE_CORRUPT', `Hash tile ${rel} of ${this.origin} in s3://${this.objects.bucket}/${this.objects.prefix}${this.keyOf(rel)} has ${b.length} bytes, not ${width * 32}.`);
      return b;
    }
    if (width === 256) return null;
    // Partial tiles stay on S3, but a reader may ask for a width that was never written on its own.
    const full = await this.readTile(level, index, 256, opts);
    return full === null ? null : full.subarray(0, width * 32);
  }

  async readSealedBundle(index: number, width: number, opts: ReadOptions = {}): Promise<Buffer | null> {
    return this.readImmutable(tilePath({ level: 'entries', index, width }), !!opts.original);
  }

  /** Opens a sealed object; when the current version does not open, the first version is tried. */
  private async openImmutable(rel: string, current: Buffer, open: (b: Buffer) => Promise<Buffer>): Promise<Buffer> {
    try {
      return await open(current);
    } catch (e) {
      if (!isCustodyError(e) || (e.code !== 'STORAGE_CORRUPT' && e.code !== 'KEYRING')) throw e;
      const first = await this.readOriginal(rel);
      if (first === null || first.equals(current)) throw e;
      return open(first);
    }
  }

  async readBundle(index: number, width: number): Promise<Buffer | null> {
    const at = (w: number): TileId => ({ level: 'entries', index, width: w });
    const what = `entry bundle ${tilePath(at(width))} of ${this.origin}`;
    const rel = tilePath(at(width));
    const sealed = await this.readImmutable(rel, false);
    if (sealed !== null) return this.openImmutable(rel, sealed, (b) => this.keys.openBundle(this.origin, index, this.bundleContext(index, width), b, what));
    const fullRel = tilePath(at(256));
    const full = width === 256 ? null : await this.readImmutable(fullRel, false);
    if (full === null) {
      const shred = await this.shredOf(index * 256);
      if (shred) {
        throw new CustodyError('ENTRY_SHREDDED', `Entries ${shred.from}–${shred.to - 1} of ${this.origin} were past retention and crypto-shredded by approved purge #${shred.purge}; their leaf hashes and proofs remain.`, { purge: shred.purge, from: shred.from, to: shred.to });
      }
      return null;
    }
    const plain = await this.openImmutable(fullRel, full, (b) => this.keys.openBundle(this.origin, index, this.bundleContext(index, 256), b, what.replace(`.p/${width}`, '')));
    return Buffer.from(encodeBundle(decodeBundle(plain, 256).slice(0, width)));
  }

  // --- writes -------------------------------------------------------------------------------

  tileWrite(t: { level: number; index: number; width: number; data: Uint8Array }): PendingWrite {
    return { key: tilePath(t), data: t.data };
  }

  bundleWrite(index: number, encoded: Uint8Array[], width: number): PendingWrite {
    return {
      key: tilePath({ level: 'entries', index, width }),
      data: () => this.keys.sealBundle(this.origin, index, this.bundleContext(index, width), encoded),
    };
  }

  /**
   * PUTs every object (each with Content-MD5 and its lock), `concurrency` at a time. A PUT is
   * durable when S3 answers; a failure after the retry deadline fails the round
   * (STORAGE_UNAVAILABLE) and the integrator retries it: rewriting a key only adds a version,
   * and readers take the first.
   */
  async writeAll(writes: PendingWrite[], concurrency = 16): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < writes.length) {
        const w = writes[next++]!;
        const rel = tilePath(parseTilePath(w.key));
        await this.objects.putImmutable(this.keyOf(rel), typeof w.data === 'function' ? w.data() : w.data, this.lockFor(rel));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, writes.length) }, worker));
  }

  /** Partial tiles are locked objects: they stay; readers use the full tile when there is one. */
  async removePartials(_level: number | 'entries', _index: number): Promise<void> {}

  /** A PUT is atomic: a crash leaves no half-written object. */
  async sweepTemporaryFiles(_size: number): Promise<number> {
    return 0;
  }

  // --- blobs --------------------------------------------------------------------------------

  blobFileName(sha256hex: string): string {
    return this.keys.blobName(Buffer.from(sha256hex, 'hex'));
  }

  private blobRel(sha256hex: string): string {
    const name = this.blobFileName(sha256hex);
    return `blobs/${name.slice(0, 2)}/${name}`;
  }

  async writeBlob(record: Buffer): Promise<string> {
    const sha = createHash('sha256').update(record).digest('hex');
    const rel = this.blobRel(sha);
    if (await this.objects.exists(this.keyOf(rel))) return sha;
    await this.objects.putImmutable(this.keyOf(rel), seal(this.keys.activeKek, `blob ${this.origin} ${sha}`, record), this.retainUntil);
    return sha;
  }

  async readBlob(sha256hex: string): Promise<Buffer> {
    const rel = this.blobRel(sha256hex);
    const sealed = await this.readImmutable(rel, false);
    if (sealed === null) throw new CustodyError('STORAGE_CORRUPT', `Blob ${sha256hex} of ${this.origin} is missing from storage.`);
    const openChecked = async (b: Buffer): Promise<Buffer> => {
      const rec = openSealed(this.keys.lookup, `blob ${this.origin} ${sha256hex}`, b, `blob ${sha256hex}`);
      if (createHash('sha256').update(rec).digest('hex') !== sha256hex) {
        throw new CustodyError('STORAGE_CORRUPT', `Blob ${sha256hex} of ${this.origin} does not match its hash.`);
      }
      return rec;
    };
    return this.openImmutable(rel, sealed, openChecked);
  }

  // --- shredding ----------------------------------------------------------------------------

  async readShreds(): Promise<ShredRecord[]> {
    const b = await this.objects.read(this.keyOf('shredded.json'));
    if (b === null) return [];
    try {
      const j = JSON.parse(b.toString('utf8')) as { purges: ShredRecord[] };
      return j.purges.filter((p) => Number.isSafeInteger(p.purge) && Number.isSafeInteger(p.from) && Number.isSafeInteger(p.to));
    } catch {
      throw new CustodyError('STORAGE_CORRUPT', `s3://${this.objects.bucket}/${this.objects.prefix}${this.keyOf('shredded.json')} of ${this.origin} is not valid JSON.`);
    }
  }

  private async shredOf(index: number): Promise<ShredRecord | null> {
    return (await this.readShreds()).find((p) => index >= p.from && index < p.to) ?? null;
  }

  async addShred(r: ShredRecord): Promise<void> {
    const list = (await this.readShreds()).filter((p) => p.purge !== r.purge);
    list.push({ purge: r.purge, from: r.from, to: r.to });
    list.sort((a, b) => a.from - b.from);
    await this.objects.put(this.keyOf('shredded.json'), Buffer.from(JSON.stringify({ version: 1, purges: list }, null, 2) + '\n'));
  }

  /**
   * Deletes every version of a full bundle and of its partial versions (DeleteObject with
   * VersionId), which S3 allows only after their lock expired: before that, OBJECT_LOCKED names
   * the date. Its data key goes with it (crypto-shredding).
   */
  async removeBundle(index: number): Promise<void> {
    const rel = tilePath({ level: 'entries', index, width: 256 });
    const versions = [
      ...(await this.objects.versions(this.keyOf(rel))).map((v) => ({ key: this.keyOf(rel), versionId: v.versionId })),
      ...(await this.objects.versionsUnder(this.keyOf(`${rel}.p/`))),
    ];
    for (const v of versions) await this.objects.deleteVersion(v.key, v.versionId);
  }

  close(): void {
    this.objects.close();
  }
}
