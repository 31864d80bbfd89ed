/**
 * The writer's own API.
 *
 *   POST /v1/logs/{log}/entries   a batch of records (NDJSON, JSON array, text lines, or any
 *                                 kind a source parser reads: ?source=cloudtrail …) — what
 *                                 Vector's and Fluent Bit's `http` sinks send
 *   POST /v1/ingest               one delivered file or object (a CloudTrail .json.gz, a flow
 *                                 log, a Config snapshot …), source detected from ?name= and
 *                                 content — what `custody import` sends
 *   GET  /v1/sources              the source parsers
 *
 * Records are routed by the region they name (ingest/pipeline.ts), the default being the log
 * in the URL (or the writer's default log). A bad record never sinks the good ones: the answer
 * lists each refused record by its line (or position) and why; only when nothing at all could
 * be stored is the request refused as a whole. The answer comes once the records are durable.
 * With ?wait=checkpoint it also carries, per record, the signed checkpoint that covers it and
 * its inclusion proof: a receipt the producer keeps as its own evidence.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { proveInclusion, toBase64 } from '@custody/verify';
import { CustodyError, ERROR_CODES, type ErrorCode } from '../errors.js';
import type { Vault } from '../vault.js';
import { decodeBody, MAX_BODY_BYTES } from '../ingest/batch.js';
import { ingestRecords } from '../ingest/pipeline.js';
import { detectSource, hasParser, sourceParser, sourceParsers } from '../ingest/sources/index.js';
import { parseJsonBody, parseTextLines } from '../ingest/sources/generic.js';
import type { IngestSummary, ParseResult, RecordError } from '../ingest/types.js';
import { checkField } from '../log/entry.js';
import { nativeSha256 } from '../crypto/sha256.js';
import { auditContext } from './auth.js';
import type { Metrics } from './health.js';

const SOURCE_RE = /^[a-z0-9][a-z0-9._:-]{0,63}$/;
const MAX_REPORTED = 100;
/** A delivered file may be larger than a shipper's batch: CloudTrail files reach tens of MiB. */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;
export const MAX_FILE_INFLATED = 256 * 1024 * 1024;
const gunzipAsync = promisify(gunzip);

type Kind = 'json' | 'text';

function kindOf(contentType: string | undefined): Kind {
  const mime = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (mime === 'application/x-ndjson' || mime === 'application/jsonl' || mime === 'application/json-seq' || mime === 'application/x-jsonlines' || mime === 'application/json') return 'json';
  if (mime === 'text/plain') return 'text';
  throw new CustodyError(
    'UNSUPPORTED_MEDIA_TYPE',
    `Content-Type ${JSON.stringify(mime || '(none)')} is not accepted: send application/x-ndjson (one JSON record per line), application/json (an array of records) or text/plain (one record per line).`,
  );
}

function checkSourceName(source: string): void {
  if (!SOURCE_RE.test(source)) {
    throw new CustodyError('BAD_REQUEST', 'source must be 1 to 64 characters: lower-case letters, digits and . _ : - (for example "app.nginx" or "cloudtrail").');
  }
  checkField('source', source);
}

/**
 * Parses with a named source parser, "auto" (detected), or — for any other name — the generic
 * JSON / text reading of the content type, with the name as the envelope's source label.
 */
function parseBody(body: Buffer, source: string, kind: Kind, name?: string): { parser: string; result: ParseResult } {
  const ctx = { name };
  const chosen = source === 'auto' ? detectSource(body, ctx) : source;
  if (hasParser(chosen) && chosen !== 'json' && chosen !== 'text') {
    return { parser: chosen, result: sourceParser(chosen).parse(body, ctx) };
  }
  const label = chosen === 'auto' ? kind : chosen;
  const generic = hasParser(chosen) ? (chosen as Kind) : kind;
  return { parser: label, result: generic === 'text' ? parseTextLines(body, label) : parseJsonBody(body, label) };
}

function lineErrors(errors: RecordError[]): Array<{ line: number; code: string; error: string }> {
  return errors.slice(0, MAX_REPORTED).map((e) => ({ line: e.position, code: e.code, error: e.error }));
}

/** Parse errors plus the records the pipeline refused, by position. */
function allErrors(parsed: ParseResult, summary: IngestSummary | null): RecordError[] {
  const out = [...parsed.errors];
  if (summary) {
    summary.outcomes.forEach((o, i) => {
      if (o.status === 'rejected') out.push({ position: parsed.records[i]!.position, code: o.code, error: o.error });
    });
  }
  return out.sort((a, b) => a.position - b.position);
}

/** Refuses a request in which nothing could be stored, with the most telling code. */
function refuseAll(errors: RecordError[]): never {
  const codes = new Set(errors.map((e) => e.code));
  const only = codes.size === 1 ? ([...codes][0] as string) : undefined;
  const code: ErrorCode = only && only in ERROR_CODES && only !== 'BAD_JSON' ? (only as ErrorCode) : 'BAD_JSON_LINES';
  const n = errors.length;
  throw new CustodyError(
    code,
    code === 'BAD_JSON_LINES'
      ? `${n} ${n === 1 ? 'record' : 'records'} could not be read and nothing was stored. Fix the listed lines and send them again.`
      : `Nothing was stored: ${errors[0]!.error}`,
    { lines: lineErrors(errors), badLines: n },
  );
}

function countAppends(metrics: Metrics, s: IngestSummary): void {
  for (const a of s.appends) metrics.appended.inc({ log: a.log }, a.count);
}

/** S3 keys and file names may hold spaces and non-ASCII: percent-encode them for a header value. */
function attrValue(v: string): string {
  return encodeURI(v).replace(/[^\x21-\x7e]/g, '').slice(0, 256);
}

async function receiptsFor(vault: Vault, s: IngestSummary, positions: number[]): Promise<Record<string, unknown>> {
  const byLog = new Map<string, number>();
  for (const o of s.outcomes) if (o.status === 'stored') byLog.set(o.log, Math.max(byLog.get(o.log) ?? 0, o.index + 1));
  const cps = new Map<string, { text: string; size: number; reader: ReturnType<ReturnType<Vault['sequencer']>['nodeReader']> }>();
  for (const [log, size] of byLog) {
    const seq = vault.sequencer(log);
    const cp = await seq.waitForCheckpoint(size);
    cps.set(log, { text: cp.text, size: cp.size, reader: seq.nodeReader(cp.size) });
  }
  const receipts: Array<Record<string, unknown>> = [];
  s.outcomes.forEach((o, i) => {
    if (o.status !== 'stored' || !o.receipt) return;
    const cp = cps.get(o.log)!;
    receipts.push({
      line: positions[i],
      log: o.log,
      index: o.index,
      leafHash: toBase64(o.receipt.leafHash),
      salt: o.receipt.salt,
      inclusionProof: proveInclusion(o.index, cp.size, cp.reader, nativeSha256).map(toBase64),
    });
  });
  return { checkpoints: Object.fromEntries([...cps].map(([l, c]) => [l, c.text])), receipts };
}

export async function entryRoutes(app: FastifyInstance, opts: { vault: Vault; metrics: Metrics }): Promise<void> {
  const { vault, metrics } = opts;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_FILE_BYTES }, (_req, body, done) => done(null, body));

  const refuseScope = async (req: FastifyRequest, log: string, kind: string): Promise<never> => {
    const principal = req.principal!;
    await vault.audit({ type: 'request.refused', kind, ...auditContext(req) }).catch(() => undefined);
    throw new CustodyError('FORBIDDEN', `Writer "${principal.name}" may not append to log "${log}"; it may append to: ${(principal.logs ?? vault.regionLogs()).join(', ')}.`);
  };

  // Vector's http sink health check (HEAD on the sink URI).
  app.head<{ Params: { log: string } }>('/v1/logs/:log/entries', { config: { roles: ['writer'], credentials: ['bearer', 'basic'] } }, async (req, reply) => {
    vault.logRow(req.params.log);
    return reply.code(200).send();
  });

  app.post<{ Params: { log: string }; Querystring: { wait?: string; source?: string } }>(
    '/v1/logs/:log/entries',
    { config: { roles: ['writer'], credentials: ['bearer', 'basic'] }, bodyLimit: MAX_BODY_BYTES },
    async (req, reply) => {
      const principal = req.principal!;
      const log = req.params.log;
      const row = vault.logRow(log);
      if (row.kind !== 'region') await refuseScope(req, log, 'write-audit-log');
      if (principal.logs !== null && !principal.logs.includes(log)) await refuseScope(req, log, 'writer-out-of-scope');
      const kind = kindOf(req.headers['content-type']);
      const source = req.query.source ?? (kind === 'text' ? 'text' : 'json');
      checkSourceName(source);
      const wait = req.query.wait;
      if (wait !== undefined && wait !== 'checkpoint' && wait !== 'durable') {
        throw new CustodyError('BAD_REQUEST', 'wait must be "durable" (the default) or "checkpoint".');
      }
      const raw = req.body;
      if (!Buffer.isBuffer(raw) || raw.length === 0) throw new CustodyError('EMPTY_BATCH', 'The body holds no records: send one JSON record per line.');
      const body = await decodeBody(raw, req.headers['content-encoding'] as string | undefined);
      if (body.length > MAX_BODY_BYTES) throw new CustodyError('BODY_TOO_LARGE', `The body is ${body.length} bytes; the limit is ${MAX_BODY_BYTES} bytes. Send smaller batches.`);
      const { parser, result } = parseBody(body, source, kind);
      if (result.records.length === 0) {
        if (result.errors.length > 0) refuseAll(result.errors);
        if (result.ignored === 0 || parser === 'json' || parser === 'text' || !hasParser(parser)) {
          throw new CustodyError('EMPTY_BATCH', 'The body holds no records: send one JSON record per line.');
        }
      }
      const s = await ingestRecords(vault, result.records, { principal, defaultLog: log, receipts: wait === 'checkpoint' });
      countAppends(metrics, s);
      const errors = allErrors(result, s);
      if (s.stored + s.duplicates === 0 && errors.length > 0) refuseAll(errors);
      const indices: number[] = [];
      for (const o of s.outcomes) if (o.status === 'stored') indices.push(o.index);
      const answer: Record<string, unknown> = {
        log,
        source: parser,
        count: s.stored,
        first: indices[0] ?? null,
        indices,
        stored: s.stored,
        duplicates: s.duplicates,
        rejected: errors.length,
        ignored: result.ignored,
        appends: s.appends,
        received: s.received,
        durable: true,
        ...(errors.length > 0 ? { errors: lineErrors(errors) } : {}),
      };
      if (wait === 'checkpoint') {
        const r = await receiptsFor(vault, s, result.records.map((x) => x.position));
        const cps = r['checkpoints'] as Record<string, string>;
        answer['checkpoint'] = cps[log] ?? Object.values(cps)[0] ?? null;
        answer['checkpoints'] = cps;
        answer['envelope'] = { origin: row.origin, region: row.region, source: result.records[0]?.source ?? parser, producer: principal.name, received: s.received };
        answer['receipts'] = r['receipts'];
      }
      return reply.code(200).send(answer);
    },
  );

  app.post<{ Querystring: { source?: string; name?: string; object?: string; log?: string } }>(
    '/v1/ingest',
    { config: { roles: ['writer'], credentials: ['bearer', 'basic'] }, bodyLimit: MAX_FILE_BYTES },
    async (req, reply) => {
      const principal = req.principal!;
      const q = req.query;
      const source = q.source ?? 'auto';
      checkSourceName(source);
      if (source !== 'auto' && !hasParser(source)) sourceParser(source); // UNKNOWN_SOURCE
      const name = q.name !== undefined ? String(q.name).slice(0, 1024) : undefined;
      const object = q.object !== undefined ? String(q.object).slice(0, 1024) : undefined;
      const log = q.log ?? vault.defaultLogFor(principal);
      const row = vault.logRow(log);
      if (row.kind !== 'region') await refuseScope(req, log, 'write-audit-log');
      if (principal.logs !== null && !principal.logs.includes(log)) await refuseScope(req, log, 'writer-out-of-scope');
      const raw = req.body;
      if (!Buffer.isBuffer(raw) || raw.length === 0) throw new CustodyError('EMPTY_BATCH', 'The body is empty: send the file as it was delivered.');
      let body = await decodeBody(raw, req.headers['content-encoding'] as string | undefined, MAX_FILE_INFLATED);
      // A .gz file sent without Content-Encoding is still a gzip file.
      if (body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b) {
        try {
          body = await gunzipAsync(body, { maxOutputLength: MAX_FILE_INFLATED });
        } catch (e) {
          const tooBig = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError;
          throw new CustodyError(tooBig ? 'BODY_TOO_LARGE' : 'BAD_ENCODING', tooBig ? `The file inflates to more than ${MAX_FILE_INFLATED} bytes; split it.` : `The file looks like gzip but cannot be inflated (${(e as Error).message}).`);
        }
      }
      const { parser, result } = parseBody(body, source, 'text', name);
      if (object !== undefined) {
        result.records.forEach((r, i) => {
          r.dedupeKey ??= `object:${object}:#${i}`;
        });
      }
      const attrs = name !== undefined && attrValue(name) ? { file: attrValue(name) } : undefined;
      const s =
        result.records.length > 0
          ? await ingestRecords(vault, result.records, { principal, defaultLog: log, attrs })
          : null;
      if (s) countAppends(metrics, s);
      const errors = allErrors(result, s);
      if ((s === null || s.stored + s.duplicates === 0) && errors.length > 0) refuseAll(errors);
      return reply.code(200).send({
        source: parser,
        stored: s?.stored ?? 0,
        duplicates: s?.duplicates ?? 0,
        rejected: errors.length,
        ignored: result.ignored,
        appends: s?.appends ?? [],
        received: s?.received ?? new Date().toISOString(),
        ...(errors.length > 0 ? { errors: errors.slice(0, MAX_REPORTED) } : {}),
      });
    },
  );

  app.get('/v1/sources', { config: { roles: ['writer', 'auditor', 'admin'] } }, async () =>
    sourceParsers().map((p) => ({ name: p.name, description: p.description })),
  );
}
