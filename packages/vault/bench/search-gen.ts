/**
 * Worker for bench/search.ts: makes index rows from synthetic CloudTrail-like records
 * (bench/records.ts) with the indexer's own derivation (search/derive.ts), a chunk at a time,
 * so the main thread only inserts. Record times are spread evenly over a year, in order.
 *
 *   workerData: { entries, chunk, seed, startMs, spanMs, logs }
 *   main → worker: {t:'more'}               make the next chunk (at most 4 are in flight)
 *   worker → main: {t:'rows', rows, rare}   a chunk of rows; `rare`: tokens of a few records
 *                  {t:'done'}
 */
import { parentPort, workerData } from 'node:worker_threads';
import { makeRecord, prng } from './records.js';
import { deriveRow } from '../src/search/index.js';

export interface GenInit {
  entries: number;
  chunk: number;
  seed: number;
  startMs: number;
  spanMs: number;
  logs: string[];
}

export interface RareTokens {
  eventID: string;
  accessKeyId: string;
  time: number;
}

const init = workerData as GenInit;
const port = parentPort!;
const r = prng(init.seed);
const perLog = new Map<string, number>(init.logs.map((l) => [l, 0]));
let next = 0;

function chunk(): void {
  const end = Math.min(init.entries, next + init.chunk);
  const rows = [];
  const rare: RareTokens[] = [];
  for (let i = next; i < end; i++) {
    const line = makeRecord(r);
    const ev = JSON.parse(line) as { awsRegion: string; eventID: string; userIdentity: { accessKeyId?: string } };
    const log = perLog.has(ev.awsRegion) ? ev.awsRegion : init.logs[0]!;
    const index = perLog.get(log)!;
    perLog.set(log, index + 1);
    const time = init.startMs + Math.floor((i * init.spanMs) / init.entries);
    const row = deriveRow(log, index, { origin: 'bench', region: log, source: 'aws.cloudtrail', producer: 'bench', received: new Date(time + 120_000).toISOString(), salt: Buffer.alloc(0), record: null, blob: null }, Buffer.from(line));
    // The record's own eventTime is one day of 2025; the bench spreads the rows over the year.
    row.time = time;
    rows.push(row);
    if (i % 99_991 === 17 && ev.userIdentity.accessKeyId) rare.push({ eventID: ev.eventID, accessKeyId: ev.userIdentity.accessKeyId, time });
  }
  next = end;
  port.postMessage({ t: 'rows', rows, rare });
  if (next >= init.entries) port.postMessage({ t: 'done' });
}

port.on('message', (m: { t: string }) => {
  if (m.t === 'more' && next < init.entries) chunk();
});
