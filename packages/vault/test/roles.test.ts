/**
 * The role × route × method matrix of ARCHITECTURE.md ("Roles"): every combination answers
 * as the table says, and every refusal lands in the vault's audit log.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, bearer, auditRecords, type InProcVault } from './support/inproc.js';
import { enrollTotp, type TotpDevice } from './support/totp.js';

type Who = 'anonymous' | 'bad-token' | 'writer' | 'auditor' | 'admin';
const WHO: Who[] = ['anonymous', 'bad-token', 'writer', 'auditor', 'admin'];

interface Case {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  body?: string;
  contentType?: string;
  /** Expected status per caller. */
  expect: Record<Who, number>;
  /** A sensitive admin action: the admin sends a current TOTP code (docs/ADMIN.md). */
  totp?: boolean;
}

const ndjson = '{"event":"matrix"}\n';
const allowed = (who: Who[], ok: number, refused = 403): Record<Who, number> =>
  Object.fromEntries(WHO.map((w) => [w, w === 'anonymous' || w === 'bad-token' ? 401 : who.includes(w) ? ok : refused])) as Record<Who, number>;
const always = (status: number): Record<Who, number> => Object.fromEntries(WHO.map((w) => [w, status])) as Record<Who, number>;

const CASES: Case[] = [
  // public
  { method: 'GET', url: '/healthz', expect: always(200) },
  { method: 'GET', url: '/readyz', expect: always(200) },
  { method: 'GET', url: '/metrics', expect: always(200) },
  // writer: append only
  { method: 'POST', url: '/v1/logs/local/entries', body: ndjson, contentType: 'application/x-ndjson', expect: allowed(['writer'], 200) },
  { method: 'POST', url: '/v1/logs/audit/entries', body: ndjson, contentType: 'application/x-ndjson', expect: allowed([], 200) },
  // auditor: read the log, proofs
  { method: 'GET', url: '/v1/logs', expect: allowed(['auditor', 'admin'], 200) },
  { method: 'GET', url: '/logs/local/checkpoint', expect: allowed(['auditor'], 200) },
  { method: 'GET', url: '/logs/local/tile/0/000.p/1', expect: allowed(['auditor'], 200) },
  { method: 'GET', url: '/logs/local/tile/entries/000.p/1', expect: allowed(['auditor'], 200) },
  { method: 'GET', url: '/v1/logs/local/entries/0', expect: allowed(['auditor'], 200) },
  { method: 'GET', url: '/v1/logs/local/proofs/consistency?from=0', expect: allowed(['auditor'], 200) },
  { method: 'GET', url: '/v1/logs/local/proofs/inclusion?index=0', expect: allowed(['auditor'], 200) },
  { method: 'GET', url: '/logs/audit/checkpoint', expect: allowed(['auditor'], 200) },
  // admin: principals
  { method: 'GET', url: '/v1/principals', expect: allowed(['admin'], 200) },
  { method: 'POST', url: '/v1/principals', body: '{"name":"NAME","role":"auditor"}', contentType: 'application/json', expect: allowed(['admin'], 201), totp: true },
  // identity
  { method: 'GET', url: '/v1/whoami', expect: allowed(['writer', 'auditor', 'admin'], 200) },
  // nobody edits or deletes log data, whoever asks
  ...(['PUT', 'PATCH', 'DELETE'] as const).flatMap((method) =>
    ['/v1/logs/local/entries/0', '/v1/logs/local/entries', '/logs/local/checkpoint', '/logs/local/tile/entries/000.p/1', '/logs/local/tile/0/000.p/1', '/v1/logs/local', '/v1/logs'].map(
      (url): Case => ({ method, url, body: method === 'DELETE' ? undefined : '{}', contentType: 'application/json', expect: always(405) }),
    ),
  ),
  { method: 'POST', url: '/logs/local/checkpoint', body: 'x', contentType: 'text/plain', expect: always(405) },
  { method: 'POST', url: '/logs/local/tile/entries/000', body: 'x', contentType: 'application/octet-stream', expect: always(405) },
];

let v: InProcVault;
let totp: TotpDevice;
before(async () => {
  v = await startInProc({ auditFloodLimit: 100_000 }); // every refusal in full: the test counts them
  totp = await enrollTotp(v.app, v.tokens.admin);
  // one entry so the read routes have something to read
  const r = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries?wait=checkpoint', headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: ndjson });
  assert.equal(r.statusCode, 200);
});
after(async () => v.close());

let n = 0;
for (const c of CASES) {
  for (const who of WHO) {
    test(`${who} ${c.method} ${c.url} → ${c.expect[who]}`, async () => {
      const headers: Record<string, string> = {};
      if (who === 'bad-token') headers.authorization = 'Bearer cst_' + 'A'.repeat(43);
      else if (who !== 'anonymous') headers.authorization = `Bearer ${v.tokens[who]}`;
      if (c.contentType) headers['content-type'] = c.contentType;
      if (c.totp && who === 'admin') headers['x-custody-totp'] = await totp.next();
      const payload = c.body?.replace('NAME', `matrix-${++n}`);
      const r = await v.app.inject({ method: c.method, url: c.url, headers, payload });
      assert.equal(r.statusCode, c.expect[who], `${who} ${c.method} ${c.url}: ${r.body.slice(0, 300)}`);
      if (r.statusCode >= 400) {
        const body = r.json<{ error: { code: string; message: string } }>();
        assert.equal(typeof body.error.code, 'string');
        assert.ok(body.error.message.length > 10);
        const code = { 401: 'UNAUTHENTICATED', 403: 'FORBIDDEN', 405: 'METHOD_NOT_ALLOWED' }[r.statusCode as 401 | 403 | 405];
        if (code) assert.equal(body.error.code, code);
      }
      if (r.statusCode === 405) assert.ok(r.headers.allow, 'a 405 names the allowed method');
    });
  }
}

test('every refusal is recorded in the audit log, with who, what and from where', async () => {
  const records = await auditRecords(v);
  const refused = records.filter((r) => r.type === 'request.refused');
  const tamper = records.filter((r) => r.type === 'tamper.attempt');
  const authFailed = records.filter((r) => r.type === 'auth.failed');
  const expect403 = CASES.reduce((s, c) => s + WHO.filter((w) => c.expect[w] === 403).length, 0);
  const expect405 = CASES.reduce((s, c) => s + WHO.filter((w) => c.expect[w] === 405).length, 0);
  const expect401 = CASES.reduce((s, c) => s + WHO.filter((w) => c.expect[w] === 401).length, 0);
  assert.equal(refused.length, expect403);
  assert.equal(tamper.length, expect405);
  assert.equal(authFailed.length, expect401);
  const writerRead = refused.find((r) => r.kind === 'writer-read' && r.path === '/logs/local/checkpoint');
  assert.ok(writerRead, 'a writer reading is recorded as writer-read');
  assert.equal((writerRead.principal as { role: string }).role, 'writer');
  assert.ok(refused.some((r) => r.kind === 'auditor-write' && r.path === '/v1/logs/local/entries'));
  assert.ok(tamper.some((r) => r.method === 'DELETE' && r.path === '/v1/logs/local/entries/0' && (r.principal as { role: string } | null)?.role === 'admin'));
  assert.ok(authFailed.some((r) => r.reason === 'unknown token'));
  assert.ok(authFailed.every((r) => typeof r.address === 'string'));
  // and no token ever reaches the audit log
  const all = JSON.stringify(records);
  for (const t of Object.values(v.tokens)) assert.ok(!all.includes(t));
});

test('admin principal changes are recorded in the audit log', async () => {
  const records = await auditRecords(v);
  const created = records.filter((r) => r.type === 'admin.principal.created');
  assert.equal(created.length, 1);
  assert.equal((created[0]!.principal as { role: string }).role, 'admin');
});
