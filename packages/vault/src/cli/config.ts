/**
 * `custody serve --config <file>` (docs/PRODUCTION.md): a JSON file with the same settings as
 * serve's command-line options, keyed by the camelCase of the long option name
 * (`--checkpoint-interval` → `checkpointInterval`), plus where the vault keeps its data:
 * `storage` ("posix" or "s3://BUCKET/PREFIX") and `database` ("sqlite" or "postgres://…").
 *
 * Precedence: a flag on the command line > the config file > environment defaults ($CUSTODY_DATA,
 * $CUSTODY_LOG_LEVEL, …) > built-in defaults. $CUSTODY_CONFIG names the file when --config is
 * not given. Relative paths in the file are relative to the file's own directory, so the
 * result does not depend on where the service was started.
 *
 * The file never holds a secret: passphrases and tokens are named by *File keys (their paths),
 * and a database URL in the file must not carry a password. A file other users can write is
 * refused (whoever can write it decides where the vault keeps its data and which CA it trusts).
 *
 * Everything is checked by hand (the vault has no schema library): an unknown key, a wrong
 * type or a bad value stops the start with a message naming the key and the file.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Option, InvalidArgumentError, type Command } from 'commander';
import { CustodyError } from '../errors.js';
import { resolveDataDir } from '../vault.js';
import { ARCHIVE_STORAGE_CLASSES } from '../storage/archive.js';
import type { ServeOptions } from './serve.js';
import type { ArchiveFlags } from './aws.js';

// ---- where the vault keeps its data (issue 7) --------------------------------------------

export type StorageChoice = { kind: 'posix' } | { kind: 's3'; bucket: string; prefix: string; endpoint?: string; region?: string };
export type DatabaseChoice = { kind: 'sqlite' } | { kind: 'postgres'; url: string; passwordFile?: string };


/**
 * A database URL with its password replaced by "***" — also when the text is not a URL at all:
 * everything between "scheme://user:" and the last "@" (without a scheme: everything before
 * the last "@"), and a ?password= parameter. Every message that shows a database URL shows this.
 */
export function redactUrl(text: string): string {
  let out = text;
  const at = text.lastIndexOf('@');
  if (at >= 0) {
    const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(text);
    if (!scheme) out = '***' + text.slice(at);
    else {
      const userinfo = text.slice(scheme[0].length, at);
      const colon = userinfo.indexOf(':');
      if (colon >= 0) out = scheme[0] + userinfo.slice(0, colon) + ':***' + text.slice(at);
    }
  }
  return out.replace(/([?&]password=)[^&#]*/gi, '$1***');
}

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/**
 * `--storage`: "posix" (the data directory; the default) or "s3://BUCKET/PREFIX". The bucket
 * follows the S3 naming rules (S3 User Guide, "General purpose bucket naming rules": 3–63
 * characters, lower-case letters, digits, dots and hyphens, beginning and ending with a letter
 * or digit, not an IP address, no ".." ); the prefix becomes "PREFIX/" as the S3 driver
 * (storage/s3/object-store.ts) takes it. The endpoint and region come from the standard AWS
 * variables, checked here so a typo stops the start instead of the first write.
 */
export function parseStorage(value: string | undefined, env: NodeJS.ProcessEnv = process.env, where = '--storage'): StorageChoice {
  if (value === undefined || value === 'posix') return { kind: 'posix' };
  if (!value.startsWith('s3://')) throw new CustodyError('CONFIG', `${where} takes "posix" (the default: the data directory) or s3://BUCKET/PREFIX; got ${JSON.stringify(value.slice(0, 100))}.`);
  const rest = value.slice(5);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const rawPrefix = slash < 0 ? '' : rest.slice(slash + 1);
  if (!BUCKET_RE.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    throw new CustodyError('CONFIG', `${where}: ${JSON.stringify(bucket.slice(0, 100))} is not an S3 bucket name (3–63 lower-case letters, digits, dots and hyphens); write s3://BUCKET/PREFIX.`);
  }
  const prefix = rawPrefix.replace(/\/+$/, '');
  if (CONTROL_RE.test(prefix) || prefix.startsWith('/') || prefix.includes('//') || prefix.split('/').some((p) => p === '.' || p === '..') || prefix.length > 512) {
    throw new CustodyError('CONFIG', `${where}: the prefix after the bucket must look like custody or team/custody (no leading slash, no empty, "." or ".." parts, no control characters).`);
  }
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  if (endpoint !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(endpoint);
    } catch {
      u = undefined;
    }
    const name = env.AWS_ENDPOINT_URL_S3 ? 'AWS_ENDPOINT_URL_S3' : 'AWS_ENDPOINT_URL';
    if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:')) throw new CustodyError('CONFIG', `${name} must be an http(s):// URL of the S3 endpoint, e.g. https://s3.eu-west-1.amazonaws.com.`);
    if (u.username || u.password) throw new CustodyError('CONFIG', `${name} must not hold credentials; give them in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an AWS profile.`);
  }
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined;
  if (region !== undefined && !/^[a-z0-9-]{1,40}$/.test(region)) throw new CustodyError('CONFIG', `AWS_REGION ${JSON.stringify(region.slice(0, 50))} is not a region name (e.g. eu-west-1).`);
  return { kind: 's3', bucket, prefix: prefix === '' ? '' : prefix + '/', ...(endpoint ? { endpoint } : {}), ...(region ? { region } : {}) };
}

/**
 * `--database`: "sqlite" (inside the data directory; the default) or a PostgreSQL connection
 * URL, postgres://USER@HOST[:PORT]/DATABASE (libpq's URI form, PostgreSQL manual §34.1.1).
 * The password belongs in --database-password-file, PGPASSWORD or ~/.pgpass; one inside the
 * URL is accepted on the command line (other users of the machine can see it in the process
 * list) and refused in a config file. Messages never show it.
 */
export function parseDatabase(value: string | undefined, passwordFile?: string, where = '--database', inFile = false): DatabaseChoice {
  if (value === undefined || value === 'sqlite') {
    if (passwordFile !== undefined) throw new CustodyError('CONFIG', '--database-password-file is for a PostgreSQL --database; the embedded SQLite needs none.');
    return { kind: 'sqlite' };
  }
  const shown = JSON.stringify(redactUrl(value).slice(0, 200));
  if (!/^postgres(ql)?:\/\//.test(value)) throw new CustodyError('CONFIG', `${where} takes "sqlite" (the default) or postgres://USER@HOST:PORT/DATABASE; got ${shown}.`);
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new CustodyError('CONFIG', `${where} ${shown} is not a valid URL; write postgres://USER@HOST:PORT/DATABASE (percent-encode special characters in the user name).`);
  }
  if (CONTROL_RE.test(value)) throw new CustodyError('CONFIG', `${where} must not contain control characters.`);
  // The server: a host name, or a Unix socket directory (percent-encoded host, or ?host=/run/postgresql).
  const decode = (t: string): string | undefined => {
    try {
      return decodeURIComponent(t);
    } catch {
      return undefined; // a stray "%"
    }
  };
  const host = u.hostname !== '' ? decode(u.hostname) ?? '' : u.searchParams.get('host') ?? '';
  if (host === '') throw new CustodyError('CONFIG', `${where} ${shown} names no server; write postgres://USER@HOST:PORT/DATABASE (or postgres:///DATABASE?host=/run/postgresql&user=USER for the local socket).`);
  const db = decode(u.pathname.replace(/^\//, '')) ?? '';
  if (db === '' || db.includes('/')) throw new CustodyError('CONFIG', `${where} ${shown} names no database; write postgres://USER@HOST:PORT/DATABASE.`);
  if (u.username === '' && !u.searchParams.get('user')) throw new CustodyError('CONFIG', `${where} ${shown} names no user; write postgres://USER@HOST:PORT/DATABASE.`);
  const hasPassword = u.password !== '' || u.searchParams.has('password');
  if (hasPassword && inFile) throw new CustodyError('CONFIG', `${where} holds a password; a config file never holds secrets. Remove it from the URL and give it with databasePasswordFile (a file only the vault's user can read), PGPASSWORD or ~/.pgpass.`);
  if (hasPassword && passwordFile !== undefined) throw new CustodyError('CONFIG', `${where} holds a password and --database-password-file is given too; keep only the file.`);
  return { kind: 'postgres', url: value, ...(passwordFile !== undefined ? { passwordFile } : {}) };
}

/**
 * The two ways to run: embedded (posix + SQLite) or shared (S3 + PostgreSQL, several nodes).
 * A mix — S3 without PostgreSQL or PostgreSQL without S3 — is refused.
 */
export function requireAvailableBackends(storage: StorageChoice, database: DatabaseChoice): void {
  if (storage.kind === 's3' && database.kind !== 'postgres') {
    throw new CustodyError('CONFIG', 'A vault on S3 (--storage s3://…) keeps its sequencing, configuration and principals in PostgreSQL: give --database postgres://USER@HOST:PORT/DATABASE too (or leave --storage out to run on the data directory).');
  }
  if (database.kind === 'postgres' && storage.kind !== 's3') {
    throw new CustodyError('CONFIG', 'A vault on PostgreSQL (--database postgres://…) keeps its logs in an S3 bucket with Object Lock: give --storage s3://BUCKET/PREFIX too (or leave --database out to run on the data directory and its embedded SQLite).');
  }
}

// ---- serve's options: one list for the command line and the config file -----------------

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}.`);
    return n;
  };
}
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** serve's options (custody serve --help). The config file takes the same names (SERVE_KEYS). */
export function addServeOptions(c: Command): Command {
  return c
    .option('--config <file>', 'JSON file with these options, keyed by their camelCase names, e.g. {"port": 8700}; flags given here win (default: $CUSTODY_CONFIG; docs/PRODUCTION.md)')
    .addOption(new Option('--data <dir>', 'data directory (default: $CUSTODY_DATA or ./custody-data)'))
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on', intArg('--port', 0, 65535), 8700)
    .option('--checkpoint-interval <ms>', 'longest wait before new entries are in a signed checkpoint', intArg('--checkpoint-interval', 10, 60000), 100)
    .option('--prefix <prefix>', 'origin prefix, used only when initialising')
    .option('--regions <list>', 'comma-separated regions, used only when initialising')
    .option('--region-dir <region=dir>', "keep a region's log in this directory (repeatable); kept in vault.json, a missing directory stops the start; an existing log is never moved", collect)
    .option('--storage <where>', 'where the logs live: posix (the data directory, default) or s3://BUCKET/PREFIX (endpoint and credentials from the standard AWS variables); needs --database postgres://… (several nodes, docs/PRODUCTION.md)')
    .option('--database <url>', 'sequencing, principals and indexes: sqlite (embedded, default) or postgres://USER@HOST:PORT/DATABASE; needs --storage s3://… (several nodes, docs/PRODUCTION.md)')
    .option('--node-id <id>', 'shared mode: this node\'s name in the database (default: hostname-pid-random)')
    .option('--partial-lock <mode>', 'shared mode: how partial tiles and bundles are locked in S3: none (bucket default retention; works with the AWS blueprint), short (1 day) or full (the retention); default none (docs/AWS.md)')
    .option('--retention-days <n>', 'shared mode, first node only: objects in S3 are locked (COMPLIANCE) this many days after they are written (default 365)', intArg('--retention-days', 1, 36500))
    .option('--database-password-file <file>', 'file holding the PostgreSQL password (else PGPASSWORD or ~/.pgpass)')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--tls-client-ca <file>', 'PEM CA: writers must also present a client certificate it signed (mutual TLS; auditors and admins need none; docs/TLS.md)')
    .option('--log-level <level>', 'server log level (fatal, error, warn, info, debug)')
    .option('--syslog-port <n>', 'also receive syslog over TCP on this port (RFC 5424/3164, octet counting or LF framing; docs/SYSLOG.md)', intArg('--syslog-port', 0, 65535))
    .option('--syslog-tls-port <n>', 'also receive syslog over TLS on this port (RFC 5425, usually 6514); uses --tls-cert and --tls-key', intArg('--syslog-tls-port', 0, 65535))
    .option('--syslog-host <addr>', 'address of the syslog listeners (default: --host)')
    .option('--syslog-token-file <file>', 'file holding the writer token syslog messages are stored as (default: $CUSTODY_SYSLOG_TOKEN)')
    .option('--syslog-tls-ca <file>', 'PEM CA: syslog TLS clients must present a certificate it signed (its CN is recorded)')
    .option('--no-search', 'do not keep the search index up to date or serve /v1/search (docs/SEARCH.md)')
    .option('--witness <name=url=vkey>', 'a witness that must cosign checkpoints before they are published (repeatable; docs/WITNESS.md)', collect)
    .option('--witnesses-file <file>', 'witnesses, one "<name>=<url>=<vkey>" per line')
    .option('--witness-policy <k>', 'publish a checkpoint once k witnesses cosigned it (default: all of them)', intArg('--witness-policy', 1, 100))
    // --- archive tier (docs/ARCHIVE.md) ---
    .option('--archive-dir <dir>', 'archive tier on disk: move sealed entry bundles and blobs older than --archive-after days here (default: off)')
    .option('--archive <s3url>', 'archive tier on S3: s3://bucket/prefix (instead of --archive-dir)')
    .option('--archive-after <days>', "age in days (by the entries' receive time) after which bundles move to the archive", intArg('--archive-after', 0, 36500))
    .addOption(new Option('--archive-storage-class <class>', 'S3 storage class of archived objects (default STANDARD)').choices(ARCHIVE_STORAGE_CLASSES))
    .option('--archive-restore-days <n>', 'S3 GLACIER/DEEP_ARCHIVE: days a restored copy stays readable (default 7)', intArg('--archive-restore-days', 1, 365));
}

/** The parsed options of `custody serve` (commander's attribute names = the config keys). */
export interface ServeFlags extends ArchiveFlags {
  config?: string;
  data?: string;
  host: string;
  port: number;
  checkpointInterval: number;
  prefix?: string;
  regions?: string;
  regionDir?: string[];
  storage?: string;
  database?: string;
  databasePasswordFile?: string;
  nodeId?: string;
  retentionDays?: number;
  partialLock?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  logLevel?: string;
  syslogPort?: number;
  syslogTlsPort?: number;
  syslogHost?: string;
  syslogTokenFile?: string;
  syslogTlsCa?: string;
  search: boolean;
  witness?: string[];
  witnessesFile?: string;
  witnessPolicy?: number;
  passphraseFile?: string;
  passphrase?: boolean;
}

type KeyKind =
  | { t: 'string'; choices?: readonly string[] }
  | { t: 'path' }
  | { t: 'int'; min: number; max: number }
  | { t: 'bool' }
  | { t: 'list' } // regions: an array of names (or the command line's comma-separated string)
  | { t: 'strings' } // repeatable flags: an array of strings
  | { t: 'regionDirs' }; // {"eu-west-1": "/mnt/eu"} or ["eu-west-1=/mnt/eu"]

/**
 * Every key the config file takes, with its type: the long options of `custody serve`
 * (test/config checks this against `custody serve --help`), except --config itself.
 * `secret` marks the keys that name a file holding a secret.
 */
export const SERVE_KEYS: Record<string, KeyKind & { secret?: true }> = {
  data: { t: 'path' },
  host: { t: 'string' },
  port: { t: 'int', min: 0, max: 65535 },
  checkpointInterval: { t: 'int', min: 10, max: 60000 },
  prefix: { t: 'string' },
  regions: { t: 'list' },
  regionDir: { t: 'regionDirs' },
  storage: { t: 'string' },
  database: { t: 'string' },
  databasePasswordFile: { t: 'path', secret: true },
  nodeId: { t: 'string' },
  retentionDays: { t: 'int', min: 1, max: 36500 },
  partialLock: { t: 'string', choices: ['none', 'short', 'full'] },
  tlsCert: { t: 'path' },
  tlsKey: { t: 'path', secret: true },
  tlsClientCa: { t: 'path' },
  logLevel: { t: 'string', choices: LOG_LEVELS },
  syslogPort: { t: 'int', min: 0, max: 65535 },
  syslogTlsPort: { t: 'int', min: 0, max: 65535 },
  syslogHost: { t: 'string' },
  syslogTokenFile: { t: 'path', secret: true },
  syslogTlsCa: { t: 'path' },
  search: { t: 'bool' },
  witness: { t: 'strings' },
  witnessesFile: { t: 'path' },
  witnessPolicy: { t: 'int', min: 1, max: 100 },
  archiveDir: { t: 'path' },
  archive: { t: 'string' },
  archiveAfter: { t: 'int', min: 0, max: 36500 },
  archiveStorageClass: { t: 'string', choices: ARCHIVE_STORAGE_CLASSES },
  archiveRestoreDays: { t: 'int', min: 1, max: 365 },
  passphraseFile: { t: 'path', secret: true },
  passphrase: { t: 'bool' },
};

/** The camelCase config key of a long option: --checkpoint-interval → checkpointInterval. */
export const keyOf = (long: string): string => long.replace(/^--(no-)?/, '').replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

export interface ServeConfig {
  /** The file, absolute. */
  file: string;
  /** Each key as commander would have parsed it from the command line (paths made absolute). */
  values: Partial<Record<string, unknown>>;
  /** Things worth saying that do not stop the start (printed on stderr). */
  warnings: string[];
}

/** The known key a misspelt one was probably meant as: same letters ignoring case, "-" and "_", or at most two edits away. */
function nearestKey(key: string, known: string[]): string | undefined {
  const norm = (k: string): string => k.toLowerCase().replace(/[-_]/g, '');
  const k = norm(key.slice(0, 80));
  let best: { key: string; d: number } | undefined;
  for (const cand of known) {
    const c = norm(cand);
    // Levenshtein distance, one row at a time (keys are short).
    let prev = Array.from({ length: c.length + 1 }, (_v, j) => j);
    for (let i = 1; i <= k.length; i++) {
      const row = [i];
      for (let j = 1; j <= c.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (k[i - 1] === c[j - 1] ? 0 : 1));
      prev = row;
    }
    const d = prev[c.length]!;
    if (d <= 2 && (best === undefined || d < best.d)) best = { key: cand, d };
  }
  return best?.key;
}

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);

/**
 * Reads and checks a config file. `from` says where its name came from (for messages); `uid` is
 * the user the vault runs as (the file must belong to it or to root).
 */
export function readServeConfig(path: string, opts: { from?: string; uid?: number } = {}): ServeConfig {
  const file = resolve(path);
  const from = opts.from ? ` (from ${opts.from})` : '';
  const bad = (key: string, what: string): CustodyError => new CustodyError('CONFIG', `Config file ${file}: "${key}" ${what}`, { file, key });
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot read the config file ${file}${from}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`, { file });
  }
  if (!st.isFile()) throw new CustodyError('CONFIG', `The config file ${file}${from} is not a regular file.`, { file });
  const uid = opts.uid ?? process.getuid?.();
  if ((st.mode & 0o022) !== 0) {
    throw new CustodyError('CONFIG', `The config file ${file} can be changed by other users (mode ${(st.mode & 0o777).toString(8)}); whoever can write it decides where the vault keeps its data. Run chmod go-w ${file}.`, { file });
  }
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new CustodyError('CONFIG', `The config file ${file} belongs to another user (uid ${st.uid}), who could change it at any time; it must belong to root or to the user the vault runs as.`, { file });
  }
  if (st.size > 1024 * 1024) throw new CustodyError('CONFIG', `The config file ${file} is larger than 1 MiB; it is not a Custody config file.`, { file });
  const text = readFileSync(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // V8 quotes part of the text in its message (Node 20: `Unexpected token 'p', ..."abc": p"... is
    // not valid JSON`, the token 10 characters into the quoted part when it starts with "...");
    // never echo the file's content, only where the problem is.
    const msg = (e as Error).message;
    let pos: number | undefined = /position (\d+)/.exec(msg) ? Number(/position (\d+)/.exec(msg)![1]) : undefined;
    const quoted = /^(Unexpected token '.*?'), (\.\.\.)?"(.*?)"(?:\.\.\.)? is not valid JSON$/s.exec(msg);
    if (pos === undefined && quoted?.[2] && text.indexOf(quoted[3]!) >= 0) pos = text.indexOf(quoted[3]!) + 10;
    let where = '';
    if (pos !== undefined) {
      const before = text.slice(0, pos);
      where = ` at line ${before.split('\n').length}, column ${pos - before.lastIndexOf('\n')}`;
    }
    const why = quoted ? quoted[1] : msg.replace(/ in JSON at position \d+.*$/s, '').replace(/,? (\.\.\.)?".*$/s, '');
    throw new CustodyError('CONFIG', `The config file ${file} is not valid JSON${where}: ${why}. It is a JSON object, e.g. {"data": "/var/lib/custody", "port": 8700}.`, { file });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new CustodyError('CONFIG', `The config file ${file} must hold one JSON object, e.g. {"data": "/var/lib/custody", "port": 8700}; it holds ${typeName(json)}.`, { file });
  const base = dirname(file);
  const abs = (p: string): string => resolve(base, p);
  const values: Partial<Record<string, unknown>> = {};
  const warnings: string[] = [];
  const known = Object.keys(SERVE_KEYS);
  for (const [key, v] of Object.entries(json as Record<string, unknown>)) {
    const kind = Object.hasOwn(SERVE_KEYS, key) ? SERVE_KEYS[key]! : undefined;
    if (kind === undefined) {
      const near = nearestKey(key, known);
      const shown = JSON.stringify(key.slice(0, 80));
      if (key === 'config') throw new CustodyError('CONFIG', `Config file ${file}: "config" cannot name another config file; put the settings here.`, { file, key });
      throw new CustodyError('CONFIG', `Config file ${file}: unknown key ${shown}${near ? ` (did you mean "${near}"?)` : ''}. The keys are serve's long options in camelCase; custody serve --help lists them.`, { file, key: key.slice(0, 80) });
    }
    switch (kind.t) {
      case 'string':
      case 'path': {
        if (typeof v !== 'string') throw bad(key, `must be a string; it is ${typeName(v)}.`);
        if (v === '' || CONTROL_RE.test(v)) throw bad(key, 'must be a non-empty string without control characters.');
        if (kind.t === 'string' && kind.choices && !kind.choices.includes(v)) throw bad(key, `must be one of ${kind.choices.join(', ')}; it is ${JSON.stringify(v.slice(0, 50))}.`);
        values[key] = kind.t === 'path' ? abs(v) : v;
        break;
      }
      case 'int':
        if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(key, `must be a whole number; it is ${typeName(v)}${typeof v === 'number' ? ` (${v})` : ''}.`);
        if (v < kind.min || v > kind.max) throw bad(key, `must be from ${kind.min} to ${kind.max}; it is ${v}.`);
        values[key] = v;
        break;
      case 'bool':
        if (typeof v !== 'boolean') throw bad(key, `must be true or false; it is ${typeName(v)}.`);
        values[key] = v;
        break;
      case 'list':
      case 'strings': {
        const list = kind.t === 'list' && typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
        if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || s === '' || CONTROL_RE.test(s))) throw bad(key, `must be an array of non-empty strings; it is ${typeName(v)}.`);
        values[key] = kind.t === 'list' ? (list as string[]).join(',') : [...(list as string[])];
        break;
      }
      case 'regionDirs': {
        let pairs: Array<[string, unknown]>;
        if (Array.isArray(v)) pairs = v.map((s) => (typeof s === 'string' && s.indexOf('=') > 0 ? [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)] : ['', s]));
        else if (v !== null && typeof v === 'object') pairs = Object.entries(v as Record<string, unknown>);
        else throw bad(key, `must be an object of region → directory, e.g. {"eu-west-1": "/mnt/eu-west-1"}; it is ${typeName(v)}.`);
        values[key] = pairs.map(([region, dir]) => {
          if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(region) || typeof dir !== 'string' || dir === '') throw bad(key, 'must map region names to directories, e.g. {"eu-west-1": "/mnt/eu-west-1"}.');
          return `${region}=${abs(dir)}`;
        });
        break;
      }
    }
  }
  // The same checks the flags get, with the file named (parse only: nothing is opened here).
  if (typeof values.storage === 'string') parseStorage(values.storage, process.env, `Config file ${file}: "storage"`);
  if (typeof values.database === 'string') parseDatabase(values.database, values.databasePasswordFile as string | undefined, `Config file ${file}: "database"`, true);
  if (typeof values.archive === 'string' && !values.archive.startsWith('s3://')) throw bad('archive', 'takes s3://bucket/prefix; for a directory use "archiveDir".');
  const secrets = Object.keys(values).filter((k) => SERVE_KEYS[k]?.secret);
  if ((st.mode & 0o004) !== 0 && secrets.length > 0) {
    warnings.push(`The config file ${file} is readable by every user of this machine. It holds no secrets, but it says where they are (${secrets.join(', ')}); consider chmod o-r ${file}.`);
  }
  return { file, values, warnings };
}

/**
 * Before serve's other preAction steps (the keyring needs --data and --passphrase-file): reads
 * the config file of --config or $CUSTODY_CONFIG and sets every option the command line did
 * not give (a repeatable flag given on the command line replaces the file's whole list); then
 * checks --storage and --database.
 */
export function applyServeConfig(cmd: Command, env: NodeJS.ProcessEnv = process.env, warn: (s: string) => void = (s) => process.stderr.write(`warning: ${s}\n`)): ServeConfig | undefined {
  const given = cmd.getOptionValue('config') as string | undefined;
  const path = given ?? (env.CUSTODY_CONFIG || undefined);
  let cfg: ServeConfig | undefined;
  if (path !== undefined) {
    cfg = readServeConfig(path, { from: given === undefined ? '$CUSTODY_CONFIG' : undefined });
    for (const w of cfg.warnings) warn(w);
    for (const [key, value] of Object.entries(cfg.values)) {
      if (cmd.getOptionValueSource(key) === 'cli') continue;
      cmd.setOptionValueWithSource(key, value, 'config');
    }
  }
  // A bad --storage/--database stops here, before the keyring is unlocked (serve() refuses the unwired ones).
  const o = cmd.opts<ServeFlags>();
  parseStorage(o.storage, env);
  parseDatabase(o.database, o.databasePasswordFile);
  return cfg;
}

/** serve's parsed options (flags and config merged) → what serve() takes. */
export async function serveOptionsFrom(o: ServeFlags, env: NodeJS.ProcessEnv = process.env): Promise<ServeOptions> {
  const storage = parseStorage(o.storage, env);
  const database = parseDatabase(o.database, o.databasePasswordFile);
  return {
    ...(await import('./aws.js')).archiveOptions(o),
    data: resolveDataDir(o.data),
    storage,
    database,
    nodeId: o.nodeId,
    retentionDays: o.retentionDays,
    partialLock: parsePartialLock(o.partialLock),
    host: o.host,
    port: o.port,
    checkpointInterval: o.checkpointInterval,
    prefix: o.prefix,
    regions: o.regions?.split(',').map((s) => s.trim()).filter(Boolean),
    regionDir: o.regionDir,
    tlsCert: o.tlsCert,
    tlsKey: o.tlsKey,
    tlsClientCa: o.tlsClientCa,
    logLevel: o.logLevel,
    syslogPort: o.syslogPort,
    syslogTlsPort: o.syslogTlsPort,
    syslogHost: o.syslogHost,
    syslogTokenFile: o.syslogTokenFile,
    syslogTlsCa: o.syslogTlsCa,
    search: o.search,
    witness: o.witness,
    witnessesFile: o.witnessesFile,
    witnessPolicy: o.witnessPolicy,
  };
}

/** `--partial-lock none|short|full` (storage/s3/log-store.ts PARTIAL_LOCKS); undefined: the default. */
export function parsePartialLock(v: string | undefined): 'none' | 'short' | 'full' | undefined {
  if (v === undefined) return undefined;
  if (v === 'none' || v === 'short' || v === 'full') return v;
  throw new CustodyError('CONFIG', `--partial-lock takes none, short or full, not ${JSON.stringify(v)}; none (the default) works with the AWS blueprint's bucket policy (docs/AWS.md).`);
}
