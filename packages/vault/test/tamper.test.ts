/**
 * Tamper evidence: one vault of 3,000 entries written by a real server (full and partial hash
 * tiles, full and partial sealed bundles, many checkpoints), stopped cleanly. Each case damages
 * a fresh copy of its data directory and `custody verify --data COPY --json` must fail naming
 * exactly what was damaged. Each case first shows verify passes on the untouched copy, so the
 * test can fail. One case goes through a server (`custody verify --url`), and the rollback case
 * also starts a server on the rolled-back directory.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { Keyring } from '../src/crypto/keyring.js';
import { open as openSealed, seal } from '../src/crypto/aead.js';
import {
  appendNdjson,
  runCli,
  checkpointSize,
  cleanup,
  makeTempDir,
  ServerExitedError,
  startServer,
  verifyJson,
  waitForCheckpoint,
  type ServerHandle,
  type VerifyJson,
  type VerifyLogReport,
} from './support/server.js';

const SIZE_A = 3_000; // 11 full leaf tiles + 0/011.p/184; level 1: 1/000.p/11
const BATCH = 250;
const MORE = 1_000; // appended in the rollback case: B = 4,000

let base = ''; // the clean data directory at size A
let work = '';
let copies = 0;

function tree(dir: string): string {
  return join(dir, 'logs', 'local', 'tree');
}

/** XORs one byte of a file (plaintext hash tiles, sealed bundles). */
function flipByte(path: string, offset?: number): void {
  const b = readFileSync(path);
  const at = offset ?? Math.floor(b.length / 2);
  assert.ok(at < b.length, `${path} has ${b.length} bytes, cannot flip byte ${at}`);
  b[at] = b[at]! ^ 0x01;
  writeFileSync(path, b);
}

/** Replaces one base64 character of `line` (in a text file) by another base64 character. */
function flipBase64Char(path: string, lineNo: number, charFromEnd: number): void {
  const lines = readFileSync(path, 'utf8').split('\n');
  const l = lines[lineNo]!;
  const i = l.length - charFromEnd;
  const c = l[i]!;
  assert.match(c, /[A-Za-z0-9+/]/, `character ${i} of line ${lineNo} is not base64: ${c}`);
  lines[lineNo] = l.slice(0, i) + (c === 'A' ? 'B' : 'A') + l.slice(i + 1);
  writeFileSync(path, lines.join('\n'));
}

function freshTrust(): string {
  return join(work, `trust-${++copies}-${Math.random().toString(36).slice(2)}.json`);
}

/** A fresh copy of the clean vault, shown to verify before it is damaged. */
async function verifiedCopy(t: TestContext, name: string, from = base): Promise<string> {
  const dir = join(work, `${name}-${++copies}`);
  cpSync(from, dir, { recursive: true });
  const { code, json } = await verifyJson(['--data', dir, '--trust-file', freshTrust()]);
  assert.equal(code, 0, `verify fails on the untouched copy: ${JSON.stringify(json, null, 2)}`);
  assert.equal(json.ok, true);
  assert.deepEqual(json.logs.map((l) => [l.log, l.ok, l.problems.length]).sort(), [['audit', true, 0], ['local', true, 0]]);
  assert.equal(json.logs.find((l) => l.log === 'local')!.size, checkpointSize(readFileSync(join(tree(from), 'checkpoint'), 'utf8')));
  t.diagnostic(`${name}: verify passes on the untouched copy`);
  return dir;
}

/** verify --data on a damaged copy: must exit 1 and leave the (fresh) trust file unwritten. */
async function verifyDamaged(args: string[], trustFile = freshTrust()): Promise<{ report: VerifyLogReport; json: VerifyJson }> {
  const existed = existsSync(trustFile);
  const before = existed ? readFileSync(trustFile, 'utf8') : null;
  const { code, json, run } = await verifyJson([...args, '--log', 'local', '--trust-file', trustFile]);
  assert.equal(code, 1, `verify should exit 1 on a damaged log (exit ${code}): ${run.stdout}${run.stderr}`);
  assert.equal(json.ok, false);
  const report = json.logs[0]!;
  assert.equal(report.log, 'local');
  assert.equal(report.ok, false);
  assert.equal(existsSync(trustFile) ? readFileSync(trustFile, 'utf8') : null, before, 'a failed verification must not change what is trusted');
  return { report, json };
}

/** C2SP entry bundle codec (uint16 big-endian length + bytes). */
function decodeBundle(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < b.length; ) {
    const n = b.readUInt16BE(off);
    out.push(b.subarray(off + 2, off + 2 + n));
    off += 2 + n;
  }
  return out;
}
function encodeBundle(entries: Buffer[]): Buffer {
  return Buffer.concat(entries.flatMap((e) => [Buffer.from([e.length >> 8, e.length & 0xff]), e]));
}

const found = (r: VerifyLogReport): string[][] => r.problems.map((p) => [p.kind, p.where]).sort();

describe('tamper evidence: custody verify on damaged copies of a 3,000-entry vault', { timeout: 200_000 }, () => {
  before(async () => {
    work = makeTempDir('tamper');
    base = join(work, 'base');
    const s = await startServer({ dataDir: base, checkpointIntervalMs: 20 });
    try {
      for (let i = 0; i < SIZE_A; i += BATCH) {
        const lines = Array.from({ length: BATCH }, (_, j) => JSON.stringify({ id: i + j, kind: 'auth', user: `user-${(i + j) % 97}`, ok: (i + j) % 7 !== 0, msg: 'login attempt from 203.0.113.' + ((i + j) % 250) }));
        // one checkpoint per batch: the tree goes through many sizes, leaving older partial tiles
        const r = await appendNdjson(s.url, s.tokens.writer, lines, { wait: 'checkpoint' });
        assert.equal(r.first, i);
        assert.ok(r.checkpoint && checkpointSize(r.checkpoint) >= i + BATCH);
      }
      await waitForCheckpoint(s, 'local', SIZE_A);
      // a few audit-log entries too (refused reads)
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${s.url}/v1/logs`, { headers: { authorization: `Bearer ${s.tokens.writer}` } });
        assert.equal(res.status, 403);
      }
    } finally {
      const exit = await s.stop();
      assert.equal(exit.code, 0, 'clean shutdown');
    }
    const t0 = join(tree(base), 'tile');
    assert.equal(checkpointSize(readFileSync(join(tree(base), 'checkpoint'), 'utf8')), SIZE_A);
    // the shapes the cases rely on
    for (const p of ['0/005', '0/010', '0/011.p/184', '1/000.p/11', 'entries/003', 'entries/010', 'entries/011.p/184']) {
      assert.ok(existsSync(join(t0, p)), `tile/${p} exists`);
    }
    assert.ok(!existsSync(join(t0, 'entries', '010.p')), 'partial bundles are deleted once the full bundle exists');
  });

  after(cleanup);

  test('(a) one flipped byte in a full level-0 hash tile → TILE_MISMATCH naming it', async (t) => {
    const dir = await verifiedCopy(t, 'a');
    flipByte(join(tree(dir), 'tile/0/005'), 32 * 17 + 9);
    const { report } = await verifyDamaged(['--data', dir]);
    assert.deepEqual(found(report), [['TILE_MISMATCH', 'tile/0/005']]);
    assert.match(report.problems[0]!.message, /entry 1297\b/, 'names the first damaged leaf (5×256+17)');
  });

  test('(a2) two full level-0 hash tiles swapped → TILE_MISMATCH naming both', async (t) => {
    const dir = await verifiedCopy(t, 'a2');
    const p = (n: string): string => join(tree(dir), 'tile/0', n);
    renameSync(p('002'), p('tmp'));
    renameSync(p('007'), p('002'));
    renameSync(p('tmp'), p('007'));
    const { report } = await verifyDamaged(['--data', dir]);
    assert.deepEqual(found(report), [['TILE_MISMATCH', 'tile/0/002'], ['TILE_MISMATCH', 'tile/0/007']]);
  });

  test('(b) one flipped byte in the level-1 tile → TILE_MISMATCH naming it', async (t) => {
    const dir = await verifiedCopy(t, 'b');
    flipByte(join(tree(dir), 'tile/1/000.p/11'), 32 * 4);
    const { report } = await verifyDamaged(['--data', dir]);
    assert.deepEqual(found(report), [['TILE_MISMATCH', 'tile/1/000.p/11']]);
  });

  test('(b2) one flipped byte in the partial level-0 tile → TILE_MISMATCH naming it', async (t) => {
    const dir = await verifiedCopy(t, 'b2');
    flipByte(join(tree(dir), 'tile/0/011.p/184'), 32 * 183 + 31);
    const { report } = await verifyDamaged(['--data', dir]);
    assert.deepEqual(found(report), [['TILE_MISMATCH', 'tile/0/011.p/184']]);
    assert.match(report.problems[0]!.message, /entry 2999\b/);
  });

  test('(c) one flipped byte in a sealed entry bundle → BUNDLE_CORRUPT naming it', async (t) => {
    const dir = await verifiedCopy(t, 'c');
    flipByte(join(tree(dir), 'tile/entries/003'));
    const { report } = await verifyDamaged(['--data', dir]);
    assert.deepEqual(found(report), [['BUNDLE_CORRUPT', 'tile/entries/003']]);
    // and in the sealed header (wrapped data key) of the partial bundle
    const dir2 = await verifiedCopy(t, 'c2');
    flipByte(join(tree(dir2), 'tile/entries/011.p/184'), 30);
    const r2 = await verifyDamaged(['--data', dir2]);
    assert.deepEqual(found(r2.report), [['BUNDLE_CORRUPT', 'tile/entries/011.p/184']]);
  });

  test('(d) a removed bundle → BUNDLE_MISSING naming it', async (t) => {
    const dir = await verifiedCopy(t, 'd');
    rmSync(join(tree(dir), 'tile/entries/004'));
    const { report } = await verifyDamaged(['--data', dir]);
    assert.deepEqual(found(report), [['BUNDLE_MISSING', 'tile/entries/004']]);
  });

  test('(d2) a removed hash tile → TILE_MISSING naming it, once', async (t) => {
    const dir = await verifiedCopy(t, 'd2');
    rmSync(join(tree(dir), 'tile/0/004'));
    const { report } = await verifyDamaged(['--data', dir]);
    // Each problem once: duplicates also eat into verify's cap of 25 reported problems.
    assert.deepEqual(found(report), [['TILE_MISSING', 'tile/0/004']]);
  });

  test('(e) two full bundles swapped (entries reordered) → fails naming both', async (t) => {
    const dir = await verifiedCopy(t, 'e');
    const p = (n: string): string => join(tree(dir), 'tile/entries', n);
    renameSync(p('002'), p('tmp'));
    renameSync(p('006'), p('002'));
    renameSync(p('tmp'), p('006'));
    const { report } = await verifyDamaged(['--data', dir]);
    assert.deepEqual(found(report), [['BUNDLE_CORRUPT', 'tile/entries/002'], ['BUNDLE_CORRUPT', 'tile/entries/006']]);
  });

  test('(f) a flipped byte in the checkpoint signature or body → CHECKPOINT_INVALID', async (t) => {
    const cases: Array<[string, number, number]> = [
      ['signature', 4, 10], // "— <name> <base64>": inside the Ed25519 signature
      ['signature key ID', 4, 88], // first characters of the base64: the key ID
      ['body: root hash', 2, 5],
    ];
    for (const [what, line, fromEnd] of cases) {
      const dir = await verifiedCopy(t, `f-${what.replace(/\W+/g, '-')}`);
      const cp = join(tree(dir), 'checkpoint');
      assert.equal(readFileSync(cp, 'utf8').split('\n').length, 6, 'checkpoint: 3 body lines, blank, signature, final newline');
      flipBase64Char(cp, line, fromEnd);
      const { report } = await verifyDamaged(['--data', dir]);
      assert.deepEqual(found(report), [['CHECKPOINT_INVALID', 'checkpoint']], what);
    }
    // body: the size line
    const dir = await verifiedCopy(t, 'f-size');
    const cp = join(tree(dir), 'checkpoint');
    writeFileSync(cp, readFileSync(cp, 'utf8').replace(`\n${SIZE_A}\n`, `\n${SIZE_A - 1}\n`));
    const { report } = await verifyDamaged(['--data', dir]);
    assert.deepEqual(found(report), [['CHECKPOINT_INVALID', 'checkpoint']]);

    // The server will not open a vault whose checkpoint was altered either.
    await assert.rejects(startServer({ dataDir: dir }), (e: unknown) => e instanceof ServerExitedError && e.code !== 0 && /STORAGE_CORRUPT/.test(e.stdout + e.stderr));
  });

  test('(g) rollback to an older copy → ROLLBACK: the trusted checkpoint is not a prefix', async (t) => {
    const trust = join(work, 'rollback-trust.json');
    const dir = await verifiedCopy(t, 'g');
    const v1 = await verifyJson(['--data', dir, '--log', 'local', '--trust-file', trust]);
    assert.equal(v1.code, 0);
    assert.equal(v1.json.logs[0]!.size, SIZE_A);
    const atA = join(work, 'g-snapshot-at-A');
    cpSync(dir, atA, { recursive: true });

    // grow the log to B and verify again: the trust file now holds B
    const s = await startServer({ dataDir: dir, checkpointIntervalMs: 20 });
    try {
      await appendNdjson(s.url, s.tokens.writer, Array.from({ length: MORE }, (_, i) => JSON.stringify({ id: SIZE_A + i, late: true })));
      await waitForCheckpoint(s, 'local', SIZE_A + MORE);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
    const v2 = await verifyJson(['--data', dir, '--log', 'local', '--trust-file', trust]);
    assert.equal(v2.code, 0, JSON.stringify(v2.json, null, 2));
    assert.equal(v2.json.logs[0]!.size, SIZE_A + MORE);
    assert.equal(v2.json.logs[0]!.resumedFrom, SIZE_A);
    const atB = join(work, 'g-snapshot-at-B');
    cpSync(dir, atB, { recursive: true });

    // restore the copy taken at A
    rmSync(dir, { recursive: true, force: true });
    cpSync(atA, dir, { recursive: true });
    const { report } = await verifyDamaged(['--data', dir], trust);
    assert.deepEqual(found(report), [['ROLLBACK', 'checkpoint']]);
    assert.match(report.problems[0]!.message, /not a prefix/);
    assert.equal(report.size, SIZE_A);
    assert.equal(report.trustedBefore, SIZE_A + MORE);

    // Through a server on the rolled-back directory (database rolled back with it).
    let server: ServerHandle | null = null;
    try {
      server = await startServer({ dataDir: dir, checkpointIntervalMs: 20 });
    } catch (e) {
      if (!(e instanceof ServerExitedError)) throw e;
      t.diagnostic(`the server refused to start on the rolled-back directory: ${(e.stdout + e.stderr).slice(-300)}`);
    }
    if (server) {
      const s2 = server;
      try {
        t.diagnostic('the server started on the wholly rolled-back directory; verify over HTTP must catch it');
        const http = await verifyDamaged(['--url', s2.url, '--token', s2.tokens.auditor], trust);
        assert.deepEqual(found(http.report), [['ROLLBACK', 'checkpoint']]);
        assert.match(http.report.problems[0]!.message, /not a prefix/);
        // It also accepts new entries on the old branch: at size B it now signs a different
        // root than the one trusted at B (a fork), which verify reports.
        await appendNdjson(s2.url, s2.tokens.writer, Array.from({ length: MORE }, (_, i) => JSON.stringify({ id: SIZE_A + i, forked: true })));
        await waitForCheckpoint(s2, 'local', SIZE_A + MORE);
        const fork = await verifyDamaged(['--url', s2.url, '--token', s2.tokens.auditor], trust);
        assert.deepEqual(found(fork.report), [['NOT_A_PREFIX', 'checkpoint']]);
      } finally {
        await s2.stop();
      }
    }

    // Only the tree and journal rolled back, the database still at B: the server refuses.
    const partial = join(work, 'g-partial');
    cpSync(atB, partial, { recursive: true });
    rmSync(join(partial, 'logs', 'local'), { recursive: true, force: true });
    cpSync(join(atA, 'logs', 'local'), join(partial, 'logs', 'local'), { recursive: true });
    await assert.rejects(
      startServer({ dataDir: partial }),
      (e: unknown) => e instanceof ServerExitedError && e.code !== 0 && /rolled back/.test(e.stdout + e.stderr),
      'the database remembers the checkpoint at B, so a tree at A is refused',
    );
  });

  test('(h) an insider with the keyring re-seals a bundle with one record changed → the hashes catch it', async (t) => {
    const dir = await verifiedCopy(t, 'h');
    const origin = readFileSync(join(tree(dir), 'checkpoint'), 'utf8').split('\n')[0]!;
    const keys = Keyring.load(join(dir, 'keyring.json')).forLog('local');
    const path = join(tree(dir), 'tile/entries/003');
    const context = `bundle ${origin} 3 256`; // storage/posix.ts: the AEAD context binds log, index and width
    const entries = decodeBundle(openSealed(keys.lookup, context, readFileSync(path), 'bundle 3'));
    assert.equal(entries.length, 256);
    const before = entries[17]!.toString('utf8');
    assert.match(before, /"id":785,/);
    entries[17] = Buffer.from(before.replace('"user":"user-', '"user":"admin-'));
    writeFileSync(path, seal(keys.activeKek, context, encodeBundle(entries)));

    const { report } = await verifyDamaged(['--data', dir]);
    assert.deepEqual(found(report), [['ROOT_MISMATCH', 'checkpoint'], ['TILE_MISMATCH', 'tile/0/003'], ['TILE_MISMATCH', 'tile/1/000.p/11']]);
    assert.match(report.problems.find((p) => p.where === 'tile/0/003')!.message, /entry 785\b/);

    // Over HTTP the altered record comes with an inclusion proof that does not verify:
    // `custody proof get` refuses it.
    const s = await startServer({ dataDir: dir });
    try {
      const out = join(work, 'h-proof');
      const r = await runCli(['proof', 'get', 'local', '785', '--url', s.url, '--token', s.tokens.auditor, '--out', out, '--trust-file', freshTrust(), '--json']);
      assert.notEqual(r.code, 0, `proof get accepted an altered entry: ${r.stdout}`);
      assert.ok(!existsSync(join(out, 'local-785.tlog-proof')), 'no proof file is written for an altered entry');
      const ok = await runCli(['proof', 'get', 'local', '784', '--url', s.url, '--token', s.tokens.auditor, '--out', out, '--trust-file', freshTrust(), '--json']);
      assert.equal(ok.code, 0, `control: an untouched neighbour verifies: ${ok.stdout}${ok.stderr}`);
    } finally {
      await s.stop();
    }
  });

  test('(i) pre-seeded trust: damage after the trusted checkpoint is found while resuming; before it, with --full', async (t) => {
    const grown = await verifiedCopy(t, 'i-grown');
    const trustA = join(work, 'i-trust-at-A.json');
    assert.equal((await verifyJson(['--data', grown, '--log', 'local', '--trust-file', trustA])).code, 0);
    const s = await startServer({ dataDir: grown, checkpointIntervalMs: 20 });
    try {
      await appendNdjson(s.url, s.tokens.writer, Array.from({ length: MORE * 2 }, (_, i) => JSON.stringify({ id: SIZE_A + i, later: true })));
      await waitForCheckpoint(s, 'local', SIZE_A + MORE * 2);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
    const seeded = (): string => {
      const f = freshTrust();
      cpSync(trustA, f);
      return f;
    };
    // untouched: resumes at A and passes
    const clean = await verifyJson(['--data', grown, '--log', 'local', '--trust-file', seeded()]);
    assert.equal(clean.code, 0);
    assert.equal(clean.json.logs[0]!.resumedFrom, SIZE_A);

    const cases: Array<[string, string, number | undefined, string[], string[][]]> = [
      ['hash tile after A', 'tile/0/015', undefined, [], [['TILE_MISMATCH', 'tile/0/015']]],
      ['bundle after A', 'tile/entries/016', undefined, [], [['BUNDLE_CORRUPT', 'tile/entries/016']]],
      ['same tile as A, past it', 'tile/0/011', 32 * 200, [], [['TILE_MISMATCH', 'tile/0/011']]],
      ['right edge at A (read to resume)', 'tile/0/011', 32 * 10, [], [['TILE_MISMATCH', 'tile/0/011']]],
      ['hash tile before A, --full', 'tile/0/005', undefined, ['--full'], [['TILE_MISMATCH', 'tile/0/005']]],
      ['bundle before A, --full', 'tile/entries/005', undefined, ['--full'], [['BUNDLE_CORRUPT', 'tile/entries/005']]],
    ];
    for (const [what, path, offset, extra, want] of cases) {
      const dir = join(work, `i-${++copies}`);
      cpSync(grown, dir, { recursive: true });
      flipByte(join(tree(dir), path), offset);
      const trust = seeded();
      const { report } = await verifyDamaged(['--data', dir, ...extra], trust);
      assert.deepEqual(found(report), want, what);
      assert.equal(report.trustedBefore, SIZE_A, what);
    }
  });

  test('over HTTP: a server on a damaged copy, custody verify --url names the flipped bundle and tile', async (t) => {
    const dir = await verifiedCopy(t, 'http');
    flipByte(join(tree(dir), 'tile/entries/005'));
    flipByte(join(tree(dir), 'tile/0/008'), 100);
    const s = await startServer({ dataDir: dir });
    try {
      const { report } = await verifyDamaged(['--url', s.url, '--token', s.tokens.auditor]);
      assert.deepEqual(found(report), [['BUNDLE_CORRUPT', 'tile/entries/005'], ['TILE_MISMATCH', 'tile/0/008']]);
      // the same damage is reported by the data-dir verifier
      const offline = await verifyDamaged(['--data', dir]);
      assert.deepEqual(found(offline.report), found(report));
      // reading an entry of the damaged bundle is refused, not served altered
      const res = await fetch(`${s.url}/v1/logs/local/entries/${5 * 256 + 3}`, { headers: { authorization: `Bearer ${s.tokens.auditor}` } });
      const body = (await res.json()) as { error?: { code?: string } };
      assert.equal(res.status >= 500, true, `status ${res.status}`);
      assert.equal(body.error?.code, 'STORAGE_CORRUPT');
    } finally {
      await s.stop();
    }
  });

  test('the server refuses to start when the newest partial tile or bundle is damaged', async (t) => {
    for (const p of ['tile/0/011.p/184', 'tile/entries/011.p/184']) {
      const dir = await verifiedCopy(t, `refuse-${p.replace(/\W+/g, '-')}`);
      flipByte(join(tree(dir), p));
      await assert.rejects(startServer({ dataDir: dir }), (e: unknown) => e instanceof ServerExitedError && e.code !== 0 && /STORAGE_CORRUPT/.test(e.stdout + e.stderr), p);
    }
  });

  test('leftover partial tiles of older checkpoints are not what verify reads (sanity of the fixture)', () => {
    const names = readdirSync(join(tree(base), 'tile/1/000.p')).map(Number).sort((a, b) => a - b);
    assert.deepEqual(names, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'every checkpoint left its level-1 partial tile');
  });
});
