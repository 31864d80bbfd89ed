/**
 * The log-store conformance suite (storage/log-store.ts): ONE set of cases, run against every
 * driver — PosixLogStore in a temp folder (conformance-posix.test.ts) and S3LogStore on the real
 * Ceph S3 with Object Lock (conformance-s3.test.ts). Each case writes a log through the real
 * Integrator (the code that runs in the integrator worker) on a store the factory makes, signs
 * and publishes checkpoints with the log's real key, and reads everything back through the
 * store: checkpoints verify, the tiles give the checkpoint's root, inclusion and consistency
 * proofs verify, bundles decode to the entries, partial → full transitions keep old widths
 * readable, blobs and shred records round-trip, missing objects read as null or clear errors,
 * tampering is detected (POSIX) or ignored in favour of the first version (S3). Go's tlogcheck
 * -full checks a tree served over HTTP from the store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import {
  Ed25519NoteSigner,
  formatCheckpoint,
  signNote,
  openCheckpoint,
  parseVerifierKey,
  tilesForSize,
  tileNodeReader,
  treeRoot,
  proveInclusion,
  verifyInclusion,
  proveConsistency,
  verifyConsistency,
  hashLeaf,
  decodeBundle,
  parseTilePath,
  bytesEqual,
  toBase64,
  EMPTY_ROOT,
} from '@custody/verify';
import { Integrator } from '../../src/sequencer/integrator.js';
import type { LogStore } from '../../src/storage/log-store.js';
import type { LogKeys } from '../../src/crypto/keyring.js';
import { isCustodyError } from '../../src/errors.js';
import { goTool, runProcess } from '../support/server.js';

export interface StoreUnderTest {
  store: LogStore;
  keys: LogKeys;
  origin: string;
  /** Replaces the stored bytes of a store-relative key the way someone with the vault's own access could. */
  tamper(key: string, bytes: Buffer): Promise<void>;
  /**
   * What a read of a replaced immutable object gives: 'detected' — the altered bytes are served
   * and the hashes or the AEAD catch them (POSIX); 'original' — the first version is served (S3).
   */
  tamperedReads: 'detected' | 'original';
  /** Whether removeBundle is refused while the log's retention lasts (S3 Object Lock). */
  lockedUntilRetention: boolean;
  close(): Promise<void>;
}

export type StoreFactory = (label: string) => Promise<StoreUnderTest>;

/** The n-th test entry: varied lengths (1..~600 bytes), unique content. */
export function entryBytes(i: number): Buffer {
  const pad = 'x'.repeat((i * 37) % 600);
  return Buffer.from(`custody-entry/test\nlog conformance\n#${i} ${pad}`, 'utf8');
}

export interface WrittenLog {
  integ: Integrator;
  entries: Buffer[];
  /** The checkpoint text published after each round. */
  checkpoints: string[];
  vkey: string;
}

/** Writes `rounds` batches of entries through a real Integrator and publishes a signed checkpoint after each. */
export async function writeLog(s: StoreUnderTest, rounds: number[], maxRound = 100_000): Promise<WrittenLog> {
  const integ = new Integrator(s.store, s.origin, s.keys, { size: 0, partial: [], tail: Buffer.alloc(0) }, maxRound);
  const signer = new Ed25519NoteSigner(s.origin, s.keys.signingSeed);
  const entries: Buffer[] = [];
  const checkpoints: string[] = [];
  for (const count of rounds) {
    const first = entries.length;
    const parts: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const e = entryBytes(first + i);
      entries.push(e);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(e.length);
      parts.push(len, e);
    }
    integ.add(first, count, Buffer.concat(parts));
    while (integ.pending > 0) {
      const r = await integ.round();
      assert.ok(r, 'a round was written');
      const text = signNote(formatCheckpoint({ origin: s.origin, size: r.size, rootHash: r.root, extensions: [] }), [signer]);
      await s.store.writeCheckpoint(text);
      await integ.commit();
      checkpoints.push(text);
    }
  }
  return { integ, entries, checkpoints, vkey: signer.verifierKey };
}

/** Every tile of the tree at `size`, read through the store; the node reader over them. */
async function readTree(store: LogStore, size: number, opts: { original?: boolean } = {}): Promise<ReturnType<typeof tileNodeReader>> {
  const tiles = new Map<string, Uint8Array>();
  for (const t of tilesForSize(size)) {
    const b = await store.readTile(t.level as number, t.index, t.width, opts);
    assert.ok(b, `tile ${t.level}/${t.index}/${t.width} is readable`);
    assert.equal(b.length, t.width * 32);
    tiles.set(`${t.level}/${t.index}/${t.width}`, b);
  }
  return tileNodeReader(size, (l, i, w) => {
    const b = tiles.get(`${l}/${i}/${w}`);
    if (!b) throw new Error(`tile ${l}/${i}/${w} was not read`);
    return b;
  });
}

/** Checks a published tree end to end against its checkpoint: root, proofs, bundles. */
async function checkTree(store: LogStore, vkey: string, entries: Buffer[]): Promise<{ size: number; root: Uint8Array }> {
  const text = await store.readCheckpoint();
  assert.ok(text, 'a checkpoint is published');
  const { checkpoint } = openCheckpoint(text, parseVerifierKey(vkey));
  assert.equal(checkpoint.size, entries.length);
  const read = await readTree(store, checkpoint.size);
  assert.equal(toBase64(treeRoot(checkpoint.size, read)), toBase64(checkpoint.rootHash), 'the stored tiles give the checkpoint root');
  for (const i of [0, 1, Math.floor(entries.length / 2), entries.length - 1]) {
    verifyInclusion(hashLeaf(entries[i]!), i, checkpoint.size, proveInclusion(i, checkpoint.size, read), checkpoint.rootHash);
  }
  for (let k = 0; k * 256 < entries.length; k++) {
    const width = Math.min(256, entries.length - k * 256);
    const b = await store.readBundle(k, width);
    assert.ok(b, `bundle ${k} (${width}) is readable`);
    const got = decodeBundle(b, width);
    assert.equal(got.length, width);
    for (let j = 0; j < width; j++) assert.ok(bytesEqual(got[j]!, entries[k * 256 + j]!), `entry ${k * 256 + j} reads back`);
  }
  return { size: checkpoint.size, root: checkpoint.rootHash };
}

/** Serves a log read-only over HTTP from a LogStore, like GET /v1/logs/{log}/… (C2SP tlog-tiles paths). */
export async function serveStore(store: LogStore): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '').replace(/^\/log\//, '');
      let body: Buffer | string | null = null;
      try {
        if (path === 'checkpoint') body = await store.readCheckpoint();
        else {
          const t = parseTilePath(path);
          body = t.level === 'entries' ? await store.readBundle(t.index, t.width) : await store.readTile(t.level, t.index, t.width);
        }
      } catch {
        res.writeHead(400).end();
        return;
      }
      if (body === null) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/log`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

export function conformance(driver: string, make: StoreFactory): void {
  const withStore = (name: string, fn: (s: StoreUnderTest) => Promise<void>): void => {
    test(`${driver}: ${name}`, async () => {
      const s = await make(name.replace(/[^a-z0-9]+/gi, '-').slice(0, 20).toLowerCase());
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });
  };

  withStore('an empty store reads as empty: no checkpoint, no tiles, no bundles, no shreds', async (s) => {
    assert.equal(await s.store.readCheckpoint(), null);
    assert.equal(await s.store.readTile(0, 0, 256), null);
    assert.equal(await s.store.readTile(0, 0, 5), null);
    assert.equal(await s.store.readBundle(0, 256), null);
    assert.equal(await s.store.readBundle(0, 7), null);
    assert.equal(await s.store.readSealedBundle(3, 256), null);
    assert.deepEqual(await s.store.readShreds(), []);
    assert.equal(await s.store.sweepTemporaryFiles(0), 0);
  });

  withStore('a write to a key that is not a tile path is refused and writes nothing', async (s) => {
    for (const key of ['../../evil', 'tile/0/../../../evil', '/etc/passwd', 'tile/0/1', 'tile/entries/000.p/256', 'checkpoint']) {
      await assert.rejects(s.store.writeAll([{ key, data: Buffer.from('x') }]), `key ${key}`);
    }
    assert.equal(await s.store.readCheckpoint(), null);
    assert.equal(await s.store.readTile(0, 0, 256), null);
  });

  withStore('an empty checkpoint publishes and reads back', async (s) => {
    const signer = new Ed25519NoteSigner(s.origin, s.keys.signingSeed);
    const text = signNote(formatCheckpoint({ origin: s.origin, size: 0, rootHash: EMPTY_ROOT, extensions: [] }), [signer]);
    await s.store.writeCheckpoint(text);
    assert.equal(await s.store.readCheckpoint(), text);
  });

  withStore('a tree written by the integrator in several rounds verifies: root, inclusion and consistency proofs, bundles', async (s) => {
    // 100 (partial tile and bundle), 300 (first full tile, a new partial), 700 (two full bundles, level-1 partial grows)
    const log = await writeLog(s, [100, 200, 400]);
    assert.equal(log.checkpoints.length, 3);
    const { size, root } = await checkTree(s.store, log.vkey, log.entries);
    assert.equal(size, 700);
    // consistency from every earlier published checkpoint to the latest
    const read = await readTree(s.store, size);
    for (const text of log.checkpoints.slice(0, -1)) {
      const old = openCheckpoint(text, parseVerifierKey(log.vkey)).checkpoint;
      verifyConsistency(old.size, size, proveConsistency(old.size, size, read), old.rootHash, root);
    }
    // the checkpoint read back is the last one published, byte for byte
    assert.equal(await s.store.readCheckpoint(), log.checkpoints[2]);
  });

  withStore('partial → full: the widths published earlier stay readable after their tile became full', async (s) => {
    const log = await writeLog(s, [100]);
    const p100 = await s.store.readTile(0, 0, 100);
    const b100 = await s.store.readBundle(0, 100);
    assert.ok(p100 && b100);
    assert.equal(decodeBundle(b100, 100).length, 100);
    const integ = log.integ;
    const parts: Buffer[] = [];
    for (let i = 100; i < 260; i++) {
      const e = entryBytes(i);
      log.entries.push(e);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(e.length);
      parts.push(len, e);
    }
    integ.add(100, 160, Buffer.concat(parts));
    const r = await integ.round();
    assert.ok(r);
    const signer = new Ed25519NoteSigner(s.origin, s.keys.signingSeed);
    await s.store.writeCheckpoint(signNote(formatCheckpoint({ origin: s.origin, size: r.size, rootHash: r.root, extensions: [] }), [signer]));
    await integ.commit();
    const full = await s.store.readTile(0, 0, 256);
    assert.ok(full && full.length === 256 * 32);
    assert.deepEqual(await s.store.readTile(0, 0, 100), full.subarray(0, 100 * 32), 'the old partial width is the prefix of the full tile');
    assert.deepEqual(p100, full.subarray(0, 100 * 32));
    assert.deepEqual(await s.store.readBundle(0, 100), b100, 'the old partial bundle reads the same entries');
    assert.equal(decodeBundle((await s.store.readBundle(1, 4))!, 4).length, 4);
    await checkTree(s.store, log.vkey, log.entries);
  });

  withStore('blobs round-trip, are idempotent, and a missing or foreign blob is a clear error', async (s) => {
    const rec = randomBytes(300_000);
    const sha = await s.store.writeBlob(rec);
    assert.equal(sha, createHash('sha256').update(rec).digest('hex'));
    assert.equal(await s.store.writeBlob(rec), sha, 'storing it again gives the same hash');
    assert.deepEqual(await s.store.readBlob(sha), rec);
    assert.match(s.store.blobFileName(sha), /^[0-9a-f]{64}$/);
    assert.notEqual(s.store.blobFileName(sha), sha, 'the stored name is not the record hash');
    const other = createHash('sha256').update('never stored').digest('hex');
    await assert.rejects(s.store.readBlob(other), (e: unknown) => isCustodyError(e) && e.code === 'STORAGE_CORRUPT' && /missing from storage/.test(e.message));
  });

  withStore('shred records round-trip; a shredded bundle reads as ENTRY_SHREDDED, a missing one as null', async (s) => {
    await writeLog(s, [300]);
    await s.store.addShred({ purge: 7, from: 512, to: 768 });
    await s.store.addShred({ purge: 3, from: 256, to: 512 });
    await s.store.addShred({ purge: 7, from: 512, to: 768 }); // idempotent
    assert.deepEqual(await s.store.readShreds(), [
      { purge: 3, from: 256, to: 512 },
      { purge: 7, from: 512, to: 768 },
    ]);
    await assert.rejects(s.store.readBundle(2, 256), (e: unknown) => isCustodyError(e) && e.code === 'ENTRY_SHREDDED' && (e.details as { purge: number }).purge === 7);
    assert.equal(await s.store.readBundle(5, 256), null, 'a bundle never written and never shredded is absent');
    // bundle 1 (entries 256..299) exists as a partial and is not shredded by the record alone
    assert.equal(decodeBundle((await s.store.readBundle(1, 44))!, 44).length, 44);
  });

  withStore('removing a bundle: POSIX deletes it at once; S3 refuses while it is locked, naming the date', async (s) => {
    await writeLog(s, [260]);
    await s.store.addShred({ purge: 1, from: 0, to: 256 });
    if (s.lockedUntilRetention) {
      await assert.rejects(s.store.removeBundle(0), (e: unknown) => isCustodyError(e) && e.code === 'OBJECT_LOCKED' && /locked in COMPLIANCE mode until \d{4}-\d\d-\d\dT/.test(e.message));
      assert.equal(decodeBundle((await s.store.readBundle(0, 256))!, 256).length, 256, 'the bundle is still there');
    } else {
      await s.store.removeBundle(0);
      await assert.rejects(s.store.readBundle(0, 256), (e: unknown) => isCustodyError(e) && e.code === 'ENTRY_SHREDDED');
      await assert.rejects(s.store.readBundle(0, 100), (e: unknown) => isCustodyError(e) && e.code === 'ENTRY_SHREDDED');
    }
    assert.ok(await s.store.readTile(0, 0, 256), 'hash tiles stay: proofs remain');
  });

  withStore('a replaced hash tile is caught by the proofs through it (or ignored in favour of its first version)', async (s) => {
    const log = await writeLog(s, [300]);
    const text = (await s.store.readCheckpoint())!;
    const cp = openCheckpoint(text, parseVerifierKey(log.vkey)).checkpoint;
    await s.tamper('tile/0/000', randomBytes(256 * 32));
    // (the root itself comes from the level-1 tile; the replaced level-0 hashes break the proofs through them)
    const fast = await readTree(s.store, cp.size);
    assert.throws(() => verifyInclusion(hashLeaf(log.entries[17]!), 17, cp.size, proveInclusion(17, cp.size, fast), cp.rootHash), /root|mismatch|does not/i, 'a proof through the replaced tile fails');
    if (s.tamperedReads === 'original') {
      const orig = await readTree(s.store, cp.size, { original: true });
      assert.equal(toBase64(treeRoot(cp.size, orig)), toBase64(cp.rootHash), 'the first version gives the root');
      verifyInclusion(hashLeaf(log.entries[17]!), 17, cp.size, proveInclusion(17, cp.size, orig), cp.rootHash);
    }
    // a tile of the wrong size is never served as a tile
    await s.tamper('tile/0/001.p/44', randomBytes(10));
    if (s.tamperedReads === 'original') {
      const t = await s.store.readTile(0, 1, 44);
      assert.ok(t && t.length === 44 * 32);
      verifyInclusion(hashLeaf(log.entries[299]!), 299, cp.size, proveInclusion(299, cp.size, await readTree(s.store, cp.size, { original: true })), cp.rootHash);
    } else {
      const t = await s.store.readTile(0, 1, 44);
      assert.ok(t && t.length !== 44 * 32, 'the altered bytes are served as stored; their size and hash give them away');
    }
  });

  withStore('a replaced entry bundle is refused by its authentication (or served from its first version)', async (s) => {
    const log = await writeLog(s, [300]);
    await s.tamper('tile/entries/000', randomBytes(4000));
    if (s.tamperedReads === 'original') {
      const b = await s.store.readBundle(0, 256);
      assert.ok(b);
      assert.ok(bytesEqual(decodeBundle(b, 256)[17]!, log.entries[17]!), 'the first version is served');
    } else {
      await assert.rejects(s.store.readBundle(0, 256), (e: unknown) => isCustodyError(e) && e.code === 'STORAGE_CORRUPT');
    }
    // a bundle moved to another position does not open there either
    const other = (await s.store.readSealedBundle(1, 44))!;
    await s.tamper('tile/entries/002.p/44', other);
    await assert.rejects(s.store.readBundle(2, 44), (e: unknown) => isCustodyError(e) && e.code === 'STORAGE_CORRUPT' && /fails authentication/.test(e.message));
  });

  withStore("Go's tlogcheck -full accepts the tree served over HTTP from the store", async (s) => {
    const log = await writeLog(s, [500, 290]);
    const srv = await serveStore(s.store);
    try {
      const r = await runProcess(goTool('tlogcheck'), ['-base', srv.url, '-vkey', log.vkey, '-full']);
      assert.equal(r.code, 0, `tlogcheck failed: ${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /OK origin=\S+ size=790 root=\S+ entries-recomputed=790/);
    } finally {
      await srv.close();
    }
  });
}
