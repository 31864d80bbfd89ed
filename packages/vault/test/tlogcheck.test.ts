/**
 * A log written by a real server over HTTP (> 70,000 realistic ~1 KB records, several
 * concurrent writers), checked end to end by Go's reference verifier (tlogcheck, built on
 * golang.org/x/mod/sumdb/{note,tlog}) and by `custody verify`.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign as edSign } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  appendNdjson,
  checkpointSize,
  cleanup,
  getBytes,
  getText,
  goTool,
  logInfo,
  makeTempDir,
  sleep,
  startServer,
  tlogcheck,
  verifyJson,
  waitForCheckpoint,
  type LogListing,
  type ServerHandle,
  prng,
} from './support/server.js';

const BATCH = 2_000;
const BATCHES = 36; // 72,000 entries
const TOTAL = BATCH * BATCHES;
const MIDWAY_BATCHES = 15; // 30,000 entries: not a multiple of 256, so the midway tree has partial tiles
const MIDWAY = BATCH * MIDWAY_BATCHES;
const WRITERS = 4;
const AUDIT_EVENTS = 300; // > 256: the audit log gets a full tile too


const HOSTS = ['web-01', 'web-02', 'api-eu-1', 'api-us-3', 'bastion', 'db-primary', 'k8s-node-17'];
const ACTIONS = ['user.login', 'user.logout', 'user.mfa.challenge', 'file.read', 'policy.change', 'process.start', 'network.connect', 'sudo.exec'];
const USERS = ['alice', 'bob', 'carol', 'dave', 'eve', 'svc-backup', 'svc-deploy', 'root'];
const PATHS = ['/api/v2/orders', '/login', '/admin/users', '/api/v2/payments/refund', '/healthz', '/static/app.js', '/api/v2/search?q=%E2%9C%93'];
const WORDS = 'the quick brown fox jumps over lazy dogs while auditors verify every signed checkpoint and tile of the log ünïcødé ✓'.split(' ');

/** One realistic ~1 KB security event as a single JSON line. */
function eventLine(i: number, rnd: () => number): string {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(rnd() * 16).toString(16)).join('');
  const ev: Record<string, unknown> = {
    '@timestamp': new Date(Date.UTC(2025, 0, 1) + i * 137).toISOString(),
    seq: i,
    event: { id: `evt-${i.toString().padStart(7, '0')}-${hex(8)}`, action: pick(ACTIONS), outcome: rnd() < 0.9 ? 'success' : 'failure', severity: Math.floor(rnd() * 8) },
    host: { name: pick(HOSTS), ip: `10.${Math.floor(rnd() * 255)}.${Math.floor(rnd() * 255)}.${Math.floor(rnd() * 255)}`, os: 'linux' },
    user: { name: pick(USERS), id: Math.floor(rnd() * 100_000), roles: ['reader', rnd() < 0.2 ? 'admin' : 'user'] },
    source: { ip: `${Math.floor(rnd() * 223) + 1}.${Math.floor(rnd() * 255)}.${Math.floor(rnd() * 255)}.${Math.floor(rnd() * 255)}`, port: Math.floor(rnd() * 65535) },
    http: { method: pick(['GET', 'POST', 'PUT', 'DELETE']), path: pick(PATHS), status: pick([200, 201, 204, 301, 400, 401, 403, 404, 500]), bytes: Math.floor(rnd() * 1e6) },
    user_agent: `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${100 + Math.floor(rnd() * 30)}.0.${Math.floor(rnd() * 9999)}.0 Safari/537.36`,
    trace: { id: hex(32), span: hex(16) },
    labels: { env: pick(['prod', 'staging']), team: pick(['sec', 'sre', 'payments']), 'k8s.pod': `pod-${hex(6)}` },
    message: '',
  };
  const base = JSON.stringify(ev).length;
  const target = 900 + Math.floor(rnd() * 250); // 900..1150 bytes
  const words: string[] = [];
  let len = 0;
  while (base + len < target) {
    const w = pick(WORDS);
    words.push(w);
    len += Buffer.byteLength(w) + 1;
  }
  ev['message'] = words.join(' ');
  return JSON.stringify(ev);
}

/** The three body lines of a checkpoint note, and its signature lines. */
function splitNote(text: string): { body: string; sigs: string[] } {
  const at = text.indexOf('\n\n');
  assert.ok(at > 0, `not a signed note: ${text}`);
  return { body: text.slice(0, at + 1), sigs: text.slice(at + 2).split('\n').filter(Boolean) };
}

/** Signs a note body with a fresh Ed25519 key (node:crypto), independently of the code under test. */
function signWithForeignKey(body: string, name: string, spoofKeyIdOf?: string): string {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  let keyId = createHash('sha256').update(Buffer.concat([Buffer.from(name), Buffer.from([0x0a, 0x01]), pub])).digest().subarray(0, 4);
  if (spoofKeyIdOf) keyId = Buffer.from(spoofKeyIdOf.split('+')[1]!, 'hex'); // claim to be the log's key
  const sig = edSign(null, Buffer.from(body), privateKey);
  return `${body}\n\u2014 ${name} ${Buffer.concat([keyId, sig]).toString('base64')}\n`;
}

const OK_RE = /^OK origin=(\S+) size=(\d+) root=(\S+) entries-recomputed=(\d+)$/m;

describe('Go reference verifier (tlogcheck) on a server-written log of 72,000 entries', { timeout: 300_000 }, () => {
  let server: ServerHandle;
  let work = '';
  let local: LogListing;
  let audit: LogListing;
  let midwayFile = '';
  let midwayText = '';
  let finalText = '';

  before(async () => {
    goTool('tlogcheck'); // build it now if it is missing; fails loudly when it cannot
    work = makeTempDir('tlogcheck');
    server = await startServer({ checkpointIntervalMs: 200 });
    const rnd = prng(0xc0ffee);
    const batches: string[][] = [];
    for (let b = 0; b < BATCHES; b++) batches.push(Array.from({ length: BATCH }, (_, j) => eventLine(b * BATCH + j, rnd)));
    const sizes = batches.flat().map((l) => Buffer.byteLength(l));
    const avg = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    assert.ok(avg > 900 && avg < 1200, `records should be ~1 KB, average is ${avg}`);

    const acked: Array<number | undefined> = new Array<number | undefined>(TOTAL);
    const send = async (from: number, to: number): Promise<void> => {
      let next = from;
      const worker = async (): Promise<void> => {
        while (next < to) {
          const b = next++;
          const lines = batches[b]!;
          const r = await appendNdjson(server.url, server.tokens.writer, lines, { source: 'app.security' });
          assert.equal(r.count, lines.length);
          assert.equal(r.indices.length, lines.length);
          assert.equal(r.durable, true);
          r.indices.forEach((idx, j) => {
            assert.equal(idx, r.first + j, 'indices of one batch are contiguous');
            assert.equal(acked[idx], undefined, `index ${idx} acknowledged twice`);
            acked[idx] = b * BATCH + j;
          });
        }
      };
      await Promise.all(Array.from({ length: WRITERS }, worker));
    };

    await send(0, MIDWAY_BATCHES);
    midwayText = await waitForCheckpoint(server, 'local', MIDWAY);
    assert.equal(checkpointSize(midwayText), MIDWAY, 'nothing else was written, so the midway checkpoint is exactly 30,000');
    midwayFile = join(work, 'midway.checkpoint');
    writeFileSync(midwayFile, midwayText);

    await send(MIDWAY_BATCHES, BATCHES);
    assert.equal(acked.filter((x) => x !== undefined).length, TOTAL, 'every index 0..71,999 was acknowledged exactly once');

    // Give the audit log some history: refused reads are recorded there before the answer.
    let refused = 0;
    const auditWorker = async (): Promise<void> => {
      while (refused < AUDIT_EVENTS) {
        refused++;
        const res = await fetch(`${server.url}/v1/logs`, { headers: { authorization: `Bearer ${server.tokens.writer}` } });
        await res.arrayBuffer();
        assert.equal(res.status, 403, 'a writer may not list logs');
      }
    };
    await Promise.all(Array.from({ length: 8 }, auditWorker));

    finalText = await waitForCheckpoint(server, 'local', TOTAL, 120_000);
    assert.equal(checkpointSize(finalText), TOTAL);
    await waitForCheckpoint(server, 'audit', AUDIT_EVENTS);
    local = await logInfo(server, 'local');
    audit = await logInfo(server, 'audit');
    assert.equal(local.size, TOTAL);
    assert.equal(local.pending, 0);
  });

  after(async () => {
    try {
      if (server?.running) await server.stop();
    } finally {
      await cleanup();
    }
  });

  test('tlogcheck -full recomputes every entry of "local" and level-2 tiles exist', async () => {
    const r = await tlogcheck(server, 'local', local.verifierKey, ['-full']);
    assert.equal(r.code, 0, `tlogcheck failed:\n${r.stdout}\n${r.stderr}`);
    const m = OK_RE.exec(r.stdout);
    assert.ok(m, `no OK line in: ${r.stdout}`);
    assert.equal(m[1], local.origin);
    const size = Number(m[2]);
    assert.ok(size > 70_000, `size ${size} should be > 70,000`);
    assert.equal(size, TOTAL);
    assert.equal(m[3], finalText.split('\n')[2], 'root matches the checkpoint');
    assert.equal(Number(m[4]), size, 'every entry was recomputed from the bundles');

    // 72,000 leaves = 281 full level-0 tiles (+ .p/64), 1 full level-1 tile (+ .p/25), level 2 .p/1
    const treeDir = join(server.dataDir, 'logs', 'local', 'tree', 'tile');
    assert.ok(existsSync(join(treeDir, '2')), 'tile/2 exists on disk: level-2 tiles were reached');
    assert.deepEqual(readdirSync(join(treeDir, '2')).sort(), ['000.p']);
    assert.ok(existsSync(join(treeDir, '1', '000')), 'the first level-1 tile is full');
    const l2 = await getBytes(server.url, server.tokens.auditor, '/logs/local/tile/2/000.p/1');
    assert.equal(l2.length, 32);
    const l1 = await getBytes(server.url, server.tokens.auditor, '/logs/local/tile/1/000');
    assert.equal(l1.length, 8192);
    const l1p = await getBytes(server.url, server.tokens.auditor, `/logs/local/tile/1/001.p/${Math.floor(TOTAL / 256) - 256}`);
    assert.equal(l1p.length, (Math.floor(TOTAL / 256) - 256) * 32);
    // C2SP: a partial bundle may go once the full one exists; the full bundle must be served.
    const full = await getBytes(server.url, server.tokens.auditor, '/logs/local/tile/entries/256');
    assert.ok(full.length > 256 * 900);
  });

  test('tlogcheck -old <midway checkpoint> proves the 30,000-entry tree is a prefix', async () => {
    const r = await tlogcheck(server, 'local', local.verifierKey, ['-full', '-old', midwayFile]);
    assert.equal(r.code, 0, `tlogcheck failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^consistent with old checkpoint of size ${MIDWAY}$`, 'm'));
    assert.match(r.stdout, OK_RE);
  });

  test('tlogcheck -full passes on the "audit" log', async () => {
    assert.ok(audit.size >= AUDIT_EVENTS, `audit log has ${audit.size} entries`);
    const r = await tlogcheck(server, 'audit', audit.verifierKey, ['-full']);
    assert.equal(r.code, 0, `tlogcheck failed:\n${r.stdout}\n${r.stderr}`);
    const m = OK_RE.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.equal(m[1], audit.origin);
    assert.ok(Number(m[2]) >= AUDIT_EVENTS);
    assert.equal(Number(m[4]), Number(m[2]));
    // the audit log opens with the vault's initialisation, then the refusals we caused
    const first = await getText(server.url, server.tokens.auditor, '/v1/logs/audit/entries/0');
    assert.match(first, /vault\.initialised/);
    const e = await getText(server.url, server.tokens.auditor, '/v1/logs/audit/entries/1');
    assert.match(e, /request\.refused/);
  });

  test('an old checkpoint signed by a different key is refused', async () => {
    const { body, sigs } = splitNote(midwayText);
    assert.equal(sigs.length, 1);
    // Same origin, size and root as the genuine midway checkpoint; only the key differs.
    const foreign = join(work, 'foreign-key.checkpoint');
    writeFileSync(foreign, signWithForeignKey(body, local.origin));
    const r1 = await tlogcheck(server, 'local', local.verifierKey, ['-old', foreign]);
    assert.notEqual(r1.code, 0, `tlogcheck accepted a checkpoint signed by another key:\n${r1.stdout}`);
    assert.match(r1.stderr, /FAIL: old checkpoint signature/);
    assert.doesNotMatch(r1.stdout, OK_RE);

    // A foreign signature that claims the log's key ID.
    const spoofed = join(work, 'spoofed-key-id.checkpoint');
    writeFileSync(spoofed, signWithForeignKey(body, local.origin, local.verifierKey));
    const r2 = await tlogcheck(server, 'local', local.verifierKey, ['-old', spoofed]);
    assert.notEqual(r2.code, 0, `tlogcheck accepted a forged signature under the log's key ID:\n${r2.stdout}`);
    assert.match(r2.stderr, /FAIL: old checkpoint signature/);

    // Control: the genuine note passes, so the refusals above are about the key alone.
    const r3 = await tlogcheck(server, 'local', local.verifierKey, ['-old', midwayFile]);
    assert.equal(r3.code, 0, r3.stderr);
  });

  test('custody verify passes on the same log, and a second run resumes from the trusted checkpoint', async () => {
    const trustFile = join(work, 'trust.json');
    const args = ['--url', server.url, '--token', server.tokens.auditor, '--trust-file', trustFile];
    const first = await verifyJson([...args, '--log', 'local']);
    assert.equal(first.code, 0, JSON.stringify(first.json, null, 2));
    assert.equal(first.json.ok, true);
    const r1 = first.json.logs[0]!;
    assert.equal(r1.log, 'local');
    assert.equal(r1.size, TOTAL);
    assert.equal(r1.resumedFrom, 0);
    assert.equal(r1.entriesChecked, TOTAL);
    assert.equal(r1.rootHash, finalText.split('\n')[2]);
    assert.deepEqual(r1.problems, []);

    // More entries, then verify again: it resumes at 72,000 and checks only what is new.
    const extra = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ seq: TOTAL + i, event: { action: 'late.arrival' } }));
    await appendNdjson(server.url, server.tokens.writer, extra);
    await waitForCheckpoint(server, 'local', TOTAL + extra.length);
    const second = await verifyJson([...args, '--log', 'local']);
    assert.equal(second.code, 0, JSON.stringify(second.json, null, 2));
    const r2 = second.json.logs[0]!;
    assert.ok(r2.resumedFrom > 0, 'the second run resumed');
    assert.equal(r2.resumedFrom, TOTAL);
    assert.equal(r2.trustedBefore, TOTAL);
    assert.equal(r2.size, TOTAL + extra.length);
    assert.equal(r2.entriesChecked, extra.length);

    // And the whole vault (both logs) verifies; Go agrees on the grown log, from the midway checkpoint.
    const all = await verifyJson(args);
    assert.equal(all.code, 0, JSON.stringify(all.json, null, 2));
    assert.deepEqual(all.json.logs.map((l) => [l.log, l.ok]).sort(), [['audit', true], ['local', true]]);
    const go = await tlogcheck(server, 'local', local.verifierKey, ['-old', midwayFile]);
    assert.equal(go.code, 0, go.stderr);
  });

  test('tlogcheck -full and custody verify pass on the live log while writers keep appending', async () => {
    const startSize = (await logInfo(server, 'local')).size;
    let stop = false;
    let written = 0;
    const writer = async (w: number): Promise<void> => {
      for (let b = 0; !stop; b++) {
        // 200-line batches: full tiles complete (and their partials are deleted) while the readers read
        const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ live: true, w, b, i, pad: 'p'.repeat(200) }));
        const r = await appendNdjson(server.url, server.tokens.writer, lines);
        written += r.count;
        await sleep(20); // steady traffic, not a saturated machine
      }
    };
    const writers = [writer(0), writer(1)];
    try {
      await waitForCheckpoint(server, 'local', startSize + 2_000);
      const [go, ours] = await Promise.all([
        tlogcheck(server, 'local', local.verifierKey, ['-full', '-old', midwayFile]),
        verifyJson(['--url', server.url, '--token', server.tokens.auditor, '--log', 'local', '--full', '--trust-file', join(work, 'live-trust.json')]),
      ]);
      assert.equal(go.code, 0, `tlogcheck on the live log:\n${go.stdout}\n${go.stderr}`);
      const m = OK_RE.exec(go.stdout);
      assert.ok(m && Number(m[2]) > startSize, go.stdout);
      assert.equal(ours.code, 0, JSON.stringify(ours.json, null, 2));
      assert.ok(ours.json.logs[0]!.size > startSize);
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    assert.ok(written > 2_000);
  });
});
