/**
 * What page encryption of the SQLite files costs (storage/sqlite.ts, docs/ENCRYPTION.md), on
 * the file that works hardest: the search index.
 *
 * The same synthetic CloudTrail-like records (bench/records.ts), turned into index rows by the
 * indexer's own derivation (search/derive.ts), are inserted batch by batch into two search files
 * side by side — one plaintext (the baseline, same run), one encrypted under a key as a vault's
 * search.db is — alternating which goes first. Then the same queries run on both, interleaved
 * query by query, through SearchReader.query (a page of 50 hits and the exact total, as
 * GET /v1/search without HTTP), with a page cache smaller than the files so pages are read and
 * decrypted. Result: indexing rate and query p50/p95 of each, and encrypted ÷ plaintext.
 *
 * Standalone: node packages/vault/dist/bench/sqlite-encryption.js [entries] [queries]
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { IndexWriter, SearchReader, createSchema, openSearchDb, deriveRow, type IndexRow } from '../src/search/index.js';
import type { SqliteKey } from '../src/storage/sqlite.js';
import { makeRecord, prng } from './records.js';
import { percentile, int, fixed } from './util.js';

export interface SqliteEncryptionOptions {
  entries: number;
  /** Measured queries per kind. */
  queries: number;
}

export interface SqliteEncryptionKind {
  kind: string;
  plainP50Ms: number;
  encP50Ms: number;
  plainP95Ms: number;
  encP95Ms: number;
  /** encrypted p50 ÷ plaintext p50 (1 = free). */
  ratio: number;
}

export interface SqliteEncryptionFigure {
  entries: number;
  plainEntriesPerSec: number;
  encEntriesPerSec: number;
  /** encrypted ÷ plaintext indexing rate (1 = free). */
  indexRatio: number;
  plainBytes: number;
  encBytes: number;
  kinds: SqliteEncryptionKind[];
}

const LOGS = ['us-east-1', 'us-west-2', 'eu-west-1'];
const START = Date.UTC(2025, 0, 1);
const SPAN = 365 * 86_400_000;

function bytesOf(dir: string, prefix: string): number {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix))
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

export async function sqliteEncryptionFigure(o: SqliteEncryptionOptions, log: (s: string) => void): Promise<SqliteEncryptionFigure> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-bench-sqlite-enc-'));
  try {
    const key: SqliteKey = { bytes: randomBytes(32), source: 'the benchmark key' };
    const files = {
      plain: { path: join(dir, 'plain.db'), key: undefined as SqliteKey | undefined, ms: 0 },
      enc: { path: join(dir, 'enc.db'), key, ms: 0 },
    };
    const writers = Object.fromEntries(
      Object.entries(files).map(([k, f]) => {
        const db = openSearchDb(f.path, { key: f.key, cacheMb: 64 });
        createSchema(db, 'bench');
        return [k, { db, writer: new IndexWriter(db) }];
      }),
    ) as Record<'plain' | 'enc', { db: ReturnType<typeof openSearchDb>; writer: IndexWriter }>;

    const r = prng(424242);
    const perLog = new Map<string, number>(LOGS.map((l) => [l, 0]));
    const BATCH = 1024;
    log(`sqlite encryption: indexing ${int(o.entries)} entries into a plaintext and an encrypted search file`);
    for (let done = 0, round = 0; done < o.entries; round++) {
      const rows: IndexRow[] = [];
      for (let i = done; i < Math.min(o.entries, done + BATCH); i++) {
        const line = makeRecord(r, { region: LOGS[i % LOGS.length] });
        const l = LOGS[i % LOGS.length]!;
        const index = perLog.get(l)!;
        perLog.set(l, index + 1);
        const time = START + Math.floor((i * SPAN) / o.entries);
        const row = deriveRow(l, index, { origin: 'bench', region: l, source: 'aws.cloudtrail', producer: 'bench', received: new Date(time).toISOString(), salt: Buffer.alloc(0), record: null, blob: null }, Buffer.from(line));
        row.time = time;
        rows.push(row);
      }
      done += rows.length;
      const progress = [...perLog] as Array<[string, number]>;
      for (const k of round % 2 === 0 ? (['plain', 'enc'] as const) : (['enc', 'plain'] as const)) {
        const t0 = performance.now();
        writers[k].writer.insert(rows, progress);
        files[k].ms += performance.now() - t0;
      }
    }
    for (const k of ['plain', 'enc'] as const) {
      const t0 = performance.now();
      writers[k].db.exec('ANALYZE');
      writers[k].db.pragma('wal_checkpoint(TRUNCATE)');
      files[k].ms += performance.now() - t0;
      writers[k].db.close();
    }
    const plainEntriesPerSec = o.entries / (files.plain.ms / 1000);
    const encEntriesPerSec = o.entries / (files.enc.ms / 1000);
    log(`sqlite encryption: indexing ${int(plainEntriesPerSec)} entries/s plaintext, ${int(encEntriesPerSec)} encrypted`);

    // A cache of 4 MiB (the files are tens of MB): queries read and decrypt pages.
    const readers = { plain: new SearchReader(files.plain.path, { cacheMb: 4 }), enc: new SearchReader(files.enc.path, { cacheMb: 4, key }) };
    const kinds: Array<{ kind: string; query: (rnd: () => number) => string }> = [
      { kind: 'field + 7-day time range', query: (rnd) => { const from = START + Math.floor(rnd() * (SPAN - 7 * 86_400_000)); return `action:s3.amazonaws.com:GetObject time:[${new Date(from).toISOString()} TO ${new Date(from + 7 * 86_400_000).toISOString()}]`; } },
      { kind: 'full-text word', query: (rnd) => ['terraform', 'orders', 'payments', 'AttachRolePolicy', 'acme'][Math.floor(rnd() * 5)]! },
      { kind: 'OR of two fields', query: (rnd) => `action:kms.amazonaws.com:Decrypt OR action:${['sts.amazonaws.com:AssumeRole', 'iam.amazonaws.com:AttachRolePolicy'][Math.floor(rnd() * 2)]}` },
    ];
    const out: SqliteEncryptionKind[] = [];
    try {
      for (const k of kinds) {
        const rnd = prng(99 + out.length);
        const qs = Array.from({ length: o.queries + 3 }, () => k.query(rnd));
        const ms = { plain: [] as number[], enc: [] as number[] };
        qs.forEach((q, i) => {
          for (const which of i % 2 === 0 ? (['plain', 'enc'] as const) : (['enc', 'plain'] as const)) {
            const t0 = performance.now();
            readers[which].query(q, { limit: 50 });
            if (i >= 3) ms[which].push(performance.now() - t0); // the first three warm up
          }
        });
        ms.plain.sort((a, b) => a - b);
        ms.enc.sort((a, b) => a - b);
        const kr: SqliteEncryptionKind = {
          kind: k.kind,
          plainP50Ms: percentile(ms.plain, 50),
          encP50Ms: percentile(ms.enc, 50),
          plainP95Ms: percentile(ms.plain, 95),
          encP95Ms: percentile(ms.enc, 95),
          ratio: percentile(ms.enc, 50) / percentile(ms.plain, 50),
        };
        log(`sqlite encryption: ${k.kind}: p50 ${fixed(kr.plainP50Ms, 2)} ms plaintext, ${fixed(kr.encP50Ms, 2)} ms encrypted (${fixed(kr.ratio, 2)}×)`);
        out.push(kr);
      }
    } finally {
      readers.plain.close();
      readers.enc.close();
    }
    return {
      entries: o.entries,
      plainEntriesPerSec,
      encEntriesPerSec,
      indexRatio: encEntriesPerSec / plainEntriesPerSec,
      plainBytes: bytesOf(dir, 'plain.db'),
      encBytes: bytesOf(dir, 'enc.db'),
      kinds: out,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const entries = Number(process.argv[2] ?? 200_000);
  const queries = Number(process.argv[3] ?? 200);
  const f = await sqliteEncryptionFigure({ entries, queries }, (s) => console.error(s));
  console.log(JSON.stringify(f, null, 2));
}
