/**
 * The zip container of an evidence bundle, written in one canonical form that `readZip`
 * (unzip.ts) checks byte for byte, so that a change to any byte of the archive is caught, not
 * only changes to the files in it. Any zip reader can open it (APPNOTE 6.3: Info-ZIP, Go's
 * archive/zip, Python's zipfile, fflate in browsers).
 *
 * Why not fflate's streaming `Zip`: it keeps about 1 KB per file until the end (300,000 files
 * for 100,000 entries: ~320 MB of heap) and writes no Zip64 end record, so past 65,535 files
 * the file count in the end record wraps and readers that trust it (fflate's own unzipSync)
 * see only part of the bundle. Here a file costs its central-directory record (~90 bytes), and
 * a Zip64 end record is written from 65,535 files on.
 *
 * The form:
 * - local header: version 2.0, flags 0x0800 (UTF-8 names), method 8 (deflate) or 0 (stored),
 *   DOS time of the export (UTC), CRC-32 and sizes filled in (no data descriptors);
 * - a deflated file carries one extra field, id 0x4355 ("UC"), holding the CRC-32 of its
 *   compressed bytes: a deflate stream ends with padding bits inflaters ignore, and this covers
 *   them too; a stored file has no extra field;
 * - central records equal their local headers, made by Unix 2.0, attributes -rw-r--r--, no
 *   comments; files in order, back to back, from offset 0;
 * - with 65,535 files or more a Zip64 end record and locator (counts 0xFFFF in the classic
 *   end record); archives stop short of 4 GiB (no Zip64 offsets are needed).
 */
import { crc32, deflateRawSync } from 'node:zlib';
import { CustodyError } from '../errors.js';

export const SIG_LOCAL = 0x04034b50;
export const SIG_CENTRAL = 0x02014b50;
export const SIG_END = 0x06054b50;
export const SIG_ZIP64_END = 0x06064b50;
export const SIG_ZIP64_LOCATOR = 0x07064b50;
export const VERSION_NEEDED = 20;
export const VERSION_MADE_BY = 0x0314; // Unix, 2.0
export const ZIP64_VERSION = 45;
export const ZIP64_MADE_BY = 0x032d; // Unix, 4.5
export const FLAGS = 0x0800;
export const EXTERNAL_ATTRS = 0x81a40000; // regular file, 0644
export const EXTRA_ID = 0x4355;
export const EXTRA_SIZE = 8; // id, length, CRC-32
export const MAX_ARCHIVE = 0xffffffff;
const CHUNK = 1 << 20;

/** Where the archive's bytes go; a returned promise is awaited (back-pressure). */
export type ZipSink = (chunk: Buffer) => void | Promise<void>;

/** DOS date and time (local fields read as UTC, so every machine writes the same bytes). */
export function dosDateTime(d: Date): { date: number; time: number } {
  const y = Math.min(Math.max(d.getUTCFullYear(), 1980), 2107);
  return {
    date: ((y - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
  };
}

export class ZipWriter {
  private out = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  private written = 0;
  private central: Buffer[] = [];
  private cd = Buffer.allocUnsafe(CHUNK);
  private cdUsed = 0;
  private cdTotal = 0;
  private count = 0;
  private readonly date: number;
  private readonly time: number;
  private readonly level: number;
  private ended = false;

  constructor(
    private readonly sink: ZipSink,
    opts: { mtime: Date; level?: number },
  ) {
    const dt = dosDateTime(opts.mtime);
    this.date = dt.date;
    this.time = dt.time;
    // Level 1: small JSON records shrink nearly as much as at 6 (1.3 KB CloudTrail events: 42% vs
    // 41% smaller), and an export deflates hundreds of thousands of them.
    this.level = opts.level ?? 1;
  }

  /** Bytes of the archive so far. */
  get size(): number {
    return this.written + this.used;
  }

  get files(): number {
    return this.count;
  }

  /** Adds one file; deflates it unless that does not make it smaller (or `compress` is false). */
  async add(name: string, data: Uint8Array, compress = true): Promise<void> {
    let body = data;
    let method = 0;
    if (compress && data.length >= 64) {
      // An output chunk the size of the input: one allocation per file, not 16 KB.
      const c = deflateRawSync(data, { level: this.level, chunkSize: Math.max(64, data.length + 64) });
      if (c.length < data.length) {
        body = c;
        method = 8;
      }
    }
    await this.addRaw(name, data.length, crc32(data), method, body);
  }

  /**
   * Adds a stored file whose bytes are produced twice by `pieces()` (once for the CRC and the
   * size — seen by `observe` — once to write): a large generated file is never held whole.
   */
  async addGenerated(name: string, pieces: () => Iterable<Uint8Array>, observe?: (piece: Uint8Array) => void): Promise<void> {
    let crc = 0;
    let size = 0;
    for (const p of pieces()) {
      observe?.(p);
      crc = crc32(p, crc);
      size += p.length;
    }
    await this.header(name, size, crc, 0, size);
    let n = 0;
    for (const p of pieces()) {
      await this.emit(p);
      n += p.length;
    }
    if (n !== size) throw new Error(`zip: ${name} produced ${n} bytes the second time, ${size} the first`);
  }

  /** Adds a file whose CRC, deflate and body CRC were computed elsewhere (pack-worker.ts). */
  async addPacked(name: string, f: { size: number; crc: number; method: number; bodyCrc: number }, body: Uint8Array): Promise<void> {
    await this.header(name, f.size, f.crc, f.method, body.length, f.method === 8 ? f.bodyCrc : undefined);
    await this.emit(body);
  }

  private async addRaw(name: string, size: number, crc: number, method: number, body: Uint8Array): Promise<void> {
    await this.header(name, size, crc, method, body.length, method === 8 ? crc32(body) : undefined);
    await this.emit(body);
  }

  /** Writes the local header and remembers the central record; returns the header's offset. */
  private async header(name: string, size: number, crc: number, method: number, csize: number, bodyCrc?: number): Promise<number> {
    if (this.ended) throw new Error('zip: add after end');
    const nameBytes = Buffer.from(name, 'utf8');
    if (nameBytes.length === 0 || nameBytes.length > 0xffff) throw new Error(`zip: bad file name length for ${name.slice(0, 80)}`);
    const extra = bodyCrc === undefined ? 0 : EXTRA_SIZE;
    const offset = this.size;
    if (offset + 30 + nameBytes.length + extra + csize > MAX_ARCHIVE) {
      throw new CustodyError('BAD_REQUEST', 'The evidence bundle would be larger than 4 GiB; export fewer entries (narrow the query or the time range).');
    }
    const h = Buffer.allocUnsafe(30 + nameBytes.length + extra);
    h.writeUInt32LE(SIG_LOCAL, 0);
    h.writeUInt16LE(VERSION_NEEDED, 4);
    h.writeUInt16LE(FLAGS, 6);
    h.writeUInt16LE(method, 8);
    h.writeUInt16LE(this.time, 10);
    h.writeUInt16LE(this.date, 12);
    h.writeUInt32LE(crc >>> 0, 14);
    h.writeUInt32LE(csize, 18);
    h.writeUInt32LE(size, 22);
    h.writeUInt16LE(nameBytes.length, 26);
    h.writeUInt16LE(extra, 28);
    nameBytes.copy(h, 30);
    if (bodyCrc !== undefined) writeExtra(h, 30 + nameBytes.length, bodyCrc);
    // The central record: the same fields, plus made-by, attributes and the offset.
    const c = this.cdSpace(46 + nameBytes.length + extra);
    c.writeUInt32LE(SIG_CENTRAL, 0);
    c.writeUInt16LE(VERSION_MADE_BY, 4);
    h.copy(c, 6, 4, 30); // version needed … extra length
    c.writeUInt16LE(0, 32); // comment length
    c.writeUInt16LE(0, 34); // disk
    c.writeUInt16LE(0, 36); // internal attributes
    c.writeUInt32LE(EXTERNAL_ATTRS, 38);
    c.writeUInt32LE(offset, 42);
    nameBytes.copy(c, 46);
    if (bodyCrc !== undefined) writeExtra(c, 46 + nameBytes.length, bodyCrc);
    this.count++;
    await this.emit(h);
    return offset;
  }

  private cdSpace(n: number): Buffer {
    if (this.cdUsed + n > this.cd.length) {
      this.central.push(this.cd.subarray(0, this.cdUsed));
      this.cd = Buffer.allocUnsafe(Math.max(CHUNK, n));
      this.cdUsed = 0;
    }
    const s = this.cd.subarray(this.cdUsed, this.cdUsed + n);
    this.cdUsed += n;
    this.cdTotal += n;
    return s;
  }

  private async emit(b: Uint8Array): Promise<void> {
    if (this.used + b.length <= this.out.length) {
      this.out.set(b, this.used);
      this.used += b.length;
      if (this.used === this.out.length) await this.flush();
      return;
    }
    await this.flush();
    if (b.length >= CHUNK) {
      this.written += b.length;
      await this.sink(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    } else {
      this.out.set(b, 0);
      this.used = b.length;
    }
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const chunk = this.out.subarray(0, this.used);
    this.written += this.used;
    this.out = Buffer.allocUnsafe(CHUNK);
    this.used = 0;
    await this.sink(chunk);
  }

  /** Writes the central directory and the end records; returns the archive's size. */
  async end(): Promise<number> {
    if (this.ended) throw new Error('zip: end twice');
    this.ended = true;
    const cdOffset = this.size;
    const cdSize = this.cdTotal;
    this.central.push(this.cd.subarray(0, this.cdUsed));
    for (const part of this.central) await this.emit(part);
    this.central = [];
    const zip64 = this.count >= 0xffff; // 0xFFFF in the classic record means "see Zip64"
    if (cdOffset + cdSize + (zip64 ? 76 : 0) + 22 > MAX_ARCHIVE) {
      throw new CustodyError('BAD_REQUEST', 'The evidence bundle would be larger than 4 GiB; export fewer entries (narrow the query or the time range).');
    }
    if (zip64) {
      const z = Buffer.alloc(56 + 20);
      const at = this.size;
      z.writeUInt32LE(SIG_ZIP64_END, 0);
      z.writeBigUInt64LE(44n, 4); // size of the rest of this record
      z.writeUInt16LE(ZIP64_MADE_BY, 12);
      z.writeUInt16LE(ZIP64_VERSION, 14);
      z.writeUInt32LE(0, 16); // this disk
      z.writeUInt32LE(0, 20); // disk with the central directory
      z.writeBigUInt64LE(BigInt(this.count), 24);
      z.writeBigUInt64LE(BigInt(this.count), 32);
      z.writeBigUInt64LE(BigInt(cdSize), 40);
      z.writeBigUInt64LE(BigInt(cdOffset), 48);
      z.writeUInt32LE(SIG_ZIP64_LOCATOR, 56);
      z.writeUInt32LE(0, 60); // disk with the zip64 end record
      z.writeBigUInt64LE(BigInt(at), 64);
      z.writeUInt32LE(1, 72); // total disks
      await this.emit(z);
    }
    const e = Buffer.alloc(22);
    e.writeUInt32LE(SIG_END, 0);
    e.writeUInt16LE(zip64 ? 0xffff : this.count, 8);
    e.writeUInt16LE(zip64 ? 0xffff : this.count, 10);
    e.writeUInt32LE(cdSize, 12);
    e.writeUInt32LE(cdOffset, 16);
    await this.emit(e);
    await this.flush();
    return this.written;
  }
}

function writeExtra(b: Buffer, at: number, bodyCrc: number): void {
  b.writeUInt16LE(EXTRA_ID, at);
  b.writeUInt16LE(4, at + 2);
  b.writeUInt32LE(bodyCrc >>> 0, at + 4);
}
