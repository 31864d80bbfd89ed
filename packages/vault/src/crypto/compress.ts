/**
 * Compression of sealed objects (entry bundles, blobs) before they are encrypted (aead.ts).
 * Encrypted bytes do not compress, so it must happen first; the integrator does it in its
 * worker thread (sequencer/integrator-worker.ts), inside `seal`.
 *
 * The codec is Brotli at quality 1 (node:zlib; zstd is not in Node 20). Measured on the
 * CloudTrail samples as the vault stores them (envelopes in 256-entry bundles, one log per
 * region), stored bytes ÷ raw record bytes, and single-core compression speed:
 *
 *   deflate-raw level 1  0.164  325 MB/s      brotli q1  0.141  930 MB/s
 *   deflate-raw level 6  0.142  200 MB/s      brotli q3  0.131  400 MB/s
 *   deflate-raw level 9  0.139  175 MB/s      brotli q5  0.123  160 MB/s
 *
 * Brotli q1 is both the fastest and better than deflate's default level; the higher
 * qualities buy a few percent for 2–6× the CPU on the ingest path (docs/FORMAT.md, figure 13
 * of docs/BENCHMARKS.md). Decompression runs at ~1.3 GB/s for every quality.
 *
 * The sealed header's flags byte (bound into both AES-GCM layers, so it cannot be flipped)
 * says how the plaintext was compressed: 0 = not compressed (everything written before this
 * existed, and objects that did not shrink), FLAG_BROTLI = Brotli.
 */
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import { CustodyError } from '../errors.js';

export const FLAG_BROTLI = 0x01;
/** The flag bits this version understands; any other bit set is refused. */
export const KNOWN_FLAGS = FLAG_BROTLI;

/**
 * The largest plaintext any sealed object may inflate to: a full entry bundle of 256 entries
 * of at most 65,535 bytes, each with its uint16 length (C2SP tlog-tiles). Blobs (≤ 1 MiB) fit.
 */
export const MAX_SEALED_PLAINTEXT = 256 * (2 + 65535);

const QUALITY = 1;

/** The plaintext to encrypt and the flags that say how to read it back. */
export function compressForSealing(pieces: Uint8Array[]): { data: Uint8Array[]; flags: number } {
  const plain = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  if (plain.length < 64) return { data: pieces, flags: 0 };
  const packed = brotliCompressSync(plain, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: QUALITY,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: plain.length,
    },
  });
  // Data that does not shrink (already compressed, random) is kept as it is.
  if (packed.length >= plain.length) return { data: pieces, flags: 0 };
  return { data: [packed], flags: FLAG_BROTLI };
}

/**
 * The plaintext of an opened object. The output is capped at `max` bytes, so a crafted object
 * (it would need the key: the data is authenticated first) cannot exhaust memory.
 */
export function inflateSealed(data: Buffer, flags: number, what: string, max = MAX_SEALED_PLAINTEXT): Buffer {
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new CustodyError('STORAGE_CORRUPT', `${what} was written by a newer version of Custody (format flags 0x${flags.toString(16)}): upgrade Custody to read it.`, { what });
  }
  if ((flags & FLAG_BROTLI) === 0) return data;
  try {
    return brotliDecompressSync(data, { maxOutputLength: max });
  } catch (e) {
    const tooBig = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError;
    throw new CustodyError(
      'STORAGE_CORRUPT',
      tooBig
        ? `${what} inflates to more than ${max} bytes, more than any bundle or record can hold: it was not written by Custody. Restore it from a backup.`
        : `${what} authenticates but does not decompress (${(e as Error).message}): it was not written by Custody. Restore it from a backup.`,
      { what },
    );
  }
}

// ---- benchmark baseline ------------------------------------------------------------------

/** Marks an object written with sealing off (benchmark baseline only; see below). */
export const PLAINTEXT_MAGIC = Buffer.from('CSTP');

/**
 * CUSTODY_BENCH_PLAINTEXT_BUNDLES=1 is the same-run baseline of benchmark figure 13 (`npm run
 * bench`, bench/compression.ts): bundles and blobs are written without compression and
 * encryption, so the benchmark can show what sealing costs. It is not a production option and
 * is not documented as one: `custody serve` logs a warning and records
 * `vault.sealing.disabled` in the audit log when it is set, and a vault started without it
 * refuses to read such objects (STORAGE_CORRUPT).
 */
export function plaintextForBenchmark(): boolean {
  return process.env['CUSTODY_BENCH_PLAINTEXT_BUNDLES'] === '1';
}
