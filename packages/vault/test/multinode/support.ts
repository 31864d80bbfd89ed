/**
 * Real `custody serve` nodes of one shared vault (S3 + PostgreSQL) for the multi-node tests:
 * each node is a child process with its own node-local --data directory; the first one started
 * creates the vault and writes the initial tokens into its data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { CUSTODY_BIN, freePort, makeTempDir, readTokens, type Tokens } from '../support/server.js';

export const PASSPHRASE = 'multinode test passphrase: correct horse battery staple';

export interface NodeOptions {
  bucket: string;
  prefix?: string;
  pgUrl: string;
  /** The standard AWS variables of the S3 endpoint (CephS3.env). */
  awsEnv: Record<string, string>;
  nodeId: string;
  checkpointIntervalMs?: number;
  extraArgs?: string[];
  /** Run the search index (search/pg-index.ts); default off. */
  search?: boolean;
  env?: Record<string, string>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export class Node {
  url = '';
  port = 0;
  proc!: ChildProcess;
  out = '';
  err = '';
  readonly dataDir: string;

  constructor(readonly o: NodeOptions) {
    this.dataDir = join(makeTempDir(`node-${o.nodeId}`), 'data');
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts `custody serve --storage … --database …`; resolves once it listens. */
  async start(timeoutMs = 90_000): Promise<void> {
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const args = [
      CUSTODY_BIN,
      'serve',
      '--data',
      this.dataDir,
      '--port',
      String(this.port),
      '--storage',
      `s3://${this.o.bucket}/${this.o.prefix ?? 'custody'}`,
      '--database',
      this.o.pgUrl,
      '--node-id',
      this.o.nodeId,
      '--checkpoint-interval',
      String(this.o.checkpointIntervalMs ?? 100),
      ...(this.o.search ? [] : ['--no-search']),
      ...(this.o.extraArgs ?? []),
    ];
    const env = { ...process.env, ...this.o.awsEnv, CUSTODY_PASSPHRASE: PASSPHRASE, CUSTODY_LOG_LEVEL: process.env.CUSTODY_LOG_LEVEL ?? 'warn', ...(this.o.env ?? {}) };
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    proc.unref();
    (proc.stdout as unknown as { unref(): void }).unref();
    (proc.stderr as unknown as { unref(): void }).unref();
    this.proc = proc;
    this.out = '';
    this.err = '';
    proc.stdout!.setEncoding('utf8');
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (s: string) => (this.err = (this.err + s).slice(-20_000)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`node ${this.o.nodeId} not ready after ${timeoutMs} ms\n${this.out.slice(-3000)}\n${this.err.slice(-3000)}`));
      }, timeoutMs);
      proc.stdout!.on('data', (s: string) => {
        this.out = (this.out + s).slice(-20_000);
        if (this.out.includes('Custody is listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        setImmediate(() => reject(new Error(`node ${this.o.nodeId} exited (code ${code}, signal ${signal})\n${this.out.slice(-3000)}\n${this.err.slice(-3000)}`)));
      });
    });
  }

  tokens(): Tokens {
    return readTokens(this.dataDir);
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(t);
  }
}

/** POST records as NDJSON; resolves with the status, headers and JSON body (never throws on HTTP errors). */
export async function post(url: string, token: string, lines: string[], log = 'local', source?: string): Promise<{ status: number; retryAfter: string | null; body: Record<string, unknown> }> {
  const r = await fetch(`${url}/v1/logs/${log}/entries${source ? `?source=${encodeURIComponent(source)}` : ''}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' }, body: lines.join('\n') + '\n' });
  const text = await r.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body };
}

export async function getJson<T>(url: string, token: string, path: string): Promise<{ status: number; body: T }> {
  const r = await fetch(url + path, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: (await r.json()) as T };
}
