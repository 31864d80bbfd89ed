/** A small HTTP client for the Custody API (Node's fetch). Errors keep the server's code. */
import { CustodyError, ERROR_CODES, type ErrorCode } from '../errors.js';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  url?: string;
  token?: string;
}

export class CustodyClient {
  readonly base: string;
  private readonly token: string | undefined;

  constructor(opts: ClientOptions) {
    const url = opts.url ?? process.env.CUSTODY_URL ?? 'http://127.0.0.1:8700';
    try {
      this.base = new URL(url).toString().replace(/\/+$/, '');
    } catch {
      throw new CustodyError('CONFIG', `--url ${JSON.stringify(url)} is not a URL; for example http://127.0.0.1:8700.`);
    }
    this.token = opts.token ?? process.env.CUSTODY_TOKEN;
  }

  requireToken(): void {
    if (!this.token) throw new CustodyError('CONFIG', 'No token: pass --token or set CUSTODY_TOKEN.');
  }

  async request(method: string, path: string, init: { body?: Uint8Array | string; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await fetch(this.base + path, { method, headers, body: init.body });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      throw new CustodyError('CONFIG', `Cannot reach Custody at ${this.base} (${cause ?? (e as Error).message}). Is the server running? Check --url or CUSTODY_URL.`);
    }
    if (!res.ok) {
      const text = await res.text();
      let code = `HTTP_${res.status}`;
      let message = text.slice(0, 500);
      let details: unknown;
      try {
        const j = JSON.parse(text) as { error?: { code?: string; message?: string; details?: unknown } };
        if (j.error?.code) {
          code = j.error.code;
          message = j.error.message ?? message;
          details = j.error.details;
        }
      } catch {
        /* not JSON */
      }
      throw new ApiError(res.status, code, message, details);
    }
    return res;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return (await res.json()) as T;
  }

  async bytes(path: string): Promise<Uint8Array> {
    const res = await this.request('GET', path);
    return new Uint8Array(await res.arrayBuffer());
  }

  async text(path: string): Promise<string> {
    return (await this.request('GET', path)).text();
  }

  /**
   * POST /v1/ingest: one file's bytes exactly as stored (`gzip`: the raw .gz bytes, sent with
   * Content-Encoding: gzip). Throws ApiError: status 0 / code NETWORK when the server cannot
   * be reached; otherwise the server's status and code, with `retryAfter` (seconds, from the
   * Retry-After header) added to `details` when the server gave one.
   */
  async ingest(q: { source: string; name: string; object?: string; log?: string }, body: Uint8Array, opts: { gzip?: boolean; signal?: AbortSignal } = {}): Promise<IngestAnswer> {
    const query = new URLSearchParams({ source: q.source, name: q.name });
    if (q.object !== undefined) query.set('object', q.object);
    if (q.log !== undefined) query.set('log', q.log);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (opts.gzip) headers['content-encoding'] = 'gzip';
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.base}/v1/ingest?${query}`, { method: 'POST', headers, body, signal: opts.signal });
      text = await res.text();
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(0, 'NETWORK', `Cannot reach Custody at ${this.base} (${cause?.code ?? cause?.message ?? (e as Error).message}).`);
    }
    if (res.ok) return JSON.parse(text) as IngestAnswer;
    let code = `HTTP_${res.status}`;
    let message = text.slice(0, 500);
    let details: Record<string, unknown> = {};
    try {
      const j = JSON.parse(text) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } };
      if (j.error?.code) {
        code = j.error.code;
        message = j.error.message ?? message;
        details = { ...(j.error.details ?? {}) };
      }
    } catch {
      /* not JSON */
    }
    const retry = Number(res.headers.get('retry-after'));
    if (res.headers.has('retry-after') && Number.isFinite(retry)) details['retryAfter'] = retry;
    throw new ApiError(res.status, code, message, details);
  }
}

/** The answer of POST /v1/ingest. */
export interface IngestAnswer {
  source: string;
  stored: number;
  duplicates: number;
  rejected: number;
  ignored: number;
  appends: Array<{ log: string; first: number; count: number }>;
  errors: Array<{ position: number; code: string; error: string }>;
}

export function isKnownCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
