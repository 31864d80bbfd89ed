/**
 * The log-store conformance suite (conformance.ts) against S3LogStore on the real S3 with
 * Object Lock (Ceph RGW, test/support/ceph.ts), built from worker init data the way the
 * integrator worker builds it — plus what only S3 has: COMPLIANCE locks until the log's
 * retention date (short ones on partials), the checkpoint as a versioned mutable object, and,
 * with the vault's own credentials (the only ones this S3 has), nothing can be deleted or
 * replaced: the store keeps serving the first version. The real integrator worker thread
 * writes a tree to S3.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { decodeBundle, bytesEqual, tilePath } from '@custody/verify';
import { Keyring } from '../../src/crypto/keyring.js';
import { isCustodyError } from '../../src/errors.js';
import { openLogStore, type LogStoreInit } from '../../src/storage/log-store.js';
import { S3LogStore } from '../../src/storage/s3/log-store.js';
import type { WorkerInit } from '../../src/sequencer/integrator-worker.js';
import { startCeph, type CephS3 } from '../support/ceph.js';
import { freePort } from '../support/server.js';
import { Integrator } from '../../src/sequencer/integrator.js';
import { conformance, entryBytes, writeLog, type StoreUnderTest } from './conformance.js';

const DAY = 86_400_000;
let ceph: CephS3;
const dirs: string[] = [];

before(async () => {
  ceph = await startCeph('conf');
});
after(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await ceph?.stop();
});

async function s3Store(label: string, retainDays = 2, defaultRetention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number }): Promise<StoreUnderTest & { store: S3LogStore; bucket: string; init: Extract<LogStoreInit, { kind: 's3' }> }> {
  const dir = mkdtempSync(join(tmpdir(), `custody-conf-s3-`));
  dirs.push(dir);
  const keys = Keyring.create(join(dir, 'keyring.json'), { passphrase: null }).addLog('local');
  const origin = 'conformance.example/local';
  const bucket = await ceph.lockedBucket(`conf-${label}`.slice(0, 24), defaultRetention);
  const init: Extract<LogStoreInit, { kind: 's3' }> = { kind: 's3', bucket, prefix: 'custody/', log: 'local', retainUntil: new Date(Date.now() + retainDays * DAY).toISOString(), env: ceph.env };
  const store = (await openLogStore(init, origin, keys)) as S3LogStore;
  assert.ok(store instanceof S3LogStore);
  const client = ceph.client();
  return {
    store,
    keys,
    origin,
    bucket,
    init,
    tamperedReads: 'original',
    lockedUntilRetention: true,
    async tamper(key, bytes) {
      // A plain PUT with the vault's own credentials: S3 adds a version, it cannot replace the locked one.
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `custody/local/${key}`, Body: bytes, ContentMD5: createHash('md5').update(bytes).digest('base64') }));
    },
    async close() {
      client.destroy();
      store.close();
    },
  };
}

conformance('s3', (label) => s3Store(label));

test('s3: full tiles, bundles and blobs are locked (COMPLIANCE) until the retention date, partials for a day, the checkpoint not at all', async () => {
  const s = await s3Store('locks', 30);
  try {
    await writeLog(s, [256, 44]);
    const sha = await s.store.writeBlob(randomBytes(70_000));
    const until = new Date(s.init.retainUntil).getTime();
    const o = s.store.objects;
    for (const key of ['local/tile/0/000', 'local/tile/entries/000', `local/blobs/${s.store.blobFileName(sha).slice(0, 2)}/${s.store.blobFileName(sha)}`]) {
      const r = await o.retention(`${key}`);
      assert.equal(r.mode, 'COMPLIANCE', key);
      assert.ok(r.retainUntil && Math.abs(r.retainUntil.getTime() - until) < 2000, `${key} is locked until the log's retention date (${r.retainUntil?.toISOString()})`);
    }
    for (const key of ['local/tile/0/001.p/44', 'local/tile/entries/001.p/44', 'local/tile/1/000.p/1']) {
      const r = await o.retention(key);
      assert.equal(r.mode, 'COMPLIANCE', key);
      const left = r.retainUntil!.getTime() - Date.now();
      assert.ok(left > DAY - 120_000 && left < DAY + 120_000, `${key} is locked for about a day (${r.retainUntil?.toISOString()})`);
    }
    const cp = await o.retention('local/checkpoint');
    assert.equal(cp.mode, undefined, 'the checkpoint is a mutable object without a lock');
    // each publication is a new version of the checkpoint; the store reads the latest
    assert.equal((await o.versions('local/checkpoint')).length, 2, 'two rounds (256 + 44), two checkpoint versions');
    assert.match((await s.store.readCheckpoint())!, /\n300\n/);
  } finally {
    await s.close();
  }
});

test('s3: in a bucket with a default retention the checkpoint versions are locked too, and publishing still works', async () => {
  const s = await s3Store('defret', 2, { mode: 'GOVERNANCE', days: 1 });
  try {
    const log = await writeLog(s, [10, 20, 30]);
    assert.equal(await s.store.readCheckpoint(), log.checkpoints[2], 'the latest publication is read');
    const r = await s.store.objects.retention('local/checkpoint');
    assert.equal(r.mode, 'GOVERNANCE', "the bucket's default retention locked the checkpoint version");
    assert.equal((await s.store.objects.versions('local/checkpoint')).length, 3, 'one version per publication');
    // explicit retention on a tile wins over the bucket default
    assert.equal((await s.store.objects.retention('local/tile/0/000.p/60')).mode, 'COMPLIANCE');
  } finally {
    await s.close();
  }
});

test("s3: with the vault's own credentials a tile or bundle can be neither deleted nor replaced; the store serves the first version", async () => {
  const s = await s3Store('nodelete');
  const client = ceph.client();
  try {
    const log = await writeLog(s, [300]);
    const tileKey = 'custody/local/tile/0/000';
    const good = (await s.store.readTile(0, 0, 256))!;
    const [first] = await s.store.objects.versions('local/tile/0/000');
    assert.ok(first);
    // DeleteObject with the VersionId: 403, the lock holds.
    await assert.rejects(client.send(new DeleteObjectCommand({ Bucket: s.bucket, Key: tileKey, VersionId: first.versionId })), (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode === 403);
    // A plain DELETE (a delete marker) and an overwrite: the original is still what the store serves.
    await client.send(new DeleteObjectCommand({ Bucket: s.bucket, Key: tileKey }));
    assert.deepEqual(await s.store.readTile(0, 0, 256), good, 'behind a delete marker the first version is served');
    const forged = randomBytes(256 * 32);
    await client.send(new PutObjectCommand({ Bucket: s.bucket, Key: tileKey, Body: forged, ContentMD5: createHash('md5').update(forged).digest('base64') }));
    assert.deepEqual(await s.store.readTile(0, 0, 256, { original: true }), good, 'the original-version path serves the first write');
    assert.ok(s.store.replaced.some((r) => r.key === 'tile/0/000' && r.later === 2), 'the replacement was noted');
    // the bundle: deleted (marker) then overwritten with garbage; the AEAD refuses the garbage and the first version is served
    const bKey = 'custody/local/tile/entries/000';
    const [bFirst] = await s.store.objects.versions('local/tile/entries/000');
    await assert.rejects(client.send(new DeleteObjectCommand({ Bucket: s.bucket, Key: bKey, VersionId: bFirst!.versionId })), (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode === 403);
    const junk = randomBytes(5000);
    await client.send(new PutObjectCommand({ Bucket: s.bucket, Key: bKey, Body: junk, ContentMD5: createHash('md5').update(junk).digest('base64') }));
    const b = decodeBundle((await s.store.readBundle(0, 256))!, 256);
    assert.ok(bytesEqual(b[255]!, log.entries[255]!));
    // removeBundle (a retention purge before the date): refused, naming the date
    await assert.rejects(s.store.removeBundle(0), (e: unknown) => {
      assert.ok(isCustodyError(e, 'OBJECT_LOCKED'), String(e));
      const until = (e.details as { retainUntil?: string }).retainUntil;
      assert.ok(until && Math.abs(Date.parse(until) - Date.parse(s.init.retainUntil)) < 2000, `the error names the retain-until date (${until})`);
      assert.ok(e.message.includes(until), e.message);
      return true;
    });
  } finally {
    client.destroy();
    await s.close();
  }
});

test('s3: a bundle whose lock has expired is removed with all its versions', async () => {
  const s = await s3Store('expired');
  try {
    // Objects written with a lock of a few seconds stand in for a retention that ended.
    s.store.retainUntil = new Date(Date.now() + 3_000);
    const log = await writeLog(s, [256]);
    assert.equal(log.entries.length, 256);
    await s.store.addShred({ purge: 9, from: 0, to: 256 });
    await new Promise((r) => setTimeout(r, 4_000));
    await s.store.removeBundle(0);
    assert.deepEqual(await s.store.objects.versions('local/tile/entries/000'), [], 'no version of the bundle is left');
    await assert.rejects(s.store.readBundle(0, 256), (e: unknown) => isCustodyError(e, 'ENTRY_SHREDDED'));
    assert.ok(await s.store.readTile(0, 0, 256), 'its hash tile stays');
  } finally {
    await s.close();
  }
});

test('s3: the integrator worker thread builds its store from init data and writes the tree to S3', async () => {
  const s = await s3Store('worker');
  try {
    const init: WorkerInit = { store: s.init, origin: s.origin, keys: s.keys.exportForWorker(), state: { size: 0, partial: [], tail: Buffer.alloc(0) }, intervalMs: 10, maxRound: 100_000 };
    const w = new Worker(new URL('../../src/sequencer/integrator-worker.js', import.meta.url), { workerData: init });
    try {
      const round = new Promise<{ t: string; size?: number; message?: string }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      const parts: Buffer[] = [];
      for (let i = 0; i < 300; i++) {
        const e = entryBytes(i);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(e.length);
        parts.push(len, e);
      }
      const buf = Buffer.concat(parts);
      const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
      w.postMessage({ t: 'append', first: 0, count: 300, buf: ab }, [ab]);
      const m = await round;
      assert.equal(m.t, 'round', `the worker answered ${JSON.stringify(m)}`);
      assert.equal(m.size, 300);
      assert.equal((await s.store.readTile(0, 0, 256))?.length, 8192);
      assert.equal(decodeBundle((await s.store.readBundle(1, 44))!, 44).length, 44);
      assert.ok(await s.store.objects.exists(`local/${tilePath({ level: 'entries', index: 0, width: 256 })}`));
    } finally {
      await w.terminate();
    }
  } finally {
    await s.close();
  }
});

test('s3: when S3 cannot be reached the round fails with STORAGE_UNAVAILABLE after the deadline; its entries stay pending', async () => {
  const good = await s3Store('down');
  const port = await freePort(); // nothing listens there
  const dead = await openLogStore({ ...good.init, env: { ...ceph.env, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${port}` }, retryDeadlineMs: 600 }, good.origin, good.keys);
  try {
    const integ = new Integrator(dead, good.origin, good.keys, { size: 0, partial: [], tail: Buffer.alloc(0) }, 1000);
    const e = entryBytes(0);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(e.length);
    integ.add(0, 1, Buffer.concat([len, e]));
    const t0 = Date.now();
    await assert.rejects(integ.round(), (err: unknown) => {
      assert.ok(isCustodyError(err, 'STORAGE_UNAVAILABLE'), String(err));
      assert.ok((err.details as { retryAfter?: number }).retryAfter! >= 1, 'it says when to retry');
      assert.match(err.message, /acknowledged entries are safe in the journal/);
      assert.doesNotMatch(err.message, new RegExp(ceph.secretAccessKey), 'no secret in the message');
      return true;
    });
    assert.ok(Date.now() - t0 < 10_000, 'bounded by the deadline');
    integ.abort();
    assert.equal(integ.pending, 1, 'the entry is still pending for the next round');
  } finally {
    dead.close();
    await good.close();
  }
});

test('s3: a store with a bad retention date or log name is refused before any request', async () => {
  const dir = mkdtempSync(join(tmpdir(), `custody-conf-s3-`));
  dirs.push(dir);
  const keys = Keyring.create(join(dir, 'keyring.json'), { passphrase: null }).addLog('local');
  await assert.rejects(openLogStore({ kind: 's3', bucket: 'custody-x', prefix: '', log: 'local', retainUntil: 'someday' }, 'o', keys), (e: unknown) => isCustodyError(e, 'CONFIG') && /not a date/.test((e as Error).message));
  await assert.rejects(openLogStore({ kind: 's3', bucket: 'custody-x', prefix: '', log: '../etc', retainUntil: new Date().toISOString() }, 'o', keys), (e: unknown) => isCustodyError(e, 'CONFIG'));
  await assert.rejects(openLogStore({ kind: 's3', bucket: 'Bad_Bucket', prefix: '', log: 'local', retainUntil: new Date().toISOString() }, 'o', keys), (e: unknown) => isCustodyError(e, 'CONFIG'));
});
