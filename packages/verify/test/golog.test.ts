/**
 * Against Go's reference implementation: a 70,000-entry log and 400 proof vectors written by
 * tloggen (golang.org/x/mod/sumdb/{note,tlog}), none of it produced by this package.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Ed25519CosignatureSigner,
  bytesEqual,
  decodeBundle,
  formatProofFile,
  fromBase64,
  hashLeaf,
  newTilesAllWidths,
  openCheckpoint,
  parseTilePath,
  parseVerifierKey,
  proveConsistency,
  proveInclusion,
  rootFromInclusionProof,
  tilePath,
  tileNodeReader,
  tileWidthAt,
  tilesForSize,
  toBase64,
  treeRoot,
  utf8Decode,
  verifyConsistency,
  verifyInclusion,
  verifyProofFile,
  type NodeReader,
} from '../src/index.js';
import { goTool } from './support/go-tools.js';
import { assertCode, flipBit, memoReader } from './support/helpers.js';

const N = 70_000;

interface InclusionVector { index: number; size: number; leafHash: string; root: string; proof: string[] }
interface ConsistencyVector { from: number; to: number; fromRoot: string; toRoot: string; proof: string[] }
interface Vectors { treeSize: number; root: string; inclusion: InclusionVector[]; consistency: ConsistencyVector[] }

function listFiles(root: string, dir = root): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(root, p));
    else out.push(relative(root, p));
  }
  return out;
}

const b64s = (list: Uint8Array[]): string[] => list.map(toBase64);
const unb64 = (list: string[]): Uint8Array[] => list.map((s) => fromBase64(s, 32));

describe('Go reference log (tloggen, 70,000 entries)', () => {
  let dir = '';
  let vkey = '';
  let vectors: Vectors;
  let checkpointText = '';
  const tiles = new Map<string, Uint8Array>();
  const readTile = (level: number, index: number, width: number): Uint8Array => {
    const p = tilePath({ level, index, width });
    let b = tiles.get(p);
    if (b === undefined) {
      b = new Uint8Array(readFileSync(join(dir, p)));
      tiles.set(p, b);
    }
    return b;
  };
  let reader: NodeReader; // nodes of the full 70,000-leaf tree, read from Go's tiles

  before(() => {
    const tloggen = goTool('tloggen');
    dir = mkdtempSync(join(tmpdir(), 'custody-golog-'));
    vkey = execFileSync(tloggen, [dir, String(N), join(dir, 'vectors.json')], { encoding: 'utf8' }).trim();
    vectors = JSON.parse(readFileSync(join(dir, 'vectors.json'), 'utf8')) as Vectors;
    checkpointText = readFileSync(join(dir, 'checkpoint'), 'utf8');
    reader = memoReader(tileNodeReader(N, readTile));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the tile files are exactly Go NewTiles(8, 0, N); tilesForSize lists the current ones', () => {
    const files = listFiles(dir).filter((f) => f.startsWith('tile/') && !f.startsWith('tile/entries/'));
    const fileSet = new Set(files);
    assert.deepEqual(fileSet, new Set(newTilesAllWidths(0, N).map(tilePath)));
    for (const f of files) assert.equal(tilePath(parseTilePath(f)), f);
    const current = tilesForSize(N).map(tilePath);
    assert.equal(current.length, 273 + 1 + 1 + 1 + 1);
    assert.deepEqual(current.slice(-4), ['tile/0/273.p/112', 'tile/1/000', 'tile/1/001.p/17', 'tile/2/000.p/1']);
    for (const p of current) assert.ok(fileSet.has(p), `${p} was not written by Go`);
    // Everything else Go wrote is an older partial of the same tile (a width the tree once had).
    for (const f of files) {
      if (current.includes(f)) continue;
      const t = parseTilePath(f);
      assert.ok(t.level !== 'entries' && t.width < tileWidthAt(t.level, t.index, N), `${f} is not a stale partial`);
      assert.equal(readFileSync(join(dir, f)).length, t.width * 32);
    }
    const bundles = listFiles(dir).filter((f) => f.startsWith('tile/entries/'));
    const want = [];
    for (let k = 0; k * 256 < N; k++) want.push(tilePath({ level: 'entries', index: k, width: Math.min(256, N - k * 256) }));
    assert.deepEqual(new Set(bundles), new Set(want));
  });

  test('treeRoot over Go tiles equals the checkpoint root', () => {
    const root = treeRoot(N, tileNodeReader(N, readTile));
    assert.equal(toBase64(root), vectors.root);
    assert.equal(checkpointText.split('\n')[2], vectors.root);
  });

  test('Go partial tiles of every width serve the trees of those sizes', () => {
    for (let size = 69_888; size <= N; size++) {
      assert.deepEqual(treeRoot(size, tileNodeReader(size, readTile)), treeRoot(size, reader), `size ${size}`);
    }
  });

  test('openCheckpoint with the vkey tloggen printed', () => {
    const log = parseVerifierKey(vkey);
    assert.equal(log.name, 'example.test/log');
    const { checkpoint, cosigners } = openCheckpoint(checkpointText, log);
    assert.equal(checkpoint.origin, 'example.test/log');
    assert.equal(checkpoint.size, N);
    assert.equal(toBase64(checkpoint.rootHash), vectors.root);
    assert.deepEqual(checkpoint.extensions, []);
    assert.deepEqual(cosigners, []);
    // Tampered body, and a key that did not sign.
    assertCode(() => openCheckpoint(checkpointText.replace('70000', '70001'), log), 'SIGNATURE_INVALID');
    const other = new Ed25519CosignatureSigner('example.test/log', new Uint8Array(32).fill(7));
    assertCode(() => openCheckpoint(checkpointText, parseVerifierKey(other.verifierKey)), 'NO_TRUSTED_SIGNATURE');
  });

  test('entry bundles decode to the entries, whose leaf hashes are the level-0 tiles', () => {
    let seen = 0;
    for (let k = 0; k * 256 < N; k++) {
      const width = Math.min(256, N - k * 256);
      const bundle = new Uint8Array(readFileSync(join(dir, tilePath({ level: 'entries', index: k, width }))));
      const entries = decodeBundle(bundle, width);
      const tile = readTile(0, k, tileWidthAt(0, k, N));
      entries.forEach((e, j) => {
        const i = k * 256 + j;
        assert.equal(utf8Decode(e), `{"i":${i},"msg":"entry ${i}"}`);
        assert.ok(bytesEqual(hashLeaf(e), tile.subarray(j * 32, j * 32 + 32)), `leaf ${i}`);
        seen++;
      });
    }
    assert.equal(seen, N);
  });

  test('200 inclusion vectors verify, and proveInclusion over Go tiles reproduces them', () => {
    assert.equal(vectors.inclusion.length, 200);
    for (const v of vectors.inclusion) {
      const leaf = fromBase64(v.leafHash, 32);
      const root = fromBase64(v.root, 32);
      const proof = unb64(v.proof);
      verifyInclusion(leaf, v.index, v.size, proof, root);
      assert.deepEqual(rootFromInclusionProof(leaf, v.index, v.size, proof), root);
      assert.deepEqual(b64s(proveInclusion(v.index, v.size, reader)), v.proof, `index ${v.index} size ${v.size}`);
      assert.deepEqual(treeRoot(v.size, reader), root);
    }
    assert.ok(vectors.inclusion.some((v) => v.index === 0 && v.size === 1));
    assert.ok(vectors.inclusion.some((v) => v.size === N));
  });

  test('mutated inclusion proofs fail with INCLUSION_PROOF_INVALID', () => {
    for (const v of vectors.inclusion.slice(0, 40)) {
      const leaf = fromBase64(v.leafHash, 32);
      const root = fromBase64(v.root, 32);
      const proof = unb64(v.proof);
      const bad = (p: Uint8Array[], what: string, l = leaf, i = v.index, s = v.size, r = root): void =>
        assertCode(() => verifyInclusion(l, i, s, p, r), 'INCLUSION_PROOF_INVALID', `${what} (index ${v.index} size ${v.size})`);
      proof.forEach((_, j) => bad(proof.map((h, k) => (k === j ? flipBit(h, j, j % 8) : h)), `flipped hash ${j}`));
      bad(proof, 'flipped root', leaf, v.index, v.size, flipBit(root, 5));
      bad(proof, 'flipped leaf', flipBit(leaf, 31, 7));
      bad([...proof, root], 'extra hash');
      if (proof.length > 0) bad(proof.slice(1), 'dropped hash');
      if (proof.length > 1) bad([...proof].reverse(), 'reversed order');
      bad(proof, 'index = size', leaf, v.size, v.size);
      if (v.size > 1) bad(proof, 'other index', leaf, v.index === 0 ? 1 : v.index - 1);
      bad(proof, 'bigger tree', leaf, v.index, v.size * 2 + 1);
    }
  });

  test('200 consistency vectors verify, and proveConsistency over Go tiles reproduces them', () => {
    assert.equal(vectors.consistency.length, 200);
    for (const v of vectors.consistency) {
      const r1 = fromBase64(v.fromRoot, 32);
      const r2 = fromBase64(v.toRoot, 32);
      const proof = unb64(v.proof);
      verifyConsistency(v.from, v.to, proof, r1, r2);
      assert.deepEqual(b64s(proveConsistency(v.from, v.to, reader)), v.proof, `${v.from} -> ${v.to}`);
      assert.deepEqual(treeRoot(v.from, reader), r1);
      assert.deepEqual(treeRoot(v.to, reader), r2);
    }
  });

  test('mutated consistency proofs fail with CONSISTENCY_PROOF_INVALID', () => {
    for (const v of vectors.consistency.slice(0, 40)) {
      const r1 = fromBase64(v.fromRoot, 32);
      const r2 = fromBase64(v.toRoot, 32);
      const proof = unb64(v.proof);
      const bad = (p: Uint8Array[], what: string, s1 = v.from, s2 = v.to, a = r1, b = r2): void =>
        assertCode(() => verifyConsistency(s1, s2, p, a, b), 'CONSISTENCY_PROOF_INVALID', `${what} (${v.from} -> ${v.to})`);
      if (v.from === v.to) {
        bad([r1], 'non-empty proof for equal sizes');
        bad(proof, 'different roots for equal sizes', v.from, v.to, r1, flipBit(r2));
        continue;
      }
      proof.forEach((_, j) => bad(proof.map((h, k) => (k === j ? flipBit(h, j) : h)), `flipped hash ${j}`));
      bad(proof, 'flipped old root', v.from, v.to, flipBit(r1, 3));
      bad(proof, 'flipped new root', v.from, v.to, r1, flipBit(r2, 3));
      bad(proof, 'swapped roots', v.from, v.to, r2, r1);
      bad([...proof, r1], 'extra hash');
      bad(proof.slice(0, -1), 'dropped hash');
      bad([], 'empty proof');
      bad(proof, 'sizes backwards', v.to, v.from, r2, r1);
    }
  });

  test('a tlog-proof made with formatProofFile verifies against the Go checkpoint and vkey', () => {
    const log = parseVerifierKey(vkey);
    const witness = new Ed25519CosignatureSigner('witness.example/w1', new Uint8Array(32).fill(42));
    const body = checkpointText.slice(0, checkpointText.indexOf('\n\n') + 1);
    const sig = witness.sign(body, 1_700_000_000);
    const cosigned = `${checkpointText}\u2014 ${sig.name} ${toBase64(new Uint8Array([...u32(sig.keyId), ...sig.signature]))}\n`;
    for (const index of [0, 1, 255, 256, 12_345, 65_535, 65_536, N - 1]) {
      const entry = new TextEncoder().encode(`{"i":${index},"msg":"entry ${index}"}`);
      const text = formatProofFile({ index, proof: proveInclusion(index, N, reader), checkpoint: index % 2 ? cosigned : checkpointText, extra: entry });
      const got = verifyProofFile(text, hashLeaf(entry), log);
      assert.equal(got.index, index);
      assert.equal(got.checkpoint.size, N);
      assertCode(() => verifyProofFile(text, hashLeaf(new TextEncoder().encode('other')), log), 'INCLUSION_PROOF_INVALID');
    }
    const text = formatProofFile({ index: 7, proof: proveInclusion(7, N, reader), checkpoint: cosigned });
    const leaf = hashLeaf(new TextEncoder().encode('{"i":7,"msg":"entry 7"}'));
    const w = parseVerifierKey(witness.verifierKey);
    assert.equal(verifyProofFile(text, leaf, log, { witnesses: [w], quorum: 1 }).index, 7);
    assertCode(() => verifyProofFile(formatProofFile({ index: 7, proof: proveInclusion(7, N, reader), checkpoint: checkpointText }), leaf, log, { witnesses: [w], quorum: 1 }), 'NO_TRUSTED_SIGNATURE');
  });
});

function u32(v: number): number[] {
  return [Math.floor(v / 2 ** 24) % 256, Math.floor(v / 2 ** 16) % 256, Math.floor(v / 2 ** 8) % 256, v % 256];
}
