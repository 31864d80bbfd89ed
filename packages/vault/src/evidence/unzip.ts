/**
 * Reads an evidence bundle's zip strictly: the archive must be exactly in the form zip.ts
 * writes, so a change to any byte of it — a file's data, a header, a name, a date, the
 * padding bits at the end of a deflate stream, the end records — is reported, not only changes
 * that reach the files. A bundle re-zipped by another tool fails here; unzip it and verify the
 * folder instead (the files are what the proofs cover).
 *
 * Problems name the file inside the archive when they can, else the archive itself.
 */
import { crc32, inflateRawSync } from 'node:zlib';
import type { BundleProblem } from '@custody/verify';
import {
  EXTERNAL_ATTRS,
  EXTRA_ID,
  EXTRA_SIZE,
  FLAGS,
  SIG_CENTRAL,
  SIG_END,
  SIG_LOCAL,
  SIG_ZIP64_END,
  SIG_ZIP64_LOCATOR,
  VERSION_MADE_BY,
  VERSION_NEEDED,
  ZIP64_MADE_BY,
  ZIP64_VERSION,
} from './zip.js';

export interface ReadZipResult {
  files: Map<string, Uint8Array>;
  problems: BundleProblem[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class ZipFormatError extends Error {
  constructor(
    readonly file: string | null,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Unzips `zip` (named `label` in problems). Structural damage stops the reading (one problem
 * naming where); damage to one file's data is reported for that file and the others are kept.
 */
export function readZip(zip: Uint8Array, label: string): ReadZipResult {
  const files = new Map<string, Uint8Array>();
  const problems: BundleProblem[] = [];
  const b = Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength);
  try {
    readInto(b, files, problems, label);
  } catch (e) {
    if (!(e instanceof ZipFormatError)) throw e;
    problems.push({ file: e.file ?? label, kind: 'ZIP', message: e.file ? `${e.message} (in ${label})` : e.message });
  }
  return { files, problems };
}

function readInto(b: Buffer, files: Map<string, Uint8Array>, problems: BundleProblem[], label: string): void {
  const bad = (why: string, file: string | null = null): never => {
    throw new ZipFormatError(file, file ? `The zip entry of this file ${why}.` : `${label} ${why}.`);
  };
  const u16 = (at: number): number => b.readUInt16LE(at);
  const u32 = (at: number): number => b.readUInt32LE(at);
  const u64 = (at: number): number => {
    const v = b.readBigUInt64LE(at);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  };
  if (b.length < 22) bad('is not a zip file (too short)');
  const end = b.length - 22;
  if (u32(end) !== SIG_END) bad('is not a Custody evidence zip: it does not end with a zip end record (it may be truncated, have bytes appended, or carry a comment)');
  if (u16(end + 4) !== 0 || u16(end + 6) !== 0 || u16(end + 20) !== 0) bad('has a zip end record that is not in the form Custody writes (disk numbers or comment)');
  let count = u16(end + 8);
  if (u16(end + 10) !== count) bad('has a zip end record whose two file counts differ');
  let cdSize = u32(end + 12);
  let cdOffset = u32(end + 16);
  let cdEnd = end; // where the central directory must end
  if (count === 0xffff) {
    // Zip64 end record and locator, exactly as zip.ts writes them.
    const loc = end - 20;
    const z = end - 76;
    if (z < 0 || u32(loc) !== SIG_ZIP64_LOCATOR || u32(loc + 4) !== 0 || u64(loc + 8) !== z || u32(loc + 16) !== 1) bad('has a damaged Zip64 end locator');
    if (u32(z) !== SIG_ZIP64_END || u64(z + 4) !== 44 || u16(z + 12) !== ZIP64_MADE_BY || u16(z + 14) !== ZIP64_VERSION || u32(z + 16) !== 0 || u32(z + 20) !== 0) bad('has a damaged Zip64 end record');
    count = u64(z + 24);
    if (u64(z + 32) !== count) bad('has a Zip64 end record whose two file counts differ');
    if (count < 0xffff) bad('uses a Zip64 end record for fewer than 65,535 files, which Custody never writes');
    if (u64(z + 40) !== cdSize || u64(z + 48) !== cdOffset) bad('has end records that disagree about the central directory');
    cdEnd = z;
  }
  if (cdOffset + cdSize !== cdEnd) bad('has a central directory that does not end where the end record begins');
  /** The name a local header at `at` gives its file, or null when there is none readable. */
  const localNameAt = (at: number): string | null => {
    if (at + 30 > cdOffset || u32(at) !== SIG_LOCAL) return null;
    try {
      return utf8.decode(b.subarray(at + 30, at + 30 + Math.min(u16(at + 26), cdOffset - at - 30)));
    } catch {
      return null;
    }
  };
  // Walk the central directory and the local files in step: both in order, back to back.
  let c = cdOffset;
  let local = 0;
  for (let i = 0; i < count; i++) {
    if (c + 46 > cdEnd || u32(c) !== SIG_CENTRAL) bad(`has a damaged central directory (record ${i + 1} of ${count})`);
    const nameLen = u16(c + 28);
    const extraLen = u16(c + 30);
    if (c + 46 + nameLen + extraLen > cdEnd) bad(`has a damaged central directory (record ${i + 1} of ${count})`);
    let name: string;
    try {
      name = utf8.decode(b.subarray(c + 46, c + 46 + nameLen));
    } catch {
      return bad(`has a file name that is not UTF-8 (central record ${i + 1})`);
    }
    // The central name is only trusted when the local header repeats it; when a damaged
    // central record names something else, the zip as a whole is named (and the local name too).
    const whose = (): string | null => {
      const ln = localNameAt(local);
      if (ln === name) return name;
      if (ln !== null) problems.push({ file: ln, kind: 'ZIP', message: `The central directory record of this file is damaged: it names the file ${JSON.stringify(name)} (in ${label}).` });
      return null;
    };
    const method = u16(c + 10);
    const crc = u32(c + 16);
    const csize = u32(c + 20);
    const size = u32(c + 24);
    if (
      u16(c + 4) !== VERSION_MADE_BY ||
      u16(c + 6) !== VERSION_NEEDED ||
      u16(c + 8) !== FLAGS ||
      (method !== 0 && method !== 8) ||
      extraLen !== (method === 8 ? EXTRA_SIZE : 0) ||
      u16(c + 32) !== 0 ||
      u16(c + 34) !== 0 ||
      u16(c + 36) !== 0 ||
      u32(c + 38) !== EXTERNAL_ATTRS ||
      nameLen === 0 ||
      name.endsWith('/')
    ) {
      bad('has a central directory record that is not in the form Custody writes', whose());
    }
    if (method === 8 && (u16(c + 46 + nameLen) !== EXTRA_ID || u16(c + 48 + nameLen) !== 4)) bad('has a damaged extra field in the central directory', whose());
    if (u32(c + 42) !== local) bad('is not where the central directory says', whose());
    // The local header must repeat the central record.
    const hl = 30 + nameLen + extraLen;
    if (local + hl + csize > cdOffset) bad('runs past the start of the central directory', name);
    if (u32(local) !== SIG_LOCAL || !b.subarray(local + 4, local + 30).equals(b.subarray(c + 6, c + 32)) || !b.subarray(local + 30, local + hl).equals(b.subarray(c + 46, c + 46 + nameLen + extraLen))) {
      // Either copy may be the changed one: name the file as the local header has it, too.
      const localName = localNameAt(local);
      if (localName !== null && localName !== name) problems.push({ file: localName, kind: 'ZIP', message: `The zip entry of this file has a local header that differs from its central directory record, which names it ${JSON.stringify(name)} (in ${label}).` });
      bad('has a local header that differs from its central directory record', name);
    }
    const data = b.subarray(local + hl, local + hl + csize);
    local += hl + csize;
    c += 46 + nameLen + extraLen;
    if (files.has(name)) {
      problems.push({ file: name, kind: 'ZIP', message: `The zip holds two files named ${name}.` });
      continue;
    }
    const content = fileData(name, method, data, size, crc, method === 8 ? u32(c - 4) : null, problems);
    if (content !== null) files.set(name, content);
  }
  if (c !== cdEnd) bad('has bytes after the last central directory record');
  if (local !== cdOffset) bad('has bytes between the last file and the central directory');
}

/** The file's bytes, or null (with a problem) when they do not check. */
function fileData(name: string, method: number, data: Buffer, size: number, crc: number, bodyCrc: number | null, problems: BundleProblem[]): Uint8Array | null {
  const fail = (why: string): null => {
    problems.push({ file: name, kind: 'ZIP', message: `The zip entry of this file ${why}.` });
    return null;
  };
  let out: Buffer;
  if (method === 8) {
    if (crc32(data) !== bodyCrc) return fail('has compressed bytes that do not match their CRC-32 (it was changed)');
    try {
      // An output chunk just larger than the file: one allocation, no 16 KB default per file.
      out = inflateRawSync(data, { maxOutputLength: Math.max(size, 1), chunkSize: Math.max(64, size + 16) });
    } catch {
      return fail('does not inflate');
    }
  } else out = data;
  if (out.length !== size) return fail(`holds ${out.length} bytes where its header says ${size}`);
  if (crc32(out) !== crc) return fail('does not match its CRC-32 (it was changed)');
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
