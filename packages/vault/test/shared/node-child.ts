/**
 * A stand-in vault node for the shared-log tests (a real `node` process):
 *   node node-child.js <base64 JSON ChildConfig>
 * opens a SharedLogSequencer and prints one JSON line per event on stdout:
 *   ready {size} | acked {seq, first, count} | nack {seq, code, message} | lease {epoch|null}
 *   | published {size} | closed
 * Commands on stdin, one JSON per line:
 *   {cmd:'append', batches, count}        append `batches` batches of `count` entries, one after another
 *   {cmd:'stream', count, everyMs}        keep appending a batch every `everyMs` until {cmd:'stop'}
 *   {cmd:'stop'} | {cmd:'close'}
 * Entries are support.ts entry(node, seq, i) so the parent can check each acked batch.
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { Keyring } from '../../src/crypto/keyring.js';
import { createPool } from '../../src/storage/pg/pool.js';
import { openSharedLogSequencer } from '../../src/sequencer/shared-sequencer.js';
import { batch, type ChildConfig } from './support.js';

const cfg = JSON.parse(Buffer.from(process.argv[2]!, 'base64').toString('utf8')) as ChildConfig;
const say = (o: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify({ ...o, node: cfg.node, t: Date.now() }) + '\n');
};
const keys = Keyring.load(cfg.keyring).forLog(cfg.log);
const pool = createPool({ connectionString: cfg.url, max: 4, connectTimeoutMs: 2_000 });
const seq = await openSharedLogSequencer({
  name: cfg.log,
  origin: cfg.origin,
  keys,
  pool,
  connectionString: cfg.url,
  nodeId: cfg.node,
  s3: cfg.s3,
  cacheDir: cfg.cacheDir,
  logger: pino({ level: process.env.H8_DEBUG ? 'debug' : 'silent' }, pino.destination(2)),
  checkpointIntervalMs: 100,
  followPollMs: 100,
  leaderPollMs: 250,
  onPublish: (_log, cp) => say({ event: 'published', size: cp.size }),
});
say({ event: 'ready', size: seq.size });

let epoch: number | null = null;
setInterval(() => {
  const e = seq.lease?.epoch ?? null;
  if (e !== epoch) {
    epoch = e;
    say({ event: 'lease', epoch });
  }
}, 20);

let next = 0;
async function appendOne(count: number): Promise<void> {
  const s = next++;
  try {
    const r = await seq.add(batch(cfg.node, s, count), count);
    say({ event: 'acked', seq: s, first: r.first, count: r.count });
  } catch (e) {
    say({ event: 'nack', seq: s, code: (e as { code?: string }).code, message: (e as Error).message, retryAfter: (e as { details?: { retryAfter?: number } }).details?.retryAfter });
  }
}

let streaming = false;
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line) as { cmd: string; batches?: number; count?: number; everyMs?: number };
  if (m.cmd === 'append') {
    void (async () => {
      for (let i = 0; i < m.batches!; i++) await appendOne(m.count!);
      say({ event: 'appended' });
    })();
  } else if (m.cmd === 'stream') {
    streaming = true;
    void (async () => {
      while (streaming) {
        void appendOne(m.count!);
        await new Promise((r) => setTimeout(r, m.everyMs ?? 20));
      }
    })();
  } else if (m.cmd === 'stop') {
    streaming = false;
  } else if (m.cmd === 'close') {
    streaming = false;
    void seq.close().then(async () => {
      await pool.end();
      say({ event: 'closed' });
      process.exit(0);
    });
  }
});
