/**
 * The custody-entry/v1 envelope (docs/FORMAT.md), parsed in the browser from the exact leaf
 * bytes. The page shows what these bytes say — not what the server's JSON says — because
 * these are the bytes the inclusion proof covers.
 */

import { parseEnvelope as parseVerifiedEnvelope, isVerifyError, type Envelope as VerifiedEnvelope } from '@custody/verify';

/** @custody/verify's envelope, with `body` always present: the inline record, empty for a blob entry. */
export type Envelope = Omit<VerifiedEnvelope, 'body'> & { body: Uint8Array };

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
