/**
 * The auditor's search API (docs/SEARCH.md):
 *
 *   GET /v1/search?q=&from=&to=&order=desc|asc&limit=1..1000&cursor=
 *   GET /v1/stats/ingest?log=&bucket=minute|hour&from=&to=
 *
 * Answers come from the search index, which is never evidence: every hit names its entry,
 * whose record and inclusion proof come from the log itself. A bad query is BAD_QUERY with the
 * position of the problem and what was expected there.
 */
import type { FastifyInstance } from 'fastify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import type { SearchResult, SearchOptions, IngestBucket, TimeInput } from '../search/index.js';

const AUDITOR = { roles: ['auditor' as const] };

/** What the routes need of a search index: the embedded one (search/search-index.ts) or a shared vault's (search/pg-index.ts). */
export interface SearchService {
  query(q: string, opts?: SearchOptions): SearchResult | Promise<SearchResult>;
  ingestStats(opts?: { log?: string; bucket?: 'minute' | 'hour'; from?: TimeInput; to?: TimeInput }): { log: string | null; bucket: 'minute' | 'hour'; from: string; to: string; buckets: IngestBucket[] } | Promise<{ log: string | null; bucket: 'minute' | 'hour'; from: string; to: string; buckets: IngestBucket[] }>;
}

type Query = Record<string, unknown>;

/** A single query parameter (a repeated one is refused rather than guessed at). */
function param(q: Query, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new CustodyError('BAD_REQUEST', `Give ${name} once.`);
  return v;
}

function notEnabled(): CustodyError {
  return new CustodyError('NOT_READY', 'This server runs without its search index: it was started with --no-search, or the index could not be opened (the server log says why). Restart it without that option, or run `custody reindex`.');
}

export async function searchRoutes(app: FastifyInstance, opts: { vault: Vault; search?: SearchService }): Promise<void> {
  const { search } = opts;

  app.get('/v1/search', { config: AUDITOR }, async (req) => {
    if (!search) throw notEnabled();
    const q = (req.query ?? {}) as Query;
    const limitText = param(q, 'limit');
    let limit: number | undefined;
    if (limitText !== undefined) {
      if (!/^[0-9]{1,4}$/.test(limitText)) throw new CustodyError('BAD_REQUEST', 'limit must be a whole number from 1 to 1000.');
      limit = Number(limitText);
    }
    const order = param(q, 'order');
    if (order !== undefined && order !== 'asc' && order !== 'desc') throw new CustodyError('BAD_REQUEST', 'order must be "desc" (newest first, the default) or "asc".');
    return search.query(param(q, 'q') ?? '', {
      from: param(q, 'from'),
      to: param(q, 'to'),
      order,
      limit,
      cursor: param(q, 'cursor') || undefined,
    });
  });

  app.get('/v1/stats/ingest', { config: AUDITOR }, async (req) => {
    if (!search) throw notEnabled();
    const q = (req.query ?? {}) as Query;
    const bucket = param(q, 'bucket');
    if (bucket !== undefined && bucket !== 'minute' && bucket !== 'hour') throw new CustodyError('BAD_REQUEST', 'bucket must be "minute" or "hour".');
    return search.ingestStats({ log: param(q, 'log') || undefined, bucket, from: param(q, 'from'), to: param(q, 'to') });
  });
}
