/**
 * `custody search` (an auditor's query against a server) and `custody reindex` (rebuild a
 * data directory's search index from its logs, offline). docs/SEARCH.md has the query language.
 */
import { resolve } from 'node:path';
import { CustodyError } from '../errors.js';
import { readConfig } from '../vault.js';
import { reindexDataDir, type Hit, type SearchResult } from '../search/index.js';
import { CustodyClient } from './client.js';
import { ProgressBar } from './progress.js';
import { takeLock } from './serve.js';

export interface SearchFlags {
  url?: string;
  token?: string;
  json?: boolean;
  from?: string;
  to?: string;
  limit?: number;
  order?: string;
  cursor?: string;
}

const PAGE = 1000;

function cell(s: string | null | undefined, width: number): string {
  const v = s ?? '-';
  return v.length > width ? `${v.slice(0, width - 1)}…` : v.padEnd(width);
}

function table(hits: Hit[]): string {
  const rows = hits.map((h) => [h.time, `${h.log}:${h.index}`, h.source, h.action ?? '-', h.actor ?? '-', h.outcome ?? '-']);
  const head = ['time', 'log:index', 'source', 'action', 'actor', 'outcome'];
  const max = [24, 24, 20, 48, 60, 10];
  const widths = head.map((h, i) => Math.min(max[i]!, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
  const line = (r: string[]): string => r.map((c, i) => cell(c, widths[i]!)).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/**
 * Runs a query and prints the hits (a table, or the API's JSON). --limit above one page follows
 * the cursor. Exit code 0 whether or not anything matched.
 */
export async function searchCommand(query: string, o: SearchFlags): Promise<number> {
  const c = new CustodyClient(o);
  c.requireToken();
  const want = o.limit ?? 50;
  const hits: Hit[] = [];
  let cursor = o.cursor;
  let last: SearchResult | undefined;
  while (hits.length < want) {
    const qs = new URLSearchParams({ q: query, limit: String(Math.min(PAGE, want - hits.length)) });
    if (o.from) qs.set('from', o.from);
    if (o.to) qs.set('to', o.to);
    if (o.order) qs.set('order', o.order);
    if (cursor) qs.set('cursor', cursor);
    last = await c.json<SearchResult>('GET', `/v1/search?${qs}`);
    hits.push(...last.hits);
    if (!last.next) break;
    cursor = last.next;
  }
  const result: SearchResult = { ...last!, hits, next: hits.length >= want ? (last!.next ?? null) : null };
  if (o.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  }
  const out: string[] = [];
  if (hits.length === 0) out.push('No entries match.');
  else out.push(table(hits));
  const total = `${result.total.toLocaleString('en-US')}${result.totalCapped ? '+' : ''}`;
  out.push('', `${hits.length.toLocaleString('en-US')} of ${total} matching entries shown.${result.next ? ` More: --cursor ${result.next}` : ''}`);
  if (hits.length > 0) out.push(`Each entry's record and inclusion proof: custody proof get <log> <index>, or GET ${hits[0]!.entry}`);
  const behind = Object.entries(result.lag).filter(([, n]) => n > 0);
  if (behind.length > 0) out.push(`The index is catching up (${behind.map(([l, n]) => `${l}: ${n.toLocaleString('en-US')} entries`).join(', ')} not yet searchable); the newest entries may be missing.`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

/** Rebuilds the search index of a data directory; refuses while a server runs on it. */
export async function reindexCommand(o: { data: string; json?: boolean }): Promise<number> {
  const dataDir = resolve(o.data);
  readConfig(dataDir);
  let release: () => void;
  try {
    release = takeLock(dataDir);
  } catch (e) {
    if (e instanceof CustodyError && e.code === 'CONFIG' && /Another Custody server/.test(e.message)) {
      throw new CustodyError('CONFIG', `${e.message.replace(/ Stop it first.*$/, '')} Stop it before reindexing — or, without stopping it, delete ${resolve(dataDir, 'search.db')} and restart it: the server rebuilds a missing index by itself.`);
    }
    throw e;
  }
  const bar = new ProgressBar('indexing', 0, !o.json);
  try {
    const r = await reindexDataDir(dataDir, {
      progress: (done, total) => {
        bar.setTotal(total);
        bar.update(done);
      },
    });
    bar.done();
    if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else {
      const lines = [
        `Rebuilt the search index of ${dataDir} from its logs: ${r.entries.toLocaleString('en-US')} entries in ${r.seconds.toFixed(1)} s (${Math.round(r.entriesPerSec).toLocaleString('en-US')} entries/s), ${(r.bytes / 1e6).toFixed(1)} MB.`,
        ...r.logs.map((l) => `  ${l.log.padEnd(16)} ${l.entries.toLocaleString('en-US')} entries`),
      ];
      process.stdout.write(lines.join('\n') + '\n');
    }
    return 0;
  } finally {
    release();
  }
}
