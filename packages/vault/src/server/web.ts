/**
 * The auditor web UI (packages/web, docs/WEB.md): a static build served without a token — the
 * page holds no data; every API call it makes carries the auditor's token.
 *
 *   GET /            the page, for browsers (Accept: text/html). The same path answers
 *                    Elasticsearch clients with the cluster handshake (ingest/protocols/bulk.ts):
 *                    a route constraint sends a request to the UI only when it asks for HTML,
 *                    which a browser navigation always does and an ES client never does.
 *   GET /index.html  the page, whatever the Accept header
 *   GET /app.js, /app.css, /favicon.svg
 *
 * Every answer carries a strict Content-Security-Policy (the page may talk to this vault only:
 * no external scripts, styles, fonts or connections), nosniff, no-referrer, and HSTS when the
 * vault runs TLS. When the UI was not built, a clear 503 says how to build it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CustodyError } from '../errors.js';
import { sendError } from './errors.js';

export const WEB_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export interface WebOptions {
  /** The server runs TLS: send Strict-Transport-Security. */
  tls: boolean;
  /** The built UI (default: $CUSTODY_WEB_DIR, else packages/web/dist next to this package). */
  dir?: string;
}

/** packages/web/dist, from packages/vault/dist/src/server/web.js. */
export function defaultWebDir(): string {
  return process.env['CUSTODY_WEB_DIR'] || resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../../web/dist');
}

const FILES: Record<string, { file: string; type: string }> = {
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

const CONSTRAINT = 'custodyBrowser';
type HandlerStore = ReturnType<Parameters<FastifyInstance['addConstraintStrategy']>[0]['storage']>;

/** "html" when the client asks for an HTML page (browsers navigating), else nothing. */
function wantsHtml(req: { headers: Record<string, string | string[] | undefined> }): string | undefined {
  const accept = req.headers['accept'];
  const a = Array.isArray(accept) ? accept.join(',') : accept;
  return typeof a === 'string' && /(^|,)\s*text\/html\s*(;|,|$)/i.test(a) ? 'html' : undefined;
}

function missingPage(): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Custody — web UI not built</title></head><body>
<h1>The auditor web UI is not built</h1>
<p>This vault is running, but it has no web UI to serve (the server log names the folder it looked in).</p>
<p>Build it with <code>npm run build</code> in the Custody source tree (or set <code>CUSTODY_WEB_DIR</code> to a built copy) and reload this page. The API and the <code>custody</code> CLI work without it.</p>
</body></html>`;
}

export async function webRoutes(app: FastifyInstance, opts: WebOptions): Promise<void> {
  const dir = opts.dir ?? defaultWebDir();
  if (!app.hasConstraintStrategy(CONSTRAINT)) {
    app.addConstraintStrategy({
      name: CONSTRAINT,
      storage: (): HandlerStore => {
        const handlers = new Map<unknown, Parameters<HandlerStore['set']>[1]>();
        return { get: (k) => handlers.get(k) ?? null, set: (k, v) => void handlers.set(k, v) };
      },
      deriveConstraint: (req) => wantsHtml(req),
      mustMatchWhenDerived: false,
    });
  }

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('Content-Security-Policy', WEB_CSP);
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('X-Frame-Options', 'DENY');
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    if (opts.tls) reply.header('Strict-Transport-Security', 'max-age=31536000');
    return payload;
  });

  const serve = async (path: string, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const f = FILES[path]!;
    let body: Buffer;
    try {
      body = await readFile(join(dir, f.file));
    } catch {
      // The folder is named in the server log only: the page is public.
      req.log.warn({ dir, file: f.file }, 'web UI not built: run npm run build, or set CUSTODY_WEB_DIR');
      reply.header('Retry-After', '60');
      if (wantsHtml(req)) return reply.code(503).type('text/html; charset=utf-8').header('Cache-Control', 'no-store').send(missingPage());
      return sendError(reply, new CustodyError('NOT_READY', `The web UI is not built (${f.file} is missing). Run \`npm run build\`, or set CUSTODY_WEB_DIR to a built copy. The API works without it.`));
    }
    // Not content-hashed file names: the browser revalidates each load (a 304 when unchanged),
    // so a new build shows at once.
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    reply.header('Cache-Control', 'no-cache').header('ETag', etag);
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.type(f.type).send(body);
  };

  const PUBLIC = { public: true };
  app.get('/', { config: PUBLIC, constraints: { [CONSTRAINT]: 'html' } }, (req, reply) => serve('/index.html', req, reply));
  for (const path of Object.keys(FILES)) {
    app.get(path, { config: PUBLIC }, (req, reply) => serve(path, req, reply));
  }
}
