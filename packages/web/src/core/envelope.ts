/**
 * The custody-entry/v1 envelope (docs/FORMAT.md), parsed in the browser from the exact leaf
 * bytes. The page shows what these bytes say — not what the server's JSON says — because
 * these are the bytes the inclusion proof covers.
 */

import { parseEnvelope as parseVerifiedEnvelope, isVerifyError } from '@custody/verify';

export interface Envelope {
  origin: string;
  region: string;
  source: string;
  producer: string;
  received: string;
  attrs: Record<string, string>;
  salt: string;
  blob: { sha256: string; size: number } | null;
  /** The inline record (empty for a blob entry): a view into the entry bytes. */
  body: Uint8Array;
}

export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

/**
 * The envelope of an entry, read by @custody/verify's parser (the same strict rules the vault
 * writes by); the page keeps its own error type and an always-present body.
 */
export function parseEnvelope(bytes: Uint8Array): Envelope {
  try {
    const e = parseVerifiedEnvelope(bytes);
    return { ...e, body: e.body ?? bytes.subarray(bytes.length) };
  } catch (err) {
    if (isVerifyError(err)) throw new EnvelopeError(err.message);
    throw err;
  }
}
