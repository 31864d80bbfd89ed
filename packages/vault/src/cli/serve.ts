/** `custody serve`: initialise on first start, open the vault, listen. */
import { readFileSync, openSync, writeSync, closeSync, unlinkSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { createSecureContext } from 'node:tls';
import { CustodyError } from '../errors.js';
import { Vault, initVault, isInitialised, applyRegionDirs, type InitResult } from '../vault.js';
import { parseRegionDirs } from '../storage/region-dirs.js';
import { buildServer, Metrics } from '../server/index.js';
import { startSyslog, type SyslogServer } from '../ingest/protocols/syslog.js';
import { SearchIndex } from '../search/index.js';
import { PgSearchIndex } from '../search/pg-index.js';
import { startServices, type Services } from '../services.js';
import { loadWriterCa, requireWriterCertificates } from '../server/mtls.js';
import { plaintextForBenchmark } from '../crypto/compress.js';
import { witnessSetFromFlags, type WitnessSet } from '../witness/client.js';
import { requireAvailableBackends } from './config.js';

export interface ServeOptions {
  data: string;
  /** Where the logs live and what holds sequencing/principals/indexes (cli/config.ts); absent: posix + SQLite. */
  storage?: import('./config.js').StorageChoice;
  database?: import('./config.js').DatabaseChoice;
  /** Shared mode: this node's id (default hostname-pid-random). */
  nodeId?: string;
  /** Shared mode, first node: COMPLIANCE lock of the S3 objects, in days from their writing. */
  retentionDays?: number;
  /** Shared mode: how partial tiles and bundles are locked in S3 (default none: the bucket's default retention). */
  partialLock?: 'none' | 'short' | 'full';
  /** The archive tier (docs/ARCHIVE.md); absent: off. */
  archive?: import('../lifecycle/archive.js').ArchiveOptions;
  host: string;
  port: number;
  checkpointInterval?: number;
  prefix?: string;
  regions?: string[];
  /** `--region-dir <region>=<dir>` flags: where a region's log lives (storage/region-dirs.ts). */
  regionDir?: string[];
  tlsCert?: string;
  tlsKey?: string;
  /** PEM CA: writers must present a client certificate it signed (server/mtls.ts, docs/TLS.md). */
  tlsClientCa?: string;
  logLevel?: string;
  /** Syslog over TCP / over TLS (RFC 5425) on these ports; off when absent (docs/SYSLOG.md). */
  syslogPort?: number;
  syslogTlsPort?: number;
  /** Address of the syslog listeners (default: host). */
  syslogHost?: string;
  /** File holding the writer token the syslog listeners append as (else $CUSTODY_SYSLOG_TOKEN). */
  syslogTokenFile?: string;
  /** PEM CA: syslog TLS clients must present a certificate it signed. */
  syslogTlsCa?: string;
  /** Keep the search index (docs/SEARCH.md) up with the logs and serve /v1/search (default true). */
  search?: boolean;
  /** Witnesses "<name>=<url>=<vkey>", a file of them, and the k of k-of-n (docs/WITNESS.md). */
  witness?: string[];
  witnessesFile?: string;
  witnessPolicy?: number;
}

export function printInit(r: InitResult, dataDir: string): void {
  const out = [
    `Custody initialised a new vault in ${dataDir}.`,
    '',
    'Logs and their verifier keys (give these to your auditors; they check every checkpoint with them):',
    ...r.logs.map((l) => `  ${l.name.padEnd(8)} ${l.verifierKey}`),
    '',
    `The first admin, writer and auditor tokens are in ${r.tokensFile} (readable only by you).`,
    'Move them into your secret store and delete that file. They are not shown anywhere else.',
    '',
  ];
  process.stdout.write(out.join('\n') + '\n');
}

/** One server per data directory: a second one would corrupt the journal. `custody reindex` holds it too. */
export function takeLock(dataDir: string): () => void {
  const path = join(dataDir, 'serve.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, 'utf8') === String(process.pid)) unlinkSync(path);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(path, 'utf8'));
      let alive = false;
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (alive) throw new CustodyError('CONFIG', `Another Custody server (pid ${pid}) is using ${dataDir}. Stop it first, or pass another --data directory.`);
      unlinkSync(path); // left by a server that was killed
    }
  }
  throw new CustodyError('CONFIG', `Could not lock ${dataDir}.`);
}

/** Reads and checks a PEM certificate and key for HTTPS; a clear error when they do not fit. */
export function loadTls(certPath: string | undefined, keyPath: string | undefined): { key: Buffer; cert: Buffer } {
  if (!certPath || !keyPath) throw new CustodyError('CONFIG', 'Give both --tls-cert and --tls-key (PEM files), or neither.');
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certPath);
    key = readFileSync(keyPath);
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot read the TLS files: ${(e as Error).message}.`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new CustodyError('CONFIG', `The TLS certificate ${certPath} and key ${keyPath} cannot be used together (${(e as Error).message}); check that the key belongs to the certificate and both are PEM.`);
  }
  return { cert, key };
}

/** The syslog listeners' writer token: the file's content (or its `NAME=value`), else the env. */
export function readSyslogToken(file: string | undefined): string | undefined {
  if (file === undefined) return process.env.CUSTODY_SYSLOG_TOKEN?.trim() || undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot read the syslog token file: ${(e as Error).message}.`);
  }
  const m = /^[A-Za-z_][A-Za-z0-9_]*=(\S+)$/.exec(text);
  return (m ? m[1] : text) || undefined;
}

interface SyslogPlan {
  host: string;
  token: string | undefined;
  listeners: Array<{ port: number; tls?: { key: Buffer; cert: Buffer; ca?: Buffer; requestCert: boolean } }>;
}

/** Checks the syslog options before anything starts (the token itself is checked on the vault). */
function planSyslog(o: ServeOptions, https: { key: Buffer; cert: Buffer } | undefined): SyslogPlan {
  const plan: SyslogPlan = { host: o.syslogHost ?? o.host, token: undefined, listeners: [] };
  if (o.syslogPort === undefined && o.syslogTlsPort === undefined) return plan;
  plan.token = readSyslogToken(o.syslogTokenFile);
  if (o.syslogPort !== undefined) plan.listeners.push({ port: o.syslogPort });
  if (o.syslogTlsPort !== undefined) {
    if (!https) throw new CustodyError('CONFIG', '--syslog-tls-port needs the server certificate: pass --tls-cert and --tls-key (the same files serve HTTPS).');
    let ca: Buffer | undefined;
    try {
      ca = o.syslogTlsCa ? readFileSync(o.syslogTlsCa) : undefined;
    } catch (e) {
      throw new CustodyError('CONFIG', `Cannot read --syslog-tls-ca: ${(e as Error).message}.`);
    }
    plan.listeners.push({ port: o.syslogTlsPort, tls: { ...https, ca, requestCert: ca !== undefined } });
  }
  return plan;
}

async function startSyslogListeners(plan: SyslogPlan, vault: Vault, logger: Logger, metrics: Metrics): Promise<SyslogServer[]> {
  const started: SyslogServer[] = [];
  try {
    for (const l of plan.listeners) {
      const s = await startSyslog({ vault, port: l.port, host: plan.host, tls: l.tls, token: plan.token ?? '', logger, metrics });
      started.push(s);
      process.stdout.write(`Syslog is listening on ${l.tls ? 'tls' : 'tcp'}://${plan.host}:${s.port} (stored as writer "${s.principal.name}")\n`);
    }
  } catch (e) {
    for (const s of started) await s.close();
    throw e;
  }
  return started;
}

/**
 * Shared mode (S3 + PostgreSQL) does not have the features that work on the data directory's
 * tree yet: they are refused here rather than silently not done (docs/PRODUCTION.md).
 */
function refuseUnsharedOptions(o: ServeOptions): void {
  if (o.regionDir && o.regionDir.length > 0) throw new CustodyError('CONFIG', '--region-dir places logs in directories; a shared vault keeps every log in the S3 bucket of --storage. Remove --region-dir.');
  if (o.archive) throw new CustodyError('CONFIG', 'The archive tier (--archive-dir / --archive) is not available on a shared vault (S3 + PostgreSQL) yet; remove those options. The S3 bucket\'s own lifecycle rules can move old objects to a colder storage class.');
}

export async function serve(o: ServeOptions): Promise<void> {
  // Embedded (posix + SQLite) or shared (S3 + PostgreSQL); a mix stops here.
  requireAvailableBackends(o.storage ?? { kind: 'posix' }, o.database ?? { kind: 'sqlite' });
  const shared = o.storage?.kind === 's3';
  process.umask(0o077); // everything the vault writes is readable by its own user only
  const logger = pino({ level: o.logLevel ?? process.env.CUSTODY_LOG_LEVEL ?? 'info', redact: ['req.headers.authorization', 'headers.authorization'] });
  if (shared) refuseUnsharedOptions(o);
  else if (o.nodeId !== undefined || o.retentionDays !== undefined || o.partialLock !== undefined) throw new CustodyError('CONFIG', '--node-id, --retention-days and --partial-lock are for a shared vault (--storage s3://… --database postgres://…).');
  const regionDirs = shared ? undefined : parseRegionDirs(o.regionDir);
  if (shared) mkdirSync(o.data, { recursive: true, mode: 0o700 });
  else if (!isInitialised(o.data)) printInit(initVault(o.data, { prefix: o.prefix, regions: o.regions, regionDirs }), o.data);
  const release = takeLock(o.data);
  let https: { key: Buffer; cert: Buffer } | undefined;
  let writerCa: ReturnType<typeof loadWriterCa> | undefined;
  let syslogPlan: SyslogPlan;
  let witnesses: WitnessSet | undefined;
  try {
    if (!shared) applyRegionDirs(o.data, regionDirs);
    witnesses = witnessSetFromFlags(o, logger);
    if (o.tlsCert || o.tlsKey) https = loadTls(o.tlsCert, o.tlsKey);
    if (o.tlsClientCa !== undefined) {
      if (!https) throw new CustodyError('CONFIG', '--tls-client-ca needs HTTPS: pass --tls-cert and --tls-key too (custody tls self-signed makes a pair for trying it out).');
      writerCa = loadWriterCa(o.tlsClientCa);
    }
    syslogPlan = planSyslog(o, https);
  } catch (e) {
    release();
    throw e;
  }
  const metrics = new Metrics();
  let vault: Vault;
  try {
    vault = await Vault.open(o.data, {
      logger,
      checkpointIntervalMs: o.checkpointInterval,
      witnesses,
      ...(shared ? { storage: o.storage, database: o.database, nodeId: o.nodeId, ...(o.partialLock ? { partialLock: o.partialLock } : {}), init: { prefix: o.prefix, regions: o.regions, retentionDays: o.retentionDays } } : {}),
      onPublish: (log, _cp, s) => metrics.integration.observe({ log }, s.ms / 1000),
    });
  } catch (e) {
    release();
    throw e;
  }
  if (plaintextForBenchmark()) {
    // The baseline of benchmark figure 13 only (crypto/compress.ts); never silent.
    logger.warn('SEALING IS OFF (CUSTODY_BENCH_PLAINTEXT_BUNDLES=1): new bundles and blobs are written in PLAINTEXT, uncompressed; for benchmarks only');
    process.stderr.write('WARNING: CUSTODY_BENCH_PLAINTEXT_BUNDLES=1: new bundles and blobs are written in plaintext (a benchmark baseline, never for real data).\n');
    await vault.audit({ type: 'vault.sealing.disabled', reason: 'CUSTODY_BENCH_PLAINTEXT_BUNDLES=1 in the server environment' });
  }
  let search: SearchIndex | PgSearchIndex | undefined;
  try {
    // A shared vault's index is in PostgreSQL: every node answers, one indexes (search/pg-index.ts).
    search = o.search === false ? undefined : vault.shared ? new PgSearchIndex(vault, { logger }) : SearchIndex.open(vault, { logger });
  } catch (e) {
    // The index is a convenience: the vault runs without it rather than not at all.
    logger.error({ err: e }, 'search index: cannot open it; serving without search (run `custody reindex` after stopping the server)');
  }
  let services: Services;
  try {
    services = await startServices(vault, { logger, ...(o.archive ? { archive: o.archive } : {}) });
  } catch (e) {
    await search?.close();
    await vault.close();
    release();
    throw e;
  }
  const app = await buildServer({ vault, logger, metrics, https: https && writerCa ? { ...https, ...writerCa.https } : https, search, services });
  if (writerCa) requireWriterCertificates(app, writerCa.policy);
  let syslog: SyslogServer[] = [];
  try {
    syslog = await startSyslogListeners(syslogPlan, vault, logger, metrics);
    await app.listen({ host: o.host, port: o.port });
  } catch (e) {
    for (const s of syslog) await s.close();
    await app.close();
    await services.close();
    await search?.close();
    await vault.close();
    release();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new CustodyError('CONFIG', `Port ${o.port} on ${o.host} is already in use; pass another --port.`);
    throw e;
  }
  const scheme = https ? 'https' : 'http';
  if (writerCa) process.stdout.write(`Writers must present a client certificate signed by ${writerCa.policy.caNames}.\n`);
  if (witnesses) process.stdout.write(`Checkpoints are published once ${witnesses.policy} of ${witnesses.witnesses.length} witnesses cosign them (${witnesses.witnesses.map((w) => w.name).join(', ')}).\n`);
  const where = vault.sharedInfo ? `shared vault s3://${vault.sharedInfo.bucket}/${vault.sharedInfo.prefix}, node ${vault.sharedInfo.nodeId}, node-local data: ${o.data}` : `data: ${o.data}`;
  process.stdout.write(`Custody is listening on ${scheme}://${o.host}:${o.port} (${where}, logs: ${[...vault.logs.keys()].join(', ')})\n`);
  let stopping = false;
  const stop = async (sig: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal: sig }, 'shutting down: finishing integration');
    for (const s of syslog) await s.close();
    await app.close();
    await services.close();
    await search?.close();
    await vault.close();
    release();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
