/**
 * `custody verify` for one log: checks the checkpoint signature, recomputes every leaf hash
 * from the entry bundles, rebuilds every hash tile and compares it with the stored one,
 * checks the root, and proves the log still extends the checkpoint this auditor trusted
 * last time. With a trusted checkpoint it resumes from there instead of from zero.
 *
 * With `hashesOnly` (custody verify --hashes-only, docs/ARCHIVE.md) it reads no entry bundle:
 * the leaf hashes come from the stored level-0 tiles, and everything above them — every
 * higher tile, the root against the signed checkpoint, consistency with the trusted
 * checkpoint — is recomputed as usual. Archived bundles that need a restore are not needed.
 * It proves the tree, not that the stored entries still hash to their leaves, so it never
 * moves the trusted checkpoint forward (a later full verify must still read those entries).
 */
import {
  openCheckpoint,
  parseVerifierKey,
  decodeBundle,
  tilePath,
  tileWidthAt,
  toBase64,
  fromBase64,
  bytesEqual,
  hashLeaf,
  checkCosignatures,
  type CosignatureCheck,
  type Checkpoint,
  type Sha256,
} from '@custody/verify';
import { TreeBuilder, type TileData } from '../log/tree.js';
import { parseEntry } from '../log/entry.js';
import type { LogInfo, LogSource, ShredInfo } from './sources.js';
import { SourceError } from './sources.js';
import type { TrustStore, TrustedLog } from './trust.js';

const TILE = 256;
const MAX_PROBLEMS = 25;
const PREFETCH = 8;

export type ProblemKind =
  | 'KEY_CHANGED'
  | 'CHECKPOINT_INVALID'
  | 'ROLLBACK'
  | 'NOT_A_PREFIX'
  | 'BUNDLE_MISSING'
  | 'BUNDLE_CORRUPT'
  | 'BUNDLE_UNAVAILABLE'
  | 'ENTRY_MALFORMED'
  | 'TILE_MISSING'
  | 'TILE_MISMATCH'
  | 'ROOT_MISMATCH'
  | 'SOURCE_UNAVAILABLE'
  | 'WITNESS_POLICY';

export interface Problem {
  kind: ProblemKind;
  where: string;
  message: string;
}

export interface VerifyReport {
  log: string;
  origin: string;
  ok: boolean;
  size: number;
  rootHash: string | null;
  resumedFrom: number;
  trustedBefore: number | null;
  entriesChecked: number;
  tilesChecked: number;
  seconds: number;
  problems: Problem[];
  verifierKey: string;
  /**
   * Ranges crypto-shredded by approved retention purges: their entries are gone, and the tree
   * was checked from the stored leaf hashes there (hashes only). Not a problem.
   */
  shredded: Array<ShredInfo & { message: string }>;
  /** With witness keys: each witness and whether its cosignature on the checkpoint verifies. */
  cosigners?: CosignatureCheck[];
  /** True with --hashes-only: no entry bundle was read; entriesChecked counts leaf hashes. */
  hashesOnly: boolean;
  /** False with --hashes-only: the trusted checkpoint was not updated. */
  trustUpdated: boolean;
}

export interface VerifyOptions {
  trust: TrustStore;
  /** Pin the verifier key instead of trusting the stored one (or the server's, on first use). */
  key?: string;
  /** Recompute from entry 0 even when a trusted checkpoint allows resuming. */
  full?: boolean;
  hash: Sha256;
  /** Witness cosignature keys (type 0x04) and how many must have cosigned (docs/WITNESS.md). */
  witnesses?: string[];
  witnessPolicy?: number;
  /** Read no entry bundle: check the tree from the stored leaf hashes (docs/ARCHIVE.md). */
  hashesOnly?: boolean;
  onProgress?: (done: number, total: number) => void;
}

class Problems {
  readonly list: Problem[] = [];
  add(kind: ProblemKind, where: string, message: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push({ kind, where, message });
  }
  get fatal(): boolean {
    return this.list.length >= MAX_PROBLEMS;
  }
}

/** A sliding window of fetches so the network or disk is never idle. */
function prefetcher<T>(count: number, fetchOne: (i: number) => Promise<T>): (i: number) => Promise<T> {
  const inflight = new Map<number, Promise<T>>();
  let next = 0;
  const fill = (upTo: number): void => {
    while (next < count && next <= upTo) {
      const p = fetchOne(next);
      p.catch(() => undefined);
      inflight.set(next, p);
      next++;
    }
  };
  return (i) => {
    fill(i + PREFETCH);
    const p = inflight.get(i) ?? fetchOne(i);
    inflight.delete(i);
    return p;
  };
}

export async function verifyLog(source: LogSource, info: LogInfo, opts: VerifyOptions): Promise<VerifyReport> {
  const t0 = Date.now();
  const problems = new Problems();
  const trusted: TrustedLog | undefined = opts.trust.get(info.origin);
  const report: VerifyReport = {
    log: info.name,
    origin: info.origin,
    ok: false,
    size: 0,
    rootHash: null,
    resumedFrom: 0,
    trustedBefore: trusted?.size ?? null,
    entriesChecked: 0,
    tilesChecked: 0,
    seconds: 0,
    problems: problems.list,
    verifierKey: opts.key ?? trusted?.verifierKey ?? info.verifierKey,
    shredded: [],
    hashesOnly: !!opts.hashesOnly,
    trustUpdated: false,
  };
  const shreds = new Map<number, ShredInfo>();
  const noteShred = (s: ShredInfo): void => {
    if (!shreds.has(s.purge)) shreds.set(s.purge, { ...s });
  };
  const finish = (): VerifyReport => {
    report.shredded = [...shreds.values()]
      .sort((a, b) => a.from - b.from)
      .map((s) => ({ ...s, message: `${s.count} entries shredded by approved purge #${s.purge} (entries ${s.from}–${s.to - 1})` }));
    report.ok = problems.list.length === 0;
    report.seconds = (Date.now() - t0) / 1000;
    return report;
  };

  if (trusted && !opts.key && trusted.verifierKey !== info.verifierKey) {
    problems.add('KEY_CHANGED', 'verifier key', `The log now presents key ${info.verifierKey}, but you trusted ${trusted.verifierKey}. Someone replaced the log's signing key; do not trust this log until its operator explains.`);
    return finish();
  }
  let cp: Checkpoint;
  let cpText: string;
  try {
    cpText = await source.checkpoint(info.name);
    cp = openCheckpoint(cpText, parseVerifierKey(report.verifierKey)).checkpoint;
  } catch (e) {
    problems.add('CHECKPOINT_INVALID', 'checkpoint', `The checkpoint does not verify with key ${report.verifierKey}: ${(e as Error).message}. It was altered or signed by another key.`);
    return finish();
  }
  report.size = cp.size;
  report.rootHash = toBase64(cp.rootHash);
  if (opts.witnesses && opts.witnesses.length > 0) {
    // Cosignatures (C2SP tlog-cosignature): at least `witnessPolicy` of the witnesses must have
    // cosigned this checkpoint; the rest of the log is still checked, but it is not trusted.
    const cs = checkCosignatures(cpText, opts.witnesses.map((k) => parseVerifierKey(k)), opts.witnessPolicy ?? opts.witnesses.length);
    report.cosigners = cs.witnesses;
    if (!cs.ok) {
      const by = cs.witnesses.filter((w) => w.status === 'signed').map((w) => w.name);
      const bad = cs.witnesses.filter((w) => w.status === 'invalid').map((w) => w.name);
      problems.add('WITNESS_POLICY', 'checkpoint', `The checkpoint is cosigned by ${cs.cosigned} of the ${cs.policy} witnesses you require (${by.length ? `signed: ${by.join(', ')}` : 'none signed'}${bad.length ? `; cosignatures that do not verify: ${bad.join(', ')}` : ''}). Without them, this checkpoint could be a history shown only to you.`);
    }
  }
  const N = cp.size;

  if (trusted && trusted.size > N) {
    problems.add('ROLLBACK', 'checkpoint', `The log has ${N} entries but you already verified a checkpoint with ${trusted.size}: the trusted checkpoint is not a prefix of this log. Its history was rolled back or rewritten.`);
    return finish();
  }
  const trustedRoot = trusted ? fromBase64(trusted.rootHash, 32) : null;
  if (trusted && trusted.size === N && !bytesEqual(trustedRoot!, cp.rootHash)) {
    problems.add('NOT_A_PREFIX', 'checkpoint', `The log's checkpoint at size ${N} has a different root than the one you trusted at the same size: the log was forked or rewritten.`);
    return finish();
  }

  const h = opts.hash;
  // One fetch per tile, shared by the prefetch and the comparison; a failure is reported once.
  const tileCache = new Map<string, Promise<Uint8Array | null>>();
  const getTile = (level: number, index: number, width: number): Promise<Uint8Array | null> => {
    const k = `${level}/${index}/${width}`;
    let p = tileCache.get(k);
    if (!p) {
      p = source.tile(info.name, level, index, width).catch((e: unknown) => {
        if (e instanceof SourceError) {
          problems.add(e.kind === 'missing' ? 'TILE_MISSING' : 'SOURCE_UNAVAILABLE', tilePath({ level, index, width }), e.message);
          return null;
        }
        throw e;
      });
      tileCache.set(k, p);
    }
    return p;
  };

  // Where to start: the trusted checkpoint (resume), or zero.
  let M = !opts.full && trusted ? trusted.size : 0;
  let builder = new TreeBuilder(h);
  if (M > 0) {
    const partial: Uint8Array[][] = [];
    let ok = true;
    for (let l = 0, count = M; count > 0; l++, count = Math.floor(count / TILE)) {
      const w = count % TILE;
      const hashes: Uint8Array[] = [];
      if (w > 0) {
        const idx = Math.floor(count / TILE);
        const t = await getTile(l, idx, tileWidthAt(l, idx, N));
        if (!t || t.length < w * 32) ok = false;
        else for (let i = 0; i < w; i++) hashes.push(t.subarray(i * 32, i * 32 + 32));
      }
      partial.push(hashes);
    }
    if (ok) {
      builder = new TreeBuilder(h, M, partial);
      if (!bytesEqual(builder.root(), trustedRoot!)) ok = false;
    }
    if (!ok) {
      // Either history was rewritten or a tile is damaged: recompute from zero to tell which.
      problems.list.length = 0;
      M = 0;
      builder = new TreeBuilder(h);
    }
  }
  report.resumedFrom = M;

  const compare = async (t: TileData): Promise<void> => {
    report.tilesChecked++;
    const stored = await getTile(t.level, t.index, t.width);
    if (!stored) return;
    if (!bytesEqual(stored, t.data)) {
      let pos = 0;
      while (pos < t.width && bytesEqual(stored.subarray(pos * 32, pos * 32 + 32), t.data.subarray(pos * 32, pos * 32 + 32))) pos++;
      const first = t.level === 0 ? ` (entry ${t.index * TILE + pos})` : '';
      problems.add('TILE_MISMATCH', tilePath(t), `Stored tile ${tilePath(t)} differs from the tree recomputed from the entries at hash ${pos}${first}${stored.length !== t.data.length ? `; it has ${stored.length} bytes instead of ${t.data.length}` : ''}.`);
    }
    tileCache.delete(`${t.level}/${t.index}/${t.width}`); // compared once; free the memory
  };

  const firstBundle = Math.floor(M / TILE);
  const bundleCount = Math.ceil(N / TILE) - firstBundle;
  const widthOf = (k: number): number => Math.min(TILE, N - k * TILE);
  const fetchBundle = prefetcher(opts.hashesOnly ? 0 : bundleCount, async (i) => {
    const k = firstBundle + i;
    return source.bundle(info.name, k, widthOf(k));
  });
  const fetchLeafTile = prefetcher(bundleCount, async (i) => {
    const k = firstBundle + i;
    return getTile(0, k, widthOf(k));
  });
  opts.onProgress?.(0, N - M);
  for (let i = 0; i < bundleCount && !problems.fatal; i++) {
    const k = firstBundle + i;
    const w = widthOf(k);
    const where = tilePath({ level: 'entries', index: k, width: w });
    // With --hashes-only the bundle is never fetched: `leaves` stays null and the stored
    // leaf hashes (level-0 tile) are used below, as for a shredded range.
    let leaves: Uint8Array[] | null = null;
    if (!opts.hashesOnly) try {
      const entries = decodeBundle(await fetchBundle(i), w);
      leaves = [];
      for (let j = 0; j < w; j++) {
        const e = entries[j]!;
        const index = k * TILE + j;
        if (index < M) continue;
        try {
          const p = parseEntry(e);
          if (p.origin !== info.origin) throw new Error(`it names log ${p.origin}`);
        } catch (err) {
          problems.add('ENTRY_MALFORMED', `entry ${index}`, `Entry ${index} (in ${where}) is not a valid envelope of this log: ${(err as Error).message}`);
        }
        leaves.push(hashLeaf(e, h));
      }
    } catch (e) {
      if (e instanceof SourceError && e.kind === 'shredded' && e.shred && w === TILE && e.shred.from <= k * TILE && k * TILE < e.shred.to) {
        noteShred(e.shred); // an approved purge removed it: check these entries from the leaf hashes
      } else if (e instanceof SourceError) {
        if (e.kind === 'unavailable') {
          // Archived and not readable now (restore pending, archive unreachable): not proven bad.
          problems.add('BUNDLE_UNAVAILABLE', where, `Entry bundle ${where} (entries ${k * TILE}–${k * TILE + w - 1}) cannot be read now: ${e.message}. Its entries were not checked; \`custody verify --hashes-only\` checks the tree without them.`);
        } else problems.add(e.kind === 'missing' ? 'BUNDLE_MISSING' : 'BUNDLE_CORRUPT', where, `Entry bundle ${where} (entries ${k * TILE}–${k * TILE + w - 1}): ${e.message}`);
      } else if ((e as { code?: string }).code === 'MALFORMED_BUNDLE') {
        problems.add('BUNDLE_CORRUPT', where, `Entry bundle ${where} (entries ${k * TILE}–${k * TILE + w - 1}) is malformed: ${(e as Error).message}`);
      } else throw e;
      leaves = null;
    }
    if (leaves === null) {
      // Keep going with the stored leaf hashes so the rest of the log is still checked.
      const t = await fetchLeafTile(i);
      if (!t) break;
      leaves = [];
      for (let j = Math.max(0, M - k * TILE); j < w; j++) leaves.push(t.subarray(j * 32, j * 32 + 32));
    } else {
      void fetchLeafTile(i).catch(() => undefined);
    }
    for (const leaf of leaves) {
      builder.append(leaf);
      if (trusted && builder.size === trusted.size && M < trusted.size && !bytesEqual(builder.root(), trustedRoot!)) {
        problems.add('NOT_A_PREFIX', `entries 0–${trusted.size - 1}`, `The first ${trusted.size} entries no longer give the root of the checkpoint you trusted: the log's history was rewritten.`);
      }
    }
    report.entriesChecked += leaves.length;
    for (const t of builder.takeCompleted()) await compare(t);
    opts.onProgress?.(report.entriesChecked, N - M);
  }
  // Purges of ranges this run did not read (it resumed after them) are reported too.
  if (source.purges) {
    try {
      for (const p of await source.purges(info.name)) noteShred(p);
    } catch {
      /* informational only */
    }
  }
  if (!problems.fatal) {
    for (const t of builder.partialTiles()) await compare(t);
    if (builder.size === N && !bytesEqual(builder.root(), cp.rootHash)) {
      problems.add('ROOT_MISMATCH', 'checkpoint', `The entries give root ${toBase64(builder.root())} but the signed checkpoint says ${report.rootHash}: entries were changed, removed or reordered.`);
    }
  }
  finish();
  if (report.ok && !opts.hashesOnly) {
    report.trustUpdated = true;
    opts.trust.set(info.origin, {
      verifierKey: report.verifierKey,
      size: N,
      rootHash: report.rootHash!,
      checkpoint: cpText!,
      verifiedAt: new Date().toISOString(),
      source: source.description,
    });
  }
  return report;
}
