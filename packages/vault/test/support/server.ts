/**
 * Integration-test support: real `custody serve` processes on temporary data directories,
 * the `custody` CLI as a subprocess, small HTTP helpers and Go's reference tools.
 *
 * Every process started here is tracked: tests stop it in t.after()/after(), and as a last
 * resort every live server is SIGKILLed and every temporary directory removed when the test
 * process exits (also on SIGINT/SIGTERM), so a failing test never leaves a server behind.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---- locations ----------------------------------------------------------------------------

/** The workspace root: the nearest ancestor of this file whose package.json has "workspaces". */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      const json = JSON.parse(readFileSync(pj, 'utf8')) as { workspaces?: unknown };
      if (json.workspaces !== undefined) return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`test support: no workspace root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const ROOT = repoRoot();
export const CUSTODY_BIN = join(ROOT, 'packages', 'vault', 'bin', 'custody.js');

// ---- cleanup registry ---------------------------------------------------------------------

const liveProcs = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function emergencyCleanup(): void {
  for (const p of liveProcs) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  liveProcs.clear();
  for (const d of tempDirs) {
    try {
      rmSync(d, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    } catch {
      /* best effort */
    }
  }
  tempDirs.clear();
}
process.on('exit', emergencyCleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    emergencyCleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

/** A new empty directory under os.tmpdir(), removed by cleanup() or when the process exits. */
export function makeTempDir(label = 'tmp'): string {
  const d = mkdtempSync(join(tmpdir(), `custody-test-${label}-`));
  tempDirs.add(d);
  return d;
}

/** Registers an existing path for removal at cleanup. */
export function removeLater(path: string): void {
  tempDirs.add(path);
}

/** Kills every server still running (SIGKILL) and removes every temporary directory. */
export async function cleanup(): Promise<void> {
  const waits: Array<Promise<unknown>> = [];
  for (const p of liveProcs) {
    if (p.exitCode === null && p.signalCode === null) {
      waits.push(new Promise((r) => p.once('exit', r)));
      p.kill('SIGKILL');
    }
  }
  await Promise.all(waits);
  liveProcs.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

// ---- small utilities ----------------------------------------------------------------------

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A port that was free a moment ago (listen on port 0, read it, close). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      if (a === null || typeof a === 'string') {
        s.close();
        reject(new Error('freePort: no address'));
        return;
      }
      const port = a.port;
      s.close(() => resolvePort(port));
    });
  });
}

/** Polls `fn` until it returns a value other than undefined/false, or throws after timeoutMs. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}

function waitExit(p: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve({ code: p.exitCode, signal: p.signalCode });
  return new Promise((r) => p.once('exit', (code, signal) => r({ code, signal })));
}

/** Keeps the last `max` characters of a stream, so a chatty child never blocks on a full pipe. */
class Tail {
  text = '';
  constructor(private readonly max = 256 * 1024) {}
  push(s: string): void {
    this.text += s;
    if (this.text.length > this.max) this.text = this.text.slice(this.text.length - this.max);
  }
}

// ---- the server ---------------------------------------------------------------------------

export interface Tokens {
  admin: string;
  writer: string;
  auditor: string;
}

export interface StartOptions {
  /** Data directory; a new temporary one (removed at cleanup) when absent. */
  dataDir?: string;
  checkpointIntervalMs?: number;
  /** Port to listen on; a free one when absent. */
  port?: number;
  logLevel?: string;
  /** How long to wait for "Custody is listening on". */
  readyTimeoutMs?: number;
}

/** Thrown when the server process ends before it is ready. */
export class ServerExitedError extends Error {
  constructor(
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`custody serve exited before it was ready (code ${code}, signal ${signal}).\n--- stdout ---\n${stdout.slice(-4000)}\n--- stderr ---\n${stderr.slice(-4000)}`);
    this.name = 'ServerExitedError';
  }
}

export function readTokens(dataDir: string): Tokens {
  const text = readFileSync(join(dataDir, 'initial-tokens.txt'), 'utf8');
  const get = (k: string): string => {
    const m = new RegExp(`^${k}_TOKEN=(\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`no ${k}_TOKEN in ${join(dataDir, 'initial-tokens.txt')}`);
    return m[1]!;
  };
  return { admin: get('ADMIN'), writer: get('WRITER'), auditor: get('AUDITOR') };
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ServerHandle {
  url = '';
  port = 0;
  proc!: ChildProcess;
  tokens!: Tokens;
  /** Output of the current process (bounded tails). */
  stdout = new Tail();
  stderr = new Tail();
  /** How the previous process ended (set by stop/kill). */
  lastExit: ExitInfo | null = null;

  constructor(
    readonly dataDir: string,
    private opts: StartOptions,
  ) {}

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts a process on this handle's data dir (retrying on another port if the port was taken). */
  async launch(preferredPort?: number): Promise<void> {
    let port = preferredPort ?? this.opts.port ?? (await freePort());
    for (let attempt = 0; ; attempt++) {
      try {
        await this.spawnOnce(port);
        return;
      } catch (e) {
        const inUse = e instanceof ServerExitedError && /already in use|EADDRINUSE/.test(e.stdout + e.stderr);
        if (!inUse || attempt >= 4) throw e;
        port = await freePort();
      }
    }
  }

  private spawnOnce(port: number): Promise<void> {
    const args = [CUSTODY_BIN, 'serve', '--data', this.dataDir, '--port', String(port), '--host', '127.0.0.1'];
    if (this.opts.checkpointIntervalMs !== undefined) args.push('--checkpoint-interval', String(this.opts.checkpointIntervalMs));
    const env: NodeJS.ProcessEnv = { ...process.env, CUSTODY_LOG_LEVEL: this.opts.logLevel ?? process.env.CUSTODY_LOG_LEVEL ?? 'info' };
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    liveProcs.add(proc);
    proc.once('exit', () => liveProcs.delete(proc));
    // A running server never keeps the test process alive: if a test forgets to stop it, the
    // process still ends, and the 'exit' hook above kills the server. (Waiting on it below
    // always holds a timer, which does keep the process alive for that long.)
    proc.unref();
    (proc.stdout as unknown as { unref(): void }).unref();
    (proc.stderr as unknown as { unref(): void }).unref();
    this.proc = proc;
    this.stdout = new Tail();
    this.stderr = new Tail();
    proc.stdout!.setEncoding('utf8');
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (s: string) => this.stderr.push(s));
    const timeoutMs = this.opts.readyTimeoutMs ?? 30_000;
    return new Promise<void>((resolveReady, reject) => {
      let done = false;
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolveReady();
      };
      proc.stdout!.on('data', (s: string) => {
        this.stdout.push(s);
        if (!done && this.stdout.text.includes('Custody is listening on')) {
          this.port = port;
          this.url = `http://127.0.0.1:${port}`;
          try {
            this.tokens = readTokens(this.dataDir);
            finish();
          } catch (e) {
            finish(e as Error);
          }
        }
      });
      proc.once('error', (e) => finish(e));
      proc.once('exit', (code, signal) => {
        // let the pipes drain so the error text is complete
        setImmediate(() => finish(new ServerExitedError(code, signal, this.stdout.text, this.stderr.text)));
      });
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        finish(new Error(`custody serve was not ready after ${timeoutMs} ms.\n--- stdout ---\n${this.stdout.text.slice(-4000)}\n--- stderr ---\n${this.stderr.text.slice(-4000)}`));
      }, timeoutMs);
    });
  }

  /** SIGTERM (clean shutdown), then waits for the exit. SIGKILLs after timeoutMs and throws. */
  async stop(timeoutMs = 60_000): Promise<ExitInfo> {
    if (!this.running) return { code: this.proc?.exitCode ?? null, signal: this.proc?.signalCode ?? null };
    const exited = waitExit(this.proc);
    this.proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const r = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.proc.kill('SIGKILL');
      this.lastExit = await exited;
      throw new Error(`custody serve did not stop within ${timeoutMs} ms of SIGTERM.\n--- stderr ---\n${this.stderr.text.slice(-4000)}`);
    }
    this.lastExit = r;
    return r;
  }

  /** SIGKILL (a crash), then waits for the exit. */
  async kill(): Promise<ExitInfo> {
    if (!this.running) return { code: this.proc?.exitCode ?? null, signal: this.proc?.signalCode ?? null };
    const exited = waitExit(this.proc);
    this.proc.kill('SIGKILL');
    const hold = setTimeout(() => undefined, 30_000); // keeps the event loop alive until the exit arrives
    try {
      this.lastExit = await exited;
    } finally {
      clearTimeout(hold);
    }
    return this.lastExit;
  }

  /**
   * Starts a process on this data directory and SIGKILLs it `afterMs` later, ready or not: a
   * crash during startup/recovery. Resolves once it is gone; `wasReady` says whether it had
   * started listening.
   */
  async startAndKill(afterMs: number): Promise<{ wasReady: boolean; exit: ExitInfo }> {
    if (this.running) throw new Error('startAndKill: a server is already running on this handle');
    let ready = false;
    const launching = this.launch(this.port || undefined).then(
      () => void (ready = true),
      (e: unknown) => {
        if (!(e instanceof ServerExitedError) || e.signal !== 'SIGKILL') throw e;
      },
    );
    await sleep(afterMs);
    const exit = await this.kill();
    await launching;
    return { wasReady: ready, exit };
  }

  /**
   * A new process on the same data directory (stops the current one cleanly if it still runs),
   * on the same port when it is free. `changes` override start options (e.g. the interval).
   */
  async restart(changes: Omit<StartOptions, 'dataDir'> = {}): Promise<ServerHandle> {
    if (this.running) await this.stop();
    this.opts = { ...this.opts, ...changes };
    await this.launch(changes.port ?? (this.port || undefined));
    return this;
  }
}

/** Starts `custody serve` and resolves once it prints "Custody is listening on". */
export async function startServer(opts: StartOptions = {}): Promise<ServerHandle> {
  const dataDir = opts.dataDir ?? join(makeTempDir('data'), 'vault');
  const h = new ServerHandle(dataDir, opts);
  await h.launch();
  return h;
}

// ---- the CLI ------------------------------------------------------------------------------

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let cliHome: string | null = null;

/**
 * Runs `node bin/custody.js ...args`. The trust file defaults to a temporary path (never the
 * user's ~/.config): CUSTODY_TRUST_FILE and XDG_CONFIG_HOME point into a temp dir unless `env`
 * sets them.
 */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 180_000): Promise<RunResult> {
  cliHome ??= makeTempDir('cli-home');
  const fullEnv: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_CONFIG_HOME: join(cliHome, 'config'),
    CUSTODY_TRUST_FILE: join(cliHome, 'default-trust.json'),
    ...env,
  };
  return runProcess(process.execPath, [CUSTODY_BIN, ...args], fullEnv, timeoutMs);
}

/** Runs a program to completion, collecting its output. */
export function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 180_000): Promise<RunResult> {
  return new Promise((resolveRun, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    liveProcs.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    p.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms.\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    p.once('error', (e) => {
      clearTimeout(timer);
      liveProcs.delete(p);
      reject(e);
    });
    p.once('close', (code, signal) => {
      clearTimeout(timer);
      liveProcs.delete(p);
      resolveRun({ code, signal, stdout, stderr });
    });
  });
}

// ---- `custody verify --json` ----------------------------------------------------------------

import type { Problem as VerifyProblem, VerifyReport as VerifyLogReport } from '../../src/cli/verifier.js';
export type { VerifyProblem, VerifyLogReport };

/** Small deterministic PRNG (mulberry32), so a test's corpus and timings repeat from a seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
export interface VerifyJson {
  ok: boolean;
  source: string;
  trustFile: string;
  logs: VerifyLogReport[];
}

/** `custody verify ... --json`, parsed; throws with the output when it is not JSON. */
export async function verifyJson(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; json: VerifyJson; run: RunResult }> {
  const run = await runCli(['verify', '--json', ...args], env);
  let json: VerifyJson;
  try {
    json = JSON.parse(run.stdout) as VerifyJson;
  } catch {
    throw new Error(`custody verify ${args.join(' ')} printed no JSON (exit ${run.code}).\nstdout: ${run.stdout.slice(-3000)}\nstderr: ${run.stderr.slice(-3000)}`);
  }
  return { code: run.code, json, run };
}

// ---- HTTP helpers -------------------------------------------------------------------------

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${status} ${body.slice(0, 500)}`);
    this.name = 'HttpError';
  }
}

export interface AppendAnswer {
  log: string;
  count: number;
  first: number;
  indices: number[];
  received: string;
  durable: boolean;
  checkpoint?: string;
  receipts?: Array<{ index: number; leafHash: string; salt: string; inclusionProof: string[] }>;
}

/** POSTs NDJSON lines to /v1/logs/<log>/entries (default log "local"); throws HttpError unless 200. */
export async function appendNdjson(url: string, token: string, lines: string[], query?: Record<string, string> | string, log = 'local'): Promise<AppendAnswer> {
  const q = query === undefined ? '' : typeof query === 'string' ? (query.startsWith('?') ? query : `?${query}`) : `?${new URLSearchParams(query)}`;
  const res = await fetch(`${url}/v1/logs/${encodeURIComponent(log)}/entries${q}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' },
    body: lines.join('\n') + '\n',
  });
  const text = await res.text();
  if (res.status !== 200) throw new HttpError(res.status, text, `append of ${lines.length} lines`);
  return JSON.parse(text) as AppendAnswer;
}

async function getWithRetry(url: string, token: string, path: string, retries = 3): Promise<Response> {
  for (let i = 0; ; i++) {
    try {
      return await fetch(url + path, { headers: { authorization: `Bearer ${token}` } });
    } catch (e) {
      // a pooled keep-alive connection to a process that was just killed: try once more
      if (i >= retries) throw e;
      await sleep(50);
    }
  }
}

export async function getBytes(url: string, token: string, path: string): Promise<Buffer> {
  const res = await getWithRetry(url, token, path);
  const b = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new HttpError(res.status, b.toString('utf8'), `GET ${path}`);
  return b;
}

export async function getText(url: string, token: string, path: string): Promise<string> {
  return (await getBytes(url, token, path)).toString('utf8');
}

export async function getJson<T>(url: string, token: string, path: string): Promise<T> {
  return JSON.parse(await getText(url, token, path)) as T;
}

export interface LogListing {
  name: string;
  origin: string;
  verifierKey: string;
  size: number;
  pending: number;
}

export async function listLogs(s: { url: string; tokens: Tokens }): Promise<LogListing[]> {
  return (await getJson<{ logs: LogListing[] }>(s.url, s.tokens.auditor, '/v1/logs')).logs;
}

export async function logInfo(s: { url: string; tokens: Tokens }, name: string): Promise<LogListing> {
  const l = (await listLogs(s)).find((x) => x.name === name);
  if (!l) throw new Error(`no log ${name} at ${s.url}`);
  return l;
}

/** The size line of a signed checkpoint. */
export function checkpointSize(text: string): number {
  const line = text.split('\n')[1] ?? '';
  if (!/^(0|[1-9][0-9]*)$/.test(line)) throw new Error(`not a checkpoint: ${JSON.stringify(text.slice(0, 200))}`);
  return Number(line);
}

/** Waits until the published checkpoint of `log` covers at least `size` entries; returns its text. */
export async function waitForCheckpoint(s: { url: string; tokens: Tokens }, log: string, size: number, timeoutMs = 60_000): Promise<string> {
  return waitFor(`checkpoint of ${log} to reach ${size}`, async () => {
    const text = await getText(s.url, s.tokens.auditor, `/logs/${log}/checkpoint`);
    return checkpointSize(text) >= size ? text : undefined;
  }, timeoutMs, 100);
}

// ---- Go reference tools -------------------------------------------------------------------

export type GoToolName = 'tlogcheck' | 'tloggen';

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Path of a Go reference tool, built with <repo>/../shared/tools/<name>/build.sh when missing.
 * Never skips: a tool that cannot be built is a loud failure.
 */
export function goTool(name: GoToolName): string {
  const dir = process.env.CUSTODY_GO_TOOLS ?? '/tmp/custody-go-tools';
  const out = join(dir, name);
  if (isExecutable(out)) return out;
  const script = resolve(ROOT, '..', 'shared', 'tools', name, 'build.sh');
  if (!existsSync(script)) throw new Error(`go tools: cannot build ${name}: ${script} does not exist`);
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.build-${process.pid}`;
  try {
    execFileSync('bash', [script, tmp], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    rmSync(tmp, { force: true });
    throw new Error(`go tools: building ${name} with ${script} failed: ${err.stderr?.toString() || err.message}`);
  }
  if (!isExecutable(tmp)) throw new Error(`go tools: ${script} did not produce ${tmp}`);
  renameSync(tmp, out);
  return out;
}

/** Runs Go's tlogcheck against a log served by `s` (…/logs/<log>), with -full by default. */
export function tlogcheck(s: { url: string; tokens: Tokens }, log: string, vkey: string, extra: string[] = ['-full']): Promise<RunResult> {
  return runProcess(goTool('tlogcheck'), ['-base', `${s.url}/logs/${log}`, '-token', s.tokens.auditor, '-vkey', vkey, ...extra]);
}
