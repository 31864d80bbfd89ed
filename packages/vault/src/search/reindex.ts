/**
 * `custody reindex`: rebuilds a data directory's search index from its logs, offline. The new
 * index is written beside the old one and takes its place only when complete, so an
 * interrupted rebuild leaves the old index as it was.
 */
import { join } from 'node:path';
import { existsSync, renameSync, statSync } from 'node:fs';
import { Ed25519NoteSigner, openCheckpoint, parseVerifierKey } from '@custody/verify';
import { CustodyError } from '../errors.js';
import { readConfig } from '../vault.js';
import { Keyring } from '../crypto/index.js';
import { PosixLogStore } from '../storage/index.js';
import type { LogStore } from '../storage/log-store.js';
import { openSearchDb, createSchema, removeSearchFiles, IndexWriter, SEARCH_DB } from './store.js';
import { dataDirDbKey, openEncrypted } from '../storage/sqlite.js';
import { readRows } from './follow.js';

export interface ReindexReport {
  dataDir: string;
  path: string;
  logs: Array<{ log: string; entries: number }>;
  entries: number;
  seconds: number;
  entriesPerSec: number;
  bytes: number;
}

interface LogToRead {
  name: string;
  store: LogStore;
  size: number;
}

/** The logs of a data directory and their published (signed) sizes. */
function logsOf(dataDir: string, keyring: Keyring): LogToRead[] {
  let rows: Array<{ name: string; origin: string }>;
  const db = openEncrypted(join(dataDir, 'custody.db'), dataDirDbKey(keyring, dataDir, 'custody'), { what: 'the vault database', readonly: true });
  try {
    rows = db.prepare('SELECT name, origin FROM logs ORDER BY name').all() as Array<{ name: string; origin: string }>;
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot read ${join(dataDir, 'custody.db')}: ${(e as Error).message}.`);
  } finally {
    db.close();
  }
  return rows.map((r) => ({ name: r.name, store: new PosixLogStore(join(dataDir, 'logs', r.name), r.origin, keyring.forLog(r.name)), size: 0 }));
}

async function publishedSize(l: LogToRead, origin: string, seed: Buffer): Promise<number> {
  const text = await l.store.readCheckpoint();
  if (text === null) return 0;
  try {
    return openCheckpoint(text, parseVerifierKey(new Ed25519NoteSigner(origin, seed).verifierKey)).checkpoint.size;
  } catch (e) {
    throw new CustodyError('STORAGE_CORRUPT', `The checkpoint of log "${l.name}" does not verify (${(e as Error).message}); run \`custody verify --data\` before rebuilding the index.`);
  }
}

/**
 * Rebuilds `<dataDir>/search.db` from the logs. No server may be running on the directory
 * (the caller holds its lock). `progress(done, total)` is called as entries are indexed.
 */
export async function reindexDataDir(dataDir: string, opts: { progress?: (done: number, total: number) => void; batchEntries?: number } = {}): Promise<ReindexReport> {
  const config = readConfig(dataDir);
  const keyring = Keyring.load(join(dataDir, 'keyring.json'));
  const logs = logsOf(dataDir, keyring);
  for (const l of logs) l.size = await publishedSize(l, l.store.origin, keyring.forLog(l.name).signingSeed);
  const total = logs.reduce((s, l) => s + l.size, 0);
  const path = join(dataDir, SEARCH_DB);
  const tmp = `${path}.rebuild`;
  removeSearchFiles(tmp);
  const t0 = performance.now();
  const db = openSearchDb(tmp, { cacheMb: 64, key: dataDirDbKey(keyring, dataDir, 'search') });
  let done = 0;
  try {
    // The file is not in use until it is renamed into place: no need to sync each batch.
    db.pragma('synchronous = OFF');
    createSchema(db, config.vaultId);
    const writer = new IndexWriter(db);
    const batch = opts.batchEntries ?? 4096;
    for (const l of logs) {
      writer.logId(l.name);
      for (let from = 0; from < l.size; ) {
        const { rows, next } = await readRows(l.store, l.name, from, Math.min(l.size, from + batch), 32 * 1024 * 1024);
        from = next;
        writer.insert(rows, [[l.name, from]]);
        done += rows.length;
        opts.progress?.(done, total);
      }
    }
    db.exec('ANALYZE');
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma('synchronous = FULL');
  } catch (e) {
    db.close();
    removeSearchFiles(tmp);
    throw e;
  }
  db.close();
  // The old WAL must never be applied to the new file: it goes first.
  removeSearchFiles(path);
  renameSync(tmp, path);
  const seconds = (performance.now() - t0) / 1000;
  return {
    dataDir,
    path,
    logs: logs.map((l) => ({ log: l.name, entries: l.size })),
    entries: done,
    seconds,
    entriesPerSec: seconds > 0 ? done / seconds : done,
    bytes: existsSync(path) ? statSync(path).size : 0,
  };
}
