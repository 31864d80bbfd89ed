/**
 * Crash-safe file writes: write a temporary file beside the target, fsync it, rename it over
 * the target, then fsync the directory so the rename itself survives a power cut.
 * A reader therefore sees the old file or the new one, never a torn one.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync, mkdirSync, unlinkSync } from 'node:fs';
import { open as openAsync, rename, mkdir, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempName(path);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDirSync(dirname(path));
}

export async function fsyncDir(dir: string): Promise<void> {
  const h = await openAsync(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Writes `data` to a temporary file and fsyncs it, then renames it into place. The caller
 * fsyncs the directories afterwards (once per batch of files, see `fsyncDirs`).
 */
export async function writeFileDurable(path: string, data: Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempName(path);
  let h;
  try {
    h = await openAsync(tmp, 'wx', mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await mkdir(dirname(path), { recursive: true });
    h = await openAsync(tmp, 'wx', mode);
  }
  try {
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await h.write(data, off, data.length - off);
      off += bytesWritten;
    }
    await h.sync();
  } catch (e) {
    await h.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await h.close();
  await rename(tmp, path);
}

export async function fsyncDirs(dirs: Iterable<string>): Promise<void> {
  await Promise.all([...new Set(dirs)].map((d) => fsyncDir(d)));
}
