/**
 * Baseline B: the disk's limit for this workload. The same NDJSON batch bodies, appended by
 * the same number of concurrent writers to one file (O_APPEND), each batch followed by its
 * own fdatasync before the writer sends the next. No HTTP, no parsing, no hashing, no
 * encryption: what any durable-per-batch log could at best reach on this disk and core count.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { BatchTemplate } from './records.js';
import { stampBatch } from './records.js';
import { tempDir, dropTempDir, percentile, cpuSnapshot, busyCores } from './util.js';

export interface FileOptions {
  writers: number;
  warmupS: number;
  durationS: number;
  templates: BatchTemplate[][];
}

export interface FileResult {
  entries: number;
  batches: number;
  bytes: number;
  seconds: number;
  entriesPerSec: number;
  mbPerSec: number;
  syncMs: { p50: number; p99: number };
  /** Cores busy on the machine during the run (this baseline itself uses little CPU). */
  machineCpuCores: number;
}

export async function fileBaseline(o: FileOptions, progress: (s: string) => void): Promise<FileResult> {
  const dir = tempDir('custody-bench-file-');
  const fh = await open(join(dir, 'batches.ndjson'), 'a', 0o600);
  try {
    const t0 = performance.now();
    const tMeasure = t0 + o.warmupS * 1000;
    const tEnd = tMeasure + o.durationS * 1000;
    let stopping = false;
    let entries = 0;
    let batches = 0;
    let bytes = 0;
    let total = 0;
    const syncMs: number[] = [];
    let m0 = cpuSnapshot();
    let machine = NaN;
    const cpuStart = setTimeout(() => (m0 = cpuSnapshot()), Math.max(0, tMeasure - performance.now()));
    const cpuEnd = setTimeout(() => (machine = busyCores(m0, cpuSnapshot())), Math.max(0, tEnd - performance.now()));
    const ticker = setInterval(() => progress(`  ${((performance.now() - t0) / 1000).toFixed(0)} s: ${total.toLocaleString('en-US')} records written and synced`), 2000);
    const writer = async (w: number): Promise<void> => {
      const mine = o.templates[w]!;
      let seq = 0;
      let k = 0;
      while (!stopping) {
        const t = mine[k++ % mine.length]!;
        seq = stampBatch(t, w, seq);
        const sent = performance.now();
        let off = 0;
        while (off < t.body.length) off += (await fh.write(t.body, off, t.body.length - off)).bytesWritten;
        await fh.datasync();
        const at = performance.now();
        total += t.idOffsets.length;
        if (at > tMeasure && at <= tEnd) {
          entries += t.idOffsets.length;
          batches++;
          bytes += t.body.length;
          syncMs.push(at - sent);
        }
        if (at >= tEnd) stopping = true;
      }
    };
    try {
      await Promise.all(Array.from({ length: o.writers }, (_, w) => writer(w)));
    } finally {
      clearInterval(ticker);
      clearTimeout(cpuStart);
      clearTimeout(cpuEnd);
    }
    if (!Number.isFinite(machine)) machine = busyCores(m0, cpuSnapshot());
    const seconds = (tEnd - tMeasure) / 1000;
    const sorted = syncMs.sort((a, b) => a - b);
    return { entries, batches, bytes, seconds, entriesPerSec: entries / seconds, mbPerSec: bytes / 1e6 / seconds, syncMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99) }, machineCpuCores: machine };
  } finally {
    await fh.close();
    dropTempDir(dir);
  }
}
