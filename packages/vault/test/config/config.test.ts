/**
 * cli/config.ts: `custody serve --config <file>` parsing and checking, flag/file precedence,
 * $CUSTODY_CONFIG, and the --storage / --database values (shape, AWS variables, redaction).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { CustodyError } from '../../src/errors.js';
import { addServeOptions, applyServeConfig, parseDatabase, parseStorage, readServeConfig, redactUrl, requireAvailableBackends, serveOptionsFrom, type ServeFlags } from '../../src/cli/config.js';
import { makeTempDir } from '../support/server.js';

const dir = makeTempDir('config');
let n = 0;
/** Writes a config file (mode 0600 unless given) and returns its path. */
function configFile(content: unknown, mode = 0o600): string {
  const p = join(dir, `c${++n}.json`);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  chmodSync(p, mode);
  return p;
}

const isConfig = (re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof CustodyError, `not a CustodyError: ${String(e)}`);
  assert.equal(e.code, 'CONFIG');
  assert.match(e.message, re);
  return true;
};

/** A real `serve` command (the same option list main.ts uses), parsed from argv, with the config applied. */
function parseServe(argv: string[], env: NodeJS.ProcessEnv = {}): { flags: ServeFlags; warnings: string[] } {
  const cmd = addServeOptions(new Command('serve')).exitOverride().action(() => undefined);
  cmd.parse(argv, { from: 'user' });
  const warnings: string[] = [];
  applyServeConfig(cmd, env, (w) => warnings.push(w));
  return { flags: cmd.opts<ServeFlags>(), warnings };
}

test('a good config file gives every kind of value, relative paths from the file\'s directory', () => {
  const sub = join(dir, 'etc');
  mkdirSync(sub);
  const p = join(sub, 'custody.json');
  writeFileSync(
    p,
    JSON.stringify({
      data: 'data',
      host: '0.0.0.0',
      port: 8443,
      checkpointInterval: 250,
      regions: ['eu-west-1', 'us-east-1'],
      regionDir: { 'eu-west-1': '/mnt/eu' },
      tlsCert: '/etc/custody/tls/server.crt',
      tlsKey: 'tls/server.key',
      logLevel: 'warn',
      search: false,
      witness: ['w1=https://w1.example/=w1+abcd'],
      witnessPolicy: 1,
      archiveDir: '/srv/archive',
      archiveAfter: 90,
      passphraseFile: '/etc/custody/passphrase',
      storage: 'posix',
      database: 'sqlite',
    }),
  );
  chmodSync(p, 0o640);
  const cfg = readServeConfig(p);
  assert.equal(cfg.file, p);
  assert.equal(cfg.values.data, join(sub, 'data'));
  assert.equal(cfg.values.tlsKey, join(sub, 'tls/server.key'));
  assert.equal(cfg.values.tlsCert, '/etc/custody/tls/server.crt');
  assert.equal(cfg.values.port, 8443);
  assert.equal(cfg.values.regions, 'eu-west-1,us-east-1');
  assert.deepEqual(cfg.values.regionDir, ['eu-west-1=/mnt/eu']);
  assert.equal(cfg.values.search, false);
  assert.deepEqual(cfg.warnings, [], 'mode 0640 names secret files without a warning');
});

test('unknown keys, wrong types and bad values are refused naming the key and the file', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ prot: 8700 }, /c\d+\.json: unknown key "prot"/],
    [{ checkpoint_interval: 100 }, /unknown key "checkpoint_interval" \(did you mean "checkpointInterval"\?\)/],
    [{ config: 'other.json' }, /"config" cannot name another config file/],
    [{ port: '8700' }, /"port" must be a whole number; it is a string/],
    [{ port: 8700.5 }, /"port" must be a whole number/],
    [{ port: 70000 }, /"port" must be from 0 to 65535; it is 70000/],
    [{ checkpointInterval: 5 }, /"checkpointInterval" must be from 10 to 60000/],
    [{ search: 'no' }, /"search" must be true or false; it is a string/],
    [{ data: 42 }, /"data" must be a string; it is a number/],
    [{ data: '' }, /"data" must be a non-empty string/],
    [{ host: 'a\nb' }, /"host" must be a non-empty string without control characters/],
    [{ logLevel: 'loud' }, /"logLevel" must be one of fatal, error, warn, info, debug/],
    [{ archiveStorageClass: 'COLD' }, /"archiveStorageClass" must be one of STANDARD/],
    [{ witness: 'w=u=k' }, /"witness" must be an array of non-empty strings/],
    [{ witness: ['ok', 3] }, /"witness" must be an array of non-empty strings/],
    [{ regionDir: 'eu=/x' }, /"regionDir" must be an object of region → directory/],
    [{ regionDir: { 'EU WEST': '/x' } }, /"regionDir" must map region names to directories/],
    [{ archive: '/srv/archive' }, /"archive" takes s3:\/\/bucket\/prefix; for a directory use "archiveDir"/],
    [{ storage: 'gs://bucket/x' }, /"storage" takes "posix".*or s3:\/\/BUCKET\/PREFIX/],
    [{ storage: 's3://Bad_Bucket/x' }, /"storage": "Bad_Bucket" is not an S3 bucket name/],
    [{ database: 'mysql://db/x' }, /"database" takes "sqlite".*postgres:\/\//],
    [[1, 2], /must hold one JSON object.*it holds an array/],
    [null, /must hold one JSON object.*it holds null/],
  ];
  for (const [content, re] of cases) {
    const p = configFile(content);
    assert.throws(() => readServeConfig(p), isConfig(re), JSON.stringify(content));
    assert.throws(() => readServeConfig(p), (e: unknown) => (e as CustodyError).message.includes(p), 'the message names the file');
  }
});

test('a config file that is not JSON is refused with its position, never echoing its text', () => {
  const p = configFile('{\n  "port": 8700,\n  "database": postgres://vault:hunter2@db/custody\n}');
  assert.throws(() => readServeConfig(p), (e: unknown) => {
    isConfig(/is not valid JSON at line 3/)(e);
    assert.doesNotMatch((e as Error).message, /hunter2|postgres:/);
    return true;
  });
  assert.throws(() => readServeConfig(configFile('')), isConfig(/is not valid JSON/));
});

test('a missing file, a directory, or a file other users can change is refused', () => {
  assert.throws(() => readServeConfig(join(dir, 'nope.json')), isConfig(/Cannot read the config file .*nope\.json: ENOENT/));
  assert.throws(() => readServeConfig(dir), isConfig(/is not a regular file/));
  assert.throws(() => readServeConfig(configFile({ port: 1 }, 0o620)), isConfig(/can be changed by other users \(mode 620\).*chmod go-w/));
  assert.throws(() => readServeConfig(configFile({ port: 1 }, 0o602)), isConfig(/can be changed by other users/));
  const other = configFile({ port: 1 });
  if (process.getuid?.() === 0) {
    chownSync(other, 12345, 12345); // root: a file of another user
    assert.throws(() => readServeConfig(other), isConfig(/belongs to another user \(uid 12345\)/));
  } else {
    assert.throws(() => readServeConfig(other, { uid: process.getuid!() + 12345 }), isConfig(/belongs to another user/));
  }
  // World-readable: allowed (it holds no secret), with a warning when it says where the secrets are.
  assert.deepEqual(readServeConfig(configFile({ port: 1 }, 0o644)).warnings, []);
  const w = readServeConfig(configFile({ passphraseFile: '/etc/custody/passphrase' }, 0o644)).warnings;
  assert.equal(w.length, 1);
  assert.match(w[0]!, /readable by every user.*passphraseFile.*chmod o-r/);
});

test('a flag on the command line wins over the file; the file wins over defaults', () => {
  const p = configFile({ port: 9001, host: '0.0.0.0', checkpointInterval: 500, witness: ['a=https://a.example/=k1'], search: false, data: '/srv/custody' });
  const { flags } = parseServe(['--config', p, '--port', '9002', '--witness', 'b=https://b.example/=k2']);
  assert.equal(flags.port, 9002, 'flag wins');
  assert.deepEqual(flags.witness, ['b=https://b.example/=k2'], 'a repeatable flag replaces the file\'s list');
  assert.equal(flags.host, '0.0.0.0', 'file over the built-in default');
  assert.equal(flags.checkpointInterval, 500);
  assert.equal(flags.search, false);
  assert.equal(flags.data, '/srv/custody');
  // --no-search on the command line wins over "search": true in the file.
  const q = configFile({ search: true });
  assert.equal(parseServe(['--config', q, '--no-search']).flags.search, false);
  // No file: defaults as before.
  const none = parseServe([]);
  assert.equal(none.flags.port, 8700);
  assert.equal(none.flags.search, true);
});

test('$CUSTODY_CONFIG names the file when --config is not given; --config wins over it', () => {
  const a = configFile({ port: 9101 });
  const b = configFile({ port: 9102 });
  assert.equal(parseServe([], { CUSTODY_CONFIG: a }).flags.port, 9101);
  assert.equal(parseServe(['--config', b], { CUSTODY_CONFIG: a }).flags.port, 9102);
  assert.equal(parseServe([], { CUSTODY_CONFIG: '' }).flags.port, 8700, 'an empty variable is no file');
  assert.throws(() => parseServe([], { CUSTODY_CONFIG: join(dir, 'gone.json') }), isConfig(/gone\.json \(from \$CUSTODY_CONFIG\): ENOENT/));
});

test('the merged options become serve()\'s options, with storage and database parsed', async () => {
  const p = configFile({ data: 'd', port: 9200, regions: 'eu-west-1, us-east-1', archiveDir: 'arch', archiveAfter: 30 });
  const o = await serveOptionsFrom(parseServe(['--config', p]).flags, {});
  assert.equal(o.data, join(dir, 'd'));
  assert.equal(o.port, 9200);
  assert.deepEqual(o.regions, ['eu-west-1', 'us-east-1']);
  assert.deepEqual(o.storage, { kind: 'posix' });
  assert.deepEqual(o.database, { kind: 'sqlite' });
  assert.equal(o.archive?.location, 'file://' + join(dir, 'arch'));
  assert.equal(o.archive?.afterDays, 30);
  const s3 = await serveOptionsFrom(parseServe(['--storage', 's3://vault-bucket/prod/custody/', '--database', 'postgres://custody@db.internal:5433/custody']).flags, { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:7480' });
  assert.deepEqual(s3.storage, { kind: 's3', bucket: 'vault-bucket', prefix: 'prod/custody/', endpoint: 'http://127.0.0.1:7480', region: 'eu-west-1' });
  assert.deepEqual(s3.database, { kind: 'postgres', url: 'postgres://custody@db.internal:5433/custody' });
  // one shared mode only: S3 needs PostgreSQL and PostgreSQL needs S3
  assert.throws(() => requireAvailableBackends(s3.storage!, { kind: 'sqlite' }), isConfig(/give --database postgres:\/\//));
  assert.throws(() => requireAvailableBackends({ kind: 'posix' }, s3.database!), isConfig(/give --storage s3:\/\//));
  assert.doesNotThrow(() => requireAvailableBackends(s3.storage!, s3.database!));
  assert.doesNotThrow(() => requireAvailableBackends({ kind: 'posix' }, { kind: 'sqlite' }));
});

test('--storage: S3 URL shape and the standard AWS variables', () => {
  assert.deepEqual(parseStorage(undefined, {}), { kind: 'posix' });
  assert.deepEqual(parseStorage('s3://my-bucket', {}), { kind: 's3', bucket: 'my-bucket', prefix: '' });
  assert.deepEqual(parseStorage('s3://my.bucket.1/a/b', { AWS_ENDPOINT_URL: 'https://s3.example' }), { kind: 's3', bucket: 'my.bucket.1', prefix: 'a/b/', endpoint: 'https://s3.example' });
  const bad: Array<[string, RegExp]> = [
    ['/var/lib/custody', /takes "posix".*or s3:\/\/BUCKET\/PREFIX/],
    ['s3://', /is not an S3 bucket name/],
    ['s3://ab/x', /"ab" is not an S3 bucket name/],
    ['s3://UPPER/x', /is not an S3 bucket name/],
    ['s3://a..b/x', /is not an S3 bucket name/],
    ['s3://192.168.1.1/x', /is not an S3 bucket name/],
    ['s3://bucket//x', /the prefix after the bucket must look like/],
    ['s3://bucket/a/../b', /the prefix after the bucket must look like/],
    ['s3://bucket/a\u0000b', /the prefix after the bucket must look like/],
  ];
  for (const [v, re] of bad) assert.throws(() => parseStorage(v, {}), isConfig(re), v);
  assert.throws(() => parseStorage('s3://bucket/x', { AWS_ENDPOINT_URL_S3: 'ftp://s3' }), isConfig(/AWS_ENDPOINT_URL_S3 must be an http\(s\):\/\/ URL/));
  assert.throws(() => parseStorage('s3://bucket/x', { AWS_ENDPOINT_URL_S3: 'not a url' }), isConfig(/AWS_ENDPOINT_URL_S3 must be/));
  assert.throws(
    () => parseStorage('s3://bucket/x', { AWS_ENDPOINT_URL_S3: 'https://AKIA:topsecret@s3.example' }),
    (e: unknown) => isConfig(/must not hold credentials/)(e) && !(e as Error).message.includes('topsecret'),
  );
  assert.throws(() => parseStorage('s3://bucket/x', { AWS_REGION: 'EU West' }), isConfig(/AWS_REGION "EU West" is not a region name/));
});

test('--database: PostgreSQL URL shape; the password is never in a message', () => {
  assert.deepEqual(parseDatabase(undefined), { kind: 'sqlite' });
  assert.deepEqual(parseDatabase('postgresql://vault@db/custody?sslmode=verify-full'), { kind: 'postgres', url: 'postgresql://vault@db/custody?sslmode=verify-full' });
  assert.deepEqual(parseDatabase('postgres:///custody?host=/run/postgresql&user=vault'), { kind: 'postgres', url: 'postgres:///custody?host=/run/postgresql&user=vault' });
  assert.equal(parseDatabase('postgres://vault@%2Frun%2Fpostgresql/custody').kind, 'postgres');
  assert.deepEqual(parseDatabase('postgres://vault@db/custody', '/etc/custody/pgpass'), { kind: 'postgres', url: 'postgres://vault@db/custody', passwordFile: '/etc/custody/pgpass' });
  // On the command line a password in the URL is accepted (kept for the driver, shown nowhere).
  assert.equal(parseDatabase('postgres://vault:pw@db/custody').kind, 'postgres');
  const secret = 'Hunter2-s3cr3t';
  const bad: Array<[string, RegExp, boolean?]> = [
    [`mysql://vault:${secret}@db/custody`, /takes "sqlite" \(the default\) or postgres:\/\/.*"mysql:\/\/vault:\*\*\*@db\/custody"/],
    [`vault:${secret}@db/custody`, /takes "sqlite".*"\*\*\*@db\/custody"/],
    [`postgres://vault:${secret}@/custody`, /is not a valid URL/],
    [`postgres:///custody?user=vault&password=${secret}`, /names no server/],
    [`postgres://vault:${secret}@db`, /names no database/],
    [`postgres://vault:${secret}@db/`, /names no database/],
    [`postgres://:${secret}@db/custody`, /names no user/],
    [`postgres://vault:${secret}@db:99999/custody`, /is not a valid URL/],
    [`postgres://vault:${secret}@db/%E0%A4%A`, /names no database/],
    [`postgres://vault:${secret}/x@db:99999/custody`, /is not a valid URL/],
    [`postgres://vault@db/custody?password=${secret}&x=1`, /holds a password; a config file never holds secrets/, true],
    [`postgres://vault:${secret}@db/custody`, /holds a password; a config file never holds secrets.*databasePasswordFile/, true],
  ];
  for (const [v, re, inFile] of bad) {
    assert.throws(
      () => parseDatabase(v, undefined, '--database', inFile ?? false),
      (e: unknown) => {
        isConfig(re)(e);
        assert.ok(!(e as Error).message.includes(secret), `the password is in the message: ${(e as Error).message}`);
        assert.ok(!JSON.stringify((e as CustodyError).details ?? {}).includes(secret));
        return true;
      },
      v,
    );
  }
  assert.throws(() => parseDatabase(`postgres://vault:${secret}@db/custody`, '/etc/pw'), (e: unknown) => isConfig(/holds a password and --database-password-file is given too/)(e) && !(e as Error).message.includes(secret));
  assert.throws(() => parseDatabase('sqlite', '/etc/pw'), isConfig(/--database-password-file is for a PostgreSQL --database/));
});

test('redactUrl hides the password in URLs and in text that is not quite one', () => {
  assert.equal(redactUrl('postgres://u:p@h/db'), 'postgres://u:***@h/db');
  assert.equal(redactUrl('postgres://u@h/db'), 'postgres://u@h/db');
  assert.equal(redactUrl('postgres://u:pa/ss@h/db'), 'postgres://u:***@h/db');
  assert.equal(redactUrl('postgres://u:p@ss@h/db'), 'postgres://u:***@h/db');
  assert.equal(redactUrl('u:p@h/db'), '***@h/db');
  assert.equal(redactUrl('postgres://h/db?user=u&password=p&ssl=1'), 'postgres://h/db?user=u&password=***&ssl=1');
  assert.equal(redactUrl('sqlite'), 'sqlite');
});

test('a password inside the config file\'s database URL is refused, and the message does not show it', () => {
  const p = configFile({ database: 'postgres://custody:TopSecret99@db.internal/custody' });
  assert.throws(() => readServeConfig(p), (e: unknown) => isConfig(/"database" holds a password; a config file never holds secrets/)(e) && !(e as Error).message.includes('TopSecret99'));
  // Without the password (it is in databasePasswordFile) the file is fine.
  const q = configFile({ database: 'postgres://custody@db.internal/custody', databasePasswordFile: '/etc/custody/pg-password' });
  assert.equal(readServeConfig(q).values.database, 'postgres://custody@db.internal/custody');
});
