/**
 * Helpers for the archive tests: a harness vault with three full bundles and a partial one
 * (bundle 0 holds a blob), and an archive mover on it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ArchiveMover, type MoverOptions } from '../../src/lifecycle/archive.js';
import { openHarness, append, records, bigRecord, sleep, type Harness } from '../lifecycle/harness.js';

export interface Filled {
  h: Harness;
  /** Receive time (ms) of the first batch (bundle 0) and of the second (bundles 1–3). */
  tA: number;
  tB: number;
  big: string;
}

/** 256 entries (bundle 0, entry 255 a blob), then 600 more: bundles 1 and 2 full, 3 partial (88). */
export async function filledHarness(opts: { timing?: Record<string, number> } = {}): Promise<Filled> {
  const h = await openHarness(opts);
  const big = bigRecord('archived-blob');
  const a = await append(h, [...records(255, 'A'), big]);
  await sleep(40);
  const b = await append(h, records(600, 'B'));
  return { h, tA: Date.parse(a.received), tB: Date.parse(b.received), big };
}

export function mover(h: Harness, location: string, o: Partial<MoverOptions> = {}): ArchiveMover {
  return new ArchiveMover(h.vault, { location, afterDays: 30, logger: pino({ level: 'silent' }), retentionDays: (log) => h.retention.store.retention(log).days, ...o });
}

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `custody-archive-${label}-`));
}

export const DAY = 86_400_000;
