/**
 * The seam between a log's C2SP tlog-tiles tree and where it is kept: the operations the
 * integrator (sequencer/integrator.ts), the readers (server/read.ts, search, cli/sources.ts,
 * evidence) and the self-audit need from a log's storage. Two drivers implement it:
 *
 *   PosixLogStore (storage/posix.ts)      files on a local file system (write-temp + fsync + rename)
 *   S3LogStore    (storage/s3/log-store.ts) objects in an S3 bucket with Object Lock (issue 7)
 *
 * Keys are store-relative and use the C2SP tlog-tiles paths (../shared/reference, tlog-tiles:
 * "tile/<L>/<N>[.p/<W>]", "tile/entries/<N>[.p/<W>]"); each driver maps them to a file or an
 * object. Writes are asynchronous (S3 cannot be synchronous).
 *
 * The integrator runs in a worker thread, so it builds its store from serializable init data
 * (LogStoreInit) with openLogStore.
 */
import type { LogKeys } from '../crypto/keyring.js';

export interface PendingWrite {
  /** Store-relative key: a C2SP tlog-tiles path such as "tile/0/001.p/7" or "tile/entries/000". */
  key: string;
  /** The bytes, or a function that makes them when the write starts (keeps memory bounded). */
  data: Uint8Array | (() => Uint8Array);
}

/** A range of entries whose bundles a retention purge (lifecycle/) crypto-shredded. */
export interface ShredRecord {
  purge: number;
  from: number;
  to: number;
}

/** How a reader wants an immutable object: `original` = the first bytes ever written (S3: the oldest version). */
export interface ReadOptions {
  original?: boolean;
}

export interface LogStore {
  readonly kind: 'posix' | 's3';
  readonly origin: string;

  /** The latest signed checkpoint, or null before the first one. */
  readCheckpoint(): Promise<string | null>;
  /** Publishes a signed checkpoint (durable when this resolves). */
  writeCheckpoint(text: string): Promise<void>;

  /** A hash tile as stored (a partial one may be served as a prefix of its full tile), or null. */
  readTile(level: number, index: number, width: number, opts?: ReadOptions): Promise<Buffer | null>;
  /** The raw sealed bytes of an entry bundle, or null. */
  readSealedBundle(index: number, width: number, opts?: ReadOptions): Promise<Buffer | null>;
  /** The decrypted entry bundle (C2SP encoding), or null; ENTRY_SHREDDED when a purge destroyed it. */
  readBundle(index: number, width: number): Promise<Buffer | null>;

  tileWrite(t: { level: number; index: number; width: number; data: Uint8Array }): PendingWrite;
  /** A sealed bundle of `width` entries, given as encoded pieces (uint16 length ‖ bytes each). */
  bundleWrite(index: number, encoded: Uint8Array[], width: number): PendingWrite;
  /** Writes durably; resolves when every write is durable. */
  writeAll(writes: PendingWrite[], concurrency?: number): Promise<void>;
  /** Drops the partial versions of a tile once its full version is durable (S3: a no-op, they are locked). */
  removePartials(level: number | 'entries', index: number): Promise<void>;
  /** Removes what a crash left half-written; returns how many (S3: none, a PUT is atomic). */
  sweepTemporaryFiles(size: number): Promise<number>;

  /** Stores a record as a sealed blob and returns its SHA-256 (hex). Idempotent. */
  writeBlob(record: Buffer): Promise<string>;
  /** The record of a blob, checked against its hash; STORAGE_CORRUPT when missing or altered. */
  readBlob(sha256hex: string): Promise<Buffer>;
  /** The stored name of a blob (an HMAC of the record hash, never the hash itself). */
  blobFileName(sha256hex: string): string;

  /** The ranges crypto-shredded by retention purges, oldest first. */
  readShreds(): Promise<ShredRecord[]>;
  /** Records a shredded range before its bundles are removed (durable; idempotent). */
  addShred(r: ShredRecord): Promise<void>;
  /** Removes a full sealed bundle and its partial versions (a retention purge). */
  removeBundle(index: number): Promise<void>;

  /** Releases connections (S3); nothing for POSIX. */
  close(): void;
}

/** What a worker thread needs to open a log's store (structured-clone safe). */
export type LogStoreInit =
  | { kind: 'posix'; dir: string }
  | {
      kind: 's3';
      bucket: string;
      /** Key prefix of the vault ('' or ending in '/'); the log's objects are under <prefix><log>/. */
      prefix: string;
      log: string;
      /** ISO date: full tiles, bundles and blobs are locked (COMPLIANCE) until then. */
      retainUntil: string;
      /** How long partial tiles and bundles are locked (default 1 day). */
      partialLockDays?: number;
      /** Standard AWS variables for the client (AWS_ENDPOINT_URL_S3, AWS_REGION, credentials); default process.env. */
      env?: Record<string, string>;
      retryDeadlineMs?: number;
    };

/** Opens the store described by `init` (the S3 driver is loaded only when used). */
export async function openLogStore(init: LogStoreInit, origin: string, keys: LogKeys): Promise<LogStore> {
  if (init.kind === 'posix') {
    const { PosixLogStore } = await import('./posix.js');
    return new PosixLogStore(init.dir, origin, keys);
  }
  const { S3LogStore } = await import('./s3/log-store.js');
  return S3LogStore.fromInit(init, origin, keys);
}
