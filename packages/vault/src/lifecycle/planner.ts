/**
 * What a purge may remove: the FULL entry bundles (256 entries each) from where the last purge
 * ended, whose every entry was received (the envelope's `received` line) before the cutoff
 * (now − retention). It stops at the first bundle holding a younger entry, so a purge always
 * shreds a contiguous prefix of the log, and it never touches the last bundle of the tree
 * (partial or not: the integrator and every reader of the right edge need it).
 */
import { decodeBundle } from '@custody/verify';
import { CustodyError } from '../errors.js';
import { parseEntry } from '../log/entry.js';
import type { PosixLogStore } from '../storage/posix.js';

export const BUNDLE = 256;

export interface PlanInput {
  store: PosixLogStore;
  log: string;
  /** Published tree size. */
  size: number;
  /** First entry not yet shredded (a multiple of 256). */
  from: number;
  /** Entries received before this time (ms) are past retention. */
  cutoffMs: number;
}

export interface BundleFacts {
  /** Latest receive time of its entries (ms); +Infinity when one cannot be read. */
  newest: number;
  oldest: number;
  oldestEntry: { index: number; received: string } | null;
  /** The file name (storage/posix.ts blobFileName: an HMAC, never the record hash) of each blob its entries reference. */
  blobs: string[];
}

/** Bundles after `from` that are full and are not the last one of the tree. */
export function purgeableBundleLimit(size: number): number {
  return Math.max(0, Math.ceil(size / BUNDLE) - 1);
}

export async function bundleFacts(store: PosixLogStore, log: string, k: number, width = BUNDLE): Promise<BundleFacts> {
  // A bundle in an S3 archive: the facts recorded when it was archived (lifecycle/archive.ts),
  // so planning a purge or the retention overview never starts a Glacier restore.
  const archived = width === BUNDLE && store.isS3Archived(k) ? store.archivedBundle(k) : null;
  if (archived?.facts) return { newest: archived.facts.newest, oldest: archived.facts.oldest, oldestEntry: archived.facts.oldestEntry, blobs: archived.facts.blobs };
  const raw = await store.readBundle(k, width);
  if (raw === null) throw new CustodyError('STORAGE_CORRUPT', `Entry bundle ${k} of log "${log}" is missing from storage; nothing is purged until \`custody verify\` explains why.`);
  const entries = decodeBundle(raw, width);
  let newest = -Infinity;
  let oldest = Infinity;
  let oldestEntry: BundleFacts['oldestEntry'] = null;
  const blobs: string[] = [];
  entries.forEach((e, i) => {
    let received = NaN;
    let text = '';
    try {
      const p = parseEntry(e);
      text = p.received;
      received = Date.parse(p.received);
      if (p.blob) blobs.push(store.blobFileName(p.blob.sha256));
    } catch {
      /* an unreadable envelope counts as young: it is never purged */
    }
    if (!Number.isFinite(received)) received = Infinity;
    newest = Math.max(newest, received);
    if (received < oldest) {
      oldest = received;
      oldestEntry = { index: k * BUNDLE + i, received: text };
    }
  });
  return { newest, oldest, oldestEntry, blobs };
}

export interface PurgePreview {
  from: number;
  to: number;
  count: number;
  bundles: number;
}

/**
 * A quick estimate for the overview (GET /v1/retention): binary search for the end of the
 * prefix of old bundles, reading about log2(n) bundles. Receive times grow with the index
 * (within the milliseconds concurrent requests overlap), which is what makes this exact in
 * practice; the purge itself checks every entry (planPurge).
 */
export async function previewPurge(p: PlanInput): Promise<PurgePreview> {
  const first = p.from / BUNDLE;
  let lo = first;
  let hi = purgeableBundleLimit(p.size);
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if ((await bundleFacts(p.store, p.log, mid)).newest < p.cutoffMs) lo = mid + 1;
    else hi = mid;
  }
  return { from: p.from, to: lo * BUNDLE, count: (lo - first) * BUNDLE, bundles: lo - first };
}

export interface PurgePlan extends PurgePreview {
  /** Blobs referenced by the shredded entries and by no entry that stays (file names). */
  blobs: string[];
}

/**
 * The exact plan: reads every bundle it would shred and checks every entry's receive time,
 * then, when those entries reference blobs, reads the rest of the log to keep any blob another
 * entry still references.
 */
export async function planPurge(p: PlanInput): Promise<PurgePlan> {
  const first = p.from / BUNDLE;
  if (!Number.isSafeInteger(first)) throw new CustodyError('INTERNAL', `purge start ${p.from} of log "${p.log}" is not at a bundle boundary`);
  const limit = purgeableBundleLimit(p.size);
  const candidates = new Set<string>();
  let k = first;
  for (; k < limit; k++) {
    const f = await bundleFacts(p.store, p.log, k);
    if (!(f.newest < p.cutoffMs)) break;
    for (const b of f.blobs) candidates.add(b);
  }
  const to = k * BUNDLE;
  if (candidates.size > 0) {
    for (let j = k; j * BUNDLE < p.size && candidates.size > 0; j++) {
      const width = Math.min(BUNDLE, p.size - j * BUNDLE);
      for (const b of (await bundleFacts(p.store, p.log, j, width)).blobs) candidates.delete(b);
    }
  }
  return { from: p.from, to, count: to - p.from, bundles: k - first, blobs: [...candidates] };
}
