/**
 * Figure 13 — what sealing (compression + encryption of entry bundles and blobs) costs ingest,
 * and how much it saves on disk (issue 6: "npm run bench shows the ingest cost of encryption +
 * compression (target ≤ 15% slower than without) and the stored/raw byte ratio"; "for the
 * CloudTrail samples the stored bytes must be ≤ 25% of the raw input").
 *
 * 1. Ingest: two `custody serve` processes on fresh data directories, run in alternation (off,
 *    on, off, on …): the same writers POST the same CloudTrail-like NDJSON batches to
 *    /v1/logs/local/entries. "off" is the same-run baseline: the server started with
 *    CUSTODY_BENCH_PLAINTEXT_BUNDLES=1, which writes bundles and blobs uncompressed and
 *    unencrypted (crypto/compress.ts; the server warns and records `vault.sealing.disabled` in
 *    its audit log). The sequencer journal is sealed in both. Search is off in both, so the
 *    figure is the ingest path alone. The ratio compares the medians; ≥ 0.85 meets the target.
 * 2. Stored/raw: every CloudTrail sample file from ../shared/samples/cloudtrail goes to a fresh
 *    server through POST /v1/ingest (as `custody import` sends it); once the checkpoints cover
 *    them, every stored record is read back as an auditor (raw = the sum of their bytes), the
 *    server stops, and the bundle and blob files of the region logs are summed as they are on
 *    disk (full and partial bundles). The same with sealing off is the baseline.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import { join, relative } from 'node:path';
import { startServer, type ServerHandle } from './custody.js';
import { offOnIngest, type OffOnFigure } from './offon.js';
import { makeBatch, type BatchTemplate } from './records.js';
import { tempDir, dropTempDir, httpRequest, sleep, median } from './util.js';

export interface StoredBytes {
  records: number;
  logs: number;
  rawBytes: number;
  storedBytes: number;
  files: number;
  /** storedBytes / rawBytes */
  ratio: number;
}

export interface CompressionFigure extends OffOnFigure {
  /** Server CPU microseconds per entry in each run (steadier than throughput on a shared machine). */
  offCpuUs: number[];
  onCpuUs: number[];
  offCpuUsMedian: number;
  onCpuUsMedian: number;
  sealed: StoredBytes;
  plaintext: StoredBytes;
}


const envFor = (sealing: boolean): NodeJS.ProcessEnv => ({ CUSTODY_BENCH_PLAINTEXT_BUNDLES: sealing ? '0' : '1' });

function filesUnder(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.flatMap((n) => (statSync(join(dir, n)).isDirectory() ? filesUnder(join(dir, n)) : [join(dir, n)]));
}

async function json<T>(agent: http.Agent, srv: ServerHandle, path: string, token: string): Promise<T> {
  const r = await httpRequest(agent, srv.port, 'GET', path, { authorization: `Bearer ${token}` });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body.toString().slice(0, 300)}`);
  return JSON.parse(r.body.toString()) as T;
}

/** Ingests every CloudTrail sample file into a fresh server and measures raw vs stored bytes. */
export async function storedBytes(o: { bin: string; samplesDir: string; sealing: boolean }): Promise<StoredBytes> {
  const dir = tempDir('custody-bench-compression-');
  const srv = await startServer({ bin: o.bin, dataDir: join(dir, 'data'), logFile: join(dir, 'server.log'), env: envFor(o.sealing), args: ['--no-search'] });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const root = join(o.samplesDir, 'cloudtrail');
    const sizes = new Map<string, number>();
    for (const f of filesUnder(root)) {
      const name = relative(root, f);
      const r = await httpRequest(agent, srv.port, 'POST', `/v1/ingest?name=${encodeURIComponent(name)}`, { authorization: `Bearer ${srv.writerToken}` }, readFileSync(f));
      if (r.status !== 200) throw new Error(`POST /v1/ingest ${name}: ${r.status} ${r.body.toString().slice(0, 300)}`);
      for (const a of (JSON.parse(r.body.toString()) as { appends: Array<{ log: string; first: number; count: number }> }).appends) {
        sizes.set(a.log, Math.max(sizes.get(a.log) ?? 0, a.first + a.count));
      }
    }
    const until = Date.now() + 30_000;
    for (const [log, size] of sizes) {
      for (;;) {
        const r = await httpRequest(agent, srv.port, 'GET', `/logs/${log}/checkpoint`, { authorization: `Bearer ${srv.auditorToken}` });
        if (r.status === 200 && Number(r.body.toString().split('\n')[1]) >= size) break;
        if (Date.now() > until) throw new Error(`log ${log} did not reach ${size} entries in 30 s`);
        await sleep(50);
      }
    }
    let raw = 0;
    let records = 0;
    for (const [log, size] of sizes) {
      for (let i = 0; i < size; i++) {
        const e = await json<{ record: string; recordEncoding: 'utf8' | 'base64' }>(agent, srv, `/v1/logs/${log}/entries/${i}`, srv.auditorToken);
        raw += Buffer.byteLength(e.record, e.recordEncoding);
        records++;
      }
    }
    agent.destroy();
    await srv.stop();
    let stored = 0;
    let files = 0;
    for (const log of sizes.keys()) {
      for (const sub of [join('tree', 'tile', 'entries'), 'blobs']) {
        for (const f of filesUnder(join(srv.dataDir, 'logs', log, sub))) {
          stored += statSync(f).size;
          files++;
        }
      }
    }
    return { records, logs: sizes.size, rawBytes: raw, storedBytes: stored, files, ratio: stored / raw };
  } finally {
    agent.destroy();
    await srv.stop();
    dropTempDir(dir);
  }
}

export async function compressionFigure(
  o: { bin: string; samplesDir: string | null; writers: number; batch: number; warmupS: number; durationS: number; rounds: number },
  log: (s: string) => void,
): Promise<CompressionFigure | { skipped: string }> {
  if (!o.samplesDir) return { skipped: 'no ../shared/samples/cloudtrail for the stored/raw ratio' };
  const sealed = await storedBytes({ bin: o.bin, samplesDir: o.samplesDir, sealing: true });
  const plaintext = await storedBytes({ bin: o.bin, samplesDir: o.samplesDir, sealing: false });
  log(`sealing: CloudTrail samples, ${sealed.records} records in ${sealed.logs} logs: ${sealed.rawBytes.toLocaleString('en-US')} B raw → ${sealed.storedBytes.toLocaleString('en-US')} B sealed (${(sealed.ratio * 100).toFixed(1)}%); sealing off: ${plaintext.storedBytes.toLocaleString('en-US')} B (${(plaintext.ratio * 100).toFixed(1)}%)`);

  const templates: BatchTemplate[][] = [];
  for (let w = 0; w < o.writers; w++) templates.push(Array.from({ length: 4 }, (_, k) => makeBatch(9000 + w * 4 + k, o.batch)));
  const offCpuUs: number[] = [];
  const onCpuUs: number[] = [];
  const runs = await offOnIngest({
    bin: o.bin,
    rounds: o.rounds,
    load: { writers: o.writers, warmupS: o.warmupS, durationS: o.durationS, templates },
    env: envFor,
    tempPrefix: 'custody-bench-sealing-',
    each: (sealing, r, round) => {
      const cpuUs = (r.serverCpuCores / r.entriesPerSec) * 1e6;
      (sealing ? onCpuUs : offCpuUs).push(cpuUs);
      log(`sealing ${sealing ? 'on ' : 'off'} (round ${round + 1}/${o.rounds}): ${Math.round(r.entriesPerSec).toLocaleString('en-US')} entries/s, server CPU ${cpuUs.toFixed(1)} µs/entry (${r.serverCpuCores.toFixed(2)} cores; other load ${r.otherCpuCores.toFixed(2)} cores)`);
    },
  });
  return { ...runs, offCpuUs, onCpuUs, offCpuUsMedian: median(offCpuUs), onCpuUsMedian: median(onCpuUs), sealed, plaintext };
}
