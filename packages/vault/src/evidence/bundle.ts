/**
 * Building an evidence bundle (custody-evidence/v1, docs/EVIDENCE.md) from a list of entries.
 *
 * `prepareExport` checks the request and fixes, per log, the one checkpoint every item of that
 * log is proven against (the log's published checkpoint at that moment); nothing is written
 * yet, so a bad request is a plain error. `writeExport` then streams the zip: README.txt, keys,
 * checkpoints, and per item its entry, record and tlog-proof, read bundle by bundle (one
 * decryption per 256 entries; hashing, deflating and checking the proofs on a worker thread,
 * pack-worker.ts), then the manifest. Memory stays bounded by the item count, not the records'
 * sizes: per item its metadata, three SHA-256 hashes and three central-directory records.
 */
import {
  MAX_BUNDLE_ITEMS,
  BUNDLE_FORMAT,
  MANIFEST_FILE,
  MANIFEST_CHECKSUM_FILE,
  README_FILE,
  bundleItemPaths,
  bundleLogPaths,
  manifestChecksumText,
  decodeBundle,
  PROOF_FILE_HEADER,
  proveInclusion,
  toBase64,
} from '@custody/verify';
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import type { LogSequencer, PublishedCheckpoint } from '../sequencer/index.js';
import { parseEntry } from '../log/entry.js';
import { nativeSha256 } from '../crypto/sha256.js';
import { ZipWriter, type ZipSink } from './zip.js';
import { readmeText } from './readme.js';
import type { PackRequest, PackResponse } from './pack-worker.js';

export const MAX_EXPORT_ENTRIES = MAX_BUNDLE_ITEMS;
const TILE = 256;

/** One entry to export; `time` is the event time a search hit carries (ms or ISO), if any. */
export interface ExportRef {
  log: string;
  index: number;
  time?: string | number | null;
}

export interface ExportRequest {
  refs: Iterable<ExportRef>;
  /** The search query the refs came from (null for an explicit list). */
  query: string | null;
  from: string | null;
  to: string | null;
  /** Refuse more than this many entries (≤ MAX_EXPORT_ENTRIES). */
  limit?: number;
}

interface PreparedLog {
  name: string;
  origin: string;
  verifierKey: string;
  seq: LogSequencer;
  checkpoint: PublishedCheckpoint;
  /** This log's items, by index. */
  items: PreparedItem[];
}

interface PreparedItem {
  index: number;
  time: string | null;
}

export interface PreparedExport {
  created: Date;
  vault: string;
  query: string | null;
  from: string | null;
  to: string | null;
  count: number;
  logs: PreparedLog[];
}

export interface ExportSummary {
  count: number;
  logs: Array<{ log: string; origin: string; size: number; items: number }>;
  files: number;
  bytes: number;
  seconds: number;
}

function isoTime(t: string | number | null | undefined): string | null {
  if (t === null || t === undefined) return null;
  if (typeof t === 'number') return Number.isFinite(t) ? new Date(t).toISOString() : null;
  return t.length > 0 && t.length <= 64 ? t : null;
}

/**
 * Checks the request against the vault and takes the checkpoints. Throws CustodyError:
 * BAD_REQUEST (nothing to export, more than `limit`), LOG_NOT_FOUND, ENTRY_NOT_FOUND (an entry
 * that is not yet in a signed checkpoint).
 */
export function prepareExport(vault: Vault, req: ExportRequest): PreparedExport {
  const limit = Math.min(req.limit ?? MAX_EXPORT_ENTRIES, MAX_EXPORT_ENTRIES);
  const byLog = new Map<string, Map<number, string | null>>();
  let count = 0;
  for (const r of req.refs) {
    if (!Number.isSafeInteger(r.index) || r.index < 0) throw new CustodyError('BAD_REQUEST', `Entry index ${JSON.stringify(r.index)} of log "${r.log}" is not a whole number.`);
    let m = byLog.get(r.log);
    if (!m) {
      vault.sequencer(r.log); // LOG_NOT_FOUND
      m = new Map();
      byLog.set(r.log, m);
    }
    if (m.has(r.index)) continue;
    if (++count > limit) {
      throw new CustodyError(
        'BAD_REQUEST',
        limit === MAX_EXPORT_ENTRIES
          ? `An evidence bundle holds at most ${MAX_EXPORT_ENTRIES.toLocaleString('en-US')} entries, and this export has more. Narrow the query or the time range, or export in parts.`
          : `This export has more than the ${limit.toLocaleString('en-US')} entries you allowed (limit); narrow the query or raise the limit (at most ${MAX_EXPORT_ENTRIES.toLocaleString('en-US')}).`,
        { limit, max: MAX_EXPORT_ENTRIES },
      );
    }
    m.set(r.index, isoTime(r.time));
  }
  if (count === 0) {
    throw new CustodyError('BAD_REQUEST', req.query !== null ? 'The query matches no entries, so there is nothing to export.' : 'No entries to export: give at least one {"log","index"}.');
  }
  const logs: PreparedLog[] = [];
  for (const name of [...byLog.keys()].sort()) {
    const seq = vault.sequencer(name);
    const checkpoint = seq.checkpoint; // one checkpoint for every item of this log
    const items = [...byLog.get(name)!].map(([index, time]) => ({ index, time })).sort((a, b) => a.index - b.index);
    // Refused up front, never half-way through a streamed zip (docs/RETENTION.md).
    // A shared vault (S3 + PostgreSQL) reads through its LogStore (S3LogStore: first versions win,
    // docs/PRODUCTION.md section 14); purges are refused there, so it has no shredded range.
    const shreds = vault.shared ? [] : seq.store.shreds();
    for (const it of items) {
      const s = shreds.find((x) => it.index >= x.from && it.index < x.to);
      if (s) throw new CustodyError('ENTRY_SHREDDED', `Entry ${it.index} of log "${name}" was past retention and crypto-shredded by approved purge #${s.purge}; leave it out of the export (its leaf hash and proof remain at GET /v1/logs/${name}/entries/${it.index}).`, { log: name, index: it.index, purge: s.purge });
    }
    const last = items[items.length - 1]!.index;
    if (last >= checkpoint.size) {
      throw new CustodyError('ENTRY_NOT_FOUND', `Log "${name}" has ${checkpoint.size} entries in its signed checkpoint; entry ${last} is not among them (yet).`, { log: name, index: last, size: checkpoint.size });
    }
    logs.push({ name, origin: seq.origin, verifierKey: seq.verifierKey, seq, checkpoint, items });
  }
  return { created: new Date(), vault: vault.config.prefix, query: req.query, from: req.from, to: req.to, count, logs };
}

/** Per item: what the manifest needs once the files are written. */
interface WrittenItem {
  source: string;
  time: string;
}

/**
 * Streams the bundle into `sink`. Throws CustodyError STORAGE_CORRUPT if stored data does not
 * prove (a bundle that does not verify is never handed out), BAD_REQUEST past 4 GiB.
 */
export async function writeExport(p: PreparedExport, sink: ZipSink, opts: { level?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<ExportSummary> {
  const t0 = performance.now();
  const zip = new ZipWriter(sink, { mtime: p.created, level: opts.level });
  const fixed: Array<[string, string]> = []; // path, sha256 hex: README, keys, checkpoints
  const hashes = Buffer.allocUnsafe(p.count * 3 * 32); // entry, record, proof per item
  const written: WrittenItem[][] = [];
  const addFixed = async (path: string, bytes: Buffer, compress = true): Promise<void> => {
    fixed.push([path, createHash('sha256').update(bytes).digest('hex')]);
    await zip.add(path, bytes, compress);
  };

  await addFixed(
    README_FILE,
    Buffer.from(
      readmeText({
        created: p.created.toISOString(),
        vault: p.vault,
        query: p.query,
        from: p.from,
        to: p.to,
        count: p.count,
        logs: p.logs.map((l) => ({ name: l.name, origin: l.origin, verifierKey: l.verifierKey, size: l.checkpoint.size, items: l.items.length })),
      }),
    ),
  );
  for (const l of p.logs) {
    const paths = bundleLogPaths(l.name);
    await addFixed(paths.key, Buffer.from(`${l.verifierKey}\n`), false);
    await addFixed(paths.checkpoint, Buffer.from(l.checkpoint.text), false);
  }

  const packer = new Packer();
  try {
    let done = 0;
    // Batches of items go to the pack worker (hashes, deflate, proof check) while this thread
    // reads and proves the next batch; at most two are in flight, written in order.
    const inFlight: Array<Promise<void>> = [];
    let last: Promise<void> = Promise.resolve();
    const submit = async (l: PreparedLog, b: Batch): Promise<void> => {
      const data = new Uint8Array(b.bytes);
      let o = 0;
      for (const part of b.parts) {
        data.set(part, o);
        o += part.length;
      }
      const res = packer.run({ id: 0, level: opts.level ?? 1, data, files: b.files, checks: b.checks, size: l.checkpoint.size, root: l.checkpoint.root }, [data.buffer]);
      const prev = last;
      const write = (async () => {
        const r = await res;
        await prev;
        if (r.bad.length > 0) throw new CustodyError('STORAGE_CORRUPT', `Entry ${r.bad[0]!.index} of log "${l.name}" does not prove against its checkpoint: ${r.bad[0]!.message}`);
        let at = 0;
        for (let i = 0; i < b.names.length; i++) {
          const f = r.files[i]!;
          await zip.addPacked(b.names[i]!, f, r.out.subarray(at, at + f.bodyLen));
          at += f.bodyLen;
          hashes.set(r.sha.subarray(i * 32, i * 32 + 32), b.slots[i]! * 32);
        }
        opts.onProgress?.(b.doneAfter, p.count);
      })();
      write.catch(() => undefined); // awaited below, in order; never an unhandled rejection
      last = write;
      inFlight.push(write);
      if (inFlight.length >= 2) await inFlight.shift();
    };
    for (const l of p.logs) {
      const out: WrittenItem[] = [];
      written.push(out);
      const { seq, checkpoint: cp } = l;
      const cpBytes = Buffer.from(cp.text);
      let batch = newBatch();
      for (let i = 0; i < l.items.length; ) {
        // The items that live in one entry bundle: one read, one decryption.
        const k = Math.floor(l.items[i]!.index / TILE);
        let j = i;
        while (j < l.items.length && Math.floor(l.items[j]!.index / TILE) === k) j++;
        const width = Math.min(TILE, cp.size - k * TILE);
        const raw = await seq.store.readBundle(k, width);
        if (raw === null) throw new CustodyError('STORAGE_CORRUPT', `The entry bundle ${k} of log "${l.name}" is missing from storage.`);
        const entries = decodeBundle(raw, width);
        const reader = seq.nodeReader(cp.size); // fresh per bundle: its memo stays small
        for (; i < j; i++) {
          const it = l.items[i]!;
          const entry = entries[it.index - k * TILE]!;
          const parsed = parseEntry(entry);
          const record = parsed.blob ? await seq.store.readBlob(parsed.blob.sha256) : parsed.record!;
          const proof = proveInclusion(it.index, cp.size, reader, nativeSha256);
          const paths = bundleItemPaths(l.name, it.index);
          const slot = done * 3;
          batch.checks.push({ file: batch.files.length, index: it.index, proof: concatHashes(proof) });
          batch.add(paths.entry, entry, true, slot);
          batch.add(paths.record, record, true, slot + 1);
          batch.add(paths.proof, proofFileBytes(it.index, proof, cpBytes), false, slot + 2); // base64 hashes: deflate would gain little
          out.push({ source: parsed.source, time: it.time ?? parsed.received });
          done++;
          if (batch.names.length >= BATCH_FILES || batch.bytes >= BATCH_BYTES) {
            batch.doneAfter = done;
            await submit(l, batch);
            batch = newBatch();
          }
        }
      }
      if (batch.names.length > 0) {
        batch.doneAfter = done;
        await submit(l, batch);
      }
    }
    while (inFlight.length > 0) await inFlight.shift();
  } finally {
    await packer.close();
  }

  // manifest.json: generated twice (CRC and size, then the bytes), never held whole.
  const mHash = createHash('sha256');
  await zip.addGenerated(MANIFEST_FILE, () => manifestText(p, written, fixed, hashes), (piece) => mHash.update(piece));
  await zip.add(MANIFEST_CHECKSUM_FILE, Buffer.from(manifestChecksumText(mHash.digest('hex'))), false);
  const bytes = await zip.end();
  return {
    count: p.count,
    logs: p.logs.map((l) => ({ log: l.name, origin: l.origin, size: l.checkpoint.size, items: l.items.length })),
    files: zip.files,
    bytes,
    seconds: (performance.now() - t0) / 1000,
  };
}

const BATCH_FILES = 768;
const BATCH_BYTES = 8 * 2 ** 20;

interface Batch {
  names: string[];
  parts: Uint8Array[];
  files: Array<{ len: number; compress: boolean }>;
  checks: PackRequest['checks'];
  /** Where each file's SHA-256 goes in the manifest's hash table (in 32-byte units). */
  slots: number[];
  bytes: number;
  doneAfter: number;
  add(name: string, data: Uint8Array, compress: boolean, slot: number): void;
}

function newBatch(): Batch {
  const b: Batch = {
    names: [],
    parts: [],
    files: [],
    checks: [],
    slots: [],
    bytes: 0,
    doneAfter: 0,
    add(name, data, compress, slot) {
      b.names.push(name);
      b.parts.push(data);
      b.files.push({ len: data.length, compress });
      b.slots.push(slot);
      b.bytes += data.length;
    },
  };
  return b;
}

function concatHashes(hs: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(hs.length * 32);
  hs.forEach((h, i) => out.set(h, i * 32));
  return out;
}

/** One pack worker (pack-worker.ts) for one export; requests are answered in order. */
class Packer {
  private readonly worker: Worker;
  private readonly waiting: Array<{ resolve: (r: PackResponse) => void; reject: (e: Error) => void }> = [];
  private failed: Error | null = null;

  constructor() {
    this.worker = new Worker(new URL('./pack-worker.js', import.meta.url), { resourceLimits: { maxYoungGenerationSizeMb: 16 } });
    this.worker.on('message', (r: PackResponse) => {
      const w = this.waiting.shift();
      if (!w) return;
      if (r.error !== undefined) w.reject(new CustodyError('INTERNAL', `Packing the evidence bundle failed: ${r.error}`));
      else w.resolve(r);
    });
    const fail = (e: Error): void => {
      this.failed = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new CustodyError('INTERNAL', `The evidence pack worker stopped (exit ${code}).`)));
  }

  run(req: PackRequest, transfer: ArrayBuffer[]): Promise<PackResponse> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage(req, transfer);
    });
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

/**
 * The C2SP tlog-proof file of an entry, as formatProofFile writes it (without `extra`), built
 * straight into bytes: the checkpoint was checked once, not once per entry.
 */
export function proofFileBytes(index: number, proof: Uint8Array[], checkpoint: Buffer): Buffer {
  const head = `${PROOF_FILE_HEADER}\nindex ${index}\n`;
  const out = Buffer.allocUnsafe(head.length + proof.length * 45 + 1 + checkpoint.length);
  let o = out.write(head, 0, 'latin1');
  for (const h of proof) {
    o += out.write(Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString('base64'), o, 'latin1');
    out[o++] = 0x0a;
  }
  out[o++] = 0x0a;
  o += checkpoint.copy(out, o);
  return out.subarray(0, o);
}

/** manifest.json in pieces of about 64 KB: one item, one file hash per line. */
function* manifestText(p: PreparedExport, written: WrittenItem[][], fixed: Array<[string, string]>, hashes: Buffer): Generator<Uint8Array> {
  const j = JSON.stringify;
  let buf = '';
  const piece = function* (s: string): Generator<Uint8Array> {
    buf += s;
    if (buf.length >= 65536) {
      yield Buffer.from(buf, 'utf8');
      buf = '';
    }
  };
  const logs = p.logs.map((l) => {
    const paths = bundleLogPaths(l.name);
    return `    ${j(l.name)}: ${j({ origin: l.origin, verifierKey: l.verifierKey, key: paths.key, checkpoint: paths.checkpoint, size: l.checkpoint.size, rootHash: toBase64(l.checkpoint.root) })}`;
  });
  yield* piece(
    `{\n  "format": ${j(BUNDLE_FORMAT)},\n  "created": ${j(p.created.toISOString())},\n  "vault": ${j(p.vault)},\n  "query": ${j(p.query)},\n  "from": ${j(p.from)},\n  "to": ${j(p.to)},\n  "count": ${p.count},\n  "logs": {\n${logs.join(',\n')}\n  },\n  "items": [\n`,
  );
  let n = 0;
  for (let li = 0; li < p.logs.length; li++) {
    const l = p.logs[li]!;
    const w = written[li]!;
    for (let i = 0; i < l.items.length; i++) {
      const it = l.items[i]!;
      const paths = bundleItemPaths(l.name, it.index);
      const item = { log: l.name, index: it.index, source: w[i]!.source, time: w[i]!.time, entry: paths.entry, record: paths.record, proof: paths.proof };
      yield* piece(`    ${j(item)}${++n < p.count ? ',' : ''}\n`);
    }
  }
  yield* piece('  ],\n  "sha256": {\n');
  const lines: string[] = fixed.map(([path, hex]) => `    ${j(path)}: "${hex}"`);
  yield* piece(lines.join(',\n'));
  n = 0;
  for (const l of p.logs) {
    for (const it of l.items) {
      const paths = bundleItemPaths(l.name, it.index);
      const h = n * 96;
      yield* piece(
        `,\n    ${j(paths.entry)}: "${hashes.toString('hex', h, h + 32)}",\n    ${j(paths.record)}: "${hashes.toString('hex', h + 32, h + 64)}",\n    ${j(paths.proof)}: "${hashes.toString('hex', h + 64, h + 96)}"`,
      );
      n++;
    }
  }
  yield* piece('\n  }\n}\n');
  if (buf.length > 0) yield Buffer.from(buf, 'utf8');
}
