/**
 * Figure 15 — what a witness costs (issue 7: "p99 ack→checkpoint (target ≤ 2 s with one
 * witness)").
 *
 * Fresh `custody serve --no-search` processes in alternation (without, with, without, with …):
 * "with" is a vault configured with one witness (`custody witness serve`, a separate process on
 * loopback, following the vault's `local` and `audit` logs) and policy 1, so no checkpoint is
 * published before the witness cosigned it. The same writers POST the same CloudTrail batches
 * to both. Reported per state: entries/s and the latency from a batch's acknowledgement to the
 * first published checkpoint that covers it (p50/p99, polled every 100 ms by the bench's
 * auditor); the ratio compares the medians of entries/s, and the target is the p99 with the
 * witness ≤ 2 s.
 */
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { makeBatch, type BatchTemplate } from './records.js';
import { startServer, ingest, type IngestResult } from './custody.js';
import { tempDir, dropTempDir, median, run, freePort, killChild, onCleanup } from './util.js';

export interface WitnessFigure {
  rounds: number;
  seconds: number;
  without: number[];
  with: number[];
  withoutMedian: number;
  withMedian: number;
  /** with / without (1 = free). */
  ratio: number;
  /** ack→checkpoint p99 (ms) of each run, and their medians. */
  p99Without: number[];
  p99With: number[];
  p99WithoutMedian: number;
  p99WithMedian: number;
  p50WithMedian: number;
}

async function cli(bin: string, args: string[]): Promise<string> {
  const r = await run(process.execPath, [bin, ...args], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`custody ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** A witness process following the logs of a freshly initialised vault; resolves once it listens. */
async function startWitness(bin: string, dir: string, dataDir: string): Promise<{ flag: string; stop: () => void }> {
  const wdir = join(dir, 'witness');
  const init = JSON.parse(await cli(bin, ['witness', 'init', '--data', wdir, '--name', 'bench-witness', '--json'])) as { vkey: string };
  const logs = (JSON.parse(await cli(bin, ['logs', '--data', dataDir, '--json'])) as { logs: Array<{ name: string; origin: string; verifierKey: string }> }).logs;
  for (const l of logs) await cli(bin, ['witness', 'add-log', '--data', wdir, '--origin', l.origin, '--vkey', l.verifierKey]);
  const port = await freePort();
  const logFile = join(dir, 'witness.log');
  const fd = openSync(logFile, 'a');
  const child: ChildProcess = spawn(process.execPath, [bin, 'witness', 'serve', '--data', wdir, '--port', String(port), '--host', '127.0.0.1'], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const drop = onCleanup(`kill witness ${child.pid}`, () => killChild(child));
  const stop = (): void => {
    killChild(child);
    drop();
  };
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`custody witness serve exited: ${existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : ''}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/add-checkpoint`, { method: 'GET' });
      if (r.status === 405 || r.status === 404) break; // listening (add-checkpoint is POST only)
    } catch {
      /* not yet */
    }
    if (Date.now() - started > 20_000) {
      stop();
      throw new Error('custody witness serve did not start within 20 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { flag: `bench=http://127.0.0.1:${port}=${init.vkey}`, stop };
}

export async function witnessFigure(
  o: { bin: string; writers: number; batch: number; warmupS: number; durationS: number; rounds: number },
  log: (s: string) => void,
): Promise<WitnessFigure> {
  const templates: BatchTemplate[][] = [];
  for (let w = 0; w < o.writers; w++) templates.push(Array.from({ length: 4 }, (_, k) => makeBatch(9100 + w * 4 + k, o.batch, { region: 'us-east-1' })));
  const res = { without: [] as IngestResult[], with: [] as IngestResult[] };
  for (let round = 0; round < o.rounds; round++) {
    for (const withWitness of [false, true]) {
      const dir = tempDir('custody-bench-witness-');
      const dataDir = join(dir, 'data');
      let witness: { flag: string; stop: () => void } | null = null;
      try {
        const args = ['--no-search'];
        if (withWitness) {
          await cli(o.bin, ['init', '--data', dataDir]);
          witness = await startWitness(o.bin, dir, dataDir);
          args.push('--witness', witness.flag, '--witness-policy', '1');
        }
        const srv = await startServer({ bin: o.bin, dataDir, logFile: join(dir, 'server.log'), args });
        try {
          const r = await ingest(srv, { writers: o.writers, warmupS: o.warmupS, durationS: o.durationS, templates, path: '/v1/logs/local/entries?source=aws.cloudtrail', maxEntries: 0, pollMs: 100, rate: 0 }, () => undefined);
          (withWitness ? res.with : res.without).push(r);
          log(
            `witness ${withWitness ? 'on ' : 'off'} (round ${round + 1}/${o.rounds}): ${Math.round(r.entriesPerSec).toLocaleString('en-US')} entries/s, ack→checkpoint p50 ${Math.round(r.checkpointMs.p50)} ms, p99 ${Math.round(r.checkpointMs.p99)} ms`,
          );
        } finally {
          await srv.stop();
        }
      } finally {
        witness?.stop();
        dropTempDir(dir);
      }
    }
  }
  const eps = (xs: IngestResult[]): number[] => xs.map((r) => r.entriesPerSec);
  const p99 = (xs: IngestResult[]): number[] => xs.map((r) => r.checkpointMs.p99);
  const withoutMedian = median(eps(res.without));
  const withMedian = median(eps(res.with));
  return {
    rounds: o.rounds,
    seconds: o.durationS,
    without: eps(res.without),
    with: eps(res.with),
    withoutMedian,
    withMedian,
    ratio: withMedian / withoutMedian,
    p99Without: p99(res.without),
    p99With: p99(res.with),
    p99WithoutMedian: median(p99(res.without)),
    p99WithMedian: median(p99(res.with)),
    p50WithMedian: median(res.with.map((r) => r.checkpointMs.p50)),
  };
}
