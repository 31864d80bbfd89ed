/**
 * Purging past retention against a running vault: which bundles a purge may take (a bundle
 * with one young entry stays; the last bundle never goes), what leaves the disk (the sealed
 * bundles and the blobs only they referenced) and what stays (hash tiles, checkpoint, every
 * other entry), and that every proof — for shredded entries too — still verifies against the
 * signed checkpoint with @custody/verify.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint, parseVerifierKey, verifyInclusion, fromBase64, hashLeaf } from '@custody/verify';
import { createHash } from 'node:crypto';
import {
  openHarness,
  append,
  records,
  bigRecord,
  bearer,
  bundleFile,
  snapshotTree,
  blobFiles,
  auditRecords,
  sleep,
  CTX,
  DAY,
  type Harness,
} from './harness.js';

/** Compares two tree snapshots by name, without printing megabytes of tiles. */
function sameTree(a: Map<string, string>, b: Map<string, string>): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), 'the same tile files');
  const changed = [...a.keys()].filter((k) => a.get(k) !== b.get(k));
  assert.deepEqual(changed, [], 'no tile file or checkpoint changed');
}

interface EntryAnswer {
  leafHash: string;
  inclusionProof: string[];
  checkpoint: string;
  entry: string;
  record: string;
}

interface ShreddedAnswer {
  error: { code: string; message: string; details: { purge: number; from: number; to: number; index: number; treeSize: number; leafHash: string; inclusionProof: string[]; checkpoint: string } };
}

describe('purge past retention', () => {
  let h: Harness;
  let vkey: string;
  let A: { received: string };
  let B: { received: string };
  const X = bigRecord('only-old');
  const S = bigRecord('shared');
  let blobX: string;
  let blobS: string;
  let tree0: Map<string, string>;
  let leaf0: string[];

  before(async () => {
    // Blobs are deleted however recently they were stored (default: not within the last hour).
    h = await openHarness({ timing: { retentionBlobIdleMs: 0 } });
    vkey = h.vault.sequencer('local').verifierKey;
    // Batch A: 511 entries (bundle 0, and 255 of bundle 1); then, later, batch B: 267 entries
    // (the last entry of bundle 1, all of bundle 2, 10 in the partial bundle 3).
    const a = records(511, 'A');
    a[5] = X;
    a[10] = S;
    A = await append(h, a);
    await sleep(30);
    const b = records(267, 'B');
    b[100] = S; // entry 611, bundle 2: the same record again, the same blob
    B = await append(h, b);
    assert.ok(Date.parse(A.received) < Date.parse(B.received));
    const sha = (r: string): string => createHash('sha256').update(r).digest('hex');
    blobX = h.vault.sequencer('local').store.blobFileName(sha(X));
    blobS = h.vault.sequencer('local').store.blobFileName(sha(S));
    assert.deepEqual(new Set(blobFiles(h)), new Set([blobX, blobS]));
    tree0 = snapshotTree(h);
    leaf0 = [];
    for (const i of [0, 3, 5, 255, 256, 511, 600, 777]) {
      leaf0[i] = (await h.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${i}`, headers: bearer(h.tokens.auditor) })).json<EntryAnswer>().leafHash;
    }
  });
  after(() => h?.close());

  test('GET /v1/retention: default 365 days, the oldest entry, nothing to purge yet', async () => {
    const r = await h.app.inject({ method: 'GET', url: '/v1/retention', headers: bearer(h.tokens.auditor) });
    assert.equal(r.statusCode, 200);
    const local = r.json<{ defaultDays: number; logs: Array<{ log: string; days: number; size: number; oldest: { index: number; received: string }; purgeable: { count: number } }> }>().logs.find((l) => l.log === 'local')!;
    assert.equal(local.days, 365);
    assert.equal(local.size, 778);
    assert.deepEqual(local.oldest, { index: 0, received: A.received });
    assert.equal(local.purgeable.count, 0);
    const admin = await h.app.inject({ method: 'GET', url: '/v1/retention', headers: bearer(h.tokens.admin) });
    assert.equal(admin.statusCode, 200);
    const writer = await h.app.inject({ method: 'GET', url: '/v1/retention', headers: bearer(h.tokens.writer) });
    assert.equal(writer.statusCode, 403);
  });

  test('purging when nothing is old enough removes nothing', async () => {
    const r = await h.retention.purge('local', CTX, { now: Date.now() });
    assert.equal(r.purge, null);
    assert.equal(r.count, 0);
    for (const k of [0, 1, 2]) assert.ok(existsSync(bundleFile(h, k)), `bundle ${k} is still there`);
    assert.equal(h.retention.store.purges('local').length, 0);
  });

  test('a bundle with one young entry is kept: only bundle 0 is shredded', async () => {
    const cutoff = (Date.parse(A.received) + Date.parse(B.received)) / 2;
    const now = cutoff + 365 * DAY;
    // The preview (GET /v1/retention, which uses the same planner) agrees with what happens.
    const preview = await h.retention.overview(now);
    assert.deepEqual(preview.logs.find((l) => l.log === 'local')!.purgeable, { from: 0, to: 256, count: 256, bundles: 1 });
    const r = await h.retention.purge('local', CTX, { now });
    assert.equal(r.purge, 1);
    assert.deepEqual([r.from, r.to, r.count, r.bundles], [0, 256, 256, 1]);
    assert.equal(existsSync(bundleFile(h, 0)), false, 'bundle 0 is deleted from disk');
    assert.ok(existsSync(bundleFile(h, 1)), 'bundle 1 (one young entry) stays');
    assert.ok(existsSync(bundleFile(h, 2)));
    assert.ok(existsSync(bundleFile(h, 3) + '.p/10'), 'the partial last bundle stays');
    // The blob only entry 5 referenced is gone; the one a young entry shares stays.
    assert.deepEqual(blobFiles(h), [blobS]);
    assert.equal(r.blobsRemoved, 1);
    // Hash tiles and the checkpoint are untouched.
    sameTree(snapshotTree(h), tree0);
    const shred = JSON.parse(readFileSync(join(h.dataDir, 'logs', 'local', 'shredded.json'), 'utf8')) as { purges: unknown[] };
    assert.deepEqual(shred.purges, [{ purge: 1, from: 0, to: 256 }]);
    const rec = h.retention.store.purge(1)!;
    assert.deepEqual([rec.log, rec.from, rec.to, rec.count, rec.state, rec.approval, rec.requestedBy, rec.approvedBy], ['local', 0, 256, 256, 'done', 'test-request', 'alice', 'bob']);
    const audit = (await auditRecords(h)).filter((e) => e['type'] === 'retention.purged');
    assert.equal(audit.length, 1);
    assert.deepEqual(audit[0]!['range'], { from: 0, to: 256 });
    assert.equal(audit[0]!['count'], 256);
    assert.deepEqual(audit[0]!['approval'], { request: 'test-request', requestedBy: 'alice', approvedBy: 'bob' });
  });

  test('a shredded entry reads as 410 ENTRY_SHREDDED with its leaf hash and a proof that verifies', async () => {
    const cpText = await (await h.app.inject({ method: 'GET', url: '/logs/local/checkpoint', headers: bearer(h.tokens.auditor) })).body;
    const cp = openCheckpoint(cpText, parseVerifierKey(vkey)).checkpoint;
    for (const i of [0, 3, 5, 255]) {
      const r = await h.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${i}`, headers: bearer(h.tokens.auditor) });
      assert.equal(r.statusCode, 410);
      const e = r.json<ShreddedAnswer>().error;
      assert.equal(e.code, 'ENTRY_SHREDDED');
      assert.match(e.message, /purge #1/);
      assert.equal(e.details.purge, 1);
      assert.equal(e.details.leafHash, leaf0[i], 'the leaf hash is the one the entry had');
      assert.equal(JSON.stringify(e).includes('only-old'), false, 'no record content');
      verifyInclusion(fromBase64(e.details.leafHash, 32), i, cp.size, e.details.inclusionProof.map((p) => fromBase64(p, 32)), cp.rootHash);
    }
    const tile = await h.app.inject({ method: 'GET', url: '/logs/local/tile/entries/000', headers: bearer(h.tokens.auditor) });
    assert.equal(tile.statusCode, 410);
    assert.equal(tile.json<ShreddedAnswer>().error.details.purge, 1);
    const partial = await h.app.inject({ method: 'GET', url: '/logs/local/tile/entries/000.p/7', headers: bearer(h.tokens.auditor) });
    assert.equal(partial.statusCode, 410);
    const hashes = await h.app.inject({ method: 'GET', url: '/logs/local/tile/0/000', headers: bearer(h.tokens.auditor) });
    assert.equal(hashes.statusCode, 200, 'the level-0 hash tile of the shredded bundle is still served');
    // Inclusion and consistency proofs over the shredded range still come from the tiles.
    const inc = await h.app.inject({ method: 'GET', url: '/v1/logs/local/proofs/inclusion?index=3&size=400', headers: bearer(h.tokens.auditor) });
    assert.equal(inc.statusCode, 200);
    const cons = await h.app.inject({ method: 'GET', url: '/v1/logs/local/proofs/consistency?from=100&to=778', headers: bearer(h.tokens.auditor) });
    assert.equal(cons.statusCode, 200);
  });

  test('every other entry still reads, and its proof verifies against the signed checkpoint', async () => {
    const cpText = await (await h.app.inject({ method: 'GET', url: '/logs/local/checkpoint', headers: bearer(h.tokens.auditor) })).body;
    const cp = openCheckpoint(cpText, parseVerifierKey(vkey)).checkpoint;
    for (const i of [256, 300, 511, 600, 611, 777]) {
      const r = await h.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${i}`, headers: bearer(h.tokens.auditor) });
      assert.equal(r.statusCode, 200, `entry ${i}`);
      const a = r.json<EntryAnswer>();
      const leaf = hashLeaf(Buffer.from(a.entry, 'base64'));
      verifyInclusion(leaf, i, cp.size, a.inclusionProof.map((p) => fromBase64(p, 32)), cp.rootHash);
      if (i === 611) assert.equal(a.record, S, 'the shared blob still reads');
    }
  });

  test('a clock far in the future shreds bundles 1 and 2 but never the partial last bundle', async () => {
    const r = await h.retention.purge('local', CTX, { now: Date.now() + 400 * DAY });
    assert.equal(r.purge, 2);
    assert.deepEqual([r.from, r.to, r.count], [256, 768, 512]);
    assert.equal(existsSync(bundleFile(h, 1)), false);
    assert.equal(existsSync(bundleFile(h, 2)), false);
    assert.ok(existsSync(bundleFile(h, 3) + '.p/10'));
    assert.deepEqual(blobFiles(h), [], 'the shared blob goes once no kept entry references it');
    sameTree(snapshotTree(h), tree0);
    const r777 = await h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/777', headers: bearer(h.tokens.auditor) });
    assert.equal(r777.statusCode, 200);
    const r611 = await h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/611', headers: bearer(h.tokens.auditor) });
    assert.equal(r611.json<ShreddedAnswer>().error.details.purge, 2);
    // Nothing more can go: the last bundle holds the right edge of the tree.
    const again = await h.retention.purge('local', CTX, { now: Date.now() + 4000 * DAY });
    assert.equal(again.count, 0);
    const list = await h.app.inject({ method: 'GET', url: '/v1/retention', headers: bearer(h.tokens.auditor) });
    const local = list.json<{ logs: Array<{ log: string; oldest: { index: number }; shredded: { entries: number; purges: Array<{ id: number }> } }> }>().logs.find((l) => l.log === 'local')!;
    assert.equal(local.shredded.entries, 768);
    assert.deepEqual(local.shredded.purges.map((p) => p.id), [1, 2]);
    assert.equal(local.oldest.index, 768);
  });

  test('the vault still appends and restarts cleanly on a purged log', async () => {
    await append(h, records(300, 'C'));
    assert.equal(h.vault.sequencer('local').size, 1078);
    await h.stop();
    h = await openHarness({ dataDir: h.dataDir });
    assert.equal(h.vault.sequencer('local').size, 1078);
    assert.equal((await h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/1000', headers: bearer(h.tokens.auditor) })).statusCode, 200);
    assert.equal((await h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/10', headers: bearer(h.tokens.auditor) })).statusCode, 410);
    await append(h, records(5, 'E'));
    assert.equal(h.vault.sequencer('local').size, 1083);
  });
});

describe('a log whose retention was extended keeps its data', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h?.close());

  test('extend to 1000 days: a purge 400 days on removes nothing; 1001 days on it removes the old bundle', async () => {
    const d = records(300, 'D');
    d[7] = bigRecord('fresh');
    await append(h, d);
    await h.retention.extend('local', 1000, CTX);
    const r = await h.retention.purge('local', CTX, { now: Date.now() + 400 * DAY });
    assert.equal(r.count, 0);
    assert.equal(r.retentionDays, 1000);
    assert.ok(existsSync(bundleFile(h, 0)));
    const later = await h.retention.purge('local', CTX, { now: Date.now() + 1001 * DAY });
    assert.equal(later.count, 256);
    assert.equal(existsSync(bundleFile(h, 0)), false);
    // A blob stored (or reused by a writer) within the last hour is never deleted: a new entry
    // may be about to reference it.
    assert.equal(later.blobsKept, 1);
    assert.equal(blobFiles(h).length, 1);
  });
});
