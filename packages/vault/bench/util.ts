/** Small helpers for the benchmark: cleanup, processes, HTTP, statistics, formatting. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, existsSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import http from 'node:http';
import { tmpdir, cpus, totalmem, release } from 'node:os';
import { join } from 'node:path';

// ---- cleanup -----------------------------------------------------------------------------

type Cleanup = { name: string; run: () => void };
const cleanups: Cleanup[] = [];

/** Registers a synchronous cleanup step; returns a function that runs it now (once). */
export function onCleanup(name: string, run: () => void): () => void {
  const c: Cleanup = { name, run };
  cleanups.push(c);
  return () => {
    const i = cleanups.indexOf(c);
    if (i < 0) return;
    cleanups.splice(i, 1);
    run();
  };
}

/** Runs every pending cleanup, newest first. Safe to call from an exit handler. */
export function runCleanups(): void {
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    try {
      c.run();
    } catch (e) {
      process.stderr.write(`[bench] cleanup "${c.name}" failed: ${(e as Error).message}\n`);
    }
  }
}

let handlersInstalled = false;
export function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', runCleanups);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`[bench] ${sig}: cleaning up\n`);
      runCleanups();
      process.exit(130);
    });
  }
}

const dirCleanups = new Map<string, () => void>();

/** A new temp dir, removed at exit (or earlier with dropTempDir). */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirCleanups.set(d, onCleanup(`remove ${d}`, () => rmSync(d, { recursive: true, force: true })));
  return d;
}

export function dropTempDir(d: string): void {
  dirCleanups.get(d)?.();
  dirCleanups.delete(d);
}

/** Kills a child process we started (by its pid) and waits briefly for it. */
export function killChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    /* already gone */
  }
}

export function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

// ---- processes ---------------------------------------------------------------------------

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to completion (killed after timeoutMs), timing it from spawn to exit. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
    const kill = onCleanup(`kill ${cmd}`, () => killChild(child));
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => killChild(child), opts.timeoutMs ?? 300_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      kill();
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      kill();
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), seconds: (performance.now() - t0) / 1000 });
    });
  });
}

export function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: opts.env ?? process.env });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r.stdout;
}

/** Flushes dirty pages so one phase's writeback does not slow the next phase's fsyncs. */
export function syncDisks(): void {
  spawnSync('sync', [], { stdio: 'ignore' });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc. */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // after "pid (comm) ": state is fields[0]; utime is field 14 → index 11, stime 15 → index 12
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / clockTicks();
}

let ticksCache = 0;
export function clockTicks(): number {
  if (ticksCache === 0) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    ticksCache = Number(r.stdout.trim()) || 100;
  }
  return ticksCache;
}

/** Machine-wide CPU ticks from /proc/stat: busy (user, nice, system, irq, softirq, steal) and when. */
export interface CpuSnapshot {
  busyTicks: number;
  at: number;
}
export function cpuSnapshot(): CpuSnapshot {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busyTicks: user + nice + system + irq + softirq + steal, at: performance.now() };
}
/** Cores the whole machine kept busy between two snapshots. */
export function busyCores(a: CpuSnapshot, b: CpuSnapshot): number {
  return (b.busyTicks - a.busyTicks) / clockTicks() / ((b.at - a.at) / 1000);
}

/** Samples how busy the machine is before a run, so a reader knows when others were using it. */
export async function backgroundLoad(ms = 1000): Promise<number> {
  const a = cpuSnapshot();
  await sleep(ms);
  return busyCores(a, cpuSnapshot());
}

/** VmHWM and VmRSS of a process in bytes. */
export function procMemory(pid: number): { hwm: number; rss: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

// ---- HTTP --------------------------------------------------------------------------------

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

export function httpRequest(
  agent: http.Agent,
  port: number,
  method: string,
  path: string,
  headers: http.OutgoingHttpHeaders,
  body?: Buffer,
  timeoutMs = 120_000,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: body ? { ...headers, 'content-length': body.length } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- statistics and formatting -------------------------------------------------------------

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function int(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}

export function fixed(n: number, d = 1): string {
  return Number.isFinite(n) ? n.toFixed(d) : 'n/a';
}

export function describeMachine(): { cpu: string; cores: number; memoryGiB: number; node: string; kernel: string; disk: string } {
  const c = cpus();
  let disk = 'unknown';
  try {
    const df = spawnSync('df', ['--output=source,fstype', tmpdir()], { encoding: 'utf8' }).stdout.trim().split('\n')[1];
    if (df) disk = df.trim().replace(/\s+/g, ' ');
  } catch {
    /* not important */
  }
  return {
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
    disk: `${disk} (temp dir ${tmpdir()})`,
  };
}

export function fileExists(p: string): boolean {
  return existsSync(p);
}
