/**
 * docs/PRODUCTION.md and packaging/systemd: the config examples parse with our parser, every
 * config key is explained, and the systemd units are valid (systemd-analyze verify when this
 * machine has it), hardened, and start real commands and options of our CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CUSTODY_BIN, ROOT, makeTempDir, runCli } from '../support/server.js';
import { SERVE_KEYS, parseDatabase, parseStorage, readServeConfig, requireAvailableBackends } from '../../src/cli/config.js';
import { CustodyError } from '../../src/errors.js';

const DOC = readFileSync(join(ROOT, 'docs', 'PRODUCTION.md'), 'utf8');
const UNITS = ['custody.service', 'custody-witness.service'] as const;
const unitText = (name: string): string => readFileSync(join(ROOT, 'packaging', 'systemd', name), 'utf8');

/** The ```json blocks that follow a `<!-- config-example` marker. */
function configExamples(): string[] {
  return [...DOC.matchAll(/<!-- config-example[^>]*-->\s*```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

test('the config examples in docs/PRODUCTION.md parse with the config parser', () => {
  const examples = configExamples();
  assert.equal(examples.length, 2, 'two marked examples: posix + SQLite, and several nodes on S3 + PostgreSQL');
  const dir = makeTempDir('prod-doc');
  const parsed = examples.map((text, i) => {
    const p = join(dir, `example-${i}.json`);
    writeFileSync(p, text);
    chmodSync(p, 0o640);
    const cfg = readServeConfig(p);
    assert.deepEqual(cfg.warnings, [], `example ${i}`);
    return cfg.values;
  });
  // The first one is today's deployment: it must be startable (storage and database available).
  const first = parsed[0]!;
  assert.equal(first.data, '/var/lib/custody');
  requireAvailableBackends(parseStorage(first.storage as string, {}), parseDatabase(first.database as string, first.databasePasswordFile as string | undefined));
  // The second is the several-node one (S3 + PostgreSQL): startable too, and both halves are needed.
  const second = parsed[1]!;
  const storage = parseStorage(second.storage as string, {});
  const database = parseDatabase(second.database as string, second.databasePasswordFile as string | undefined);
  assert.equal(storage.kind, 's3');
  assert.equal(database.kind, 'postgres');
  requireAvailableBackends(storage, database);
  assert.throws(() => requireAvailableBackends(storage, { kind: 'sqlite' }), (e: unknown) => e instanceof CustodyError && e.code === 'CONFIG');
});

test('every config key is explained in the table of docs/PRODUCTION.md', () => {
  for (const key of Object.keys(SERVE_KEYS)) {
    assert.match(DOC, new RegExp('^\\| (?:`[a-zA-Z]+`, )*`' + key + '`(?:, `[a-zA-Z]+`)* \\|', 'm'), `config key ${key} has no row in docs/PRODUCTION.md`);
  }
});

/** [Section] → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(\w+)\]$/.exec(line);
    if (sec) {
      section = new Map();
      out.set(sec[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section && eq > 0, `not a unit-file line: ${line}`);
    const k = line.slice(0, eq);
    section.set(k, [...(section.get(k) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

test('the systemd units are hardened and run the vault as its own user', () => {
  for (const name of UNITS) {
    const svc = parseUnit(unitText(name)).get('Service');
    assert.ok(svc, `${name}: no [Service]`);
    const one = (k: string): string | undefined => svc.get(k)?.at(-1);
    const user = name === 'custody.service' ? 'custody' : 'custody-witness';
    assert.equal(one('User'), user, name);
    assert.equal(one('ProtectSystem'), 'strict', name);
    assert.equal(one('NoNewPrivileges'), 'yes', name);
    assert.equal(one('PrivateTmp'), 'yes', name);
    assert.equal(one('ProtectHome'), 'yes', name);
    assert.equal(one('CapabilityBoundingSet'), '', `${name}: CapabilityBoundingSet must be empty`);
    assert.equal(one('AmbientCapabilities'), '', name);
    assert.match(one('LimitNOFILE') ?? '', /^\d{4,}$/, name);
    assert.ok((svc.get('ReadWritePaths') ?? []).join(' ').split(/\s+/).includes(`/var/lib/${user}`), `${name}: ReadWritePaths must name the data directory`);
    assert.equal(one('UMask'), '0077', name);
    assert.equal(one('MemoryDenyWriteExecute'), undefined, `${name}: Node's JIT cannot run with MemoryDenyWriteExecute`);
  }
});

test('the units start real commands and options of our CLI', async () => {
  for (const name of UNITS) {
    const exec = parseUnit(unitText(name)).get('Service')!.get('ExecStart')!;
    assert.equal(exec.length, 1, name);
    const argv = exec[0]!.split(/\s+/);
    assert.match(argv[0]!, /^\/\S+\/custody$/, `${name}: ExecStart runs the custody command by absolute path`);
    const sub = argv[1] === 'witness' ? ['witness', 'serve'] : [argv[1]!];
    assert.deepEqual(sub, name === 'custody.service' ? ['serve'] : ['witness', 'serve']);
    const help = await runCli([...sub, '--help'], {}, 60_000);
    assert.equal(help.code, 0, help.stderr);
    const options = argv.slice(1 + sub.length).filter((a) => a.startsWith('--'));
    assert.ok(options.length > 0, name);
    for (const o of options) assert.match(help.stdout, new RegExp(`^\\s+${o} `, 'm'), `${name}: ${o} is not an option of custody ${sub.join(' ')}`);
  }
});

test('systemd-analyze verify finds nothing wrong with the units (and does find a broken one)', () => {
  assert.equal(spawnSync('systemd-analyze', ['--version']).status, 0, 'systemd-analyze (Debian package systemd) is needed for this test');
  const dir = makeTempDir('units');
  const copies = UNITS.map((name) => {
    // verify checks that the command exists: point it at this checkout's custody.
    const p = join(dir, name);
    writeFileSync(p, unitText(name).replace(/^ExecStart=\S+/m, `ExecStart=${CUSTODY_BIN}`));
    return p;
  });
  const r = spawnSync('systemd-analyze', ['verify', ...copies], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', `systemd-analyze verify warns:\n${r.stderr}`);
  for (const p of copies) {
    const sec = spawnSync('systemd-analyze', ['security', '--offline=yes', '--threshold=20', p], { encoding: 'utf8' });
    assert.equal(sec.status, 0, `exposure of ${p} above 2.0:\n${sec.stdout.split('\n').slice(-3).join('\n')}`);
  }
  // The same check on a unit with a misspelt hardening value does complain.
  const broken = join(dir, 'broken.service');
  writeFileSync(broken, unitText('custody.service').replace(/^ExecStart=\S+/m, `ExecStart=${CUSTODY_BIN}`).replace('ProtectSystem=strict', 'ProtectSystem=strickt'));
  const b = spawnSync('systemd-analyze', ['verify', broken], { encoding: 'utf8' });
  assert.match(b.stderr, /protect system value/i);
});
