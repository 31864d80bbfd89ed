/**
 * The index follower: a worker thread that reads each log's newly published entries and writes
 * their rows into search.db. It runs at a lower CPU priority than the server (nice 10, on Linux
 * per thread): when ingest needs the CPUs it gets them and the index falls behind, then catches
 * up. Messages:
 *   main → worker: {t:'log', log:{name, origin, dir, keys}}   a log to follow
 *                  {t:'sizes', sizes:{<log>: published size}}  what may be read now
 *                  {t:'forget', name, from, to}                drop the rows of purged entries
 *                  {t:'close'}                                 finish the batch in hand and stop
 *   worker → main: {t:'indexed', log, indexed}                 progress (after each commit)
 *                  {t:'error', log, message}                   a log cannot be read; retried
 *                  {t:'closed'}
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setPriority } from 'node:os';
import { LogKeys } from '../crypto/index.js';
import { PosixLogStore } from '../storage/index.js';
import { openSearchDb, IndexWriter } from './store.js';
import type { SqliteKey } from '../storage/sqlite.js';
import { readRows } from './follow.js';

export interface FollowedLog {
  name: string;
  origin: string;
  dir: string;
  keys: Parameters<typeof LogKeys.fromWorker>[0];
}

export interface FollowerInit {
  dbPath: string;
  /** The page key of search.db (same process, never written anywhere; like the log keys). */
  dbKey: SqliteKey;
  /** CPU priority of this thread (0 = the server's; 10 = yields to it). */
  nice: number;
  /** Most entries per transaction. */
  batchEntries: number;
  /** Most record bytes per transaction (at least one entry). */
  batchBytes: number;
}

interface LogState {
  store: PosixLogStore;
  size: number;
  indexed: number;
  failures: number;
  retryAt: number;
}

const init = workerData as FollowerInit;
const port = parentPort!;
if (init.nice > 0) {
  try {
    setPriority(0, init.nice);
  } catch {
    // Not allowed here: the follower runs at the server's priority.
  }
}

const db = openSearchDb(init.dbPath, { cacheMb: 4, key: init.dbKey });
// Fewer, larger WAL checkpoints: each one syncs search.db, and the disk is what ingest waits for.
db.pragma('wal_autocheckpoint = 8192');
const writer = new IndexWriter(db);
const logs = new Map<string, LogState>();
let closing = false;
let running = false;
let wake: NodeJS.Timeout | null = null;
let lastOptimize = Date.now();

function schedule(delayMs = 0): void {
  if (closing || running) return;
  if (wake) clearTimeout(wake);
  wake = setTimeout(() => {
    wake = null;
    void pump();
  }, delayMs);
}

/** The next log with entries to index (round robin), or the soonest retry time. */
let turn = 0;
function nextLog(now: number): { name: string; st: LogState } | { retryIn: number } | null {
  const names = [...logs.keys()];
  let retry = Infinity;
  for (let k = 0; k < names.length; k++) {
    const name = names[(turn + k) % names.length]!;
    const st = logs.get(name)!;
    if (st.indexed >= st.size) continue;
    if (st.retryAt > now) {
      retry = Math.min(retry, st.retryAt - now);
      continue;
    }
    turn = (turn + k + 1) % names.length;
    return { name, st };
  }
  return retry === Infinity ? null : { retryIn: retry };
}

async function pump(): Promise<void> {
  if (running || closing) return;
  running = true;
  try {
    for (;;) {
      if (closing) break;
      const pick = nextLog(Date.now());
      if (pick === null) break;
      if ('retryIn' in pick) {
        running = false;
        schedule(pick.retryIn);
        return;
      }
      const { name, st } = pick;
      const from = st.indexed;
      const to = Math.min(st.size, from + init.batchEntries);
      let next: number;
      try {
        const r = await readRows(st.store, name, from, to, init.batchBytes);
        next = r.next;
        writer.insert(r.rows, [[name, next]]);
      } catch (e) {
        st.failures++;
        st.retryAt = Date.now() + Math.min(60_000, 1000 * 2 ** Math.min(st.failures, 6));
        port.postMessage({ t: 'error', log: name, message: (e as Error)?.message ?? String(e) });
        continue;
      }
      st.indexed = next;
      st.failures = 0;
      port.postMessage({ t: 'indexed', log: name, indexed: st.indexed });
      // Let messages (new sizes, close) in between batches.
      await new Promise((r) => setImmediate(r));
    }
    if (Date.now() - lastOptimize > 600_000) {
      db.pragma('optimize');
      lastOptimize = Date.now();
    }
  } finally {
    running = false;
  }
}

/** Drops the rows of crypto-shredded entries (a retention purge): the index keeps nothing of them. */
function forget(name: string, from: number, to: number): void {
  try {
    writer.forget(name, from, to);
  } catch (e) {
    port.postMessage({ t: 'error', log: name, message: `could not remove the index rows of purged entries ${from}–${to - 1}: ${(e as Error)?.message ?? String(e)}` });
  }
}

port.on('message', (m: { t: string; log?: FollowedLog; sizes?: Record<string, number>; name?: string; from?: number; to?: number }) => {
  if (m.t === 'log' && m.log) {
    if (!logs.has(m.log.name)) {
      const keys = LogKeys.fromWorker(m.log.keys);
      const store = new PosixLogStore(m.log.dir, m.log.origin, keys);
      logs.set(m.log.name, { store, size: 0, indexed: writer.indexed(m.log.name), failures: 0, retryAt: 0 });
      // Purges that happened while the index was not following (idempotent).
      try {
        for (const p of store.shreds()) forget(m.log.name, p.from, p.to);
      } catch (e) {
        port.postMessage({ t: 'error', log: m.log.name, message: (e as Error)?.message ?? String(e) });
      }
    }
  } else if (m.t === 'forget' && m.name !== undefined && m.from !== undefined && m.to !== undefined) {
    forget(m.name, m.from, m.to);
  } else if (m.t === 'sizes' && m.sizes) {
    for (const [name, size] of Object.entries(m.sizes)) {
      const st = logs.get(name);
      if (st && size > st.size) st.size = size;
    }
    schedule();
  } else if (m.t === 'close') {
    closing = true;
    if (wake) clearTimeout(wake);
    const finish = (): void => {
      if (running) {
        setTimeout(finish, 5);
        return;
      }
      try {
        db.pragma('optimize');
        db.close();
      } finally {
        port.postMessage({ t: 'closed' });
      }
    };
    finish();
  }
});
