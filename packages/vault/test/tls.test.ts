/** HTTPS: the API over TLS with a certificate and key from files; a mismatched pair is a clear error. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { initVault, Vault } from '../src/vault.js';
import { buildServer } from '../src/server/index.js';
import { loadTls } from '../src/cli/serve.js';
import { CustodyError } from '../src/errors.js';

function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

test('the API is served over TLS, and a certificate that does not match its key is refused clearly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = selfSigned(dir, 'a');
  const b = selfSigned(dir, 'b');
  assert.throws(() => loadTls(a.cert, b.key), (e: unknown) => e instanceof CustodyError && e.code === 'CONFIG' && /cannot be used together/.test(e.message));
  assert.throws(() => loadTls(a.cert, undefined), (e: unknown) => e instanceof CustodyError && e.code === 'CONFIG');

  const dataDir = join(dir, 'data');
  const init = initVault(dataDir);
  const logger = pino({ level: 'silent' });
  const vault = await Vault.open(dataDir, { logger });
  const app = await buildServer({ vault, logger, https: loadTls(a.cert, a.key) });
  t.after(async () => {
    await app.close();
    await vault.close();
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const auditor = init.tokens.find((x) => x.role === 'auditor')!.token;
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/logs', ca: readFileSync(a.cert), headers: { authorization: `Bearer ${auditor}` } }, (res) => {
      let s = '';
      res.on('data', (c) => (s += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(s) : reject(new Error(`${res.statusCode} ${s}`))));
    });
    req.on('error', reject);
    req.end();
  });
  assert.match(body, /"verifierKey"/);
});
