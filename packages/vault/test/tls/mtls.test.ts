/**
 * Mutual TLS for writers (`custody serve --tls-client-ca`, server/mtls.ts, docs/TLS.md), on a
 * real HTTPS server: a writer with a certificate from the writer CA appends; without one, or
 * with one from another CA, it gets a clear 401 (not a TLS failure) that is recorded in the
 * audit log; auditors and admins need no certificate. Certificates come from `custody tls`,
 * plus one issued by OpenSSL from the same CA.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { freePort, makeTempDir, readTokens, runCli, runProcess, waitFor } from '../support/server.js';
import { runServe } from '../support/syslog.js';

interface Answer {
  status: number;
  json: Record<string, unknown>;
}

interface ClientCert {
  cert: string;
  key: string;
}

function call(port: number, ca: Buffer, method: string, path: string, token: string, client?: ClientCert, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/x-ndjson';
    const req = request(
      { host: '127.0.0.1', servername: 'localhost', port, path, method, ca, headers, agent: false, ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}) },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = { text };
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function cli(args: string[]): Promise<Record<string, unknown>> {
  const r = await runCli([...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

test('writers need a client certificate from the writer CA; auditors and admins do not', async (t) => {
  const dir = makeTempDir('mtls');
  const server = await cli(['tls', 'self-signed', '--out', join(dir, 'server'), '--host', 'localhost', '--host', '127.0.0.1']);
  const ca = await cli(['tls', 'client-ca', '--out', join(dir, 'ca')]);
  const writer = await cli(['tls', 'client-cert', '--ca', String(ca['certificate']), '--ca-key', String(ca['key']), '--name', 'vector-prod', '--out', join(dir, 'clients')]);
  assert.equal(writer['issuer'], 'O=Custody, CN=Custody writers CA');
  // a stranger: a certificate from another CA
  const otherCa = await cli(['tls', 'client-ca', '--out', join(dir, 'other-ca'), '--name', 'Someone else']);
  const stranger = await cli(['tls', 'client-cert', '--ca', String(otherCa['certificate']), '--ca-key', String(otherCa['key']), '--name', 'vector-prod', '--out', join(dir, 'stranger')]);
  // a certificate OpenSSL issues from our CA (the CA works with other tools too)
  const ossl = { cert: join(dir, 'ossl.crt'), key: join(dir, 'ossl.key') };
  writeFileSync(join(dir, 'ext.cnf'), 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=fluent-bit', '-keyout', ossl.key, '-out', join(dir, 'ossl.csr')], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', join(dir, 'ossl.csr'), '-CA', String(ca['certificate']), '-CAkey', String(ca['key']), '-CAcreateserial', '-days', '1', '-extfile', join(dir, 'ext.cnf'), '-out', ossl.cert], { stdio: 'ignore' });
  assert.match(execFileSync('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', String(ca['certificate']), String(writer['certificate'])], { encoding: 'utf8' }), /: OK/);

  const data = join(dir, 'vault');
  assert.equal((await runCli(['init', '--data', data])).code, 0);
  const tokens = readTokens(data);
  const port = await freePort();
  const s = await runServe(['--data', data, '--port', String(port), '--checkpoint-interval', '20', '--tls-cert', String(server['certificate']), '--tls-key', String(server['key']), '--tls-client-ca', String(ca['certificate'])]);
  t.after(() => s.stop());
  assert.match(s.output(), /Writers must present a client certificate signed by O=Custody, CN=Custody writers CA/);
  const tlsCa = readFileSync(String(server['certificate']));
  const mine: ClientCert = { cert: String(writer['certificate']), key: String(writer['key']) };
  const theirs: ClientCert = { cert: String(stranger['certificate']), key: String(stranger['key']) };
  const append = (client: ClientCert | undefined, n: number) => call(port, tlsCa, 'POST', '/v1/logs/local/entries', tokens.writer, client, `{"n":${n}}\n`);

  const ok = await append(mine, 1);
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.equal(ok.json['stored'], 1);
  const viaOpenssl = await append(ossl, 2);
  assert.equal(viaOpenssl.status, 200, JSON.stringify(viaOpenssl.json));

  const none = await append(undefined, 3);
  assert.equal(none.status, 401);
  const noneErr = none.json['error'] as { code: string; message: string; details: { reason: string } };
  assert.equal(noneErr.code, 'UNAUTHENTICATED');
  assert.equal(noneErr.details.reason, 'client-certificate-missing');
  assert.match(noneErr.message, /client certificate signed by its writer CA \(O=Custody, CN=Custody writers CA\)/);

  const wrong = await append(theirs, 4);
  assert.equal(wrong.status, 401);
  const wrongErr = wrong.json['error'] as { code: string; details: { reason: string } };
  assert.equal(wrongErr.code, 'UNAUTHENTICATED');
  assert.equal(wrongErr.details.reason, 'client-certificate-untrusted');

  // an independent client: curl with and without the writer's certificate
  const base = ['-sS', '--cacert', String(server['certificate']), '--resolve', `localhost:${port}:127.0.0.1`, '-H', `Authorization: Bearer ${tokens.writer}`, '-H', 'content-type: application/x-ndjson', '--data-binary', '{"n":5}\n', '-o', '/dev/null', '-w', '%{http_code}', `https://localhost:${port}/v1/logs/local/entries`];
  assert.equal((await runProcess('curl', [...base, '--cert', mine.cert, '--key', mine.key])).stdout, '200');
  assert.equal((await runProcess('curl', base)).stdout, '401');

  // auditors and admins (e.g. in a browser) present no certificate and are served
  const logs = await call(port, tlsCa, 'GET', '/v1/logs', tokens.auditor);
  assert.equal(logs.status, 200);
  assert.equal((await call(port, tlsCa, 'GET', '/v1/principals', tokens.admin)).status, 200);
  const localSize = async (): Promise<number> => ((await call(port, tlsCa, 'GET', '/v1/logs', tokens.auditor)).json['logs'] as Array<{ name: string; size: number }>).find((l) => l.name === 'local')!.size;
  await waitFor('the three appends with a good certificate', async () => (await localSize()) === 3);
  assert.equal(await localSize(), 3, 'and only those');

  // the refusals are in the audit log, with their reasons
  const reasons = await waitFor('the refusals in the audit log', async () => {
    const l = ((await call(port, tlsCa, 'GET', '/v1/logs', tokens.auditor)).json['logs'] as Array<{ name: string; size: number }>).find((x) => x.name === 'audit')!;
    const found: string[] = [];
    for (let i = 0; i < l.size; i++) {
      const e = await call(port, tlsCa, 'GET', `/v1/logs/audit/entries/${i}`, tokens.auditor);
      const ev = JSON.parse(String(e.json['record'])) as { type: string; reason?: string; principal?: { name: string } };
      if (ev.type === 'auth.failed' && ev.principal?.name === 'initial-writer') found.push(String(ev.reason));
    }
    return found.length >= 3 ? found : false;
  });
  assert.deepEqual(reasons.sort(), ['client-certificate-missing', 'client-certificate-missing', 'client-certificate-untrusted']);
  assert.equal((await call(port, tlsCa, 'GET', '/healthz', tokens.auditor)).status, 200, 'the server stays up');
});

test('--tls-client-ca is refused clearly without HTTPS, or with a file that is not a CA certificate', async () => {
  const dir = makeTempDir('mtls-config');
  const server = await cli(['tls', 'self-signed', '--out', dir]);
  const ca = await cli(['tls', 'client-ca', '--out', dir]);
  const data = join(dir, 'vault');
  const cases: Array<[string[], RegExp]> = [
    [['--tls-client-ca', String(ca['certificate'])], /--tls-client-ca needs HTTPS: pass --tls-cert and --tls-key/],
    [['--tls-cert', String(server['certificate']), '--tls-key', String(server['key']), '--tls-client-ca', String(server['certificate'])], /is not a CA certificate/],
    [['--tls-cert', String(server['certificate']), '--tls-key', String(server['key']), '--tls-client-ca', String(server['key'])], /holds no PEM certificate/],
    [['--tls-cert', String(server['certificate']), '--tls-key', String(server['key']), '--tls-client-ca', join(dir, 'missing.pem')], /Cannot read --tls-client-ca/],
  ];
  for (const [args, re] of cases) {
    const s = await runServe(['--data', data, '--port', String(await freePort()), ...args]);
    assert.equal(await s.stop(), 2, s.output());
    assert.match(s.output(), re);
    assert.match(s.output(), /\[CONFIG\]/);
  }
  // client-cert refuses a CA key that does not belong to the CA
  const other = await cli(['tls', 'client-ca', '--out', join(dir, 'other')]);
  const r = await runCli(['tls', 'client-cert', '--ca', String(ca['certificate']), '--ca-key', String(other['key']), '--name', 'w', '--out', dir]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /is not the key of/);
});
