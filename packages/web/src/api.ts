/**
 * The vault's HTTP API, as this page uses it. Every call carries the auditor token; every
 * failure becomes an ApiError with the vault's code and message ({"error":{code,message,details}},
 * docs/API.md), so a page can show the vault's own words.
 */
import { token } from './session.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> | undefined = undefined,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Called when the vault answers 401 to a signed-in page (token revoked or wrong). */
let onUnauthenticated: ((e: ApiError) => void) | null = null;
export function setUnauthenticatedHandler(f: (e: ApiError) => void): void {
  onUnauthenticated = f;
}

function headers(extra: Record<string, string> = {}, tok: string | null = token()): Record<string, string> {
  return { ...(tok ? { authorization: `Bearer ${tok}` } : {}), ...extra };
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const j = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    if (j.error && typeof j.error.code === 'string') {
      return new ApiError(res.status, j.error.code, typeof j.error.message === 'string' ? j.error.message : j.error.code, (j.error.details ?? undefined) as Record<string, unknown> | undefined);
    }
  } catch {
    /* not our error body */
  }
  return new ApiError(res.status, res.status === 404 ? 'NOT_FOUND' : 'HTTP_ERROR', `The vault answered HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}.`);
}

export async function request(method: string, path: string, opts: { body?: unknown; accept?: string; token?: string; signal?: AbortSignal } = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: headers({ accept: opts.accept ?? 'application/json', ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) }, opts.token ?? token()),
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      cache: 'no-store',
      credentials: 'omit',
      signal: opts.signal ?? null,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'NETWORK', `The vault could not be reached (${(e as Error).message}). Check that it is running and try again.`);
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && opts.token === undefined && onUnauthenticated) onUnauthenticated(err);
    throw err;
  }
  return res;
}

export async function getJson<T>(path: string, opts: { token?: string; signal?: AbortSignal } = {}): Promise<T> {
  return (await (await request('GET', path, opts)).json()) as T;
}

export async function getText(path: string): Promise<string> {
  return (await request('GET', path, { accept: 'text/plain' })).text();
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  return (await (await request('POST', path, { body })).json()) as T;
}

/** Builds "path?a=1&b=2", leaving out empty values. */
export function withQuery(path: string, q: Record<string, string | number | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

export const enc = encodeURIComponent;

// ---- shapes of the answers this UI reads ------------------------------------------------------

export interface LogRow {
  name: string;
  origin: string;
  region: string;
  kind: string;
  verifierKey: string;
  size: number;
  pending: number;
  checkpointUrl: string;
}

export interface EntryAnswer {
  log: string;
  index: number;
  treeSize: number;
  leafHash: string;
  envelope: { origin: string; region: string; source: string; producer: string; received: string; attrs?: Record<string, string>; salt: string; blob: { sha256: string; size: number } | null };
  record: string;
  recordEncoding: 'utf8' | 'base64';
  entry: string;
  inclusionProof: string[];
  checkpoint: string;
  proofFile: string;
}

/** GET /v1/search (docs/SEARCH.md). */
export interface SearchHit {
  log: string;
  index: number;
  time: number | string | null;
  received?: number | string | null;
  source?: string | null;
  region?: string | null;
  account?: string | null;
  actor?: string | null;
  action?: string | null;
  outcome?: string | null;
  srcIp?: string | null;
  dstIp?: string | null;
  severity?: string | null;
  resource?: string | null;
  ocsfClass?: number | null;
  entry?: string;
}

export interface SearchAnswer {
  query: string;
  hits: SearchHit[];
  next: string | null;
  total: number;
  totalCapped: boolean;
  lag?: Record<string, number>;
}

/** GET /v1/stats/ingest. */
export interface IngestStats {
  buckets: Array<{ t: string; source: string; count: number }>;
}

let logsCache: { at: number; logs: LogRow[] } | null = null;

/** GET /v1/logs, cached for a few seconds (several views ask at once). */
export async function listLogs(fresh = false): Promise<LogRow[]> {
  if (!fresh && logsCache && Date.now() - logsCache.at < 5000) return logsCache.logs;
  const r = await getJson<{ logs: LogRow[] }>('/v1/logs');
  logsCache = { at: Date.now(), logs: r.logs };
  return r.logs;
}

export function forgetLogs(): void {
  logsCache = null;
}
