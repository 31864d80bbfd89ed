/**
 * The writer's API: POST /v1/logs/{log}/entries. The body becomes records (ingest/batch),
 * records become entries, and the answer comes only once they are durable. With
 * ?wait=checkpoint the answer also carries the signed checkpoint that covers them and each
 * entry's inclusion proof: a receipt the producer keeps as its own evidence.
 */
import type { FastifyInstance } from 'fastify';
import { proveInclusion, toBase64 } from '@custody/verify';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { parseBatch, MAX_BODY_BYTES } from '../ingest/batch.js';
import { checkField } from '../log/entry.js';
import { nativeSha256 } from '../crypto/sha256.js';
import { auditContext } from './auth.js';
import type { Metrics } from './health.js';

const SOURCE_RE = /^[a-z0-9][a-z0-9._:-]{0,63}$/;

export async function entryRoutes(app: FastifyInstance, opts: { vault: Vault; metrics: Metrics }): Promise<void> {
  const { vault } = opts;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => done(null, body));

  app.post<{ Params: { log: string }; Querystring: { wait?: string; source?: string } }>(
    '/v1/logs/:log/entries',
    { config: { roles: ['writer'] }, bodyLimit: MAX_BODY_BYTES },
    async (req, reply) => {
      const principal = req.principal!;
      const log = req.params.log;
      const row = vault.logRow(log);
      if (row.kind !== 'region' || (principal.logs !== null && !principal.logs.includes(log))) {
        await vault.audit({ type: 'request.refused', kind: row.kind === 'audit' ? 'write-audit-log' : 'writer-out-of-scope', ...auditContext(req) }).catch(() => undefined);
        throw new CustodyError('FORBIDDEN', `Writer "${principal.name}" may not append to log "${log}"; it may append to: ${(principal.logs ?? vault.regionLogs()).join(', ')}.`);
      }
      const source = req.query.source ?? 'json';
      if (!SOURCE_RE.test(source)) {
        throw new CustodyError('BAD_REQUEST', 'source must be 1 to 64 characters: lower-case letters, digits and . _ : - (for example "app.nginx").');
      }
      checkField('source', source);
      const wait = req.query.wait;
      if (wait !== undefined && wait !== 'checkpoint' && wait !== 'durable') {
        throw new CustodyError('BAD_REQUEST', 'wait must be "durable" (the default) or "checkpoint".');
      }
      const body = req.body;
      if (!Buffer.isBuffer(body)) throw new CustodyError('EMPTY_BATCH', 'The body holds no records: send one JSON record per line.');
      const records = await parseBatch(body, req.headers['content-type'], req.headers['content-encoding'] as string | undefined);
      const r = await vault.append(log, records, { source, producer: principal.name }, { receipts: wait === 'checkpoint' });
      const indices = Array.from({ length: r.count }, (_, i) => r.first + i);
      const answer: Record<string, unknown> = {
        log,
        count: r.count,
        first: r.first,
        indices,
        received: r.received,
        durable: true,
      };
      if (wait === 'checkpoint') {
        const seq = vault.sequencer(log);
        const cp = await seq.waitForCheckpoint(r.first + r.count);
        const reader = seq.nodeReader(cp.size);
        answer['checkpoint'] = cp.text;
        answer['envelope'] = { origin: row.origin, region: row.region, source, producer: principal.name, received: r.received };
        answer['receipts'] = r.receipts!.map((e, i) => ({
          index: r.first + i,
          leafHash: toBase64(e.leafHash),
          salt: e.salt,
          inclusionProof: proveInclusion(r.first + i, cp.size, reader, nativeSha256).map(toBase64),
        }));
      }
      opts.metrics.appended.inc({ log }, r.count);
      return reply.code(200).send(answer);
    },
  );
}
