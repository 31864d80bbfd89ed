/**
 * One error type for the whole vault, with a string code per failure; the table below is
 * the API's error reference (docs/ERRORS.md is generated from the same facts by hand).
 * Tests assert `code`, never `message`. A message tells the user what to do next.
 */
export const ERROR_CODES = {
  // request shape (ingest, API parameters)
  BAD_REQUEST: { status: 400, summary: 'The request is malformed.' },
  BAD_JSON_LINES: { status: 400, summary: 'No record of the batch is valid; the answer lists each bad line and why.' },
  UNKNOWN_SOURCE: { status: 400, summary: 'The source type is not one Custody can parse (GET /v1/sources lists them).' },
  REGION_NOT_ALLOWED: { status: 422, summary: 'A record names a region this vault does not keep; it was refused, never stored elsewhere.' },
  BAD_ENCODING: { status: 400, summary: 'The body is not valid UTF-8 or its Content-Encoding cannot be decoded.' },
  EMPTY_BATCH: { status: 400, summary: 'The body holds no records.' },
  RECORD_TOO_LARGE: { status: 413, summary: 'A record is larger than 1 MiB.' },
  BODY_TOO_LARGE: { status: 413, summary: 'The body is larger than 16 MiB (after decompression).' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, summary: 'Send application/x-ndjson or application/json.' },
  BAD_QUERY: { status: 400, summary: 'The search query cannot be read; details.position is where (0-based) and details.expected what was expected there.' },
  // identity and permission
  UNAUTHENTICATED: { status: 401, summary: 'No valid token was presented.' },
  FORBIDDEN: { status: 403, summary: 'The token is valid but its role may not do this.' },
  METHOD_NOT_ALLOWED: { status: 405, summary: 'Records cannot be changed or deleted.' },
  // resources
  NOT_FOUND: { status: 404, summary: 'No such resource.' },
  LOG_NOT_FOUND: { status: 404, summary: 'No log with that name.' },
  ENTRY_NOT_FOUND: { status: 404, summary: 'No entry with that index (yet).' },
  PRINCIPAL_NOT_FOUND: { status: 404, summary: 'No principal with that id.' },
  PRINCIPAL_EXISTS: { status: 409, summary: 'A principal with that name already exists.' },
  // admins: second factor and two-person rule (auth/)
  TOTP_REQUIRED: { status: 401, summary: 'This action needs a current TOTP code from the admin\'s authenticator app (header X-Custody-TOTP).' },
  TOTP_INVALID: { status: 401, summary: 'The TOTP code is wrong, already used, or expired.' },
  TOTP_NOT_ENROLLED: { status: 403, summary: 'This admin has no second factor yet; enroll one first (custody admin totp enroll).' },
  APPROVAL_REQUIRED: { status: 202, summary: 'A dangerous action was requested; it takes effect when a different admin approves it.' },
  APPROVAL_NOT_FOUND: { status: 404, summary: 'No approval request with that id.' },
  APPROVAL_CLOSED: { status: 409, summary: 'The approval request has expired or was already decided.' },
  SELF_APPROVAL: { status: 403, summary: 'An admin cannot approve their own request; a different admin must.' },
  // alarms: rules and notifiers (alarms/)
  RULE_INVALID: { status: 400, summary: 'The alarm rule (or rule file) is malformed; details name the field.' },
  RULE_NOT_FOUND: { status: 404, summary: 'No alarm rule with that id.' },
  NOTIFIER_INVALID: { status: 400, summary: 'The notifier configuration is malformed; details name the field.' },
  NOTIFIER_NOT_FOUND: { status: 404, summary: 'No notifier with that id.' },
  // retention (lifecycle/)
  RETENTION_SHORTENED: { status: 409, summary: 'Retention can only be extended, never shortened.' },
  OBJECT_LOCKED: { status: 409, summary: 'The S3 object is under Object Lock (COMPLIANCE) retention until details.retainUntil; it can be deleted only after that date.' },
  ENTRY_SHREDDED: { status: 410, summary: 'The entry was past retention and crypto-shredded by an approved purge; its leaf hash and proofs remain.' },
  // archive tier (lifecycle/archive.ts, docs/ARCHIVE.md)
  ARCHIVE_RESTORE_PENDING: { status: 503, summary: 'The entry is in a cold archive class (S3 GLACIER or DEEP_ARCHIVE); a restore was started or is running. Retry-After and details say when to ask again.' },
  ARCHIVE_UNAVAILABLE: { status: 503, summary: 'The archive tier (directory or bucket) cannot be reached or written; the message says what to check.' },
  // capacity and storage
  PUSHBACK: { status: 503, summary: 'The vault is busy integrating; retry after the given delay.' },
  STORAGE_UNAVAILABLE: { status: 503, summary: 'Storage cannot take writes right now (for example the disk is full).' },
  NOT_READY: { status: 503, summary: 'The vault is still starting or recovering.' },
  NOT_AVAILABLE: { status: 501, summary: 'The feature is not available on a shared vault (S3 + PostgreSQL) yet; docs/PRODUCTION.md lists what is.' },
  WITNESS_POLICY: { status: 503, summary: 'Too few witnesses cosigned the new checkpoint (docs/WITNESS.md); the entries are durable and are published once the witness policy is met.' },
  STORAGE_CORRUPT: { status: 500, summary: 'Stored data does not match its proofs.' },
  INTERNAL: { status: 500, summary: 'Unexpected failure.' },
  // local (CLI / data directory) failures
  CONFIG: { status: 500, summary: 'The vault configuration or data directory is invalid.' },
  KEYRING: { status: 500, summary: 'The keyring is missing, unreadable or does not hold the needed key.' },
  KEYRING_LOCKED: { status: 500, summary: 'The keyring is protected (passphrase or AWS KMS) and the passphrase or key given does not open it.' },
  // AWS KMS (crypto/kms.ts): reads and writes that need a KMS key wait until it is usable again
  KMS_ACCESS_DENIED: { status: 503, summary: 'AWS KMS refused the vault the use of a key (key policy, IAM or credentials).' },
  KMS_KEY_DISABLED: { status: 503, summary: 'The AWS KMS key is disabled or pending deletion.' },
  KMS_KEY_NOT_FOUND: { status: 503, summary: 'The AWS KMS key does not exist in that region.' },
  KMS_UNAVAILABLE: { status: 503, summary: 'AWS KMS cannot be reached or is failing; the vault retries.' },
  VERIFY_FAILED: { status: 500, summary: 'Verification found a problem.' },
  IMPORT_SOURCE: { status: 500, summary: 'The folder or bucket to import from cannot be read.' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class CustodyError extends Error {
  override readonly name = 'CustodyError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export function isCustodyError(e: unknown, code?: ErrorCode): e is CustodyError {
  return e instanceof CustodyError && (code === undefined || e.code === code);
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}
