/**
 * The self-audit's shared-vault part (S3 + PostgreSQL, docs/PRODUCTION.md section 14): which
 * node runs it, and how it finds objects that were overwritten in S3.
 *
 * - Only the node that integrates a log (holds its leader lock, sequencer/SHARED.md) audits it,
 *   so N nodes do not read the same objects N times; when the lock moves, the new integrator
 *   audits from then on.
 * - Reads go through the log's S3LogStore (storage/s3/log-store.ts): tiles and bundles from the
 *   bucket, never from an archive, so no restore is ever started.
 * - An immutable key (tile, bundle, blob) with a later version was overwritten or hidden by a
 *   delete marker: readers take its first version (the one the tree commits to), so the data
 *   still verifies — but the change itself is an incident and raises an alarm. Two sources: the
 *   keys S3LogStore noted while reading (`replaced`), and a version listing of the keys of each
 *   bundle the rolling pass checks.
 */
import { tilePath } from '@custody/verify';
import type { LogSequencerApi } from '../sequencer/api.js';
import type { S3LogStore, ReplacedObject } from '../storage/s3/log-store.js';

/** The log's S3 store when the sequencer is a shared one, else null. */
export function sharedStoreOf(seq: LogSequencerApi): S3LogStore | null {
  return seq.store.kind === 's3' ? (seq.store as S3LogStore) : null;
}

/** Whether this node integrates the log now (holds its leader lock). */
export function integratesHere(seq: LogSequencerApi): boolean {
  const s = seq as LogSequencerApi & { lease?: unknown };
  return s.lease !== undefined && s.lease !== null;
}

/** The keys of what the rolling pass checks for bundle `i` (width entries). */
export function keysOfBundle(i: number, width: number): string[] {
  return [tilePath({ level: 'entries', index: i, width }), tilePath({ level: 0, index: i, width })];
}

/**
 * The keys (store-relative) among `rels` that have versions after their first one (an overwrite
 * or a delete marker), with how many.
 */
export async function laterVersions(store: S3LogStore, rels: string[]): Promise<ReplacedObject[]> {
  const out: ReplacedObject[] = [];
  for (const rel of rels) {
    const vs = await store.objects.versions(store.keyOf(rel));
    const first = vs.findIndex((v) => !v.deleteMarker);
    const later = first < 0 ? vs.length : vs.length - 1 - first;
    if (later > 0) out.push({ key: rel, later, at: new Date().toISOString() });
  }
  return out;
}

/** The replaced keys S3LogStore noted while serving reads that `seen` does not hold yet (then added). */
export function takeNoted(store: S3LogStore, seen: WeakSet<ReplacedObject>): ReplacedObject[] {
  const out = store.replaced.filter((r) => !seen.has(r));
  for (const r of out) seen.add(r);
  return out;
}
