/**
 * Evidence bundles (custody-evidence/v1, docs/EVIDENCE.md) checked in the browser: the zip is
 * opened with fflate and handed to `verifyBundle` from @custody/verify — the same function the
 * `custody verify-bundle` CLI runs. Nothing leaves the page.
 */
import { unzipSync } from 'fflate';
import { verifyBundle, type BundleReport } from '@custody/verify';

export type { BundleReport, BundleProblem, BundleLogReport } from '@custody/verify';

/**
 * Checks the unzipped files with the keys the user trusts (pinned in this browser or pasted).
 * Throws only for unusable options (a malformed key); everything wrong with the bundle is in
 * the report, naming its file.
 */
export function checkBundle(files: Map<string, Uint8Array>, keys: string[]): BundleReport {
  return verifyBundle(files, { keys });
}

export class BundleReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleReadError';
  }
}

/** Largest bundle the page opens, and most bytes it unpacks (everything is held in memory). */
export const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;
export const MAX_UNZIPPED_BYTES = 1024 * 1024 * 1024;

/**
 * The files of a zip, by path (every entry, so verifyBundle names anything unexpected).
 * fflate reads the container leniently: bytes that change no file (dates, extra fields) are not
 * noticed here, unlike the CLI's strict reader; every byte of every file still is.
 */
export function unzipBundle(zip: Uint8Array): Map<string, Uint8Array> {
  if (zip.length > MAX_BUNDLE_BYTES) throw new BundleReadError(`The file is ${zip.length} bytes; this page opens bundles up to ${MAX_BUNDLE_BYTES} bytes. Use \`custody verify-bundle\` for larger ones.`);
  if (zip.length < 4 || zip[0] !== 0x50 || zip[1] !== 0x4b) throw new BundleReadError('This is not a zip file. An evidence bundle is the .zip that "Export evidence" or `custody export` produced.');
  let files: Record<string, Uint8Array>;
  let declared = 0;
  try {
    files = unzipSync(zip, {
      // A zip bomb is refused from its directory, before anything is inflated.
      filter: (f) => {
        declared += f.originalSize;
        if (declared > MAX_UNZIPPED_BYTES) throw new BundleReadError(`The zip unpacks to more than ${MAX_UNZIPPED_BYTES} bytes; this page does not open it. Use \`custody verify-bundle\`.`);
        return true;
      },
    });
  } catch (e) {
    if (e instanceof BundleReadError) throw e;
    throw new BundleReadError(`The zip cannot be read (${e instanceof Error ? e.message : String(e)}); it is damaged or incomplete.`);
  }
  return new Map(Object.entries(files));
}
