/**
 * Worker thread that runs one log's Integrator (integrator.ts). Messages:
 *   main → worker: {t:'append', first, count, buf}  durable entries (buf is transferred)
 *                  {t:'published'} | {t:'rejected'}  the answer to a round
 *                  {t:'kek', id, key, kmsKeyId?}      a rotated KEK (and KMS key): seal with it from now on
 *   worker → main: {t:'round', size, root, entries} a round is written; sign and publish it
 *                  {t:'error', code, message}         a round failed; it will be retried
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Integrator, type IntegratorState } from './integrator.js';
import { LogKeys } from '../crypto/keyring.js';
import { CustodyError } from '../errors.js';
import { openLogStore, type LogStoreInit } from '../storage/log-store.js';

export interface WorkerInit {
  /** The log's store: its folder, or its S3 bucket and prefix (storage/log-store.ts). */
  store: LogStoreInit;
  origin: string;
  keys: Parameters<typeof LogKeys.fromWorker>[0];
  state: IntegratorState;
  intervalMs: number;
  maxRound: number;
}

const init = workerData as WorkerInit;
const port = parentPort!;
const keys = LogKeys.fromWorker(init.keys);
const store = await openLogStore(init.store, init.origin, keys);
const integ = new Integrator(store, init.origin, keys, { ...init.state, tail: Buffer.from(init.state.tail) }, init.maxRound);
let busy = false;
let timer: NodeJS.Timeout | null = null;
let failures = 0;

function schedule(delay?: number): void {
  if (busy || timer || integ.pending === 0) return;
  const oldest = integ.oldestPending ?? Date.now();
  const wait = delay ?? Math.max(0, init.intervalMs - (Date.now() - oldest));
  timer = setTimeout(() => {
    timer = null;
    void run();
  }, wait);
}

async function run(): Promise<void> {
  busy = true;
  try {
    const r = await integ.round();
    if (!r) {
      busy = false;
      return;
    }
    port.postMessage({ t: 'round', ...r });
  } catch (e) {
    integ.abort();
    busy = false;
    failures++;
    const err = e instanceof CustodyError ? e : new CustodyError('INTERNAL', (e as Error)?.message ?? String(e));
    port.postMessage({ t: 'error', code: err.code, message: err.message });
    schedule(Math.min(10_000, 250 * 2 ** Math.min(failures, 6)));
  }
}

port.on('message', (m: { t: string; first?: number; count?: number; buf?: ArrayBuffer; id?: number; key?: Uint8Array; kmsKeyId?: string }) => {
  if (m.t === 'kek') {
    keys.addKek({ id: m.id!, key: Buffer.from(m.key!) });
    if (m.kmsKeyId) keys.useKmsKey(m.kmsKeyId);
  } else if (m.t === 'append') {
    integ.add(m.first!, m.count!, Buffer.from(m.buf!));
    schedule();
  } else if (m.t === 'published') {
    void integ.commit().finally(() => {
      failures = 0;
      busy = false;
      schedule();
    });
  } else if (m.t === 'rejected') {
    integ.abort();
    busy = false;
    failures++;
    schedule(Math.min(10_000, 250 * 2 ** Math.min(failures, 6)));
  }
});
