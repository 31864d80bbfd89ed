/**
 * Sealed objects are compressed before they are encrypted (crypto/compress.ts, docs/FORMAT.md):
 * objects written before that still read, new ones are smaller, tampering is still caught by
 * AES-GCM, and an object crafted to inflate hugely is refused without exhausting memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, gunzipSync, constants } from 'node:zlib';
import { decodeBundle, encodeBundle, tilePath } from '@custody/verify';
import { seal, open, wrapDek, SEALED_HEADER_SIZE, type Kek } from '../../src/crypto/aead.js';
import { FLAG_BROTLI, MAX_SEALED_PLAINTEXT } from '../../src/crypto/compress.js';
import { LogKeys } from '../../src/crypto/keyring.js';
import { PosixLogStore } from '../../src/storage/posix.js';
import { CustodyError } from '../../src/errors.js';
import { ROOT } from '../support/server.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples', 'cloudtrail');
const ORIGIN = 'fixture.example/local';

function keysWith(kek: Kek): LogKeys {
  return new LogKeys('local', randomBytes(32), [kek], randomBytes(32));
}

function tempStore(t: { after(fn: () => void): void }, kek: Kek): PosixLogStore {
  const dir = mkdtempSync(join(tmpdir(), 'custody-compress-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return new PosixLogStore(dir, ORIGIN, keysWith(kek));
}

const isCorrupt = (re?: RegExp) => (e: unknown) => e instanceof CustodyError && e.code === 'STORAGE_CORRUPT' && (!re || re.test(e.message));

/**
 * A sealed object with any plaintext and flags, exactly as aead.ts lays it out — what an insider
 * holding the keyring could write.
 */
function sealRaw(kek: Kek, context: string, data: Buffer, flags: number): Buffer {
  const dek = randomBytes(32);
  const header = wrapDek(kek, dek, flags);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', dek, iv);
  c.setAAD(Buffer.concat([header, Buffer.from(context)]));
  return Buffer.concat([header, iv, c.update(data), c.final(), c.getAuthTag()]);
}

/** Entries of CloudTrail sample records in custody-entry/v1 envelopes, as the vault stores them. */
function cloudTrailEntries(n: number): Buffer[] {
  const records: string[] = [];
  for (const f of readdirSync(join(SAMPLES, 'grycap_974349055189')).sort()) {
    const text = gunzipSync(readFileSync(join(SAMPLES, 'grycap_974349055189', f))).toString('utf8');
    for (const r of (JSON.parse(text) as { Records: unknown[] }).Records) records.push(JSON.stringify(r));
  }
  assert.ok(records.length >= n, `${records.length} sample records`);
  return records.slice(0, n).map((r, i) =>
    Buffer.from(`custody-entry/v1\nlog ${ORIGIN}\nregion local\nsource aws.cloudtrail\nproducer vector\nreceived 2026-01-01T00:00:${String(i % 60).padStart(2, '0')}.000Z\nsalt ${randomBytes(16).toString('base64')}\n\n${r}`),
  );
}

/**
 * Fixture: a 3-entry bundle sealed by the code before compression existed (git e727951,
 * crypto/aead.ts `seal`), with the KEK below (id 1, 32 × 0x42), context
 * "bundle fixture.example/local 0 3". Flags byte 0.
 */
const OLD_KEK: Kek = { id: 1, key: Buffer.alloc(32, 0x42) };
const OLD_BUNDLE = Buffer.from(
  'Q1NURQEAAAAAAec9KId21JyR6bhyHqnlPtpkCav4Xz4ukV9aOuglyqreI/97NjO9D2Sk1CI96XWPwNEMiH4twQlqisbmxQQiAc0I' +
    'LErUHIvs0BnGE7DbZfxDljjxi4HerrIT+IKM5WxHFm7mdCQ3t8kSktPF7smIXijXPgTZJ4cyhA/Pgy4r0yj89+5sJJnNak3ojr5m' +
    'as5rjGBmUJaWMUt24apq4/SHjpdRxR8lLOUCS2l/uRta/8ML1IqK9wARRq1/WW0Gw0Y6Xnksl6jTXgd602j0BCGqmKUKiI+8AQ12' +
    '0uJS99+tIjlRHkr5da8r4GA05o27MlJx1q3sip1gMk2R4JpUSx+AB7tV75Hrwyc3nuUVjP2NQ5Lnmy30rWjUanAYGQZvJJf6N3/s' +
    'Y7FgYePKtv1JZwRZ7Kau3OZBa0q5hgDhpsNfVuezU9solu/19chXEV+8/T6FmqA81F3mgRFygqFx5l5KBR1W0BRwwMIcl3dnWxOE' +
    'doWPgrQoNTZT5mp0p2SU0c/m1+Z1gcETnoz6rb6tvKB1fzNZqXpt8bjC5UpX7yynB5O7XxpjN4hj9MAslhTEInL8UF9E8z+wVkRa' +
    '/wxGGqFKQb1UrARbrCUtrSuUYM1HPBxq75fcRaHbH2FS6DilDrYZ15r1bJCHHLL9NnyLYp1m1d3GpcfhvufVGk/4M6soCKWqGohW' +
    '1AaJN74ogkUYVlm4PdUhSUuPYOUmSxAvQLhcswS1YHVBDJYaOwvhCUNzBWitxMWxy6zB2NQJNO8QnQHI4W7/n45PdTcH5Xt0aBFo' +
    'dDi5ZyLd/vw2TZAFDqtdUATRhcFuGnEBcc0KHZc9I3Sn',
  'base64',
);

test('a bundle sealed before compression existed (flags 0) still reads through the store', async (t) => {
  assert.equal(OLD_BUNDLE[5], 0, 'the fixture has no format flags');
  const store = tempStore(t, OLD_KEK);
  const key = tilePath({ level: 'entries', index: 0, width: 3 });
  await store.writeAll([{ key, data: OLD_BUNDLE }]);
  const entries = decodeBundle((await store.readBundle(0, 3))!, 3).map((e) => Buffer.from(e).toString('utf8'));
  assert.equal(entries.length, 3);
  assert.match(entries[0]!, /^custody-entry\/v1\nlog fixture\.example\/local\n/);
  assert.match(entries[1]!, /"eventName":"AssumeRole","n":2\}$/);
  assert.match(entries[2]!, /"eventName":"GetObject","n":3\}$/);
  // and a new object sealed now with the same key is compressed, and reads the same way
  const again = seal(OLD_KEK, `bundle ${ORIGIN} 0 3`, encodeBundle(entries.map((e) => Buffer.from(e))));
  assert.equal(again[5], FLAG_BROTLI);
  assert.deepEqual(open(() => OLD_KEK, `bundle ${ORIGIN} 0 3`, again, 'again'), await store.readBundle(0, 3));
});

test('a full bundle of CloudTrail entries is stored at a fraction of its size and reads back exactly', async (t) => {
  const kek: Kek = { id: 1, key: randomBytes(32) };
  const store = tempStore(t, kek);
  const entries = cloudTrailEntries(256);
  const plain = Buffer.from(encodeBundle(entries));
  await store.writeAll([store.bundleWrite(0, [plain.subarray(0, 1000), plain.subarray(1000)], 256)]);
  const sealed = (await store.readSealedBundle(0, 256))!;
  assert.equal(sealed.subarray(0, 4).toString(), 'CSTE');
  assert.equal(sealed[5], FLAG_BROTLI, 'the flags byte says Brotli');
  const ratio = sealed.length / plain.length;
  t.diagnostic(`256 CloudTrail entries: ${plain.length} B plaintext → ${sealed.length} B sealed (${ratio.toFixed(3)})`);
  assert.ok(ratio < 0.25, `sealed/plain = ${ratio}`);
  assert.deepEqual(await store.readBundle(0, 256), plain);
  // a partial request is served from the full bundle, decompressed
  assert.deepEqual(decodeBundle((await store.readBundle(0, 10))!, 10).map((e) => Buffer.from(e)), entries.slice(0, 10));
  // the compressed ciphertext shows no record content
  assert.ok(!sealed.includes('eventName') && !sealed.includes('974349055189'));
});

test('objects that do not shrink are stored uncompressed (flags 0); blobs are compressed too', async (t) => {
  const kek: Kek = { id: 1, key: randomBytes(32) };
  const store = tempStore(t, kek);
  const noise = randomBytes(200_000);
  const s = seal(kek, 'blob x', noise);
  assert.equal(s[5], 0);
  assert.equal(s.length, noise.length + SEALED_HEADER_SIZE + 28);
  assert.deepEqual(open(() => kek, 'blob x', s, 'noise'), noise);

  const big = Buffer.from(JSON.stringify({ Records: cloudTrailEntries(120).map((e) => e.toString()) }));
  assert.ok(big.length > 65_535, 'a record that must be a blob');
  const sha = await store.writeBlob(big);
  const file = readFileSync(store.blobPath(sha));
  assert.equal(file[5], FLAG_BROTLI);
  assert.ok(file.length < big.length / 4, `blob ${big.length} → ${file.length}`);
  assert.deepEqual(await store.readBlob(sha), big);
  const empty = seal(kek, 'blob e', Buffer.alloc(0));
  assert.equal(open(() => kek, 'blob e', empty, 'empty').length, 0);
});

test('tampering with a compressed sealed bundle is caught: every flipped byte, the flags, a truncation, another position', async (t) => {
  const kek: Kek = { id: 1, key: randomBytes(32) };
  const store = tempStore(t, kek);
  const plain = Buffer.from(encodeBundle(cloudTrailEntries(40)));
  await store.writeAll([store.bundleWrite(5, [plain], 40)]);
  const path = join(store.treeDir, tilePath({ level: 'entries', index: 5, width: 40 }));
  const good = readFileSync(path);
  assert.equal(good[5], FLAG_BROTLI);
  const ctx = `bundle ${ORIGIN} 5 40`;
  const tryOpen = (b: Buffer) => open(store['keys'].lookup, ctx, b, 'bundle 5');
  // every byte (the key id byte gives KEYRING: no such key)
  for (let i = 0; i < good.length; i += i < SEALED_HEADER_SIZE + 12 ? 1 : 7) {
    const bad = Buffer.from(good);
    bad[i]! ^= 0x01;
    assert.throws(() => tryOpen(bad), (e: unknown) => isCorrupt()(e) || (e instanceof CustodyError && e.code === 'KEYRING'), `byte ${i}`);
  }
  // clearing the compression flag does not make the ciphertext read as plaintext
  const unflagged = Buffer.from(good);
  unflagged[5] = 0;
  assert.throws(() => tryOpen(unflagged), isCorrupt());
  assert.throws(() => tryOpen(good.subarray(0, good.length - 1)), isCorrupt());
  assert.throws(() => open(store['keys'].lookup, `bundle ${ORIGIN} 6 40`, good, 'moved'), isCorrupt(/moved from another position/));
  // through the store, the same
  writeFileSync(path, Buffer.concat([good.subarray(0, 200), Buffer.from([good[200]! ^ 0xff]), good.subarray(201)]));
  await assert.rejects(store.readBundle(5, 40), isCorrupt(/fails authentication/));
});

test('a sealed object that inflates beyond any bundle is refused as STORAGE_CORRUPT without using the memory', async (t) => {
  const kek: Kek = { id: 1, key: randomBytes(32) };
  const store = tempStore(t, kek);
  // 1 GiB of zeros in a few hundred kB of Brotli, compressed in 64 MiB steps (a stream)
  const zeros = Buffer.alloc(64 * 2 ** 20);
  const { createBrotliCompress } = await import('node:zlib');
  const bomb = await new Promise<Buffer>((resolve, reject) => {
    const z = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 1 } });
    const out: Buffer[] = [];
    z.on('data', (c: Buffer) => out.push(c)).on('end', () => resolve(Buffer.concat(out))).on('error', reject);
    let n = 0;
    const pump = (): void => {
      while (n < 16) {
        n++;
        if (!z.write(zeros)) return void z.once('drain', pump);
      }
      z.end();
    };
    pump();
  });
  t.diagnostic(`bomb: ${bomb.length} bytes inflate to 1 GiB`);
  assert.ok(bomb.length < 8 * 2 ** 20);
  const key = tilePath({ level: 'entries', index: 0, width: 256 });
  await store.writeAll([{ key, data: sealRaw(kek, `bundle ${ORIGIN} 0 256`, bomb, FLAG_BROTLI) }]);
  const before = process.memoryUsage();
  await assert.rejects(store.readBundle(0, 256), isCorrupt(new RegExp(`inflates to more than ${MAX_SEALED_PLAINTEXT} bytes`)));
  const after = process.memoryUsage();
  const grew = Math.max(after.rss - before.rss, after.arrayBuffers - before.arrayBuffers);
  t.diagnostic(`memory growth while refusing it: ${(grew / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(after.arrayBuffers - before.arrayBuffers < 64 * 2 ** 20, 'no more than the cap was inflated');
  assert.ok(after.rss - before.rss < 256 * 2 ** 20);

  // just past the cap is refused; exactly at the cap is a (valid-size) bundle
  const over = brotliCompressSync(Buffer.alloc(MAX_SEALED_PLAINTEXT + 1));
  assert.throws(() => open(() => kek, 'x', sealRaw(kek, 'x', over, FLAG_BROTLI), 'over'), isCorrupt(/inflates to more than/));
  const at = brotliCompressSync(Buffer.alloc(MAX_SEALED_PLAINTEXT));
  assert.equal(open(() => kek, 'x', sealRaw(kek, 'x', at, FLAG_BROTLI), 'at').length, MAX_SEALED_PLAINTEXT);
  // authenticated garbage under the Brotli flag, and a flag this version does not know
  assert.throws(() => open(() => kek, 'x', sealRaw(kek, 'x', randomBytes(1000), FLAG_BROTLI), 'garbage'), isCorrupt(/does not decompress/));
  assert.throws(() => open(() => kek, 'x', sealRaw(kek, 'x', Buffer.from('plain'), 0x02), 'future'), isCorrupt(/newer version of Custody/));
});

test('the benchmark switch (sealing off) writes marked plaintext that a normal vault refuses to read', (t) => {
  const kek: Kek = { id: 1, key: randomBytes(32) };
  const saved = process.env['CUSTODY_BENCH_PLAINTEXT_BUNDLES'];
  t.after(() => {
    if (saved === undefined) delete process.env['CUSTODY_BENCH_PLAINTEXT_BUNDLES'];
    else process.env['CUSTODY_BENCH_PLAINTEXT_BUNDLES'] = saved;
  });
  process.env['CUSTODY_BENCH_PLAINTEXT_BUNDLES'] = '1';
  const p = seal(kek, 'bundle x 0 1', [Buffer.from('\x00\x05hello')]);
  assert.equal(p.subarray(0, 4).toString(), 'CSTP');
  assert.equal(open(() => kek, 'bundle x 0 1', p, 'p').toString(), '\x00\x05hello');
  delete process.env['CUSTODY_BENCH_PLAINTEXT_BUNDLES'];
  assert.throws(() => open(() => kek, 'bundle x 0 1', p, 'p'), isCorrupt(/benchmark run with sealing off/));
  assert.equal(seal(kek, 'bundle x 0 1', [Buffer.from('\x00\x05hello')]).subarray(0, 4).toString(), 'CSTE');
});
