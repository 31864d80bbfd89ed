/**
 * `custody` with timers around the sequencer's stages, for `npm run bench -- --instrument`.
 * It wraps methods of the compiled classes (no source is changed), then runs the normal CLI.
 * At exit it writes what it measured as JSON to $BENCH_INSTRUMENT_OUT.
 *
 * $BENCH_EXPERIMENT (comma-separated) swaps in what-if variants, to measure a proposed change
 * in place before anyone edits src/ (see docs/BENCHMARKS.md):
 *   round=N          integration rounds of at most N entries (maxRoundEntries; default 65,536)
 *   pending=N        PUSHBACK once N entries wait for integration (maxPendingEntries; 500,000)
 *   journal-writev   Journal.append writes header | iv | ciphertext | tag with one writev from a
 *                    reused plaintext buffer: the same bytes on disk, three fewer full copies
 *   tiles-nofsync    UNSAFE, measurement only: tile and bundle files are written without fsync,
 *                    to bound what taking those fsyncs off the integration path could gain
 *
 * For an async method, "sync" is the time the call held the event loop before its first
 * await (CPU work: encoding, encryption, hashing), "wall" the time until it resolved
 * (including waiting for the disk).
 *
 *   node packages/vault/dist/bench/instrumented-serve.js serve --data DIR --port N
 */
import { writeFileSync } from 'node:fs';
import { open as openFile, rename, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { createCipheriv, randomBytes } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Journal } from '../src/storage/journal.js';
import { PosixLogStore } from '../src/storage/posix.js';
import { VaultDb } from '../src/storage/db.js';
import { LogSequencer } from '../src/sequencer/log-sequencer.js';
import { Vault } from '../src/vault.js';

interface Stage {
  calls: number;
  syncMs: number;
  wallMs: number;
  maxSyncMs: number;
  maxWallMs: number;
  items: number;
}

const stages = new Map<string, Stage>();
function stage(name: string): Stage {
  let s = stages.get(name);
  if (!s) stages.set(name, (s = { calls: 0, syncMs: 0, wallMs: 0, maxSyncMs: 0, maxWallMs: 0, items: 0 }));
  return s;
}

type AnyFn = (...args: unknown[]) => unknown;

/** Wraps proto[method]; `items` counts what one call handles (entries, files). */
function wrap(proto: object, method: string, name: string, items?: (self: unknown, args: unknown[]) => number): void {
  const p = proto as Record<string, AnyFn>;
  const orig = p[method];
  if (typeof orig !== 'function') throw new Error(`instrument: ${name} (${method}) is not a method any more`);
  p[method] = function (this: unknown, ...args: unknown[]): unknown {
    const s = stage(name);
    s.calls++;
    if (items) s.items += items(this, args);
    const t0 = performance.now();
    const done = (): void => {
      const wall = performance.now() - t0;
      s.wallMs += wall;
      if (wall > s.maxWallMs) s.maxWallMs = wall;
    };
    const r = orig.apply(this, args);
    const sync = performance.now() - t0;
    s.syncMs += sync;
    if (sync > s.maxSyncMs) s.maxSyncMs = sync;
    if (r instanceof Promise) return r.finally(done);
    done();
    return r;
  };
}

// ---- what-if experiments -----------------------------------------------------------------

const experiments = (process.env.BENCH_EXPERIMENT ?? '').split(',').map((x) => x.trim()).filter(Boolean);
const applied: string[] = [];
let roundCap = 65_536;
for (const x of experiments) {
  const [name, value] = x.split('=') as [string, string | undefined];
  if (name === 'round' || name === 'pending') {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_EXPERIMENT ${x}: need a positive whole number`);
    const key = name === 'round' ? 'maxRoundEntries' : 'maxPendingEntries';
    if (name === 'round') roundCap = n;
    const seq = LogSequencer as unknown as { open: (o: Record<string, unknown>) => Promise<unknown> };
    const orig = seq.open.bind(LogSequencer);
    seq.open = (o) => orig({ ...o, [key]: n });
    applied.push(`${key}=${n}`);
  } else if (name === 'journal-writev') {
    let scratch = Buffer.allocUnsafe(0);
    (Journal.prototype as unknown as Record<string, unknown>)['append'] = async function (this: any, firstIndex: number, entries: Buffer[]): Promise<void> {
      if (!this.fh) await this.startSegment(firstIndex);
      const seg = this.segments[this.segments.length - 1];
      if (seg.endIndex !== firstIndex) throw new Error(`journal: append at ${firstIndex}, expected ${seg.endIndex}`);
      let n = 0;
      for (const e of entries) n += 2 + e.length;
      if (scratch.length < n) scratch = Buffer.allocUnsafe(Math.max(n, scratch.length * 2));
      let off = 0;
      for (const e of entries) {
        scratch.writeUInt16BE(e.length, off);
        e.copy(scratch, off + 2);
        off += 2 + e.length;
      }
      const header = Buffer.allocUnsafe(20);
      Buffer.from('CJR1').copy(header, 0);
      header.writeBigUInt64BE(BigInt(firstIndex), 4);
      header.writeUInt32BE(entries.length, 12);
      header.writeUInt32BE(n + 28, 16);
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', this.dek, iv);
      c.setAAD(Buffer.concat([header, this.segHeader, this.context]));
      const pieces = [header, iv, c.update(scratch.subarray(0, n)), c.final()];
      pieces.push(c.getAuthTag());
      const len = 20 + 12 + n + 16;
      const at = this.segBytes;
      try {
        let done = 0;
        while (done < len) {
          let skip = done;
          const rest: Buffer[] = [];
          for (const p of pieces) {
            if (skip >= p.length) skip -= p.length;
            else {
              rest.push(skip > 0 ? p.subarray(skip) : p);
              skip = 0;
            }
          }
          done += (await this.fh.writev(rest, at + done)).bytesWritten;
        }
        await this.fh.datasync();
      } catch (e) {
        await this.fh.truncate(at).catch(() => undefined);
        throw e;
      }
      this.segBytes += len;
      seg.endIndex = firstIndex + entries.length;
    };
    applied.push('journal-writev');
  } else if (name === 'tiles-nofsync') {
    (PosixLogStore.prototype as unknown as Record<string, unknown>)['writeAll'] = async function (writes: Array<{ path: string; data: Uint8Array }>, concurrency = 32): Promise<void> {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < writes.length) {
          const w = writes[next++]!;
          const tmp = join(dirname(w.path), `.${basename(w.path)}.${randomBytes(6).toString('hex')}.tmp`);
          await mkdir(dirname(w.path), { recursive: true });
          const h = await openFile(tmp, 'wx', 0o644);
          let off = 0;
          while (off < w.data.length) off += (await h.write(w.data, off, w.data.length - off)).bytesWritten;
          await h.close();
          await rename(tmp, w.path);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, writes.length) }, worker));
    };
    applied.push('tiles-nofsync (UNSAFE)');
  } else throw new Error(`unknown BENCH_EXPERIMENT ${x}`);
}

const lenOf = (x: unknown): number => (Array.isArray(x) ? x.length : 0);
wrap(Vault.prototype, 'append', 'vault.append (envelopes → durable)', (_s, a) => lenOf(a[1]));
wrap(LogSequencer.prototype, 'flush', 'sequencer.flush (group commits)', (s) => lenOf((s as { queue: unknown[] }).queue));
wrap(Journal.prototype, 'append', 'journal.append (encode+encrypt, write, fdatasync)', (_s, a) => lenOf(a[1]));
wrap(Journal.prototype, 'trim', 'journal.trim');
wrap(LogSequencer.prototype, 'integrateRound', 'integrateRound (leaf hashes … publish)', (s) => Math.min(lenOf((s as { durable: unknown[] }).durable), roundCap));
wrap(LogSequencer.prototype, 'publish', 'publish (bundles, tiles, checkpoint)', (_s, a) => Number(a[1]) || 0);
wrap(PosixLogStore.prototype, 'bundleWrite', 'bundleWrite (encode + seal one bundle)', (_s, a) => lenOf(a[1]));
wrap(PosixLogStore.prototype, 'writeAll', 'writeAll (tile/bundle files, fsync each, dirs)', (_s, a) => lenOf(a[0]));
wrap(PosixLogStore.prototype, 'writeCheckpointSync', 'writeCheckpointSync (sync: write, fsync, rename, fsync dir)');
wrap(PosixLogStore.prototype, 'removePartials', 'removePartials');
wrap(VaultDb.prototype, 'setLogState', 'db.setLogState (sync SQLite commit, synchronous=FULL)');

const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
const elu0 = performance.eventLoopUtilization();
const started = performance.now();
/** Peaks of process.memoryUsage(), sampled every 100 ms: what the RSS is made of. */
const memPeak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
const memTimer = setInterval(() => {
  const m = process.memoryUsage();
  for (const k of Object.keys(memPeak) as Array<keyof typeof memPeak>) if (m[k] > memPeak[k]) memPeak[k] = m[k];
}, 100);
memTimer.unref();

process.on('exit', () => {
  const out = process.env.BENCH_INSTRUMENT_OUT;
  if (!out) return;
  const elu = performance.eventLoopUtilization(elu0);
  const ms = (ns: number): number => ns / 1e6;
  writeFileSync(
    out,
    JSON.stringify(
      {
        seconds: (performance.now() - started) / 1000,
        experiments: applied,
        eventLoopUtilization: elu.utilization,
        eventLoopDelayMs: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) },
        memoryPeakMiB: Object.fromEntries(Object.entries(memPeak).map(([k, v]) => [k, Math.round(v / 2 ** 20)])),
        stages: Object.fromEntries(stages),
      },
      null,
      2,
    ),
  );
});

await import('../src/cli/main.js');
