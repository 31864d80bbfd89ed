/**
 * The witness from the command line, as an operator runs it: `custody witness init`,
 * `add-log`, `serve` (a real process, killed with SIGKILL and restarted: its state is on
 * disk), `custody serve --witness name=url=vkey`, and `custody verify-bundle --witness …
 * --witness-policy k` on an evidence bundle whose checkpoint carries the cosignature.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { checkCosignatures, parseVerifierKey } from '@custody/verify';
import { CUSTODY_BIN, appendNdjson, cleanup, freePort, getText, makeTempDir, readTokens, runCli, waitForCheckpoint } from '../support/server.js';

const procs: ChildProcess[] = [];

/** Spawns `custody …` and resolves with the process once stdout matches `ready`. */
function start(args: string[], ready: RegExp): Promise<{ proc: ChildProcess; out: () => string; match: RegExpExecArray }> {
  const proc = spawn(process.execPath, [CUSTODY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CUSTODY_LOG_LEVEL: 'warn' } });
  procs.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8');
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready: ${args.join(' ')}\n${out}\n${err}`)), 30_000);
    proc.stdout!.on('data', (s: string) => {
      out += s;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, out: () => out, match: m });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`custody ${args[0]} exited (${code}) before it was ready:\n${out}\n${err}`));
    });
  });
}

function killHard(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  });
}

describe('custody witness … and custody serve --witness', () => {
  after(async () => {
    for (const p of procs) await killHard(p);
    await cleanup();
  });

  test('init, add-log, serve; the vault publishes cosigned checkpoints; the witness survives kill -9; verify-bundle checks the policy', async () => {
    const root = makeTempDir('wcli');
    const wdir = join(root, 'witness');
    const vdir = join(root, 'vault');
    const init = await runCli(['witness', 'init', '--data', wdir, '--name', 'witness.example.org', '--json']);
    assert.equal(init.code, 0, init.stderr);
    const wkey = (JSON.parse(init.stdout) as { vkey: string }).vkey;
    assert.equal(parseVerifierKey(wkey).type, 0x04, 'a cosignature/v1 key');
    const again = await runCli(['witness', 'init', '--data', wdir, '--name', 'other', '--json']);
    assert.equal(again.code, 2, 'never initialised twice');

    const vinit = await runCli(['init', '--data', vdir, '--regions', 'local', '--json']);
    assert.equal(vinit.code, 0, vinit.stderr);
    const logs = (JSON.parse(vinit.stdout) as { logs: Array<{ name: string; origin: string; verifierKey: string }> }).logs;
    for (const l of logs) {
      const r = await runCli(['witness', 'add-log', '--data', wdir, '--origin', l.origin, '--vkey', l.verifierKey]);
      assert.equal(r.code, 0, r.stderr);
    }
    const wrong = await runCli(['witness', 'add-log', '--data', wdir, '--origin', 'other/origin', '--vkey', logs[0]!.verifierKey]);
    assert.equal(wrong.code, 2, 'the key must be named after the origin');

    const wport = await freePort();
    let w = await start(['witness', 'serve', '--data', wdir, '--port', String(wport)], /listening on (http:\/\/\S+)\/add-checkpoint/);
    const wurl = w.match[1]!;
    const vport = await freePort();
    await start(['serve', '--data', vdir, '--port', String(vport), '--checkpoint-interval', '20', '--witness', `w1=${wurl}=${wkey}`], /Custody is listening on/);
    const s = { url: `http://127.0.0.1:${vport}`, tokens: readTokens(vdir) };

    const a = await appendNdjson(s.url, s.tokens.writer, Array.from({ length: 30 }, (_, i) => JSON.stringify({ i, msg: 'hello' })));
    const cp = await waitForCheckpoint(s, 'local', a.first + a.count, 30_000);
    assert.equal(checkCosignatures(cp, [parseVerifierKey(wkey)], 1).ok, true, cp);

    // kill -9 the witness, restart it: it remembers what it cosigned, and cosigns on.
    await killHard(w.proc);
    const listed = await runCli(['witness', 'logs', '--data', wdir, '--json']);
    const local = (JSON.parse(listed.stdout) as { logs: Array<{ origin: string; size: number }> }).logs.find((l) => l.origin === logs.find((x) => x.name === 'local')!.origin)!;
    assert.ok(local.size >= a.first + a.count, `the witness state on disk: ${listed.stdout}`);
    const b = await appendNdjson(s.url, s.tokens.writer, ['{"after":"kill"}']);
    w = await start(['witness', 'serve', '--data', wdir, '--port', String(wport)], /listening on/);
    const cp2 = await waitForCheckpoint(s, 'local', b.first + 1, 30_000);
    assert.equal(checkCosignatures(cp2, [parseVerifierKey(wkey)], 1).ok, true);

    // An evidence bundle carries the cosigned checkpoint; verify-bundle applies the policy.
    const out = join(root, 'evidence.zip');
    const ex = await runCli(['export', '--entry', `local:${a.first}`, '--out', out, '--url', s.url, '--token', s.tokens.auditor, '--json']);
    assert.equal(ex.code, 0, ex.stdout + ex.stderr);
    const logKey = logs.find((x) => x.name === 'local')!.verifierKey;
    const ok = await runCli(['verify-bundle', out, '--key', logKey, '--witness', wkey, '--witness-policy', '1', '--json'], { CUSTODY_TRUST_FILE: join(root, 'trust.json') });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const rep = JSON.parse(ok.stdout) as { logs: Array<{ log: string; cosigners: string[] }> };
    assert.deepEqual(rep.logs.find((l) => l.log === 'local')!.cosigners, ['witness.example.org']);
    const otherInit = await runCli(['witness', 'init', '--data', join(root, 'w2'), '--name', 'witness-2.example.org', '--json']);
    const otherKey = (JSON.parse(otherInit.stdout) as { vkey: string }).vkey;
    const bad = await runCli(['verify-bundle', out, '--key', logKey, '--witness', wkey, '--witness', otherKey, '--witness-policy', '2', '--json'], { CUSTODY_TRUST_FILE: join(root, 'trust.json') });
    assert.equal(bad.code, 1, 'policy 2 of 2 is not met: only one witness cosigned');
    // The auditor's read API serves the cosigned checkpoint as is.
    assert.equal(await getText(s.url, s.tokens.auditor, '/logs/local/checkpoint').then((t) => checkCosignatures(t, [parseVerifierKey(wkey)], 1).ok), true);
  });
});
