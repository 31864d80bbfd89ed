/** signed-note, verifier keys, cosignatures, openNote/openCheckpoint policy. */
import assert from 'node:assert/strict';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  Ed25519CosignatureSigner,
  Ed25519NoteSigner,
  KEY_TYPE_COSIGNATURE,
  KEY_TYPE_ED25519,
  cosignatureTimestamp,
  formatCheckpoint,
  formatNote,
  fromBase64,
  keyId,
  openCheckpoint,
  openNote,
  parseNote,
  parseVerifierKey,
  signNote,
  toBase64,
  utf8Encode,
  verifierKeyString,
} from '../src/index.js';
import { assertCode } from './support/helpers.js';

// C2SP signed-note, "Verifier keys" example (also in the tests of several implementations).
const SPEC_VKEY = 'example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k';
const SPEC_NOTE =
  'This is an example message.\n\n' + '\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n';

// golang.org/x/mod/sumdb/note: package documentation and note_test.go (TestOpen).
const GO_DIR = '/usr/share/gocode/src/golang.org/x/mod/sumdb/note';
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_SKEY_SEED = 'EKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz'; // after the 0x01 type byte: "AYEKFALV..."
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG = '\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const ENOCH_SIG = '\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';

function peterSeed(): Uint8Array {
  const raw = fromBase64('AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz', 33);
  assert.equal(raw[0], 1);
  return raw.subarray(1);
}

describe('signed-note spec vector', () => {
  test('the verifier key parses', () => {
    const v = parseVerifierKey(SPEC_VKEY);
    assert.equal(v.name, 'example.com/foo');
    assert.equal(v.keyId, 0x530d903a);
    assert.equal(v.type, KEY_TYPE_ED25519);
    assert.equal(v.publicKey.length, 32);
    assert.equal(verifierKeyString(v.name, v.publicKey), SPEC_VKEY);
    assert.equal(keyId(v.name, KEY_TYPE_ED25519, v.publicKey), 0x530d903a);
  });

  test('the example message verifies', () => {
    const v = parseVerifierKey(SPEC_VKEY);
    const { note, verified } = openNote(SPEC_NOTE, [v]);
    assert.equal(note.body, 'This is an example message.\n');
    assert.deepEqual(verified, [v]);
    assert.equal(formatNote(note), SPEC_NOTE);
  });

  test('flipping any byte of the message fails with the right code', () => {
    const v = parseVerifierKey(SPEC_VKEY);
    const sigStart = SPEC_NOTE.indexOf('\u2014');
    const b64Start = SPEC_NOTE.lastIndexOf(' ') + 1;
    for (let i = 0; i < SPEC_NOTE.length - 1; i++) {
      const c = SPEC_NOTE.charCodeAt(i);
      if (c === 0x2014) continue;
      const flipped = SPEC_NOTE.slice(0, i) + String.fromCharCode(c ^ 1) + SPEC_NOTE.slice(i + 1);
      let want: string;
      if (i <= sigStart - 3) want = 'SIGNATURE_INVALID'; // a body character
      else if (i < sigStart + 2 || i === b64Start - 1) want = 'MALFORMED_NOTE'; // separators
      else if (i < b64Start - 1) want = /[\s+]/.test(flipped[i]!) ? 'MALFORMED_NOTE' : 'NO_TRUSTED_SIGNATURE'; // key name
      else want = 'ANY'; // base64: malformed, another key ID, or a bad signature
      try {
        openNote(flipped, [v]);
        assert.fail(`flip at ${i} was accepted`);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (want === 'ANY') assert.ok(['MALFORMED_NOTE', 'SIGNATURE_INVALID', 'NO_TRUSTED_SIGNATURE'].includes(code!), `flip at ${i}: ${code}`);
        else assert.equal(code, want, `flip at ${i} (${JSON.stringify(flipped.slice(Math.max(0, i - 3), i + 3))})`);
      }
    }
    // Specific cases: a signature byte, a key ID byte, the vkey.
    const raw = fromBase64(SPEC_NOTE.slice(b64Start, -1));
    const withSig = (r: Uint8Array): string => SPEC_NOTE.slice(0, b64Start) + toBase64(r) + '\n';
    const badSig = new Uint8Array(raw);
    badSig[10] = badSig[10]! ^ 0x80;
    assertCode(() => openNote(withSig(badSig), [v]), 'SIGNATURE_INVALID');
    const badId = new Uint8Array(raw);
    badId[0] = badId[0]! ^ 0x01;
    assertCode(() => openNote(withSig(badId), [v]), 'NO_TRUSTED_SIGNATURE');
    assertCode(() => parseVerifierKey(SPEC_VKEY.replace('530d903a', '530d903b')), 'MALFORMED_KEY');
    assertCode(() => parseVerifierKey(SPEC_VKEY.slice(0, -2) + 'l=' ), 'MALFORMED_KEY');
  });
});

describe('Go x/mod/sumdb/note vectors', () => {
  test('the vectors are the ones in the Debian Go source', { skip: !existsSync(`${GO_DIR}/note_test.go`) && 'golang-golang-x-mod-dev is not installed' }, () => {
    const src = readFileSync(`${GO_DIR}/note_test.go`, 'utf8') + readFileSync(`${GO_DIR}/note.go`, 'utf8');
    for (const s of [PETER_VKEY, ENOCH_VKEY, PETER_SIG.slice(2, -1), ENOCH_SIG.slice(2, -1), PETER_SKEY_SEED]) assert.ok(src.includes(s), s);
  });

  test('Open: one known key, both keys, none', () => {
    const peter = parseVerifierKey(PETER_VKEY);
    const enoch = parseVerifierKey(ENOCH_VKEY);
    const msg = `${GO_TEXT}\n${PETER_SIG}${ENOCH_SIG}`;
    assert.deepEqual(openNote(msg, [peter]).verified, [peter]);
    assert.deepEqual(openNote(msg, [enoch, peter]).verified, [enoch, peter]);
    assertCode(() => openNote(msg, []), 'NO_TRUSTED_SIGNATURE');
    assertCode(() => openNote(`${GO_TEXT}\n${PETER_SIG}`, [enoch, peter, enoch]), 'INVALID_ARGUMENT'); // ambiguous verifiers
    assertCode(() => openNote(`${GO_TEXT}\n${PETER_SIG.repeat(101)}`, [peter]), 'MALFORMED_NOTE');
    assert.equal(openNote(`${GO_TEXT}\n${PETER_SIG.repeat(100)}`, [peter]).note.signatures.length, 100);
    assertCode(() => openNote(`${GO_TEXT}\n${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`, [peter]), 'SIGNATURE_INVALID');
    // Same name, other key ID (and vice versa): unknown key, ignored.
    const misnamed = PETER_SIG.replace('PeterNeumann', 'CarmenSandiego');
    assertCode(() => openNote(`${GO_TEXT}\n${misnamed}`, [peter]), 'NO_TRUSTED_SIGNATURE');
    assert.deepEqual(openNote(`${GO_TEXT}\n${misnamed}${PETER_SIG}`, [peter]).verified, [peter]);
  });

  test('the Go bad-message table is MALFORMED_NOTE', () => {
    const peter = parseVerifierKey(PETER_VKEY);
    const bad = [
      GO_TEXT,
      `${GO_TEXT}\n`,
      `${GO_TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `\x01${GO_TEXT}\n${PETER_SIG}`,
      `\ud800${GO_TEXT}\n${PETER_SIG}`,
      `${GO_TEXT}\n\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
      `${GO_TEXT}\n${PETER_SIG}Unexpected line.\n`,
    ];
    for (const m of bad) assertCode(() => openNote(m, [peter]), 'MALFORMED_NOTE', JSON.stringify(m.slice(0, 20)));
  });

  test('Ed25519NoteSigner reproduces the Go signature byte for byte', () => {
    const s = new Ed25519NoteSigner('PeterNeumann', peterSeed());
    assert.equal(s.verifierKey, PETER_VKEY);
    assert.equal(s.keyId, 0xc74f20a3);
    assert.equal(signNote(GO_TEXT, [s]), `${GO_TEXT}\n${PETER_SIG}`);
  });
});

describe('cosignatures (tlog-cosignature, type 0x04)', () => {
  const body = formatCheckpoint({ origin: 'example.com/log', size: 20852163, rootHash: new Uint8Array(32).fill(9), extensions: [] });

  test('sign / verify round trip and timestamp', () => {
    const w = new Ed25519CosignatureSigner('witness.example/w1', new Uint8Array(32).fill(1));
    assert.match(w.verifierKey, /^witness\.example\/w1\+[0-9a-f]{8}\+B/); // base64 of 0x04 starts with "B"
    const v = parseVerifierKey(w.verifierKey);
    assert.equal(v.type, KEY_TYPE_COSIGNATURE);
    assert.equal(v.keyId, keyId('witness.example/w1', KEY_TYPE_COSIGNATURE, w.publicKey));
    assert.notEqual(v.keyId, keyId('witness.example/w1', KEY_TYPE_ED25519, w.publicKey));
    for (const ts of [0, 1, 1679315147, 2 ** 32, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
      const sig = w.sign(body, ts);
      assert.equal(sig.signature.length, 72);
      assert.equal(cosignatureTimestamp(sig), ts);
      assert.ok(v.verify(body, sig.signature));
      assert.ok(!v.verify(body + 'x\n', sig.signature));
      const other = new Uint8Array(sig.signature);
      other[7] = other[7]! ^ 1; // a different timestamp
      assert.ok(!v.verify(body, other));
    }
    assertCode(() => w.sign(body, -1), 'INVALID_ARGUMENT');
    assertCode(() => w.sign(body, 2 ** 53), 'INVALID_ARGUMENT');
    assertCode(() => w.sign(body, 1.5), 'INVALID_ARGUMENT');
    assertCode(() => cosignatureTimestamp({ name: 'x', keyId: 0, signature: new Uint8Array(64) }), 'MALFORMED_NOTE');
    const huge = new Uint8Array(72).fill(0xff);
    assertCode(() => cosignatureTimestamp({ name: 'x', keyId: 0, signature: huge }), 'MALFORMED_NOTE');
    assert.ok(!v.verify(body, huge)); // timestamp above 2^63 - 1
  });

  test('the signed message is "cosignature/v1\\ntime <T>\\n" + body (checked with node:crypto)', () => {
    const w = new Ed25519CosignatureSigner('witness.example/w1', new Uint8Array(32).fill(2));
    const sig = w.sign(body, 1679315147);
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(w.publicKey)]);
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const msg = Buffer.from(`cosignature/v1\ntime 1679315147\n${body}`);
    assert.ok(nodeVerify(null, msg, key, Buffer.from(sig.signature.subarray(8))));
    assert.deepEqual([...sig.signature.subarray(0, 8)], [0, 0, 0, 0, 0x64, 0x18, 0x50, 0xcb]);
  });

  test('openCheckpoint: log signature, origin, witness quorum', () => {
    const log = new Ed25519NoteSigner('example.com/log', new Uint8Array(32).fill(3));
    const ws = [1, 2, 3].map((i) => new Ed25519CosignatureSigner(`witness.example/w${i}`, new Uint8Array(32).fill(10 + i)));
    const wv = ws.map((w) => parseVerifierKey(w.verifierKey));
    const lv = parseVerifierKey(log.verifierKey);
    const text = signNote(body, [log, { sign: (b) => ws[0]!.sign(b, 100) }, { sign: (b) => ws[1]!.sign(b, 200) }]);
    const r = openCheckpoint(text, lv, { witnesses: wv, quorum: 2 });
    assert.equal(r.checkpoint.size, 20852163);
    assert.deepEqual(r.cosigners, [wv[0], wv[1]]);
    assert.deepEqual(r.note.signatures.map(cosigOrNot), [null, 100, 200]);
    assert.equal(openCheckpoint(text, lv).cosigners.length, 0);
    assertCode(() => openCheckpoint(text, lv, { witnesses: wv, quorum: 3 }), 'NO_TRUSTED_SIGNATURE');
    assertCode(() => openCheckpoint(text, lv, { witnesses: wv, quorum: 4 }), 'INVALID_ARGUMENT');
    assertCode(() => openCheckpoint(text, lv, { witnesses: wv, quorum: -1 }), 'INVALID_ARGUMENT');
    // Witnesses alone are not enough: the log must sign.
    const noLog = signNote(body, [{ sign: (b) => ws[0]!.sign(b, 100) }]);
    assertCode(() => openCheckpoint(noLog, lv, { witnesses: wv }), 'NO_TRUSTED_SIGNATURE');
    // Origin must be the log's key name.
    const other = new Ed25519NoteSigner('example.com/other', new Uint8Array(32).fill(3));
    assertCode(() => openCheckpoint(signNote(body, [other]), parseVerifierKey(other.verifierKey)), 'ORIGIN_MISMATCH');
    // One witness key listed under two names counts once (the cosigned message has no name).
    const alias = new Ed25519CosignatureSigner('witness.example/alias', new Uint8Array(32).fill(11));
    const twice = signNote(body, [log, { sign: (b) => ws[0]!.sign(b, 100) }, { sign: (b) => alias.sign(b, 100) }]);
    assertCode(() => openCheckpoint(twice, lv, { witnesses: [wv[0]!, parseVerifierKey(alias.verifierKey)], quorum: 2 }), 'NO_TRUSTED_SIGNATURE');
    // A bad cosignature by a known witness rejects the note.
    const forged = text.replace(/(\u2014 witness\.example\/w1 )(\S+)/, (_m, p: string, b: string) => p + toBase64(flip(fromBase64(b), 20)));
    assertCode(() => openCheckpoint(forged, lv, { witnesses: wv }), 'SIGNATURE_INVALID');
    // An unparseable body is only looked at after the signature verified.
    assertCode(() => openCheckpoint(signNote('example.com/log\n01\nxx\n', [log]), lv), 'MALFORMED_CHECKPOINT');
  });
});

describe('note formatting and signing', () => {
  test('parse/format round trip keeps blank lines in the body', () => {
    const s = new Ed25519NoteSigner('a.example', new Uint8Array(32).fill(5));
    for (const body of ['x\n', '\n', 'a\n\nb\n', 'a\n\n\n', 'unicode \u00e9\u4e2d\ud83d\ude00\n']) {
      const text = signNote(body, [s]);
      const n = parseNote(text);
      assert.equal(n.body, body);
      assert.equal(formatNote(n), text);
      assert.equal(openNote(text, [s.verifier()]).verified.length, 1);
    }
  });

  test('bad arguments to signers and formatters are INVALID_ARGUMENT', () => {
    const s = new Ed25519NoteSigner('a.example', new Uint8Array(32));
    assertCode(() => new Ed25519NoteSigner('a b', new Uint8Array(32)), 'INVALID_ARGUMENT');
    assertCode(() => new Ed25519NoteSigner('a+b', new Uint8Array(32)), 'INVALID_ARGUMENT');
    assertCode(() => new Ed25519NoteSigner('', new Uint8Array(32)), 'INVALID_ARGUMENT');
    assertCode(() => new Ed25519NoteSigner('a', new Uint8Array(31)), 'INVALID_ARGUMENT');
    assertCode(() => s.sign('no newline'), 'INVALID_ARGUMENT');
    assertCode(() => s.sign(''), 'INVALID_ARGUMENT');
    assertCode(() => s.sign('tab\there\n'), 'INVALID_ARGUMENT');
    assertCode(() => s.sign('lone \ud800\n'), 'INVALID_ARGUMENT');
    assertCode(() => signNote('x\n', []), 'INVALID_ARGUMENT');
    assertCode(() => formatNote({ body: 'x\n', signatures: [] }), 'INVALID_ARGUMENT');
    assertCode(() => formatNote({ body: 'x\n', signatures: [{ name: 'a', keyId: 2 ** 32, signature: new Uint8Array(64) }] }), 'INVALID_ARGUMENT');
    assertCode(() => formatNote({ body: 'x\n', signatures: [{ name: 'a', keyId: -1, signature: new Uint8Array(64) }] }), 'INVALID_ARGUMENT');
    assertCode(() => keyId('a', 256, new Uint8Array(32)), 'INVALID_ARGUMENT');
    assertCode(() => verifierKeyString('a', new Uint8Array(32), 2), 'INVALID_ARGUMENT');
    assertCode(() => verifierKeyString('a', new Uint8Array(33)), 'INVALID_ARGUMENT');
  });

  test('a verifier never throws on odd input', () => {
    const v = parseVerifierKey(SPEC_VKEY);
    assert.equal(v.verify('This is an example message.\n', new Uint8Array(0)), false);
    assert.equal(v.verify('This is an example message.\n', new Uint8Array(65)), false);
    assert.equal(v.verify('lone \udc00\n', new Uint8Array(64)), false);
    assert.equal(v.verify(undefined as unknown as string, new Uint8Array(64)), false);
    assert.equal(v.verify('x\n', utf8Encode('x'.repeat(64))), false);
  });
});

function cosigOrNot(s: { signature: Uint8Array }): number | null {
  return s.signature.length === 72 ? cosignatureTimestamp(s as never) : null;
}

function flip(b: Uint8Array, i: number): Uint8Array {
  const c = new Uint8Array(b);
  c[i] = c[i]! ^ 1;
  return c;
}
