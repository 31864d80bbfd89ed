/**
 * The single error type of @custody/verify. Callers branch on `code`, never on the message.
 */
export type VerifyErrorCode =
  | 'INVALID_ARGUMENT'
  | 'MALFORMED_BASE64'
  | 'MALFORMED_CHECKPOINT'
  | 'MALFORMED_NOTE'
  | 'MALFORMED_KEY'
  | 'SIGNATURE_INVALID'
  | 'NO_TRUSTED_SIGNATURE'
  | 'ORIGIN_MISMATCH'
  | 'INCLUSION_PROOF_INVALID'
  | 'CONSISTENCY_PROOF_INVALID'
  | 'MALFORMED_PROOF_FILE'
  | 'MALFORMED_BUNDLE'
  | 'MALFORMED_TILE_PATH'
  | 'MALFORMED_TILE';

export class VerifyError extends Error {
  readonly code: VerifyErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: VerifyErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'VerifyError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

/** True when `e` is a VerifyError (optionally with the given code). */
export function isVerifyError(e: unknown, code?: VerifyErrorCode): e is VerifyError {
  return e instanceof VerifyError && (code === undefined || e.code === code);
}
