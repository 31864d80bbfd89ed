/**
 * `custody tls self-signed` (cli/tls.ts, docs/TLS.md): the key and certificate it writes are
 * accepted by OpenSSL (parse, verify for the server purpose), serve HTTPS and syslog over TLS
 * in a real `custody serve`, and the UI over TLS carries HSTS (absent over plain HTTP). A
 * certificate that does not belong to its key stops the server with a clear error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { freePort, makeTempDir, readTokens, runCli, runProcess, startServer, waitFor } from '../support/server.js';
import { octet, sendParts, runServe } from '../support/syslog.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function httpsGet(port: number, path: string, ca: Buffer, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', servername: 'localhost', port, path, ca, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function selfSigned(dir: string, extra: string[] = []): Promise<{ cert: string; key: string; json: Record<string, unknown> }> {
  const r = await runCli(['tls', 'self-signed', '--out', dir, '--json', ...extra]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as Record<string, unknown>;
  return { cert: String(json['certificate']), key: String(json['key']), json };
}

test('custody tls self-signed writes a 0600 key and a certificate OpenSSL accepts for a TLS server', async () => {
  const dir = makeTempDir('tls-ss');
  const { cert, key, json } = await selfSigned(dir, ['--host', 'vault.example.org', '--host', '10.1.2.3', '--host', '::1', '--days', '30']);
  assert.equal(cert, join(dir, 'custody.crt'));
  assert.equal(statSync(key).mode & 0o777, 0o600, 'the key is readable by its owner only');
  assert.deepEqual(json['hosts'], ['vault.example.org', '10.1.2.3', '0:0:0:0:0:0:0:1']);

  // OpenSSL parses it strictly and verifies it (self-signed, server purpose)
  const text = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-text'], { encoding: 'utf8' });
  assert.match(text, /Version: 3 \(0x2\)/);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.match(text, /DNS:vault\.example\.org, IP Address:10\.1\.2\.3, IP Address:0:0:0:0:0:0:0:1/);
  assert.match(text, /TLS Web Server Authentication/);
  assert.match(text, /CA:FALSE/);
  execFileSync('openssl', ['asn1parse', '-in', cert], { stdio: 'ignore' });
  assert.match(execFileSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', cert, cert], { encoding: 'utf8' }), /: OK/);
  assert.match(execFileSync('openssl', ['pkey', '-in', key, '-noout', '-text'], { encoding: 'utf8' }), /NIST CURVE: P-256/);
  const x = new X509Certificate(readFileSync(cert));
  assert.ok(x.checkPrivateKey(createPrivateKey(readFileSync(key))));
  const days = (Date.parse(x.validTo) - Date.now()) / 86_400_000;
  assert.ok(days > 29.9 && days < 30.1, `valid for ${days} days`);

  // no silent overwrite of a key that may be in use; bad host names are refused
  const keyBefore = readFileSync(key, 'utf8');
  const again = await runCli(['tls', 'self-signed', '--out', dir]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exist.*--force.*\[CONFIG\]/);
  assert.equal(readFileSync(key, 'utf8'), keyBefore);
  const forced = await runCli(['tls', 'self-signed', '--out', dir, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(new X509Certificate(readFileSync(cert)).fingerprint256, x.fingerprint256);
  const bad = await runCli(['tls', 'self-signed', '--out', makeTempDir('tls-bad'), '--host', 'no such host', '--json']);
  assert.equal(bad.code, 2);
  assert.equal((JSON.parse(bad.stdout) as { error: { code: string } }).error.code, 'CONFIG');
});

test('a real custody serve with the generated pair: HTTPS (curl and Node), HSTS on the UI, syslog over TLS', async (t) => {
  const dir = makeTempDir('tls-serve');
  const { cert, key } = await selfSigned(dir, ['--host', 'localhost', '--host', '127.0.0.1']);
  const ca = readFileSync(cert);
  const data = join(dir, 'vault');
  const init = await runCli(['init', '--data', data]);
  assert.equal(init.code, 0, init.stderr);
  const tokens = readTokens(data);
  const tokenFile = join(dir, 'syslog.token');
  writeFileSync(tokenFile, tokens.writer, { mode: 0o600 });
  const [port, syslogPort] = [await freePort(), await freePort()];
  const s = await runServe(['--data', data, '--port', String(port), '--checkpoint-interval', '20', '--tls-cert', cert, '--tls-key', key, '--syslog-tls-port', String(syslogPort), '--syslog-token-file', tokenFile]);
  t.after(() => s.stop());
  assert.match(s.output(), new RegExp(`Custody is listening on https://127\\.0\\.0\\.1:${port}`));

  // an independent TLS client: curl, trusting only the generated certificate
  const curl = await runProcess('curl', ['-sS', '--cacert', cert, '-H', `Authorization: Bearer ${tokens.auditor}`, `https://localhost:${port}/v1/logs`, '--resolve', `localhost:${port}:127.0.0.1`]);
  assert.equal(curl.code, 0, curl.stderr);
  assert.match(curl.stdout, /"verifierKey"/);
  // without trusting it, the handshake fails (a self-signed certificate is not trusted by default)
  const untrusted = await runProcess('curl', ['-sS', `https://localhost:${port}/healthz`, '--resolve', `localhost:${port}:127.0.0.1`]);
  assert.notEqual(untrusted.code, 0);

  // the UI over TLS: Strict-Transport-Security (also on the 503 of an unbuilt UI)
  const page = await httpsGet(port, '/', ca, { accept: 'text/html,application/xhtml+xml' });
  assert.ok(page.status === 200 || page.status === 503, `GET / ${page.status}`);
  assert.match(String(page.headers['strict-transport-security']), /^max-age=\d{7,}/);
  const js = await httpsGet(port, '/app.js', ca, {});
  assert.match(String(js.headers['strict-transport-security']), /^max-age=\d{7,}/);

  // syslog over TLS (RFC 5425) with the same certificate
  const msg = `<134>1 2026-01-02T03:04:05Z host app 1 - - tls-self-signed-${Date.now()}`;
  await sendParts(syslogPort, [octet(msg)], { tls: { ca } });
  const stored = await waitFor('the syslog record', async () => {
    const logs = JSON.parse((await httpsGet(port, '/v1/logs', ca, { authorization: `Bearer ${tokens.auditor}` })).body) as { logs: Array<{ name: string; size: number }> };
    const size = logs.logs.find((l) => l.name === 'local')?.size ?? 0;
    if (size < 1) return false;
    return JSON.parse((await httpsGet(port, `/v1/logs/local/entries/${size - 1}`, ca, { authorization: `Bearer ${tokens.auditor}` })).body) as { record: string };
  });
  assert.equal(stored.record, msg);
});

test('over plain HTTP the UI carries no HSTS header', async (t) => {
  const s = await startServer();
  t.after(() => s.stop());
  const r = await fetch(`${s.url}/`, { headers: { accept: 'text/html' } });
  await r.arrayBuffer();
  assert.ok(r.status === 200 || r.status === 503);
  assert.equal(r.headers.get('strict-transport-security'), null);
  assert.ok(r.headers.get('content-security-policy'), 'the UI answered (with its other security headers)');
});

test('a certificate that does not belong to its key stops custody serve with a clear error', async () => {
  const a = await selfSigned(makeTempDir('tls-a'));
  const b = await selfSigned(makeTempDir('tls-b'));
  const data = join(makeTempDir('tls-mismatch'), 'vault');
  const s = await runServe(['--data', data, '--port', String(await freePort()), '--tls-cert', a.cert, '--tls-key', b.key]);
  const code = await s.stop();
  assert.equal(code, 2, s.output());
  assert.match(s.output(), /The TLS certificate .*custody\.crt and key .*custody\.key cannot be used together .*check that the key belongs to the certificate/);
  assert.doesNotMatch(s.output(), /Custody is listening/);
  // only one of the two
  const half = await runServe(['--data', data, '--port', String(await freePort()), '--tls-cert', a.cert]);
  assert.equal(await half.stop(), 2);
  assert.match(half.output(), /Give both --tls-cert and --tls-key/);
});
