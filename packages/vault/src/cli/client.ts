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
}

export function isKnownCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
