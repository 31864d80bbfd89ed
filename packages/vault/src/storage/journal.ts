/**
 * The sequencer journal: where an entry becomes durable before it is acknowledged.
 *
 * A batch of entries is appended as one encrypted record and made durable with one
 * fdatasync (group commit). After a crash the journal is replayed: every record that
 * authenticates is an acknowledged batch; a torn tail (a write that never completed, so was
 * never acknowledged) fails authentication and is cut off. Segments are deleted once the
 * checkpoint covers all their entries.
 *
 * Segment: "CJS1" | sealed data-key header (crypto/aead) | records...
 * Record:  "CJR1" | first index u64 | count u32 | sealed length u32 | iv ‖ ciphertext ‖ tag
 *          plaintext = (uint16 length ‖ entry bytes) × count; AAD = the 20-byte record header
 *          ‖ segment header ‖ "journal <origin>".
 */
import { randomBytes, createCipheriv } from 'node:crypto';
import { open, readdir, readFile, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CustodyError } from '../errors.js';
import { wrapDek, unwrapDek, decryptWithDek, SEALED_HEADER_SIZE, type Kek, type KekLookup } from '../crypto/aead.js';
import { fsyncDir } from './atomic.js';

const SEG_MAGIC = Buffer.from('CJS1');
const REC_MAGIC = Buffer.from('CJR1');
const REC_HEADER = 20;
const SEG_HEADER = 4 + SEALED_HEADER_SIZE;
/** Start a new segment once the current one is this large (old ones go once integrated). */
const ROTATE_BYTES = 64 * 1024 * 1024;

export interface JournalBatch {
  firstIndex: number;
  count: number;
  /** The entries, each as uint16 length ‖ bytes (the C2SP bundle encoding). */
  plain: Buffer;
}

interface Segment {
  path: string;
  firstIndex: number;
  endIndex: number; // one past the last entry
}

/** Whether `b` holds exactly `count` uint16-length-prefixed entries. */
function holdsEntries(b: Buffer, count: number): boolean {
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 2 > b.length) return false;
    off += 2 + b.readUInt16BE(off);
  }
  return off === b.length;
}

export class Journal {
  private fh: FileHandle | null = null;
  private segHeader: Buffer | null = null;
  private dek: Buffer | null = null;
  private segBytes = 0;
  private segments: Segment[] = [];
  private readonly context: Buffer;
  /** append, trim and close run one at a time (trim may close the segment append writes to). */
  private chain: Promise<unknown> = Promise.resolve();

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private constructor(
    private readonly dir: string,
    private readonly kek: () => Kek,
    origin: string,
    private readonly rotateBytes: number,
  ) {
    this.context = Buffer.from(`journal ${origin}`);
  }

  /**
   * Opens the journal and replays it. Returns the batches found, in order; cuts a torn tail.
   * Throws STORAGE_CORRUPT when a segment in the middle is damaged (acknowledged data would
   * be lost, so the operator must look).
   */
  static async open(dir: string, kek: () => Kek, lookup: KekLookup, origin: string, opts: { rotateBytes?: number } = {}): Promise<{ journal: Journal; batches: JournalBatch[] }> {
    await mkdir(dir, { recursive: true });
    const j = new Journal(dir, kek, origin, opts.rotateBytes ?? ROTATE_BYTES);
    const names = (await readdir(dir)).filter((n) => /^[0-9]{16}\.wal$/.test(n)).sort();
    const batches: JournalBatch[] = [];
    for (let s = 0; s < names.length; s++) {
      const path = join(dir, names[s]!);
      const last = s === names.length - 1;
      const data = await readFile(path);
      const firstIndex = Number(names[s]!.slice(0, 16));
      if (data.length < SEG_HEADER || !data.subarray(0, 4).equals(SEG_MAGIC)) {
        if (last && data.length <= SEG_HEADER) {
          await unlink(path); // created but never written to: nothing was acknowledged from it
          continue;
        }
        throw new CustodyError('STORAGE_CORRUPT', `Journal segment ${path} has a damaged header; acknowledged entries may be in it. Restore it from backup.`);
      }
      const header = data.subarray(0, SEG_HEADER);
      const { dek } = unwrapDek(header.subarray(4), lookup, `journal segment ${path}`);
      let off = SEG_HEADER;
      let end = firstIndex;
      while (off < data.length) {
        const rec = j.readRecord(data, off, header, dek);
        if (!rec) {
          if (!last) throw new CustodyError('STORAGE_CORRUPT', `Journal segment ${path} is damaged at byte ${off}; acknowledged entries may be lost. Restore it from backup.`);
          // torn tail of the newest segment: never acknowledged; cut it so appends continue cleanly
          const fh = await open(path, 'r+');
          await fh.truncate(off);
          await fh.sync();
          await fh.close();
          break;
        }
        if (rec.batch.firstIndex !== end) {
          throw new CustodyError('STORAGE_CORRUPT', `Journal segment ${path} jumps from index ${end} to ${rec.batch.firstIndex}.`);
        }
        batches.push(rec.batch);
        end += rec.batch.count;
        off = rec.next;
      }
      j.segments.push({ path, firstIndex, endIndex: end });
    }
    for (let i = 1; i < batches.length; i++) {
      const prev = batches[i - 1]!;
      if (batches[i]!.firstIndex !== prev.firstIndex + prev.count) {
        throw new CustodyError('STORAGE_CORRUPT', `The journal in ${dir} has a gap before index ${batches[i]!.firstIndex}.`);
      }
    }
    return { journal: j, batches };
  }

  private readRecord(data: Buffer, off: number, segHeader: Buffer, dek: Buffer): { batch: JournalBatch; next: number } | null {
    if (off + REC_HEADER > data.length || !data.subarray(off, off + 4).equals(REC_MAGIC)) return null;
    const first = data.readBigUInt64BE(off + 4);
    const count = data.readUInt32BE(off + 12);
    const len = data.readUInt32BE(off + 16);
    if (off + REC_HEADER + len > data.length || first > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    const aad = Buffer.concat([data.subarray(off, off + REC_HEADER), segHeader, this.context]);
    const plain = decryptWithDek(dek, data.subarray(off + REC_HEADER, off + REC_HEADER + len), aad);
    if (!plain) return null;
    if (!holdsEntries(plain, count)) return null;
    return { batch: { firstIndex: Number(first), count, plain }, next: off + REC_HEADER + len };
  }

  private async startSegment(firstIndex: number): Promise<void> {
    const path = join(this.dir, `${String(firstIndex).padStart(16, '0')}.wal`);
    this.dek = randomBytes(32);
    this.segHeader = Buffer.concat([SEG_MAGIC, wrapDek(this.kek(), this.dek)]);
    const fh = await open(path, 'w', 0o600);
    try {
      await fh.write(this.segHeader, 0, this.segHeader.length, 0);
      await fh.sync();
      await fsyncDir(this.dir);
    } catch (e) {
      await fh.close();
      await unlink(path).catch(() => undefined);
      throw e;
    }
    this.fh = fh;
    this.segBytes = this.segHeader.length;
    this.segments = this.segments.filter((s) => s.path !== path); // an emptied segment of the same name was just replaced
    this.segments.push({ path, firstIndex, endIndex: firstIndex });
  }

  /**
   * Appends one batch (`count` entries, encoded in `groups`) and returns once it is durable
   * (fdatasync). The groups are encrypted as one stream and written with one writev, without
   * concatenating them. On failure (disk full, I/O error) the segment is cut back to where it
   * was, so nothing half-written stays behind. Callers must not run two appends at once.
   */
  append(firstIndex: number, count: number, groups: Buffer[]): Promise<void> {
    return this.serial(() => this.appendNow(firstIndex, count, groups));
  }

  private async appendNow(firstIndex: number, count: number, groups: Buffer[]): Promise<void> {
    try {
      if (this.fh && this.segBytes > this.rotateBytes) {
        await this.fh.close();
        this.fh = null;
      }
      if (!this.fh) await this.startSegment(firstIndex);
      const seg = this.segments[this.segments.length - 1]!;
      if (seg.endIndex !== firstIndex) throw new Error(`journal: append at ${firstIndex}, expected ${seg.endIndex}`);
      let plainLen = 0;
      for (const g of groups) plainLen += g.length;
      const header = Buffer.allocUnsafe(REC_HEADER);
      REC_MAGIC.copy(header, 0);
      header.writeBigUInt64BE(BigInt(firstIndex), 4);
      header.writeUInt32BE(count, 12);
      header.writeUInt32BE(plainLen + 28, 16);
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', this.dek!, iv);
      c.setAAD(Buffer.concat([header, this.segHeader!, this.context]));
      const parts: Buffer[] = [header, iv];
      for (const g of groups) parts.push(c.update(g));
      parts.push(c.final(), c.getAuthTag());
      const recLen = REC_HEADER + plainLen + 28;
      const at = this.segBytes;
      try {
        let written = 0;
        while (written < recLen) {
          const { bytesWritten } = await this.fh!.writev(written === 0 ? parts : remaining(parts, written), at + written);
          written += bytesWritten;
        }
        await this.fh!.datasync();
      } catch (e) {
        await this.fh!.truncate(at).catch(() => undefined);
        throw e;
      }
      this.segBytes += recLen;
      seg.endIndex = firstIndex + count;
    } catch (e) {
      throw storageError(e, 'append to the journal');
    }
  }

  /** Drops segments wholly covered by the published checkpoint (never the one being written). */
  trim(integratedSize: number): Promise<void> {
    return this.serial(() => this.trimNow(integratedSize));
  }

  private async trimNow(integratedSize: number): Promise<void> {
    const active = this.fh ? this.segments[this.segments.length - 1] : undefined;
    const keep: Segment[] = [];
    for (const s of this.segments) {
      if (s !== active && s.endIndex <= integratedSize) await unlink(s.path).catch(() => undefined);
      else keep.push(s);
    }
    this.segments = keep;
  }

  close(): Promise<void> {
    return this.serial(async () => {
      await this.fh?.close();
      this.fh = null;
    });
  }
}

/** The unwritten rest of `parts` after a short write of `done` bytes. */
function remaining(parts: Buffer[], done: number): Buffer[] {
  const out: Buffer[] = [];
  for (const p of parts) {
    if (done >= p.length) {
      done -= p.length;
      continue;
    }
    out.push(done > 0 ? p.subarray(done) : p);
    done = 0;
  }
  return out;
}

/** Maps an OS error to the API's error: a full disk or failing device is a 503, not a crash. */
export function storageError(e: unknown, what: string): CustodyError {
  if (e instanceof CustodyError) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new CustodyError('STORAGE_UNAVAILABLE', `Could not ${what}: the disk is full. Free space on the vault's data volume; nothing acknowledged was lost.`, { errno: code }, { cause: e });
  }
  return new CustodyError('STORAGE_UNAVAILABLE', `Could not ${what}: ${(e as Error)?.message ?? String(e)}.`, { errno: code }, { cause: e });
}
