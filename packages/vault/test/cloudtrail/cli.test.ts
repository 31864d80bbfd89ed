/**
 * The `custody cloudtrail validate` command on a folder copy: exit codes (0 valid, 1 problems,
 * 2 usage), the human summary and the documented --json shape (docs/CLOUDTRAIL-VALIDATE.md).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { ValidationReport } from '../../src/cloudtrail/index.js';
import { cleanup, makeTempDir, runCli } from '../support/server.js';
import { TRAIL, buildChain, keysFileText, makeTestKey, writeFolder } from './chain.js';

after(cleanup);

const KEY = makeTestKey();

function copy(hours = 5): { dir: string; keys: string; chain: ReturnType<typeof buildChain>; path: (k: string) => string } {
  const root = makeTempDir('ct-cli');
  const dir = join(root, 'bucket');
  const chain = buildChain({ key: KEY, hours, logsPerHour: 2 });
  writeFolder(dir, chain.objects);
  const keys = join(root, 'keys.json');
  writeFileSync(keys, keysFileText([KEY]));
  return { dir, keys, chain, path: (k) => join(dir, ...k.split('/')) };
}

test('a valid copy: exit 0, a plain summary, and the --json report in its documented shape', async () => {
  const c = copy();
  const human = await runCli(['cloudtrail', 'validate', c.dir, '--public-keys', c.keys, '--bucket', TRAIL.bucket]);
  assert.equal(human.code, 0, human.stdout + human.stderr);
  assert.match(human.stdout, /^CloudTrail log file validation of /);
  assert.match(human.stdout, /1 digest chain: 5 digest files \(5 valid\), 10 log files \(10 valid\)/);
  assert.match(human.stdout, /VALID: every digest signature, chain link and log file hash checks out\./);
  assert.equal(human.stderr, '', 'no progress bar when stderr is not a terminal');

  const j = await runCli(['cloudtrail', 'validate', c.dir, '--public-keys', c.keys, '--json']);
  assert.equal(j.code, 0, j.stderr);
  const r = JSON.parse(j.stdout) as ValidationReport;
  assert.deepEqual(Object.keys(r), ['source', 'bucket', 'valid', 'summary', 'chains', 'problems', 'warnings']);
  assert.deepEqual(Object.keys(r.summary), ['objectsListed', 'digests', 'digestsValid', 'logFiles', 'logFilesValid', 'logFilesNotChecked', 'chains', 'problems', 'warnings', 'seconds']);
  assert.deepEqual(Object.keys(r.chains[0]!), ['id', 'account', 'region', 'trail', 'homeRegion', 'digests', 'from', 'to']);
  assert.equal(r.valid, true);
  assert.equal(r.bucket, null, 'no --bucket: the digests\' own bucket is used');
  assert.equal(r.source, c.dir);
});

test('tampering: exit 1 and every problem named in --json and in the summary', async () => {
  const c = copy(7);
  for (const i of [2, 3]) rmSync(c.path(c.chain.digests[i]!));
  writeFileSync(c.path(c.chain.logs[5]![1]!), gzipSync('{"Records":[]}'));
  const j = await runCli(['cloudtrail', 'validate', c.dir, '--public-keys', c.keys, '--json']);
  assert.equal(j.code, 1, j.stderr);
  const r = JSON.parse(j.stdout) as ValidationReport;
  assert.equal(r.valid, false);
  assert.deepEqual(r.problems.map((p) => p.kind), ['digests-missing', 'log-modified']);
  assert.equal(r.problems[0]!.estimatedCount, 2);
  assert.equal(r.summary.problems, 2);
  const human = await runCli(['cloudtrail', 'validate', c.dir, '--public-keys', c.keys]);
  assert.equal(human.code, 1);
  assert.match(human.stdout, /Problems \(2\):/);
  assert.match(human.stdout, /digests missing: Digest files are missing between 2024-03-01T02:00:31Z and 2024-03-01T04:00:31Z \(about 2 digests\)/);
  assert.match(human.stdout, /log file modified: /);
  assert.match(human.stdout, /NOT VALID: 2 problems found\./);
});

test('a folder without digests is not valid (exit 1) and says what to give', async () => {
  const root = makeTempDir('ct-empty');
  mkdirSync(join(root, 'b'));
  writeFileSync(join(root, 'k.json'), keysFileText([KEY]));
  const r = await runCli(['cloudtrail', 'validate', join(root, 'b'), '--public-keys', join(root, 'k.json')]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /no digest file was found/);
});

test('usage errors exit 2 with a sentence saying what to do', async () => {
  const c = copy(1);
  const cases: Array<[string[], RegExp]> = [
    [['cloudtrail', 'validate', c.dir], /needs CloudTrail's public keys: --public-keys <file>/],
    [['cloudtrail', 'validate', c.dir, '--public-keys', c.keys, '--from', 'yesterday'], /--from must be a date or a UTC time/],
    [['cloudtrail', 'validate', c.dir, '--public-keys', c.keys, '--from', '2024-03-02', '--to', '2024-03-01'], /--from must not be after --to/],
    [['cloudtrail', 'validate', 's3://bucket/prefix', '--bucket', 'x'], /for a folder copy/],
    [['cloudtrail', 'validate', c.dir, '--public-keys', c.keys, '--endpoint', 'http://127.0.0.1:1'], /for s3:\/\/ locations only/],
    [['cloudtrail', 'validate', join(c.dir, 'nope'), '--public-keys', c.keys], /does not exist/],
    [['cloudtrail', 'validate', c.dir, '--public-keys', join(c.dir, 'nope.json')], /Cannot read the public keys file/],
    [['cloudtrail', 'validate', c.dir, '--public-keys', c.keys, '--concurrency', '0'], /--concurrency must be a whole number/],
    [['cloudtrail', 'validate', c.dir, '--public-keys', c.keys, '--frobnicate'], /unknown option/],
    [['cloudtrail', 'validate'], /missing required argument/],
    [['cloudtrail', 'validate', 's3://', '--public-keys', c.keys], /is not an S3 location/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  }
  const j = await runCli(['cloudtrail', 'validate', c.dir, '--json']);
  assert.equal(j.code, 2);
  assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'BAD_REQUEST');
});
