/**
 * Elasticsearch `_bulk`: what Logstash, Beats, Fluent Bit's es output and the Elasticsearch
 * clients send. docs/PROTOCOLS.md, "Elasticsearch _bulk".
 *
 * Wire facts (shared/reference/ingest-protocols.md; Elasticsearch "Bulk API" reference): the
 * body is NDJSON, an action line then (for index, create and update) a source line:
 *   {"index":{"_index":"logs","_id":"1"}}\n{"msg":"…"}\n{"delete":{"_index":"logs","_id":"1"}}\n
 * The answer is {"took":ms,"errors":bool,"items":[{"<action>":{"_index","_id","status",
 * "result"|"error",…}}]}, one item per action in order; a refused item carries
 * {"error":{"type","reason"}} and its own status while the others succeed. Clients check the
 * X-Elastic-Product: Elasticsearch response header and start with GET / (cluster info).
 *
 * index/create append the source document's exact bytes (source "es.<index>"). delete and
 * update would change stored records: each is refused in its item (403 security_exception, the
 * answer Elasticsearch gives for an action the user may not perform) and recorded in the
 * audit log as a tamper attempt.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { randomBytes } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { CustodyError } from '../../errors.js';
import { toCustodyError } from '../../server/errors.js';
import { auditContext } from '../../server/auth.js';
import { ingestRecords } from '../pipeline.js';
import { forEachLine, isBlank } from '../sources/generic.js';
import type { ParsedRecord } from '../types.js';
import type { ProtocolOptions } from './index.js';
import { MiB, MAX_RECORD_SIZE, MAX_UNITS, rawBodies, bodyOf, decodeContent, sourceName, learnFromJson, countStored, retryAfterOf, isBusy } from './common.js';

/**
 * Request body limit, before and after decompression. Logstash sends bulk requests of up to
 * 20 MiB (its target_bulk_bytes), so the limit leaves room above that.
 */
export const BULK_MAX_BODY = 32 * MiB;
/** Tamper attempts recorded one by one per request; the rest are counted in one event. */
const MAX_AUDITED_ITEMS = 20;
/** The version GET / reports: Beats and Logstash read the major version from it. */
export const ES_VERSION = '8.19.0';

const WRITE = { roles: ['writer' as const], credentials: ['basic', 'bearer', 'apikey'] as const };

type Op = 'index' | 'create' | 'update' | 'delete';
const OPS = new Set<Op>(['index', 'create', 'update', 'delete']);

interface EsError {
  type: string;
  reason: string;
}

function esError(reply: FastifyReply, status: number, err: EsError): FastifyReply {
  return reply
    .code(status)
    .type('application/json; charset=UTF-8')
    .send({ error: { root_cause: [err], type: err.type, reason: err.reason }, status });
}

/** Elasticsearch index name rules: lower case, none of \ / * ? " < > | , # : or space, no leading - _ +. */
function indexNameProblem(name: string): string | null {
  if (name.length === 0) return 'index is missing';
  if (Buffer.byteLength(name) > 255) return 'index name is longer than 255 bytes';
  if (name !== name.toLowerCase()) return 'index name must be lowercase';
  if (/[\\/*?"<>| ,#:]/.test(name)) return 'index name must not contain \\, /, *, ?, ", <, >, |, space, comma, # or :';
  if (/^[-_+]/.test(name)) return 'index name must not start with -, _ or +';
  if (name === '.' || name === '..') return 'index name must not be . or ..';
  return null;
}

/** Elasticsearch-style generated ids: 20 URL-safe base64 characters. */
function newId(): string {
  return randomBytes(15).toString('base64url');
}

interface Action {
  n: number; // 1-based action number
  op: Op;
  index: string;
  id: string | null;
  /** The client named the document (a generated id is no dedupe key). */
  named: boolean;
  source?: Buffer;
}

/** Splits the NDJSON body into actions; a malformed action line refuses the whole request. */
export function parseBulk(body: Buffer, defaultIndex: string | undefined): Action[] {
  const actions: Action[] = [];
  let pending: Action | null = null;
  forEachLine(body, (line, lineNo) => {
    if (isBlank(line)) return;
    if (pending) {
      pending.source = line;
      pending = null;
      return;
    }
    const n = actions.length + 1;
    if (n > MAX_UNITS) throw new CustodyError('BODY_TOO_LARGE', `The request holds more than ${MAX_UNITS} actions; send smaller bulk requests.`);
    const malformed = (why: string): never => {
      throw new CustodyError('BAD_REQUEST', `Malformed action/metadata line [${lineNo}], ${why}.`, { es: 'x_content_parse_exception', line: lineNo });
    };
    let v: unknown;
    try {
      v = JSON.parse(line.toString('utf8'));
    } catch (e) {
      return malformed(`it is not JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return malformed('expected START_OBJECT');
    const keys = Object.keys(v);
    if (keys.length !== 1 || !OPS.has(keys[0] as Op)) return malformed(`expected one of [create, delete, index, update] but found [${keys.join(', ').slice(0, 64)}]`);
    const op = keys[0] as Op;
    const meta = (v as Record<string, unknown>)[op] ?? {};
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return malformed(`expected an object after [${op}]`);
    const m = meta as Record<string, unknown>;
    const index = typeof m['_index'] === 'string' ? m['_index'] : (defaultIndex ?? '');
    const rawId = m['_id'];
    const id = typeof rawId === 'string' || typeof rawId === 'number' ? String(rawId) : null;
    const a: Action = { n, op, index, id, named: id !== null };
    actions.push(a);
    if (op !== 'delete') pending = a;
  });
  return actions;
}

type Item = Record<string, unknown>;

export async function bulkRoutes(app: FastifyInstance, opts: ProtocolOptions): Promise<void> {
  const { vault, metrics } = opts;
  rawBodies(app, BULK_MAX_BODY);

  // Every answer says it comes from "Elasticsearch": the official clients refuse 2xx answers without it.
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('X-Elastic-Product', 'Elasticsearch');
    return payload;
  });

  app.setErrorHandler((err, req, reply) => {
    const e = toCustodyError(err);
    if (e.code === 'INTERNAL' || e.code === 'STORAGE_CORRUPT') req.log.error({ err }, '_bulk request failed');
    else req.log.info({ code: e.code }, e.message);
    const path = req.url.split('?')[0]!.slice(0, 200);
    switch (e.code) {
      case 'UNAUTHENTICATED':
        reply.header('WWW-Authenticate', ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"']);
        return esError(reply, 401, {
          type: 'security_exception',
          reason: e.details?.['reason'] === 'missing' ? `missing authentication credentials for REST request [${path}]: ${e.message}` : `unable to authenticate with provided credentials: ${e.message}`,
        });
      case 'FORBIDDEN':
        return esError(reply, 403, { type: 'security_exception', reason: `action [${req.method} ${path}] is unauthorized for user [${req.principal?.name ?? 'unknown'}]: ${e.message}` });
      case 'BODY_TOO_LARGE':
      case 'RECORD_TOO_LARGE':
        return esError(reply, 413, { type: 'content_too_long_exception', reason: err instanceof CustodyError ? e.message : `The request is larger than ${BULK_MAX_BODY} bytes; send smaller bulk requests.` });
      case 'EMPTY_BATCH':
        return esError(reply, 400, { type: 'action_request_validation_exception', reason: 'Validation Failed: 1: no requests added;' });
      case 'BAD_REQUEST':
      case 'BAD_ENCODING':
        return esError(reply, 400, { type: typeof e.details?.['es'] === 'string' ? (e.details['es'] as string) : 'parse_exception', reason: e.message });
      default:
        if (e.code === 'PUSHBACK') {
          // Elasticsearch signals back-pressure with 429; Beats, Logstash and the clients retry it.
          reply.header('Retry-After', String(retryAfterOf(e)));
          return esError(reply, 429, { type: 'es_rejected_execution_exception', reason: e.message });
        }
        if (isBusy(e)) {
          reply.header('Retry-After', String(retryAfterOf(e)));
          return esError(reply, 503, { type: 'unavailable_shards_exception', reason: e.message });
        }
        return esError(reply, e.status >= 400 && e.status < 500 ? e.status : 500, { type: e.status >= 500 ? 'exception' : 'illegal_argument_exception', reason: e.message });
    }
  });

  // The handshake: cluster info, no secrets. It needs a valid token (any role): the clients send
  // their credentials with every request, and an anonymous caller learns nothing here.
  app.get('/', { config: { roles: ['writer', 'auditor', 'admin'], credentials: ['basic', 'bearer', 'apikey'] } }, async (_req, reply) =>
    reply.type('application/json; charset=UTF-8').send({
      name: 'custody',
      cluster_name: 'custody',
      cluster_uuid: 'custody-append-only-vault',
      version: {
        number: ES_VERSION,
        build_flavor: 'default',
        build_type: 'custody',
        build_hash: 'custody',
        build_date: '2025-01-01T00:00:00.000Z',
        build_snapshot: false,
        lucene_version: '9.12.0',
        minimum_wire_compatibility_version: '7.17.0',
        minimum_index_compatibility_version: '7.0.0',
      },
      tagline: 'You Know, for Search',
    }),
  );

  const bulk = async (req: FastifyRequest, reply: FastifyReply, urlIndex = (req.params as { index?: string }).index) => {
    const started = Date.now();
    const body = await decodeContent(bodyOf(req), req.headers['content-encoding'], BULK_MAX_BODY, ['gzip', 'deflate']);
    const actions = parseBulk(body, urlIndex);
    if (actions.length === 0) throw new CustodyError('EMPTY_BATCH', 'The body holds no actions.');

    const items: Item[] = new Array(actions.length);
    const records: ParsedRecord[] = [];
    const recordAction: Action[] = [];
    const refused: Action[] = [];
    const fail = (a: Action, status: number, err: EsError) => {
      items[a.n - 1] = { [a.op]: { _index: a.index, _id: a.id, status, error: err } };
    };
    for (const a of actions) {
      if (a.op === 'delete' || a.op === 'update') {
        refused.push(a);
        fail(a, 403, {
          type: 'security_exception',
          reason: `action [${a.op}] is not allowed: Custody is append-only, stored records cannot be changed or deleted. The attempt was recorded.`,
        });
        continue;
      }
      const bad = indexNameProblem(a.index);
      if (bad) {
        fail(a, 400, { type: a.index ? 'invalid_index_name_exception' : 'action_request_validation_exception', reason: `Validation Failed: ${bad}` });
        continue;
      }
      a.id ??= newId();
      const src = a.source;
      if (!src) {
        fail(a, 400, { type: 'action_request_validation_exception', reason: 'Validation Failed: source is missing' });
        continue;
      }
      if (src.length > MAX_RECORD_SIZE) {
        fail(a, 413, { type: 'document_parsing_exception', reason: `the document is ${src.length} bytes; one record may be at most ${MAX_RECORD_SIZE} bytes (1 MiB)` });
        continue;
      }
      let doc: unknown;
      try {
        if (!isUtf8(src)) throw new Error('not UTF-8');
        doc = JSON.parse(src.toString('utf8'));
      } catch (e) {
        fail(a, 400, { type: 'document_parsing_exception', reason: `failed to parse the document: ${(e as Error).message}` });
        continue;
      }
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
        fail(a, 400, { type: 'document_parsing_exception', reason: 'the document must be a JSON object' });
        continue;
      }
      const learned = learnFromJson(src);
      const rec: ParsedRecord = { bytes: src, position: a.n, source: sourceName('es', a.index), fields: learned.fields };
      if (learned.region) rec.region = learned.region;
      // A client-chosen _id names the document: it is stored once (no overwrite).
      const key = a.named ? `es:${a.index}:${a.id}` : learned.dedupeKey;
      if (key) rec.dedupeKey = key;
      records.push(rec);
      recordAction.push(a);
    }

    await recordTamper(req, refused);

    if (records.length > 0) {
      const summary = await ingestRecords(vault, records, { principal: req.principal! });
      countStored(metrics, summary);
      summary.outcomes.forEach((o, i) => {
        const a = recordAction[i]!;
        if (o.status === 'stored') {
          items[a.n - 1] = {
            [a.op]: {
              _index: a.index,
              _id: a.id,
              _version: 1,
              result: 'created',
              _shards: { total: 1, successful: 1, failed: 0 },
              _seq_no: o.index,
              _primary_term: 1,
              status: 201,
              _custody: { log: o.log, index: o.index },
            },
          };
        } else if (o.status === 'duplicate') {
          // The first copy stays; nothing is overwritten. Elasticsearch answers a create of an
          // existing id with 409; an index of it is answered "noop" (nothing changed).
          items[a.n - 1] =
            a.op === 'create'
              ? { create: { _index: a.index, _id: a.id, status: 409, error: { type: 'version_conflict_engine_exception', reason: `[${a.id}]: version conflict, document already exists (current version [1])` } } }
              : { [a.op]: { _index: a.index, _id: a.id, _version: 1, result: 'noop', status: 200, ...(o.log !== undefined ? { _custody: { log: o.log, index: o.index } } : {}) } };
        } else {
          // A writer outside its scope is a permission problem (403); a region the vault does not
          // keep will not change on retry (400: Logstash and Beats do not retry it).
          fail(a, o.code === 'FORBIDDEN' ? 403 : 400, { type: o.code === 'FORBIDDEN' ? 'security_exception' : 'illegal_argument_exception', reason: o.error });
        }
      });
    }
    const errors = items.some((it) => {
      const v = Object.values(it)[0] as Record<string, unknown>;
      return v['error'] !== undefined;
    });
    return reply.type('application/json; charset=UTF-8').send({ took: Date.now() - started, errors, items });
  };

  /** One audit event per refused delete/update (the first MAX_AUDITED_ITEMS), then one count. */
  const recordTamper = async (req: FastifyRequest, refused: Action[]) => {
    if (refused.length === 0) return;
    metrics.refused.inc({ reason: 'bulk-tamper' }, refused.length);
    const ctx = auditContext(req);
    for (const a of refused.slice(0, MAX_AUDITED_ITEMS)) {
      await vault.audit({ type: 'tamper.attempt', kind: a.op === 'delete' ? 'bulk-delete' : 'bulk-update', index: a.index.slice(0, 256), id: a.id?.slice(0, 512) ?? null, item: a.n, ...ctx }).catch(() => undefined);
    }
    if (refused.length > MAX_AUDITED_ITEMS) {
      const rest = refused.slice(MAX_AUDITED_ITEMS);
      await vault
        .audit({
          type: 'tamper.attempt.suppressed',
          kind: 'bulk',
          count: rest.length,
          deletes: rest.filter((a) => a.op === 'delete').length,
          updates: rest.filter((a) => a.op === 'update').length,
          ...ctx,
        })
        .catch(() => undefined);
    }
    req.log.warn({ refused: refused.length }, '_bulk delete/update refused and recorded');
  };

  for (const url of ['/_bulk', '/:index/_bulk']) {
    app.route({ method: ['POST', 'PUT'], url, config: WRITE, bodyLimit: BULK_MAX_BODY, handler: (req, reply) => bulk(req, reply) });
  }
  // "/logs/*" is the tamper trap for the tile tree (server/app.ts); an index called "logs" needs
  // its own static route to win over that wildcard.
  app.route({ method: ['POST', 'PUT'], url: '/logs/_bulk', config: WRITE, bodyLimit: BULK_MAX_BODY, handler: (req, reply) => bulk(req, reply, 'logs') });
}

