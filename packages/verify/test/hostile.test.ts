/** Hostile input: every parser with a table of malformed inputs, asserting the error code. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  Ed25519NoteSigner,
  decodeBundle,
  formatCheckpoint,
  formatProofFile,
  fromBase64,
  fromHex,
  parseCheckpoint,
  parseNote,
  parseProofFile,
  parseTilePath,
  parseVerifierKey,
  signNote,
  toBase64,
  toHex,
  utf8Decode,
  utf8Encode,
  verifyProofFile,
  hashLeaf,
  type VerifyErrorCode,
} from '../src/index.js';
import { assertCode } from './support/helpers.js';

function table(code: VerifyErrorCode, parse: (s: never) => unknown, inputs: unknown[]): void {
  for (const input of inputs) assertCode(() => parse(input as never), code, `${code} for ${JSON.stringify(input)?.slice(0, 80)}`);
}

const ROOT = toBase64(new Uint8Array(32).fill(0xab));
const SIGNER = new Ed25519NoteSigner('example.com/log', new Uint8Array(32).fill(1));
const CP_BODY = `example.com/log\n5\n${ROOT}\n`;
const CP_NOTE = signNote(CP_BODY, [SIGNER]);
const H = toBase64(new Uint8Array(32).fill(0xcd));

describe('hostile input', () => {
  test('fromBase64', () => {
    table('MALFORMED_BASE64', fromBase64, [
      'A', 'AA', 'AAA', 'AAAAA', '====', 'A===', 'AA=A', '=AAA', 'AB==AAAA', 'AAAA====',
      'AB=', 'AQ==\n', ' AQ==', 'AQ== ', 'AQ', 'AR==', 'AQI=x', 'AQJ=', // AR== and AQJ= are non-canonical
      '-_-_', 'ab+/\u00e9AAA', 'AAA\u0000', 'AAA.', 'Zm9v\r\n', 5, null, undefined,
    ]);
    assertCode(() => fromBase64('AQ==', 2), 'MALFORMED_BASE64');
    assertCode(() => fromBase64(ROOT, 31), 'MALFORMED_BASE64');
    assert.deepEqual(fromBase64(''), new Uint8Array(0));
    assert.deepEqual(fromBase64('AQ=='), new Uint8Array([1]));
    assert.deepEqual(fromBase64('+/8='), new Uint8Array([0xfb, 0xff]));
  });

  test('fromBase64/toBase64 agree with Buffer and round trip exactly', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        const s = toBase64(b);
        assert.equal(s, Buffer.from(b).toString('base64'));
        assert.deepEqual(fromBase64(s), b);
        assert.deepEqual(fromBase64(s, b.length), b);
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (s) => {
        let decoded: Uint8Array | undefined;
        try {
          decoded = fromBase64(s);
        } catch {
          return;
        }
        assert.equal(toBase64(decoded), s); // accepted only when canonical
      }),
      { numRuns: 2000 },
    );
  });

  test('hex and UTF-8', () => {
    assert.equal(toHex(new Uint8Array([0, 1, 0xab, 0xff])), '0001abff');
    assert.deepEqual(fromHex('0001ABff'), new Uint8Array([0, 1, 0xab, 0xff]));
    table('INVALID_ARGUMENT', fromHex, ['0', 'zz', '0g', ' 0', '+1', 5]);
    assert.equal(utf8Decode(utf8Encode('h\u00e9\ud83d\ude00')), 'h\u00e9\ud83d\ude00');
    assert.equal(utf8Decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])), '\ufeffA'); // the BOM is kept
    table('INVALID_ARGUMENT', utf8Decode, [new Uint8Array([0xff]), new Uint8Array([0xc0, 0x80]), new Uint8Array([0xed, 0xa0, 0x80]), new Uint8Array([0xe2, 0x82])]);
    table('INVALID_ARGUMENT', utf8Encode, ['\ud800', 'a\udc00b', 'x\ud83d']);
  });

  test('parseTilePath', () => {
    table('MALFORMED_TILE_PATH', parseTilePath, [
      '', 'tile', 'tile/', 'tile/0', 'tile/0/', '/tile/0/000', 'tiles/0/000', 'TILE/0/000', '0/000',
      'tile/00/000', 'tile/01/000', 'tile/64/000', 'tile/100/000', 'tile/-1/000', 'tile/+1/000', 'tile/ 1/000', 'tile/1e1/000',
      'tile/0/0', 'tile/0/00', 'tile/0/0000', 'tile/0/1', 'tile/0/x000', 'tile/0/001/000', 'tile/0/x001/00', 'tile/0/x1/000',
      'tile/0/x000/001', 'tile/0/X001/000', 'tile/0/x001/x000', 'tile/0/000/', 'tile/0//000', 'tile/0/000/extra',
      'tile/0/000.p', 'tile/0/000.p/', 'tile/0/000.p/0', 'tile/0/000.p/00', 'tile/0/000.p/05', 'tile/0/000.p/256', 'tile/0/000.p/300',
      'tile/0/000.p/5/6', 'tile/0/000.p/5/', 'tile/0/000.q/5', 'tile/0/000p/5', 'tile/0/x001.p/000', 'tile/0/000.p/x5',
      'tile/entries', 'tile/entries/', 'tile/Entries/000', 'tile/entries/000.p/256', 'tile/entry/000',
      'tile/0/../000', 'tile/../0/000', 'tile/0/./000', 'tile/0/000\n', 'tile/0/000\u0000', 'tile\\0\\000',
      'tile/0/x009/x007/x199/x254/x740/992', 'tile/0/x999/x999/x999/x999/x999/999', 'tile/0/x001/x001/x001/x001/x001/x001/000',
      'tile/0/' + 'x001/'.repeat(40) + '000', 5, null,
    ]);
    assert.deepEqual(parseTilePath('tile/0/x009/x007/x199/x254/x740/991'), { level: 0, index: Number.MAX_SAFE_INTEGER, width: 256 });
    assert.deepEqual(parseTilePath('tile/entries/x001/000.p/255'), { level: 'entries', index: 1000, width: 255 });
  });

  test('parseCheckpoint', () => {
    assert.deepEqual(parseCheckpoint(CP_BODY), { origin: 'example.com/log', size: 5, rootHash: new Uint8Array(32).fill(0xab), extensions: [] });
    assert.equal(parseCheckpoint(`o\n0\n${ROOT}\n`).size, 0);
    assert.deepEqual(parseCheckpoint(`o\n1\n${ROOT}\next one\nx\n`).extensions, ['ext one', 'x']);
    assert.equal(parseCheckpoint(`o\n${Number.MAX_SAFE_INTEGER}\n${ROOT}\n`).size, Number.MAX_SAFE_INTEGER);
    table('MALFORMED_CHECKPOINT', parseCheckpoint, [
      '', '\n', 'o\n5\n', `o\n5\n${ROOT}`, `o\n5\n${ROOT}\n\n`, `\n5\n${ROOT}\n`, `o\n\n${ROOT}\n`, `o\n05\n${ROOT}\n`, `o\n00\n${ROOT}\n`,
      `o\n-1\n${ROOT}\n`, `o\n+5\n${ROOT}\n`, `o\n5.0\n${ROOT}\n`, `o\n1e3\n${ROOT}\n`, `o\n 5\n${ROOT}\n`, `o\n0x5\n${ROOT}\n`, `o\n\u0665\n${ROOT}\n`,
      `o\n9007199254740992\n${ROOT}\n`, `o\n99999999999999999999\n${ROOT}\n`, `o\n5\n${ROOT.slice(0, -4)}\n`, `o\n5\n${ROOT}AAAA\n`,
      `o\n5\n${ROOT.replace('=', '')}\n`, `o\n5\n${ROOT} \n`, `o\n5\n\n`, `o\n5\n${ROOT}\next\n\n`, `o\r\n5\n${ROOT}\n`, `o\n5\r\n${ROOT}\n`,
      `o\n5\n${ROOT}\r\n`, `o\t\n5\n${ROOT}\n`, `o\ud800\n5\n${ROOT}\n`, `o\n5\n${ROOT}\n\u0000\n`, 'x'.repeat(2 << 20) + '\n', 42,
    ]);
  });

  test('formatCheckpoint refuses what parseCheckpoint would refuse', () => {
    const cp = { origin: 'o', size: 1, rootHash: new Uint8Array(32), extensions: [] as string[] };
    assert.deepEqual(parseCheckpoint(formatCheckpoint(cp)), cp);
    for (const bad of [
      { ...cp, origin: '' }, { ...cp, origin: 'a\nb' }, { ...cp, size: -1 }, { ...cp, size: 2 ** 53 }, { ...cp, size: 0.5 },
      { ...cp, rootHash: new Uint8Array(31) }, { ...cp, extensions: [''] }, { ...cp, extensions: ['a\nb'] }, { ...cp, extensions: ['\r'] },
    ]) {
      assertCode(() => formatCheckpoint(bad), 'INVALID_ARGUMENT', JSON.stringify(bad));
    }
  });

  test('parseNote', () => {
    const sigLine = CP_NOTE.slice(CP_NOTE.indexOf('\u2014'));
    const b64 = sigLine.slice(sigLine.lastIndexOf(' ') + 1, -1);
    table('MALFORMED_NOTE', parseNote, [
      '', '\n', '\n\n', CP_BODY, `${CP_BODY}\n`, `${CP_BODY}\n\n`, `${CP_BODY}\n${sigLine.slice(0, -1)}`, `${CP_BODY}${sigLine}`,
      `${CP_BODY}\n- example.com/log ${b64}\n`, `${CP_BODY}\n\u2014example.com/log ${b64}\n`, `${CP_BODY}\n\u2014  example.com/log ${b64}\n`,
      `${CP_BODY}\n\u2014 example.com/log  ${b64}\n`, `${CP_BODY}\n\u2014 example.com/log ${b64} \n`, `${CP_BODY}\n\u2014 example.com/log\n`,
      `${CP_BODY}\n\u2014 example.com/log \n`, `${CP_BODY}\n\u2014  ${b64}\n`, `${CP_BODY}\n\u2014 a+b ${b64}\n`, `${CP_BODY}\n\u2014 a\u00a0b ${b64}\n`,
      `${CP_BODY}\n\u2014 a\u3000b ${b64}\n`, `${CP_BODY}\n\u2014 example.com/log ${b64.slice(0, -1)}\n`, `${CP_BODY}\n\u2014 example.com/log AAAAAA==\n`,
      `${CP_BODY}\n\u2014 example.com/log AAAA\n`, `${CP_BODY}\n${sigLine}\n`, `${CP_BODY}\n${sigLine}trailing`,
      `${CP_BODY}\n${sigLine}${sigLine.replace('\u2014', '--')}`, `${CP_BODY}\n${sigLine.replace('\n', '\r\n')}`, `\r${CP_BODY}\n${sigLine}`,
      `${CP_BODY}\u0007\n${sigLine}`, `${CP_BODY}\ud800\n\n${sigLine}`, `${CP_BODY}\n${sigLine.repeat(101)}`,
      `${'x'.repeat(1 << 20)}\n\n${sigLine}`, `${'\u00e9'.repeat(600_000)}\n\n${sigLine}`, 7, null,
    ]);
    assert.equal(parseNote(`${CP_BODY}\n${sigLine.repeat(100)}`).signatures.length, 100);
    assert.equal(parseNote(`a\n\nb\n\n${sigLine}`).body, 'a\n\nb\n');
  });

  test('parseVerifierKey', () => {
    const good = SIGNER.verifierKey;
    const [name, id, key] = good.split('+') as [string, string, string];
    const b = fromBase64(key);
    const withKey = (raw: Uint8Array): string => `${name}+${id}+${toBase64(raw)}`;
    table('MALFORMED_KEY', parseVerifierKey, [
      '', '+', '++', `${name}`, `${name}+${id}`, `${name}+${id}+`, `+${id}+${key}`, `${name}++${key}`, `${name}+${id}+${key}=`,
      `${name}+${id.slice(1)}+${key}`, `${name}+0${id}+${key}`, `${name}+${id}0+${key}`, `${name}+${id.replace(/./, 'g')}+${key}`,
      `${name}+ ${id.slice(1)}+${key}`, `${name}+${id}+${key} `, ` ${good}`, `${good}\n`, `a b+${id}+${key}`, `${name}+${id}+${key.slice(0, -4)}`,
      `${name}x+${id}+${key}`, `${name}+${(parseInt(id, 16) ^ 1).toString(16).padStart(8, '0')}+${key}`,
      withKey(new Uint8Array([2, ...b.subarray(1)])), withKey(new Uint8Array([0, ...b.subarray(1)])), withKey(b.subarray(0, 32)),
      withKey(new Uint8Array([...b, 0])), withKey(new Uint8Array([1])), `${name}+${id}+${key.replace(/.$/, '=')}`, 'x'.repeat(5000), 12, null,
      // Go's table: wrong-length key and unknown algorithm, each with an adjusted key hash.
      'PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==',
      'PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
    ]);
    // Go's own mangling test: every strict substring and every single-byte increment is rejected.
    const vkey = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
    parseVerifierKey(vkey);
    for (let i = 0; i <= vkey.length; i++) {
      for (let j = i + 1; j <= vkey.length; j++) if (i !== 0 || j !== vkey.length) assertCode(() => parseVerifierKey(vkey.slice(i, j)), 'MALFORMED_KEY', vkey.slice(i, j));
    }
    for (let i = 0; i < vkey.length; i++) {
      const m = vkey.slice(0, i) + String.fromCharCode(vkey.charCodeAt(i) + 1) + vkey.slice(i + 1);
      assertCode(() => parseVerifierKey(m), 'MALFORMED_KEY', m);
    }
    // A 32-byte string that is not a curve point (y = 2 has no x on edwards25519).
    const notPoint = new Uint8Array(32);
    notPoint[0] = 2;
    assertCode(() => parseVerifierKey(`${name}+${id}+${toBase64(new Uint8Array([1, ...notPoint]))}`), 'MALFORMED_KEY');
  });

  test('parseProofFile', () => {
    const good = `c2sp.org/tlog-proof@v1\nextra AQID\nindex 3\n${H}\n${H}\n\n${CP_NOTE}`;
    const p = parseProofFile(good);
    assert.equal(p.index, 3);
    assert.equal(p.proof.length, 2);
    assert.deepEqual(p.extra, new Uint8Array([1, 2, 3]));
    assert.equal(p.checkpoint, CP_NOTE);
    assert.equal(formatProofFile(p), good);
    assert.deepEqual(parseProofFile(`c2sp.org/tlog-proof@v1\nindex 0\n\n${CP_NOTE}`), { index: 0, proof: [], checkpoint: CP_NOTE });
    assert.deepEqual(parseProofFile(`c2sp.org/tlog-proof@v1\nextra \nindex 0\n\n${CP_NOTE}`).extra, new Uint8Array(0));
    const hdr = 'c2sp.org/tlog-proof@v1\n';
    table('MALFORMED_PROOF_FILE', parseProofFile, [
      '', hdr, `${hdr}index 3\n`, `${hdr}index 3\n${H}\n`, `${hdr}index 3\n${H}\n\n`, `c2sp.org/tlog-proof@v2\nindex 3\n\n${CP_NOTE}`,
      `C2SP.org/tlog-proof@v1\nindex 3\n\n${CP_NOTE}`, `c2sp.org/tlog-proof@v1 \nindex 3\n\n${CP_NOTE}`, `\n${hdr}index 3\n\n${CP_NOTE}`,
      `${hdr}index 03\n\n${CP_NOTE}`, `${hdr}index -3\n\n${CP_NOTE}`, `${hdr}index\n\n${CP_NOTE}`, `${hdr}index \n\n${CP_NOTE}`,
      `${hdr}index  3\n\n${CP_NOTE}`, `${hdr}index 3 \n\n${CP_NOTE}`, `${hdr}index 9007199254740992\n\n${CP_NOTE}`, `${hdr}Index 3\n\n${CP_NOTE}`,
      `${hdr}extra AQID\n\n${CP_NOTE}`, `${hdr}extra AQI\nindex 3\n\n${CP_NOTE}`, `${hdr}index 3\nextra AQID\n\n${CP_NOTE}`,
      `${hdr}extra AQID\nextra AQID\nindex 3\n\n${CP_NOTE}`, `${hdr}index 3\n${H.slice(4)}\n\n${CP_NOTE}`, `${hdr}index 3\n${H} \n\n${CP_NOTE}`,
      `${hdr}index 3\n${H}\r\n\n${CP_NOTE}`, `${hdr}index 3\nAAAA\n\n${CP_NOTE}`, `${hdr}index 3\n${`${H}\n`.repeat(65)}\n${CP_NOTE}`,
      `${hdr}index 3\n\n${CP_BODY}`, `${hdr}index 3\n\n\n${CP_NOTE}`, `${hdr}index 3\n\n${CP_NOTE}\n`, `${hdr}index 3\n\n${CP_NOTE}extra`,
      `${hdr}index 3\n${H}\n\n`, `${hdr}index 3\n\n${'x'.repeat(2 << 20)}`, 3,
    ]);
  });

  test('formatProofFile / verifyProofFile arguments', () => {
    const base = { index: 0, proof: [], checkpoint: CP_NOTE };
    for (const bad of [{ ...base, index: -1 }, { ...base, index: 2 ** 53 }, { ...base, proof: [new Uint8Array(31)] }, { ...base, checkpoint: CP_BODY }, { ...base, proof: Array(65).fill(new Uint8Array(32)) }]) {
      assertCode(() => formatProofFile(bad), 'INVALID_ARGUMENT', JSON.stringify(bad).slice(0, 60));
    }
    // A size-5 tree cannot hold index 7; a bad log key cannot open the checkpoint.
    const leaf = hashLeaf(new Uint8Array(0));
    const v = parseVerifierKey(SIGNER.verifierKey);
    assertCode(() => verifyProofFile(formatProofFile({ ...base, index: 7 }), leaf, v), 'INCLUSION_PROOF_INVALID');
    assertCode(() => verifyProofFile(formatProofFile(base), leaf, v), 'INCLUSION_PROOF_INVALID'); // wrong proof length
    const other = new Ed25519NoteSigner('example.com/log', new Uint8Array(32).fill(2));
    assertCode(() => verifyProofFile(formatProofFile(base), leaf, parseVerifierKey(other.verifierKey)), 'NO_TRUSTED_SIGNATURE');
    assertCode(() => verifyProofFile(formatProofFile(base), new Uint8Array(3), v), 'INVALID_ARGUMENT');
  });

  test('decodeBundle', () => {
    assert.deepEqual(decodeBundle(new Uint8Array([0, 1, 7, 0, 0])), [new Uint8Array([7]), new Uint8Array(0)]);
    table('MALFORMED_BUNDLE', (b: Uint8Array) => decodeBundle(b), [
      new Uint8Array(0), new Uint8Array([0]), new Uint8Array([0, 2, 1]), new Uint8Array([0, 1, 7, 0]), new Uint8Array([0xff, 0xff, 1, 2, 3]),
      new Uint8Array(257 * 2), // 257 empty entries
    ]);
    table('MALFORMED_BUNDLE', (b: Uint8Array) => decodeBundle(b, 1), [new Uint8Array([0, 1, 7, 0, 0]), new Uint8Array([0, 1, 7, 9]), new Uint8Array([0, 2, 7])]);
    table('MALFORMED_BUNDLE', (b: Uint8Array) => decodeBundle(b, 3), [new Uint8Array([0, 1, 7, 0, 0])]);
    table('INVALID_ARGUMENT', decodeBundle, ['abc', [1, 2], null]);
  });
});
