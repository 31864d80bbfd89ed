/**
 * Serving the auditor UI (src/server/web.ts): GET / is the page for browsers and still the
 * Elasticsearch handshake for ES clients; the page and its assets carry a strict CSP; HSTS
 * over TLS; a clear 503 when the UI was not built.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { initVault, Vault } from '../src/vault.js';
import { buildServer } from '../src/server/index.js';
import { loadTls } from '../src/cli/serve.js';
import { WEB_CSP, defaultWebDir } from '../src/server/web.js';
import { startInProc, bearer, auditRecords, type InProcVault } from './support/inproc.js';

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';
const REQUIRED_CSP = ["default-src 'self'", "img-src 'self' data:", "style-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"];

let v: InProcVault;
before(async () => {
  v = await startInProc();
});
after(async () => {
  await v.close();
});

function assertSecurityHeaders(headers: Record<string, unknown>): void {
  const csp = String(headers['content-security-policy']);
  for (const d of REQUIRED_CSP) assert.ok(csp.split(';').map((s) => s.trim()).includes(d), `CSP lacks ${d}: ${csp}`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['referrer-policy'], 'no-referrer');
}

test('the built UI exists where the vault looks for it', () => {
  const html = readFileSync(join(defaultWebDir(), 'index.html'), 'utf8');
  assert.match(html, /<script type="module" src="app.js">/);
  // nothing in the page may come from another origin
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//);
});

test('GET / with Accept: text/html is the page, public, with the CSP and security headers', async () => {
  const r = await v.app.inject({ method: 'GET', url: '/', headers: { accept: BROWSER_ACCEPT } });
  assert.equal(r.statusCode, 200);
  assert.match(String(r.headers['content-type']), /^text\/html/);
  assert.match(r.body, /<title>Custody/);
  assertSecurityHeaders(r.headers);
  assert.equal(r.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
  assert.equal(r.headers['content-security-policy'], WEB_CSP);
  // a browser that happens to hold a token in an Authorization header still gets the page
  const withToken = await v.app.inject({ method: 'GET', url: '/', headers: { accept: BROWSER_ACCEPT, ...bearer(v.tokens.auditor) } });
  assert.equal(withToken.statusCode, 200);
  assert.match(withToken.body, /<title>Custody/);
  const head = await v.app.inject({ method: 'HEAD', url: '/', headers: { accept: 'text/html' } });
  assert.equal(head.statusCode, 200);
  assert.match(String(head.headers['content-type']), /^text\/html/);
});

test('GET / for Elasticsearch clients (no text/html in Accept) is still the cluster handshake, and still needs a token', async () => {
  const es = await v.app.inject({ method: 'GET', url: '/', headers: { accept: 'application/vnd.elasticsearch+json; compatible-with=8', ...bearer(v.tokens.writer) } });
  assert.equal(es.statusCode, 200);
  assert.equal(es.headers['x-elastic-product'], 'Elasticsearch');
  assert.equal(es.json<{ tagline: string }>().tagline, 'You Know, for Search');
  const plain = await v.app.inject({ method: 'GET', url: '/', headers: bearer(v.tokens.auditor) });
  assert.equal(plain.headers['x-elastic-product'], 'Elasticsearch');
  const anon = await v.app.inject({ method: 'GET', url: '/', headers: { accept: 'application/json' } });
  assert.equal(anon.statusCode, 401);
  assert.doesNotMatch(anon.body, /<html/);
});

test('the assets: right types, the same headers, no token needed; /index.html is the page for any client', async () => {
  const js = await v.app.inject({ method: 'GET', url: '/app.js' });
  assert.equal(js.statusCode, 200);
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  assertSecurityHeaders(js.headers);
  assert.match(js.body, /verifyInclusion|rootFromInclusionProof/, 'the proof checks are bundled into the page');
  assert.doesNotMatch(js.body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)[a-z0-9.-]+\.[a-z]{2,}\/[^\s"'`]*\.(js|css|woff2?)/i, 'no script, style or font from elsewhere');
  const etag = String(js.headers['etag']);
  assert.equal(js.headers['cache-control'], 'no-cache');
  const again = await v.app.inject({ method: 'GET', url: '/app.js', headers: { 'if-none-match': etag } });
  assert.equal(again.statusCode, 304);
  assert.equal(again.body, '');
  const css = await v.app.inject({ method: 'GET', url: '/app.css' });
  assert.match(String(css.headers['content-type']), /^text\/css/);
  assert.doesNotMatch(css.body, /@import|url\(\s*['"]?https?:/);
  const icon = await v.app.inject({ method: 'GET', url: '/favicon.svg' });
  assert.equal(icon.headers['content-type'], 'image/svg+xml');
  const index = await v.app.inject({ method: 'GET', url: '/index.html', headers: { accept: '*/*' } });
  assert.equal(index.statusCode, 200);
  assert.match(index.body, /<title>Custody/);
  // serving the page is not an authentication failure: nothing lands in the audit log
  const audit = await auditRecords(v);
  assert.equal(audit.filter((e) => e['type'] === 'auth.failed' && /^\/(app\.|index\.html|favicon)/.test(String(e['path']))).length, 0);
  // only the listed files: no directory traversal into the build folder
  for (const url of ['/app.js.map', '/dist/app.js', '/..%2Fpackage.json', '/test/core.test.js']) {
    const r = await v.app.inject({ method: 'GET', url });
    assert.equal(r.statusCode, 404, url);
  }
});

function selfSigned(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'c.crt');
  const key = join(dir, 'c.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

test('over TLS the page carries Strict-Transport-Security; without a built UI the answer is a clear 503', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-web-'));
  const dataDir = join(dir, 'data');
  initVault(dataDir);
  const logger = pino({ level: 'silent' });
  const vault = await Vault.open(dataDir, { logger });
  const c = selfSigned(dir);
  const app = await buildServer({ vault, logger, https: loadTls(c.cert, c.key) });
  const saved = process.env['CUSTODY_WEB_DIR'];
  process.env['CUSTODY_WEB_DIR'] = join(dir, 'no-build-here');
  const bare = await buildServer({ vault, logger });
  if (saved === undefined) delete process.env['CUSTODY_WEB_DIR'];
  else process.env['CUSTODY_WEB_DIR'] = saved;
  t.after(async () => {
    await app.close();
    await bare.close();
    await vault.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const tls = await app.inject({ method: 'GET', url: '/', headers: { accept: BROWSER_ACCEPT } });
  assert.equal(tls.statusCode, 200);
  assert.match(String(tls.headers['strict-transport-security']), /^max-age=\d{7,}/);
  assertSecurityHeaders(tls.headers);

  const page = await bare.inject({ method: 'GET', url: '/', headers: { accept: BROWSER_ACCEPT } });
  assert.equal(page.statusCode, 503);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(page.body, /web UI is not built/);
  assert.match(page.body, /npm run build/);
  assertSecurityHeaders(page.headers);
  const js = await bare.inject({ method: 'GET', url: '/app.js' });
  assert.equal(js.statusCode, 503);
  const err = js.json<{ error: { code: string; message: string } }>().error;
  assert.equal(err.code, 'NOT_READY');
  assert.match(err.message, /web UI is not built/);
  // the API is unaffected
  const health = await bare.inject({ method: 'GET', url: '/healthz' });
  assert.equal(health.statusCode, 200);
});
