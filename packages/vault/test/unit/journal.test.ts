/** The sequencer journal: replay after a crash, torn tails cut, damage in the middle refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, statSync, truncateSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Journal } from '../../src/storage/journal.js';
import { encodeBundle, decodeBundle } from '@custody/verify';
import { CustodyError } from '../../src/errors.js';
import type { Kek } from '../../src/crypto/aead.js';

const kek: Kek = { id: 1, key: randomBytes(32) };
const lookup = (id: number): Kek => {
  if (id !== 1) throw new CustodyError('KEYRING', 'no such key');
  return kek;
};
const entries = (n: number, tag: string) => Array.from({ length: n }, (_, i) => Buffer.from(`${tag}-${i}-${'p'.repeat(i % 50)}`));

async function fresh() {
  const dir = mkdtempSync(join(tmpdir(), 'custody-journal-'));
  const { journal, batches } = await Journal.open(dir, () => kek, lookup, 'test/log');
  assert.equal(batches.length, 0);
  return { dir, journal };
}

test('batches replay in order after reopening', async () => {
  const { dir, journal } = await fresh();
  await journal.append(0, 3, [Buffer.from(encodeBundle(entries(3, 'a')))]);
  await journal.append(3, 100, [Buffer.from(encodeBundle(entries(100, 'b')))]);
  await journal.append(103, 1, [Buffer.from(encodeBundle(entries(1, 'c')))]);
  await journal.close();
  const { batches } = await Journal.open(dir, () => kek, lookup, 'test/log');
  assert.deepEqual(batches.map((b) => [b.firstIndex, b.count]), [[0, 3], [3, 100], [103, 1]]);
  assert.deepEqual(Buffer.from(decodeBundle(batches[1]!.plain, 100)[42]!), entries(100, 'b')[42]);
  rmSync(dir, { recursive: true });
});

test('a torn tail (a write that never finished, never acknowledged) is cut, and appends continue', async () => {
  for (const cut of [1, 7, 19, 50]) {
    const { dir, journal } = await fresh();
    await journal.append(0, 10, [Buffer.from(encodeBundle(entries(10, 'a')))]);
    await journal.append(10, 10, [Buffer.from(encodeBundle(entries(10, 'b')))]);
    await journal.close();
    const seg = join(dir, readdirSync(dir).find((f) => f.endsWith('.wal'))!);
    truncateSync(seg, statSync(seg).size - cut);
    const r = await Journal.open(dir, () => kek, lookup, 'test/log');
    assert.deepEqual(r.batches.map((b) => b.firstIndex), [0], `cut ${cut}`);
    await r.journal.append(10, 5, [Buffer.from(encodeBundle(entries(5, 'c')))]);
    await r.journal.close();
    const again = await Journal.open(dir, () => kek, lookup, 'test/log');
    assert.deepEqual(again.batches.map((b) => [b.firstIndex, b.count]), [[0, 10], [10, 5]]);
    await again.journal.close();
    rmSync(dir, { recursive: true });
  }
});

test('damage before the tail is refused: acknowledged entries would be lost', async () => {
  const { dir, journal } = await fresh();
  await journal.append(0, 10, [Buffer.from(encodeBundle(entries(10, 'a')))]);
  await journal.close();
  // a second segment makes the first one "not the last"
  const r = await Journal.open(dir, () => kek, lookup, 'test/log');
  await r.journal.append(10, 10, [Buffer.from(encodeBundle(entries(10, 'b')))]);
  await r.journal.close();
  const segs = readdirSync(dir).filter((f) => f.endsWith('.wal')).sort();
  assert.equal(segs.length, 2);
  const first = join(dir, segs[0]!);
  const b = readFileSync(first);
  b[b.length - 20]! ^= 0x01;
  writeFileSync(first, b);
  await assert.rejects(Journal.open(dir, () => kek, lookup, 'test/log'), (e: unknown) => e instanceof CustodyError && e.code === 'STORAGE_CORRUPT');
  rmSync(dir, { recursive: true });
});

test('the journal is encrypted at rest', async () => {
  const { dir, journal } = await fresh();
  await journal.append(0, 1, [Buffer.from(encodeBundle([Buffer.from('SECRET-RECORD-CONTENT')]))]);
  await journal.close();
  for (const f of readdirSync(dir)) assert.ok(!readFileSync(join(dir, f)).includes('SECRET-RECORD-CONTENT'));
  const wrong: Kek = { id: 1, key: randomBytes(32) };
  await assert.rejects(Journal.open(dir, () => wrong, () => wrong, 'test/log'), (e: unknown) => e instanceof CustodyError && e.code === 'STORAGE_CORRUPT');
  rmSync(dir, { recursive: true });
});

test('trim drops segments the checkpoint covers', async () => {
  const { dir, journal } = await fresh();
  await journal.append(0, 10, [Buffer.from(encodeBundle(entries(10, 'a')))]);
  await journal.close();
  const r = await Journal.open(dir, () => kek, lookup, 'test/log');
  await r.journal.append(10, 10, [Buffer.from(encodeBundle(entries(10, 'b')))]);
  await r.journal.trim(10);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.wal')), ['0000000000000010.wal']);
  await r.journal.close();
  rmSync(dir, { recursive: true });
});

test('segments rotate at their size limit and go once integrated; replay still sees everything left', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-journal-'));
  const { journal } = await Journal.open(dir, () => kek, lookup, 'test/log', { rotateBytes: 600 });
  let at = 0;
  for (let b = 0; b < 12; b++) {
    await journal.append(at, 20, [Buffer.from(encodeBundle(entries(20, `r${b}`)))]);
    at += 20;
  }
  const segs = () => readdirSync(dir).filter((f) => f.endsWith('.wal')).sort();
  assert.ok(segs().length > 3, `rotated into ${segs().length} segments`);
  await journal.trim(120);
  const left = segs();
  assert.ok(left.length < 12 && left.every((f) => Number(f.slice(0, 16)) + 0 >= 100), left.join(','));
  await journal.close();
  const again = await Journal.open(dir, () => kek, lookup, 'test/log');
  const starts = again.batches.map((b) => b.firstIndex);
  assert.ok(starts[0]! <= 120, 'every entry beyond the trimmed size is still there');
  assert.equal(starts[starts.length - 1], 220);
  await again.journal.close();
  rmSync(dir, { recursive: true });
});
