/**
 * `--region-dir <region>=<dir>`: a region's log lives in a directory of its own (e.g. a volume
 * in that region), kept in vault.json so restarts use it; a missing directory stops the start
 * with an error naming it (no new empty log is started elsewhere); an existing log is never
 * moved by the flag; other regions' records never go there.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { initVault, Vault, applyRegionDirs, readConfig } from '../../src/vault.js';
import { buildServer } from '../../src/server/index.js';
import { ingestRecords } from '../../src/ingest/pipeline.js';
import { parseRegionDirs } from '../../src/storage/region-dirs.js';
import { isCustodyError } from '../../src/errors.js';
import { runCli, cleanup } from '../support/server.js';

after(cleanup);
const temps: string[] = [];
after(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));
const temp = (label: string): string => {
  const d = mkdtempSync(join(tmpdir(), `custody-${label}-`));
  temps.push(d);
  return d;
};

async function open(dataDir: string) {
  const logger = pino({ level: 'silent' });
  const vault = await Vault.open(dataDir, { logger, checkpointIntervalMs: 20 });
  const app = await buildServer({ vault, logger });
  await app.ready();
  return {
    vault,
    app,
    async close() {
      await app.close();
      await vault.close();
    },
  };
}

const rec = (body: string, region?: string) => ({ bytes: Buffer.from(body), position: 1, source: 'test.region-dir', fields: {}, ...(region ? { region } : {}) });
const isConfig = (e: unknown): boolean => isCustodyError(e, 'CONFIG');

test('a placed region log lives in its directory, survives restarts, and a missing directory stops the start', async () => {
  const vol = temp('vol-eu');
  const dataDir = join(temp('data'), 'vault');
  const init = initVault(dataDir, { regionDirs: { 'eu-west-1': vol } });
  const auditorToken = init.tokens.find((t) => t.role === 'auditor')!.token;
  assert.deepEqual(readConfig(dataDir).regionDirs, { 'eu-west-1': vol }, 'kept in vault.json');

  let v = await open(dataDir);
  try {
    const writer = v.vault.auth.authenticate(init.tokens.find((t) => t.role === 'writer')!.token)!;
    const s = await ingestRecords(v.vault, [rec('{"placed":"eu-1"}', 'eu-west-1'), rec('{"elsewhere":"sa-1"}', 'sa-east-1'), rec('{"none":1}')], { principal: writer });
    assert.equal(s.stored, 3);
    for (const n of ['eu-west-1', 'sa-east-1', 'local']) await v.vault.sequencer(n).waitForCheckpoint(1);
    // On disk: eu-west-1 in its volume, linked from the data directory; nothing else there.
    assert.ok(existsSync(join(vol, 'eu-west-1', 'tree', 'checkpoint')), 'the checkpoint is in the volume');
    assert.ok(readdirSync(join(vol, 'eu-west-1', 'tree', 'tile', 'entries')).length > 0, 'the sealed bundle is in the volume');
    assert.ok(lstatSync(join(dataDir, 'logs', 'eu-west-1')).isSymbolicLink());
    assert.deepEqual(readdirSync(vol), ['eu-west-1'], "no other region's log in the volume");
    assert.ok(lstatSync(join(dataDir, 'logs', 'sa-east-1')).isDirectory(), 'an unplaced region stays in the data directory');
    const logs = (await v.app.inject({ method: 'GET', url: '/v1/logs', headers: { authorization: `Bearer ${auditorToken}` } })).json<{ logs: Array<{ name: string; storage: { path: string } }> }>().logs;
    assert.equal(logs.find((l) => l.name === 'eu-west-1')!.storage.path, realpathSync(join(vol, 'eu-west-1')), 'GET /v1/logs names the volume');
    assert.equal(logs.find((l) => l.name === 'sa-east-1')!.storage.path, 'logs/sa-east-1');
  } finally {
    await v.close();
  }

  // A restart reads it from there.
  v = await open(dataDir);
  try {
    const r = await v.app.inject({ method: 'GET', url: '/v1/logs/eu-west-1/entries/0', headers: { authorization: `Bearer ${auditorToken}` } });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json<{ record: string }>().record, '{"placed":"eu-1"}');
  } finally {
    await v.close();
  }

  // The volume is gone (not mounted): the start is refused, naming it, and nothing is recreated.
  renameSync(vol, vol + '.unmounted');
  temps.push(vol + '.unmounted');
  await assert.rejects(open(dataDir), (e: unknown) => isConfig(e) && (e as Error).message.includes(vol) && /region eu-west-1/.test((e as Error).message));
  assert.equal(existsSync(vol), false, 'no new empty log was started in its place');
  // The volume without the log's directory in it: refused too.
  mkdirSync(vol);
  await assert.rejects(open(dataDir), (e: unknown) => isConfig(e) && (e as Error).message.includes(join(vol, 'eu-west-1')));
  rmSync(vol, { recursive: true });
  renameSync(vol + '.unmounted', vol);

  // The link replaced by one to another directory: refused.
  const decoy = temp('decoy');
  mkdirSync(join(decoy, 'eu-west-1'));
  unlinkSync(join(dataDir, 'logs', 'eu-west-1'));
  symlinkSync(join(decoy, 'eu-west-1'), join(dataDir, 'logs', 'eu-west-1'), 'dir');
  await assert.rejects(open(dataDir), (e: unknown) => isConfig(e) && /is not a link to/.test((e as Error).message));
  // The link missing (a data directory restored without it): made again from vault.json.
  unlinkSync(join(dataDir, 'logs', 'eu-west-1'));
  v = await open(dataDir);
  try {
    assert.equal(v.vault.sequencer('eu-west-1').size, 1, 'the log is found again in its volume');
  } finally {
    await v.close();
  }
});

test('serve --region-dir on an existing vault places new regions and never moves an existing log; bad flags are refused', async () => {
  const dataDir = join(temp('data'), 'vault');
  const init = initVault(dataDir);
  let v = await open(dataDir);
  const writer = () => v.vault.auth.authenticate(init.tokens.find((t) => t.role === 'writer')!.token)!;
  try {
    assert.equal((await ingestRecords(v.vault, [rec('{"eu":1}', 'eu-west-1')], { principal: writer() })).stored, 1);
  } finally {
    await v.close();
  }
  const volB = temp('vol-ap');
  assert.throws(() => applyRegionDirs(dataDir, { 'eu-west-1': volB }), (e: unknown) => isConfig(e) && /does not move it/.test((e as Error).message));
  assert.equal(readConfig(dataDir).regionDirs, undefined, 'nothing saved');
  assert.throws(() => applyRegionDirs(dataDir, { 'ap-south-1': join(volB, 'missing') }), isConfig);
  applyRegionDirs(dataDir, { 'ap-south-1': volB });
  applyRegionDirs(dataDir, { 'ap-south-1': volB }); // the same again: no change
  assert.deepEqual(readConfig(dataDir).regionDirs, { 'ap-south-1': volB });
  v = await open(dataDir);
  try {
    assert.equal((await ingestRecords(v.vault, [rec('{"ap":1}', 'ap-south-1')], { principal: writer() })).stored, 1);
    await v.vault.sequencer('ap-south-1').waitForCheckpoint(1);
  } finally {
    await v.close();
  }
  assert.ok(existsSync(join(volB, 'ap-south-1', 'tree', 'checkpoint')));
  assert.ok(lstatSync(join(dataDir, 'logs', 'eu-west-1')).isDirectory(), 'eu-west-1 stayed where it was');

  for (const bad of ['eu-west-1', '=/tmp', 'Bad Region=/tmp', 'eu-west-1=']) assert.throws(() => parseRegionDirs([bad]), isConfig, bad);
  assert.throws(() => parseRegionDirs(['eu-west-1=/a', 'eu-west-1=/b']), isConfig);
  // init refuses a directory that is not there, and leaves no vault behind.
  const fresh = join(temp('data'), 'vault');
  assert.throws(() => initVault(fresh, { regionDirs: { 'eu-west-1': join(volB, 'nope') } }), isConfig);
  assert.equal(existsSync(join(fresh, 'vault.json')), false);
});

test('custody init / serve --region-dir on the command line', async () => {
  const vol = temp('vol-cli');
  const dataDir = join(temp('data'), 'vault');
  const ok = await runCli(['init', '--data', dataDir, '--regions', 'eu-west-1', '--region-dir', `eu-west-1=${vol}`, '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual((JSON.parse(readFileSync(join(dataDir, 'vault.json'), 'utf8')) as { regionDirs: unknown }).regionDirs, { 'eu-west-1': vol });
  assert.ok(lstatSync(join(dataDir, 'logs', 'eu-west-1')).isSymbolicLink());
  const listed = await runCli(['logs', '--data', dataDir, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const eu = (JSON.parse(listed.stdout) as { logs: Array<{ name: string; storage: { path: string } }> }).logs.find((l) => l.name === 'eu-west-1')!;
  assert.equal(eu.storage.path, realpathSync(join(vol, 'eu-west-1')));

  const bad = await runCli(['init', '--data', join(temp('data'), 'vault'), '--region-dir', `eu-west-1=${join(vol, 'missing')}`]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /missing or not a directory/);

  // serve with the volume gone: refuses to start, naming it.
  renameSync(vol, vol + '.gone');
  temps.push(vol + '.gone');
  const serve = await runCli(['serve', '--data', dataDir, '--port', '0'], {}, 30_000);
  assert.notEqual(serve.code, 0);
  assert.match(serve.stderr, new RegExp(`${vol.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*region eu-west-1|region eu-west-1.*${vol.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
});
