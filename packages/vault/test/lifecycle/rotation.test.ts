/**
 * Rotating a log's KEK (`log.rotate-keys`): the running integrator seals the bundles it writes
 * after the rotation with the new KEK — read from the KEK id in each sealed header — blobs too;
 * old and new objects both read back (also after a restart, and by the search follower that
 * started before the rotation); the signing key, the log's identity, does not change.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { openCheckpoint, parseVerifierKey } from '@custody/verify';
import { isCustodyError } from '../../src/errors.js';
import { verifyJson } from '../support/server.js';
import { openHarness, append, records, bigRecord, bearer, auditRecords, CTX, type Harness } from './harness.js';

/** The KEK id in a sealed object's header ("CSTE" | version | flags | kekId u32 …, crypto/aead.ts). */
function kekIdOf(sealed: Buffer): number {
  assert.equal(sealed.subarray(0, 4).toString(), 'CSTE');
  return sealed.readUInt32BE(6);
}

describe('KEK rotation', () => {
  let h: Harness;
  let vkey: string;
  const oldBig = bigRecord('before-rotation');
  const newBig = bigRecord('after-rotation');
  const blobPath = (r: string): string => h.vault.sequencer('local').store.blobPath(createHash('sha256').update(r).digest('hex'));

  before(async () => {
    h = await openHarness({ search: true });
    vkey = h.vault.sequencer('local').verifierKey;
    const r = records(266, 'old');
    r[5] = oldBig;
    await append(h, r); // bundle 0 full, bundle 1 partial (10), sealed with KEK 1
  });
  after(() => h?.close());

  test('the action validates, describes, and rotates; the keyring keeps the old KEK', async () => {
    const a = h.vault.actions.get('log.rotate-keys');
    assert.throws(() => a.validate({ log: 'local', signing: true }), (e: unknown) => isCustodyError(e, 'BAD_REQUEST'));
    assert.throws(() => a.validate({ log: 'nope' }), (e: unknown) => isCustodyError(e, 'LOG_NOT_FOUND'));
    assert.match(a.describe({ log: 'local' }), /^Rotate the encryption key \(KEK\) of local/);
    const res = await a.execute(a.validate({ log: 'local' }), CTX);
    assert.equal(res['kekId'], 2);
    assert.equal(res['previousKekId'], 1);
    const ring = JSON.parse(readFileSync(join(h.dataDir, 'keyring.json'), 'utf8')) as { logs: Record<string, { keks: Array<{ id: number; key: string }> }> };
    assert.deepEqual(ring.logs['local']!.keks.map((k) => k.id), [1, 2]);
    assert.deepEqual(ring.logs['audit']!.keks.map((k) => k.id), [1], 'other logs are untouched');
    for (const k of ring.logs['local']!.keks) assert.equal(JSON.stringify(res).includes(k.key), false, 'no key material in the result');
    const ev = (await auditRecords(h)).find((e) => e['type'] === 'log.keys.rotated')!;
    assert.deepEqual([ev['log'], ev['kekId'], ev['previousKekId']], ['local', 2, 1]);
    for (const k of ring.logs['local']!.keks) assert.equal(JSON.stringify(ev).includes(k.key), false);
  });

  test('bundles and blobs written after the rotation carry the new KEK id; older ones the old', async () => {
    const r = records(256, 'new');
    r[100] = newBig; // entry 366
    await append(h, r); // entries 266–521: bundle 1 becomes full (written now), bundle 2 partial
    const store = h.vault.sequencer('local').store;
    assert.equal(kekIdOf((await store.readSealedBundle(0, 256))!), 1, 'bundle 0, sealed before the rotation');
    assert.equal(kekIdOf((await store.readSealedBundle(1, 256))!), 2, 'bundle 1, written by the integrator after it');
    assert.equal(kekIdOf((await store.readSealedBundle(2, 10))!), 2);
    assert.equal(kekIdOf(readFileSync(blobPath(oldBig))), 1);
    assert.equal(kekIdOf(readFileSync(blobPath(newBig))), 2);
  });

  test('both read back over the API, and the search follower (started before the rotation) indexes the new ones', async () => {
    for (const [i, want] of [[5, oldBig], [366, newBig]] as const) {
      const res = await h.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${i}`, headers: bearer(h.tokens.auditor) });
      assert.equal(res.statusCode, 200);
      assert.equal(res.json<{ record: string }>().record, want);
    }
    const old = await h.app.inject({ method: 'GET', url: '/logs/local/tile/entries/000', headers: bearer(h.tokens.auditor) });
    assert.equal(old.statusCode, 200);
    await h.search!.whenIndexed({ log: 'local', timeoutMs: 20_000 });
  });

  test('the signing key is not rotated: the same verifier key checks the new checkpoint', () => {
    const seq = h.vault.sequencer('local');
    assert.equal(seq.verifierKey, vkey);
    assert.equal(openCheckpoint(seq.checkpoint.text, parseVerifierKey(vkey)).checkpoint.size, 522);
  });

  test('after a restart: old and new read, new writes use the new KEK, verify passes; a second rotation adds KEK 3', async () => {
    await h.stop();
    h = await openHarness({ dataDir: h.dataDir, search: true });
    await append(h, records(300, 'later')); // bundle 2 becomes full
    const store = h.vault.sequencer('local').store;
    assert.equal(kekIdOf((await store.readSealedBundle(2, 256))!), 2);
    for (const i of [5, 366, 800]) {
      assert.equal((await h.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${i}`, headers: bearer(h.tokens.auditor) })).statusCode, 200);
    }
    const v = await verifyJson(['--data', h.dataDir, '--log', 'local'], { CUSTODY_TRUST_FILE: join(h.dataDir, 'trust.json') });
    assert.equal(v.code, 0, JSON.stringify(v.json.logs.map((l) => l.problems)));
    const res = await h.retention.rotate('local', CTX);
    assert.equal(res.kekId, 3);
    await append(h, records(256, 'third'));
    assert.equal(kekIdOf((await store.readSealedBundle(3, 256))!), 3);
    assert.equal(kekIdOf((await store.readSealedBundle(0, 256))!), 1);
    await h.search!.whenIndexed({ log: 'local', timeoutMs: 20_000 });
  });
});
