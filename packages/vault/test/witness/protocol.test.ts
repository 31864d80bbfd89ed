/**
 * `custody witness serve` speaks C2SP tlog-witness (../shared/reference/transparency-log.md,
 * "Cosignatures and witnesses"): one test per status code of the spec (200, 400, 403, 404,
 * 409 with a text/x.tlog.size body, 422) plus our 405/413, state that survives a restart, and
 * concurrent add-checkpoint requests for one origin. A real HTTP server on a real directory.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Ed25519NoteSigner, addCosignatures, checkCosignatures, openCheckpoint, parseSignatureLines, parseVerifierKey, toBase64 } from '@custody/verify';
import { WitnessStore } from '../../src/witness/store.js';
import { Witness, startWitnessServer, MAX_BODY, type WitnessServer } from '../../src/witness/server.js';
import { cleanup, makeTempDir } from '../support/server.js';
import { TestLog, post } from './support.js';

const logger = pino({ level: 'silent' });

describe('witness add-checkpoint: every status code', () => {
  let dir: string;
  let store: WitnessStore;
  let srv: WitnessServer;
  const log = new TestLog('example.org/log-a', 1).grow(5);
  const other = new TestLog('example.org/not-witnessed', 2).grow(3);

  before(async () => {
    dir = join(makeTempDir('witness'), 'w');
    store = WitnessStore.init(dir, 'witness-1.example');
    store.addLog(log.origin, log.vkey);
    srv = await startWitnessServer(new Witness(store, logger), { logger });
  });
  after(async () => {
    await srv?.close();
    await cleanup();
  });

  test('200: a first checkpoint (old 0) is cosigned, and the line verifies with the witness key', async () => {
    const r = await post(srv.url, log.body(0));
    assert.equal(r.status, 200, r.text);
    const sigs = parseSignatureLines(r.text);
    assert.equal(sigs.length, 1);
    const cosigned = addCosignatures(log.checkpoint(), sigs);
    const check = checkCosignatures(cosigned, [parseVerifierKey(store.verifierKey)], 1);
    assert.equal(check.ok, true);
    assert.equal(check.witnesses[0]!.status, 'signed');
    assert.ok(Math.abs(check.witnesses[0]!.timestamp! - Date.now() / 1000) < 60);
    // The log's signature still verifies on the cosigned note.
    assert.equal(openCheckpoint(cosigned, parseVerifierKey(log.vkey)).checkpoint.size, 5);
    assert.equal(store.state(log.origin)!.size, 5);
  });

  test('200: an extension with a consistency proof from the cosigned size; the state is on disk before the answer', async () => {
    log.grow(7); // 12
    const r = await post(srv.url, log.body(5));
    assert.equal(r.status, 200, r.text);
    const files = readdirSync(join(dir, 'state')).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1);
    const saved = JSON.parse(readFileSync(join(dir, 'state', files[0]!), 'utf8')) as { size: number; root: string; checkpoint: string };
    assert.equal(saved.size, 12);
    assert.equal(saved.root, toBase64(log.root(12)));
    assert.equal(saved.checkpoint, log.checkpoint(12));
    // Re-sending the same checkpoint (old = size, same root, empty proof) is cosigned again.
    assert.equal((await post(srv.url, log.body(12))).status, 200);
  });

  test('409: old is not the size it last cosigned; the body is that size, as text/x.tlog.size', async () => {
    log.grow(4); // 16
    for (const old of [5, 0, 13]) {
      const r = await post(srv.url, log.body(old));
      assert.equal(r.status, 409, `old ${old}: ${r.text}`);
      assert.equal(r.type, 'text/x.tlog.size');
      assert.equal(r.text, '12\n');
    }
    assert.equal(store.state(log.origin)!.size, 12, 'a refused request changes nothing');
  });

  test('404: an origin the witness does not witness (and any other path)', async () => {
    const r = await post(srv.url, other.body(0));
    assert.equal(r.status, 404, r.text);
    assert.equal((await post(srv.url, log.body(12), '/add-checkpoint/extra')).status, 404);
    assert.equal((await post(srv.url, '', '/nothing-here', 'GET')).status, 404);
  });

  test('403: a checkpoint of a witnessed origin signed by another key, or with a broken signature', async () => {
    const forger = new Ed25519NoteSigner(log.origin, new Uint8Array(32).fill(99));
    const r = await post(srv.url, log.body(12, 16, log.proof(12, 16), log.checkpoint(16, forger)));
    assert.equal(r.status, 403, r.text);
    const cp = log.checkpoint(16);
    const at = cp.lastIndexOf(' ') + 5;
    const broken = cp.slice(0, at) + (cp[at] === 'A' ? 'B' : 'A') + cp.slice(at + 1);
    assert.equal((await post(srv.url, log.body(12, 16, log.proof(12, 16), broken))).status, 403);
    assert.equal(store.state(log.origin)!.size, 12);
  });

  test('400: malformed requests and old > checkpoint size', async () => {
    const cp = log.checkpoint(16);
    const proof = log.proof(12, 16).map((p) => toBase64(p) + '\n').join('');
    const bad: Array<[string, string | Buffer]> = [
      ['empty body', ''],
      ['no old line', `\n${cp}`],
      ['old not a number', `old twelve\n${proof}\n${cp}`],
      ['old with a leading zero', `old 012\n${proof}\n${cp}`],
      ['negative old', `old -1\n\n${cp}`],
      ['proof line not base64', `old 12\n!!!!\n\n${cp}`],
      ['proof line of the wrong length', `old 12\nAAAA\n\n${cp}`],
      ['no blank line before the checkpoint', `old 12\n${proof}`],
      ['checkpoint without signatures', `old 12\n${proof}\n${cp.slice(0, cp.indexOf('\n\n') + 1)}`],
      ['not UTF-8', Buffer.concat([Buffer.from(`old 12\n${proof}\n`), Buffer.from([0xff, 0xfe, 0x0a])])],
      ['old larger than the checkpoint', log.body(20, 16, [], cp)],
    ];
    for (const [what, body] of bad) {
      const r = await post(srv.url, body);
      assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
    }
    assert.equal(store.state(log.origin)!.size, 12);
  });

  test('422: a proof that does not verify, a fork at the same size, a non-empty proof from 0', async () => {
    // A fork: same origin and key, other entries.
    const fork = new TestLog(log.origin, 1, 'forked').grow(16);
    const r1 = await post(srv.url, fork.body(12, 16, fork.proof(12, 16)));
    assert.equal(r1.status, 422, r1.text);
    // Our own checkpoint with a wrong proof (from another pair of sizes).
    const r2 = await post(srv.url, log.body(12, 16, log.proof(8, 16)));
    assert.equal(r2.status, 422, r2.text);
    // Same size as cosigned, another root.
    const r3 = await post(srv.url, fork.body(12, 12, []));
    assert.equal(r3.status, 422, r3.text);
    assert.equal(store.state(log.origin)!.size, 12);
    assert.equal(store.state(log.origin)!.root, toBase64(log.root(12)), 'the fork was never cosigned');
    // From size 0 the proof must be empty.
    const fresh = new TestLog('example.org/log-fresh', 3).grow(4);
    store.addLog(fresh.origin, fresh.vkey); // picked up by the running server
    const r4 = await post(srv.url, fresh.body(0, 4, log.proof(2, 4)));
    assert.equal(r4.status, 422, r4.text);
    assert.equal((await post(srv.url, fresh.body(0))).status, 200);
  });

  test('405 for other methods; 413 for a body over the limit; the server stays up on garbage', async () => {
    assert.equal((await post(srv.url, '', '/add-checkpoint', 'GET')).status, 405);
    const huge = Buffer.alloc(MAX_BODY + 10, 0x61);
    const r = await post(srv.url, huge);
    assert.equal(r.status, 413);
    // Raw garbage on a socket, and a connection that closes mid-body.
    await new Promise<void>((resolve) => {
      const s = connect(srv.port, '127.0.0.1', () => s.end('\x00\x01GARBAGE \r\n\r\n\xff\xff'));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      s.resume();
    });
    await new Promise<void>((resolve) => {
      const s = connect(srv.port, '127.0.0.1', () => {
        s.write('POST /add-checkpoint HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\nold 12\n');
        setTimeout(() => s.destroy(), 50);
      });
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    log.grow(0);
    const ok = await post(srv.url, log.body(12, 16, log.proof(12, 16)));
    assert.equal(ok.status, 200, 'still serving after garbage');
    assert.equal(store.state(log.origin)!.size, 16);
  });

  test('the state survives a restart: a new server on the directory (store reopened from disk) still refuses stale and forked checkpoints', async () => {
    await srv.close();
    const again = WitnessStore.open(dir);
    assert.equal(again.verifierKey, store.verifierKey, 'same key after a restart');
    srv = await startWitnessServer(new Witness(again, logger), { logger });
    const stale = await post(srv.url, log.body(12, 16, log.proof(12, 16)));
    assert.equal(stale.status, 409);
    assert.equal(stale.text, '16\n');
    const fork = new TestLog(log.origin, 1, 'forked').grow(16);
    assert.equal((await post(srv.url, fork.body(16, 16, []))).status, 422);
    log.grow(3);
    assert.equal((await post(srv.url, log.body(16))).status, 200);
    store = again;
  });

  test('concurrent add-checkpoint for one origin: exactly one from the same old size is cosigned', async () => {
    const base = store.state(log.origin)!.size; // 19
    log.grow(13); // 32
    const sizes = [20, 21, 24, 25, 27, 29, 30, 32];
    const rs = await Promise.all(sizes.map((n) => post(srv.url, log.body(base, n, log.proof(base, n), log.checkpoint(n)))));
    const won = rs.map((r, i) => (r.status === 200 ? sizes[i] : null)).filter((x) => x !== null);
    assert.equal(won.length, 1, JSON.stringify(rs.map((r) => r.status)));
    for (const r of rs) if (r.status !== 200) assert.equal(r.status, 409);
    assert.equal(store.state(log.origin)!.size, won[0]);
    // Forks racing the honest log: at most the honest one wins.
    const now = store.state(log.origin)!.size;
    const fork = new TestLog(log.origin, 1, 'forked').grow(40);
    log.grow(8); // 40
    const race = await Promise.all([post(srv.url, fork.body(now, 40, fork.proof(now, 40))), post(srv.url, log.body(now, 40, log.proof(now, 40)))]);
    // The fork is refused either way: 422 when it comes first, 409 when the honest one moved the size.
    assert.ok([409, 422].includes(race[0]!.status), String(race[0]!.status));
    assert.equal(race[1]!.status, 200);
    assert.equal(store.state(log.origin)!.root, toBase64(log.root(40)));
  });
});
