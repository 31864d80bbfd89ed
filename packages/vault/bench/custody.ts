/**
 * The Custody side of the benchmark: a real `custody serve` child process, concurrent
 * keep-alive writers, a checkpoint poller for ack → checkpoint latency, and the two verifiers
 * (`custody verify --full` and Go's reference `tlogcheck -full`) over HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import { join, dirname } from 'node:path';
import type { BatchTemplate } from './records.js';
import { stampBatch } from './records.js';
import { onCleanup, killChild, waitExit, freePort, httpRequest, sleep, procCpuSeconds, procMemory, percentile, run, fileExists, cpuSnapshot, busyCores, type CpuSnapshot } from './util.js';

export interface ServerHandle {
  child: ChildProcess;
  pid: number;
  port: number;
  dataDir: string;
  logFile: string;
  writerToken: string;
  auditorToken: string;
  verifierKey: string;
  /** SIGTERM (the server integrates what is pending, then exits); SIGKILL after the timeout. */
  stop(timeoutMs?: number): Promise<void>;
}

function tail(path: string, n = 25): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Starts `custody serve` on a free port; resolves once it prints "Custody is listening". */
export async function startServer(o: { bin: string; dataDir: string; logFile: string; nodeArgs?: string[]; env?: NodeJS.ProcessEnv; /** More `custody serve` options, e.g. --syslog-port. */ args?: string[] }): Promise<ServerHandle> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const fd = openSync(o.logFile, 'a');
    const child = spawn(process.execPath, [...(o.nodeArgs ?? []), o.bin, 'serve', '--data', o.dataDir, '--port', String(port), '--host', '127.0.0.1', ...(o.args ?? [])], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...(o.env ?? {}) },
    });
    closeSync(fd);
    const kill = onCleanup(`kill custody server ${child.pid}`, () => killChild(child));
    const started = Date.now();
    let ready = false;
    while (Date.now() - started < 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      if (existsSync(o.logFile) && readFileSync(o.logFile, 'utf8').includes(`Custody is listening on http://127.0.0.1:${port}`)) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    if (!ready) {
      kill();
      const log = tail(o.logFile);
      if (attempt < 3 && log.includes('already in use')) continue;
      throw new Error(`custody serve did not start (exit ${child.exitCode ?? child.signalCode ?? 'timeout'}):\n${log}`);
    }
    const tokens = readFileSync(join(o.dataDir, 'initial-tokens.txt'), 'utf8');
    const token = (role: string): string => {
      const m = new RegExp(`^${role}_TOKEN=(\\S+)$`, 'm').exec(tokens);
      if (!m) throw new Error(`no ${role} token in initial-tokens.txt`);
      return m[1]!;
    };
    const auditorToken = token('AUDITOR');
    const agent = new http.Agent({ keepAlive: false });
    const logs = await httpRequest(agent, port, 'GET', '/v1/logs', { authorization: `Bearer ${auditorToken}` });
    if (logs.status !== 200) throw new Error(`GET /v1/logs: ${logs.status} ${logs.body.toString().slice(0, 300)}`);
    const local = (JSON.parse(logs.body.toString()) as { logs: Array<{ name: string; verifierKey: string }> }).logs.find((l) => l.name === 'local');
    if (!local) throw new Error('the vault has no "local" log');
    const pid = child.pid!;
    return {
      child,
      pid,
      port,
      dataDir: o.dataDir,
      logFile: o.logFile,
      writerToken: token('WRITER'),
      auditorToken,
      verifierKey: local.verifierKey,
      async stop(timeoutMs = 60_000) {
        killChild(child, 'SIGTERM');
        if (!(await waitExit(child, timeoutMs))) killChild(child, 'SIGKILL');
        await waitExit(child, 5_000);
        kill();
      },
    };
  }
}

export interface IngestOptions {
  writers: number;
  warmupS: number;
  durationS: number;
  maxEntries: number;
  pollMs: number;
  /** Offered load cap in entries/s across all writers (0: as fast as the server answers). */
  rate: number;
  /** Each writer's own batch bodies (stamped in place, so never shared). */
  templates: BatchTemplate[][];
  /** Where batches go (default /v1/logs/local/entries) and the log whose checkpoint covers them (default local). */
  path?: string;
  log?: string;
}

export interface LatencyStats {
  samples: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface IngestResult {
  entries: number;
  batches: number;
  bytes: number;
  seconds: number;
  entriesPerSec: number;
  mbPerSec: number;
  totalEntries: number;
  pushbacks: number;
  errors: number;
  ackMs: LatencyStats;
  checkpointMs: LatencyStats;
  checkpointPolls: number;
  catchUpSeconds: number;
  serverCpuCores: number;
  clientCpuCores: number;
  /** Cores busy on the whole machine during the window, and what neither server nor bench used. */
  machineCpuCores: number;
  otherCpuCores: number;
  /** Most entries the server held durable-but-not-yet-in-a-checkpoint (GET /v1/logs "pending"), and its RSS then. */
  peakPending: number;
  rssAtPeakPendingMB: number;
  rssAtStartMB: number;
  /** Entries acknowledged but not yet in a checkpoint when the writers stopped, and how fast the integrator then caught up (with no ingest competing for the event loop). */
  backlogAtStop: number;
  catchUpEntriesPerSec: number;
}

function stats(xs: number[]): LatencyStats {
  const s = [...xs].sort((a, b) => a - b);
  return { samples: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s.length ? s[s.length - 1]! : NaN };
}

/**
 * Writers POST pre-built NDJSON batches for warm-up + duration seconds. Throughput counts
 * the batches acknowledged inside the measured window (after the warm-up) over the window's
 * length. A poller reads the published checkpoint every `pollMs` to time, for every batch
 * acknowledged in the window, how long after its 200 a checkpoint covered its last index.
 */
export async function ingest(srv: ServerHandle, o: IngestOptions, progress: (s: string) => void): Promise<IngestResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.writers, keepAliveMsecs: 10_000 });
  const pollAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const headers = { authorization: `Bearer ${srv.writerToken}`, 'content-type': 'application/x-ndjson' };
  const auditorHeaders = { authorization: `Bearer ${srv.auditorToken}` };
  const path = o.path ?? '/v1/logs/local/entries';
  const logName = o.log ?? 'local';

  const t0 = performance.now();
  const tMeasure = t0 + o.warmupS * 1000;
  let tEnd = tMeasure + o.durationS * 1000;
  let stopping = false;
  let totalEntries = 0;
  let entries = 0;
  let batches = 0;
  let bytes = 0;
  let pushbacks = 0;
  let errors = 0;
  let lastError = '';
  const ackMs: number[] = [];
  const cpMs: number[] = [];
  /** Batches acknowledged in the window whose last index no checkpoint has covered yet. */
  let pending: Array<{ need: number; at: number }> = [];
  let published = 0;
  let polls = 0;
  let pollErrors = 0;
  let pollerDead = false;
  let pollerDone = false;

  let cpu0: { server: number; client: NodeJS.CpuUsage; machine: CpuSnapshot } = { server: 0, client: process.cpuUsage(), machine: cpuSnapshot() };
  let machineCpu = NaN;
  let cpuMeasured = false;
  let serverCpu = NaN;
  let clientCpu = NaN;
  const startCpu = (): void => {
    cpu0 = { server: procCpuSeconds(srv.pid), client: process.cpuUsage(), machine: cpuSnapshot() };
    cpuMeasured = true;
  };
  const endCpu = (): void => {
    if (!cpuMeasured || Number.isFinite(serverCpu)) return;
    const secs = (performance.now() - tMeasure) / 1000;
    serverCpu = (procCpuSeconds(srv.pid) - cpu0.server) / secs;
    const c = process.cpuUsage(cpu0.client);
    clientCpu = (c.user + c.system) / 1e6 / secs;
    machineCpu = busyCores(cpu0.machine, cpuSnapshot());
  };

  const poller: Promise<unknown> = (async () => {
    while (!pollerDone) {
      let r;
      try {
        r = await httpRequest(pollAgent, srv.port, 'GET', `/logs/${logName}/checkpoint`, auditorHeaders, undefined, 30_000);
      } catch (e) {
        pollErrors++;
        if (pollErrors > 50) throw e;
        await sleep(o.pollMs);
        continue;
      }
      const at = performance.now();
      polls++;
      if (r.status === 200) {
        const text = r.body.toString('utf8');
        const nl = text.indexOf('\n');
        const size = Number(text.slice(nl + 1, text.indexOf('\n', nl + 1)));
        if (size > published) {
          published = size;
          if (pending.length > 0) {
            const still: typeof pending = [];
            for (const p of pending) {
              if (p.need <= size) cpMs.push(at - p.at);
              else still.push(p);
            }
            pending = still;
          }
        }
      }
      await sleep(o.pollMs);
    }
  })().catch((e: unknown) => {
    pollerDead = true;
    return e;
  });

  let scheduled = 0; // entries handed to writers so far (for --rate pacing)
  const writer = async (w: number): Promise<void> => {
    const mine = o.templates[w]!;
    let seq = 0;
    let k = 0;
    while (!stopping) {
      const t = mine[k++ % mine.length]!;
      if (o.rate > 0) {
        const due = t0 + (scheduled / o.rate) * 1000;
        scheduled += t.idOffsets.length;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        if (stopping) break;
      }
      seq = stampBatch(t, w, seq);
      const sent = performance.now();
      let res;
      try {
        res = await httpRequest(agent, srv.port, 'POST', path, headers, t.body);
      } catch (e) {
        errors++;
        lastError = (e as Error).message;
        if (errors > 50) throw new Error(`too many failed requests; last: ${lastError}`);
        continue;
      }
      const at = performance.now();
      if (res.status === 200) {
        const text = res.body.toString('latin1', 0, Math.min(res.body.length, 200));
        const first = Number(/"first":(\d+)/.exec(text)?.[1]);
        const count = Number(/"count":(\d+)/.exec(text)?.[1]);
        if (!Number.isFinite(first) || count !== t.idOffsets.length) throw new Error(`unexpected answer: ${text}`);
        totalEntries += count;
        if (at > tMeasure && at <= tEnd) {
          entries += count;
          batches++;
          bytes += t.body.length;
          ackMs.push(at - sent);
          pending.push({ need: first + count, at });
        }
        if (o.maxEntries > 0 && totalEntries >= o.maxEntries && !stopping) {
          stopping = true;
          tEnd = Math.min(tEnd, at);
        }
      } else if (res.status === 503 || res.status === 429) {
        pushbacks++;
        const retry = Number(/"retryAfter":(\d+)/.exec(res.body.toString('utf8'))?.[1] ?? 1);
        await sleep(Math.max(50, retry * 1000));
      } else {
        errors++;
        lastError = `${res.status} ${res.body.toString('utf8').slice(0, 300)}`;
        if (errors > 50) throw new Error(`too many refused requests; last: ${lastError}`);
      }
      if (at >= tEnd) stopping = true;
    }
  };

  const cpuStart = setTimeout(startCpu, Math.max(0, tMeasure - performance.now()));
  const cpuEnd = setTimeout(endCpu, Math.max(0, tEnd - performance.now()));
  const rssAtStart = procMemory(srv.pid).rss / 2 ** 20;
  let peakPending = 0;
  let rssAtPeak = NaN;
  let sampling = true;
  const sampler = (async () => {
    const a = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (sampling) {
      try {
        const res = await httpRequest(a, srv.port, 'GET', '/v1/logs', auditorHeaders, undefined, 30_000);
        const local = (JSON.parse(res.body.toString('utf8')) as { logs: Array<{ name: string; pending: number }> }).logs.find((l) => l.name === logName);
        if (local && local.pending > peakPending) {
          peakPending = local.pending;
          rssAtPeak = procMemory(srv.pid).rss / 2 ** 20;
        }
      } catch {
        /* a sample lost is fine */
      }
      await sleep(250);
    }
    a.destroy();
  })();
  const ticker = setInterval(() => {
    const now = performance.now();
    progress(`  ${((now - t0) / 1000).toFixed(0)} s: ${totalEntries.toLocaleString('en-US')} entries acknowledged, checkpoint at ${published.toLocaleString('en-US')}`);
  }, 2000);
  try {
    await Promise.all(Array.from({ length: o.writers }, (_, w) => writer(w)));
  } finally {
    clearInterval(ticker);
    clearTimeout(cpuStart);
    clearTimeout(cpuEnd);
  }
  if (!cpuMeasured) startCpu();
  endCpu();

  // Let the poller see every acknowledged entry covered by a checkpoint.
  const backlogAtStop = totalEntries - published;
  const caughtUpStart = performance.now();
  while (published < totalEntries && !pollerDead && performance.now() - caughtUpStart < 120_000) await sleep(20);
  const catchUpSeconds = (performance.now() - caughtUpStart) / 1000;
  pollerDone = true;
  sampling = false;
  await sampler;
  const pollFailure = await poller;
  if (pollFailure instanceof Error) throw new Error(`the checkpoint poller failed: ${pollFailure.message}`);
  agent.destroy();
  pollAgent.destroy();
  if (published < totalEntries) throw new Error(`after 120 s the checkpoint covers ${published} of ${totalEntries} acknowledged entries`);

  const seconds = (tEnd - tMeasure) / 1000;
  return {
    entries,
    batches,
    bytes,
    seconds,
    entriesPerSec: entries / seconds,
    mbPerSec: bytes / 1e6 / seconds,
    totalEntries,
    pushbacks,
    errors,
    ackMs: stats(ackMs),
    checkpointMs: stats(cpMs),
    checkpointPolls: polls,
    catchUpSeconds,
    serverCpuCores: serverCpu,
    clientCpuCores: clientCpu,
    machineCpuCores: machineCpu,
    otherCpuCores: Math.max(0, machineCpu - serverCpu - clientCpu),
    peakPending,
    rssAtPeakPendingMB: rssAtPeak,
    rssAtStartMB: rssAtStart,
    backlogAtStop,
    catchUpEntriesPerSec: backlogAtStop / catchUpSeconds,
  };
}

export interface VerifyRun {
  tool: string;
  ok: boolean;
  entries: number;
  wallSeconds: number;
  entriesPerSec: number;
  detail: string;
}

/** `custody verify --full --json` over HTTP, timed from spawn to exit. */
export async function custodyVerify(bin: string, srv: ServerHandle, trustFile: string): Promise<VerifyRun> {
  const r = await run(process.execPath, [bin, 'verify', '--url', `http://127.0.0.1:${srv.port}`, '--token', srv.auditorToken, '--log', 'local', '--full', '--json', '--trust-file', trustFile], { timeoutMs: 600_000 });
  let ok = false;
  let entries = 0;
  let detail = '';
  try {
    const j = JSON.parse(r.stdout) as { ok: boolean; logs: Array<{ entriesChecked: number; tilesChecked: number; seconds: number; size: number; problems: unknown[] }> };
    const l = j.logs[0]!;
    ok = j.ok && r.code === 0;
    entries = l.entriesChecked;
    detail = `size ${l.size}, ${l.entriesChecked} entries and ${l.tilesChecked} tiles recomputed, ${l.seconds} s inside the verifier${l.problems.length ? `, problems: ${JSON.stringify(l.problems).slice(0, 300)}` : ''}`;
  } catch {
    detail = `exit ${r.code}: ${(r.stderr || r.stdout).slice(-500)}`;
  }
  return { tool: 'custody verify --full', ok, entries, wallSeconds: r.seconds, entriesPerSec: entries / r.seconds, detail };
}

/** Finds (or builds) Go's reference verifier. */
export async function goTlogcheck(repoRoot: string, progress: (s: string) => void): Promise<string | null> {
  const dir = process.env.CUSTODY_GO_TOOLS ?? '/tmp/custody-go-tools';
  const bin = join(dir, 'tlogcheck');
  if (fileExists(bin)) return bin;
  const script = [join(repoRoot, '..', 'shared', 'tools', 'tlogcheck', 'build.sh'), '/work/shared/tools/tlogcheck/build.sh'].find((p) => existsSync(p));
  if (!script) return null;
  progress(`building Go's tlogcheck into ${bin} (${script})`);
  mkdirSync(dirname(bin), { recursive: true });
  const r = await run('bash', [script, bin], { timeoutMs: 600_000 });
  if (r.code !== 0 || !existsSync(bin)) {
    progress(`could not build tlogcheck: ${(r.stderr || r.stdout).slice(-500)}`);
    return null;
  }
  return bin;
}

/** Go's `tlogcheck -full` over HTTP, timed from spawn to exit. */
export async function goVerify(tlogcheck: string, srv: ServerHandle): Promise<VerifyRun> {
  const r = await run(tlogcheck, ['-base', `http://127.0.0.1:${srv.port}/logs/local`, '-token', srv.auditorToken, '-vkey', srv.verifierKey, '-full'], { timeoutMs: 600_000 });
  const m = /^OK .*entries-recomputed=(\d+)/m.exec(r.stdout);
  const entries = m ? Number(m[1]) : 0;
  return {
    tool: 'tlogcheck -full (Go reference)',
    ok: r.code === 0 && !!m,
    entries,
    wallSeconds: r.seconds,
    entriesPerSec: entries / r.seconds,
    detail: (r.code === 0 ? r.stdout : r.stderr || r.stdout).trim().slice(-400),
  };
}
