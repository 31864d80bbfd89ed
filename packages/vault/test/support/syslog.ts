/**
 * Syslog test support: raw TCP/TLS senders, octet-counted frames, certificates made with
 * openssl, reading stored records back as an auditor, and real clients — rsyslogd (Debian's
 * rsyslog + rsyslog-gnutls) run in the foreground on its own config, and util-linux `logger`.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { InProcVault } from './inproc.js';
import { bearer } from './inproc.js';
import { CUSTODY_BIN, makeTempDir, waitFor, sleep } from './server.js';

/** RFC 6587 §3.4.1: `MSG-LEN SP SYSLOG-MSG`. */
export function octet(msg: string | Buffer): Buffer {
  const b = typeof msg === 'string' ? Buffer.from(msg) : msg;
  return Buffer.concat([Buffer.from(`${b.length} `), b]);
}

export interface SendOptions {
  /** TLS with this CA (and optionally a client certificate). */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  /** Pause between writes, so each write arrives as its own chunk. */
  delayMs?: number;
  /** Keep the connection open after the last write (the caller ends it). */
  keepOpen?: boolean;
}

/** Opens a connection (TCP or TLS); resolves once connected (and the handshake is done). */
export function openSyslog(port: number, opts: SendOptions = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = opts.tls
      ? tlsConnect({ host: '127.0.0.1', port, ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key, servername: 'localhost' }, () => resolve(s))
      : tcpConnect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Writes each part (waiting for it to be flushed) and closes the connection. */
export async function sendParts(port: number, parts: Buffer[], opts: SendOptions = {}): Promise<Socket> {
  const s = await openSyslog(port, opts);
  s.on('error', () => undefined);
  for (const p of parts) {
    await new Promise<void>((res, rej) => s.write(p, (e) => (e ? rej(e) : res())));
    if (opts.delayMs) await sleep(opts.delayMs);
  }
  if (!opts.keepOpen) await endAndWait(s);
  return s;
}

export function endAndWait(s: Socket): Promise<void> {
  return new Promise((res) => {
    if (s.destroyed) return res();
    s.once('close', () => res());
    s.end();
  });
}

/** Resolves when the server closes the connection (or after timeoutMs with false). */
export function closedByPeer(s: Socket, timeoutMs = 5_000): Promise<boolean> {
  return new Promise((res) => {
    if (s.destroyed) return res(true);
    const t = setTimeout(() => res(false), timeoutMs);
    const done = (): void => {
      clearTimeout(t);
      res(true);
    };
    s.once('close', done);
    s.once('end', done);
    s.resume();
  });
}

/** Cuts a buffer at random places into pieces of 1 to maxPiece bytes. */
export function cutRandomly(buf: Buffer, rnd: () => number, maxPiece: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + Math.floor(rnd() * maxPiece);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

export interface StoredRecord {
  index: number;
  bytes: Buffer;
  source: string;
  producer: string;
  attrs: Record<string, string>;
}

/** Every record of a log from `from` on, read as an auditor (after waiting for the checkpoint). */
export async function storedRecords(v: InProcVault, log = 'local', from = 0): Promise<StoredRecord[]> {
  const seq = v.vault.sequencer(log);
  await seq.waitForCheckpoint(seq.sequencedSize);
  const out: StoredRecord[] = [];
  for (let i = from; i < seq.size; i++) {
    const r = await v.app.inject({ method: 'GET', url: `/v1/logs/${log}/entries/${i}`, headers: bearer(v.tokens.auditor) });
    if (r.statusCode !== 200) throw new Error(`GET entry ${i}: ${r.statusCode} ${r.body}`);
    const j = r.json<{ record: string; recordEncoding: 'utf8' | 'base64'; envelope: { source: string; producer: string; attrs?: Record<string, string> } }>();
    out.push({ index: i, bytes: Buffer.from(j.record, j.recordEncoding), source: j.envelope.source, producer: j.envelope.producer, attrs: j.envelope.attrs ?? {} });
  }
  return out;
}

// ---- certificates ----------------------------------------------------------------------------

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate from another CA (must be refused when client certificates are required). */
  strangerCert: string;
  strangerKey: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

function makeCa(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', key, '-out', cert]);
  return { cert, key };
}

function makeLeaf(dir: string, name: string, cn: string, ca: { cert: string; key: string }, ext: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`, '-keyout', key, '-out', csr]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', extFile, '-out', cert]);
  return { cert, key };
}

/** A CA, a server certificate for localhost / 127.0.0.1, a client certificate, and a stranger's. */
export function makePki(): TestPki {
  const dir = makeTempDir('syslog-pki');
  const ca = makeCa(dir, 'test-ca');
  const server = makeLeaf(dir, 'server', 'localhost', ca, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
  const client = makeLeaf(dir, 'client', 'web-01.example.org', ca, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  const other = makeCa(dir, 'other-ca');
  const stranger = makeLeaf(dir, 'stranger', 'intruder', other, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  return { dir, caCert: ca.cert, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key, strangerCert: stranger.cert, strangerKey: stranger.key };
}

// ---- real clients ------------------------------------------------------------------------------

/** Whether rsyslogd (and its gtls driver) and util-linux logger are installed. */
export function realClientsInstalled(): { rsyslogd: boolean; gtls: boolean; logger: boolean } {
  const has = (cmd: string, args: string[]): boolean => {
    try {
      execFileSync(cmd, args, { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  const gtls = ['/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so', '/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_gtls.so', '/usr/lib/rsyslog/lmnsd_gtls.so'].some((p) => existsSync(p));
  return { rsyslogd: has('rsyslogd', ['-v']), gtls, logger: has('logger', ['--version']) };
}

/** util-linux logger: `logger --server 127.0.0.1 --port <port> --tcp ...args`. */
export function runLogger(port: number, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('logger', ['--server', '127.0.0.1', '--port', String(port), '--tcp', ...args], { timeout: 10_000 }, (err, _out, stderr) => (err ? reject(new Error(`logger failed: ${err.message} ${stderr}`)) : resolve()));
  });
}

export interface Rsyslog {
  proc: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Runs `rsyslogd -n` on `config` (its own work directory and pid file; no imuxsock/imklog,
 * so it touches nothing of the machine's logging) and waits until `inputPort` accepts
 * connections.
 */
export async function startRsyslog(config: string, inputPort: number): Promise<Rsyslog> {
  const dir = makeTempDir('rsyslog');
  const work = join(dir, 'work');
  mkdirSync(work);
  const conf = join(dir, 'rsyslog.conf');
  writeFileSync(conf, `global(workDirectory="${work}")\n${config}\n`);
  // -iNONE is not in every version; a pid file in the temp dir works everywhere.
  const proc = spawn('rsyslogd', ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (err += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  process.once('exit', () => proc.kill('SIGKILL'));
  const state = await waitFor(
    `rsyslogd listening on ${inputPort}`,
    async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return 'exited';
      return new Promise<'up' | false>((res) => {
        const s = tcpConnect({ host: '127.0.0.1', port: inputPort }, () => {
          s.destroy();
          res('up');
        });
        s.on('error', () => res(false));
      });
    },
    10_000,
    50,
  );
  if (state === 'exited') throw new Error(`rsyslogd exited (${proc.exitCode ?? proc.signalCode}): ${err}`);
  return {
    proc,
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

// ---- `custody serve` with syslog options --------------------------------------------------------

export interface ServeProc {
  proc: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

/** Runs `custody serve ...args` until it prints "Custody is listening on" (or exits). */
export async function runServe(args: string[], env: Record<string, string> = {}): Promise<ServeProc> {
  const proc = spawn(process.execPath, [CUSTODY_BIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CUSTODY_LOG_LEVEL: 'warn', ...env } });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  process.once('exit', () => proc.kill('SIGKILL'));
  // Ready, or ended (a refused start): the caller looks at the output and the exit code.
  await waitFor('custody serve to listen or exit', () => out.includes('Custody is listening on') || proc.exitCode !== null, 30_000, 25);
  return {
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        const code = await exited;
        clearTimeout(t);
        return code;
      }
      return proc.exitCode;
    },
  };
}
