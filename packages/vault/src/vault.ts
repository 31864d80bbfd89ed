/**
 * A vault on its data directory: configuration, keyring, database, one sequencer per log,
 * the authenticator and the vault's own audit log.
 *
 *   <data>/vault.json          vault id, origin prefix, regions
 *   <data>/keyring.json        keys (0600) — see crypto/keyring.ts
 *   <data>/custody.db          SQLite, encrypted (storage/sqlite.ts) — see storage/db.ts
 *   <data>/dedupe.db           SQLite, encrypted: dedupe keys of stored records (hashes only)
 *   <data>/logs/<log>/         tree, blobs and journal of each log — see storage/posix.ts
 *   <data>/initial-tokens.txt  the first admin, writer and auditor tokens (0600, first start)
 */
import { existsSync, mkdirSync, readFileSync, chmodSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';
import type { Logger } from 'pino';
import { Ed25519NoteSigner, hashLeaf } from '@custody/verify';
import { CustodyError } from './errors.js';
import { Keyring } from './crypto/keyring.js';
import { nativeSha256 } from './crypto/sha256.js';
import { VaultDb, DedupeStore, type LogRow, type PrincipalRow } from './storage/db.js';
import { dataDirDbKey } from './storage/sqlite.js';
import { writeFileAtomicSync } from './storage/atomic.js';
import { placeLogDir, checkLogDir, mergeRegionDirs } from './storage/region-dirs.js';
import { LogSequencer, type PublishedCheckpoint } from './sequencer/log-sequencer.js';
import type { LogSequencerApi, SharedSequencerOptions } from './sequencer/api.js';
import { Authenticator, createPrincipal, newPrincipal } from './auth/tokens.js';
import type { StorageChoice, DatabaseChoice } from './cli/config.js';
import { DATA_DIR_DBS } from './storage/sqlite.js';
import { encodeEnvelopes, splitEncoded, envelopePrefix, inlineLimit, checkField, saltOf, MAX_RECORD_SIZE } from './log/entry.js';
import { AlarmCenter } from './alarms/index.js';
import { vaultAlarmStore } from './alarms/store.js';
import { ActionRegistry } from './auth/actions.js';
import type { CommonFields } from './ingest/types.js';
import type { WitnessSet } from './witness/client.js';

export const AUDIT_LOG = 'audit';
const REGION_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export interface VaultConfig {
  version: 1;
  vaultId: string;
  prefix: string;
  regions: string[];
  /**
   * "auto" (the embedded default): a record naming a region not seen before gets a new log,
   * with its own keys, on first sight. "fixed": only the listed regions; a record for any
   * other region is refused. Absent in vaults created before the option existed: "auto".
   */
  regionMode?: 'auto' | 'fixed';
  createdAt: string;
  /**
   * Region → absolute directory holding that region's log (`--region-dir`, e.g. a volume in the
   * region); <data>/logs/<log> links to <dir>/<log>. See storage/region-dirs.ts.
   */
  regionDirs?: Record<string, string>;
  /** Shared mode: the bucket and prefix of the vault (every node must give the same --storage). */
  storage?: { kind: 's3'; bucket: string; prefix: string };
  /** Shared mode: objects written to S3 are locked (COMPLIANCE) this many days from their writing. */
  retentionDays?: number;
}

export interface InitOptions {
  prefix?: string;
  regions?: string[];
  /** Default: "fixed" when regions are given, else "auto". */
  regionMode?: 'auto' | 'fixed';
  /**
   * A keyring already created at <data>/keyring.json (protected by AWS KMS: Keyring.createKms).
   * Without it, one is created — protected by the process's passphrase if it has one.
   */
  keyring?: Keyring;
  /** Region → directory of its log (storage/region-dirs.ts); each must exist. */
  regionDirs?: Record<string, string>;
}

/** An AWS-shaped region name (us-east-1, eu-central-2, us-gov-west-1, cn-north-1 …). */
export const AWS_REGION_RE = /^[a-z]{2}(-[a-z]+){1,2}-[0-9]{1,2}$/;
/** Logs created on first sight are capped: each holds keys, files and an integrator thread. */
export const MAX_AUTO_LOGS = 40;

export interface InitResult {
  config: VaultConfig;
  logs: Array<{ name: string; origin: string; verifierKey: string }>;
  tokensFile: string;
  tokens: Array<{ role: string; name: string; token: string }>;
}

export interface VaultOptions {
  logger: Logger;
  checkpointIntervalMs?: number;
  maxPendingEntries?: number;
  admissionTimeoutMs?: number;
  /** Anonymous refusals recorded in full per address and kind per window; the rest are counted. */
  auditFloodLimit?: number;
  auditFloodWindowMs?: number;
  onPublish?: (log: string, cp: PublishedCheckpoint, stats: { entries: number; ms: number }) => void;
  /** Witnesses and their k-of-n policy: checkpoints are published only once cosigned (docs/WITNESS.md). */
  witnesses?: WitnessSet;
  /**
   * Shared mode (docs/PRODUCTION.md, "Several nodes"): the logs in an S3 bucket, sequencing,
   * configuration, keyring (sealed) and principals in PostgreSQL. Both or neither.
   */
  storage?: StorageChoice;
  database?: DatabaseChoice;
  /** This node's id in shared mode (default: hostname-pid-random). */
  nodeId?: string;
  /** Shared mode: how partial tiles and bundles are locked in S3 (storage/s3/log-store.ts PARTIAL_LOCKS; default none). */
  partialLock?: 'none' | 'short' | 'full';
  /** Shared mode, first node only: how the vault is created (prefix, regions, retention). */
  init?: SharedInitOptions;
}

export interface SharedInitOptions {
  prefix?: string;
  regions?: string[];
  regionMode?: 'auto' | 'fixed';
  /** Objects in S3 are locked (COMPLIANCE) this long after they are written (default 365). */
  retentionDays?: number;
}

/** What other concerns (approvals, TOTP, alarms on PostgreSQL) use of a shared vault. */
export interface SharedHandle {
  pool: pg.Pool;
  nodeId: string;
}

/** The vault keys every node needs; created by the first node, before the keyring is shared. */
const SHARED_VAULT_KEYS = [...Object.values(DATA_DIR_DBS).map((d) => d.purpose), 'totp-secrets', 'notifier-secrets'];

export function defaultNodeId(): string {
  return `${hostname().replace(/[^A-Za-z0-9.-]/g, '').slice(0, 40) || 'node'}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** The connection string with the password of --database-password-file (never logged). */
function connectionStringOf(d: Extract<DatabaseChoice, { kind: 'postgres' }>): string {
  if (d.passwordFile === undefined) return d.url;
  let pw: string;
  try {
    pw = readFileSync(d.passwordFile, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot read --database-password-file: ${(e as Error).message}.`);
  }
  const u = new URL(d.url);
  u.password = encodeURIComponent(pw);
  return u.toString();
}

export interface AppendOutcome {
  first: number;
  count: number;
  received: string;
  /** Per entry, with `receipts: true`: its leaf hash and salt. */
  receipts?: Array<{ leafHash: Uint8Array; salt: string }>;
}

export interface AppendMeta {
  source: string;
  producer: string;
  /** Delivery context written into each envelope (`attr` lines, docs/FORMAT.md). */
  attrs?: Record<string, string>;
}

/** A record the ingest pipeline stored, as detectors see it (vault.events 'ingested'). */
export interface IngestedRecord {
  log: string;
  index: number;
  source: string;
  /** The writer's principal name. */
  producer: string;
  fields: CommonFields;
  bytes: Buffer;
}

export interface VaultEventMap {
  /** An event was appended to the audit log at `index`. */
  audit: (event: Record<string, unknown>, index: number) => void;
  /** One request's stored records (duplicates and refusals are not in it). */
  ingested: (records: IngestedRecord[]) => void;
  /** A log published a new checkpoint. */
  published: (log: string, cp: PublishedCheckpoint) => void;
}

/**
 * What happens in the vault, for the detectors and the self-audit. Listeners run synchronously
 * on the path that emits (keep them cheap: queue work, do not await); one that throws is
 * logged and never breaks the emitter.
 */
export class VaultEvents {
  private readonly fns: { [K in keyof VaultEventMap]: Array<VaultEventMap[K]> } = { audit: [], ingested: [], published: [] };
  constructor(private readonly log: Logger) {}
  on<K extends keyof VaultEventMap>(type: K, fn: VaultEventMap[K]): () => void {
    const list = this.fns[type] as Array<VaultEventMap[K]>;
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }
  has(type: keyof VaultEventMap): boolean {
    return this.fns[type].length > 0;
  }
  emit<K extends keyof VaultEventMap>(type: K, ...args: Parameters<VaultEventMap[K]>): void {
    for (const fn of this.fns[type]) {
      try {
        (fn as (...a: unknown[]) => void)(...args);
      } catch (e) {
        this.log.error({ err: e, event: type }, 'a vault event listener failed');
      }
    }
  }
}

export function resolveDataDir(dir?: string): string {
  return resolve(dir ?? process.env.CUSTODY_DATA ?? './custody-data');
}

export function isInitialised(dataDir: string): boolean {
  return existsSync(join(dataDir, 'vault.json'));
}

export function readConfig(dataDir: string): VaultConfig {
  const p = join(dataDir, 'vault.json');
  if (!existsSync(p)) {
    throw new CustodyError('CONFIG', `${dataDir} is not a Custody data directory (no vault.json). Run \`custody init --data ${dataDir}\` or start the server once.`);
  }
  const c = JSON.parse(readFileSync(p, 'utf8')) as VaultConfig;
  if (c.version !== 1 || !Array.isArray(c.regions)) throw new CustodyError('CONFIG', `${p} has an unknown format.`);
  return c;
}

/**
 * `custody serve --region-dir` on an existing vault: adds placements for regions whose logs do
 * not exist yet (saved in vault.json before the vault opens); refuses to move an existing log.
 */
export function applyRegionDirs(dataDir: string, add: Record<string, string> | undefined): void {
  const config = readConfig(dataDir);
  const merged = mergeRegionDirs(dataDir, config.regionDirs, add);
  if (merged) writeFileAtomicSync(join(dataDir, 'vault.json'), JSON.stringify({ ...config, regionDirs: merged }, null, 2) + '\n', 0o600);
}

/**
 * Creates a new vault: config, keyring with a key set per log, database, and the first admin,
 * writer and auditor, whose tokens go to a 0600 file (printed nowhere else).
 */
export function initVault(dataDir: string, opts: InitOptions = {}): InitResult {
  if (isInitialised(dataDir)) throw new CustodyError('CONFIG', `${dataDir} already holds a vault; it is never initialised twice.`);
  const regions = opts.regions && opts.regions.length > 0 ? opts.regions : ['local'];
  for (const r of regions) {
    if (!REGION_RE.test(r) || r === AUDIT_LOG) throw new CustodyError('CONFIG', `Region name "${r}" is not allowed: use lower-case letters, digits and dashes (and not "${AUDIT_LOG}").`);
  }
  const vaultId = randomBytes(4).toString('hex');
  const prefix = opts.prefix ?? `custody-${vaultId}`;
  checkField('origin prefix', prefix);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  const regionMode = opts.regionMode ?? (opts.regions && opts.regions.length > 0 ? 'fixed' : 'auto');
  const regionDirs = mergeRegionDirs(dataDir, undefined, opts.regionDirs);
  const config: VaultConfig = { version: 1, vaultId, prefix, regions, regionMode, createdAt: new Date().toISOString(), ...(regionDirs ? { regionDirs } : {}) };
  const keyring = opts.keyring ?? (existsSync(join(dataDir, 'keyring.json')) ? Keyring.load(join(dataDir, 'keyring.json')) : Keyring.create(join(dataDir, 'keyring.json')));
  const db = VaultDb.inDataDir(dataDir, keyring);
  try {
    const rows: LogRow[] = [
      ...regions.map((r) => ({ name: r, origin: `${prefix}/${r}`, region: r, kind: 'region' as const, createdAt: config.createdAt })),
      { name: AUDIT_LOG, origin: `${prefix}/${AUDIT_LOG}`, region: regions[0]!, kind: 'audit' as const, createdAt: config.createdAt },
    ];
    for (const row of rows) {
      placeLogDir(dataDir, config.regionDirs, row);
      if (!keyring.has(row.name)) keyring.addLog(row.name, { region: row.region });
      db.addLog(row);
    }
    const tokens = (['admin', 'writer', 'auditor'] as const).map((role) => {
      const { principal, token } = createPrincipal(db, { name: `initial-${role}`, role, createdBy: 'custody init' }, regions);
      return { role, name: principal.name, token };
    });
    const tokensFile = join(dataDir, 'initial-tokens.txt');
    writeFileAtomicSync(
      tokensFile,
      [
        '# The first Custody tokens. Each is shown only here; the vault keeps only their hashes.',
        '# Move them into your secret store, then delete this file.',
        ...tokens.map((t) => `${t.role.toUpperCase()}_TOKEN=${t.token}`),
        '',
      ].join('\n'),
      0o600,
    );
    db.addPendingAudit({
      type: 'vault.initialised',
      prefix,
      logs: rows.map((r) => ({ name: r.name, origin: r.origin, region: r.region, kind: r.kind })),
      principals: tokens.map((t) => ({ name: t.name, role: t.role })),
    });
    // Written last: a data dir is a vault only once everything above exists.
    writeFileAtomicSync(join(dataDir, 'vault.json'), JSON.stringify(config, null, 2) + '\n', 0o600);
    const logs = rows.map((r) => ({ name: r.name, origin: r.origin, verifierKey: new Ed25519NoteSigner(r.origin, keyring.forLog(r.name).signingSeed).verifierKey }));
    return { config, logs, tokensFile, tokens };
  } finally {
    db.close();
  }
}

export class Vault {
  /**
   * The logs' sequencers. In shared mode they are SharedLogSequencers (sequencer/api.ts
   * LogSequencerApi), typed as LogSequencer for the features that exist only on the data
   * directory (archive tier, purges): those are refused or skipped in
   * shared mode (docs/PRODUCTION.md), so they never reach a shared one.
   */
  readonly logs = new Map<string, LogSequencer>();
  /** Shared mode only: the PostgreSQL pool and this node's id (undefined on an embedded vault). */
  shared?: SharedHandle;
  /** Shared mode only: where the logs live, for /v1/logs and /readyz. */
  sharedInfo?: SharedInfo;
  readonly auth: Authenticator;
  readonly dedupe: DedupeStore;
  readonly events: VaultEvents;
  /** Every alarm goes through here (alarms/center.ts). */
  readonly alarms: AlarmCenter;
  /** Dangerous actions and their handlers, run by the two-person approvals (auth/actions.ts). */
  readonly actions = new ActionRegistry();
  private closing = false;
  private auditTimer: NodeJS.Timeout | null = null;
  private readonly floods = new Map<string, { windowStart: number; count: number; suppressed: number; type: string; address: unknown }>();
  private floodLimit = 10;
  private floodWindowMs = 10_000;
  private openOpts!: VaultOptions;
  private sharedCtx?: SharedCtx;
  private readonly creating = new Map<string, Promise<string>>();

  private constructor(
    readonly dataDir: string,
    readonly config: VaultConfig,
    readonly db: VaultDb,
    readonly keyring: Keyring,
    readonly logRows: LogRow[],
    private readonly log: Logger,
  ) {
    this.auth = new Authenticator(db);
    this.dedupe = new DedupeStore(join(dataDir, 'dedupe.db'), dataDirDbKey(keyring, dataDir, 'dedupe'));
    this.events = new VaultEvents(log);
    this.alarms = new AlarmCenter(vaultAlarmStore(db.sqlite, () => this.shared), { audit: (e) => this.audit(e), logger: log });
  }

  static async open(dataDir: string, opts: VaultOptions): Promise<Vault> {
    if (opts.storage?.kind === 's3' || opts.database?.kind === 'postgres') return Vault.openShared(dataDir, opts);
    const config = readConfig(dataDir);
    const keyring = await Keyring.open(join(dataDir, 'keyring.json'));
    const db = VaultDb.inDataDir(dataDir, keyring);
    let v: Vault;
    try {
      v = new Vault(dataDir, config, db, keyring, db.listLogs(), opts.logger);
    } catch (e) {
      db.close();
      throw e;
    }
    return v.start(opts);
  }

  /**
   * Shared mode: configuration, sealed keyring, logs and principals from PostgreSQL (the first
   * node creates them), the logs' trees in S3, `dataDir` a node-local cache and state.
   */
  private static async openShared(dataDir: string, opts: VaultOptions): Promise<Vault> {
    const storage = opts.storage;
    const database = opts.database;
    if (storage?.kind !== 's3' || database?.kind !== 'postgres') {
      throw new CustodyError('CONFIG', 'Several nodes share a vault through BOTH an S3 bucket and a PostgreSQL database: give --storage s3://BUCKET/PREFIX together with --database postgres://USER@HOST/DB (or neither, for the embedded vault on the data directory).');
    }
    if (isInitialised(dataDir)) {
      throw new CustodyError('CONFIG', `${dataDir} holds an embedded vault (vault.json); a node of a shared vault needs its own node-local --data directory (new or empty). The embedded vault is left as it is.`);
    }
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chmodSync(dataDir, 0o700);
    const nodeId = opts.nodeId ?? defaultNodeId();
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(nodeId)) throw new CustodyError('CONFIG', '--node-id takes 1 to 128 letters, digits, dots, dashes and underscores.');
    const connectionString = connectionStringOf(database);
    const { createPool } = await import('./storage/pg/pool.js');
    const { migrate } = await import('./storage/pg/schema.js');
    const { PgVaultStore } = await import('./storage/pg/vault-store.js');
    const log = opts.logger;
    const pool = createPool({ connectionString, onIdleError: (e) => log.warn({ err: e.message }, 'an idle database connection was lost; it is replaced') });
    let db: VaultDb | undefined;
    let v: Vault;
    let ctx: SharedCtx;
    try {
      await migrate(pool);
      const store = new PgVaultStore(pool);
      const keyPath = join(dataDir, 'keyring.json');
      let row = await store.load();
      let created: SharedCreated | undefined;
      if (!row) {
        created = await store.withLock('create the shared vault', async (c) => ((await store.load(c)) ? undefined : createSharedVault(c, store, dataDir, keyPath, storage, opts.init ?? {})));
        row = await store.load();
        if (!row) throw new CustodyError('INTERNAL', 'The shared vault configuration was not found right after it was created.');
      }
      const config = row.config as unknown as VaultConfig;
      const where = config.storage;
      if (where && (where.bucket !== storage.bucket || where.prefix !== storage.prefix)) {
        throw new CustodyError('CONFIG', `This database belongs to the vault in s3://${where.bucket}/${where.prefix}, not s3://${storage.bucket}/${storage.prefix}: give every node the same --storage.`);
      }
      if (!created) writeFileAtomicSync(keyPath, row.keyring, 0o600);
      const keyring = await Keyring.open(keyPath);
      if (keyring.protection === 'none') throw new CustodyError('CONFIG', 'The shared keyring is not sealed; the database was altered. Restore it from its backup.');
      db = VaultDb.inDataDir(dataDir, keyring);
      const logRows = await store.listLogs();
      for (const r of logRows) db.ensureLog(r);
      db.replacePrincipals(await store.principalsWithHashes());
      v = new Vault(dataDir, config, db, keyring, logRows, log);
      ctx = new SharedCtx(v, store, connectionString, storage, nodeId, keyPath, row.keyringVersion, row.principalsVersion);
      if (created) {
        for (const e of created.audit) db.addPendingAudit(e);
        printSharedInit(created, dataDir);
      }
    } catch (e) {
      db?.close();
      await pool.end().catch(() => undefined);
      throw e;
    }
    v.shared = { pool, nodeId };
    v.sharedCtx = ctx;
    v.sharedInfo = { storage: 's3', bucket: storage.bucket, prefix: storage.prefix, nodeId };
    v.keyring.onSaved = (text) => ctx.keyringSaved(text);
    await v.start(opts);
    // Only now: a change seen before every log is open could open one twice.
    await ctx.listen().catch(async (e: unknown) => {
      await v.close();
      throw e;
    });
    return v;
  }

  /** Opens the logs and starts the vault's timers (both modes). */
  /** The vault's logger (shared-mode helpers). */
  get logger(): Logger {
    return this.log;
  }

  private async start(opts: VaultOptions): Promise<Vault> {
    const v = this;
    const dataDir = this.dataDir;
    const config = this.config;
    v.openOpts = opts;
    opts.witnesses?.useAlarms(v.alarms);
    v.floodLimit = opts.auditFloodLimit ?? 10;
    v.floodWindowMs = opts.auditFloodWindowMs ?? 10_000;
    try {
      for (const row of v.logRows) {
        if (!v.sharedCtx) checkLogDir(dataDir, config.regionDirs, row);
        v.logs.set(row.name, await v.openLog(row));
      }
      await v.drainOfflineAudit();
    } catch (e) {
      await v.close();
      throw e;
    }
    v.auditTimer = setInterval(() => {
      void v.drainOfflineAudit().catch(() => undefined);
      void v.flushFloods(false).catch(() => undefined);
    }, Math.min(5_000, v.floodWindowMs));
    v.auditTimer.unref();
    return v;
  }

  private async openLog(row: LogRow): Promise<LogSequencer> {
    const opts = this.openOpts;
    if (this.sharedCtx) {
      const seq = await this.sharedCtx.openLog(row, opts, (log, cp, stats) => {
        opts.onPublish?.(log, cp, stats);
        this.events.emit('published', log, cp);
      });
      return seq as unknown as LogSequencer; // see `logs`
    }
    return LogSequencer.open({
      name: row.name,
      origin: row.origin,
      dir: join(this.dataDir, 'logs', row.name),
      keys: this.keyring.forLog(row.name),
      db: this.db,
      hash: nativeSha256,
      logger: opts.logger,
      checkpointIntervalMs: opts.checkpointIntervalMs,
      maxPendingEntries: opts.maxPendingEntries,
      admissionTimeoutMs: opts.admissionTimeoutMs,
      // The audit log stays outside the shared budget: a flood of records must never hold up
      // the record of who sent it.
      sharedPending: row.kind === 'region' ? { total: () => this.pendingEntries(), max: opts.maxPendingEntries ?? 40_000 } : undefined,
      witnesses: opts.witnesses,
      onPublish: (log, cp, stats) => {
        opts.onPublish?.(log, cp, stats);
        this.events.emit('published', log, cp);
      },
    });
  }

  /** Entries acknowledged but not yet in a checkpoint, over all region logs. */
  pendingEntries(): number {
    let n = 0;
    for (const r of this.logRows) if (r.kind === 'region') n += this.logs.get(r.name)?.pendingEntries ?? 0;
    return n;
  }

  get regionMode(): 'auto' | 'fixed' {
    return this.config.regionMode ?? 'auto';
  }

  /** The log that holds a region's records, or undefined. */
  logForRegion(region: string): string | undefined {
    return this.logRows.find((r) => r.kind === 'region' && r.region === region)?.name;
  }

  /**
   * The log of a region, created (keys, directory, integrator) on first sight when the vault's
   * region mode is "auto". Refuses with REGION_NOT_ALLOWED otherwise, never falling back to
   * another region's log.
   */
  async ensureRegionLog(region: string, by: string): Promise<string> {
    const have = this.logForRegion(region);
    if (have) return have;
    if (this.regionMode !== 'auto') {
      throw new CustodyError('REGION_NOT_ALLOWED', `This vault keeps only the regions ${this.config.regions.join(', ')}; a record for region "${region}" is refused. An operator can start a vault for that region.`);
    }
    if (!AWS_REGION_RE.test(region) || !REGION_RE.test(region)) {
      throw new CustodyError('REGION_NOT_ALLOWED', `"${region.slice(0, 64)}" is not an AWS region name (like eu-west-1); the record is refused rather than stored in another region.`);
    }
    const pending = this.creating.get(region);
    if (pending) return pending;
    if (this.logRows.filter((r) => r.kind === 'region').length >= MAX_AUTO_LOGS) {
      throw new CustodyError('REGION_NOT_ALLOWED', `This vault already has ${MAX_AUTO_LOGS} region logs; region "${region}" was refused. An operator can raise the limit by configuring regions explicitly.`);
    }
    const p = (async () => {
      const row: LogRow = { name: region, origin: `${this.config.prefix}/${region}`, region, kind: 'region', createdAt: new Date().toISOString() };
      if (this.sharedCtx) {
        // Another node may have created it: PostgreSQL decides, under the vault lock.
        const made = await this.sharedCtx.createLog(row);
        await this.sharedCtx.sync();
        if (!this.logs.has(row.name)) throw new CustodyError('STORAGE_UNAVAILABLE', `The log of region "${region}" was created but is not open on this node yet; retry in a second.`, { retryAfter: 1 });
        if (made) {
          this.log.info({ log: row.name, origin: row.origin }, 'created the log of a new region');
          await this.audit({ type: 'log.created', log: row.name, origin: row.origin, region, reason: 'first record for this region', by });
        }
        return row.name;
      }
      placeLogDir(this.dataDir, this.config.regionDirs, row);
      if (!this.keyring.has(row.name)) this.keyring.addLog(row.name, { region });
      this.db.addLog(row);
      const seq = await this.openLog(row);
      this.logs.set(row.name, seq);
      this.logRows.push(row);
      this.log.info({ log: row.name, origin: row.origin }, 'created the log of a new region');
      await this.audit({ type: 'log.created', log: row.name, origin: row.origin, region, reason: 'first record for this region', by });
      return row.name;
    })();
    this.creating.set(region, p);
    try {
      return await p;
    } finally {
      this.creating.delete(region);
    }
  }

  /** Where a writer's records without a region go: its first log, or the vault's first region. */
  defaultLogFor(principal: PrincipalRow): string {
    const scoped = principal.logs?.find((l) => this.logs.has(l));
    return scoped ?? this.logForRegion(this.config.regions[0]!) ?? this.regionLogs()[0]!;
  }

  /** Appends admin actions taken offline on the data directory to the audit log. */
  async drainOfflineAudit(): Promise<void> {
    for (const { id, event } of this.db.pendingAudit()) {
      await this.audit(event);
      this.db.removePendingAudit(id);
    }
  }

  /** The sequencer of a log, or LOG_NOT_FOUND. */
  sequencer(name: string): LogSequencer {
    const s = this.logs.get(name);
    if (!s) throw new CustodyError('LOG_NOT_FOUND', `There is no log "${name}". GET /v1/logs lists them.`);
    return s;
  }

  logRow(name: string): LogRow {
    const r = this.logRows.find((l) => l.name === name);
    if (!r) throw new CustodyError('LOG_NOT_FOUND', `There is no log "${name}". GET /v1/logs lists them.`);
    return r;
  }

  regionLogs(): string[] {
    return this.logRows.filter((r) => r.kind === 'region').map((r) => r.name);
  }

  /**
   * Wraps records in envelopes and appends them; resolves when they are durable. Records
   * too large for one entry are stored first as sealed blobs, referenced from their entry.
   */
  async append(logName: string, records: Buffer[], meta: AppendMeta, opts: { receipts?: boolean } = {}): Promise<AppendOutcome> {
    const seq = this.sequencer(logName);
    const row = this.logRow(logName);
    const received = new Date().toISOString();
    const prefix = envelopePrefix({ origin: row.origin, region: row.region, source: meta.source, producer: meta.producer, received, attrs: meta.attrs });
    const limit = inlineLimit(prefix);
    let blobs: Array<{ sha256: string; size: number } | undefined> | undefined;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.length > MAX_RECORD_SIZE) throw new CustodyError('RECORD_TOO_LARGE', `Record ${i + 1} is ${r.length} bytes; the limit is ${MAX_RECORD_SIZE} bytes.`);
      if (r.length > limit) {
        blobs ??= [];
        blobs[i] = { sha256: await seq.store.writeBlob(r), size: r.length };
      }
    }
    const buf = encodeEnvelopes(prefix, records, blobs);
    // Receipt material is taken now: the buffer moves to the integrator thread once durable.
    const receipts = opts.receipts ? splitEncoded(buf).map((e) => ({ leafHash: hashLeaf(e, nativeSha256), salt: saltOf(e) })) : undefined;
    const { first, count } = await seq.add(buf, records.length);
    return { first, count, received, receipts };
  }

  /** Appends one event to the vault's own audit log (durable before it resolves). */
  async audit(event: Record<string, unknown>): Promise<void> {
    if (this.closing) return;
    const rec = Buffer.from(JSON.stringify({ time: new Date().toISOString(), ...event }));
    try {
      const { first } = await this.append(AUDIT_LOG, [rec], { source: 'custody.audit', producer: 'custody' });
      this.events.emit('audit', event, first);
    } catch (e) {
      this.log.error({ err: e, event: event['type'] }, 'could not append to the audit log');
      throw e;
    }
  }

  /**
   * Records a refusal of a request that carried no valid identity. Per address and kind, the
   * first `auditFloodLimit` in a window are recorded in full and the rest counted, then
   * recorded as one "<type>.suppressed" event: a flood of bad requests cannot grow the audit log
   * (and the disk) without bound, and the evidence of it is kept.
   */
  async auditAnonymous(event: { type: string; address?: unknown } & Record<string, unknown>): Promise<void> {
    const key = `${event.type}|${String(event.address)}`;
    const now = Date.now();
    let f = this.floods.get(key);
    if (f && now - f.windowStart >= this.floodWindowMs) {
      await this.flushFlood(key, f, now);
      f = undefined;
    }
    if (!f) {
      if (this.floods.size >= 10_000) await this.flushFloods(true);
      f = { windowStart: now, count: 0, suppressed: 0, type: event.type, address: event.address };
      this.floods.set(key, f);
    }
    if (f.count < this.floodLimit) {
      f.count++;
      return this.audit(event);
    }
    f.suppressed++;
  }

  private async flushFlood(key: string, f: { windowStart: number; suppressed: number; type: string; address: unknown }, now: number): Promise<void> {
    this.floods.delete(key);
    if (f.suppressed > 0) {
      await this.audit({ type: `${f.type}.suppressed`, address: f.address, count: f.suppressed, from: new Date(f.windowStart).toISOString(), to: new Date(now).toISOString() });
    }
  }

  /** Records the counts of windows that have ended (or of all windows, with `all`). */
  async flushFloods(all: boolean): Promise<void> {
    const now = Date.now();
    for (const [key, f] of [...this.floods]) {
      if (all || now - f.windowStart >= this.floodWindowMs) await this.flushFlood(key, f, now);
    }
  }

  /** Creates a principal; in shared mode it is in PostgreSQL (every node) before this resolves. */
  async createPrincipal(p: { name: string; role: PrincipalRow['role']; logs?: string[] | null; createdBy: string }): Promise<{ principal: PrincipalRow; token: string }> {
    if (this.sharedCtx) {
      const { principal, token, tokenHash } = newPrincipal(p, this.regionLogs());
      await this.sharedCtx.store.addPrincipal(principal, tokenHash);
      await this.sharedCtx.sync();
      return { principal, token };
    }
    const r = createPrincipal(this.db, p, this.regionLogs());
    this.auth.reload();
    return r;
  }

  /** Revokes a principal; in shared mode the revocation is committed in PostgreSQL before this resolves. */
  async revokePrincipal(id: string, by: string): Promise<PrincipalRow> {
    if (this.sharedCtx) {
      const r = await this.sharedCtx.store.revokePrincipal(id, by);
      await this.sharedCtx.sync();
      return r;
    }
    const r = this.db.revokePrincipal(id, by);
    this.auth.reload();
    return r;
  }

  /** @internal (SharedCtx) Opens a log another node created and starts serving it. */
  async adoptLog(row: LogRow): Promise<void> {
    if (this.logs.has(row.name) || this.closing) return;
    this.db.ensureLog(row);
    const seq = await this.openLog(row);
    if (this.logs.has(row.name) || this.closing) {
      await seq.close();
      return;
    }
    this.logs.set(row.name, seq);
    if (!this.logRows.some((r) => r.name === row.name)) this.logRows.push(row);
    this.log.info({ log: row.name, origin: row.origin }, 'opened a log created on another node');
  }

  async close(): Promise<void> {
    if (this.auditTimer) clearInterval(this.auditTimer);
    await this.sharedCtx?.stop(); // no more reloads into what closes below
    await this.flushFloods(true).catch(() => undefined);
    this.closing = true;
    for (const s of this.logs.values()) {
      try {
        await s.close();
      } catch (e) {
        this.log.error({ err: e, log: s.name }, 'closing log failed');
      }
    }
    this.db.close();
    this.dedupe.close();
    if (this.shared) await this.shared.pool.end().catch(() => undefined);
  }
}

// ---- shared mode (several nodes: PostgreSQL + S3) ---------------------------------------------

/** Where a shared vault's logs live (GET /v1/logs, /readyz). */
export interface SharedInfo {
  storage: 's3';
  bucket: string;
  prefix: string;
  nodeId: string;
}

interface SharedCreated {
  config: VaultConfig;
  logs: Array<{ name: string; origin: string; verifierKey: string }>;
  tokensFile: string;
  audit: Array<Record<string, unknown>>;
}

type PgVaultStoreT = import('./storage/pg/vault-store.js').PgVaultStore;


/**
 * The first node of a shared vault creates it (inside PgVaultStore.withLock): the keyring —
 * refused unless sealed (passphrase or KMS), since it is stored in the database — a key set
 * per log, the vault keys every node uses, the logs and the first three principals, whose
 * tokens go to this node's <data>/initial-tokens.txt (0600).
 */
async function createSharedVault(
  c: pg.PoolClient,
  store: PgVaultStoreT,
  dataDir: string,
  keyPath: string,
  storage: Extract<StorageChoice, { kind: 's3' }>,
  o: SharedInitOptions,
): Promise<SharedCreated> {
  const regions = o.regions && o.regions.length > 0 ? o.regions : ['local'];
  for (const r of regions) {
    if (!REGION_RE.test(r) || r === AUDIT_LOG) throw new CustodyError('CONFIG', `Region name "${r}" is not allowed: use lower-case letters, digits and dashes (and not "${AUDIT_LOG}").`);
  }
  let keyring: Keyring;
  let madeHere = false;
  if (existsSync(keyPath)) keyring = await Keyring.open(keyPath);
  else {
    if (!Keyring.hasDefaultPassphrase()) {
      throw new CustodyError(
        'CONFIG',
        'A shared vault keeps its keyring in PostgreSQL, sealed: set a passphrase (CUSTODY_PASSPHRASE or --passphrase-file) or create a KMS-protected keyring first (custody init --kms-key … on this node\'s --data), then start again. Nothing was created.',
      );
    }
    keyring = Keyring.create(keyPath);
    madeHere = true;
  }
  if (keyring.protection === 'none') {
    if (madeHere) unlinkSync(keyPath);
    throw new CustodyError('CONFIG', `The keyring ${keyPath} holds its keys in the clear; a shared vault stores its keyring in PostgreSQL and needs it sealed: protect it (custody keyring passphrase --data ${dataDir}) or use KMS keys, then start again.`);
  }
  const vaultId = randomBytes(4).toString('hex');
  const prefix = o.prefix ?? `custody-${vaultId}`;
  checkField('origin prefix', prefix);
  const createdAt = new Date().toISOString();
  const regionMode = o.regionMode ?? (o.regions && o.regions.length > 0 ? 'fixed' : 'auto');
  const retentionDays = o.retentionDays ?? 365;
  const config: VaultConfig = { version: 1, vaultId, prefix, regions, regionMode, createdAt, storage: { kind: 's3', bucket: storage.bucket, prefix: storage.prefix }, retentionDays };
  const rows: LogRow[] = [
    ...regions.map((r) => ({ name: r, origin: `${prefix}/${r}`, region: r, kind: 'region' as const, createdAt })),
    { name: AUDIT_LOG, origin: `${prefix}/${AUDIT_LOG}`, region: regions[0]!, kind: 'audit' as const, createdAt },
  ];
  for (const row of rows) if (!keyring.has(row.name)) keyring.addLog(row.name, { region: row.region });
  for (const purpose of SHARED_VAULT_KEYS) keyring.vaultKey(purpose);
  for (const row of rows) await store.addLog(c, row);
  const tokens: Array<{ role: string; name: string; token: string }> = [];
  for (const role of ['admin', 'writer', 'auditor'] as const) {
    const { principal, token, tokenHash } = newPrincipal({ name: `initial-${role}`, role, createdBy: 'custody serve (first node)' }, regions);
    await store.addPrincipal(principal, tokenHash, c);
    tokens.push({ role, name: principal.name, token });
  }
  await store.create(c, config as unknown as Record<string, unknown>, readFileSync(keyPath, 'utf8'));
  const tokensFile = join(dataDir, 'initial-tokens.txt');
  writeFileAtomicSync(
    tokensFile,
    ['# The first Custody tokens. Each is shown only here; the vault keeps only their hashes.', '# Move them into your secret store, then delete this file.', ...tokens.map((t) => `${t.role.toUpperCase()}_TOKEN=${t.token}`), ''].join('\n'),
    0o600,
  );
  return {
    config,
    tokensFile,
    logs: rows.map((r) => ({ name: r.name, origin: r.origin, verifierKey: new Ed25519NoteSigner(r.origin, keyring.forLog(r.name).signingSeed).verifierKey })),
    audit: [
      {
        type: 'vault.initialised',
        prefix,
        storage: `s3://${storage.bucket}/${storage.prefix}`,
        logs: rows.map((r) => ({ name: r.name, origin: r.origin, region: r.region, kind: r.kind })),
        principals: tokens.map((t) => ({ name: t.name, role: t.role })),
      },
    ],
  };
}

function printSharedInit(r: SharedCreated, dataDir: string): void {
  process.stdout.write(
    [
      `Custody created a new shared vault (s3://${r.config.storage!.bucket}/${r.config.storage!.prefix}; configuration, keyring and principals in PostgreSQL).`,
      '',
      'Logs and their verifier keys (give these to your auditors; they check every checkpoint with them):',
      ...r.logs.map((l) => `  ${l.name.padEnd(8)} ${l.verifierKey}`),
      '',
      `The first admin, writer and auditor tokens are in ${r.tokensFile} on this node (readable only by you; data: ${dataDir}).`,
      'Move them into your secret store and delete that file. They are not shown anywhere else.',
      '',
    ].join('\n') + '\n',
  );
}

/**
 * A shared vault's link to PostgreSQL: keeps this node's copies (keyring file, principals in
 * custody.db → the authenticator, open logs) current — at once on NOTIFY custody_vault, and by
 * a poll of the change counters every second whatever happens to the LISTEN session — and
 * writes changes to PostgreSQL first.
 */
class SharedCtx {
  private listener: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private inLockedChange = false;
  private readonly adopting = new Map<string, Promise<void>>();
  private readonly log: Logger;

  constructor(
    private readonly vault: Vault,
    readonly store: PgVaultStoreT,
    private readonly connectionString: string,
    private readonly storage: Extract<StorageChoice, { kind: 's3' }>,
    private readonly nodeId: string,
    private readonly keyPath: string,
    private keyringVersion: number,
    private principalsVersion: number,
  ) {
    this.log = vault.logger;
  }

  async openLog(row: LogRow, opts: VaultOptions, onPublish: SharedSequencerOptions['onPublish']): Promise<LogSequencerApi> {
    const mod = await import('./sequencer/shared-sequencer.js');
    const { partialLockDaysOf, DEFAULT_PARTIAL_LOCK } = await import('./storage/s3/log-store.js');
    const partialLockDays = partialLockDaysOf(opts.partialLock ?? DEFAULT_PARTIAL_LOCK);
    const days = this.vault.config.retentionDays ?? 365;
    const env: Record<string, string> = {};
    for (const [k, val] of Object.entries(process.env)) if (val !== undefined && k.startsWith('AWS_')) env[k] = val;
    return mod.openSharedLogSequencer({
      name: row.name,
      origin: row.origin,
      keys: this.vault.keyring.forLog(row.name),
      pool: this.vault.shared!.pool,
      connectionString: this.connectionString,
      nodeId: this.nodeId,
      s3: { kind: 's3', bucket: this.storage.bucket, prefix: this.storage.prefix, log: row.name, retainUntil: new Date(Date.now() + days * 86_400_000).toISOString(), partialLockDays, env },
      cacheDir: join(this.vault.dataDir, 'cache', row.name),
      logger: opts.logger,
      checkpointIntervalMs: opts.checkpointIntervalMs,
      witnesses: opts.witnesses,
      create: false,
      onPublish,
    });
  }

  /** LISTEN custody_vault on a session of its own, and the 1-s poll. */
  async listen(): Promise<void> {
    this.timer = setInterval(() => void this.sync().catch(() => undefined), 1_000);
    this.timer.unref();
    await this.connectListener();
  }

  private async connectListener(): Promise<void> {
    if (this.closed) return;
    const { default: pgmod } = await import('pg');
    const c = new pgmod.Client({ connectionString: this.connectionString, keepAlive: true, connectionTimeoutMillis: 5_000 });
    c.on('error', () => undefined);
    c.on('end', () => {
      if (this.listener === c) this.listener = null;
      // The poll keeps nodes current meanwhile; try LISTEN again shortly.
      if (!this.closed) setTimeout(() => void this.connectListener().catch(() => undefined), 2_000).unref();
    });
    c.on('notification', () => void this.sync().catch(() => undefined));
    try {
      await c.connect();
      const { VAULT_CHANNEL } = await import('./storage/pg/vault-store.js');
      await c.query(`LISTEN ${VAULT_CHANNEL}`);
      this.listener = c;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'shared vault: LISTEN failed; relying on the 1-s poll');
      await c.end().catch(() => undefined);
    }
  }

  /** Brings this node's copies up to date (one run at a time; a call during a run runs again after it). */
  sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.syncOnce();
        } while (this.again && !this.closed);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  private async syncOnce(): Promise<void> {
    if (this.closed) return;
    const v = await this.store.versions().catch((e: unknown) => {
      this.log.warn({ err: (e as Error).message }, 'shared vault: cannot read the change counters; keeping the current principals and keys');
      throw e;
    });
    if (v.keyring !== this.keyringVersion) {
      const row = await this.store.load();
      if (row && row.keyringVersion !== this.keyringVersion) {
        writeFileAtomicSync(this.keyPath, row.keyring, 0o600);
        this.vault.keyring.reload();
        this.keyringVersion = row.keyringVersion;
        this.log.info({ version: row.keyringVersion }, 'shared vault: loaded the keyring changed on another node');
        // A KEK rotated on another node: seal with it here too (reads find new KEKs by themselves).
        for (const [name, seq] of this.vault.logs) {
          if (!this.vault.keyring.has(name)) continue;
          const lk = this.vault.keyring.forLog(name);
          if (lk.activeKek.id > seq.keys.activeKek.id) seq.useKek(lk.activeKek, lk.kmsKey?.keyId);
        }
      }
    }
    if (v.principals !== this.principalsVersion) {
      const rows = await this.store.principalsWithHashes();
      if (this.closed) return;
      this.vault.db.replacePrincipals(rows);
      this.vault.auth.reload();
      this.principalsVersion = v.principals;
    }
    if (v.logs !== this.vault.logs.size) {
      for (const row of await this.store.listLogs()) {
        if (this.vault.logs.has(row.name)) continue;
        if (!this.vault.keyring.has(row.name)) continue; // its keys arrive with the next keyring version
        let p = this.adopting.get(row.name);
        if (!p) {
          p = this.vault.adoptLog(row).finally(() => this.adopting.delete(row.name));
          this.adopting.set(row.name, p);
        }
        await p.catch((e: unknown) => this.log.error({ err: e, log: row.name }, 'shared vault: cannot open a log created on another node'));
      }
    }
  }

  /** Creates a log (keys in the shared keyring, rows in PostgreSQL) unless another node did; true when this call created it. */
  async createLog(row: LogRow): Promise<boolean> {
    return this.store.withLock(`create log "${row.name}"`, async (c) => {
      const have = (await this.store.listLogs(c)).find((r) => r.name === row.name);
      if (have) return false;
      const cur = await this.store.load(c);
      if (!cur) throw new CustodyError('CONFIG', 'The shared vault configuration is missing from the database.');
      if (cur.keyringVersion !== this.keyringVersion) {
        writeFileAtomicSync(this.keyPath, cur.keyring, 0o600);
        this.vault.keyring.reload();
        this.keyringVersion = cur.keyringVersion;
      }
      this.inLockedChange = true;
      try {
        if (!this.vault.keyring.has(row.name)) this.vault.keyring.addLog(row.name, { region: row.region });
      } finally {
        this.inLockedChange = false;
      }
      this.keyringVersion = await this.store.saveKeyring(c, readFileSync(this.keyPath, 'utf8'));
      await this.store.addLog(c, row);
      return true;
    });
  }

  /**
   * The keyring was saved outside createLog (a vault key of a new purpose, a rotation): copy
   * it to PostgreSQL unless another node changed the shared one meanwhile — then this node's
   * change is NOT shared (overwriting would drop the other's keys) and an error says so.
   */
  keyringSaved(text: string): void {
    if (this.inLockedChange || this.closed) return;
    const base = this.keyringVersion;
    void this.store
      .withLock('share a keyring change', async (c) => {
        const cur = await this.store.load(c);
        if (!cur || cur.keyringVersion !== base) {
          throw new CustodyError('KEYRING', 'The shared keyring was changed on another node at the same time; this node\'s keyring change was not shared. Restart this node to load the shared keyring and repeat the change.');
        }
        this.keyringVersion = await this.store.saveKeyring(c, text);
      })
      .catch((e: unknown) => this.log.error({ err: e }, 'shared vault: could not share a keyring change'));
  }

  /** Stops reloading (the vault ends the pool once its logs are closed). */
  async stop(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(() => undefined);
  }
}
