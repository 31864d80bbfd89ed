/** cosignature/v1 (C2SP tlog-cosignature): sign/verify round trip and every way it must fail. */
import assert from 'node:assert/strict';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  Ed25519CosignatureSigner,
  Ed25519NoteSigner,
  EMPTY_ROOT,
  KEY_TYPE_COSIGNATURE,
  addCosignatures,
  checkCosignatures,
  formatCheckpoint,
  formatSignatureLine,
  keyId,
  openCheckpoint,
  parseNote,
  parseSignatureLines,
  parseTlogSize,
  parseVerifierKey,
  signNote,
  utf8Encode,
  verifyCosignature,
  hashLeaf,
} from '../src/index.js';
import { assertCode } from './support/helpers.js';

const seed = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const ORIGIN = 'example.org/log';
const log = new Ed25519NoteSigner(ORIGIN, seed(1));
const w1 = new Ed25519CosignatureSigner('witness-one.example', seed(2));
const w2 = new Ed25519CosignatureSigner('witness-two.example', seed(3));
const body = formatCheckpoint({ origin: ORIGIN, size: 7, rootHash: hashLeaf(utf8Encode('x')), extensions: [] });
const otherBody = formatCheckpoint({ origin: ORIGIN, size: 7, rootHash: EMPTY_ROOT, extensions: [] });
const signed = signNote(body, [log]);

describe('cosignature/v1', () => {
  test('round trip: a witness cosigns, the line parses back, and it verifies with the witness key', () => {
    const sig = w1.sign(body, 1_700_000_000);
    const line = formatSignatureLine(sig);
    assert.match(line, /^\u2014 witness-one\.example [A-Za-z0-9+/]+=*\n$/);
    const [back] = parseSignatureLines(line);
    assert.equal(back!.keyId, keyId('witness-one.example', KEY_TYPE_COSIGNATURE, w1.publicKey));
    assert.equal(back!.signature.length, 72);
    assert.ok(verifyCosignature(body, back!, parseVerifierKey(w1.verifierKey)));
  });

  test('the signed message is "cosignature/v1\\ntime <T>\\n" + body, checked with node:crypto', () => {
    const T = 1_234_567_890;
    const sig = w1.sign(body, T);
    // 8-byte big-endian timestamp, then the Ed25519 signature.
    assert.equal(Buffer.from(sig.signature.subarray(0, 8)).readBigUInt64BE(), BigInt(T));
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(w1.publicKey)]);
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    assert.ok(nodeVerify(null, Buffer.from(`cosignature/v1\ntime ${T}\n${body}`), key, Buffer.from(sig.signature.subarray(8))));
    assert.ok(!nodeVerify(null, Buffer.from(`cosignature/v1\ntime ${T + 1}\n${body}`), key, Buffer.from(sig.signature.subarray(8))));
  });

  test('wrong key: another witness key (same name or not) does not verify it', () => {
    const sig = w1.sign(body, 1_700_000_000);
    assert.equal(verifyCosignature(body, sig, parseVerifierKey(w2.verifierKey)), false);
    const impostor = new Ed25519CosignatureSigner('witness-one.example', seed(9));
    assert.equal(verifyCosignature(body, sig, parseVerifierKey(impostor.verifierKey)), false);
    // The log's own key (type 0x01) is not a witness key at all.
    assertCode(() => verifyCosignature(body, sig, parseVerifierKey(log.verifierKey)), 'INVALID_ARGUMENT');
  });

  test('wrong time encoding: a changed timestamp, a little-endian one, or a timestamp above 2^63-1 fails', () => {
    const T = 1_700_000_000;
    const sig = w1.sign(body, T);
    const v = parseVerifierKey(w1.verifierKey);
    const plusOne = new Uint8Array(sig.signature);
    plusOne[7] = plusOne[7]! + 1;
    assert.equal(verifyCosignature(body, { ...sig, signature: plusOne }, v), false);
    const le = new Uint8Array(sig.signature);
    le.set(new Uint8Array(sig.signature.subarray(0, 8)).reverse(), 0);
    assert.equal(verifyCosignature(body, { ...sig, signature: le }, v), false);
    const huge = new Uint8Array(sig.signature);
    huge[0] = 0x80; // ≥ 2^63: tlog-cosignature forbids it
    assert.equal(verifyCosignature(body, { ...sig, signature: huge }, v), false);
    // Without the timestamp (a plain 64-byte Ed25519 signature) it is not a cosignature.
    assert.equal(verifyCosignature(body, { ...sig, signature: sig.signature.subarray(8) }, v), false);
  });

  test('body mismatch: a cosignature of one checkpoint does not verify on another', () => {
    const sig = w1.sign(body, 1_700_000_000);
    assert.equal(verifyCosignature(otherBody, sig, parseVerifierKey(w1.verifierKey)), false);
    assert.equal(verifyCosignature(body + 'extension\n', sig, parseVerifierKey(w1.verifierKey)), false);
  });
});

describe('cosigned checkpoints and the k-of-n policy', () => {
  const v1 = parseVerifierKey(w1.verifierKey);
  const v2 = parseVerifierKey(w2.verifierKey);

  test('appended cosignatures keep the log signature valid; checkCosignatures names who signed', () => {
    const text = addCosignatures(signed, [w1.sign(body, 1_700_000_001), w2.sign(body, 1_700_000_002)]);
    assert.equal(parseNote(text).signatures.length, 3);
    assert.equal(openCheckpoint(text, parseVerifierKey(log.verifierKey)).checkpoint.size, 7);
    const r = checkCosignatures(text, [v1, v2], 2);
    assert.equal(r.ok, true);
    assert.equal(r.cosigned, 2);
    assert.deepEqual(r.witnesses.map((w) => [w.name, w.status, w.timestamp]), [
      ['witness-one.example', 'signed', 1_700_000_001],
      ['witness-two.example', 'signed', 1_700_000_002],
    ]);
    // Adding the same witness again does not double its line.
    assert.equal(parseNote(addCosignatures(text, [w1.sign(body, 5)])).signatures.length, 3);
  });

  test('policy not met: one of two signed → ok with k=1, not with k=2; a missing witness is "missing"', () => {
    const text = addCosignatures(signed, [w1.sign(body, 1)]);
    assert.equal(checkCosignatures(text, [v1, v2], 1).ok, true);
    const r = checkCosignatures(text, [v1, v2], 2);
    assert.equal(r.ok, false);
    assert.equal(r.cosigned, 1);
    assert.equal(r.witnesses[1]!.status, 'missing');
    assertCode(() => checkCosignatures(text, [v1], 2), 'INVALID_ARGUMENT');
  });

  test('a cosignature over another checkpoint is reported "invalid" and does not count', () => {
    const forged = addCosignatures(signed, [{ ...w2.sign(otherBody, 1) }, w1.sign(body, 1)]);
    const r = checkCosignatures(forged, [v1, v2], 2);
    assert.equal(r.ok, false);
    assert.equal(r.witnesses[1]!.status, 'invalid');
    // openCheckpoint refuses it outright when the witness is trusted.
    assertCode(() => openCheckpoint(forged, parseVerifierKey(log.verifierKey), { witnesses: [v1, v2], quorum: 1 }), 'SIGNATURE_INVALID');
  });

  test('one key listed under two names counts once', () => {
    const alias = new Ed25519CosignatureSigner('alias.example', seed(2)); // w1's key, another name
    const text = addCosignatures(signed, [w1.sign(body, 1), alias.sign(body, 1)]);
    const r = checkCosignatures(text, [v1, parseVerifierKey(alias.verifierKey)], 2);
    assert.equal(r.cosigned, 1);
    assert.equal(r.ok, false);
  });

  test('hostile input: garbage signature lines and sizes are refused with codes', () => {
    assertCode(() => parseSignatureLines(''), 'MALFORMED_NOTE');
    assertCode(() => parseSignatureLines('no dash here\n'), 'MALFORMED_NOTE');
    assertCode(() => parseSignatureLines('\u2014 name !!!notbase64\n'), 'MALFORMED_NOTE');
    assertCode(() => parseSignatureLines('\u2014 name AAAA\n'), 'MALFORMED_NOTE');
    assertCode(() => checkCosignatures('not a note', [v1], 1), 'MALFORMED_NOTE');
    assert.equal(parseTlogSize('42\n'), 42);
    assert.equal(parseTlogSize('0\n'), 0);
    for (const bad of ['', '-1\n', '01\n', '4 2\n', '99999999999999999\n', 'abc']) assertCode(() => parseTlogSize(bad), 'INVALID_ARGUMENT', bad);
  });
});
