/**
 * Disk full: appends are refused with 503 (never a crash, never a torn file), nothing that was
 * acknowledged is lost, and the vault recovers by itself once space returns.
 * Uses a small tmpfs (needs root, as in CI); the remount gives the space back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { initVault, Vault } from '../src/vault.js';
import { buildServer } from '../src/server/index.js';
import { DataDirSource } from '../src/cli/sources.js';
import { verifyLog } from '../src/cli/verifier.js';
import { TrustStore } from '../src/cli/trust.js';
import { nativeSha256 } from '../src/crypto/sha256.js';

test('a full disk answers 503, loses nothing acknowledged, and recovers when space returns', async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'custody-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]);
  t.after(() => {
    try {
      execFileSync('umount', ['-l', mnt]);
    } catch {
      /* already unmounted */
    }
    rmSync(mnt, { recursive: true, force: true });
  });
  const dataDir = join(mnt, 'data');
  const init = initVault(dataDir);
  const writer = init.tokens.find((x) => x.role === 'writer')!.token;
  const logger = pino({ level: 'silent' });
  const vault = await Vault.open(dataDir, { logger, checkpointIntervalMs: 20 });
  const app = await buildServer({ vault, logger });
  t.after(async () => {
    await app.close();
    await vault.close().catch(() => undefined);
  });

  const acked = new Map<number, string>();
  let refused = 0;
  let n = 0;
  for (let round = 0; round < 400 && refused < 5; round++) {
    const lines = Array.from({ length: 50 }, () => JSON.stringify({ n: n++, pad: 'q'.repeat(900) }));
    const r = await app.inject({ method: 'POST', url: '/v1/logs/local/entries', headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/x-ndjson' }, payload: lines.join('\n') });
    if (r.statusCode === 200) {
      const first = r.json<{ first: number }>().first;
      lines.forEach((l, i) => acked.set(first + i, l));
    } else {
      assert.equal(r.statusCode, 503, r.body);
      const e = r.json<{ error: { code: string; message: string } }>().error;
      assert.equal(e.code, 'STORAGE_UNAVAILABLE');
      assert.match(e.message, /disk is full/);
      assert.ok(r.headers['retry-after']);
      refused++;
    }
  }
  assert.ok(refused > 0, 'the disk filled up');
  assert.ok(acked.size > 100, 'some batches were acknowledged before it did');

  // Give the space back: the vault integrates what it acknowledged and takes appends again.
  execFileSync('mount', ['-o', 'remount,size=256m', mnt]);
  const seq = vault.sequencer('local');
  const last = Math.max(...acked.keys());
  await seq.waitForCheckpoint(last + 1, 30_000);
  const again = await app.inject({ method: 'POST', url: '/v1/logs/local/entries?wait=checkpoint', headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/x-ndjson' }, payload: '{"after":"space returned"}' });
  assert.equal(again.statusCode, 200, again.body);

  const auditor = init.tokens.find((x) => x.role === 'auditor')!.token;
  for (const [index, line] of acked) {
    if (index % 7 !== 0 && index !== last) continue;
    const r = await app.inject({ method: 'GET', url: `/v1/logs/local/entries/${index}`, headers: { authorization: `Bearer ${auditor}` } });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json<{ record: string }>().record, line, `entry ${index}`);
  }
  const src = new DataDirSource(dataDir);
  const report = await verifyLog(src, (await src.listLogs()).find((l) => l.name === 'local')!, {
    trust: new TrustStore(join(mnt, 'trust.json')),
    hash: nativeSha256,
  });
  assert.deepEqual(report.problems, []);
  assert.ok(report.ok);
});
