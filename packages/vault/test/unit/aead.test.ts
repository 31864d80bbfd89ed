/** Sealed objects: a fresh data key per object, bound to its position. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { seal, open, type Kek } from '../../src/crypto/aead.js';
import { CustodyError } from '../../src/errors.js';

const kek: Kek = { id: 7, key: randomBytes(32) };
const lookup = (id: number): Kek => {
  if (id !== 7) throw new CustodyError('KEYRING', 'unknown key');
  return kek;
};
const isCorrupt = (e: unknown) => e instanceof CustodyError && e.code === 'STORAGE_CORRUPT';

test('seal and open round-trip; the ciphertext hides the content and differs each time', () => {
  const msg = Buffer.from('a record that must not be readable at rest');
  const a = seal(kek, 'bundle x 1 256', msg);
  const b = seal(kek, 'bundle x 1 256', msg);
  assert.notDeepEqual(a, b);
  assert.ok(!a.includes('must not be readable'));
  assert.deepEqual(open(lookup, 'bundle x 1 256', a, 'test'), msg);
});

test('any flipped byte, a truncation or another position is caught', () => {
  const s = seal(kek, 'bundle x 1 256', Buffer.from('content'));
  for (let i = 0; i < s.length; i++) {
    const t = Buffer.from(s);
    t[i]! ^= 0x80;
    assert.throws(() => open(lookup, 'bundle x 1 256', t, 'test'), (e: unknown) => isCorrupt(e) || (e instanceof CustodyError && e.code === 'KEYRING'), `byte ${i}`);
  }
  assert.throws(() => open(lookup, 'bundle x 1 256', s.subarray(0, s.length - 1), 'test'), isCorrupt);
  assert.throws(() => open(lookup, 'bundle x 2 256', s, 'test'), isCorrupt);
});
