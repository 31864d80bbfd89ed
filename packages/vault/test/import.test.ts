/**
 * `custody import <folder>` against real servers: every shared sample file is imported with
 * no refused record; a second run stores nothing (all duplicates); an import killed midway
 * (SIGKILL) and resumed ends with the same logs as a clean run; a file that cannot be read
 * fails alone and makes the exit code non-zero; PUSHBACK and dropped connections are retried.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, relative, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { startServer, runCli, makeTempDir, cleanup, listLogs, sleep, waitFor, CUSTODY_BIN, ROOT, type ServerHandle } from './support/server.js';
import { skipReason, excludeMatcher, sourceByName, type ImportSummary, type FileResult } from '../src/cli/import.js';

const SAMPLES = resolve(ROOT, '..', 'shared', 'samples');

after(cleanup);

/** Every data file under the samples folder outside edge-cases/, LICENSES/ and SOURCES.md ('/'-separated, relative). */
function sampleDataFiles(): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(SAMPLES, p).split('\\').join('/'));
    }
  };
  walk(SAMPLES);
  return out.filter((f) => !f.startsWith('edge-cases/') && !f.startsWith('LICENSES/') && f !== 'SOURCES.md').sort();
}

function parseSummary(stdout: string, stderr: string): ImportSummary {
  try {
    return JSON.parse(stdout) as ImportSummary;
  } catch {
    throw new Error(`custody import printed no JSON.\nstdout: ${stdout.slice(-3000)}\nstderr: ${stderr.slice(-3000)}`);
  }
}

/** Entries per region log (integrated + pending), without the audit log. */
async function logSizes(s: ServerHandle): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const l of await listLogs(s)) if (l.name !== 'audit') out[l.name] = l.size + l.pending;
  return out;
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** Per source: records the server accounted for (stored + duplicates). */
function seen(s: ImportSummary): Record<string, number> {
  return Object.fromEntries(Object.entries(s.sources).map(([k, t]) => [k, t.stored + t.duplicates]));
}

let server: ServerHandle;
let env: Record<string, string>;
let stateDir: string;
let clean: ImportSummary;
let cleanLogs: Record<string, number>;

before(async () => {
  server = await startServer({ checkpointIntervalMs: 50 });
  stateDir = makeTempDir('import-state');
  env = { CUSTODY_URL: server.url, CUSTODY_TOKEN: server.tokens.writer, XDG_STATE_HOME: stateDir };
});
after(async () => {
  await server?.stop();
});

test('skip rules, --exclude patterns and the by-name source follow the AWS delivery layouts', () => {
  assert.equal(skipReason('SOURCES.md', 10), 'documentation');
  assert.equal(skipReason('LICENSES/x__LICENSE.txt', 10), 'licence texts');
  assert.equal(skipReason('AWSLogs/111111111111/CloudTrail/', 0), 'folder marker');
  assert.equal(skipReason('AWSLogs/111111111111/Config/ConfigWritabilityCheckFile', 4), 'AWS Config write check');
  assert.equal(skipReason('exports/aws-logs-write-test', 30), 'CloudWatch Logs write check');
  assert.equal(skipReason('out/_SUCCESS', 0), 'marker file');
  assert.equal(skipReason('a/b.json', 0), 'empty');
  // Digest files are the evidence that log files were delivered unchanged: data, imported.
  assert.equal(skipReason('AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2018/01/30/111111111111_CloudTrail-Digest_us-east-1_t_us-east-1_20180130T143514Z.json.gz', 900), null);
  assert.equal(skipReason('AWSLogs/o-abc123/111111111111/CloudTrail/us-east-1/2018/01/30/x.json.gz', 900), null);

  const ex = excludeMatcher(['edge-cases/', '*.log', '/top/**/deep.json']);
  assert.ok(ex('edge-cases/a.json'));
  assert.ok(ex('x/edge-cases/b/c.json'));
  assert.ok(!ex('not-edge-cases/a.json'));
  assert.ok(ex('applogs/sshd.log'));
  assert.ok(!ex('applogs/sshd.log.gz'));
  assert.ok(ex('top/deep.json') && ex('top/a/b/deep.json'));
  assert.ok(!ex('x/top/deep.json'));

  assert.equal(sourceByName('AWSLogs/111111111111/CloudTrail/eu-west-1/2024/01/02/111111111111_CloudTrail_eu-west-1_20240102T0000Z_abc.json.gz'), 'cloudtrail');
  assert.equal(sourceByName('AWSLogs/o-abc123/111111111111/CloudTrail/eu-west-1/2024/01/02/f.json.gz'), 'cloudtrail');
  assert.equal(sourceByName('AWSLogs/111111111111/vpcflowlogs/eu-west-1/2024/01/02/f.log.gz'), 'vpcflow');
  assert.equal(sourceByName('AWSLogs/aws-account-id=111111111111/aws-service=vpcflowlogs/aws-region=eu-west-1/year=2024/f.log.gz'), 'vpcflow');
});

test('the name rules never throw on hostile keys, and --exclude never matches outside its pattern', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), fc.nat(1e9), (name, size) => {
      const why = skipReason(name, size);
      assert.ok(why === null || typeof why === 'string');
      assert.equal(typeof sourceByName(name), 'string');
    }),
    { numRuns: 2000 },
  );
  // A literal pattern (no wildcard) matches a key only where that key has it as a whole trailing path.
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z0-9._-]{1,12}$/), fc.array(fc.stringMatching(/^[a-z0-9._-]{1,8}$/), { maxLength: 4 }), (file, dirs) => {
      const ex = excludeMatcher([file]);
      assert.ok(ex([...dirs, file].join('/')));
      assert.ok(!ex([...dirs, `${file}x`].join('/')));
    }),
  );
});

test('imports every sample file outside edge-cases/ with zero refused records; the per-source totals are the sums over the files', async () => {
  const dir = makeTempDir('import-report');
  const report = join(dir, 'report.ndjson');
  const r = await runCli(['import', SAMPLES, '--exclude', 'edge-cases/', '--report', report, '--json'], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const s = parseSummary(r.stdout, r.stderr);
  clean = s;
  const expected = sampleDataFiles();
  assert.equal(s.complete, true);
  assert.equal(s.failed.files, 0, JSON.stringify(s.failed.list));
  assert.equal(s.totals.rejected, 0, JSON.stringify(s.withRejections));
  assert.equal(s.totals.files, expected.length);
  assert.ok(s.totals.stored > 10_000, `stored ${s.totals.stored}`);
  assert.equal(s.skipped.reasons['documentation'], 1, 'SOURCES.md is skipped');
  assert.equal(s.skipped.reasons['licence texts'], 1, 'LICENSES/ is skipped (as one folder)');
  assert.equal(s.skipped.reasons['excluded'], 1, 'the edge case is left out by --exclude');

  const files = readFileSync(report, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FileResult);
  assert.deepEqual(files.map((f) => f.name).sort(), expected, 'one report line per data file, named by its relative path');
  for (const f of files) assert.match(f.object, /^sha256:[0-9a-f]{64}$/);
  // Per source: the summary is the sum over its files.
  const bySource = new Map<string, FileResult[]>();
  for (const f of files) bySource.set(f.source, [...(bySource.get(f.source) ?? []), f]);
  assert.deepEqual([...bySource.keys()].sort(), Object.keys(s.sources).sort());
  for (const [src, fs] of bySource) {
    const t = s.sources[src]!;
    assert.equal(t.files, fs.length, src);
    assert.equal(t.stored, sum(fs.map((f) => f.stored)), src);
    assert.equal(t.duplicates, sum(fs.map((f) => f.duplicates)), src);
    assert.equal(t.bytes, sum(fs.map((f) => f.bytes)), src);
    assert.equal(t.bytes, sum(fs.map((f) => statSync(join(SAMPLES, f.name)).size)), `${src}: bytes as stored on disk (gzip sent compressed)`);
  }
  // Every stored record is in a log, and the logs hold exactly them.
  assert.equal(sum(Object.values(s.logs)), s.totals.stored);
  cleanLogs = await logSizes(server);
  assert.deepEqual(cleanLogs, Object.fromEntries(Object.entries(s.logs).map(([l, n]) => [l, n])), 'the log sizes are what the import reported');
  assert.ok(Object.keys(cleanLogs).length > 3, 'records were routed to their regions\' logs');
  assert.deepEqual(readdirSync(join(stateDir, 'custody')), [], 'a finished import leaves no state file');
});

test('running the same import again stores nothing: every record comes back as a duplicate', async () => {
  assert.ok(clean, 'needs the first import');
  const r = await runCli(['import', SAMPLES, '--exclude', 'edge-cases/', '--json'], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const s = parseSummary(r.stdout, r.stderr);
  assert.equal(s.totals.files, clean.totals.files);
  assert.equal(s.totals.stored, 0);
  assert.equal(s.totals.duplicates, clean.totals.stored + clean.totals.duplicates);
  assert.deepEqual(seen(s), seen(clean));
  assert.deepEqual(await logSizes(server), cleanLogs, 'no log grew');
});

test('an import killed with SIGKILL midway resumes where it stopped and stores nothing twice', async (t) => {
  assert.ok(clean, 'needs the clean import');
  const s2 = await startServer({ checkpointIntervalMs: 50 });
  t.after(() => s2.stop());
  const dir = makeTempDir('import-kill');
  const statePath = join(dir, 'state.jsonl');
  const args = ['import', SAMPLES, '--exclude', 'edge-cases/', '--state', statePath, '--concurrency', '1', '--url', s2.url, '--token', s2.tokens.writer, '--json'];
  const child = spawn(process.execPath, [CUSTODY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XDG_STATE_HOME: dir } });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const finishedLines = (): number => {
    if (!existsSync(statePath)) return 0;
    return readFileSync(statePath, 'utf8').split('\n').filter((l) => {
      try {
        return typeof (JSON.parse(l) as { ref?: unknown }).ref === 'string';
      } catch {
        return false; // the header, a blank or a torn last line
      }
    }).length;
  };
  try {
    await waitFor('the import to finish a few files', () => finishedLines() >= 4 || child.exitCode !== null, 60_000, 5);
  } finally {
    child.kill('SIGKILL');
  }
  const ex = await exited;
  assert.equal(ex.signal, 'SIGKILL', `the import was still running when it was killed (it exited by itself: ${out.slice(-2000)})`);
  const before = finishedLines();
  assert.ok(before >= 4 && before < clean.totals.files, `killed midway: ${before} of ${clean.totals.files} files finished`);

  const r = await runCli(args, {});
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const s = parseSummary(r.stdout, r.stderr);
  assert.equal(s.resumedFiles, before, 'the files finished before the kill were not sent again');
  assert.equal(s.totals.files, clean.totals.files);
  assert.equal(s.totals.rejected, 0);
  // A file in flight at the kill may have been stored; sent again, its records are duplicates.
  assert.deepEqual(seen(s), seen(clean), 'every record was accounted for, per source');
  await sleep(100);
  assert.deepEqual(await logSizes(s2), cleanLogs, 'the logs hold exactly what a clean run stores: nothing twice, nothing lost');
  assert.equal(existsSync(statePath), false, 'the state file is removed once the import is complete');
});

test('a file that cannot be read fails alone: the others are imported, the exit code is 1, and a rerun sends only that file', async () => {
  const dir = makeTempDir('import-bad');
  const ct = 'cloudtrail/111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json.gz';
  mkdirSync(join(dir, 'cloudtrail'));
  mkdirSync(join(dir, 'vpcflow'));
  copyFileSync(join(SAMPLES, ct), join(dir, ct));
  copyFileSync(join(SAMPLES, 'vpcflow/clo_vpcflow_v2_default.log'), join(dir, 'vpcflow/clo_vpcflow_v2_default.log'));
  // gzip magic, then garbage: the server cannot inflate it.
  writeFileSync(join(dir, 'cloudtrail/broken.json.gz'), Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.from('this is not deflate data at all')]));
  const statePath = join(dir, '..', `state-${process.pid}.jsonl`);
  const args = ['import', dir, '--state', statePath, '--json'];
  const r = await runCli(args, env);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const s = parseSummary(r.stdout, r.stderr);
  assert.equal(s.complete, false);
  assert.equal(s.failed.files, 1);
  assert.equal(s.failed.list[0]!.name, 'cloudtrail/broken.json.gz');
  assert.equal(s.failed.list[0]!.code, 'BAD_ENCODING');
  assert.equal(s.totals.files, 2, 'the two good files were imported');
  assert.equal(s.sources['cloudtrail']?.files, 1);
  assert.equal(s.sources['vpcflow']?.files, 1);
  assert.ok(existsSync(statePath), 'the state is kept so that a rerun retries only the failed file');

  const human = await runCli(args.filter((a) => a !== '--json'), env);
  assert.equal(human.code, 1);
  assert.match(human.stdout, /FAILED 1 file\(s\):\n {2}cloudtrail\/broken\.json\.gz: .*\[BAD_ENCODING\]/);

  // Fix the file: the rerun sends it alone.
  writeFileSync(join(dir, 'cloudtrail/broken.json.gz'), gzipSync(readFileSync(join(SAMPLES, 'cloudtrail/clo_cloudtrail_records.json'))));
  const fixed = await runCli(args, env);
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  const f = parseSummary(fixed.stdout, fixed.stderr);
  assert.equal(f.resumedFiles, 2);
  assert.equal(f.totals.files, 3);
  assert.equal(f.sources['cloudtrail']?.files, 2);
  assert.equal(f.complete, true);
  assert.equal(existsSync(statePath), false);
});

test('a wrong token stops the import at once with UNAUTHENTICATED; --dry-run needs no server', async () => {
  const bad = await runCli(['import', SAMPLES, '--json'], { ...env, CUSTODY_TOKEN: 'cst_wrong' });
  assert.equal(bad.code, 2);
  assert.equal((JSON.parse(bad.stdout) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');

  const missing = await runCli(['import', join(SAMPLES, 'no-such-folder'), '--json'], env);
  assert.equal(missing.code, 2);
  assert.equal((JSON.parse(missing.stdout) as { error: { code: string } }).error.code, 'IMPORT_SOURCE');

  const dry = await runCli(['import', SAMPLES, '--dry-run', '--json'], { CUSTODY_URL: 'http://127.0.0.1:9' });
  assert.equal(dry.code, 0, dry.stderr);
  const d = JSON.parse(dry.stdout) as { files: number; objects: Array<{ name: string; source: string }>; skipped: Array<{ name: string; reason: string }> };
  assert.equal(d.files, sampleDataFiles().length + 1, 'every data file, the edge case included');
  assert.ok(d.skipped.some((x) => x.name === 'SOURCES.md'));
  assert.ok(d.skipped.some((x) => x.name === 'LICENSES/'));
  for (const o of d.objects.filter((x) => x.name.startsWith('cloudtrail/grycap_974349055189/'))) assert.equal(o.source, 'cloudtrail', o.name);
});

test('PUSHBACK is retried after the server\'s Retry-After, and a dropped connection is retried with backoff', async (t) => {
  // A proxy in front of the real server: the first ingest request gets 503 PUSHBACK
  // (Retry-After: 1), the second loses its connection, the rest pass through.
  let ingests = 0;
  const target = new URL(server.url);
  const proxy = http.createServer((req, res) => {
    const isIngest = req.url?.startsWith('/v1/ingest') ?? false;
    if (isIngest) ingests++;
    if (isIngest && ingests === 1) {
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ error: { code: 'PUSHBACK', message: 'busy; retry after a second' } }));
      return;
    }
    if (isIngest && ingests === 2) {
      req.socket.destroy();
      return;
    }
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => proxy.close(() => r())));
  const port = (proxy.address() as { port: number }).port;
  const dir = makeTempDir('import-retry');
  for (const n of ['a', 'b', 'c']) writeFileSync(join(dir, `${n}.ndjson`), `{"retry-test":"${n}-${process.pid}-1"}\n{"retry-test":"${n}-${process.pid}-2"}\n`);
  const t0 = Date.now();
  const r = await runCli(['import', dir, '--concurrency', '1', '--json', '--url', `http://127.0.0.1:${port}`], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const s = parseSummary(r.stdout, r.stderr);
  assert.equal(s.totals.files, 3);
  assert.equal(s.totals.stored, 6, 'every record stored once, whatever was retried');
  assert.equal(ingests, 5, 'two retries: one after PUSHBACK, one after the dropped connection');
  assert.ok(Date.now() - t0 >= 1000, 'waited for Retry-After');
});
