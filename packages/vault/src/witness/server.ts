/**
 * `custody witness serve`: a C2SP tlog-witness (../shared/reference/transparency-log.md,
 * "Cosignatures and witnesses").
 *
 *   POST <prefix>/add-checkpoint
 *   body:  old <size>\n  <consistency proof, one base64 hash per line>  \n  <signed checkpoint>
 *
 * Answers (the spec's status codes):
 *   200  text/plain: the cosignature line (cosignature/v1, key type 0x04)
 *   400  malformed body, or old > the checkpoint's size
 *   403  no valid signature by the key configured for the origin
 *   404  unknown origin (and any other path)
 *   409  text/x.tlog.size "<size>\n": `old` is not the size this witness last cosigned
 *   413  body larger than MAX_BODY (our limit)
 *   422  the consistency proof does not verify, or the same size with another root
 *   405  not POST; 500 the state could not be saved (nothing was cosigned)
 *
 * Requests for one origin are serialized, and each compares `old` with the stored size and
 * saves the new state before answering (compare-and-swap): two checkpoints that do not extend
 * each other can never both be cosigned, even when they arrive at the same moment.
 */
import { createServer as createHttp, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  EMPTY_ROOT,
  bytesEqual,
  formatSignatureLine,
  fromBase64,
  isVerifyError,
  openNote,
  parseCheckpoint,
  parseNote,
  toBase64,
  verifyConsistency,
  MAX_NOTE_SIZE,
} from '@custody/verify';
import type { Logger } from 'pino';
import { nativeSha256 } from '../crypto/sha256.js';
import type { WitnessStore } from './store.js';

/** Largest request body: a 1 MiB note plus a 63-hash proof and the old line. */
export const MAX_BODY = MAX_NOTE_SIZE + 64 * 46 + 64;
/** Most proof lines: a consistency proof in a tree of < 2^63 leaves has at most 2·63 hashes. */
const MAX_PROOF_LINES = 128;

export interface WitnessAnswer {
  status: number;
  contentType: string;
  body: string;
}

const text = (status: number, body: string): WitnessAnswer => ({ status, contentType: 'text/plain; charset=utf-8', body: body.endsWith('\n') ? body : body + '\n' });

interface Parsed {
  old: number;
  proof: Uint8Array[];
  note: string;
}

function parseRequest(body: Buffer): Parsed | string {
  const s = body.toString('utf8');
  if (!Buffer.from(s, 'utf8').equals(body)) return 'the body is not valid UTF-8';
  const nl = s.indexOf('\n');
  if (nl < 0) return 'the body must start with a line "old <size>"';
  const m = /^old (0|[1-9][0-9]{0,15})$/.exec(s.slice(0, nl));
  if (!m) return 'the first line must be "old <size>" with a decimal size';
  const old = Number(m[1]);
  if (!Number.isSafeInteger(old)) return 'old size is too large';
  const proof: Uint8Array[] = [];
  let at = nl + 1;
  for (;;) {
    const e = s.indexOf('\n', at);
    if (e < 0) return 'no blank line between the proof and the checkpoint';
    const line = s.slice(at, e);
    at = e + 1;
    if (line === '') break;
    if (proof.length >= MAX_PROOF_LINES) return 'too many proof lines';
    try {
      proof.push(fromBase64(line, 32));
    } catch {
      return `proof line ${proof.length + 1} is not a base64 SHA-256 hash`;
    }
  }
  return { old, proof, note: s.slice(at) };
}

/** Serializes work per key (one origin's requests run one after another). */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}

export class Witness {
  private readonly mutex = new KeyedMutex();
  /** Stored sizes of origins, for tests and the status page. */
  constructor(
    readonly store: WitnessStore,
    private readonly log?: Logger,
    private readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  /** One add-checkpoint request, from its raw body to the answer. Never throws. */
  async addCheckpoint(body: Buffer): Promise<WitnessAnswer> {
    try {
      return await this.handle(body);
    } catch (e) {
      this.log?.error({ err: e }, 'add-checkpoint failed');
      return text(500, 'internal error; nothing was cosigned');
    }
  }

  private async handle(body: Buffer): Promise<WitnessAnswer> {
    const req = parseRequest(body);
    if (typeof req === 'string') return text(400, req);
    let origin: string;
    try {
      const note = parseNote(req.note);
      origin = note.body.slice(0, note.body.indexOf('\n'));
    } catch (e) {
      return text(400, `malformed checkpoint note: ${(e as Error).message}`);
    }
    const logKey = this.store.logVerifier(origin);
    if (!logKey) return text(404, 'unknown origin: this witness does not witness that log');
    let cpBody: string;
    try {
      cpBody = openNote(req.note, [logKey]).note.body;
    } catch (e) {
      if (isVerifyError(e, 'SIGNATURE_INVALID') || isVerifyError(e, 'NO_TRUSTED_SIGNATURE')) return text(403, 'the checkpoint has no valid signature by the key this witness trusts for that origin');
      return text(400, `malformed checkpoint note: ${(e as Error).message}`);
    }
    let cp;
    try {
      cp = parseCheckpoint(cpBody);
    } catch (e) {
      return text(400, (e as Error).message);
    }
    if (req.old > cp.size) return text(400, `old size ${req.old} is larger than the checkpoint size ${cp.size}`);
    return this.mutex.run(origin, () => {
      const st = this.store.state(origin);
      const have = st?.size ?? 0;
      // tlog-witness: `old` must be the size of the latest checkpoint cosigned for the origin.
      if (req.old !== have) return { status: 409, contentType: 'text/x.tlog.size', body: `${have}\n` };
      const oldRoot = st ? fromBase64(st.root, 32) : EMPTY_ROOT;
      if (req.old === 0) {
        // The proof MUST be empty from size zero; a size-zero tree has the empty root.
        if (req.proof.length > 0) return text(422, 'the consistency proof must be empty when old is 0');
        if (cp.size === 0 && !bytesEqual(cp.rootHash, EMPTY_ROOT)) return text(422, 'a checkpoint of size 0 must have the empty root');
      } else if (req.old === cp.size) {
        if (req.proof.length > 0 || !bytesEqual(oldRoot, cp.rootHash)) return text(422, 'same size as the cosigned checkpoint but another root (or a non-empty proof): the log forked');
      } else {
        try {
          verifyConsistency(req.old, cp.size, req.proof, oldRoot, cp.rootHash, nativeSha256);
        } catch {
          return text(422, `the consistency proof from ${req.old} to ${cp.size} does not verify: the log is not an extension of what this witness cosigned`);
        }
      }
      const t = this.now();
      const sig = this.store.signer.sign(cpBody, t);
      // Persist before answering: a cosignature is never out unless the state records it.
      this.store.saveState({ origin, size: cp.size, root: toBase64(cp.rootHash), checkpoint: req.note, cosignedAt: t });
      this.log?.info({ origin, size: cp.size, old: req.old }, 'cosigned');
      return { status: 200, contentType: 'text/plain; charset=utf-8', body: formatSignatureLine(sig) };
    });
  }
}

export interface WitnessServerOptions {
  host?: string;
  port?: number;
  /** URL path prefix before /add-checkpoint (default ""). */
  prefix?: string;
  tls?: { cert: Buffer; key: Buffer };
  logger?: Logger;
}

export interface WitnessServer {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      resolve('too-large');
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      n += c.length;
      if (n > limit) {
        over = true;
        chunks.length = 0;
        resolve('too-large');
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

export async function startWitnessServer(witness: Witness, o: WitnessServerOptions = {}): Promise<WitnessServer> {
  const prefix = (o.prefix ?? '').replace(/\/+$/, '');
  const path = `${prefix}/add-checkpoint`;
  const send = (res: ServerResponse, a: WitnessAnswer): void => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(a.status, { 'content-type': a.contentType, 'cache-control': 'no-store' });
    res.end(a.body);
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    void (async () => {
      const url = (req.url ?? '').split('?')[0];
      if (url !== path) {
        if (req.method === 'GET' && url === `${prefix}/`) return send(res, text(200, `custody witness ${witness.store.verifierKey}`));
        return send(res, text(404, 'not found'));
      }
      if (req.method !== 'POST') {
        res.setHeader('allow', 'POST');
        return send(res, text(405, 'use POST'));
      }
      const body = await readBody(req, MAX_BODY);
      if (body === 'too-large') {
        res.setHeader('connection', 'close');
        return send(res, text(413, `the body is larger than ${MAX_BODY} bytes`));
      }
      send(res, await witness.addCheckpoint(body));
    })().catch((e: unknown) => {
      o.logger?.error({ err: e }, 'witness request failed');
      send(res, text(500, 'internal error'));
    });
  };
  const server = o.tls ? createHttps({ cert: o.tls.cert, key: o.tls.key }, handler) : createHttp(handler);
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host ?? '127.0.0.1';
  return {
    server,
    port,
    url: `${o.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}${prefix}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}
