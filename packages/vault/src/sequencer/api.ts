/**
 * What the rest of the vault (server, evidence, alarms, vault.ts) uses of a log's sequencer,
 * whichever kind it is:
 *
 *   LogSequencer        (log-sequencer.ts)    one node: local journal + local tree (POSIX)
 *   SharedLogSequencer  (shared-sequencer.ts) many nodes: PostgreSQL journal + S3 tree, the
 *                                             node holding the log's leader lock integrates
 *                                             (SHARED.md in this folder)
 *
 * Both resolve `add()` only once the entries are durable (fsync / PostgreSQL COMMIT), and both
 * expose the latest published checkpoint, a synchronous node reader over the published tree (for
 * proofs) and the log's store.
 */
import type { Logger } from 'pino';
import type pg from 'pg';
import type { NodeReader, NoteVerifier } from '@custody/verify';
import type { CustodyError } from '../errors.js';
import type { LogKeys } from '../crypto/keyring.js';
import type { Kek } from '../crypto/aead.js';
import type { LogStore, LogStoreInit } from '../storage/log-store.js';
import type { WitnessSet } from '../witness/client.js';

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

export type OnPublish = (log: string, cp: PublishedCheckpoint, stats: { entries: number; ms: number }) => void;

/** The surface of a log's sequencer used outside sequencer/. */
export interface LogSequencerApi {
  readonly name: string;
  readonly origin: string;
  readonly keys: LogKeys;
  /** The log's local folder (single-node); undefined for a shared log (S3). */
  readonly dir?: string;
  readonly store: LogStore;
  readonly verifier: NoteVerifier;
  readonly verifierKey: string;
  /** The size of the latest published checkpoint. */
  readonly size: number;
  /** Entries acknowledged so far (this node's view; a shared log: the highest index this node assigned + 1, at least `size`). */
  readonly sequencedSize: number;
  /** Entries acknowledged but not yet covered by a published checkpoint (this node's view). */
  readonly pendingEntries: number;
  readonly checkpoint: PublishedCheckpoint;
  /** The problem that keeps the log from integrating or publishing, or null. */
  lastError: CustodyError | null;
  /** Reads hashes of the tree at `size` (≤ the published size) synchronously (proofs). */
  nodeReader(size: number): NodeReader;
  /** Appends entries (each uint16 length ‖ bytes); resolves once they are durable. */
  add(buf: Buffer, count: number): Promise<AppendResult>;
  /** Resolves with the first published checkpoint whose size is at least `size`. */
  waitForCheckpoint(size: number, timeoutMs?: number): Promise<PublishedCheckpoint>;
  /** A new KEK was added to the keyring: seal with it from now on. */
  useKek(kek: Kek, kmsKeyId?: string): void;
  close(): Promise<void>;
}

/** Options of openSharedLogSequencer (shared-sequencer.ts). */
export interface SharedSequencerOptions {
  name: string;
  origin: string;
  keys: LogKeys;
  /** The shared PostgreSQL (storage/pg/pool.ts createPool); migrated (storage/pg/schema.ts migrate) before. */
  pool: pg.Pool;
  /**
   * The same database's URL: the leader election keeps its own dedicated session
   * (storage/pg/leader.ts), which cannot come from the pool.
   */
  connectionString: string;
  /** This node's id (recorded with journal rows and in custody_log_state.leader). */
  nodeId: string;
  /** Where the log's tree lives: the S3 store init (kind 's3'; log must equal `name`). */
  s3: Extract<LogStoreInit, { kind: 's3' }>;
  /** A local folder for this node's mirror of the published hash tiles (a cache; may be emptied). */
  cacheDir: string;
  logger: Logger;
  /** Longest wait between new durable entries and the checkpoint that covers them (default 100 ms). */
  checkpointIntervalMs?: number;
  /** How often followers look for a newer published checkpoint (default 200 ms). */
  followPollMs?: number;
  /** Most entries one integration round takes (default 65,536). */
  maxRoundEntries?: number;
  /** Leader election timing (storage/pg/leader.ts): poll ≤ 1000 ms (default 500). */
  leaderPollMs?: number;
  /**
   * Whether this node may integrate the log (default true). A node that may not only appends
   * and follows.
   */
  integrate?: boolean;
  /** Register the log in the database if it is not (default true). */
  create?: boolean;
  witnesses?: WitnessSet;
  onPublish?: OnPublish;
}
