/**
 * The disk archive tier: the mover moves only full, old-enough bundles (and their blobs) and
 * is idempotent; reads, inclusion proofs, export and `custody verify --data` work on archived
 * entries; a retention purge shreds archived copies too; the self-audit checks archived
 * bundles; an archive that is missing or not a directory leaves everything hot, with a clear
 * reason and an alarm.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyInclusion, openCheckpoint, parseVerifierKey, fromBase64, hashLeaf } from '@custody/verify';
import { nativeSha256 } from '../../src/crypto/sha256.js';
import { verifyJson } from '../support/server.js';
import { bearer, bundleFile, blobFiles, CTX } from '../lifecycle/harness.js';
import { filledHarness, mover, tempDir, DAY, type Filled } from './support.js';

describe('disk archive: the mover, reads and purge', () => {
  let f: Filled;
  let arch: string;
  const hotBytes = new Map<number, Buffer>();
  let hotBlob: string;

  before(async () => {
    f = await filledHarness();
    arch = tempDir('disk');
    for (const k of [0, 1, 2]) hotBytes.set(k, readFileSync(bundleFile(f.h, k)));
    assert.equal(blobFiles(f.h).length, 1);
    hotBlob = blobFiles(f.h)[0]!;
  });
  after(async () => {
    await f?.h.close();
    rmSync(arch, { recursive: true, force: true });
  });

  const archived = (k: number): string => join(arch, 'local', 'tile', 'entries', String(k).padStart(3, '0'));

  test('age boundary: only bundles whose every entry is older than the cutoff move', async () => {
    const m = mover(f.h, arch, { afterDays: 30 });
    // Cutoff between the two batches: bundle 0 is old, bundle 1 (received later) is not.
    const now = (f.tA + f.tB) / 2 + 30 * DAY;
    const r = await m.archiveLog('local', now);
    assert.equal(r.error, undefined);
    assert.deepEqual(r.archived, [0]);
    assert.equal(r.blobs, 1, 'the blob of entry 255 moved with its bundle');
    assert.equal(existsSync(bundleFile(f.h, 0)), false, 'the hot copy is gone');
    assert.deepEqual(readFileSync(archived(0)), hotBytes.get(0), 'the archived copy is the sealed bytes as they were');
    assert.equal(existsSync(bundleFile(f.h, 1)), true);
    assert.deepEqual(blobFiles(f.h), []);
    assert.equal(existsSync(join(arch, 'local', 'blobs', hotBlob.slice(0, 2), hotBlob)), true, 'the sealed blob is in the archive');
    // One millisecond on the other side of the boundary: bundle 1 stays.
    const again = await m.archiveLog('local', f.tA + 30 * DAY); // cutoff = tA: bundle 0's newest entry is not < tA
    assert.deepEqual(again.archived, []);
  });

  test('only full bundles that are not the last one move; a rerun changes nothing', async () => {
    const m = mover(f.h, arch, { afterDays: 30 });
    const r = await m.archiveLog('local', Date.now() + 400 * DAY);
    assert.deepEqual(r.archived, [1, 2]);
    assert.equal(existsSync(join(f.h.dataDir, 'logs', 'local', 'tree', 'tile', 'entries', '003.p', '88')), true, 'the partial bundle stays hot');
    assert.equal(existsSync(archived(3)), false);
    for (const k of [1, 2]) assert.deepEqual(readFileSync(archived(k)), hotBytes.get(k));
    const before = readFileSync(join(f.h.dataDir, 'logs', 'local', 'archive.json'), 'utf8');
    const r2 = await m.archiveLog('local', Date.now() + 400 * DAY);
    assert.deepEqual([r2.archived, r2.finished, r2.error], [[], 0, undefined]);
    assert.equal(readFileSync(join(f.h.dataDir, 'logs', 'local', 'archive.json'), 'utf8'), before, 'the manifest is unchanged');
    // Tiles and the checkpoint stay hot.
    assert.equal(existsSync(join(f.h.dataDir, 'logs', 'local', 'tree', 'tile', '0', '000')), true);
    assert.equal(existsSync(join(arch, 'local', 'tile', '0')), false, 'no hash tile in the archive');
    assert.equal(existsSync(join(arch, 'local', 'checkpoint')), false);
  });

  test('reads of archived entries work and their inclusion proofs verify', async () => {
    const vkey = parseVerifierKey(f.h.vault.sequencer('local').verifierKey);
    for (const index of [0, 200, 255, 256, 700]) {
      const r = await f.h.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${index}`, headers: bearer(f.h.tokens.auditor) });
      assert.equal(r.statusCode, 200, r.body);
      const e = r.json<{ record: string; leafHash: string; inclusionProof: string[]; checkpoint: string; treeSize: number; entry: string }>();
      if (index === 255) assert.equal(e.record, f.big, 'the archived blob is read back');
      else assert.match(e.record, index < 256 ? /"tag":"A"/ : /"tag":"B"/);
      const cp = openCheckpoint(e.checkpoint, vkey).checkpoint;
      const leaf = hashLeaf(Buffer.from(e.entry, 'base64'), nativeSha256);
      assert.deepEqual(Buffer.from(leaf), Buffer.from(fromBase64(e.leafHash, 32)));
      verifyInclusion(leaf, index, cp.size, e.inclusionProof.map((p) => fromBase64(p, 32)), cp.rootHash, nativeSha256);
    }
    const t = await f.h.app.inject({ method: 'GET', url: '/logs/local/tile/entries/001', headers: bearer(f.h.tokens.auditor) });
    assert.equal(t.statusCode, 200);
  });

  test('GET /v1/logs tells where the archive is and how many bundles are hot and archived', async () => {
    const r = await f.h.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(f.h.tokens.auditor) });
    const local = r.json<{ logs: Array<{ name: string; archive: Record<string, unknown> }> }>().logs.find((l) => l.name === 'local')!;
    assert.deepEqual(local.archive, { location: 'file://' + arch, afterDays: 30, locations: ['file://' + arch], hotBundles: 1, archivedBundles: 3, archivedBlobs: 1, storageClasses: [] });
  });

  test('an evidence export of archived entries works', async () => {
    const r = await f.h.app.inject({ method: 'POST', url: '/v1/export', headers: { ...bearer(f.h.tokens.auditor), 'content-type': 'application/json' }, payload: { entries: [{ log: 'local', index: 3 }, { log: 'local', index: 255 }] } });
    assert.equal(r.statusCode, 200, r.body.slice(0, 300));
    assert.equal(r.headers['x-custody-entries'], '2');
  });

  test('custody verify --data reads the archived bundles and passes', async () => {
    const trust = join(arch, '..', `trust-${process.pid}.json`);
    const { code, json } = await verifyJson(['--data', f.h.dataDir, '--log', 'local', '--trust-file', trust]);
    rmSync(trust, { force: true });
    assert.equal(code, 0, JSON.stringify(json.logs.map((l) => l.problems)));
    assert.equal(json.logs[0]!.entriesChecked, 856);
  });

  test('the self-audit checks archived bundles, and alarms on a changed archived copy', async () => {
    const audit = f.h.services.selfAudit!;
    await audit.tick();
    const integrity = () => f.h.vault.alarms.list({ kinds: ['integrity'] });
    assert.deepEqual(await integrity(), [], 'archived bundles pass the self-audit');
    const p = archived(1);
    const orig = readFileSync(p);
    const bad = Buffer.from(orig);
    bad[bad.length - 5]! ^= 1;
    writeFileSync(p, bad);
    // A fresh pass (the cursor went past bundle 1): the self-audit reads bundle 1 again.
    f.h.vault.db.sqlite.prepare('UPDATE selfaudit_state SET cursor = 0, size = 0').run();
    await audit.tick();
    const a = await integrity();
    writeFileSync(p, orig);
    assert.equal(a.length >= 1, true, 'a changed archived bundle raises an integrity alarm');
    assert.match(a.map((x) => x.title).join('\n'), /bundle tile\/entries\/001/);
  });

  test('a retention purge shreds archived bundles and their archived blobs', async () => {
    const r = await f.h.retention.purge('local', CTX, { now: (f.tA + f.tB) / 2 + 365 * DAY });
    assert.deepEqual([r.from, r.to, r.blobsRemoved], [0, 256, 1]);
    assert.equal(existsSync(archived(0)), false, 'the archived copy of the shredded bundle is deleted');
    assert.deepEqual(readdirSync(join(arch, 'local', 'blobs', hotBlob.slice(0, 2))), [], 'and the blob only it referenced');
    const m = JSON.parse(readFileSync(join(f.h.dataDir, 'logs', 'local', 'archive.json'), 'utf8')) as { bundles: Record<string, unknown>; blobs: Record<string, unknown> };
    assert.deepEqual(Object.keys(m.bundles).sort(), ['1', '2']);
    assert.deepEqual(m.blobs, {});
    const e = await f.h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/3', headers: bearer(f.h.tokens.auditor) });
    assert.equal(e.statusCode, 410);
    assert.equal(e.json<{ error: { code: string } }>().error.code, 'ENTRY_SHREDDED');
    const ok = await f.h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/300', headers: bearer(f.h.tokens.auditor) });
    assert.equal(ok.statusCode, 200, 'the archived bundles after the purge still read');
  });
});

describe('disk archive: crashes between the steps', () => {
  let f: Filled;
  let arch: string;
  before(async () => {
    f = await filledHarness();
    arch = tempDir('crash');
  });
  after(async () => {
    await f?.h.close();
    rmSync(arch, { recursive: true, force: true });
  });
  const archived = (k: number): string => join(arch, 'local', 'tile', 'entries', String(k).padStart(3, '0'));
  const manifest = (): { bundles: Record<string, unknown> } => JSON.parse(readFileSync(join(f.h.dataDir, 'logs', 'local', 'archive.json'), 'utf8')) as { bundles: Record<string, unknown> };
  const read = async (index: number): Promise<number> => (await f.h.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${index}`, headers: bearer(f.h.tokens.auditor) })).statusCode;
  const future = Date.now() + 400 * DAY;

  test('crash after the copy, before the record: the hot copy stays and serves; a rerun finishes', async () => {
    const crashing = mover(f.h, arch, { hooks: { afterCopy: () => { throw new Error('crash after copy (test)'); } } });
    const r = await crashing.archiveLog('local', future);
    assert.match(r.error ?? '', /crash after copy/);
    assert.deepEqual(r.archived, []);
    assert.equal(existsSync(bundleFile(f.h, 0)), true, 'hot copy kept');
    assert.equal(existsSync(archived(0)), true, 'an unrecorded copy exists');
    assert.equal(existsSync(join(f.h.dataDir, 'logs', 'local', 'archive.json')) ? '0' in manifest().bundles : false, false, 'not recorded');
    assert.equal(await read(10), 200);
    const r2 = await mover(f.h, arch, { batch: 1 }).archiveLog('local', future);
    assert.deepEqual(r2.archived, [0]);
    assert.equal(existsSync(bundleFile(f.h, 0)), false);
    assert.equal(await read(10), 200);
  });

  test('crash after the record, before removing the hot copy: both exist; a rerun removes the hot one', async () => {
    const crashing = mover(f.h, arch, { hooks: { afterRecord: () => { throw new Error('crash after record (test)'); } } });
    const r = await crashing.archiveLog('local', future);
    assert.match(r.error ?? '', /crash after record/);
    assert.equal(existsSync(bundleFile(f.h, 1)), true, 'hot copy still there');
    assert.equal('1' in manifest().bundles, true, 'recorded');
    assert.equal(await read(300), 200);
    const r2 = await mover(f.h, arch).archiveLog('local', future);
    assert.equal(r2.finished, 1, 'the interrupted bundle is finished');
    assert.deepEqual(r2.archived, [2]);
    assert.equal(existsSync(bundleFile(f.h, 1)), false);
    assert.equal(await read(300), 200);
    assert.equal(await read(600), 200);
  });

  test('a recorded copy that was changed is not trusted: the hot copy stays', async () => {
    // Bundle 2 archived; put a hot copy back and change the archived one, then "finish" it.
    const good = readFileSync(archived(2));
    writeFileSync(bundleFile(f.h, 2), good);
    const bad = Buffer.from(good);
    bad[10]! ^= 0xff;
    writeFileSync(archived(2), bad);
    const r = await mover(f.h, arch).archiveLog('local', future);
    assert.match(r.error ?? '', /does not match the SHA-256/);
    assert.equal(existsSync(bundleFile(f.h, 2)), true, 'the hot copy was not removed');
    writeFileSync(archived(2), good);
  });
});

describe('disk archive: hostile targets', () => {
  let f: Filled;
  let tmp: string;
  before(async () => {
    f = await filledHarness();
    tmp = tempDir('hostile');
  });
  after(async () => {
    await f?.h.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('a missing archive directory: clear reason, an alarm, everything stays hot and readable', async () => {
    const missing = join(tmp, 'not-mounted');
    const r = await mover(f.h, missing).archiveLog('local', Date.now() + 400 * DAY);
    assert.match(r.error ?? '', /does not exist \(is the archive volume mounted\?\)/);
    assert.deepEqual(r.archived, []);
    assert.equal(existsSync(missing), false, 'the archive root is never created');
    for (const k of [0, 1, 2]) assert.equal(existsSync(bundleFile(f.h, k)), true);
    const alarms = (await f.h.vault.alarms.list({ kinds: ['integrity'] })).filter((a) => a.rule === 'archive.unavailable');
    assert.equal(alarms.length, 1);
    assert.match(alarms[0]!.title, /cannot be written/);
    const e = await f.h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/1', headers: bearer(f.h.tokens.auditor) });
    assert.equal(e.statusCode, 200);
  });

  test('an archive path that is a file, not a directory: refused the same way', async () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    const r = await mover(f.h, file).archiveLog('local', Date.now() + 400 * DAY);
    assert.match(r.error ?? '', /Cannot write in the archive file:\/\/.*a-file/);
    assert.equal(existsSync(bundleFile(f.h, 0)), true);
  });

  test('a disk-archived bundle whose archive volume went away reads as ARCHIVE_UNAVAILABLE (503), not as damage', async () => {
    const dir = join(tmp, 'vol');
    const { mkdirSync, renameSync } = await import('node:fs');
    mkdirSync(dir);
    const r = await mover(f.h, dir, { batch: 1 }).archiveLog('local', Date.now() + 400 * DAY);
    assert.deepEqual(r.archived, [0]);
    renameSync(dir, dir + '-gone');
    const e = await f.h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/1', headers: bearer(f.h.tokens.auditor) });
    renameSync(dir + '-gone', dir);
    assert.equal(e.statusCode, 503);
    assert.equal(e.json<{ error: { code: string } }>().error.code, 'ARCHIVE_UNAVAILABLE');
    assert.match(e.json<{ error: { message: string } }>().error.message, /mounted/);
  });
});
