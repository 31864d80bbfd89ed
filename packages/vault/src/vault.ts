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
import { existsSync, mkdirSync, readFileSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
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
import { Authenticator, createPrincipal } from './auth/tokens.js';
import { encodeEnvelopes, splitEncoded, envelopePrefix, inlineLimit, checkField, saltOf, MAX_RECORD_SIZE } from './log/entry.js';
import { AlarmCenter, AlarmStore } from './alarms/index.js';
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
  readonly logs = new Map<string, LogSequencer>();
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
    this.alarms = new AlarmCenter(new AlarmStore(db.sqlite), { audit: (e) => this.audit(e), logger: log });
  }

  static async open(dataDir: string, opts: VaultOptions): Promise<Vault> {
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
    v.openOpts = opts;
    opts.witnesses?.useAlarms(v.alarms);
    v.floodLimit = opts.auditFloodLimit ?? 10;
    v.floodWindowMs = opts.auditFloodWindowMs ?? 10_000;
    try {
      for (const row of v.logRows) {
        checkLogDir(dataDir, config.regionDirs, row);
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

  private openLog(row: LogRow): Promise<LogSequencer> {
    const opts = this.openOpts;
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

  createPrincipal(p: { name: string; role: PrincipalRow['role']; logs?: string[] | null; createdBy: string }): { principal: PrincipalRow; token: string } {
    const r = createPrincipal(this.db, p, this.regionLogs());
    this.auth.reload();
    return r;
  }

  revokePrincipal(id: string, by: string): PrincipalRow {
    const r = this.db.revokePrincipal(id, by);
    this.auth.reload();
    return r;
  }

  async close(): Promise<void> {
    if (this.auditTimer) clearInterval(this.auditTimer);
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
  }
}
