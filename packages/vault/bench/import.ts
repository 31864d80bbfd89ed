/**
 * `custody import` throughput on CloudTrail as AWS delivers it, with a same-run baseline.
 *
 * Corpus: the real CloudTrail records of ../shared/samples/cloudtrail, replicated until the
 * uncompressed JSON reaches --import-mb MiB. Every copy gets a FRESH eventID (a random UUID,
 * so dedupe keeps all of them) and a region from eight, and the copies are written as
 * delivered log files: `AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<ts>_<id>.json.gz`,
 * one minified `{"Records":[…]}` of ~2.5 MB per file, gzip level 6.
 *
 * Measured: the real CLI (`custody import <folder> --json`) into a real `custody serve` on a
 * fresh data directory, wall time from spawn to exit. Baseline: the least any importer must
 * do with the same files, in this process on one core: read, gunzip, JSON.parse.
 */
import { spawn } from 'node:child_process';
import { randomUUID, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { gzip, gunzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { startServer, type ServerHandle } from './custody.js';
import { tempDir, dropTempDir, onCleanup, killChild, procCpuSeconds, procMemory, sleep, syncDisks, int, fixed } from './util.js';

const gzipAsync = promisify(gzip);

export interface ImportBenchOptions {
  /** MiB of uncompressed CloudTrail JSON to generate. */
  importMb: number;
  /** Files the CLI keeps in flight (its --concurrency). */
  concurrency: number;
  samplesDir: string;
  bin: string;
  serverNodeArgs: string[];
  /** Stop the import (SIGINT) after this many seconds; the figures then cover the files it finished. */
  maxSeconds: number;
  /** Run the server with --cpu-prof and leave the profile in this folder. */
  cpuProf?: string | null;
}

export interface ImportBenchResult {
  files: number;
  records: number;
  gzipBytes: number;
  jsonBytes: number;
  regions: number;
  generateSeconds: number;
  import: {
    /** False when the import was stopped at --import-max-seconds; the figures cover what it finished. */
    complete: boolean;
    files: number;
    gzipBytes: number;
    jsonBytes: number;
    records: number;
    wallSeconds: number;
    /** The CLI's own figure (listing to last answer, without process start-up). */
    cliSeconds: number;
    stored: number;
    duplicates: number;
    rejected: number;
    failedFiles: number;
    gzipMBps: number;
    jsonMBps: number;
    recordsPerSec: number;
    serverCpuCores: number;
    cliCpuCores: number;
    serverPeakRssMB: number;
  };
  baseline: { seconds: number; gzipMBps: number; jsonMBps: number; recordsPerSec: number };
  /** import gzip MB/s ÷ baseline gzip MB/s. */
  ratio: number;
  detail: string;
}

const REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-southeast-2', 'ap-northeast-1', 'sa-east-1', 'ca-central-1'];
const ACCOUNT = '123456789012';
const FILE_TARGET = 2.5e6;

/**
 * The sample CloudTrail records as templates with two holes, the eventID and the region:
 * split on the placeholders, the odd parts name the hole.
 */
function templates(samplesDir: string): string[][] {
  const dir = join(samplesDir, 'cloudtrail');
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(dir);
  const out: string[][] = [];
  for (const f of files) {
    let buf = readFileSync(f);
    if (buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
    let j: unknown;
    try {
      j = JSON.parse(buf.toString('utf8'));
    } catch {
      continue;
    }
    const recs = (j as { Records?: unknown[] }).Records;
    if (!Array.isArray(recs)) continue;
    for (const r of recs) {
      if (typeof r !== 'object' || r === null || typeof (r as { eventID?: unknown }).eventID !== 'string') continue;
      const copy = { ...(r as Record<string, unknown>), eventID: '@@EVENTID@@', awsRegion: '@@REGION@@' };
      out.push(JSON.stringify(copy).split(/"@@(EVENTID|REGION)@@"/));
    }
  }
  if (out.length === 0) throw new Error(`no CloudTrail records under ${dir}`);
  return out;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

interface Corpus {
  files: number;
  records: number;
  gzipBytes: number;
  jsonBytes: number;
  seconds: number;
  /** Per file, by its path relative to the corpus folder (the name `custody import` reports). */
  byName: Map<string, { records: number; jsonBytes: number; gzipBytes: number }>;
}

/** Writes the corpus; returns its size. */
async function generate(o: ImportBenchOptions, root: string, log: (s: string) => void): Promise<Corpus> {
  const byName: Corpus['byName'] = new Map();
  const t0 = performance.now();
  const tpl = templates(o.samplesDir);
  const target = o.importMb * 2 ** 20;
  let jsonBytes = 0;
  let gzipBytes = 0;
  let records = 0;
  let files = 0;
  let k = 0;
  const inFlight = new Set<Promise<void>>();
  const base = Date.UTC(2024, 0, 1);
  while (jsonBytes < target) {
    const region = REGIONS[files % REGIONS.length]!;
    const parts: string[] = [];
    let size = 0;
    while (size < FILE_TARGET && jsonBytes + size < target + 1) {
      const t = tpl[k++ % tpl.length]!;
      let s = '';
      for (let i = 0; i < t.length; i++) s += i % 2 === 0 ? t[i] : t[i] === 'EVENTID' ? `"${randomUUID()}"` : `"${region}"`;
      parts.push(s);
      size += s.length + 1;
    }
    const body = Buffer.from(`{"Records":[${parts.join(',')}]}`, 'utf8');
    records += parts.length;
    jsonBytes += body.length;
    // Five-minute delivery slots spread over days, one file per region per slot.
    const at = new Date(base + Math.floor(files / REGIONS.length) * 5 * 60_000);
    const day = `${at.getUTCFullYear()}/${pad(at.getUTCMonth() + 1)}/${pad(at.getUTCDate())}`;
    const ts = `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}T${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}Z`;
    const id = randomBytes(12).toString('base64url').slice(0, 16);
    const name = `AWSLogs/${ACCOUNT}/CloudTrail/${region}/${day}/${ACCOUNT}_CloudTrail_${region}_${ts}_${id}.json.gz`;
    const path = join(root, ...name.split('/'));
    const entry = { records: parts.length, jsonBytes: body.length, gzipBytes: 0 };
    byName.set(name, entry);
    files++;
    // gzip runs on libuv's pool: a few files at once use every core.
    const p: Promise<void> = gzipAsync(body, { level: 6 }).then((gz) => {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, gz);
      gzipBytes += gz.length;
      entry.gzipBytes = gz.length;
      inFlight.delete(p);
    });
    inFlight.add(p);
    if (inFlight.size >= 4) await Promise.race(inFlight);
    if (files % 50 === 0) log(`  generated ${files} files, ${fixed(jsonBytes / 1e6, 0)} MB of JSON`);
  }
  await Promise.all(inFlight);
  return { files, records, gzipBytes, jsonBytes, seconds: (performance.now() - t0) / 1000, byName };
}

/** Read + gunzip + JSON.parse every file, on this thread. */
function baseline(root: string): { seconds: number; records: number } {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(root);
  const t0 = performance.now();
  let records = 0;
  for (const f of files) {
    const j = JSON.parse(gunzipSync(readFileSync(f)).toString('utf8')) as { Records: unknown[] };
    records += j.Records.length;
  }
  return { seconds: (performance.now() - t0) / 1000, records };
}

interface CliSummary {
  seconds: number;
  interrupted: boolean;
  totals: { files: number; stored: number; duplicates: number; rejected: number; bytes: number };
  failed: { files: number; list: Array<{ name: string; code: string; message: string }> };
}

export async function importBench(o: ImportBenchOptions, log: (s: string) => void): Promise<ImportBenchResult> {
  const dir = tempDir('custody-bench-import-');
  const corpus = join(dir, 'corpus');
  let srv: ServerHandle | null = null;
  try {
    log(`import: generating ${o.importMb} MiB of CloudTrail JSON as delivered .json.gz files (fresh eventIDs, ${REGIONS.length} regions)`);
    const g = await generate(o, corpus, log);
    log(`import: ${g.files} files, ${int(g.records)} records, ${fixed(g.jsonBytes / 1e6, 0)} MB JSON → ${fixed(g.gzipBytes / 1e6, 1)} MB gzip (${fixed(g.jsonBytes / g.gzipBytes, 1)}×) in ${fixed(g.seconds, 1)} s`);
    syncDisks();

    log('import: baseline: read + gunzip + JSON.parse of every file, one core');
    const b = baseline(corpus);
    if (b.records !== g.records) throw new Error(`baseline parsed ${b.records} records, generated ${g.records}`);
    log(`import: baseline ${fixed(g.gzipBytes / 1e6 / b.seconds, 1)} MB/s of gzip, ${int(b.records / b.seconds)} records/s`);

    const nodeArgs = [...o.serverNodeArgs, ...(o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`, '--cpu-prof-name=import-server.cpuprofile'] : [])];
    srv = await startServer({ bin: o.bin, dataDir: join(dir, 'data'), logFile: join(dir, 'server.log'), nodeArgs });
    const server = srv;
    const report = join(dir, 'import-report.ndjson');
    log(`import: custody import ${relative(dir, corpus)} --concurrency ${o.concurrency} into a fresh server (stopped with Ctrl-C after ${o.maxSeconds} s if not done)`);
    const cpuServer0 = procCpuSeconds(server.pid);
    const t0 = performance.now();
    const child = spawn(
      process.execPath,
      [o.bin, 'import', corpus, '--json', '--concurrency', String(o.concurrency), '--state', join(dir, 'import-state.jsonl'), '--report', report, '--url', `http://127.0.0.1:${server.port}`, '--token', server.writerToken],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const kill = onCleanup(`kill custody import ${child.pid}`, () => killChild(child));
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (x: string) => (out += x));
    child.stderr!.setEncoding('utf8').on('data', (x: string) => (err += x));
    // A slow server must not make the whole bench slow: after maxSeconds the CLI gets SIGINT
    // (it finishes the files in flight and prints its summary), and the figures cover the files
    // it finished (from its --report).
    let capped = false;
    const cap = setTimeout(() => {
      capped = true;
      child.kill('SIGINT');
    }, o.maxSeconds * 1000);
    // The CLI's CPU time, sampled while it runs (its /proc entry is gone once it exits).
    let cliCpu = 0;
    let peakRss = 0;
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    let done = false;
    const sampler = (async () => {
      while (!done) {
        try {
          cliCpu = procCpuSeconds(child.pid!);
          peakRss = Math.max(peakRss, procMemory(server.pid).hwm);
        } catch {
          /* exiting */
        }
        await sleep(100);
      }
    })();
    const code = await exited;
    const wall = (performance.now() - t0) / 1000;
    clearTimeout(cap);
    done = true;
    await sampler;
    kill();
    const serverCpu = procCpuSeconds(server.pid) - cpuServer0;
    peakRss = Math.max(peakRss, procMemory(server.pid).hwm);
    let s: CliSummary;
    try {
      s = JSON.parse(out) as CliSummary;
    } catch {
      throw new Error(`custody import exited ${code} without a JSON summary:\n${(err || out).slice(-2000)}`);
    }
    // What was imported, file by file.
    let files = 0;
    let gzipBytes = 0;
    let jsonBytes = 0;
    let records = 0;
    for (const line of readFileSync(report, 'utf8').split('\n')) {
      if (!line) continue;
      const f = JSON.parse(line) as { name: string; bytes: number };
      const m = g.byName.get(f.name);
      if (!m) throw new Error(`custody import reported a file the bench did not write: ${f.name}`);
      files++;
      gzipBytes += f.bytes;
      jsonBytes += m.jsonBytes;
      records += m.records;
    }
    if (s.failed.files > 0) log(`import: ${s.failed.files} files FAILED, e.g. ${JSON.stringify(s.failed.list[0])}`);
    if (s.totals.stored !== records) log(`import: WARNING: ${s.totals.stored} records stored of ${records} in the imported files (${s.totals.duplicates} duplicates, ${s.totals.rejected} refused)`);
    const result: ImportBenchResult = {
      files: g.files,
      records: g.records,
      gzipBytes: g.gzipBytes,
      jsonBytes: g.jsonBytes,
      regions: REGIONS.length,
      generateSeconds: g.seconds,
      import: {
        complete: !capped && files === g.files,
        files,
        gzipBytes,
        jsonBytes,
        records,
        wallSeconds: wall,
        cliSeconds: s.seconds,
        stored: s.totals.stored,
        duplicates: s.totals.duplicates,
        rejected: s.totals.rejected,
        failedFiles: s.failed.files,
        gzipMBps: gzipBytes / 1e6 / wall,
        jsonMBps: jsonBytes / 1e6 / wall,
        recordsPerSec: s.totals.stored / wall,
        serverCpuCores: serverCpu / wall,
        cliCpuCores: cliCpu / wall,
        serverPeakRssMB: peakRss / 2 ** 20,
      },
      baseline: { seconds: b.seconds, gzipMBps: g.gzipBytes / 1e6 / b.seconds, jsonMBps: g.jsonBytes / 1e6 / b.seconds, recordsPerSec: b.records / b.seconds },
      ratio: gzipBytes / 1e6 / wall / (g.gzipBytes / 1e6 / b.seconds),
      detail:
        `exit ${code}; ${files} of ${g.files} files imported${capped ? ` (stopped after ${o.maxSeconds} s: --import-max-seconds)` : ''}, ` +
        `${s.totals.stored} records stored, ${s.totals.duplicates} duplicates, ${s.totals.rejected} refused, ${s.failed.files} files failed`,
    };
    log(`import: ${fixed(result.import.gzipMBps, 1)} MB/s of gzip (${fixed(result.import.jsonMBps, 0)} MB/s of JSON, ${int(result.import.recordsPerSec)} records/s) in ${fixed(wall, 1)} s${capped ? `, stopped after ${files} of ${g.files} files` : ''}; CPU server ${fixed(result.import.serverCpuCores, 2)} / CLI ${fixed(result.import.cliCpuCores, 2)} cores`);
    return result;
  } finally {
    if (srv) await srv.stop();
    dropTempDir(dir);
    syncDisks();
  }
}
