/**
 * Support for the notifier tests: real local receivers (HTTP webhook / Slack / SNS endpoint,
 * SMTP with STARTTLS), a self-signed certificate made with openssl, the admin's second factor
 * on a test clock, and audit-log readers. Nothing here imitates a protocol: the receivers are
 * real servers and the tests check what actually arrived.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { bearer, auditRecords, type InProcVault } from '../support/inproc.js';
import { makeTempDir } from '../support/server.js';
import { enrollTotp as enrollDevice, useFakeClock, type FakeClock } from '../support/totp.js';

// ---- HTTP receiver ------------------------------------------------------------------------

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  raw: Buffer;
  at: number;
}

export type Answer = { status: number; body?: string; headers?: Record<string, string> } | 'hang';

export interface Receiver {
  url: string;
  port: number;
  got: Received[];
  /** Answers for the next requests, in order; when empty, `fallback`. */
  answers: Answer[];
  fallback: Answer;
  close(): Promise<void>;
}

export async function startReceiver(opts: { port?: number; answers?: Answer[]; fallback?: Answer; path?: string } = {}): Promise<Receiver> {
  const r: Receiver = { url: '', port: 0, got: [], answers: [...(opts.answers ?? [])], fallback: opts.fallback ?? { status: 200, body: 'ok' }, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      r.got.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw: Buffer.concat(chunks), at: Date.now() });
      const a = r.answers.shift() ?? r.fallback;
      if (a === 'hang') return; // never answers
      res.writeHead(a.status, { 'content-type': 'text/plain', ...(a.headers ?? {}) });
      res.end(a.body ?? '');
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => ok());
  });
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}${opts.path ?? '/hook'}`;
  r.close = () =>
    new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    });
  return r;
}

/** What a receiver does: HMAC-SHA256 over "<timestamp>.<raw body>", compared in constant time. */
export function verifyWebhook(secret: string, h: IncomingHttpHeaders, raw: Buffer, toleranceS = 300): boolean {
  const sig = h['x-custody-signature'];
  const ts = h['x-custody-timestamp'];
  if (typeof sig !== 'string' || typeof ts !== 'string' || !/^\d+$/.test(ts)) return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > toleranceS) return false;
  const expected = Buffer.from('sha256=' + createHmac('sha256', secret).update(`${ts}.`).update(raw).digest('hex'));
  const given = Buffer.from(sig);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// ---- AWS SigV4 (checked with the secret key the test configured) ---------------------------

/** Recomputes an AWS Signature Version 4 over the request as received; true when it matches. */
export function verifySigV4(r: Received, secretKey: string): { ok: boolean; accessKeyId: string; region: string; service: string } {
  const auth = String(r.headers.authorization ?? '');
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return { ok: false, accessKeyId: '', region: '', service: '' };
  const [, akid, date, region, service, signed, signature] = m as unknown as string[];
  const names = signed!.split(';');
  const canonHeaders = names.map((n) => `${n}:${String(r.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const [path, query = ''] = r.url.split('?');
  const canonQuery = query
    .split('&')
    .filter(Boolean)
    .sort()
    .join('&');
  const payloadHash = typeof r.headers['x-amz-content-sha256'] === 'string' ? r.headers['x-amz-content-sha256'] : createHash('sha256').update(r.raw).digest('hex');
  const canonical = [r.method, path, canonQuery, canonHeaders, signed, payloadHash].join('\n');
  const amzDate = String(r.headers['x-amz-date']);
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const h = (k: Buffer | string, d: string): Buffer => createHmac('sha256', k).update(d).digest();
  const kSigning = h(h(h(h('AWS4' + secretKey, date!), region!), service!), 'aws4_request');
  const expected = createHmac('sha256', kSigning).update(toSign).digest('hex');
  return { ok: timingSafeEqual(Buffer.from(expected), Buffer.from(signature!)), accessKeyId: akid!, region: region!, service: service! };
}

export function snsPublishOk(messageId: string): string {
  return `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>${messageId}</MessageId></PublishResult><ResponseMetadata><RequestId>0a1b2c3d-0000-4000-8000-000000000001</RequestId></ResponseMetadata></PublishResponse>`;
}

export function snsError(type: 'Sender' | 'Receiver', code: string, message: string): string {
  return `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>0a1b2c3d-0000-4000-8000-000000000002</RequestId></ErrorResponse>`;
}

// ---- TLS certificate and SMTP --------------------------------------------------------------

export interface TestCert {
  dir: string;
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
}

/** A self-signed certificate for localhost and 127.0.0.1, made by openssl. */
export function makeCert(): TestCert {
  const dir = makeTempDir('notify-cert');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { dir, certPath, keyPath, cert: readFileSync(certPath), key: readFileSync(keyPath) };
}

export interface Mail {
  from: string;
  to: string[];
  raw: string;
  subject: string;
  text: string;
  /** Whether the session was upgraded with STARTTLS (or was TLS from the start). */
  secure: boolean;
  user: string | undefined;
}

export interface SmtpReceiver {
  port: number;
  mails: Mail[];
  authFailures: number;
  close(): Promise<void>;
}

/** Undoes quoted-printable soft breaks and escapes (what nodemailer uses for text with long lines). */
function decodeBody(headers: string, body: string): string {
  if (/content-transfer-encoding:\s*quoted-printable/i.test(headers)) {
    return Buffer.from(body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  }
  if (/content-transfer-encoding:\s*base64/i.test(headers)) return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  return body;
}

/**
 * A real SMTP server (smtp-server): STARTTLS with the given certificate (or implicit TLS with
 * `implicitTls`), AUTH PLAIN/LOGIN with one user, and no mail accepted before TLS.
 */
export async function startSmtp(cert: TestCert, opts: { user: string; pass: string; implicitTls?: boolean; port?: number }): Promise<SmtpReceiver> {
  const r: SmtpReceiver = { port: 0, mails: [], authFailures: 0, close: async () => undefined };
  const server = new SMTPServer({
    secure: opts.implicitTls ?? false,
    key: cert.key,
    cert: cert.cert,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    disabledCommands: [],
    onAuth(auth, session, cb) {
      if (!session.secure) return cb(new Error('Must issue a STARTTLS command first'));
      if (auth.username === opts.user && auth.password === opts.pass) return cb(null, { user: auth.username });
      r.authFailures++;
      return cb(new Error('Invalid username or password'));
    },
    onMailFrom(_a, session, cb) {
      if (!session.secure) return cb(new Error('Must issue a STARTTLS command first'));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const split = raw.indexOf('\r\n\r\n');
        const headers = raw.slice(0, split);
        const unfolded = headers.replace(/\r\n[ \t]+/g, ' ');
        const subject = /^subject: (.*)$/im.exec(unfolded)?.[1] ?? '';
        r.mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((x) => x.address),
          raw,
          subject,
          text: decodeBody(headers, raw.slice(split + 4)),
          secure: session.secure,
          user: session.user as string | undefined,
        });
        cb();
      });
    },
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => ok());
  });
  r.port = (server.server.address() as AddressInfo).port;
  r.close = () => new Promise<void>((ok) => server.close(() => ok()));
  return r;
}

// ---- the admin's second factor on a test clock ---------------------------------------------

export interface AdminFactor {
  /** A fresh code (the vault's admin clock moves on one 30 s step first, so no code is ever replayed). */
  code(): string;
  /** Bearer token plus X-Custody-TOTP. */
  headers(): Record<string, string>;
}

/**
 * Enrolls an admin's TOTP through the real API with the shared test authenticator
 * (support/totp.ts, its own HOTP); all admins of one vault share one fake clock.
 */
export async function enrollTotp(v: InProcVault, token = v.tokens.admin): Promise<AdminFactor> {
  let clock = clocks.get(v.vault);
  if (!clock) {
    clock = useFakeClock(v.vault);
    clocks.set(v.vault, clock);
  }
  const device = await enrollDevice(v.app, token, clock);
  const c = clock;
  const code = (): string => {
    c.advance(30_000);
    device.last = Math.floor(c.t / 30_000);
    return device.codeAt(c.t);
  };
  return { code, headers: () => ({ ...bearer(token), 'x-custody-totp': code() }) };
}

const clocks = new WeakMap<object, FakeClock>();

// ---- reading the audit log -----------------------------------------------------------------

export async function auditOf(v: InProcVault, type?: string | RegExp): Promise<Array<Record<string, unknown>>> {
  const all = await auditRecords(v);
  if (type === undefined) return all;
  return all.filter((e) => (typeof type === 'string' ? e['type'] === type : type.test(String(e['type']))));
}

/** Polls until `fn` returns a value (not undefined/false), or fails after `ms`. */
export async function eventually<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The fast timings the notifier tests run with. */
export const FAST = { notifyRetryBaseMs: 50, notifyRetryMaxMs: 2_000, notifyGroupMs: 300, notifyTimeoutMs: 2_000 };

/** Adds a notifier through POST /v1/notifiers (admin + TOTP); returns its id. */
export async function addNotifier(v: InProcVault, factor: AdminFactor, config: Record<string, unknown>): Promise<string> {
  const r = await v.app.inject({ method: 'POST', url: '/v1/notifiers', headers: factor.headers(), payload: config });
  if (r.statusCode !== 201) throw new Error(`add notifier: ${r.statusCode} ${r.body}`);
  return r.json<{ notifier: { id: string } }>().notifier.id;
}

/** Raises a 'trust' alarm the way an auditor's client does: POST /v1/trust/report. */
export async function trustReport(v: InProcVault, message = 'forked'): Promise<number> {
  const root = Buffer.alloc(32, 7).toString('base64');
  const r = await v.app.inject({ method: 'POST', url: '/v1/trust/report', headers: bearer(v.tokens.auditor), payload: { log: v.vault.regionLogs()[0], reason: 'NOT_A_PREFIX', trusted: { size: 10, root }, seen: { size: 12, root }, message, client: 'notify-test' } });
  if (r.statusCode !== 202) throw new Error(`trust report: ${r.statusCode} ${r.body}`);
  return r.json<{ alarm: number }>().alarm;
}
