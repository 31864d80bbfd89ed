/**
 * The S3 object layer (storage/s3/object-store.ts) against the real S3 with Object Lock (Ceph
 * RGW from ../shared/tools/start-ceph-s3.sh), with the vault's own credentials — the only
 * credentials this S3 has: a stored object can be neither deleted nor replaced, and reads
 * return the first version whatever was written or "deleted" after it. The retry schedule is
 * tested against a local HTTP server answering like a throttling S3 (the real SDK talks to it).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import {
  DeleteObjectCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  GetObjectRetentionCommand,
  GetObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { S3ObjectStore, isRetryable } from '../../src/storage/s3/object-store.js';
import { isCustodyError } from '../../src/errors.js';
import { startCeph, type CephS3 } from '../support/ceph.js';

let ceph: CephS3;

before(async () => {
  ceph = await startCeph('objstore');
});
after(async () => {
  await ceph?.stop();
});

const DAY = 86_400_000;

async function sdkError(p: Promise<unknown>): Promise<{ name: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: err.name, status: err.$metadata?.httpStatusCode };
  }
  assert.fail('the S3 call was expected to be refused, but it succeeded');
}

test('an immutable object is locked in COMPLIANCE mode until the retention date, with its bytes intact', async () => {
  const bucket = await ceph.lockedBucket('lock');
  const store = new S3ObjectStore({ bucket, prefix: 'custody/', client: ceph.client() });
  const body = randomBytes(4096);
  const until = new Date(Date.now() + 2 * DAY);
  const put = await store.putImmutable('log-a/tile/entries/000', body, until);
  assert.ok(put.versionId, 'an Object Lock bucket is versioned: the write has a version id');
  const r = await store.retention('log-a/tile/entries/000');
  assert.equal(r.mode, 'COMPLIANCE');
  assert.ok(r.retainUntil && Math.abs(r.retainUntil.getTime() - until.getTime()) < 2000, `retain-until ${r.retainUntil?.toISOString()} ≈ ${until.toISOString()}`);
  assert.deepEqual(await store.read('log-a/tile/entries/000'), body);
  const listed = [];
  for await (const o of store.list('log-a/')) listed.push(o);
  assert.deepEqual(listed, [{ key: 'log-a/tile/entries/000', size: 4096 }]);
  assert.equal(await store.read('log-a/tile/entries/001'), null, 'a missing key reads as null');
  store.close();
});

test("with the vault's own credentials a stored object cannot be deleted, shortened or replaced", async () => {
  const bucket = await ceph.lockedBucket('nodelete');
  const client = ceph.client();
  const store = new S3ObjectStore({ bucket, prefix: 'custody/', client });
  const key = 'custody/log-a/tile/0/000';
  const original = Buffer.from('the tile the checkpoint commits to');
  const { versionId } = await store.putImmutable('log-a/tile/0/000', original, new Date(Date.now() + DAY));
  assert.ok(versionId);

  // Deleting the locked version: refused.
  const del = await sdkError(client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId })));
  assert.equal(del.status, 403, `deleting a COMPLIANCE-locked version: ${del.name}`);
  // … also when asking to bypass governance retention (COMPLIANCE has no bypass).
  const bypass = await sdkError(client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId, BypassGovernanceRetention: true })));
  assert.equal(bypass.status, 403, `bypass-governance delete: ${bypass.name}`);
  // Shortening the retention: refused.
  const shorten = await sdkError(
    client.send(new PutObjectRetentionCommand({ Bucket: bucket, Key: key, VersionId: versionId, Retention: { Mode: 'COMPLIANCE', RetainUntilDate: new Date(Date.now() + 60_000) } })),
  );
  assert.equal(shorten.status, 403, `shortening COMPLIANCE retention: ${shorten.name}`);
  const still = await client.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  assert.equal(still.Retention?.Mode, 'COMPLIANCE');
  assert.ok(still.Retention!.RetainUntilDate!.getTime() > Date.now() + DAY - 120_000, 'the retention date did not move');

  // A plain DELETE only adds a delete marker, and a PUT to the same key only adds a version:
  // the original stays, and the store reads it and says how many later versions exist.
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  assert.equal(await store.read('log-a/tile/0/000'), null, 'the current version is now a delete marker');
  const forged = Buffer.from('a rewritten tile');
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: forged, ContentMD5: createHash('md5').update(forged).digest('base64') }));
  assert.deepEqual(await store.read('log-a/tile/0/000'), forged, 'a plain GET returns the newest version …');
  const orig = await store.readOriginal('log-a/tile/0/000');
  assert.ok(orig);
  assert.deepEqual(orig.body, original, '… while readOriginal returns the first one');
  assert.equal(orig.versionId, versionId);
  assert.equal(orig.later, 2, 'a delete marker and a second version came after it');
  const byVersion = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  assert.deepEqual(Buffer.from(await byVersion.Body!.transformToByteArray()), original);
  client.destroy();
});

test('writes to a missing bucket fail at once with a clear STORAGE_UNAVAILABLE', async () => {
  const store = new S3ObjectStore({ bucket: 'custody-no-such-bucket-here', prefix: '', client: ceph.client() });
  await assert.rejects(store.putImmutable('a', Buffer.from('a'), new Date(Date.now() + DAY)), (e: unknown) => {
    assert.ok(isCustodyError(e, 'STORAGE_UNAVAILABLE'));
    assert.match((e as Error).message, /no such bucket/);
    return true;
  });
  assert.equal(store.retries.length, 0, 'a missing bucket is not retried');
  store.close();
});

test('bad bucket names, prefixes and keys are refused before any request', () => {
  assert.throws(() => new S3ObjectStore({ bucket: 'Bad_Bucket', prefix: '' }), (e: unknown) => isCustodyError(e, 'CONFIG'));
  assert.throws(() => new S3ObjectStore({ bucket: 'ok-bucket', prefix: '/abs/' }), (e: unknown) => isCustodyError(e, 'CONFIG'));
  assert.throws(() => new S3ObjectStore({ bucket: 'ok-bucket', prefix: 'noslash' }), (e: unknown) => isCustodyError(e, 'CONFIG'));
  const s = new S3ObjectStore({ bucket: 'ok-bucket', prefix: 'p/', client: ceph.client() });
  for (const k of ['', '/a', 'a//b', 'a/../b', './a']) {
    assert.rejects(s.read(k), (e: unknown) => isCustodyError(e, 'INTERNAL'), `key ${JSON.stringify(k)}`);
  }
  s.close();
});

// ---- the retry schedule, against a server that throttles like S3 ----

interface Throttler {
  url: string;
  requests: number;
  /** How to answer request n (1-based). */
  answer: (n: number, req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

async function throttler(answer: Throttler['answer']): Promise<Throttler> {
  const t: Throttler = { url: '', requests: 0, answer, close: async () => {} };
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => t.answer(++t.requests, req, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.close = () => new Promise<void>((r) => server.close(() => r()));
  return t;
}

function s3Error(res: ServerResponse, status: number, code: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message><RequestId>r1</RequestId></Error>`);
}

function localClient(url: string): S3Client {
  return new S3Client({
    endpoint: url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
}

test('503 SlowDown is retried with growing, jittered waits, then succeeds', async () => {
  const t = await throttler((n, _req, res) => {
    if (n <= 3) return s3Error(res, 503, 'SlowDown');
    res.writeHead(200, { etag: '"abc"', 'x-amz-version-id': 'v1' });
    res.end();
  });
  const waits: number[] = [];
  const store = new S3ObjectStore({ bucket: 'b-test', prefix: '', client: localClient(t.url), sleep: async (ms) => void waits.push(ms), random: () => 0.999 });
  const r = await store.putImmutable('k', Buffer.from('x'), null);
  assert.equal(r.versionId, 'v1');
  assert.equal(t.requests, 4);
  assert.deepEqual(store.retries.map((x) => x.error), ['SlowDown', 'SlowDown', 'SlowDown']);
  assert.deepEqual(waits, [49, 99, 199], 'waits double from the base (full jitter, random→1)');
  store.close();
  await t.close();
});

test('a throttling that outlasts the deadline ends in STORAGE_UNAVAILABLE with a Retry-After, not an endless queue', async () => {
  const t = await throttler((_n, _req, res) => s3Error(res, 503, 'SlowDown'));
  const store = new S3ObjectStore({ bucket: 'b-test', prefix: '', client: localClient(t.url), retryDeadlineMs: 300, backoffBaseMs: 10, backoffCapMs: 40 });
  await assert.rejects(store.putImmutable('k', Buffer.from('x'), null), (e: unknown) => {
    assert.ok(isCustodyError(e, 'STORAGE_UNAVAILABLE'), String(e));
    const d = (e as { details?: Record<string, unknown> }).details!;
    assert.equal(d['s3Error'], 'SlowDown');
    assert.ok(typeof d['retryAfter'] === 'number' && d['retryAfter'] >= 1);
    assert.ok((d['attempts'] as number) >= 3, `retried ${String(d['attempts'])} times within the deadline`);
    return true;
  });
  store.close();
  await t.close();
});

test('every immutable write carries Content-MD5 (AWS requires it with Object Lock headers) and the lock headers', async () => {
  // Ceph RGW 16 accepts Object Lock PUTs without a checksum; AWS S3 does not. So the request
  // itself is checked here.
  const seen: Array<Record<string, string | string[] | undefined>> = [];
  const t = await throttler((_n, req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { etag: '"abc"' });
    res.end();
  });
  const store = new S3ObjectStore({ bucket: 'b-test', prefix: 'custody/', client: localClient(t.url) });
  const body = randomBytes(1000);
  const until = new Date(Date.now() + 3 * DAY);
  await store.putImmutable('log/tile/entries/000', body, until);
  assert.equal(seen.length, 1);
  const h = seen[0]!;
  assert.equal(h['content-md5'], createHash('md5').update(body).digest('base64'));
  assert.equal(h['x-amz-object-lock-mode'], 'COMPLIANCE');
  assert.ok(Math.abs(new Date(String(h['x-amz-object-lock-retain-until-date'])).getTime() - until.getTime()) < 1000, 'the retain-until date is the one asked for');
  store.close();
  await t.close();
});

test('AccessDenied and other 4xx are not retried', async () => {
  const t = await throttler((_n, _req, res) => s3Error(res, 403, 'AccessDenied'));
  const store = new S3ObjectStore({ bucket: 'b-test', prefix: '', client: localClient(t.url), sleep: async () => {} });
  await assert.rejects(store.putImmutable('k', Buffer.from('x'), null), (e: unknown) => {
    assert.ok(isCustodyError(e, 'STORAGE_UNAVAILABLE'));
    assert.match((e as Error).message, /access was denied/);
    return true;
  });
  assert.equal(t.requests, 1);
  assert.equal(isRetryable({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }), false);
  assert.equal(isRetryable({ name: 'InternalError', $metadata: { httpStatusCode: 500 } }), true);
  assert.equal(isRetryable({ name: 'Error', code: 'ECONNRESET' }), true);
  store.close();
  await t.close();
});
