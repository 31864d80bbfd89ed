/**
 * `custody verify --hashes-only`: with every full bundle archived and the archive unreadable,
 * a plain verify reports the unreadable bundles (BUNDLE_UNAVAILABLE) and fails, while
 * --hashes-only passes from the data directory and over HTTP, says the entries were not read,
 * and does not move the trusted checkpoint. A changed hash tile still fails --hashes-only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyJson, runCli } from '../support/server.js';
import { listen } from '../lifecycle/harness.js';
import { filledHarness, mover, tempDir, DAY, type Filled } from './support.js';

type Report = { log: string; ok: boolean; problems: Array<{ kind: string; where: string; message: string }>; hashesOnly: boolean; trustUpdated: boolean; entriesChecked: number };

describe('custody verify --hashes-only', () => {
  let f: Filled;
  let arch: string;
  let url: string;
  let n = 0;
  const trust = (): string => join(arch + '-trust', `trust-${n++}.json`);

  before(async () => {
    f = await filledHarness();
    arch = tempDir('hashes');
    const r = await mover(f.h, arch).archiveLog('local', Date.now() + 400 * DAY);
    assert.deepEqual(r.archived, [0, 1, 2]);
    renameSync(arch, arch + '-away'); // the archive cannot be read now
    url = await listen(f.h);
  });
  after(async () => {
    await f?.h.close();
    rmSync(arch + '-away', { recursive: true, force: true });
    rmSync(arch + '-trust', { recursive: true, force: true });
  });

  test('a plain verify reports the archived bundles it cannot read and fails', async () => {
    const { code, json } = await verifyJson(['--data', f.h.dataDir, '--log', 'local', '--trust-file', trust()]);
    assert.equal(code, 1);
    const r = json.logs[0] as unknown as Report;
    assert.deepEqual([...new Set(r.problems.map((p) => p.kind))], ['BUNDLE_UNAVAILABLE']);
    assert.match(r.problems[0]!.message, /--hashes-only/);
    assert.equal(r.problems.length, 3, 'bundles 0, 1 and 2');
  });

  test('--hashes-only passes from the data directory, says entries were not read, and keeps the trust file as it was', async () => {
    const t = trust();
    const { code, json } = await verifyJson(['--data', f.h.dataDir, '--log', 'local', '--hashes-only', '--trust-file', t]);
    assert.equal(code, 0, JSON.stringify(json.logs));
    const j = json as unknown as { hashesOnly: boolean; entriesRead: boolean; logs: Report[] };
    assert.equal(j.hashesOnly, true);
    assert.equal(j.entriesRead, false);
    assert.equal(j.logs[0]!.hashesOnly, true);
    assert.equal(j.logs[0]!.trustUpdated, false);
    assert.equal(j.logs[0]!.entriesChecked, 856, 'every leaf hash was checked');
    assert.equal(existsSync(t) && readFileSync(t, 'utf8').includes('local'), false, 'no checkpoint became trusted');
    const text = await runCli(['verify', '--data', f.h.dataDir, '--log', 'local', '--hashes-only', '--trust-file', trust()]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /entries not read/);
    assert.match(text.stdout, /Hashes only: entry bundles were NOT read/);
  });

  test('over HTTP: a plain verify meets 503 for the archived bundles; --hashes-only passes', async () => {
    const auth = ['--url', url, '--token', f.h.tokens.auditor, '--log', 'local'];
    const plain = await verifyJson([...auth, '--trust-file', trust()]);
    assert.equal(plain.code, 1);
    const kinds = new Set((plain.json.logs[0] as unknown as Report).problems.map((p) => p.kind));
    assert.deepEqual([...kinds], ['BUNDLE_UNAVAILABLE']);
    const h = await verifyJson([...auth, '--hashes-only', '--trust-file', trust()]);
    assert.equal(h.code, 0, JSON.stringify(h.json.logs));
  });

  test('a changed hash tile still fails --hashes-only', async () => {
    const p = join(f.h.dataDir, 'logs', 'local', 'tree', 'tile', '0', '001');
    const orig = readFileSync(p);
    const bad = Buffer.from(orig);
    bad[40]! ^= 1;
    writeFileSync(p, bad);
    try {
      const { code, json } = await verifyJson(['--data', f.h.dataDir, '--log', 'local', '--hashes-only', '--trust-file', trust()]);
      assert.equal(code, 1);
      const kinds = (json.logs[0] as unknown as Report).problems.map((q) => q.kind);
      assert.equal(kinds.includes('TILE_MISMATCH') || kinds.includes('ROOT_MISMATCH'), true, kinds.join(','));
    } finally {
      writeFileSync(p, orig);
    }
  });
});
