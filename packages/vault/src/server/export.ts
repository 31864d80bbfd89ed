/**
 * Evidence bundles over HTTP (auditor): the entries a search query matches, or an explicit
 * list, with their records, tlog-proofs, the signed checkpoints and the keys, as one zip
 * streamed as it is built (docs/EVIDENCE.md).
 *
 *   GET  /v1/export?q=&from=&to=&limit=     the matches of a search query (needs the search index)
 *   POST /v1/export {"entries":[{"log","index"}…]}
 *
 * Everything that can be refused is checked before the first byte goes out (a JSON error);
 * a failure while streaming (storage damage, the client going away) aborts the response, so
 * a client never keeps a truncated bundle as if it were whole.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PassThrough } from 'node:stream';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { auditContext } from './auth.js';
import { prepareExport, writeExport, MAX_EXPORT_ENTRIES, type ExportRef, type PreparedExport } from '../evidence/index.js';

const AUDITOR = { roles: ['auditor' as const] };

/** What export needs from the search index (search/index.ts `SearchIndex`). */
export interface ExportSearch {
  iterate(q: string, opts: { from?: string; to?: string; order?: 'asc' | 'desc' }): Iterable<{ log: string; index: number; time?: string | number | null }>;
}

function parseLimit(v: unknown): number {
  if (v === undefined || v === '') return MAX_EXPORT_ENTRIES;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^[0-9]{1,7}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_EXPORT_ENTRIES) {
    throw new CustodyError('BAD_REQUEST', `limit must be a whole number from 1 to ${MAX_EXPORT_ENTRIES.toLocaleString('en-US')}; got ${JSON.stringify(v)}.`);
  }
  return n;
}

function optionalText(v: unknown, name: string): string | null {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string' || v.length > 4096) throw new CustodyError('BAD_REQUEST', `${name} must be a string of at most 4096 characters.`);
  return v;
}

/** "20250102T030405Z" */
function compactTime(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

export async function exportRoutes(app: FastifyInstance, opts: { vault: Vault; search?: ExportSearch }): Promise<void> {
  const { vault, search } = opts;

  const stream = async (req: FastifyRequest, reply: FastifyReply, p: PreparedExport): Promise<FastifyReply> => {
    await vault.audit({
      type: 'evidence.exported',
      ...auditContext(req),
      query: p.query,
      from: p.from,
      to: p.to,
      count: p.count,
      logs: Object.fromEntries(p.logs.map((l) => [l.name, { size: l.checkpoint.size, items: l.items.length }])),
    });
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    const sink = async (chunk: Buffer): Promise<void> => {
      if (body.destroyed) throw new Error('the client went away');
      if (!body.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            body.off('drain', done);
            body.off('close', done);
            resolve();
          };
          body.on('drain', done);
          body.on('close', done);
        });
        if (body.destroyed) throw new Error('the client went away');
      }
    };
    writeExport(p, sink).then(
      () => body.end(),
      (e: unknown) => {
        const gone = body.destroyed;
        req.log[gone ? 'info' : 'error']({ err: e, count: p.count }, gone ? 'the client left before the evidence bundle was complete' : 'evidence export failed while streaming; the response was cut off');
        body.destroy(e instanceof Error ? e : new Error(String(e)));
        // The audit log said "exported": say that it was not completed, and why.
        void vault.audit({ type: 'evidence.export.failed', ...auditContext(req), count: p.count, reason: gone ? 'client went away' : (e as Error)?.message ?? String(e) }).catch(() => undefined);
      },
    );
    return reply
      .type('application/zip')
      .header('Content-Disposition', `attachment; filename="custody-evidence-${compactTime(p.created)}.zip"`)
      .header('Cache-Control', 'no-store')
      .header('X-Custody-Entries', String(p.count))
      .send(body);
  };

  app.get<{ Querystring: { q?: string; from?: string; to?: string; limit?: string } }>('/v1/export', { config: AUDITOR }, async (req, reply) => {
    const q = optionalText(req.query.q, 'q');
    const from = optionalText(req.query.from, 'from');
    const to = optionalText(req.query.to, 'to');
    const limit = parseLimit(req.query.limit);
    if (q === null) throw new CustodyError('BAD_REQUEST', 'Give the search query as q= (docs/SEARCH.md), or POST /v1/export with {"entries":[{"log","index"}…]}.');
    if (!search) {
      // As GET /v1/search answers then (server/search.ts).
      throw new CustodyError('NOT_READY', 'This server runs without its search index (it was started with --no-search), so it cannot export a query; restart it without that option, or POST /v1/export with {"entries":[{"log","index"}…]}.');
    }
    const hits = search.iterate(q, { ...(from ? { from } : {}), ...(to ? { to } : {}), order: 'asc' });
    return stream(req, reply, prepareExport(vault, { refs: hits, query: q, from, to, limit }));
  });

  app.post<{ Body: unknown }>('/v1/export', { config: AUDITOR, bodyLimit: 16 * 1024 * 1024 }, async (req, reply) => {
    const b = req.body;
    const entries = typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as { entries?: unknown }).entries : undefined;
    if (!Array.isArray(entries)) throw new CustodyError('BAD_REQUEST', 'Send a JSON object {"entries":[{"log":"<log>","index":<n>}…]}.');
    const limit = parseLimit((b as { limit?: unknown }).limit);
    if (entries.length > MAX_EXPORT_ENTRIES * 2) {
      throw new CustodyError('BAD_REQUEST', `An evidence bundle holds at most ${MAX_EXPORT_ENTRIES.toLocaleString('en-US')} entries; this request lists ${entries.length.toLocaleString('en-US')}.`, { limit, max: MAX_EXPORT_ENTRIES });
    }
    const refs: ExportRef[] = entries.map((e: unknown, i) => {
      const x = e as { log?: unknown; index?: unknown } | null;
      if (typeof x !== 'object' || x === null || typeof x.log !== 'string' || typeof x.index !== 'number' || !Number.isSafeInteger(x.index) || x.index < 0) {
        throw new CustodyError('BAD_REQUEST', `entries[${i}] must be {"log":"<log name>","index":<whole number>}.`);
      }
      return { log: x.log, index: x.index };
    });
    return stream(req, reply, prepareExport(vault, { refs, query: null, from: null, to: null, limit }));
  });
}
