/**
 * Search figures for `npm run bench` (figure 9, and the follower's lag in figure 1).
 *
 * 9. Search latency on a large index. Building an index of 10 million entries through a whole
 *    vault (ingest, integration, follower) would take most of an hour, so the index is built
 *    DIRECTLY with the indexer's insert path (search/store.ts IndexWriter) from synthetic
 *    CloudTrail-like records (bench/records.ts) turned into rows by the indexer's own
 *    derivation (search/derive.ts): this measures the index, not ingest. Record times are
 *    spread over one year. The index is kept in a cache folder between runs
 *    (`<tmp>/custody-bench-search-v<schema>-<entries>`), so only the first run pays the build.
 *    Each query kind runs with varied parameters through SearchReader.query (parse, plan, a
 *    page of 50 hits with their fields, the exact total up to 10,000) — what GET /v1/search
 *    does, without HTTP. Baseline: the same conditions evaluated by a full scan (no index) of a
 *    1% sample of the rows, times 100: what answering without an index costs.
 *
 * Follower lag: while figure 1's writers run, GET /v1/search (limit 1) every 200 ms reads
 * how many published entries are not yet indexed (`lag`); with the published sizes over time
 * this gives the lag in entries and in seconds, and how long the index needs to catch up once
 * the writers stop.
 */
import { Worker } from 'node:worker_threads';
import { existsSync, mkdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import http from 'node:http';
import Database from 'better-sqlite3';
import { IndexWriter, SearchReader, createSchema, openSearchDb, removeSearchFiles, SCHEMA_VERSION, type IndexRow } from '../src/search/index.js';
import type { GenInit, RareTokens } from './search-gen.js';
import type { ServerHandle } from './custody.js';
import { httpRequest, percentile, sleep, int, fixed } from './util.js';
import { prng } from './records.js';

/** Bump when the synthetic rows change: a cached index of another generation is rebuilt. */
const GENERATION = 1;
const LOGS = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-southeast-2'];
const ACCOUNTS = ['123456789012', '210987654321', '555566667777', '444433332222'];
const USERS = ['alice', 'bob', 'carol', 'deploy-bot', 'terraform', 'backup-agent'];
const ACTIONS = [
  'sts.amazonaws.com:AssumeRole', 's3.amazonaws.com:GetObject', 's3.amazonaws.com:PutObject', 'ec2.amazonaws.com:DescribeInstances', 'ec2.amazonaws.com:RunInstances',
  'iam.amazonaws.com:AttachRolePolicy', 'kms.amazonaws.com:Decrypt', 'signin.amazonaws.com:ConsoleLogin', 'lambda.amazonaws.com:Invoke', 'dynamodb.amazonaws.com:GetItem',
];
const WORDS = ['terraform', 'orders', 'payments', 'carol', 'AttachRolePolicy', 'acme'];
const PHRASES = ['"aws-cli/2.15.30 Python/3.11.8"', '"terraform-provider-aws/5.41.0"', '"instance-state-name"', '"SYMMETRIC_DEFAULT"', '"Boto3/1.34.62 Python/3.12.2"', '"acme-uploads"'];
const START = Date.UTC(2025, 0, 1);
const SPAN = 365 * 86_400_000;
const DAY = 86_400_000;

export interface SearchBenchOptions {
  entries: number;
  /** Measured queries per kind. */
  queries: number;
  /** Where cached indexes live (default: the temp dir). */
  cacheRoot?: string;
}

export interface QueryKindResult {
  kind: string;
  example: string;
  runs: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Mean exact total per query (capped at 10,000). */
  meanTotal: number;
  /** Full scan of the 1% sample × 100, mean per query. */
  baselineMs: number;
  /** baseline ÷ p50. */
  ratio: number;
}

export interface SearchBenchResult {
  entries: number;
  dir: string;
  cached: boolean;
  buildSeconds: number;
  buildEntriesPerSec: number;
  bytes: number;
  bytesPerEntry: number;
  kinds: QueryKindResult[];
}

interface Meta {
  complete: boolean;
  schema: number;
  generation: number;
  entries: number;
  buildSeconds: number;
  rare: RareTokens[];
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) if (f.startsWith('search.db')) n += statSync(join(dir, f)).size;
  return n;
}

/** Builds the cached index (and its 1% baseline sample) unless a complete one is there. */
async function ensureIndex(o: SearchBenchOptions, log: (s: string) => void): Promise<{ dir: string; meta: Meta; cached: boolean }> {
  const dir = join(o.cacheRoot ?? tmpdir(), `custody-bench-search-v${SCHEMA_VERSION}g${GENERATION}-${o.entries}`);
  const metaPath = join(dir, 'meta.json');
  if (existsSync(metaPath)) {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as Meta;
    if (meta.complete && meta.schema === SCHEMA_VERSION && meta.generation === GENERATION && meta.entries === o.entries) return { dir, meta, cached: true };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const need = o.entries * 1500;
  const free = (() => {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  })();
  if (free < need) throw new Error(`the index of ${int(o.entries)} entries needs about ${fixed(need / 1e9)} GB in ${dir}; ${fixed(free / 1e9)} GB are free (use --search-entries or --search-cache)`);
  log(`search: building an index of ${int(o.entries)} synthetic CloudTrail-like entries in ${dir} (kept for later runs; about ${fixed(need / 1e9, 0)} GB)`);

  const path = join(dir, 'search.db');
  removeSearchFiles(path);
  const db = openSearchDb(path, { cacheMb: 256 });
  db.pragma('synchronous = OFF');
  createSchema(db, 'bench');
  const writer = new IndexWriter(db);
  const sample = new Database(join(dir, 'baseline.db'));
  sample.pragma('journal_mode = OFF');
  sample.pragma('synchronous = OFF');
  sample.exec('CREATE TABLE sample (time INTEGER, actor TEXT, action TEXT, text TEXT)');
  const putSample = sample.prepare('INSERT INTO sample VALUES (?, ?, ?, ?)');
  const sampleBatch = sample.transaction((rows: IndexRow[]) => {
    for (const r of rows) putSample.run(r.time, r.actor ?? null, r.action ?? null, r.text);
  });

  const init: GenInit = { entries: o.entries, chunk: 8192, seed: 20250101, startMs: START, spanMs: SPAN, logs: LOGS };
  const gen = new Worker(new URL('./search-gen.js', import.meta.url), { workerData: init });
  const rare: RareTokens[] = [];
  const counts = new Map<string, number>();
  const t0 = performance.now();
  let done = 0;
  let lastLog = t0;
  await new Promise<void>((resolve, reject) => {
    let finished = false;
    gen.on('error', reject);
    gen.on('message', (m: { t: string; rows?: IndexRow[]; rare?: RareTokens[] }) => {
      if (m.t === 'done') {
        finished = true;
        return;
      }
      const rows = m.rows!;
      gen.postMessage({ t: 'more' });
      for (const r of rows) counts.set(r.log, (counts.get(r.log) ?? 0) + 1);
      writer.insert(rows, [...counts]);
      sampleBatch(rows.filter((_, i) => (done + i) % 100 === 0));
      rare.push(...m.rare!);
      done += rows.length;
      const now = performance.now();
      if (now - lastLog > 10_000) {
        lastLog = now;
        const rate = done / ((now - t0) / 1000);
        log(`search: ${int(done)} of ${int(o.entries)} entries indexed, ${int(rate)}/s, about ${int((o.entries - done) / rate)} s to go`);
      }
      if (finished || done >= o.entries) resolve();
    });
    for (let k = 0; k < 4; k++) gen.postMessage({ t: 'more' });
  });
  await gen.terminate();
  const buildSeconds = (performance.now() - t0) / 1000;
  log(`search: ${int(o.entries)} entries indexed in ${fixed(buildSeconds, 0)} s (${int(o.entries / buildSeconds)}/s); ANALYZE`);
  db.exec('ANALYZE');
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  sample.close();
  const meta: Meta = { complete: true, schema: SCHEMA_VERSION, generation: GENERATION, entries: o.entries, buildSeconds, rare };
  writeFileSync(metaPath, JSON.stringify(meta));
  return { dir, meta, cached: false };
}

interface Kind {
  kind: string;
  /** The i-th query of this kind. */
  query(i: number, rnd: () => number): string;
  /** The same condition as a full scan of the sample: WHERE clause and its parameters. */
  scan(q: string): { where: string; params: unknown[] };
}

function week(rnd: () => number): [number, number, string] {
  const from = START + Math.floor(rnd() * (SPAN - 7 * DAY));
  const to = from + 7 * DAY - 1;
  return [from, to, `time:[${new Date(from).toISOString()} TO ${new Date(to).toISOString()}]`];
}

function kinds(meta: Meta): Kind[] {
  const pickOf = <T>(xs: readonly T[], rnd: () => number): T => xs[Math.floor(rnd() * xs.length)]!;
  return [
    {
      kind: 'field + 7-day time range',
      query: (i, rnd) => {
        const [, , t] = week(rnd);
        return i % 2 === 0 ? `actor:arn:aws:iam::${pickOf(ACCOUNTS, rnd)}:user/${pickOf(USERS, rnd)} ${t}` : `action:${pickOf(ACTIONS, rnd)} ${t}`;
      },
      scan: (q) => {
        const m = /^(actor|action):(\S+) time:\[(\S+) TO (\S+)\]$/.exec(q)!;
        return { where: `${m[1]} = ? COLLATE NOCASE AND time BETWEEN ? AND ?`, params: [m[2], Date.parse(m[3]!), Date.parse(m[4]!)] };
      },
    },
    {
      kind: 'full-text word',
      query: (i, rnd) => (i % 3 === 2 && meta.rare.length > 0 ? pickOf(meta.rare, rnd).accessKeyId : pickOf(WORDS, rnd)),
      scan: (q) => ({ where: 'text LIKE ?', params: [`%${q}%`] }),
    },
    {
      kind: 'phrase',
      query: (_i, rnd) => pickOf(PHRASES, rnd),
      scan: (q) => ({ where: 'text LIKE ?', params: [`%${q.slice(1, -1)}%`] }),
    },
    {
      kind: 'OR of two fields',
      query: (_i, rnd) => `actor:arn:aws:iam::${pickOf(ACCOUNTS, rnd)}:user/${pickOf(USERS, rnd)} OR action:${pickOf(ACTIONS, rnd)}`,
      scan: (q) => {
        const m = /^actor:(\S+) OR action:(\S+)$/.exec(q)!;
        return { where: 'actor = ? COLLATE NOCASE OR action = ? COLLATE NOCASE', params: [m[1], m[2]] };
      },
    },
    {
      kind: 'field + word + 7-day time range',
      query: (_i, rnd) => `action:${pickOf(ACTIONS, rnd)} ${pickOf(WORDS, rnd)} ${week(rnd)[2]}`,
      scan: (q) => {
        const m = /^action:(\S+) (\S+) time:\[(\S+) TO (\S+)\]$/.exec(q)!;
        return { where: 'action = ? COLLATE NOCASE AND text LIKE ? AND time BETWEEN ? AND ?', params: [m[1], `%${m[2]}%`, Date.parse(m[3]!), Date.parse(m[4]!)] };
      },
    },
  ];
}


export async function searchBench(o: SearchBenchOptions, log: (s: string) => void): Promise<SearchBenchResult> {
  const { dir, meta, cached } = await ensureIndex(o, log);
  if (cached) log(`search: using the cached index of ${int(o.entries)} entries in ${dir} (built in ${fixed(meta.buildSeconds, 0)} s)`);
  const reader = new SearchReader(join(dir, 'search.db'));
  const sample = new Database(join(dir, 'baseline.db'), { readonly: true });
  const results: QueryKindResult[] = [];
  try {
    for (const k of kinds(meta)) {
      const rnd = prng(7 + results.length);
      // Warm-up (not measured): the first queries of a kind load its pages.
      for (let i = 0; i < 3; i++) reader.query(k.query(i, rnd), { limit: 50 });
      const ms: number[] = [];
      let totals = 0;
      let example = '';
      for (let i = 0; i < o.queries; i++) {
        const q = k.query(i, rnd);
        if (i === 0) example = q;
        const t0 = performance.now();
        const res = reader.query(q, { limit: 50 });
        ms.push(performance.now() - t0);
        totals += res.total;
      }
      ms.sort((a, b) => a - b);
      // Baseline: full scans of the 1% sample, × 100.
      let scanMs = 0;
      const scans = Math.min(5, o.queries);
      for (let i = 0; i < scans; i++) {
        const { where, params } = k.scan(k.query(i, rnd));
        const t0 = performance.now();
        sample.prepare(`SELECT count(*) FROM sample WHERE ${where}`).pluck().get(...params);
        scanMs += (performance.now() - t0) * 100;
      }
      const p50 = percentile(ms, 50);
      const r: QueryKindResult = {
        kind: k.kind,
        example,
        runs: ms.length,
        p50Ms: p50,
        p95Ms: percentile(ms, 95),
        maxMs: ms[ms.length - 1]!,
        meanTotal: totals / ms.length,
        baselineMs: scanMs / scans,
        ratio: scanMs / scans / p50,
      };
      log(`search: ${k.kind}: p50 ${fixed(r.p50Ms, 1)} ms, p95 ${fixed(r.p95Ms, 1)} ms (mean total ${int(r.meanTotal)}); full scan ${int(r.baselineMs)} ms`);
      results.push(r);
    }
  } finally {
    reader.close();
    sample.close();
  }
  const bytes = dirBytes(dir);
  return {
    entries: o.entries,
    dir,
    cached,
    buildSeconds: meta.buildSeconds,
    buildEntriesPerSec: o.entries / meta.buildSeconds,
    bytes,
    bytesPerEntry: bytes / o.entries,
    kinds: results,
  };
}

// ---- the follower's lag during ingest --------------------------------------------------------

export interface SearchLagResult {
  samples: number;
  /** Entries published but not yet indexed, over the samples taken while the writers ran. */
  entries: { p50: number; p95: number; max: number };
  /** How long ago the newest indexed entry was published, over the same samples. */
  seconds: { p50: number; p95: number; max: number };
  /** Entries behind when the writers stopped, and the time until the index had them all. */
  backlogAtStop: number;
  catchUpSeconds: number;
  /** The follower's rate while catching up (no ingest competing). */
  catchUpEntriesPerSec: number;
  caughtUp: boolean;
}

interface Sample {
  t: number;
  published: number;
  lag: number;
}

/** Samples the follower's lag on a running server until `finish()`, which waits for the catch-up. */
export function startSearchLag(srv: ServerHandle, log: (s: string) => void): { finish(maxWaitS?: number): Promise<SearchLagResult | null> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const headers = { authorization: `Bearer ${srv.auditorToken}` };
  const samples: Sample[] = [];
  let running = true;
  let unavailable = false;
  const one = async (): Promise<Sample | null> => {
    const logs = await httpRequest(agent, srv.port, 'GET', '/v1/logs', headers, undefined, 30_000);
    const s = await httpRequest(agent, srv.port, 'GET', '/v1/search?q=&limit=1', headers, undefined, 30_000);
    if (s.status !== 200 || logs.status !== 200) {
      unavailable = true;
      return null;
    }
    const published = (JSON.parse(logs.body.toString('utf8')) as { logs: Array<{ name: string; size: number; kind: string }> }).logs.filter((l) => l.kind === 'region').reduce((n, l) => n + l.size, 0);
    const lagBy = (JSON.parse(s.body.toString('utf8')) as { lag: Record<string, number> }).lag;
    const lag = Object.entries(lagBy).filter(([name]) => name !== 'audit').reduce((n, [, v]) => n + v, 0);
    return { t: performance.now(), published, lag };
  };
  const loop = (async () => {
    while (running && !unavailable) {
      try {
        const x = await one();
        if (x) samples.push(x);
      } catch {
        /* a lost sample is fine */
      }
      await sleep(200);
    }
  })();
  /** Seconds between a sample and the first sample whose published size covered what it had indexed. */
  const secondsBehind = (i: number): number => {
    const s = samples[i]!;
    const indexed = s.published - s.lag;
    for (let j = 0; j <= i; j++) if (samples[j]!.published >= indexed) return (s.t - samples[j]!.t) / 1000;
    return 0;
  };
  return {
    async finish(maxWaitS = 600): Promise<SearchLagResult | null> {
      running = false;
      await loop;
      if (unavailable) {
        agent.destroy();
        return null;
      }
      const during = samples.length;
      const stop = performance.now();
      let last = samples[samples.length - 1] ?? (await one())!;
      const backlogAtStop = last.lag;
      log(`search: the index is ${int(backlogAtStop)} entries behind when the writers stop; waiting for it to catch up`);
      while (last.lag > 0 && performance.now() - stop < maxWaitS * 1000) {
        await sleep(250);
        const x = await one();
        if (x) {
          samples.push(x);
          last = x;
        }
      }
      agent.destroy();
      const catchUpSeconds = (performance.now() - stop) / 1000;
      const lagE = samples.slice(0, during).map((s) => s.lag).sort((a, b) => a - b);
      const lagS = samples.slice(0, during).map((_, i) => secondsBehind(i)).sort((a, b) => a - b);
      return {
        samples: during,
        entries: { p50: percentile(lagE, 50), p95: percentile(lagE, 95), max: lagE[lagE.length - 1] ?? NaN },
        seconds: { p50: percentile(lagS, 50), p95: percentile(lagS, 95), max: lagS[lagS.length - 1] ?? NaN },
        backlogAtStop,
        catchUpSeconds,
        catchUpEntriesPerSec: backlogAtStop / catchUpSeconds,
        caughtUp: last.lag === 0,
      };
    },
  };
}
