/**
 * The syslog listener: RFC 5424 and RFC 3164 messages over TCP (RFC 6587) and over TLS
 * (RFC 5425), each message one record, stored byte for byte (docs/SYSLOG.md).
 *
 * Syslog carries no credentials, so a listener writes as one writer principal, named by a
 * writer token the operator gives the server. The token is checked when the listener starts,
 * before every batch and once a second: when it is revoked, the listener stops (it closes its
 * port and every connection and drops what it had not stored yet, with an audit event).
 *
 * Framing is detected per frame from its first byte (RFC 6587 §3.4; shared/reference/
 * ingest-protocols.md): "1"–"9" starts an octet-counted frame `MSG-LEN SP SYSLOG-MSG`
 * (§3.4.1), "<" a message ended by LF or NUL (non-transparent framing, §3.4.2; a CR before
 * the LF is dropped too). RFC 5425 §4.3 uses octet counting over TLS; both are accepted on
 * both ports. Anything else where a frame must start is not syslog: the connection is closed
 * and the refusal audited. Every buffer is bounded: a frame by `maxFrameBytes`, the frames
 * being received on all connections together by `maxPartialBytes`, the messages waiting to be
 * stored by `maxQueuedBytes` (beyond it the listener stops reading — TCP back-pressure — until
 * the vault has caught up).
 *
 * TCP syslog has no acknowledgements: a message is durable once its batch is appended, and a
 * server killed abruptly loses what it had received but not yet stored (at most one batch).
 */
import { createServer as createTcpServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { CustodyError, isCustodyError } from '../../errors.js';
import type { Vault } from '../../vault.js';
import type { PrincipalRow } from '../../storage/db.js';
import type { Metrics } from '../../server/health.js';
import { MAX_RECORD_SIZE } from '../../log/entry.js';
import { ingestRecords } from '../pipeline.js';
import { syslogFields } from '../sources/applogs.js';
import type { CommonFields, ParsedRecord } from '../types.js';

// ---- framing (pure) ---------------------------------------------------------------------------

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;
const SP = 0x20;
const TAB = 0x09;
const LT = 0x3c;

/** Why a connection was closed: its bytes cannot be framed as syslog, or a limit was hit. */
export class SyslogFramingError extends Error {
  override readonly name = 'SyslogFramingError';
  constructor(
    readonly reason: 'not-syslog' | 'bad-frame-length' | 'frame-too-large' | 'line-too-long',
    message: string,
  ) {
    super(message);
  }
}

export type FrameEvent =
  /** One message: the bytes between the framing, without a trailing LF / CRLF. */
  | { kind: 'message'; bytes: Buffer }
  /** A frame larger than maxFrameBytes, skipped without being buffered; the connection goes on. */
  | { kind: 'oversize'; size: number };

/**
 * Splits one connection's byte stream into syslog messages, however the stream is cut into
 * chunks. Holds at most `maxFrameBytes` of an unfinished frame. A frame larger than that is
 * skipped (reported as "oversize") when it is at most 16 times the limit; beyond that — a
 * declared length like 99999999999, a line that never ends — the stream is refused.
 */
export class SyslogFramer {
  private state: 'start' | 'len' | 'octets' | 'skip' | 'line' | 'skipLine' = 'start';
  private need = 0;
  private lenValue = 0;
  private skipped = 0;
  private pieces: Buffer[] = [];
  private have = 0;
  readonly skipLimit: number;

  constructor(readonly maxFrameBytes: number) {
    this.skipLimit = maxFrameBytes * 16;
  }

  /** Bytes held for the frame being received. */
  get buffered(): number {
    return this.have;
  }

  /** Whether a frame has begun and not ended. */
  get inFrame(): boolean {
    return this.state !== 'start';
  }

  /** Feeds a chunk; calls `out` for each frame it completes. Throws SyslogFramingError. */
  push(chunk: Buffer, out: (e: FrameEvent) => void): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.state) {
        case 'start': {
          const b = chunk[i]!;
          // Line endings and blanks between frames (a sender that adds LF after a counted
          // frame, blank lines) carry nothing.
          if (b === LF || b === CR || b === NUL || b === SP || b === TAB) {
            i++;
          } else if (b >= 0x31 && b <= 0x39) {
            // RFC 6587 §3.4.1: MSG-LEN = NONZERO-DIGIT *DIGIT
            this.state = 'len';
            this.lenValue = b - 0x30;
            i++;
          } else if (b === LT) {
            this.state = 'line'; // the "<" is the first byte of the message: not consumed
          } else {
            throw new SyslogFramingError('not-syslog', `Byte 0x${b.toString(16).padStart(2, '0')} where a syslog frame must start (a digit for octet counting, "<" for a message ended by a newline).`);
          }
          break;
        }
        case 'len': {
          const b = chunk[i]!;
          if (b >= 0x30 && b <= 0x39) {
            this.lenValue = this.lenValue * 10 + (b - 0x30);
            if (this.lenValue > this.skipLimit) {
              throw new SyslogFramingError('frame-too-large', `A frame declares a length of more than ${this.skipLimit} bytes; messages are at most ${this.maxFrameBytes}.`);
            }
            i++;
          } else if (b === SP) {
            i++;
            this.need = this.lenValue;
            this.state = this.lenValue > this.maxFrameBytes ? 'skip' : 'octets';
          } else {
            throw new SyslogFramingError('bad-frame-length', `An octet-counted frame must start with its length and a space (RFC 6587 §3.4.1); got byte 0x${b.toString(16).padStart(2, '0')} after "${this.lenValue}".`);
          }
          break;
        }
        case 'octets': {
          const take = Math.min(this.need, n - i);
          this.keep(chunk, i, i + take);
          this.need -= take;
          i += take;
          if (this.need === 0) {
            const msg = this.take();
            // A trailing LF inside the count (rsyslog sends one) is framing, not message.
            let end = msg.length;
            if (end > 0 && msg[end - 1] === LF) end--;
            if (end > 0 && msg[end - 1] === CR) end--;
            this.state = 'start';
            if (end > 0) out({ kind: 'message', bytes: end === msg.length ? msg : msg.subarray(0, end) });
          }
          break;
        }
        case 'skip': {
          const take = Math.min(this.need, n - i);
          this.need -= take;
          i += take;
          if (this.need === 0) {
            this.state = 'start';
            out({ kind: 'oversize', size: this.lenValue });
          }
          break;
        }
        case 'line': {
          // Look for the trailer only as far as a frame may reach (RFC 6587 §3.4.2: LF, or
          // NUL as some devices send).
          const room = this.maxFrameBytes + 1 - this.have; // +1: a CR before the LF is dropped
          const end = Math.min(n, i + room);
          const t = trailerIn(chunk, i, end);
          if (t >= 0) {
            this.keep(chunk, i, t);
            i = t + 1;
            let msg = this.take();
            if (msg.length > 0 && msg[msg.length - 1] === CR) msg = msg.subarray(0, msg.length - 1);
            this.state = 'start';
            if (msg.length > this.maxFrameBytes) out({ kind: 'oversize', size: msg.length });
            else if (msg.length > 0) out({ kind: 'message', bytes: msg });
          } else if (end < n || this.have + (end - i) > this.maxFrameBytes) {
            // Too long to be a frame: drop what we hold and skip to the next trailer.
            this.skipped = this.have + (end - i);
            this.pieces = [];
            this.have = 0;
            i = end;
            this.state = 'skipLine';
          } else {
            this.keep(chunk, i, end);
            i = end;
          }
          break;
        }
        case 'skipLine': {
          const t = trailerIn(chunk, i, n);
          const upto = t >= 0 ? t : n;
          this.skipped += upto - i;
          if (this.skipped > this.skipLimit) {
            throw new SyslogFramingError('line-too-long', `A message without a line ending ran past ${this.skipLimit} bytes; the limit is ${this.maxFrameBytes}.`);
          }
          i = upto;
          if (t >= 0) {
            i++;
            this.state = 'start';
            out({ kind: 'oversize', size: this.skipped });
          }
          break;
        }
      }
    }
  }

  /**
   * The stream ended. A last message without its LF is complete (senders that close instead
   * of ending the line); an octet-counted frame cut short is reported as truncated.
   */
  end(out: (e: FrameEvent) => void): { truncated: boolean } {
    const state = this.state;
    this.state = 'start';
    if (state === 'line' && this.have > 0) {
      let msg = this.take();
      if (msg[msg.length - 1] === CR) msg = msg.subarray(0, msg.length - 1);
      if (msg.length > 0) out({ kind: 'message', bytes: msg });
    } else if (state === 'skip' || state === 'skipLine') {
      out({ kind: 'oversize', size: state === 'skip' ? this.lenValue : this.skipped });
    }
    this.pieces = [];
    this.have = 0;
    return { truncated: state === 'len' || state === 'octets' };
  }

  /** Copies a slice (never keeps a view into a socket's chunk, which may be much larger). */
  private keep(chunk: Buffer, from: number, to: number): void {
    if (to <= from) return;
    this.pieces.push(Buffer.from(chunk.subarray(from, to)));
    this.have += to - from;
  }

  private take(): Buffer {
    const b = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.have);
    this.pieces = [];
    this.have = 0;
    return b;
  }
}

/** Index of the first LF or NUL in chunk[from, to), or -1. */
function trailerIn(chunk: Buffer, from: number, to: number): number {
  const view = chunk.subarray(from, to);
  const lf = view.indexOf(LF);
  const nul = view.indexOf(NUL);
  const t = lf < 0 ? nul : nul < 0 ? lf : Math.min(lf, nul);
  return t < 0 ? -1 : from + t;
}

/**
 * The PRI of a syslog message, or null when it has none: "<" PRIVAL ">", PRIVAL one to three
 * digits from 0 to 191 (RFC 5424 §6.2.1; RFC 3164 §4.1.1).
 */
export function syslogPri(msg: Buffer): number | null {
  if (msg.length < 3 || msg[0] !== LT) return null;
  let v = 0;
  let i = 1;
  for (; i < msg.length && i <= 4; i++) {
    const b = msg[i]!;
    if (b === 0x3e) break;
    if (b < 0x30 || b > 0x39) return null;
    v = v * 10 + (b - 0x30);
  }
  if (i === 1 || i > 4 || msg[i] !== 0x3e || v > 191) return null;
  return v;
}

// ---- the listener -----------------------------------------------------------------------------

export interface SyslogLimits {
  /** Largest message, in bytes (default 64 KiB, at most 1 MiB). Larger ones are skipped. */
  maxFrameBytes?: number;
  /** Open connections at once (default 1000); more are closed on accept. */
  maxConnections?: number;
  /** Bytes of unfinished frames on all connections together (default 64 MiB). */
  maxPartialBytes?: number;
  /** Bytes of messages received but not yet stored; beyond it reading pauses (default 16 MiB). */
  maxQueuedBytes?: number;
  /** A connection that sends nothing for this long is closed (default 10 min). */
  idleTimeoutMs?: number;
  /** A frame must be complete this long after its first byte (default 30 s; slow senders). */
  frameTimeoutMs?: number;
  /** Messages per append (default 1000). */
  batchMessages?: number;
  /** Longest wait before received messages are appended (default 50 ms). */
  batchIntervalMs?: number;
  /** Wait before a batch the vault pushed back is tried again (default 1 s). */
  retryDelayMs?: number;
}

export interface SyslogOptions extends SyslogLimits {
  vault: Vault;
  /** 0 picks a free port (see SyslogServer.port). */
  port: number;
  host?: string;
  /**
   * Serve RFC 5425 TLS. With `requestCert`, a client must present a certificate signed by
   * `ca`; its subject CN is recorded with each of its messages (attr tlsPeer).
   */
  tls?: { key: Buffer; cert: Buffer; ca?: Buffer; requestCert?: boolean };
  /** The writer token whose principal the listener appends as. */
  token: string;
  logger: Logger;
  metrics?: Metrics;
}

export interface SyslogStats {
  state: 'listening' | 'revoked' | 'closed';
  /** Connections open now. */
  connections: number;
  /** Connections accepted since the start. */
  accepted: number;
  /** Connections closed by the listener, by reason. */
  refused: Record<string, number>;
  /** Messages received (complete frames, oversize ones included). */
  received: number;
  stored: number;
  /** Messages not stored, by code (TOO_LARGE, NOT_SYSLOG, or the vault's refusal). */
  rejected: Record<string, number>;
  /** Messages received but dropped because the token was revoked or the listener closed. */
  dropped: number;
  /** Batches the vault pushed back (PUSHBACK, NOT_READY, STORAGE_UNAVAILABLE, I/O errors), kept and retried. */
  pushbacks: number;
  /** Bytes of messages waiting to be stored. */
  queuedBytes: number;
  /** Whether reading is paused because the vault is behind. */
  paused: boolean;
}

export interface SyslogServer {
  /** The port actually listened on. */
  readonly port: number;
  readonly principal: PrincipalRow;
  /** Stops accepting, stores what was received (a few seconds at most), closes connections. */
  close(): Promise<void>;
  readonly stats: SyslogStats;
}

interface Conn {
  socket: Socket | TLSSocket;
  address: string;
  attrs: Record<string, string>;
  framer: SyslogFramer;
  /** Messages seen on the connection (1-based position of the last one). */
  position: number;
  frameSince: number;
  lastData: number;
}

interface Pending {
  conn: Conn;
  bytes: Buffer;
  position: number;
}

const RETRY_CODES = new Set(['PUSHBACK', 'NOT_READY', 'STORAGE_UNAVAILABLE']);

/**
 * Whether a batch that failed is kept and tried again: the vault's "later" answers, and system
 * errors (EIO …) that may pass. Anything else would fail again the same way: not retried.
 */
function retriable(e: unknown): boolean {
  if (isCustodyError(e)) return RETRY_CODES.has(e.code);
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}
const HARD_MAX_FRAME = MAX_RECORD_SIZE;

/** "::ffff:10.0.0.1" → "10.0.0.1" (how the peer is written in audit events and attrs). */
function plainAddress(a: string | undefined): string {
  if (!a) return 'unknown';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** An envelope attribute value: printable ASCII without spaces, at most 256 characters. */
function attrValue(s: string): string | undefined {
  const v = s.replace(/[^\x21-\x7e]/g, '_').slice(0, 256);
  return v.length > 0 ? v : undefined;
}

function fieldsOf(msg: Buffer, log: Logger): CommonFields {
  try {
    return syslogFields(msg.toString('utf8'));
  } catch (e) {
    // A field parser's bug must not lose the record: it is stored without search fields.
    log.warn({ err: e }, 'syslog: extracting fields failed; the message is stored without them');
    return {};
  }
}

function intLimit(name: string, v: number | undefined, def: number, min: number, max: number): number {
  const x = v ?? def;
  if (!Number.isSafeInteger(x) || x < min || x > max) throw new CustodyError('CONFIG', `Syslog ${name} must be a whole number from ${min} to ${max}; got ${String(v)}.`);
  return x;
}

/** Resolves the listener's writer token to its principal, or a CONFIG error saying what to do. */
export function syslogPrincipal(vault: Vault, token: string | undefined): PrincipalRow {
  const how = 'Create one with `custody token create --role writer --name syslog`, put it in a file only the server can read and pass --syslog-token-file <file> (or set CUSTODY_SYSLOG_TOKEN).';
  if (!token) throw new CustodyError('CONFIG', `The syslog listener needs a writer token: syslog carries no credentials, so its messages are stored as that writer's. ${how}`);
  const p = vault.auth.authenticate(token);
  if (!p) {
    if (vault.auth.isRevoked(token)) throw new CustodyError('CONFIG', `The syslog writer token was revoked. ${how}`);
    throw new CustodyError('CONFIG', `The syslog writer token is not valid in this vault; check that you copied all of it. ${how}`);
  }
  if (p.role !== 'writer') throw new CustodyError('CONFIG', `The syslog token belongs to "${p.name}", a ${p.role}; the listener needs a writer token. ${how}`);
  return p;
}

export async function startSyslog(opts: SyslogOptions): Promise<SyslogServer> {
  const { vault } = opts;
  const transport = opts.tls ? 'tls' : 'tcp';
  const log = opts.logger.child({ component: `syslog-${transport}` });
  const maxFrame = intLimit('maxFrameBytes', opts.maxFrameBytes, 64 * 1024, 480, HARD_MAX_FRAME);
  const maxConnections = intLimit('maxConnections', opts.maxConnections, 1000, 1, 100_000);
  const maxPartial = intLimit('maxPartialBytes', opts.maxPartialBytes, 64 * 1024 * 1024, maxFrame, 2 ** 40);
  const maxQueued = intLimit('maxQueuedBytes', opts.maxQueuedBytes, 16 * 1024 * 1024, maxFrame, 2 ** 40);
  const idleTimeout = intLimit('idleTimeoutMs', opts.idleTimeoutMs, 10 * 60_000, 100, 2 ** 31 - 1);
  const frameTimeout = intLimit('frameTimeoutMs', opts.frameTimeoutMs, 30_000, 50, 2 ** 31 - 1);
  const batchMessages = intLimit('batchMessages', opts.batchMessages, 1000, 1, 100_000);
  const batchInterval = intLimit('batchIntervalMs', opts.batchIntervalMs, 50, 0, 60_000);
  const retryDelay = intLimit('retryDelayMs', opts.retryDelayMs, 1000, 10, 60_000);
  if (opts.tls?.requestCert && !opts.tls.ca) throw new CustodyError('CONFIG', 'Asking syslog TLS clients for a certificate needs the CA that signs them (a PEM file).');
  const token = opts.token;
  let principal = syslogPrincipal(vault, token);

  const stats: SyslogStats = { state: 'listening', connections: 0, accepted: 0, refused: {}, received: 0, stored: 0, rejected: {}, dropped: 0, pushbacks: 0, queuedBytes: 0, paused: false };
  const conns = new Set<Conn>();
  // Every socket, also those still in a TLS handshake: closing the listener destroys them all.
  const sockets = new Set<Socket>();
  let port = opts.port;
  let partialBytes = 0;
  let queue: Pending[] = [];
  let queuedBytes = 0;
  let paused = false;
  let backoff = false;
  let stopped = false; // revoked, or closed: nothing new is taken
  let closing = false;
  let closeDeadline = 0;
  let flushing: Promise<void> | null = null;
  let flushTimer: NodeJS.Timeout | null = null;
  // Per-record rejections, summed per address until the next sweep: one audit event and one
  // log line per address and second at most, and never the content of a message.
  const rejections = new Map<string, Record<string, number>>();
  const lastWarn = new Map<string, number>();

  const warnSometimes = (key: string, obj: Record<string, unknown>, msg: string): void => {
    const now = Date.now();
    if (now - (lastWarn.get(key) ?? 0) < 10_000) return log.debug(obj, msg);
    lastWarn.set(key, now);
    log.warn(obj, msg);
  };

  /** Closes a connection the listener will not serve, with an audit event (rate-limited). */
  const refuse = (address: string, reason: string, detail: string, socket?: Socket): void => {
    stats.refused[reason] = (stats.refused[reason] ?? 0) + 1;
    warnSometimes(`refused:${reason}`, { reason, address, detail }, 'syslog connection refused');
    void vault.auditAnonymous({ type: 'syslog.refused', reason, address, transport, port, detail }).catch(() => undefined);
    socket?.destroy();
  };

  const reject = (address: string, code: string, n = 1): void => {
    stats.rejected[code] = (stats.rejected[code] ?? 0) + n;
    const r = rejections.get(address) ?? {};
    r[code] = (r[code] ?? 0) + n;
    rejections.set(address, r);
  };

  const reportRejections = (): void => {
    for (const [address, codes] of rejections) {
      const count = Object.values(codes).reduce((a, b) => a + b, 0);
      warnSometimes('rejected', { address, count, codes }, 'syslog messages rejected (not stored)');
      void vault.auditAnonymous({ type: 'syslog.rejected', address, transport, principal: { id: principal.id, name: principal.name }, count, codes }).catch(() => undefined);
    }
    rejections.clear();
  };

  const pauseAll = (): void => {
    if (paused) return;
    paused = true;
    stats.paused = true;
    for (const c of conns) c.socket.pause();
    log.debug({ queuedBytes }, 'syslog: the vault is behind; reading paused');
  };

  const maybeResume = (): void => {
    if (!paused || stopped || closing || backoff || queuedBytes > maxQueued / 2) return;
    paused = false;
    stats.paused = false;
    const now = Date.now();
    for (const c of conns) {
      // Time spent paused is ours, not the sender's: restart its clocks.
      c.lastData = now;
      if (c.framer.inFrame) c.frameSince = now;
      c.socket.resume();
    }
  };

  const dropConn = (c: Conn): void => {
    if (!conns.delete(c)) return;
    partialBytes -= c.framer.buffered;
    stats.connections = conns.size;
  };

  const setQueued = (n: number): void => {
    queuedBytes = n;
    stats.queuedBytes = n;
  };

  /** The principal, re-checked: null once the token is revoked (or the principal is gone). */
  const checkPrincipal = (): PrincipalRow | null => {
    const p = vault.auth.authenticate(token);
    if (!p || p.role !== 'writer') return null;
    principal = p;
    return p;
  };

  const revoked = (): boolean => stats.state === 'revoked';

  const stopRevoked = (): void => {
    if (revoked()) return;
    stopped = true;
    stats.state = 'revoked';
    const dropped = queue.length;
    stats.dropped += dropped;
    queue = [];
    setQueued(0);
    log.error({ principal: principal.name, dropped }, 'the syslog writer token was revoked: the listener stopped. Give the server a new writer token and restart it.');
    void vault.audit({ type: 'syslog.stopped', reason: 'token revoked', transport, port, principal: { id: principal.id, name: principal.name }, dropped }).catch(() => undefined);
    server.close();
    for (const c of [...conns]) dropConn(c);
    for (const s of sockets) s.destroy();
  };

  /** Appends one connection's messages; returns the ones to try again (the vault pushed back). */
  const storeGroup = async (items: Pending[], p: PrincipalRow): Promise<Pending[]> => {
    const c = items[0]!.conn;
    const records: ParsedRecord[] = items.map((m) => ({ bytes: m.bytes, source: 'syslog', fields: fieldsOf(m.bytes, log), position: m.position }));
    try {
      const sum = await ingestRecords(vault, records, { principal: p, attrs: c.attrs });
      stats.stored += sum.stored;
      for (const a of sum.appends) opts.metrics?.appended.inc({ log: a.log }, a.count);
      for (const o of sum.outcomes) if (o.status === 'rejected') reject(c.address, o.code);
      return [];
    } catch (e) {
      if (retriable(e)) {
        const code = (e as { code: string }).code;
        warnSometimes(`retry:${code}`, { code, reason: (e as Error).message, messages: items.length }, 'syslog: the vault pushed back; reading pauses and the batch is retried');
        return items;
      }
      log.error({ err: e, messages: items.length, address: c.address }, 'syslog: storing a batch failed; its messages are not stored');
      reject(c.address, isCustodyError(e) ? e.code : 'INTERNAL', items.length);
      return [];
    }
  };

  /** Appends queued messages, a batch at a time, until the queue is empty. One runs at a time. */
  const flushLoop = async (): Promise<void> => {
    while (queue.length > 0 && !revoked()) {
      const p = checkPrincipal();
      if (!p) return stopRevoked();
      const batch = queue.splice(0, batchMessages);
      const byConn = new Map<Conn, Pending[]>();
      for (const m of batch) {
        const l = byConn.get(m.conn);
        if (l) l.push(m);
        else byConn.set(m.conn, [m]);
      }
      // One append per connection (their attributes differ), all in flight together: the
      // sequencer writes them to its journal as one group.
      const retry = (await Promise.all([...byConn.values()].map((items) => storeGroup(items, p)))).flat();
      if (revoked()) return;
      let done = 0;
      for (const m of batch) done += m.bytes.length;
      for (const m of retry) done -= m.bytes.length;
      setQueued(queuedBytes - done);
      if (retry.length > 0) {
        stats.pushbacks++;
        queue = [...retry, ...queue];
        if (closing && Date.now() > closeDeadline) return;
        backoff = true;
        pauseAll();
        await new Promise((r) => setTimeout(r, closing ? Math.min(200, retryDelay) : retryDelay));
        backoff = false;
      }
      maybeResume();
    }
  };

  const startFlush = (): Promise<void> => {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = null;
    if (!flushing) {
      const run: Promise<void> = flushLoop()
        .catch((e: unknown) => log.error({ err: e }, 'syslog: the batch loop failed'))
        .finally(() => {
          if (flushing === run) flushing = null;
          backoff = false;
          maybeResume();
          if (queue.length > 0 && !stopped && !closing) scheduleFlush();
        });
      flushing = run;
    }
    return flushing;
  };

  const scheduleFlush = (): void => {
    if (flushing || stopped || closing) return;
    if (queue.length >= batchMessages) void startFlush();
    else flushTimer ??= setTimeout(() => void startFlush(), batchInterval);
  };

  const onFrame = (c: Conn, e: FrameEvent): void => {
    c.position++;
    stats.received++;
    if (e.kind === 'oversize') return reject(c.address, 'TOO_LARGE');
    if (syslogPri(e.bytes) === null) return reject(c.address, 'NOT_SYSLOG');
    if (stopped) {
      stats.dropped++;
      return;
    }
    queue.push({ conn: c, bytes: e.bytes, position: c.position });
    setQueued(queuedBytes + e.bytes.length);
    if (queuedBytes >= maxQueued) pauseAll();
    scheduleFlush();
  };

  const accept = (socket: Socket | TLSSocket): void => {
    const address = plainAddress(socket.remoteAddress);
    socket.on('error', (err) => log.debug({ err, address }, 'syslog connection error'));
    if (stopped || closing) {
      socket.destroy();
      return;
    }
    const attrs: Record<string, string> = { transport: `syslog-${transport}` };
    const peer = attrValue(address);
    if (peer) attrs['peer'] = peer;
    if (opts.tls?.requestCert) {
      const cn = (socket as TLSSocket).getPeerCertificate()?.subject?.CN;
      const name = attrValue(Array.isArray(cn) ? cn.join(',') : (cn ?? ''));
      if (name) attrs['tlsPeer'] = name;
    }
    const now = Date.now();
    const c: Conn = { socket, address, attrs, framer: new SyslogFramer(maxFrame), position: 0, frameSince: now, lastData: now };
    conns.add(c);
    stats.accepted++;
    stats.connections = conns.size;
    socket.setKeepAlive(true, 60_000);
    socket.on('close', () => dropConn(c));
    socket.on('end', () => {
      if (!conns.has(c)) return;
      const before = c.framer.buffered;
      const { truncated } = c.framer.end((e) => onFrame(c, e));
      partialBytes += c.framer.buffered - before;
      if (truncated) {
        c.position++;
        reject(address, 'TRUNCATED');
      }
    });
    socket.on('data', (chunk: Buffer) => {
      if (!conns.has(c)) return;
      const t = Date.now();
      c.lastData = t;
      const before = c.framer.buffered;
      const wasIn = c.framer.inFrame;
      let failure: unknown = null;
      try {
        c.framer.push(chunk, (e) => {
          c.frameSince = t;
          onFrame(c, e);
        });
      } catch (err) {
        failure = err;
      }
      partialBytes += c.framer.buffered - before;
      if (failure) {
        dropConn(c);
        if (failure instanceof SyslogFramingError) refuse(address, failure.reason, failure.message, socket);
        else {
          log.error({ err: failure, address }, 'syslog: reading a connection failed');
          refuse(address, 'internal-error', 'The listener failed reading this connection.', socket);
        }
        return;
      }
      if (!wasIn && c.framer.inFrame) c.frameSince = t;
      if (partialBytes > maxPartial) {
        dropConn(c);
        refuse(address, 'server-busy', `Unfinished frames on all connections exceed ${maxPartial} bytes.`, socket);
      }
    });
    if (paused) socket.pause();
  };

  let server: NetServer | TlsServer;
  if (opts.tls) {
    const t = opts.tls;
    const tlsServer = createTlsServer({
      key: t.key,
      cert: t.cert,
      ca: t.ca,
      requestCert: !!t.requestCert,
      rejectUnauthorized: !!t.requestCert,
      minVersion: 'TLSv1.2',
      handshakeTimeout: Math.min(frameTimeout, 120_000),
    });
    tlsServer.on('secureConnection', accept);
    tlsServer.on('tlsClientError', (err, s) => {
      refuse(plainAddress(s.remoteAddress), 'tls-handshake-failed', err.message.slice(0, 200));
      s.destroy();
    });
    server = tlsServer;
  } else {
    server = createTcpServer(accept);
  }
  // Beyond maxConnections the server closes new sockets itself and tells us ("drop").
  server.maxConnections = maxConnections;
  server.on('drop', (d?: { remoteAddress?: string }) => refuse(plainAddress(d?.remoteAddress), 'too-many-connections', `${maxConnections} connections are open already.`));
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('error', (err) => log.error({ err }, 'syslog listener error'));

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    const onErr = (e: NodeJS.ErrnoException): void => {
      server.off('listening', onOk);
      reject(e.code === 'EADDRINUSE' ? new CustodyError('CONFIG', `Port ${opts.port} on ${host} is already in use; pass another syslog port.`) : e);
    };
    const onOk = (): void => {
      server.off('error', onErr);
      resolve();
    };
    server.once('error', onErr);
    server.once('listening', onOk);
    server.listen(opts.port, host);
  });
  const addr = server.address();
  if (addr && typeof addr === 'object') port = addr.port;

  // A sweep a second (faster with short test timeouts): the token, slow and idle
  // connections, the rejection summaries.
  const sweep = setInterval(
    () => {
      if (stopped) return;
      if (!checkPrincipal()) return stopRevoked();
      reportRejections();
      if (paused) return;
      const now = Date.now();
      for (const c of [...conns]) {
        if (c.framer.inFrame && now - c.frameSince > frameTimeout) {
          dropConn(c);
          refuse(c.address, 'frame-timeout', `A frame was not complete ${frameTimeout} ms after it began.`, c.socket);
        } else if (now - c.lastData > idleTimeout) {
          log.debug({ address: c.address }, 'syslog: closing an idle connection');
          dropConn(c);
          c.socket.destroy();
        }
      }
    },
    Math.max(20, Math.min(1000, Math.floor(frameTimeout / 2), Math.floor(idleTimeout / 2))),
  );
  sweep.unref();

  let closed: Promise<void> | null = null;
  log.info({ host, port, transport, principal: principal.name }, 'syslog listener started');

  return {
    port,
    get principal() {
      return principal;
    },
    get stats() {
      return { ...stats, refused: { ...stats.refused }, rejected: { ...stats.rejected } };
    },
    close() {
      closed ??= (async () => {
        closing = true;
        closeDeadline = Date.now() + 5_000;
        const listening = new Promise<void>((r) => server.close(() => r()));
        for (const c of conns) c.socket.pause();
        // Store what was received while the vault is still open, then let go of everything.
        while (queue.length > 0 && !revoked() && Date.now() <= closeDeadline) await startFlush();
        if (flushing) await flushing;
        stopped = true;
        clearInterval(sweep);
        if (flushTimer) clearTimeout(flushTimer);
        stats.dropped += queue.length;
        queue = [];
        setQueued(0);
        reportRejections();
        for (const c of [...conns]) dropConn(c);
        for (const s of sockets) s.destroy();
        await listening;
        if (!revoked()) stats.state = 'closed';
      })();
      return closed;
    },
  };
}
