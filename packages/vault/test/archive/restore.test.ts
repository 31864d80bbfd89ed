/**
 * The S3 restore state machine (storage/archive-s3.ts) with the real AWS SDK against a local
 * server that answers like S3 (fake-s3.ts; Ceph RGW 16.2 has no GLACIER classes and no
 * RestoreObject): GetObject → InvalidObjectState → HeadObject x-amz-restore → RestoreObject
 * once → "in progress" while it runs → the restored copy reads → after expiry a new restore.
 * Then through the vault: an auditor reading an entry of a GLACIER bundle gets 503
 * ARCHIVE_RESTORE_PENDING with Retry-After, later the entry; the self-audit starts no restore.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { S3Archive, parseRestoreHeader } from '../../src/storage/archive-s3.js';
import { resetArchiveTargets, type ArchivedFile } from '../../src/storage/archive.js';
import { CustodyError } from '../../src/errors.js';
import { bearer, CTX } from '../lifecycle/harness.js';
import { FakeS3 } from './fake-s3.js';
import { filledHarness, mover, DAY, type Filled } from './support.js';

const ENV_KEYS = ['AWS_ENDPOINT_URL_S3', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION'] as const;

async function pending(p: Promise<unknown>): Promise<CustodyError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CustodyError && e.code === 'ARCHIVE_RESTORE_PENDING') return e;
    throw e;
  }
  assert.fail('expected ARCHIVE_RESTORE_PENDING');
}

describe('S3 restore state machine (fake S3, real SDK)', () => {
  const fake = new FakeS3();
  const saved: Record<string, string | undefined> = {};
  before(async () => {
    await fake.start();
    for (const k of ENV_KEYS) saved[k] = process.env[k];
    Object.assign(process.env, { AWS_ENDPOINT_URL_S3: fake.url, AWS_ACCESS_KEY_ID: 'fake', AWS_SECRET_ACCESS_KEY: 'fake-secret', AWS_REGION: 'us-east-1' });
    resetArchiveTargets();
  });
  after(async () => {
    resetArchiveTargets();
    for (const k of ENV_KEYS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await fake.stop();
  });

  test('x-amz-restore is parsed as S3 writes it', () => {
    assert.deepEqual(parseRestoreHeader('ongoing-request="true"'), { ongoing: true });
    assert.deepEqual(parseRestoreHeader('ongoing-request="false", expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"'), { ongoing: false, expiry: 'Fri, 23 Dec 2012 00:00:00 GMT' });
    assert.equal(parseRestoreHeader(undefined), null);
    assert.equal(parseRestoreHeader('garbage'), null);
  });

  test('GLACIER: started → in progress → restored → expired → started again', async () => {
    const a = new S3Archive('s3://cold-bucket/vault', 'GLACIER');
    const body = Buffer.from('sealed bundle bytes');
    const sha = createHash('sha256').update(body).digest('hex');
    const put = await a.put('local', 'tile/entries/000', body, { sha256: sha });
    assert.equal(put.storageClass, 'GLACIER');
    assert.equal(fake.objects.get('cold-bucket/vault/local/tile/entries/000')!.storageClass, 'GLACIER', 'PutObject carried the storage class');
    const f: ArchivedFile = { loc: a.loc, sha256: sha, size: body.length, at: '', ...(put.versionId ? { versionId: put.versionId } : {}) };
    await a.check('local', 'tile/entries/000', f); // S3's stored SHA-256, no read of a cold object

    const e1 = await pending(a.get('local', 'tile/entries/000', f, 5));
    assert.equal(e1.details?.['restore'], 'started');
    assert.equal(e1.details?.['retryAfter'], 3 * 3600);
    assert.equal(e1.details?.['storageClass'], 'GLACIER');
    assert.match(e1.message, /restore was started now and takes 3–5 hours/);
    assert.match(e1.message, /stays readable for 5 days/);
    assert.equal(fake.restores.length, 1);
    assert.match(fake.restores[0]!.body, /<Days>5<\/Days>/);
    assert.match(fake.restores[0]!.body, /<Tier>Standard<\/Tier>/);

    const e2 = await pending(a.get('local', 'tile/entries/000', f, 5));
    assert.equal(e2.details?.['restore'], 'in-progress');
    assert.equal(e2.details?.['retryAfter'], 900);
    assert.equal(fake.restores.length, 1, 'no second RestoreObject while one runs');

    fake.finishRestores();
    assert.deepEqual(await a.get('local', 'tile/entries/000', f, 5), body);
    assert.equal(fake.restores.length, 1);

    fake.finishRestores();
    fake.objects.get('cold-bucket/vault/local/tile/entries/000')!.expiry = new Date(Date.now() - 1000); // the copy expired
    const e3 = await pending(a.get('local', 'tile/entries/000', f, 5));
    assert.equal(e3.details?.['restore'], 'started');
    assert.equal(fake.restores.length, 2, 'a new restore after expiry');
    a.close();
  });

  test('DEEP_ARCHIVE says up to 12 hours; a 409 RestoreAlreadyInProgress counts as in progress', async () => {
    const a = new S3Archive('s3://deep-bucket', 'DEEP_ARCHIVE');
    const body = Buffer.from('deep');
    const sha = createHash('sha256').update(body).digest('hex');
    const put = await a.put('local', 'blobs/ab/abcd', body, { sha256: sha });
    const f: ArchivedFile = { loc: a.loc, sha256: sha, size: body.length, at: '', ...(put.versionId ? { versionId: put.versionId } : {}) };
    fake.restoreConflict = true;
    try {
      const e = await pending(a.get('local', 'blobs/ab/abcd', f, 7));
      assert.equal(e.details?.['restore'], 'in-progress');
      assert.match(e.message, /up to 12 hours/);
    } finally {
      fake.restoreConflict = false;
    }
    const e2 = await pending(a.get('local', 'blobs/ab/abcd', f, 7));
    assert.equal(e2.details?.['restore'], 'started');
    assert.equal(e2.details?.['retryAfter'], 12 * 3600);
    a.close();
  });

  test('a stored SHA-256 that differs from the hot bytes fails the check; a changed restored copy fails the read', async () => {
    const a = new S3Archive('s3://check-bucket', 'GLACIER_IR');
    const body = Buffer.from('instant');
    const sha = createHash('sha256').update(body).digest('hex');
    await a.put('local', 'tile/entries/001', body, { sha256: sha });
    const wrong = createHash('sha256').update('other').digest('hex');
    await assert.rejects(a.check('local', 'tile/entries/001', { sha256: wrong, size: body.length }), (e: CustodyError) => e.code === 'STORAGE_CORRUPT');
    fake.objects.get('check-bucket/local/tile/entries/001')!.body = Buffer.from('changed');
    await assert.rejects(a.get('local', 'tile/entries/001', { loc: a.loc, sha256: sha, size: body.length, at: '' }, 7), (e: CustodyError) => e.code === 'STORAGE_CORRUPT');
    a.close();
  });

  describe('through the vault', () => {
    let f: Filled;
    before(async () => {
      f = await filledHarness();
    });
    after(async () => {
      await f?.h.close();
    });

    test('an entry in a GLACIER bundle: 503 ARCHIVE_RESTORE_PENDING with Retry-After, then the entry once restored', async () => {
      const m = mover(f.h, 's3://vault-archive/custody', { storageClass: 'GLACIER', restoreDays: 3 });
      const r = await m.archiveLog('local', Date.now() + 400 * DAY);
      assert.equal(r.error, undefined);
      assert.deepEqual(r.archived, [0, 1, 2]);
      assert.equal(fake.objects.get('vault-archive/custody/local/tile/entries/001')?.storageClass, 'GLACIER');
      const restoresBefore = fake.restores.length;

      const get = () => f.h.app.inject({ method: 'GET', url: '/v1/logs/local/entries/300', headers: bearer(f.h.tokens.auditor) });
      const a1 = await get();
      assert.equal(a1.statusCode, 503);
      assert.equal(a1.headers['retry-after'], String(3 * 3600));
      const e1 = a1.json<{ error: { code: string; message: string; details: Record<string, unknown> } }>().error;
      assert.equal(e1.code, 'ARCHIVE_RESTORE_PENDING');
      assert.equal(e1.details['restore'], 'started');
      assert.equal(e1.details['expected'], '3–5 hours (Standard retrieval)');
      assert.match(e1.message, /stays readable for 3 days/);
      const a2 = await get();
      assert.equal(a2.statusCode, 503);
      assert.equal(a2.headers['retry-after'], '900');
      assert.equal(a2.json<{ error: { details: Record<string, unknown> } }>().error.details['restore'], 'in-progress');
      assert.equal(fake.restores.length, restoresBefore + 1);

      // Proofs need no bundle: the inclusion proof of the same entry answers now.
      const proof = await f.h.app.inject({ method: 'GET', url: '/v1/logs/local/proofs/inclusion?index=300', headers: bearer(f.h.tokens.auditor) });
      assert.equal(proof.statusCode, 200);

      // The self-audit skips S3-archived bundles: it starts no restore.
      await f.h.services.selfAudit!.tick();
      assert.equal(fake.restores.length, restoresBefore + 1);
      assert.deepEqual(await f.h.vault.alarms.list({ kinds: ['integrity'] }), []);

      fake.finishRestores();
      const a3 = await get();
      assert.equal(a3.statusCode, 200, a3.body.slice(0, 300));
      assert.match(a3.json<{ record: string }>().record, /"tag":"B"/);

      const logs = await f.h.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(f.h.tokens.auditor) });
      const local = logs.json<{ logs: Array<{ name: string; archive: Record<string, unknown> }> }>().logs.find((l) => l.name === 'local')!;
      assert.equal(local.archive['location'], 's3://vault-archive/custody');
      assert.deepEqual(local.archive['storageClasses'], ['GLACIER']);
      assert.equal(local.archive['archivedBundles'], 3);
    });

    test('the retention overview and a purge of GLACIER bundles start no restore: they use the facts recorded at archiving', async () => {
      const restoresBefore = fake.restores.length;
      const now = Date.now() + 400 * DAY;
      const o = await f.h.retention.overview(now);
      const local = o.logs.find((l) => l.log === 'local')!;
      assert.equal(local.problem, undefined);
      assert.deepEqual(local.purgeable, { from: 0, to: 768, count: 768, bundles: 3 });
      assert.deepEqual(local.oldest, { index: 0, received: new Date(f.tA).toISOString() });
      const p = await f.h.retention.purge('local', CTX, { now });
      assert.deepEqual([p.from, p.to, p.blobsRemoved], [0, 768, 1]);
      assert.equal(fake.restores.length, restoresBefore, 'no RestoreObject');
      const left = [...fake.objects.keys()].filter((k) => k.startsWith('vault-archive/'));
      assert.deepEqual(left, [], 'the archived bundles and blob were deleted');
    });
  });
});
