/**
 * Crash safety: rounds of concurrent writers against a real server that is SIGKILLed at a
 * random moment and restarted on the same data directory. Whatever the server acknowledged
 * (200 answers) must survive every crash: present at the acknowledged index, byte for byte,
 * in a log that still verifies (custody verify, Go's tlogcheck) and that only ever grew
 * (every checkpoint seen after a restart is a prefix of the final log).
 *
 * Reproduce a run with CRASH_SEED=<seed printed in the diagnostics>; CRASH_ROUNDS changes the
 * number of rounds (default 12).
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify as edVerify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  appendNdjson,
  checkpointSize,
  cleanup,
  getBytes,
  getJson,
  getText,
  goTool,
  HttpError,
  logInfo,
  makeTempDir,
  sleep,
  startServer,
  tlogcheck,
  verifyJson,
  waitForCheckpoint,
  type ServerHandle,
  prng,
} from './support/server.js';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 12);
const WRITERS = 4;
const INTERVALS = [10, 50, 250]; // --checkpoint-interval per round: kills land in different phases


/** C2SP tile index: 3-digit groups, all but the last prefixed with "x". */
function tileIndex(n: number): string {
  let s = String(n % 1000).padStart(3, '0');
  for (n = Math.floor(n / 1000); n > 0; n = Math.floor(n / 1000)) s = `x${String(n % 1000).padStart(3, '0')}/${s}`;
  return s;
}

/** C2SP entry bundle: big-endian uint16 length + bytes, repeated. */
function decodeBundle(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < b.length) {
    assert.ok(off + 2 <= b.length, 'bundle truncated in a length');
    const n = b.readUInt16BE(off);
    assert.ok(off + 2 + n <= b.length, 'bundle truncated in an entry');
    out.push(b.subarray(off + 2, off + 2 + n));
    off += 2 + n;
  }
  return out;
}

/** The record inside a custody-entry/v1 envelope: everything after the first blank line. */
function recordOf(entry: Buffer, origin: string): Buffer {
  const at = entry.indexOf('\n\n');
  assert.ok(at > 0, 'envelope has a header');
  const header = entry.subarray(0, at).toString('latin1').split('\n');
  assert.equal(header[0], 'custody-entry/v1');
  assert.equal(header[1], `log ${origin}`);
  return entry.subarray(at + 2);
}

const sha256 = (...parts: Buffer[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();
const leafHash = (entry: Buffer): Buffer => sha256(Buffer.from([0]), entry);

/** RFC 9162 §2.1.3.2: the root an inclusion proof gives, or null when the proof is malformed. */
function rootFromInclusion(index: number, size: number, leaf: Buffer, proof: Buffer[]): Buffer | null {
  if (index >= size) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = sha256(Buffer.from([1]), p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = sha256(Buffer.from([1]), r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** Checks a signed-note checkpoint against a verifier key (name+hex id+base64(0x01‖pub)), independently. */
function checkpointSignedBy(text: string, vkey: string): { size: number; root: Buffer } {
  const vm = /^([^+]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(vkey); // the base64 part may hold '+'
  assert.ok(vm, `not a verifier key: ${vkey}`);
  const [, name, idHex, keyB64] = vm as unknown as [string, string, string, string];
  const k = Buffer.from(keyB64, 'base64');
  assert.equal(k[0], 1, 'Ed25519 verifier key');
  const pub = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), k.subarray(1)]), format: 'der', type: 'spki' });
  const at = text.indexOf('\n\n');
  const body = text.slice(0, at + 1);
  const ok = text
    .slice(at + 2)
    .split('\n')
    .filter(Boolean)
    .some((line) => {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m || m[1] !== name) return false;
      const sig = Buffer.from(m[2]!, 'base64');
      return sig.subarray(0, 4).toString('hex') === idHex && edVerify(null, Buffer.from(body), pub, sig.subarray(4));
    });
  assert.ok(ok, `checkpoint is not signed by ${vkey}:\n${text}`);
  const lines = body.split('\n');
  assert.equal(lines[0], name);
  return { size: Number(lines[1]), root: Buffer.from(lines[2]!, 'base64') };
}

interface Receipt {
  index: number;
  leafHash: string;
  proof: string[];
  checkpoint: string;
  round: number;
}

interface Ack {
  line: string;
  round: number;
}

test(`crash safety: ${ROUNDS} rounds of concurrent writers, SIGKILL at a random moment, restart`, { timeout: 240_000 }, async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`CRASH_SEED=${seed}`);
  const timing = prng(seed); // kill delays: reproducible from the seed whatever the writers do
  const rnd = prng(seed ^ 0x5bd1e995); // record contents, batch sizes, the sample
  goTool('tlogcheck');
  const work = makeTempDir('crash');
  const dataDir = join(work, 'vault');
  let server: ServerHandle | undefined;
  t.after(async () => {
    try {
      if (server?.running) await server.kill();
    } finally {
      await cleanup();
    }
  });

  const acked = new Map<number, Ack>();
  const lastAckOfRound: number[] = [];
  const checkpointsSeen: string[] = [];
  const unexpected: string[] = [];
  const receipts: Receipt[] = [];
  let replays = 0;
  let origin = '';

  for (let round = 0; round < ROUNDS; round++) {
    const interval = INTERVALS[round % INTERVALS.length]!;
    // Every third restart first crashes once more while the server starts and replays its journal.
    if (round > 0 && round % 3 === 0) {
      const after = 100 + Math.floor(timing() * 500);
      const r = await server!.startAndKill(after);
      t.diagnostic(`round ${round}: killed again ${after} ms into startup (${r.wasReady ? 'it was already listening' : 'before it was ready'})`);
    }
    // round 0 starts the vault; every later round restarts it on the same data directory
    server = round === 0 ? await startServer({ dataDir, checkpointIntervalMs: interval }) : await server!.restart({ checkpointIntervalMs: interval });
    const s = server;
    if (/recovered acknowledged entries from the journal/.test(s.stdout.text + s.stderr.text)) replays++;
    origin ||= (await logInfo(s, 'local')).origin;

    // Everything acknowledged before the crash is back, and integrated, after the restart.
    const maxAcked = acked.size === 0 ? -1 : Math.max(...acked.keys());
    const cp = await waitForCheckpoint(s, 'local', maxAcked + 1, 30_000);
    checkpointsSeen.push(cp);
    if (round > 0 && lastAckOfRound[round - 1] !== undefined) {
      const i = lastAckOfRound[round - 1]!;
      const e = await getJson<{ record: string }>(s.url, s.tokens.auditor, `/v1/logs/local/entries/${i}`);
      assert.equal(e.record, acked.get(i)!.line, `round ${round}: the last entry acknowledged before the crash (${i}) is intact`);
    }

    let killed = false;
    let requests = 0;
    let roundAcks = 0;
    const writer = async (w: number): Promise<void> => {
      for (let seq = 0; !killed; seq++) {
        const n = 1 + Math.floor(rnd() * 30);
        const lines = Array.from({ length: n }, (_, j) =>
          JSON.stringify({ id: `r${round}-w${w}-b${seq}-${j}`, round, writer: w, seq, j, at: Date.now(), note: 'ü✓'.repeat(Math.floor(rnd() * 40)) + 'x'.repeat(Math.floor(rnd() * 120)) }),
        );
        const wait = rnd() < 0.25 ? { wait: 'checkpoint' } : undefined;
        let r;
        try {
          requests++;
          r = await appendNdjson(s.url, s.tokens.writer, lines, wait);
        } catch (e) {
          if (killed) return; // the crash: this answer never came, so nothing was acknowledged
          unexpected.push(`round ${round} writer ${w}: ${e instanceof HttpError ? e.message : (e as Error).message}`);
          return;
        }
        assert.equal(r.indices.length, n);
        r.indices.forEach((idx, j) => {
          const prev = acked.get(idx);
          assert.equal(prev, undefined, `index ${idx} was acknowledged twice: round ${prev?.round} ${prev?.line} and round ${round} ${lines[j]}`);
          acked.set(idx, { line: lines[j]!, round });
          if (idx > (lastAckOfRound[round] ?? -1)) lastAckOfRound[round] = idx;
        });
        if (r.checkpoint) {
          assert.equal(r.receipts?.length, n, 'one receipt per record');
          for (const rc of r.receipts!) receipts.push({ index: rc.index, leafHash: rc.leafHash, proof: rc.inclusionProof, checkpoint: r.checkpoint, round });
        }
        roundAcks += n;
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    const delay = 50 + Math.floor(timing() * 551);
    await sleep(delay);
    killed = true;
    const exit = await s.kill();
    assert.equal(exit.signal, 'SIGKILL', `round ${round}: the server was killed, not exited on its own (code ${exit.code})`);
    await Promise.all(writers);
    t.diagnostic(`round ${round}: interval ${interval} ms, killed after ${delay} ms, ${requests} requests, ${roundAcks} entries acknowledged (total ${acked.size})`);
  }
  assert.deepEqual(unexpected, [], 'no request failed except by the crash');
  assert.ok(acked.size > 0, 'some entries were acknowledged');

  // Final restart: recovery must bring back every acknowledged entry.
  server = await server!.restart({ checkpointIntervalMs: 50 });
  const s = server;
  if (/recovered acknowledged entries from the journal/.test(s.stdout.text + s.stderr.text)) replays++;
  t.diagnostic(`${replays} of ${ROUNDS} restarts replayed acknowledged entries from the journal`);
  const maxIdx = Math.max(...acked.keys());
  const finalCp = await waitForCheckpoint(s, 'local', maxIdx + 1, 30_000);
  checkpointsSeen.push(finalCp);
  const size = checkpointSize(finalCp);
  assert.ok(size >= acked.size, `log size ${size} ≥ ${acked.size} acknowledged entries`);
  assert.ok(size > maxIdx, `log size ${size} covers the highest acknowledged index ${maxIdx}`);

  // Every acknowledged entry, byte for byte, from the entry bundles (decrypted for the auditor).
  let checked = 0;
  const leaves = new Map<number, Buffer>();
  for (let k = 0; k * 256 < size; k++) {
    const w = Math.min(256, size - k * 256);
    const path = `/logs/local/tile/entries/${tileIndex(k)}${w === 256 ? '' : `.p/${w}`}`;
    const entries = decodeBundle(await getBytes(s.url, s.tokens.auditor, path));
    assert.equal(entries.length, w, `${path} holds ${w} entries`);
    for (let j = 0; j < w; j++) {
      leaves.set(k * 256 + j, leafHash(entries[j]!));
      const a = acked.get(k * 256 + j);
      if (!a) continue;
      assert.equal(recordOf(entries[j]!, origin).toString('utf8'), a.line, `entry ${k * 256 + j} (acknowledged in round ${a.round}) is byte-identical`);
      checked++;
    }
  }
  assert.equal(checked, acked.size, 'every acknowledged entry was found at its index');

  // And through the per-entry API: a random sample plus the last acknowledged entry of each round.
  const local = await logInfo(s, 'local');
  const vkey = local.verifierKey;
  const keys = [...acked.keys()];
  const sample = new Set<number>(lastAckOfRound.filter((x) => x !== undefined));
  while (sample.size < Math.min(keys.length, 300 + lastAckOfRound.length)) sample.add(keys[Math.floor(rnd() * keys.length)]!);
  const list = [...sample];
  for (let i = 0; i < list.length; i += 16) {
    await Promise.all(
      list.slice(i, i + 16).map(async (idx) => {
        const e = await getJson<{ index: number; record: string; recordEncoding: string; treeSize: number; leafHash: string; inclusionProof: string[]; checkpoint: string }>(
          s.url,
          s.tokens.auditor,
          `/v1/logs/local/entries/${idx}`,
        );
        assert.equal(e.index, idx);
        assert.equal(e.leafHash, leaves.get(idx)!.toString('base64'));
        const cp = checkpointSignedBy(e.checkpoint, vkey);
        const root = rootFromInclusion(idx, cp.size, leaves.get(idx)!, e.inclusionProof.map((p) => Buffer.from(p, 'base64')));
        assert.ok(root?.equals(cp.root), `inclusion proof of entry ${idx} verifies against its checkpoint`);
        assert.equal(e.recordEncoding, 'utf8');
        assert.equal(e.record, acked.get(idx)!.line, `GET /v1/logs/local/entries/${idx}`);
      }),
    );
  }

  // The whole log verifies: custody verify, and Go's reference verifier recomputing every leaf.
  const v = await verifyJson(['--url', s.url, '--token', s.tokens.auditor, '--trust-file', join(work, 'trust.json')]);
  assert.equal(v.code, 0, JSON.stringify(v.json, null, 2));
  assert.equal(v.json.ok, true);
  const go = await tlogcheck(s, 'local', local.verifierKey, ['-full']);
  assert.equal(go.code, 0, `tlogcheck failed:\n${go.stdout}\n${go.stderr}`);
  assert.match(go.stdout, new RegExp(`^OK origin=\\S+ size=${size} root=\\S+ entries-recomputed=${size}$`, 'm'));

  // Receipts handed out before a crash still prove their entries: the leaf hash is the stored
  // entry's, the inclusion proof gives the signed root, and that checkpoint is a prefix (below).
  const cpCache = new Map<string, { size: number; root: Buffer }>();
  for (const rc of receipts) {
    let cp = cpCache.get(rc.checkpoint);
    if (!cp) cpCache.set(rc.checkpoint, (cp = checkpointSignedBy(rc.checkpoint, vkey)));
    assert.ok(rc.index < cp.size, `receipt ${rc.index}: its checkpoint covers it`);
    assert.equal(rc.leafHash, leaves.get(rc.index)?.toString('base64'), `receipt ${rc.index} (round ${rc.round}) names the stored entry`);
    const root = rootFromInclusion(rc.index, cp.size, Buffer.from(rc.leafHash, 'base64'), rc.proof.map((p) => Buffer.from(p, 'base64')));
    assert.ok(root?.equals(cp.root), `receipt ${rc.index} (round ${rc.round}): the inclusion proof gives the signed root`);
  }
  t.diagnostic(`${receipts.length} receipts under ${cpCache.size} checkpoints verified`);
  const largestReceiptCp = new Map<number, string>();
  for (const rc of receipts) {
    const cur = largestReceiptCp.get(rc.round);
    if (!cur || checkpointSize(rc.checkpoint) > checkpointSize(cur)) largestReceiptCp.set(rc.round, rc.checkpoint);
  }
  checkpointsSeen.push(...largestReceiptCp.values());

  // The log only ever grew across the crashes: each checkpoint seen after a restart, and the
  // newest receipt checkpoint of each round, is a prefix of the final log.
  for (const [i, cp] of checkpointsSeen.entries()) {
    if (checkpointSize(cp) === 0) continue;
    const f = join(work, `seen-${i}.checkpoint`);
    writeFileSync(f, cp);
    const r = await tlogcheck(s, 'local', local.verifierKey, ['-old', f]);
    assert.equal(r.code, 0, `checkpoint ${i} (size ${checkpointSize(cp)}) is not a prefix of the final log:\n${r.stderr}`);
  }

  // The served checkpoint is the one on disk, and the server shuts down cleanly afterwards.
  assert.equal(await getText(s.url, s.tokens.auditor, '/logs/local/checkpoint'), readFileSync(join(dataDir, 'logs', 'local', 'tree', 'checkpoint'), 'utf8'));
  const exit = await s.stop();
  assert.equal(exit.code, 0, 'clean shutdown after the crash rounds');
});
