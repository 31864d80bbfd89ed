/**
 * `custody serve --config` as a real process: a start with port and data directory from the
 * file, $CUSTODY_CONFIG, the refusal of S3 / PostgreSQL until their drivers are wired (exit
 * code, message, nothing created), database passwords never printed, and the config keys
 * matching `custody serve --help`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CUSTODY_BIN, freePort, getJson, makeTempDir, readTokens, runCli, waitFor } from '../support/server.js';
import { SERVE_KEYS, keyOf } from '../../src/cli/config.js';
import { Keyring } from '../../src/crypto/keyring.js';

function writeConfig(path: string, content: unknown): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, JSON.stringify(content));
  chmodSync(path, 0o600);
  return path;
}

/** The environment of a CLI run without any CUSTODY_* default that could hide what the file gives. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('CUSTODY_') && !k.startsWith('AWS_') && !k.startsWith('PG')) env[k] = v;
  return { ...env, ...extra };
}

/** Starts `custody serve <args>` in `cwd` and resolves once it listens (or rejects with its output when it exits first). */
async function startServe(t: import('node:test').TestContext, args: string[], cwd: string): Promise<{ out: () => string; err: () => string; stop: () => Promise<number | null> }> {
  const proc = spawn(process.execPath, [CUSTODY_BIN, 'serve', ...args], { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  proc.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  // A null code means a signal ended it: say which, so a crash on shutdown is not just "null".
  const exited = new Promise<number | null>((r) =>
    proc.once('exit', (code, signal) => {
      if (code === null) err += `\n[test] custody serve ended by signal ${signal}`;
      r(code);
    }),
  );
  await waitFor('the server to listen', () => out.includes('Custody is listening on') || proc.exitCode !== null, 30_000);
  assert.ok(out.includes('Custody is listening on'), `custody serve ${args.join(' ')} exited ${proc.exitCode}:\n${out}\n${err}`);
  return {
    out: () => out,
    err: () => err,
    stop: async () => {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

test('custody serve --config starts on the port, data directory and passphrase file the file names (relative to the file)', async (t) => {
  const dir = makeTempDir('serve-config');
  const port = await freePort();
  const secrets = join(dir, 'secrets');
  mkdirSync(secrets);
  writeFileSync(join(secrets, 'passphrase'), 'correct horse battery staple 42\n', { mode: 0o600 });
  const cfg = writeConfig(join(dir, 'etc', 'custody.json'), { data: '../vault', host: '127.0.0.1', port, checkpointInterval: 50, logLevel: 'warn', search: false, passphraseFile: '../secrets/passphrase' });
  const elsewhere = join(dir, 'cwd');
  mkdirSync(elsewhere);
  const s = await startServe(t, ['--config', cfg], elsewhere);
  const dataDir = join(dir, 'vault');
  assert.match(s.out(), new RegExp(`Custody is listening on http://127\\.0\\.0\\.1:${port} \\(data: ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')},`), s.out());
  assert.ok(!existsSync(join(elsewhere, 'custody-data')), 'no data directory in the working directory');
  // The passphrase came from the file's passphraseFile: the new keyring is sealed under it.
  assert.equal(Keyring.protectionOf(join(dataDir, 'keyring.json')), 'passphrase');
  const url = `http://127.0.0.1:${port}`;
  assert.equal((await fetch(`${url}/healthz`)).status, 200);
  const tokens = readTokens(dataDir);
  const logs = await getJson<{ logs: Array<{ name: string }> }>(url, tokens.auditor, '/v1/logs');
  assert.ok(logs.logs.some((l) => l.name === 'local'), JSON.stringify(logs));
  // "search": false from the file: the search routes are off.
  const search = await fetch(`${url}/v1/search?q=x`, { headers: { authorization: `Bearer ${tokens.auditor}` } });
  assert.equal(search.status, 503);
  assert.equal(await s.stop(), 0, `exit: ${s.err() || '(no stderr)'}\nstdout: ${s.out().slice(-2000)}`);

  // Without passphraseFile the keyring stays locked: the file's value is what opened it.
  const bare = writeConfig(join(dir, 'etc', 'bare.json'), { data: '../vault', port });
  const locked = await runCli(['serve', '--config', bare], cleanEnv(), 60_000);
  assert.equal(locked.code, 2, locked.stderr);
  assert.match(locked.stderr, /\[KEYRING_LOCKED\]/);
  // And a flag still wins over the file: another port on the command line.
  const port2 = await freePort();
  const again = await startServe(t, ['--config', cfg, '--port', String(port2)], elsewhere);
  assert.match(again.out(), new RegExp(`listening on http://127\\.0\\.0\\.1:${port2} `));
  assert.equal(await again.stop(), 0, `exit: ${again.err() || '(no stderr)'}\nstdout: ${again.out().slice(-2000)}`);
});

test('$CUSTODY_CONFIG is read when --config is not given: a bad key stops the start, naming key and file', async () => {
  const dir = makeTempDir('serve-config-env');
  const cfg = writeConfig(join(dir, 'custody.json'), { data: 'vault', portt: 8700 });
  const r = await runCli(['serve'], cleanEnv({ CUSTODY_CONFIG: cfg }), 60_000);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /Config file .*custody\.json: unknown key "portt" \(did you mean "port"\?\).*\[CONFIG\]/);
  assert.ok(!existsSync(join(dir, 'vault')), 'nothing was created');
});

test('--storage s3://… without --database postgres://… (or the other way round) stops the start with a clear CONFIG error (exit 2), before anything is created', async () => {
  const dir = makeTempDir('serve-s3');
  const data = join(dir, 'vault');
  const flag = await runCli(['serve', '--data', data, '--storage', 's3://custody-lake-111122223333-eu-west-1/custody/'], cleanEnv({ AWS_REGION: 'eu-west-1' }), 60_000);
  assert.equal(flag.code, 2, flag.stderr);
  assert.match(flag.stderr, /error: A vault on S3 .* give --database postgres:\/\//);
  assert.match(flag.stderr, /\[CONFIG\]\n$/);
  assert.ok(!existsSync(data), 'no data directory was created');

  const cfg = writeConfig(join(dir, 'custody.json'), { data: 'vault', storage: 's3://bucket-one/custody' });
  const file = await runCli(['serve', '--config', cfg], cleanEnv(), 60_000);
  assert.equal(file.code, 2, file.stderr);
  assert.match(file.stderr, /give --database postgres:\/\//);
  assert.ok(!existsSync(data));

  // The flag wins over the file: the file says S3 and PostgreSQL, --storage posix leaves PostgreSQL alone: refused.
  const both = writeConfig(join(dir, 'custody2.json'), { data: 'vault', storage: 's3://bucket-one/custody', database: 'postgres://custody@db.internal/custody' });
  const db = await runCli(['serve', '--config', both, '--storage', 'posix'], cleanEnv(), 60_000);
  assert.equal(db.code, 2);
  assert.match(db.stderr, /A vault on PostgreSQL .* give --storage s3:\/\//);
  assert.ok(!existsSync(data));

  // A malformed S3 location is refused for what it is.
  const bad = await runCli(['serve', '--data', data, '--storage', 's3://Not_A_Bucket/x'], cleanEnv(), 60_000);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--storage: "Not_A_Bucket" is not an S3 bucket name/);
});

test('a PostgreSQL password is never printed: not in the refusal, not in a bad-URL message, not from a config file', async () => {
  const dir = makeTempDir('serve-pg');
  const secret = 'pw-Zq81-never-shown';
  const runs = [
    await runCli(['serve', '--data', join(dir, 'a'), '--database', `postgres://custody:${secret}@db.internal:5432/custody`], cleanEnv(), 60_000),
    await runCli(['serve', '--data', join(dir, 'b'), '--database', `postgres://custody:${secret}@db.internal:5432`], cleanEnv(), 60_000),
    await runCli(['serve', '--data', join(dir, 'c'), '--database', `mysql://custody:${secret}@db.internal/custody`], cleanEnv(), 60_000),
    await runCli(['serve', '--data', join(dir, 'd'), '--database', `postgres://custody:${secret}@db.internal:99999/custody`], cleanEnv(), 60_000),
    await runCli(['serve', '--config', writeConfig(join(dir, 'custody.json'), { data: 'e', database: `postgres://custody:${secret}@db.internal/custody` })], cleanEnv(), 60_000),
  ];
  const expected = ['give --storage s3://', 'names no database', '"mysql://custody:***@db.internal/custody"', 'is not a valid URL', 'holds a password; a config file never holds secrets'];
  runs.forEach((r, i) => {
    assert.equal(r.code, 2, `run ${i}: ${r.stderr}`);
    assert.ok(r.stderr.includes(expected[i]!), `run ${i}: ${r.stderr}`);
    assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret), `run ${i} printed the password: ${r.stderr}`);
  });
  for (const d of ['a', 'b', 'c', 'd', 'e']) assert.ok(!existsSync(join(dir, d)), `${d} was created`);
});

test('the config keys are exactly the long options of custody serve --help', async () => {
  const r = await runCli(['serve', '--help'], cleanEnv(), 60_000);
  assert.equal(r.code, 0, r.stderr);
  const longs = [...r.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*)/gm)].map((m) => m[1]!);
  assert.ok(longs.includes('--checkpoint-interval') && longs.includes('--passphrase-file') && longs.includes('--storage') && longs.includes('--database'), longs.join(' '));
  const fromHelp = new Set(longs.filter((l) => l !== '--help' && l !== '--config').map(keyOf));
  assert.deepEqual([...fromHelp].sort(), Object.keys(SERVE_KEYS).sort());
});
