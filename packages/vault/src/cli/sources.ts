/**
 * Where `custody verify` reads a log from: a Custody server (auditor token, the public C2SP
 * read tree) or a data directory on disk (the bundles are opened with its keyring).
 */
import { join } from 'node:path';
import { Ed25519NoteSigner, tilePath } from '@custody/verify';
import { CustodyError } from '../errors.js';
import { readConfig } from '../vault.js';
import { Keyring } from '../crypto/keyring.js';
import { PosixLogStore } from '../storage/posix.js';
import type { LogStore } from '../storage/log-store.js';
import { CustodyClient, ApiError } from './client.js';
import { readPurges, type PurgeRecord } from '../lifecycle/store.js';
import { dataDirDbKey, openEncrypted } from '../storage/sqlite.js';

export interface LogInfo {
  name: string;
  origin: string;
  verifierKey: string;
}

/** A range of entries an approved retention purge crypto-shredded (lifecycle/). */
export interface ShredInfo {
  purge: number;
  from: number;
  to: number;
  count: number;
}

export class SourceError extends Error {
  constructor(
    readonly kind: 'missing' | 'corrupt' | 'unavailable' | 'shredded',
    message: string,
    /** With kind "shredded": the approved purge that removed the bundle. */
    readonly shred?: ShredInfo,
  ) {
    super(message);
  }
}

export interface LogSource {
  readonly description: string;
  listLogs(): Promise<LogInfo[]>;
  checkpoint(log: string): Promise<string>;
  /** A hash tile; SourceError('missing') when absent. */
  tile(log: string, level: number, index: number, width: number): Promise<Uint8Array>;
  /**
   * A decrypted entry bundle; SourceError('corrupt') when it fails authentication,
   * SourceError('shredded') when an approved purge (on record) removed it.
   */
  bundle(log: string, index: number, width: number): Promise<Uint8Array>;
  /** The approved purges of a log (what verify reports as shredded). */
  purges?(log: string): Promise<ShredInfo[]>;
  close(): void;
}

export class HttpSource implements LogSource {
  readonly description: string;
  constructor(readonly client: CustodyClient) {
    this.description = client.base;
  }
  async listLogs(): Promise<LogInfo[]> {
    const r = await this.client.json<{ logs: LogInfo[] }>('GET', '/v1/logs');
    return r.logs;
  }
  checkpoint(log: string): Promise<string> {
    return this.client.text(`/logs/${encodeURIComponent(log)}/checkpoint`);
  }
  private async get(log: string, path: string): Promise<Uint8Array> {
    try {
      return await this.client.bytes(`/logs/${encodeURIComponent(log)}/${path}`);
    } catch (e) {
      if (e instanceof ApiError) {
        if (e.code === 'ENTRY_SHREDDED') {
          const d = (e.details ?? {}) as { purge?: unknown; from?: unknown; to?: unknown };
          const [purge, from, to] = [Number(d.purge), Number(d.from), Number(d.to)];
          if (Number.isSafeInteger(purge) && Number.isSafeInteger(from) && Number.isSafeInteger(to) && to > from) {
            throw new SourceError('shredded', `${path}: ${e.message}`, { purge, from, to, count: to - from });
          }
          throw new SourceError('corrupt', `${path}: the server says it was shredded but names no purge (${e.message})`);
        }
        if (e.status === 404) throw new SourceError('missing', `${path} is missing (${e.message})`);
        if (e.code === 'STORAGE_CORRUPT') throw new SourceError('corrupt', `${path}: ${e.message}`);
        throw new SourceError('unavailable', `${path}: ${e.status} ${e.code} ${e.message}`);
      }
      throw e;
    }
  }
  tile(log: string, level: number, index: number, width: number): Promise<Uint8Array> {
    return this.get(log, tilePath({ level, index, width }));
  }
  bundle(log: string, index: number, width: number): Promise<Uint8Array> {
    return this.get(log, tilePath({ level: 'entries', index, width }));
  }
  async purges(log: string): Promise<ShredInfo[]> {
    try {
      const r = await this.client.json<{ purges: Array<{ id: number; from: number; to: number; count: number }> }>('GET', `/v1/retention/purges?log=${encodeURIComponent(log)}`);
      return r.purges.map((p) => ({ purge: p.id, from: p.from, to: p.to, count: p.count }));
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 403 || e.status === 503)) return []; // an older server, or no retention service
      throw e;
    }
  }
  close(): void {}
}

export class DataDirSource implements LogSource {
  readonly description: string;
  private readonly stores = new Map<string, LogStore>();
  private readonly infos: LogInfo[];
  private readonly purgeRecords: PurgeRecord[];

  constructor(dataDir: string) {
    this.description = dataDir;
    readConfig(dataDir);
    const keyring = Keyring.load(join(dataDir, 'keyring.json'));
    let rows: Array<{ name: string; origin: string }>;
    const db = openEncrypted(join(dataDir, 'custody.db'), dataDirDbKey(keyring, dataDir, 'custody'), { what: 'the vault database', readonly: true });
    try {
      rows = db.prepare('SELECT name, origin FROM logs ORDER BY kind DESC, name').all() as Array<{ name: string; origin: string }>;
      this.purgeRecords = readPurges(db);
    } catch (e) {
      throw new CustodyError('CONFIG', `Cannot read ${join(dataDir, 'custody.db')}: ${(e as Error).message}.`);
    } finally {
      db.close();
    }
    this.infos = rows.map((r) => {
      const keys = keyring.forLog(r.name);
      this.stores.set(r.name, new PosixLogStore(join(dataDir, 'logs', r.name), r.origin, keys));
      return { name: r.name, origin: r.origin, verifierKey: new Ed25519NoteSigner(r.origin, keys.signingSeed).verifierKey };
    });
  }

  private store(log: string): LogStore {
    const s = this.stores.get(log);
    if (!s) throw new CustodyError('LOG_NOT_FOUND', `The data directory has no log "${log}".`);
    return s;
  }
  async listLogs(): Promise<LogInfo[]> {
    return this.infos;
  }
  async checkpoint(log: string): Promise<string> {
    const c = await this.store(log).readCheckpoint();
    if (c === null) throw new SourceError('missing', 'checkpoint is missing');
    return c;
  }
  async tile(log: string, level: number, index: number, width: number): Promise<Uint8Array> {
    const t = await this.store(log).readTile(level, index, width);
    if (t === null) throw new SourceError('missing', `${tilePath({ level, index, width })} is missing`);
    return t;
  }
  async bundle(log: string, index: number, width: number): Promise<Uint8Array> {
    const path = tilePath({ level: 'entries', index, width });
    // Only custody.db's purge records make a missing bundle "shredded", never the log's own
    // shredded.json: a bundle deleted by hand stays a loud failure whatever files say.
    const onRecord = (): SourceError | null => {
      const p = this.purgeRecords.find((r) => r.log === log && index * 256 >= r.from && index * 256 < r.to);
      return p ? new SourceError('shredded', `${path} was crypto-shredded by approved purge #${p.id}`, { purge: p.id, from: p.from, to: p.to, count: p.count }) : null;
    };
    let b: Buffer | null;
    try {
      b = await this.store(log).readBundle(index, width);
    } catch (e) {
      if (e instanceof CustodyError && e.code === 'STORAGE_CORRUPT') throw new SourceError('corrupt', e.message);
      if (e instanceof CustodyError && (e.code === 'ARCHIVE_UNAVAILABLE' || e.code === 'ARCHIVE_RESTORE_PENDING')) throw new SourceError('unavailable', e.message); // docs/ARCHIVE.md
      if (e instanceof CustodyError && e.code === 'ENTRY_SHREDDED') {
        throw onRecord() ?? new SourceError('missing', `${path} is missing; the log's shredded.json names purge #${String(e.details?.['purge'])}, but custody.db records no such purge`);
      }
      throw e;
    }
    if (b === null) throw onRecord() ?? new SourceError('missing', `${path} is missing`);
    return b;
  }
  async purges(log: string): Promise<ShredInfo[]> {
    return this.purgeRecords.filter((p) => p.log === log).map((p) => ({ purge: p.id, from: p.from, to: p.to, count: p.count }));
  }
  close(): void {}
}
