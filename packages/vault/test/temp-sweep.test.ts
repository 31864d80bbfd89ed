/** Temporary files an interrupted write left behind are removed at the next start. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { initVault, Vault } from '../src/vault.js';
import { buildServer } from '../src/server/index.js';

test('leftover .tmp files at the right edge of the tree are swept on start; real files stay', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'custody-sweep-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const init = initVault(dataDir);
  const writer = init.tokens.find((x) => x.role === 'writer')!.token;
  const logger = pino({ level: 'silent' });
  let vault = await Vault.open(dataDir, { logger, checkpointIntervalMs: 10 });
  const app = await buildServer({ vault, logger });
  const lines = Array.from({ length: 600 }, (_, i) => JSON.stringify({ i })).join('\n');
  const r = await app.inject({ method: 'POST', url: '/v1/logs/local/entries?wait=checkpoint', headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/x-ndjson' }, payload: lines });
  assert.equal(r.statusCode, 200);
  await app.close();
  await vault.close();

  const tree = join(dataDir, 'logs', 'local', 'tree');
  const leftovers = [
    join(tree, '.checkpoint.0123456789ab.tmp'),
    join(tree, 'tile', '0', '.002.abcdef012345.tmp'),
    join(tree, 'tile', 'entries', '.002.abcdef012345.tmp'),
  ];
  mkdirSync(join(tree, 'tile', '0', '002.p'), { recursive: true });
  leftovers.push(join(tree, 'tile', '0', '002.p', '.88.0123456789ab.tmp'));
  for (const f of leftovers) writeFileSync(f, 'partial write');
  vault = await Vault.open(dataDir, { logger });
  t.after(() => vault.close());
  for (const f of leftovers) assert.ok(!existsSync(f), `${f} was swept`);
  assert.ok(existsSync(join(tree, 'checkpoint')));
  assert.ok(existsSync(join(tree, 'tile', '0', '000')));
  assert.ok(existsSync(join(tree, 'tile', 'entries', '002.p', '88')));
  assert.equal(vault.sequencer('local').size, 600);
});
