/**
 * Reading a log's entries into index rows, a bundle at a time: what the live follower (a worker
 * thread, follower-worker.ts) and `custody reindex` (reindex.ts) both do.
 */
import { decodeBundle } from '@custody/verify';
import { CustodyError, isCustodyError } from '../errors.js';
import { parseEntry } from '../log/index.js';
import type { LogStore } from '../storage/log-store.js';
import { deriveRow } from './derive.js';
import type { IndexRow } from './store.js';

const BUNDLE = 256;

/**
 * The rows of entries [from, to) of a log whose published size is at least `to` — or of the
 * first of them, once their records add up to `maxBytes` (large records live in blobs of up to
 * 1 MiB; a batch of them must not hold a gigabyte) — and the index to continue from. Reads whole
 * bundles (decrypting each once) and each blob a record lives in. Bundles a retention purge
 * crypto-shredded (ENTRY_SHREDDED) have no rows and are passed over. A bundle, envelope or blob
 * that cannot be read otherwise throws (STORAGE_CORRUPT): the follower retries and says so, and
 * never skips an entry the log holds.
 */
export async function readRows(store: LogStore, log: string, from: number, to: number, maxBytes = Infinity): Promise<{ rows: IndexRow[]; next: number }> {
  const rows: IndexRow[] = [];
  let bytes = 0;
  let next = from;
  for (let k = Math.floor(from / BUNDLE); k * BUNDLE < to && bytes < maxBytes; k++) {
    const width = Math.min(BUNDLE, to - k * BUNDLE);
    let bundle: Buffer | null;
    try {
      bundle = await store.readBundle(k, width);
    } catch (e) {
      if (isCustodyError(e, 'ENTRY_SHREDDED')) {
        next = k * BUNDLE + width;
        continue;
      }
      throw e;
    }
    if (!bundle) throw new CustodyError('STORAGE_CORRUPT', `Entry bundle ${k} (width ${width}) of log "${log}" is missing; the search index cannot read it.`);
    const entries = decodeBundle(bundle, width);
    for (let i = Math.max(from - k * BUNDLE, 0); i < width && bytes < maxBytes; i++) {
      const index = k * BUNDLE + i;
      const env = parseEntry(entries[i]!);
      const record = env.blob ? await store.readBlob(env.blob.sha256) : env.record!;
      bytes += record.length;
      rows.push(deriveRow(log, index, env, record));
      next = index + 1;
    }
  }
  return { rows, next };
}
