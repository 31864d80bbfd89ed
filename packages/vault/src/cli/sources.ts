/**
 * Where `custody verify` reads a log from: a Custody server (auditor token, the public C2SP
 * read tree) or a data directory on disk (the bundles are opened with its keyring).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Ed25519NoteSigner, tilePath } from '@custody/verify';
import { CustodyError } from '../errors.js';
import { readConfig } from '../vault.js';
import { Keyring } from '../crypto/keyring.js';
import { PosixLogStore } from '../storage/posix.js';
import { CustodyClient, ApiError } from './client.js';

export interface LogInfo {
  name: string;
  origin: string;
  verifierKey: string;
}

export class SourceError extends Error {
  constructor(
    readonly kind: 'missing' | 'corrupt' | 'unavailable',
    message: string,
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
  /** A decrypted entry bundle; SourceError('corrupt') when it fails authentication. */
  bundle(log: string, index: number, width: number): Promise<Uint8Array>;
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
  close(): void {}
}

export class DataDirSource implements LogSource {
  readonly description: string;
  private readonly stores = new Map<string, PosixLogStore>();
  private readonly infos: LogInfo[];

  constructor(dataDir: string) {
    this.description = dataDir;
    readConfig(dataDir);
    const keyring = Keyring.load(join(dataDir, 'keyring.json'));
    let rows: Array<{ name: string; origin: string }>;
    try {
      const db = new Database(join(dataDir, 'custody.db'), { readonly: true, fileMustExist: true });
      rows = db.prepare('SELECT name, origin FROM logs ORDER BY kind DESC, name').all() as Array<{ name: string; origin: string }>;
      db.close();
    } catch (e) {
      throw new CustodyError('CONFIG', `Cannot read ${join(dataDir, 'custody.db')}: ${(e as Error).message}.`);
    }
    this.infos = rows.map((r) => {
      const keys = keyring.forLog(r.name);
      this.stores.set(r.name, new PosixLogStore(join(dataDir, 'logs', r.name), r.origin, keys));
      return { name: r.name, origin: r.origin, verifierKey: new Ed25519NoteSigner(r.origin, keys.signingSeed).verifierKey };
    });
  }

  private store(log: string): PosixLogStore {
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
    let b: Buffer | null;
    try {
      b = await this.store(log).readBundle(index, width);
    } catch (e) {
      if (e instanceof CustodyError && e.code === 'STORAGE_CORRUPT') throw new SourceError('corrupt', e.message);
      throw e;
    }
    if (b === null) throw new SourceError('missing', `${tilePath({ level: 'entries', index, width })} is missing`);
    return b;
  }
  close(): void {}
}
