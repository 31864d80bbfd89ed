/**
 * The CPU-heavy half of writing a bundle, on its own thread: for a batch of files, CRC-32,
 * SHA-256 and deflate; for the batch's entries, the check that each inclusion proof leads to
 * the checkpoint's root (a bundle that does not verify is never handed out). The exporting
 * thread reads, decrypts and proves the next batch meanwhile, then writes this one's bytes.
 */
import { parentPort } from 'node:worker_threads';
import { crc32, deflateRawSync } from 'node:zlib';
import { hashLeaf, verifyInclusion, VerifyError } from '@custody/verify';
import { nativeSha256 } from '../crypto/sha256.js';

export interface PackRequest {
  id: number;
  level: number;
  /** The files' bytes, back to back. */
  data: Uint8Array;
  files: Array<{ len: number; compress: boolean }>;
  /** Entries to check: the file holding the entry, its index and proof (hashes back to back). */
  checks: Array<{ file: number; index: number; proof: Uint8Array }>;
  size: number;
  root: Uint8Array;
}

export interface PackedFile {
  size: number;
  crc: number;
  /** 8 deflated, 0 stored */
  method: number;
  /** CRC-32 of the stored bytes when deflated. */
  bodyCrc: number;
  bodyLen: number;
}

export interface PackResponse {
  id: number;
  /** Each file's stored bytes, back to back. */
  out: Uint8Array;
  files: PackedFile[];
  /** SHA-256 of each file's content, back to back. */
  sha: Uint8Array;
  /** Entries whose proof does not lead to the root. */
  bad: Array<{ index: number; message: string }>;
  error?: string;
}

export function pack(req: PackRequest): PackResponse {
  const bodies: Uint8Array[] = [];
  const files: PackedFile[] = [];
  const sha = new Uint8Array(req.files.length * 32);
  const starts: number[] = [];
  let at = 0;
  let outLen = 0;
  req.files.forEach((f, i) => {
    const data = req.data.subarray(at, at + f.len);
    starts.push(at);
    at += f.len;
    sha.set(nativeSha256(data), i * 32);
    const crc = crc32(data);
    let body: Uint8Array = data;
    let method = 0;
    if (f.compress && data.length >= 64) {
      // An output chunk the size of the input: one allocation per file, not 16 KB.
      const c = deflateRawSync(data, { level: req.level, chunkSize: data.length + 64 });
      if (c.length < data.length) {
        body = c;
        method = 8;
      }
    }
    bodies.push(body);
    files.push({ size: data.length, crc, method, bodyCrc: method === 8 ? crc32(body) : 0, bodyLen: body.length });
    outLen += body.length;
  });
  const bad: PackResponse['bad'] = [];
  for (const c of req.checks) {
    const entry = req.data.subarray(starts[c.file]!, starts[c.file]! + req.files[c.file]!.len);
    const proof: Uint8Array[] = [];
    for (let o = 0; o < c.proof.length; o += 32) proof.push(c.proof.subarray(o, o + 32));
    try {
      verifyInclusion(hashLeaf(entry, nativeSha256), c.index, req.size, proof, req.root, nativeSha256);
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      bad.push({ index: c.index, message: e.message });
    }
  }
  const out = new Uint8Array(outLen);
  let o = 0;
  for (const b of bodies) {
    out.set(b, o);
    o += b.length;
  }
  return { id: req.id, out, files, sha, bad };
}

parentPort?.on('message', (req: PackRequest) => {
  let res: PackResponse;
  try {
    res = pack(req);
  } catch (e) {
    res = { id: req.id, out: new Uint8Array(0), files: [], sha: new Uint8Array(0), bad: [], error: (e as Error)?.message ?? String(e) };
  }
  parentPort!.postMessage(res, [res.out.buffer as ArrayBuffer, res.sha.buffer as ArrayBuffer]);
});
