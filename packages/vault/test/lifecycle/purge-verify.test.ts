/**
 * `custody verify` on a log with an approved purge, from the data directory and over HTTP:
 * it passes and reports "N entries shredded by approved purge #id"; the shredded range is
 * checked from the stored leaf hashes. Go's tlogcheck (golang.org/x/mod/sumdb/tlog) agrees in
 * its hashes-only mode, also proving the log consistent with a checkpoint saved before the
 * purge; its -full mode needs the entry bundles and fails there, as it must. A bundle deleted
 * by hand, or hidden behind a forged shredded.json, still fails verify loudly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyJson, runProcess, goTool, type VerifyLogReport } from '../support/server.js';
import { openHarness, append, records, bearer, bundleFile, listen, sleep, CTX, DAY, type Harness } from './harness.js';

type Report = VerifyLogReport & { shredded: Array<{ purge: number; from: number; to: number; count: number; message: string }> };

describe('verify after a purge', () => {
  let h: Harness;
  let url: string;
  let vkey: string;
  let tmp: string;
  let savedCheckpoint: string;
  let n = 0;
  const trustFile = (): string => join(tmp, `trust-${n++}.json`);
  const local = (logs: VerifyLogReport[]): Report => logs.find((l) => l.log === 'local') as Report;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'custody-purge-verify-'));
    h = await openHarness();
    url = await listen(h);
    vkey = h.vault.sequencer('local').verifierKey;
    const a = await append(h, records(256, 'A'));
    await sleep(30);
    const b = await append(h, records(600, 'B')); // bundles 1 and 2 full, 3 partial (88)
    savedCheckpoint = join(tmp, 'before-purge.checkpoint');
    writeFileSync(savedCheckpoint, h.vault.sequencer('local').checkpoint.text);
    const now = (Date.parse(a.received) + Date.parse(b.received)) / 2 + 365 * DAY;
    const r = await h.retention.purge('local', CTX, { now });
    assert.deepEqual([r.purge, r.from, r.to], [1, 0, 256]);
  });
  after(async () => {
    await h?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const expected = [{ purge: 1, from: 0, to: 256, count: 256, message: '256 entries shredded by approved purge #1 (entries 0–255)' }];

  test('custody verify --data passes and reports the shredded range', async () => {
    const { code, json } = await verifyJson(['--data', h.dataDir], { CUSTODY_TRUST_FILE: trustFile() });
    assert.equal(code, 0, JSON.stringify(json.logs.map((l) => l.problems)));
    assert.equal(json.ok, true);
    const r = local(json.logs);
    assert.deepEqual(r.shredded, expected);
    assert.equal(r.entriesChecked, 856, 'the shredded entries are checked from their leaf hashes');
    assert.deepEqual((json.logs.find((l) => l.log === 'audit') as Report).shredded, []);
  });

  test('custody verify over HTTP passes and reports it too; a resumed verify still names the purge', async () => {
    const trust = trustFile();
    const { code, json } = await verifyJson(['--url', url, '--token', h.tokens.auditor], { CUSTODY_TRUST_FILE: trust });
    assert.equal(code, 0, JSON.stringify(json.logs.map((l) => l.problems)));
    assert.deepEqual(local(json.logs).shredded, expected);
    await append(h, records(10, 'C'));
    const again = await verifyJson(['--url', url, '--token', h.tokens.auditor], { CUSTODY_TRUST_FILE: trust });
    assert.equal(again.code, 0);
    assert.equal(local(again.json.logs).resumedFrom, 856);
    assert.deepEqual(local(again.json.logs).shredded, expected);
  });

  test("Go's tlogcheck: hashes-only passes (and proves consistency with the pre-purge checkpoint); -full needs the shredded bundles", async () => {
    const tool = goTool('tlogcheck');
    const base = ['-base', `${url}/logs/local`, '-token', h.tokens.auditor, '-vkey', vkey];
    const ok = await runProcess(tool, [...base, '-old', savedCheckpoint]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^OK origin=/m);
    const full = await runProcess(tool, [...base, '-full']);
    assert.notEqual(full.code, 0, 'the entry bundles of entries 0–255 are gone: -full cannot recompute them');
    assert.match(full.stdout + full.stderr, /410|ENTRY_SHREDDED/);
  });

  test('a bundle deleted by hand (no purge record) fails verify loudly, naming it', async () => {
    const file = bundleFile(h, 2);
    const keep = join(tmp, 'bundle-2');
    copyFileSync(file, keep);
    unlinkSync(file);
    try {
      const d = await verifyJson(['--data', h.dataDir, '--full'], { CUSTODY_TRUST_FILE: trustFile() });
      assert.equal(d.code, 1);
      const r = local(d.json.logs);
      assert.equal(r.ok, false);
      assert.deepEqual(r.problems.map((p) => [p.kind, p.where]), [['BUNDLE_MISSING', 'tile/entries/002']]);
      assert.deepEqual(r.shredded, expected, 'the approved purge is still reported as such');
      const w = await verifyJson(['--url', url, '--token', h.tokens.auditor, '--full'], { CUSTODY_TRUST_FILE: trustFile() });
      assert.equal(w.code, 1);
      assert.deepEqual(local(w.json.logs).problems.map((p) => [p.kind, p.where]), [['BUNDLE_MISSING', 'tile/entries/002']]);

      // A forged shredded.json naming a purge custody.db does not hold changes nothing.
      const marker = join(h.dataDir, 'logs', 'local', 'shredded.json');
      const real = readFileSync(marker, 'utf8');
      writeFileSync(marker, JSON.stringify({ version: 1, purges: [{ purge: 1, from: 0, to: 256 }, { purge: 99, from: 512, to: 768 }] }));
      try {
        const f = await verifyJson(['--data', h.dataDir, '--full'], { CUSTODY_TRUST_FILE: trustFile() });
        assert.equal(f.code, 1);
        const fp = local(f.json.logs).problems;
        assert.deepEqual(fp.map((p) => [p.kind, p.where]), [['BUNDLE_MISSING', 'tile/entries/002']]);
        assert.match(fp[0]!.message, /custody\.db records no such purge/);
        const fh = await verifyJson(['--url', url, '--token', h.tokens.auditor, '--full'], { CUSTODY_TRUST_FILE: trustFile() });
        assert.equal(fh.code, 1);
        assert.deepEqual(local(fh.json.logs).problems.map((p) => p.where), ['tile/entries/002']);
        const read = await h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/600', headers: bearer(h.tokens.auditor) });
        assert.equal(read.statusCode, 500, 'not a 410: no approved purge removed it');
        assert.equal(read.json<{ error: { code: string } }>().error.code, 'STORAGE_CORRUPT');
      } finally {
        writeFileSync(marker, real);
      }
    } finally {
      copyFileSync(keep, file);
    }
    const back = await verifyJson(['--data', h.dataDir, '--full'], { CUSTODY_TRUST_FILE: trustFile() });
    assert.equal(back.code, 0);
  });
});
