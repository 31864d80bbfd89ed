/**
 * A purge interrupted half way (recorded in custody.db, some bundles deleted, others not) is
 * recognisable — the record says "shredding" — and the next start of the vault finishes it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { PurgeInterrupted } from '../../src/lifecycle/index.js';
import { verifyJson } from '../support/server.js';
import { openHarness, append, records, bigRecord, bearer, bundleFile, blobFiles, auditRecords, snapshotTree, CTX, DAY, type Harness } from './harness.js';

describe('a purge interrupted half way', () => {
  let h: Harness;
  let blob: string;
  const big = bigRecord('crash');
  before(async () => {
    h = await openHarness({ timing: { retentionBlobIdleMs: 0 } });
    const r = records(800, 'K');
    r[600] = big; // in bundle 2, the last one the purge reaches
    await append(h, r);
    blob = h.vault.sequencer('local').store.blobFileName(createHash('sha256').update(big).digest('hex'));
  });
  after(() => h?.close());

  test('stops after one bundle: the purge is on record as "shredding"', async () => {
    await assert.rejects(h.retention.purge('local', CTX, { now: Date.now() + 400 * DAY, interruptAfter: 1 }), PurgeInterrupted);
    const rec = h.retention.store.purge(1)!;
    assert.deepEqual([rec.state, rec.from, rec.to, rec.count, rec.blobs], ['shredding', 0, 768, 768, [blob]]);
    assert.equal(existsSync(bundleFile(h, 0)), false);
    assert.ok(existsSync(bundleFile(h, 1)));
    assert.ok(existsSync(bundleFile(h, 2)));
    assert.deepEqual(blobFiles(h), [blob]);
    // Readers already treat the whole range as shredded where the file is gone.
    const r0 = await h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/3', headers: bearer(h.tokens.auditor) });
    assert.equal(r0.statusCode, 410);
    // verify passes meanwhile (what is gone was approved; what is left still hashes right).
    const v = await verifyJson(['--data', h.dataDir], { CUSTODY_TRUST_FILE: `${h.dataDir}/trust.json` });
    assert.equal(v.code, 0, JSON.stringify(v.json.logs.map((l) => l.problems)));
  });

  test('the next start finishes it: every bundle of the range gone, blob gone, audited once', async () => {
    const tree = snapshotTree(h);
    await h.stop();
    h = await openHarness({ dataDir: h.dataDir, timing: { retentionBlobIdleMs: 0 } });
    const rec = h.retention.store.purge(1)!;
    assert.equal(rec.state, 'done');
    assert.ok(rec.completedAt);
    for (const k of [0, 1, 2]) assert.equal(existsSync(bundleFile(h, k)), false, `bundle ${k}`);
    assert.ok(existsSync(bundleFile(h, 3) + '.p/32'));
    assert.deepEqual(blobFiles(h), []);
    assert.deepEqual([...snapshotTree(h).keys()].sort(), [...tree.keys()].sort());
    const ev = (await auditRecords(h)).filter((e) => e['type'] === 'retention.purged');
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!['resumed'], true);
    assert.equal(ev[0]!['purge'], 1);
    const r = await h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/700', headers: bearer(h.tokens.auditor) });
    assert.equal(r.statusCode, 410);
    assert.equal((await h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/790', headers: bearer(h.tokens.auditor) })).statusCode, 200);
    // A new purge starts where this one ended.
    await append(h, records(300, 'L'));
    const next = await h.retention.purge('local', CTX, { now: Date.now() + 400 * DAY });
    assert.deepEqual([next.purge, next.from, next.to], [2, 768, 1024]);
  });
});
