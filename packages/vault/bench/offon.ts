/**
 * The "same run, feature off vs on" measurement figures 11 and 13 share: fresh
 * `custody serve --no-search` processes in alternation (off, on, off, on …), each started with
 * the environment the figure gives for its state, the same writers and batches against each,
 * and the medians compared.
 */
import { join } from 'node:path';
import { startServer, ingest, type IngestOptions, type IngestResult } from './custody.js';
import { tempDir, dropTempDir, median } from './util.js';

export interface OffOnFigure {
  rounds: number;
  seconds: number;
  /** entries/s of each run */
  off: number[];
  on: number[];
  offMedian: number;
  onMedian: number;
  /** on / off (1 = free). */
  ratio: number;
}

export async function offOnIngest(o: {
  bin: string;
  rounds: number;
  /** What the servers get: writers, batches, timing, path. */
  load: Omit<IngestOptions, 'maxEntries' | 'pollMs' | 'rate'>;
  /** The server's environment with the feature off or on. */
  env: (on: boolean) => NodeJS.ProcessEnv;
  tempPrefix: string;
  /** Called after every run (progress lines, extra figures from the result). */
  each: (on: boolean, r: IngestResult, round: number) => void;
}): Promise<OffOnFigure> {
  const off: number[] = [];
  const on: number[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const state of [false, true]) {
      const dir = tempDir(o.tempPrefix);
      const srv = await startServer({ bin: o.bin, dataDir: join(dir, 'data'), logFile: join(dir, 'server.log'), env: o.env(state), args: ['--no-search'] });
      try {
        const r = await ingest(srv, { ...o.load, maxEntries: 0, pollMs: 100, rate: 0 }, () => undefined);
        (state ? on : off).push(r.entriesPerSec);
        o.each(state, r, round);
      } finally {
        await srv.stop();
        dropTempDir(dir);
      }
    }
  }
  const offMedian = median(off);
  const onMedian = median(on);
  return { rounds: o.rounds, seconds: o.load.durationS, off, on, offMedian, onMedian, ratio: onMedian / offMedian };
}
