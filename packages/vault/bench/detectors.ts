/**
 * Figure 11 — what the detectors cost ingest (issue 5: "detectors cost ≤ 10% of ingest
 * throughput with the default pack on").
 *
 * Two `custody serve` processes on fresh data directories, run one after the other and in
 * alternation (off, on, off, on …): the same writers POST the same benign CloudTrail batches
 * to /v1/logs/local/entries?source=aws.cloudtrail (so every record goes through the CloudTrail
 * parser and the CloudTrail rules), all naming region us-east-1; posted to the log named in the path (local). "off" is the
 * same-run baseline: the server started with CUSTODY_BENCH_WITHOUT_DETECTORS=1 (no rule runs;
 * the vault records that in its audit log). Search is off in both, so the figure is the
 * detectors alone. The ratio compares the medians; ≥ 0.90 meets the target.
 */
import { makeBatch, type BatchTemplate } from './records.js';
import { offOnIngest, type OffOnFigure } from './offon.js';

export type DetectorsFigure = OffOnFigure;

export async function detectorsFigure(
  o: { bin: string; writers: number; batch: number; warmupS: number; durationS: number; rounds: number },
  log: (s: string) => void,
): Promise<DetectorsFigure> {
  const templates: BatchTemplate[][] = [];
  for (let w = 0; w < o.writers; w++) templates.push(Array.from({ length: 4 }, (_, k) => makeBatch(7000 + w * 4 + k, o.batch, { region: 'us-east-1' })));
  return offOnIngest({
    bin: o.bin,
    rounds: o.rounds,
    load: { writers: o.writers, warmupS: o.warmupS, durationS: o.durationS, templates, path: '/v1/logs/local/entries?source=aws.cloudtrail' },
    env: (detectors) => ({ CUSTODY_BENCH_WITHOUT_DETECTORS: detectors ? '0' : '1' }),
    tempPrefix: 'custody-bench-detectors-',
    each: (detectors, r, round) => log(`detectors ${detectors ? 'on ' : 'off'} (round ${round + 1}/${o.rounds}): ${Math.round(r.entriesPerSec).toLocaleString('en-US')} CloudTrail entries/s`),
  });
}
