/**
 * `custody import <folder | file | s3://bucket/prefix>`: send every delivered log file to
 * POST /v1/ingest, which detects the source, parses, routes by region and dedupes.
 *
 * - Walks what AWS delivers (../shared/reference/aws-sources.md): CloudTrail
 *   `AWSLogs/[<o-id>/]<acct>/CloudTrail/<region>/YYYY/MM/DD/…json.gz` and its
 *   `CloudTrail-Digest/` files (data: imported too), `vpcflowlogs/<region>/…` and Hive-style
 *   partitions, `Config/<region>/…/ConfigHistory|ConfigSnapshot/…`, GuardDuty and Macie exports,
 *   CloudWatch Logs exports (`<prefix>/<task-id>/<stream>/000000.gz`), or any folder of files.
 *   What is not data (READMEs, licence texts, `_SUCCESS`, folder markers, AWS write checks,
 *   empty files) is skipped and counted.
 * - Each file goes as stored: a gzip file is sent compressed with Content-Encoding: gzip (the
 *   server inflates it); nothing is parsed on this side.
 * - Every file carries `object=sha256:<hex of its bytes>`: records without their own dedupe key
 *   get the key object:<id>:<position>, so sending a file twice never stores it twice.
 * - Resumable: a state file (one JSON line per finished file) lets an interrupted import
 *   continue where it stopped. It is removed once an import finishes with no failed file; a
 *   new run then sends everything again and the server answers "duplicate".
 * - A few requests in flight (--concurrency); the listing is streamed.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { lstat, opendir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { CustodyError } from '../errors.js';
import { sourceParsers, hasParser } from '../ingest/sources/index.js';
import { CustodyClient, ApiError, type IngestAnswer } from './client.js';
import { ProgressBar } from './progress.js';
import type { S3Reader, S3Location as S3Where } from './s3.js';
import { print, type ClientFlags } from './commands.js';

/** The server's body limit for /v1/ingest (compressed bytes). */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;

export interface ImportFlags extends ClientFlags {
  source?: string;
  concurrency?: number;
  state?: string;
  restart?: boolean;
  log?: string;
  endpoint?: string;
  dryRun?: boolean;
  exclude?: string[];
  report?: string;
}

// ---- what to import ----------------------------------------------------------------------

/** One file or object to import. */
export interface ImportItem {
  /** Sent as name=: the S3 key, or the path relative to the imported folder ('/'-separated). */
  name: string;
  size: number;
  /** Identity in the listing (for resuming): s3://bucket/key#etag or file:<path>#<size>-<mtime>. */
  ref: string;
  /** The bytes as stored, and the ref of what was actually read (an S3 object may change). */
  read(): Promise<{ body: Buffer; ref: string }>;
}

export interface SkippedItem {
  skipped: true;
  name: string;
  reason: string;
}

interface Location {
  /** Canonical: an absolute path, or s3://bucket/prefix. */
  readonly description: string;
  /** Endpoint or host context that makes the description unique. */
  readonly context: string;
  items(): AsyncGenerator<ImportItem | SkippedItem>;
  close(): void;
}

/**
 * Why a file is not data, or null. `name` is the key or relative path. CloudTrail-Digest
 * files are data (the evidence that the log files were delivered unchanged) and are imported.
 */
export function skipReason(name: string, size: number): string | null {
  if (name.endsWith('/')) return 'folder marker';
  const parts = name.split('/');
  const base = parts[parts.length - 1]!;
  const dirs = parts.slice(0, -1);
  if (parts.some((p) => p.startsWith('.'))) return 'hidden file';
  if (dirs.some((p) => /^licen[cs]es?$/i.test(p))) return 'licence texts';
  if (/\.(md|markdown|rst)$/i.test(base) || /^(licen[cs]e|notice|copying|readme)([._-].*)?$/i.test(base)) return 'documentation';
  if (/^_(SUCCESS|committed_.*|started_.*)$/.test(base) || base.endsWith('_$folder$') || /\.crc$/i.test(base)) return 'marker file';
  // AWS Config and CloudWatch Logs exports write these to check they may write the bucket.
  if (base === 'ConfigWritabilityCheckFile') return 'AWS Config write check';
  if (base === 'aws-logs-write-test') return 'CloudWatch Logs write check';
  if (/\.parquet$/i.test(base)) return 'Parquet (e.g. Security Lake) is not a format Custody parses';
  if (size === 0) return 'empty';
  return null;
}

/**
 * The source a file is, judged by its name alone (for --dry-run; the server decides from the
 * name and the content). 'auto' when the name does not tell.
 */
export function sourceByName(name: string): string {
  const n = name.replace(/\\/g, '/');
  const base = n.slice(n.lastIndexOf('/') + 1);
  const pick = (...c: string[]): string => c.find((p) => hasParser(p)) ?? 'auto';
  if (/(^|\/)CloudTrail-Digest\//.test(n) || base.includes('_CloudTrail-Digest_')) return pick('cloudtrail-digest', 'json');
  if (/(^|\/)CloudTrail(-Insight)?\//.test(n) || /_CloudTrail(-Insight)?_/.test(base)) return pick('cloudtrail');
  // Flow logs: plain (`vpcflowlogs/<region>/YYYY/MM/DD/`) or Hive-style partitions (`aws-service=vpcflowlogs/aws-region=…/year=…`).
  if (/(^|\/)(aws-service=)?vpcflowlogs\//.test(n) || /_vpcflowlogs_/.test(base)) return pick('vpcflow');
  if (/(^|\/)Config\/.*(ConfigHistory|ConfigSnapshot)\//.test(n) || /_Config_.*(ConfigHistory|ConfigSnapshot)/.test(base)) return pick('config');
  if (/(^|\/)GuardDuty\//i.test(n)) return pick('guardduty');
  if (/(^|\/)Macie2?\//i.test(n)) return pick('macie');
  if (/^\d{6}(\.gz)?$/.test(base)) return pick('cwlogs-export');
  let best = 'auto';
  let score = 0;
  for (const p of sourceParsers()) {
    if (!p.detect) continue;
    let s = 0;
    try {
      s = p.detect(Buffer.alloc(0), { name: n });
    } catch {
      s = 0;
    }
    if (s > score) {
      best = p.name;
      score = s;
    }
  }
  return best;
}

/** `--exclude` patterns: `*` within a path segment, `**` across segments, a trailing `/` means everything under it. */
export function excludeMatcher(patterns: string[]): (name: string) => boolean {
  const res = patterns.map((p) => {
    let g = p.replace(/\\/g, '/');
    if (g.endsWith('/')) g += '**';
    const anchored = g.startsWith('/');
    if (anchored) g = g.slice(1);
    let re = '';
    for (let i = 0; i < g.length; i++) {
      const c = g[i]!;
      if (c === '*' && g[i + 1] === '*') {
        i++;
        if (g[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return new RegExp(`${anchored ? '^' : '(?:^|/)'}${re}$`);
  });
  return (name) => res.some((r) => r.test(name));
}

class FolderLocation implements Location {
  readonly description: string;
  readonly context = 'file';
  constructor(path: string) {
    this.description = resolve(path);
  }
  async *items(): AsyncGenerator<ImportItem | SkippedItem> {
    let st;
    try {
      st = await stat(this.description);
    } catch (e) {
      throw new CustodyError('IMPORT_SOURCE', `Cannot read ${this.description}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (e as Error).message}. Give a folder, a file or s3://bucket/prefix.`);
    }
    if (st.isFile()) {
      yield* this.entry(this.description, basename(this.description));
      return;
    }
    if (!st.isDirectory()) throw new CustodyError('IMPORT_SOURCE', `${this.description} is neither a folder nor a file.`);
    yield* this.walk(this.description);
  }
  private async *walk(dir: string): AsyncGenerator<ImportItem | SkippedItem> {
    const names: Array<{ name: string; dir: boolean; link: boolean }> = [];
    try {
      const d = await opendir(dir);
      for await (const e of d) names.push({ name: e.name, dir: e.isDirectory(), link: e.isSymbolicLink() });
    } catch (e) {
      if (dir === this.description) throw new CustodyError('IMPORT_SOURCE', `Cannot read the folder ${dir}: ${(e as Error).message}.`);
      yield { skipped: true, name: this.rel(dir) + '/', reason: `unreadable folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
      return;
    }
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of names) {
      const full = join(dir, e.name);
      const rel = this.rel(full);
      if (e.dir) {
        // Whole folders that are not data are skipped without walking them.
        const why = e.name.startsWith('.') ? 'hidden folder' : /^licen[cs]es?$/i.test(e.name) ? 'licence texts' : null;
        if (why) yield { skipped: true, name: rel + '/', reason: why };
        else yield* this.walk(full);
      } else if (e.link) {
        let t;
        try {
          t = await stat(full);
        } catch {
          yield { skipped: true, name: rel, reason: 'broken symbolic link' };
          continue;
        }
        if (t.isDirectory()) yield { skipped: true, name: rel + '/', reason: 'symbolic link to a folder (not followed)' };
        else yield* this.entry(full, rel);
      } else yield* this.entry(full, rel);
    }
  }
  private rel(full: string): string {
    return relative(this.description, full).split(sep).join('/');
  }
  private async *entry(full: string, name: string): AsyncGenerator<ImportItem | SkippedItem> {
    let st;
    try {
      st = await lstat(full);
      if (st.isSymbolicLink()) st = await stat(full);
    } catch (e) {
      yield { skipped: true, name, reason: `unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
      return;
    }
    if (!st.isFile()) {
      yield { skipped: true, name, reason: 'not a regular file' };
      return;
    }
    const ref = `file:${full}#${st.size}-${Math.trunc(st.mtimeMs)}`;
    yield {
      name,
      size: st.size,
      ref,
      read: async () => {
        try {
          return { body: await readFile(full), ref };
        } catch (e) {
          throw new CustodyError('IMPORT_SOURCE', `Cannot read ${full}: ${(e as Error).message}.`);
        }
      },
    };
  }
  close(): void {}
}

class S3Location implements Location {
  readonly description: string;
  readonly context: string;
  constructor(
    private readonly loc: S3Where,
    private readonly reader: S3Reader,
  ) {
    this.description = `s3://${this.loc.bucket}/${this.loc.prefix}`;
    this.context = this.reader.endpoint ?? 'aws';
  }
  async *items(): AsyncGenerator<ImportItem | SkippedItem> {
    const { bucket } = this.loc;
    for await (const o of this.reader.list(this.loc)) {
      const why = skipReason(o.key, o.size);
      if (why) {
        yield { skipped: true, name: o.key, reason: why };
        continue;
      }
      yield {
        name: o.key,
        size: o.size,
        ref: `s3://${bucket}/${o.key}#${o.etag}`,
        read: async () => {
          const r = await this.reader.read(bucket, o.key);
          return { body: r.body, ref: `s3://${bucket}/${o.key}#${r.etag || o.etag}` };
        },
      };
    }
  }
  close(): void {
    this.reader.close();
  }
}

// ---- the state file ------------------------------------------------------------------------

/** The platform's directory for state that should survive restarts (XDG state dir on Linux). */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CUSTODY_STATE_DIR) return env.CUSTODY_STATE_DIR;
  if (process.platform === 'win32') return join(env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), 'custody');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'custody');
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'custody');
}

/** Per-source figures. */
export interface Totals {
  files: number;
  stored: number;
  duplicates: number;
  rejected: number;
  ignored: number;
  bytes: number;
}

const zero = (): Totals => ({ files: 0, stored: 0, duplicates: 0, rejected: 0, ignored: 0, bytes: 0 });

function addTo(t: Totals, r: { stored: number; duplicates: number; rejected: number; ignored: number; bytes: number }): void {
  t.files++;
  t.stored += r.stored;
  t.duplicates += r.duplicates;
  t.rejected += r.rejected;
  t.ignored += r.ignored;
  t.bytes += r.bytes;
}

/** One finished file, as written to the state file and the --report file. */
export interface FileResult {
  name: string;
  ref: string;
  object: string;
  source: string;
  bytes: number;
  stored: number;
  duplicates: number;
  rejected: number;
  ignored: number;
  appends: IngestAnswer['appends'];
  errors: IngestAnswer['errors'];
}

/**
 * Finished files, one JSON line each after a header line. Appended as each file finishes, so
 * a crash loses at most the line being written (a torn last line is ignored on load; that file
 * is sent again and its records come back "duplicate").
 */
class ImportState {
  /** Short hashes of finished refs (memory stays small for millions of files). */
  private readonly done = new Set<string>();
  readonly previous: Record<string, Totals> = {};
  readonly previousLogs: Record<string, number> = {};
  previousFiles = 0;
  private fd: number | null = null;

  constructor(
    readonly path: string,
    private readonly header: Record<string, unknown>,
  ) {}

  static key(ref: string): string {
    return createHash('sha256').update(ref).digest('base64url').slice(0, 22);
  }

  load(): void {
    if (!existsSync(this.path)) return;
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      throw new CustodyError('CONFIG', `Cannot read the import state file ${this.path}: ${(e as Error).message}. Fix its permissions or pass --restart to start over.`);
    }
    for (const line of text.split('\n')) {
      if (!line.startsWith('{"ref"')) continue;
      let r: FileResult;
      try {
        r = JSON.parse(line) as FileResult;
      } catch {
        continue; // a torn last line
      }
      const k = ImportState.key(r.ref);
      if (this.done.has(k)) continue;
      this.done.add(k);
      this.previousFiles++;
      addTo((this.previous[r.source] ??= zero()), r);
      for (const a of r.appends ?? []) this.previousLogs[a.log] = (this.previousLogs[a.log] ?? 0) + a.count;
    }
  }

  has(ref: string): boolean {
    return this.done.has(ImportState.key(ref));
  }

  get resuming(): boolean {
    return this.previousFiles > 0;
  }

  record(r: FileResult): void {
    const { ref, ...rest } = r;
    try {
      if (this.fd === null) {
        mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
        const fresh = !existsSync(this.path);
        this.fd = openSync(this.path, 'a', 0o600);
        if (fresh) writeSync(this.fd, JSON.stringify({ custodyImport: 1, ...this.header }) + '\n');
      }
      writeSync(this.fd, JSON.stringify({ ref, ...rest }) + '\n');
    } catch (e) {
      throw new CustodyError('CONFIG', `Cannot write the import state file ${this.path}: ${(e as Error).message}. Pass --state with a writable file (what was sent so far is stored; a rerun finds it as duplicates).`);
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  remove(): void {
    this.close();
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}

// ---- the import ------------------------------------------------------------------------------

export interface FailedFile {
  name: string;
  code: string;
  message: string;
}

export interface ImportSummary {
  location: string;
  url: string;
  sourceOption: string;
  /** False when the import stopped early (Ctrl-C) or some files failed: run it again to continue. */
  complete: boolean;
  interrupted: boolean;
  stateFile: string;
  /** Files imported by an earlier, interrupted run of the same import (included in the totals). */
  resumedFiles: number;
  seconds: number;
  /** Bytes read in this run (as stored: .gz counts compressed), per second. */
  mbPerSec: number;
  totals: Totals;
  sources: Record<string, Totals>;
  /** Entries appended per log (this run and the resumed one). */
  logs: Record<string, number>;
  skipped: { files: number; reasons: Record<string, number> };
  failed: { files: number; list: FailedFile[] };
  /** Files of which the server refused some records (first errors of each). */
  withRejections: Array<{ name: string; rejected: number; errors: IngestAnswer['errors'] }>;
}

const MAX_LISTED = 200;
/** Files listed ahead of the workers at most. */
const LIST_AHEAD = 20_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function openLocation(where: string, o: ImportFlags): Promise<Location> {
  if (/^s3:\/\//i.test(where)) {
    // The AWS SDK is loaded only for S3 locations (it costs ~0.2 s of start-up).
    const { S3Reader, parseS3Url } = await import('./s3.js');
    const loc = parseS3Url(where);
    return new S3Location(loc, new S3Reader({ endpoint: o.endpoint }));
  }
  if (o.endpoint) throw new CustodyError('BAD_REQUEST', '--endpoint is for s3:// locations only.');
  return new FolderLocation(where);
}

function isGzip(b: Buffer): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** `custody import`. Returns the process exit code (0 all imported; 1 some file failed or had rejected records; 130 interrupted). */
export async function importCommand(where: string, o: ImportFlags): Promise<number> {
  const source = o.source ?? 'auto';
  if (!/^[a-z0-9][a-z0-9._:-]{0,63}$/.test(source)) throw new CustodyError('UNKNOWN_SOURCE', `--source ${JSON.stringify(source.slice(0, 64))} is not a source name; use auto or one of: ${sourceParsers().map((p) => p.name).join(', ')}.`);
  const concurrency = o.concurrency ?? 4;
  const location = await openLocation(where, o);
  const exclude = excludeMatcher(o.exclude ?? []);
  try {
    if (o.dryRun) return await dryRun(location, o, exclude);
    const client = new CustodyClient(o);
    client.requireToken();
    await preflight(client, source);
    const statePath = resolve(
      o.state ??
        join(stateDir(), `import-${createHash('sha256').update(JSON.stringify([client.base, location.context, location.description, source, o.log ?? ''])).digest('hex').slice(0, 32)}.jsonl`),
    );
    const state = new ImportState(statePath, { url: client.base, location: location.description, source, log: o.log ?? null, startedAt: new Date().toISOString() });
    if (o.restart) state.remove();
    else state.load();
    return await run(location, client, state, o, source, concurrency, exclude);
  } finally {
    location.close();
  }
}

/** Checks the URL, the token and the --source name before listing anything. */
async function preflight(client: CustodyClient, source: string): Promise<void> {
  let sources: Array<{ name: string }> | null = null;
  try {
    const r = await client.json<Array<{ name: string }> | { sources: Array<{ name: string }> }>('GET', '/v1/sources');
    sources = Array.isArray(r) ? r : r.sources;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) sources = null; // an older server: no list to check against
    else throw e;
  }
  if (sources && source !== 'auto' && !sources.some((s) => s.name === source)) {
    throw new CustodyError('UNKNOWN_SOURCE', `--source ${source} is not a source this server parses; use auto or one of: ${sources.map((s) => s.name).join(', ')}.`);
  }
}

async function dryRun(location: Location, o: ImportFlags, exclude: (n: string) => boolean): Promise<number> {
  const objects: Array<{ name: string; size: number; source: string }> = [];
  const skipped: Array<{ name: string; reason: string }> = [];
  const bySource: Record<string, { files: number; bytes: number }> = {};
  for await (const it of location.items()) {
    const why = 'skipped' in it ? it.reason : exclude(it.name) ? 'excluded (--exclude)' : skipReason(it.name, it.size);
    if (why) {
      skipped.push({ name: it.name, reason: why });
      if (!o.json) process.stdout.write(`skip      ${''.padStart(12)}  ${it.name}  (${why})\n`);
      continue;
    }
    const it2 = it as ImportItem;
    const s = sourceByName(it2.name);
    const b = (bySource[s] ??= { files: 0, bytes: 0 });
    b.files++;
    b.bytes += it2.size;
    if (o.json) objects.push({ name: it2.name, size: it2.size, source: s });
    else process.stdout.write(`${s.padEnd(14)}${String(it2.size).padStart(12)}  ${it2.name}${it2.size > MAX_FILE_BYTES ? '  (too large: over 64 MiB)' : ''}\n`);
  }
  const files = Object.values(bySource).reduce((a, b) => a + b.files, 0);
  if (o.json) print(true, { location: location.description, dryRun: true, files, sources: bySource, objects, skipped }, () => '');
  else {
    process.stdout.write(
      `\nWould import ${files} files from ${location.description} (source judged by name; the server decides from the content): ` +
        (Object.entries(bySource)
          .map(([s, b]) => `${s} ${b.files}`)
          .join(', ') || 'none') +
        `; ${skipped.length} skipped.\n`,
    );
  }
  return 0;
}

async function run(location: Location, client: CustodyClient, state: ImportState, o: ImportFlags, source: string, concurrency: number, exclude: (n: string) => boolean): Promise<number> {
  const t0 = performance.now();
  const sources: Record<string, Totals> = {};
  const logs: Record<string, number> = { ...state.previousLogs };
  for (const [s, t] of Object.entries(state.previous)) sources[s] = { ...t };
  const skippedReasons: Record<string, number> = {};
  let skippedFiles = 0;
  const failed: FailedFile[] = [];
  let failedFiles = 0;
  const withRejections: ImportSummary['withRejections'] = [];
  let bytesThisRun = 0;
  let discovered = 0;
  let finished = 0;
  let stopping = false;
  let interrupted = false;
  let fatal: unknown = null;
  const report = o.report ? openSync(resolve(o.report), 'a', 0o600) : null;

  const bar = new ProgressBar('import', 0, !o.json);
  const onSigint = (): void => {
    if (stopping) process.exit(130); // second Ctrl-C: at once (the state file is consistent)
    stopping = true;
    interrupted = true;
    if (!o.json) process.stderr.write('\nStopping after the files in flight (Ctrl-C again to stop at once); run the same command again to continue.\n');
  };
  process.on('SIGINT', onSigint);

  // The listing runs ahead of the workers (up to LIST_AHEAD files), so the progress bar's
  // total is soon the real one; memory stays bounded however large the bucket.
  const items = location.items();
  const queue: ImportItem[] = [];
  let listed = false;
  let wake: (() => void) | null = null; // a worker waiting for an item
  let room: (() => void) | null = null; // the lister waiting for space
  const signal = (which: 'wake' | 'room'): void => {
    const f = which === 'wake' ? wake : room;
    if (which === 'wake') wake = null;
    else room = null;
    f?.();
  };
  const lister = (async () => {
    try {
      for await (const it of { [Symbol.asyncIterator]: () => items }) {
        if (stopping) break;
        const why = 'skipped' in it ? it.reason : exclude(it.name) ? 'excluded (--exclude)' : skipReason(it.name, it.size);
        if (why) {
          skippedFiles++;
          const reason = why.replace(/ \(.*$/, '');
          skippedReasons[reason] = (skippedReasons[reason] ?? 0) + 1;
          continue;
        }
        const item = it as ImportItem;
        if (state.has(item.ref)) continue; // finished by an earlier run; its figures came from the state file
        queue.push(item);
        discovered++;
        bar.setTotal(discovered);
        signal('wake');
        while (queue.length >= LIST_AHEAD && !stopping) await new Promise<void>((r) => (room = r));
      }
    } catch (e) {
      fatal ??= e;
      stopping = true;
    } finally {
      listed = true;
      signal('wake');
    }
  })();
  const next = async (): Promise<ImportItem | null> => {
    for (;;) {
      if (stopping) return null;
      const item = queue.shift();
      if (item) {
        signal('room');
        return item;
      }
      if (listed) return null;
      await new Promise<void>((r) => {
        const prev = wake;
        wake = () => {
          prev?.();
          r();
        };
      });
    }
  };

  const fail = (name: string, code: string, message: string): void => {
    failedFiles++;
    if (failed.length < MAX_LISTED) failed.push({ name, code, message });
  };

  const importOne = async (item: ImportItem): Promise<void> => {
    if (item.size > MAX_FILE_BYTES) {
      fail(item.name, 'BODY_TOO_LARGE', `The file is ${item.size} bytes; Custody takes files of at most 64 MiB (as stored, compressed). Split it and import the parts.`);
      return;
    }
    let body: Buffer;
    let ref: string;
    try {
      ({ body, ref } = await item.read());
    } catch (e) {
      if (e instanceof CustodyError) return fail(item.name, e.code, e.message);
      throw e;
    }
    bytesThisRun += body.length;
    if (body.length === 0) return; // emptied since the listing: nothing to send
    const object = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    const gzip = isGzip(body);
    let answer: IngestAnswer | null = null;
    let netTries = 0;
    let busyTries = 0;
    while (answer === null) {
      try {
        answer = await client.ingest({ source, name: item.name, object, ...(o.log ? { log: o.log } : {}) }, body, { gzip });
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        const retryAfter = Number((e.details as { retryAfter?: number } | undefined)?.retryAfter);
        if (e.status === 0) {
          // The server is down or restarting: back off, then give up on the whole import.
          if (++netTries > 8) throw new CustodyError('CONFIG', `${e.message} Gave up after ${netTries} tries. The files imported so far are recorded in ${state.path}: run the same command again to continue.`);
          await sleep(Math.min(30_000, 500 * 2 ** (netTries - 1)));
        } else if (e.status === 503 || e.status === 429) {
          // PUSHBACK (the vault is integrating) or not ready: wait as long as the server says.
          if (++busyTries > 240) return fail(item.name, e.code, `${e.message} (still busy after ${busyTries} tries)`);
          await sleep(Math.min(60, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 1) * 1000);
        } else if (e.status === 401 || e.status === 403) {
          throw e; // wrong token for every file: stop the import
        } else if (e.status === 404 && e.code === 'NOT_FOUND') {
          throw new CustodyError('CONFIG', `${client.base} has no /v1/ingest: it is an older Custody server. Upgrade it, or use custody append for NDJSON files.`);
        } else {
          return fail(item.name, e.code, e.message);
        }
      }
    }
    const r: FileResult = {
      name: item.name,
      ref,
      object,
      source: answer.source,
      bytes: body.length,
      stored: answer.stored,
      duplicates: answer.duplicates,
      rejected: answer.rejected,
      ignored: answer.ignored,
      appends: answer.appends ?? [],
      errors: answer.errors ?? [],
    };
    state.record(r);
    if (report !== null) writeSync(report, JSON.stringify(r) + '\n');
    addTo((sources[r.source] ??= zero()), r);
    for (const a of r.appends) logs[a.log] = (logs[a.log] ?? 0) + a.count;
    if (r.rejected > 0 && withRejections.length < MAX_LISTED) withRejections.push({ name: r.name, rejected: r.rejected, errors: r.errors.slice(0, 5) });
  };

  const worker = async (): Promise<void> => {
    while (!stopping) {
      const item = await next();
      if (item === null) return;
      try {
        await importOne(item);
      } catch (e) {
        fatal ??= e;
        stopping = true;
        return;
      }
      finished++;
      bar.update(finished);
    }
  };

  try {
    const workers = Array.from({ length: concurrency }, () => worker().catch((e: unknown) => {
      fatal ??= e;
      stopping = true;
    }));
    await Promise.all(workers);
    stopping = true; // every worker is done: release the lister if it waits for room
    signal('room');
    await lister;
  } finally {
    process.removeListener('SIGINT', onSigint);
    bar.done();
    if (report !== null) closeSync(report);
    await items.return(undefined).catch(() => undefined);
  }
  if (fatal) {
    state.close();
    throw fatal;
  }
  const seconds = (performance.now() - t0) / 1000;
  const complete = !interrupted && failedFiles === 0;
  if (complete) state.remove();
  else state.close();

  const totals = zero();
  for (const t of Object.values(sources)) {
    totals.files += t.files;
    totals.stored += t.stored;
    totals.duplicates += t.duplicates;
    totals.rejected += t.rejected;
    totals.ignored += t.ignored;
    totals.bytes += t.bytes;
  }
  const summary: ImportSummary = {
    location: location.description,
    url: client.base,
    sourceOption: source,
    complete,
    interrupted,
    stateFile: state.path,
    resumedFiles: state.previousFiles,
    seconds: Math.round(seconds * 1000) / 1000,
    mbPerSec: Math.round((bytesThisRun / 1e6 / Math.max(seconds, 1e-3)) * 1000) / 1000,
    totals,
    sources,
    logs,
    skipped: { files: skippedFiles, reasons: skippedReasons },
    failed: { files: failedFiles, list: failed },
    withRejections,
  };
  print(o.json, summary, () => humanSummary(summary));
  if (interrupted) return 130;
  return failedFiles > 0 || totals.rejected > 0 ? 1 : 0;
}

function mbStr(bytes: number): string {
  return (bytes / 1e6).toFixed(bytes >= 1e7 ? 0 : 2);
}

export function humanSummary(s: ImportSummary): string {
  const out: string[] = [];
  out.push(
    `${s.complete ? 'Imported' : s.interrupted ? 'Interrupted the import of' : 'Imported (with failures)'} ${s.location} into ${s.url}: ` +
      `${s.totals.files} files, ${mbStr(s.totals.bytes)} MB read${s.resumedFiles ? '' : ` in ${s.seconds.toFixed(1)} s (${s.mbPerSec.toFixed(1)} MB/s)`}.`,
  );
  if (s.resumedFiles) out.push(`Resumed: ${s.resumedFiles} files had been imported by an earlier run (included below); this run took ${s.seconds.toFixed(1)} s (${s.mbPerSec.toFixed(1)} MB/s).`);
  const rows: string[][] = [['source', 'files', 'stored', 'duplicates', 'rejected', 'ignored', 'MB']];
  for (const [name, t] of Object.entries(s.sources).sort()) rows.push([name, ...[t.files, t.stored, t.duplicates, t.rejected, t.ignored].map(String), mbStr(t.bytes)]);
  rows.push(['total', ...[s.totals.files, s.totals.stored, s.totals.duplicates, s.totals.rejected, s.totals.ignored].map(String), mbStr(s.totals.bytes)]);
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) out.push('  ' + r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  '));
  const logs = Object.entries(s.logs).sort();
  if (logs.length) out.push(`Entries appended per log: ${logs.map(([l, n]) => `${l} ${n}`).join(', ')}.`);
  if (s.skipped.files) out.push(`Skipped ${s.skipped.files} files that are not data: ${Object.entries(s.skipped.reasons).map(([r, n]) => `${r} ${n}`).join(', ')}.`);
  if (s.withRejections.length) {
    out.push(`Records refused in ${s.withRejections.length} file(s):`);
    for (const f of s.withRejections.slice(0, 20)) out.push(`  ${f.name}: ${f.rejected} refused${f.errors[0] ? ` (#${f.errors[0].position}: ${f.errors[0].code} ${f.errors[0].error})` : ''}`);
  }
  if (s.failed.files) {
    out.push(`FAILED ${s.failed.files} file(s):`);
    for (const f of s.failed.list.slice(0, 50)) out.push(`  ${f.name}: ${f.message} [${f.code}]`);
    if (s.failed.files > 50) out.push(`  … and ${s.failed.files - 50} more (--json lists up to ${MAX_LISTED}).`);
    out.push(`Fix them and run the same command again: only the failed files are sent (state in ${s.stateFile}).`);
  } else if (s.interrupted) out.push(`Run the same command again to continue (state in ${s.stateFile}).`);
  return out.join('\n');
}
