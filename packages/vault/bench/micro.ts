/**
 * Per-entry cost of each stage an entry goes through on the server's main thread, measured
 * with the vault's own compiled functions on the benchmark's CloudTrail-like records, next to
 * the cheaper variants proposed in docs/BENCHMARKS.md. No server, no disk: CPU only.
 *
 *   node packages/vault/dist/bench/micro.js [--json]
 *
 * A stage's budget at the 50,000 entries/s target is 20 µs per entry for everything.
 */
import { createCipheriv, createHash, randomBytes, hash as oneShotHash } from 'node:crypto';
import { encodeBundle } from '@custody/verify';
import { splitNdjson } from '../src/ingest/batch.js';
import { buildEnvelopes, envelopePrefix, inlineLimit } from '../src/log/entry.js';
import { encryptWithDek, seal, wrapDek } from '../src/crypto/aead.js';
import { nativeSha256 } from '../src/crypto/sha256.js';
import { TreeBuilder } from '../src/log/tree.js';
import { makeBatch } from './records.js';

interface Row {
  stage: string;
  variant: string;
  usPerEntry: number;
  note?: string;
}

/** Best of `rounds` timings of fn (each handling `entries` entries), in µs per entry. */
function time(entries: number, fn: () => void, rounds = 7, minMs = 150): number {
  fn(); // warm up
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const t0 = performance.now();
    do {
      fn();
      n++;
    } while (performance.now() - t0 < minMs);
    best = Math.min(best, ((performance.now() - t0) * 1000) / (n * entries));
  }
  return best;
}

// ---- a JSON validator that allocates nothing (the proposed replacement for JSON.parse) -----

const WS = new Uint8Array(256);
WS[0x20] = WS[0x09] = WS[0x0a] = WS[0x0d] = 1;
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

/** Whether b[start, end) is exactly one RFC 8259 JSON value with optional whitespace around it (UTF-8 checked separately). */
export function isJsonValue(b: Uint8Array, start: number, end: number): boolean {
  let i = start;
  const stack: number[] = []; // 1 object, 2 array
  const ws = (): void => {
    while (i < end && WS[b[i]!]) i++;
  };
  const str = (): boolean => {
    if (b[i] !== 0x22) return false;
    i++;
    while (i < end) {
      const c = b[i]!;
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const e = b[i + 1];
        if (e === 0x75) {
          if (i + 5 >= end || !HEX[b[i + 2]!] || !HEX[b[i + 3]!] || !HEX[b[i + 4]!] || !HEX[b[i + 5]!]) return false;
          i += 6;
        } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) i += 2;
        else return false;
      } else i++;
    }
    return false;
  };
  const digits = (): boolean => {
    const s = i;
    while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
    return i > s;
  };
  const num = (): boolean => {
    if (b[i] === 0x2d) i++;
    if (b[i] === 0x30) i++;
    else if (!(b[i]! >= 0x31 && b[i]! <= 0x39) || !digits()) return false;
    if (b[i] === 0x2e) {
      i++;
      if (!digits()) return false;
    }
    if (b[i] === 0x65 || b[i] === 0x45) {
      i++;
      if (b[i] === 0x2b || b[i] === 0x2d) i++;
      if (!digits()) return false;
    }
    return true;
  };
  const lit = (word: string): boolean => {
    if (i + word.length > end) return false;
    for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) return false;
    i += word.length;
    return true;
  };
  ws();
  for (;;) {
    // one value
    if (i >= end) return false;
    const c = b[i]!;
    if (c === 0x7b) {
      i++;
      ws();
      if (b[i] === 0x7d) i++;
      else {
        stack.push(1);
        if (!str()) return false;
        ws();
        if (b[i] !== 0x3a) return false;
        i++;
        ws();
        continue;
      }
    } else if (c === 0x5b) {
      i++;
      ws();
      if (b[i] === 0x5d) i++;
      else {
        stack.push(2);
        continue;
      }
    } else if (c === 0x22) {
      if (!str()) return false;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      if (!num()) return false;
    } else if (!(c === 0x74 ? lit('true') : c === 0x66 ? lit('false') : c === 0x6e ? lit('null') : false)) return false;
    // after a value: close containers, or a comma starts the next one
    for (;;) {
      ws();
      if (stack.length === 0) return i === end;
      const top = stack[stack.length - 1];
      const d = b[i];
      if (d === 0x2c) {
        i++;
        ws();
        if (top === 1) {
          if (!str()) return false;
          ws();
          if (b[i] !== 0x3a) return false;
          i++;
          ws();
        }
        break;
      }
      if ((top === 1 && d === 0x7d) || (top === 2 && d === 0x5d)) {
        i++;
        stack.pop();
        continue;
      }
      return false;
    }
  }
}

/** splitNdjson with isJsonValue instead of JSON.parse(line.toString()) (same line handling). */
function splitNdjsonValidated(body: Buffer): Buffer[] {
  const records: Buffer[] = [];
  let start = 0;
  while (start < body.length) {
    let end = body.indexOf(0x0a, start);
    const next = end < 0 ? body.length : end + 1;
    if (end < 0) end = body.length;
    let stop = end;
    if (stop > start && body[stop - 1] === 0x0d) stop--;
    let s = start;
    while (s < stop && (body[s] === 0x20 || body[s] === 0x09 || body[s] === 0x0d)) s++;
    if (s < stop) {
      if (!isJsonValue(body, start, stop)) throw new Error('bad line');
      records.push(body.subarray(start, stop));
    }
    start = next;
  }
  return records;
}

function selfCheck(lines: string[]): string {
  const cases = [
    ...lines.slice(0, 200),
    '{}', '[]', '0', '-0.5e+3', '"a\\u00e9\\n"', ' {"a":[1,2,{"b":null}]} ', 'true', '[1,]', '{"a":1,}', '01', '1.', '.5', '-', '"\\x"', '"a', '{"a" 1}',
    '[1 2]', 'nul', 'truex', '{"a":1}}', '[[[]]', '"\t"', '{"a":-}', '1e', '{,}', '{"a":1,"b"}', '\u00a0{}', '[1e5,-0,0.0e-0]',
  ];
  let bad = 0;
  for (const c of cases) {
    const buf = Buffer.from(c);
    let want = true;
    try {
      JSON.parse(c);
    } catch {
      want = false;
    }
    if (isJsonValue(buf, 0, buf.length) !== want) {
      bad++;
      process.stderr.write(`validator disagrees with JSON.parse on ${JSON.stringify(c).slice(0, 80)}\n`);
    }
  }
  return `${cases.length - bad}/${cases.length} cases agree with JSON.parse`;
}

// ---- the journal record as Journal.append builds it today, and without the copies -------------

function encodeEntries(entries: Buffer[]): Buffer {
  let n = 0;
  for (const e of entries) n += 2 + e.length;
  const out = Buffer.allocUnsafe(n);
  let off = 0;
  for (const e of entries) {
    out.writeUInt16BE(e.length, off);
    e.copy(out, off + 2);
    off += 2 + e.length;
  }
  return out;
}

function journalRecordToday(dek: Buffer, segHeader: Buffer, context: Buffer, entries: Buffer[]): Buffer {
  const header = Buffer.allocUnsafe(20);
  header.write('CJR1', 0, 'latin1');
  header.writeBigUInt64BE(123n, 4);
  header.writeUInt32BE(entries.length, 12);
  const plain = encodeEntries(entries);
  header.writeUInt32BE(plain.length + 28, 16);
  const sealed = encryptWithDek(dek, plain, Buffer.concat([header, segHeader, context]));
  return Buffer.concat([header, sealed]);
}

/** Same bytes on disk, as pieces for one writev: the plaintext is encoded into a reused scratch buffer and encrypted once, nothing is concatenated. */
let scratch = Buffer.allocUnsafe(0);
function journalRecordPieces(dek: Buffer, segHeader: Buffer, context: Buffer, entries: Buffer[]): Buffer[] {
  let n = 0;
  for (const e of entries) n += 2 + e.length;
  if (scratch.length < n) scratch = Buffer.allocUnsafe(Math.max(n, scratch.length * 2));
  let off = 0;
  for (const e of entries) {
    scratch.writeUInt16BE(e.length, off);
    e.copy(scratch, off + 2);
    off += 2 + e.length;
  }
  const header = Buffer.allocUnsafe(20);
  header.write('CJR1', 0, 'latin1');
  header.writeBigUInt64BE(123n, 4);
  header.writeUInt32BE(entries.length, 12);
  header.writeUInt32BE(n + 28, 16);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', dek, iv);
  c.setAAD(Buffer.concat([header, segHeader, context]));
  const ct = c.update(scratch.subarray(0, n));
  const fin = c.final();
  return [header, iv, ct, fin, c.getAuthTag()];
}

// ---- leaf hashes --------------------------------------------------------------------------

function leafHashToday(entry: Buffer): Uint8Array {
  const buf = Buffer.allocUnsafe(entry.length + 1);
  buf[0] = 0;
  buf.set(entry, 1);
  return nativeSha256(buf);
}
const ZERO = Buffer.alloc(1);
function leafHashStreaming(entry: Buffer): Uint8Array {
  return createHash('sha256').update(ZERO).update(entry).digest();
}

function main(): void {
  const json = process.argv.includes('--json');
  const B = 1000;
  const batch = makeBatch(4242, B);
  const body = batch.body;
  const rows: Row[] = [];
  const add = (stage: string, variant: string, us: number, note?: string): void => {
    rows.push({ stage, variant, usPerEntry: us, note });
  };

  // 1. validating the NDJSON body
  add('validate NDJSON', 'today: splitNdjson (JSON.parse(line.toString()))', time(B, () => splitNdjson(body)));
  add('validate NDJSON', 'line split only (the floor)', time(B, () => {
    let s = 0;
    const out: Buffer[] = [];
    while (s < body.length) {
      const e = body.indexOf(0x0a, s);
      out.push(body.subarray(s, e));
      s = e + 1;
    }
  }));
  add('validate NDJSON', 'proposed: byte-level validator, no allocation', time(B, () => splitNdjsonValidated(body)), selfCheck(batch.lines));

  // 2. envelopes
  const records = splitNdjson(body);
  const prefix = envelopePrefix({ origin: 'custody-bench/local', region: 'local', source: 'json', producer: 'initial-writer', received: new Date().toISOString() });
  if (records.some((r) => r.length > inlineLimit(prefix))) throw new Error('record too large for the micro-benchmark');
  add('build envelopes', 'today: buildEnvelopes', time(B, () => buildEnvelopes(prefix, records)));
  const entries = buildEnvelopes(prefix, records);

  // 3. the journal record (one group commit of 3 batches, as in the instrumented runs)
  const group = [...entries, ...buildEnvelopes(prefix, records), ...buildEnvelopes(prefix, records)];
  const dek = randomBytes(32);
  const kek = { id: 1, key: randomBytes(32) };
  const segHeader = Buffer.concat([Buffer.from('CJS1'), wrapDek(kek, dek)]);
  const context = Buffer.from('journal custody-bench/local');
  add('journal record (encode + AES-GCM)', 'today: Journal.append (encodeEntries, 3 concats)', time(group.length, () => journalRecordToday(dek, segHeader, context, group)));
  add('journal record (encode + AES-GCM)', 'proposed: scratch buffer + writev pieces, no concat', time(group.length, () => journalRecordPieces(dek, segHeader, context, group)));
  const a = journalRecordToday(dek, segHeader, context, group);
  const b = Buffer.concat(journalRecordPieces(dek, segHeader, context, group));
  if (a.length !== b.length) throw new Error('journal variants differ in length');

  // 4. leaf hashes (integration)
  add('leaf hash', 'today: leafHash (alloc + copy + crypto.hash)', time(B, () => {
    for (const e of entries) leafHashToday(e);
  }));
  add('leaf hash', 'createHash().update(0x00).update(entry)', time(B, () => {
    for (const e of entries) leafHashStreaming(e);
  }));
  const withZero = entries.map((e) => {
    const x = Buffer.allocUnsafe(e.length + 1);
    x[0] = 0;
    e.copy(x, 1);
    return x;
  });
  add('leaf hash', 'proposed: envelope built with its 0x00 prefix byte (no copy)', time(B, () => {
    for (const e of withZero) nativeSha256(e);
  }));
  const big = Buffer.concat(withZero);
  add('leaf hash', 'raw SHA-256 throughput on the same bytes (one call)', time(B, () => oneShotHash('sha256', big, 'buffer')), 'the floor: OpenSSL with SHA-NI');

  // 5. bundles (integration)
  const bundles: Buffer[][] = [];
  for (let i = 0; i + 256 <= entries.length; i += 256) bundles.push(entries.slice(i, i + 256));
  const n = bundles.length * 256;
  add('entry bundle (encode + seal)', 'today: encodeBundle + seal', time(n, () => {
    for (const bu of bundles) seal(kek, 'bundle custody-bench/local 1 256', encodeBundle(bu));
  }));

  // 6. tree
  const leaves = withZero.map((e) => nativeSha256(e));
  add('tree tiles', 'today: TreeBuilder.append + takeCompleted', time(B, () => {
    const t = new TreeBuilder(nativeSha256);
    for (const l of leaves) t.append(l);
    t.takeCompleted();
  }));

  if (json) {
    process.stdout.write(JSON.stringify({ node: process.version, recordBytes: body.length / B - 1, rows }, null, 2) + '\n');
    return;
  }
  const w0 = Math.max(...rows.map((r) => r.stage.length));
  const w1 = Math.max(...rows.map((r) => r.variant.length));
  process.stdout.write(`per-entry CPU cost on the main thread (${(body.length / B - 1).toFixed(0)}-byte records, Node ${process.version}); the whole budget at 50,000 entries/s is 20 µs\n\n`);
  for (const r of rows) process.stdout.write(`  ${r.stage.padEnd(w0)}  ${r.variant.padEnd(w1)}  ${r.usPerEntry.toFixed(2).padStart(6)} µs${r.note ? `   (${r.note})` : ''}\n`);
}

main();
