/**
 * One place turns every failure into the API's error body
 *   { "error": { "code": "...", "message": "...", "details": {...} } }
 * with the status from the error table (src/errors.ts). Fastify's own errors are mapped to
 * our codes so clients only ever see one vocabulary.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { CustodyError, ERROR_CODES, type ErrorCode } from '../errors.js';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'EMPTY_BATCH',
  FST_ERR_CTP_EMPTY_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_VALIDATION: 'BAD_REQUEST',
  FST_ERR_BAD_URL: 'BAD_REQUEST',
  FST_ERR_ASYNC_CONSTRAINT: 'BAD_REQUEST',
};

const FASTIFY_MESSAGES: Partial<Record<ErrorCode, string>> = {
  BODY_TOO_LARGE: 'The body is larger than 16 MiB; send smaller batches.',
  UNSUPPORTED_MEDIA_TYPE: 'Send application/x-ndjson (one JSON record per line) or application/json (an array of records).',
};

export function sendError(reply: FastifyReply, e: CustodyError): FastifyReply {
  const retry = e.details?.['retryAfter'];
  if (typeof retry === 'number') reply.header('Retry-After', String(retry));
  else if (e.status === 503) reply.header('Retry-After', '5');
  return reply.code(e.status).type('application/json; charset=utf-8').send({ error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } });
}

export function toCustodyError(err: unknown): CustodyError {
  if (err instanceof CustodyError) return err;
  const fe = err as FastifyError;
  const mapped = fe?.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return new CustodyError(mapped, FASTIFY_MESSAGES[mapped] ?? fe.message);
  if (fe?.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code: ErrorCode = fe.statusCode === 413 ? 'BODY_TOO_LARGE' : fe.statusCode === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST';
    return new CustodyError(code, fe.message);
  }
  return new CustodyError('INTERNAL', 'Unexpected failure inside the vault; the operator can find it in the server log.');
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const e = toCustodyError(err);
    if (e.code === 'INTERNAL' || e.code === 'STORAGE_CORRUPT') req.log.error({ err }, 'request failed');
    else req.log.info({ code: e.code }, e.message);
    return sendError(reply, e);
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, new CustodyError('NOT_FOUND', `Nothing at ${req.method} ${req.url.split('?')[0]}. See docs/API.md for the routes.`)),
  );
}

export { ERROR_CODES };
