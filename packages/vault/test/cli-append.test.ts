/**
 * `custody append` against a real server: JSON and text lines, bad lines named by file and
 * line while the good ones are stored, duplicates reported, exit codes an auditor can script.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startServer, runCli, makeTempDir, cleanup, getJson, waitForCheckpoint } from './support/server.js';

after(cleanup);

test('custody append stores good lines, names bad ones by file:line, and exits 1 when any was refused', async (t) => {
  const s = await startServer({ checkpointIntervalMs: 20 });
  t.after(() => s.stop());
  const dir = makeTempDir('append');
  const good = join(dir, 'good.ndjson');
  const mixed = join(dir, 'mixed.ndjson.gz');
  writeFileSync(good, '{"a":1}\n{"a":2}\n');
  writeFileSync(mixed, gzipSync('{"b":1}\nnot json\n\n{"b":2}\n'));
  const env = { CUSTODY_URL: s.url, CUSTODY_TOKEN: s.tokens.writer };

  const ok = await runCli(['append', good, '--json'], env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).count, 2);

  const bad = await runCli(['append', mixed, '--json'], env);
  assert.equal(bad.code, 1, 'a refused line makes the command fail');
  const j = JSON.parse(bad.stdout) as { count: number; rejected: number; errors: Array<{ where: string; code: string }> };
  assert.equal(j.count, 2, 'the good lines around the bad one were stored');
  assert.equal(j.rejected, 1);
  assert.equal(j.errors[0]!.where, `${mixed}:2`);
  assert.equal(j.errors[0]!.code, 'BAD_JSON');

  const human = await runCli(['append', mixed], env);
  assert.equal(human.code, 1);
  assert.match(human.stdout, /1 records were refused/);
  assert.match(human.stdout, /mixed\.ndjson\.gz:2: Record 2 is not valid JSON/);

  const text = join(dir, 'auth.log');
  writeFileSync(text, 'Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502\nplain words, not JSON\n');
  const tx = await runCli(['append', text, '--text', '--source', 'app.sshd', '--json'], env);
  assert.equal(tx.code, 0, tx.stdout + tx.stderr);
  assert.equal(JSON.parse(tx.stdout).count, 2);
  await waitForCheckpoint(s, 'local', 8);
  const { logs } = await getJson<{ logs: Array<{ name: string; size: number; pending: number }> }>(s.url, s.tokens.auditor, '/v1/logs');
  const local = logs.find((l) => l.name === 'local')!;
  assert.equal(local.size + local.pending, 8, 'the eight good records, and nothing of the refused lines, reached the log');

  const noToken = await runCli(['append', good], { CUSTODY_URL: s.url, CUSTODY_TOKEN: 'cst_wrong' });
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /UNAUTHENTICATED/);
});
