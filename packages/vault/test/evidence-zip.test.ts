/**
 * An exported evidence bundle under attack: any single-byte change anywhere in the zip, or in
 * any file inside it, makes it fail and the report names the file (fast-check); Zip64 past 65,535 files
 * is read by fflate (what the web UI uses) and Go's archive/zip; the padding bits a deflate
 * stream ends with are covered; a bundle re-zipped by another tool is refused as a zip but its
 * files still verify.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { unzipSync, zipSync } from 'fflate';
import { verifyBundle } from '@custody/verify';
import { readZip, ZipWriter } from '../src/evidence/index.js';
import { nativeSha256 } from '../src/crypto/sha256.js';
import { bearer, startInProc, type InProcVault } from './support/inproc.js';
import { goTool, makeTempDir, runProcess, cleanup } from './support/server.js';
import { evidenceCheckTool } from '../bench/evidence-go.js';

let v: InProcVault;
let ZIP: Buffer;
let KEYS: string[];

/** [start, end) of every member's local record and central record, by name (canonical layout). */
function layout(zip: Buffer): Array<{ name: string; start: number; end: number }> {
  const out: Array<{ name: string; start: number; end: number }> = [];
  let at = 0;
  while (zip.readUInt32LE(at) === 0x04034b50) {
    const n = zip.readUInt16LE(at + 26);
    const e = zip.readUInt16LE(at + 28);
    const end = at + 30 + n + e + zip.readUInt32LE(at + 18);
    out.push({ name: zip.toString('utf8', at + 30, at + 30 + n), start: at, end });
    at = end;
  }
  while (zip.readUInt32LE(at) === 0x02014b50) {
    const n = zip.readUInt16LE(at + 28);
    const e = zip.readUInt16LE(at + 30);
    const end = at + 46 + n + e;
    out.push({ name: zip.toString('utf8', at + 46, at + 46 + n), start: at, end });
    at = end;
  }
  return out;
}

function verifyZip(zip: Buffer, label = 'evidence.zip'): { ok: boolean; problems: Array<{ file: string; kind: string; message: string }> } {
  const r = readZip(zip, label);
  const rep = verifyBundle(r.files, { keys: KEYS, hash: nativeSha256 });
  const problems = [...r.problems, ...rep.problems];
  return { ok: rep.ok && r.problems.length === 0, problems };
}

before(async () => {
  v = await startInProc();
  const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ i, event: 'login', user: `user-${i % 5}`, note: 'a record long enough to be worth deflating '.repeat(3) }));
  lines.push(JSON.stringify({ big: 'y'.repeat(80_000) }));
  const w = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries?wait=checkpoint', headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: lines.join('\n') });
  assert.equal(w.statusCode, 200);
  // A refusal, so the audit log has entries to export as a second log.
  await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(v.tokens.writer) });
  const audit = v.vault.sequencer('audit');
  await audit.waitForCheckpoint(audit.sequencedSize);
  const entries = [0, 1, 2, 17, 39, 40].map((index) => ({ log: 'local', index })).concat([{ log: 'audit', index: 0 }]);
  const r = await v.app.inject({ method: 'POST', url: '/v1/export', headers: bearer(v.tokens.auditor), payload: { entries } });
  assert.equal(r.statusCode, 200, r.body.slice(0, 300));
  ZIP = r.rawPayload;
  KEYS = ['local', 'audit'].map((l) => v.vault.sequencer(l).verifierKey);
});
after(async () => {
  await v?.close();
  await cleanup();
});

describe('evidence zip', () => {
  test('the exported zip verifies, and fflate (the web UI) reads the same files', async () => {
    const r = verifyZip(ZIP);
    assert.deepEqual(r.problems, []);
    assert.equal(r.ok, true);
    const ff = unzipSync(new Uint8Array(ZIP));
    const mine = readZip(ZIP, 'x').files;
    assert.deepEqual(Object.keys(ff).sort(), [...mine.keys()].sort());
    for (const [k, b] of mine) assert.ok(Buffer.from(ff[k]!).equals(Buffer.from(b)), k);
    // The proof files are what the read API serves for the same checkpoint (formatProofFile).
    for (const i of [0, 17, 40]) {
      const e = await v.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${i}`, headers: bearer(v.tokens.auditor) });
      assert.equal(Buffer.from(mine.get(`proofs/local/${i}.tlog-proof`)!).toString('utf8'), e.json<{ proofFile: string }>().proofFile);
      assert.equal(Buffer.from(mine.get(`entries/local/${i}.entry`)!).toString('base64'), e.json<{ entry: string }>().entry);
    }
    const deflated = layout(ZIP).filter((m) => m.start < ZIP.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) && ZIP.readUInt16LE(m.start + 8) === 8);
    assert.ok(deflated.length >= 7, 'entries, records and README are deflated');
  });

  test('any single-byte change anywhere in the zip fails verification and names the file it hit', () => {
    const spans = layout(ZIP);
    fc.assert(
      fc.property(fc.nat(ZIP.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const z = Buffer.from(ZIP);
        z[at] = z[at]! ^ x;
        const r = verifyZip(z);
        assert.equal(r.ok, false, `byte ${at} ^ ${x} went unnoticed`);
        const hit = spans.find((s) => at >= s.start && at < s.end)?.name;
        assert.ok(
          r.problems.some((p) => p.file === 'evidence.zip' || p.file === hit),
          `byte ${at} ^ ${x} (in ${hit ?? 'the end records'}): ${JSON.stringify(r.problems.map((p) => [p.file, p.kind]))}`,
        );
      }),
      { numRuns: 400 },
    );
    // Every byte of every central directory record (a changed name length once named a file
    // that does not exist — found by the property above in CI, seed 620249848).
    for (const s of spans.filter((m) => ZIP.readUInt32LE(m.start) === 0x02014b50)) {
      for (let at = s.start; at < s.end; at++) {
        const z = Buffer.from(ZIP);
        z[at] = z[at]! ^ 1;
        const r = verifyZip(z);
        assert.equal(r.ok, false, `central byte ${at - s.start} of ${s.name}`);
        assert.ok(r.problems.some((p) => p.file === 'evidence.zip' || p.file === s.name), `central byte ${at - s.start} of ${s.name}: ${JSON.stringify(r.problems.map((p) => [p.file, p.kind]))}`);
      }
    }
    for (const at of [0, ZIP.length - 1, ZIP.length - 22, ZIP.length - 10]) {
      const z = Buffer.from(ZIP);
      z[at] = z[at]! ^ 0x80;
      assert.equal(verifyZip(z).ok, false, `byte ${at}`);
    }
    assert.equal(verifyZip(ZIP.subarray(0, ZIP.length - 1)).ok, false, 'truncated');
    assert.equal(verifyZip(Buffer.concat([ZIP, Buffer.from([0])])).ok, false, 'a byte appended');
  });

  test('any single-byte change to any file inside the exported bundle fails and names that file', () => {
    const files = readZip(ZIP, 'x').files;
    const names = [...files.keys()];
    const pair = new Set(['manifest.json', 'manifest.json.sha256']);
    fc.assert(
      fc.property(fc.nat(names.length - 1), fc.nat(), fc.integer({ min: 1, max: 255 }), (fi, off, x) => {
        const name = names[fi]!;
        const b = new Uint8Array(files.get(name)!);
        const at = off % b.length;
        b[at] = b[at]! ^ x;
        const rep = verifyBundle(new Map(files).set(name, b), { keys: KEYS, hash: nativeSha256 });
        assert.equal(rep.ok, false, `${name} byte ${at} ^ ${x} went unnoticed`);
        assert.ok(rep.problems.some((p) => p.file === name || (pair.has(name) && pair.has(p.file))), `${name}: ${JSON.stringify(rep.problems.map((p) => [p.file, p.kind]))}`);
      }),
      { numRuns: 400 },
    );
  });

  test('the padding bits that end a deflate stream are covered too', () => {
    // Find a deflated member whose last byte has padding bits that inflate ignores.
    let found = 0;
    for (const m of layout(ZIP)) {
      if (ZIP.readUInt32LE(m.start) !== 0x04034b50 || ZIP.readUInt16LE(m.start + 8) !== 8) continue;
      const last = m.end - 1;
      const data = (z: Buffer): Buffer => z.subarray(m.start + 30 + ZIP.readUInt16LE(m.start + 26) + ZIP.readUInt16LE(m.start + 28), m.end);
      const same = inflateRawSync(data(ZIP));
      for (let bit = 7; bit >= 0; bit--) {
        const z = Buffer.from(ZIP);
        z[last] = z[last]! ^ (1 << bit);
        let out: Buffer | null = null;
        try {
          out = inflateRawSync(data(z));
        } catch {
          /* a meaningful bit */
        }
        if (!out?.equals(same)) break;
        found++;
        const r = verifyZip(z);
        assert.equal(r.ok, false, `${m.name}: padding bit ${bit} of the last byte`);
        assert.ok(r.problems.some((p) => p.file === m.name && p.kind === 'ZIP'), JSON.stringify(r.problems));
      }
    }
    assert.ok(found > 0, 'some deflate stream in the bundle ends with padding bits');
  });

  test('a bundle re-zipped by another tool is refused as a zip, and its files still verify as a folder', () => {
    const files = readZip(ZIP, 'x').files;
    const rezipped = Buffer.from(zipSync(Object.fromEntries(files)));
    const r = verifyZip(rezipped, 'rezipped.zip');
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => p.kind === 'ZIP'));
    const asFolder = verifyBundle(new Map(Object.entries(unzipSync(new Uint8Array(rezipped)))), { keys: KEYS, hash: nativeSha256 });
    assert.equal(asFolder.ok, true);
  });

  test('without the search index a query cannot be exported, and the answer says what to do', async () => {
    const r = await v.app.inject({ method: 'GET', url: '/v1/export?q=login', headers: bearer(v.tokens.auditor) });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json<{ error: { code: string } }>().error.code, 'NOT_READY');
    assert.match(r.json<{ error: { message: string } }>().error.message, /POST \/v1\/export/);
  });

  test('past 65,535 files a Zip64 end record: read by readZip, fflate and Go archive/zip', async () => {
    const chunks: Buffer[] = [];
    const w = new ZipWriter((c) => void chunks.push(c), { mtime: new Date('2025-06-01T12:34:56Z') });
    const N = 70_000;
    for (let i = 0; i < N; i++) await w.add(`f/${i}`, Buffer.from(i % 3 === 0 ? `file ${i} `.repeat(20) : `file ${i}`));
    await w.end();
    const zip = Buffer.concat(chunks);
    assert.equal(zip.readUInt16LE(zip.length - 22 + 8), 0xffff, 'the classic end record defers to Zip64');
    const mine = readZip(zip, 'big.zip');
    assert.deepEqual(mine.problems, []);
    assert.equal(mine.files.size, N);
    assert.equal(Buffer.from(mine.files.get('f/69998')!).toString(), 'file 69998');
    assert.equal(Object.keys(unzipSync(new Uint8Array(zip))).length, N);
    goTool('tlogcheck'); // installs Go and x/mod from Debian when missing
    const path = join(makeTempDir('zip64'), 'big.zip');
    writeFileSync(path, zip);
    const go = await runProcess(evidenceCheckTool(), [path]);
    assert.equal(go.code, 0, go.stderr);
    assert.equal(go.stdout.trim(), `OK files=${N}`);
  });
});
