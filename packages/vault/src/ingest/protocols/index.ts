/**
 * The HTTP push protocols, each an encapsulated Fastify plugin with its own parsers, limits,
 * credential form and error wording (docs/PROTOCOLS.md). All of them map to the writer role
 * and end in ingest/pipeline.ts. (Syslog is a TCP/TLS listener: syslog.ts, started by serve.)
 */
import type { FastifyInstance } from 'fastify';
import type { Vault } from '../../vault.js';
import type { Metrics } from '../../server/health.js';
import { hecRoutes } from './hec.js';
import { otlpRoutes } from './otlp.js';
import { bulkRoutes } from './bulk.js';
import { firehoseRoutes } from './firehose.js';

export interface ProtocolOptions {
  vault: Vault;
  metrics: Metrics;
}

export async function protocolRoutes(app: FastifyInstance, opts: ProtocolOptions): Promise<void> {
  // One line per protocol plugin.
  await app.register(hecRoutes, opts);
  await app.register(otlpRoutes, opts);
  await app.register(bulkRoutes, opts);
  await app.register(firehoseRoutes, opts);
}
