/**
 * `custody export` (download an evidence bundle, then check it) and `custody verify-bundle`
 * (check one offline: no server, no network). docs/EVIDENCE.md describes the bundle.
 *
 * Trust: verify-bundle trusts only keys the user gives (--key) and the keys of logs the user
 * trusted before (the trust file of `custody verify`). The keys inside a bundle are never
 * trusted on their own; a bundle signed only by them is reported as such.
 */
import { createWriteStream, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { basename, join, relative, resolve, sep } from 'node:path';
import { parseVerifierKey, verifyBundle, VerifyError, MANIFEST_FILE, type BundleReport, type BundleProblem } from '@custody/verify';
import { CustodyError } from '../errors.js';
import { nativeSha256 } from '../crypto/sha256.js';
import { readZip } from '../evidence/unzip.js';
import { MAX_EXPORT_ENTRIES } from '../evidence/bundle.js';
import { CustodyClient } from './client.js';
import { TrustStore } from './trust.js';
import { print, type ClientFlags } from './commands.js';

export interface ExportFlags extends ClientFlags {
  query?: string;
  from?: string;
  to?: string;
  limit?: number;
  entry?: string[];
  entriesFile?: string;
  out: string;
  verify?: boolean;
  trustFile?: string;
}

export interface VerifyBundleFlags {
  key?: string[];
  witness?: string[];
  quorum?: number;
  trustFile?: string;
  json?: boolean;
}

const n = (v: number): string => v.toLocaleString('en-US');

/** "log:index" or "log index" → a ref; CONFIG error otherwise. */
function parseRef(s: string, where: string): { log: string; index: number } {
  const m = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?::|\s+)(0|[1-9][0-9]{0,15})\s*$/.exec(s);
  if (!m || !Number.isSafeInteger(Number(m[2]))) throw new CustodyError('CONFIG', `${where}: expected "<log>:<index>" (for example local:42), got ${JSON.stringify(s.slice(0, 80))}.`);
  return { log: m[1]!, index: Number(m[2]) };
}

function refsFrom(o: ExportFlags): Array<{ log: string; index: number }> {
  const refs = (o.entry ?? []).map((e) => parseRef(e, '--entry'));
  if (o.entriesFile) {
    const lines = readFileSync(o.entriesFile, 'utf8').split('\n');
    lines.forEach((l, i) => {
      if (l.trim() !== '' && !l.trimStart().startsWith('#')) refs.push(parseRef(l, `${o.entriesFile} line ${i + 1}`));
    });
  }
  return refs;
}

/** A one-line progress indicator on stderr, only on a terminal (never in --json output). */
function progress(enabled: boolean): { update(bytes: number, entries: number | null): void; done(): void } {
  const on = enabled && process.stderr.isTTY === true;
  let last = 0;
  return {
    update(bytes, entries) {
      if (!on || Date.now() - last < 100) return;
      last = Date.now();
      process.stderr.write(`\rexport: ${(bytes / 1e6).toFixed(1)} MB received${entries !== null ? ` (${n(entries)} entries)` : ''}   `);
    },
    done() {
      if (on) process.stderr.write('\n');
    },
  };
}

export async function exportCommand(o: ExportFlags): Promise<number> {
  const c = new CustodyClient(o);
  c.requireToken();
  const refs = refsFrom(o);
  if ((o.query === undefined) === (refs.length === 0)) {
    throw new CustodyError('CONFIG', 'Give either --query (the entries a search matches) or the entries themselves (--entry log:index, --entries-file).');
  }
  if (refs.length > MAX_EXPORT_ENTRIES) throw new CustodyError('CONFIG', `A bundle holds at most ${n(MAX_EXPORT_ENTRIES)} entries; ${n(refs.length)} were given.`);
  const out = resolve(o.out);
  const part = `${out}.part`;
  const t0 = performance.now();
  let res: Response;
  if (o.query !== undefined) {
    const q = new URLSearchParams({ q: o.query });
    if (o.from) q.set('from', o.from);
    if (o.to) q.set('to', o.to);
    if (o.limit !== undefined) q.set('limit', String(o.limit));
    res = await c.request('GET', `/v1/export?${q}`);
  } else {
    res = await c.request('POST', '/v1/export', { body: JSON.stringify({ entries: refs, ...(o.limit !== undefined ? { limit: o.limit } : {}) }), headers: { 'content-type': 'application/json' } });
  }
  const entries = Number(res.headers.get('x-custody-entries') ?? NaN);
  const bar = progress(!o.json);
  const file = createWriteStream(part, { mode: 0o600 });
  let bytes = 0;
  try {
    if (!res.body) throw new CustodyError('INTERNAL', 'The server sent no bundle.');
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      if (!file.write(chunk)) await once(file, 'drain');
      bar.update(bytes, Number.isFinite(entries) ? entries : null);
    }
    file.end();
    await once(file, 'close');
  } catch (e) {
    bar.done();
    file.destroy();
    rmSync(part, { force: true });
    if (e instanceof CustodyError) throw e;
    throw new CustodyError('INTERNAL', `The download of the bundle broke off after ${n(bytes)} bytes (${(e as Error).message}); the server log says why. Nothing was written to ${out}.`);
  }
  bar.done();
  renameSync(part, out);
  const seconds = (performance.now() - t0) / 1000;
  let check: { ok: boolean; report: BundleReport; zipProblems: BundleProblem[]; keys: string } | null = null;
  if (o.verify !== false) {
    // A self-check of what arrived: the keys the user pinned, else the ones the server lists.
    const { files, problems } = readZip(readFileSync(out), basename(out));
    const trust = new TrustStore(o.trustFile);
    const listed = (await c.json<{ logs: Array<{ origin: string; verifierKey: string }> }>('GET', '/v1/logs')).logs;
    const pinned = listed.map((l) => trust.get(l.origin)?.verifierKey ?? l.verifierKey);
    const report = verifyBundle(files, { keys: pinned, hash: nativeSha256 });
    const anyPinned = listed.some((l) => trust.get(l.origin));
    check = { ok: report.ok && problems.length === 0, report, zipProblems: problems, keys: anyPinned ? 'the keys in your trust file, else the ones the server lists' : 'the keys the server lists' };
  }
  const summary = {
    out,
    bytes,
    entries: Number.isFinite(entries) ? entries : null,
    seconds,
    verified: check ? check.ok : null,
    ...(check ? { logs: check.report.logs, problems: mergeProblems(check.zipProblems, check.report) } : {}),
  };
  print(o.json, summary, () => {
    const lines = [`Wrote ${out}: ${summary.entries !== null ? `${n(summary.entries)} entries, ` : ''}${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s.`];
    if (check?.ok) {
      lines.push(`Checked: every entry is proven in its log and every file is intact (against ${check.keys}).`);
      lines.push(`The recipient checks it with: custody verify-bundle ${basename(out)} ${check.report.logs.map((l) => `--key '${l.verifiedBy}'`).join(' ')}`);
    } else if (check) {
      lines.push('The downloaded bundle DOES NOT VERIFY:', ...mergeProblems(check.zipProblems, check.report).slice(0, 20).map((p) => `  - ${p.file} [${p.kind}]: ${p.message}`));
    }
    return lines.join('\n');
  });
  return check && !check.ok ? 1 : 0;
}

/** The zip's problems, then the bundle's, without "missing" for files the zip reported damaged. */
function mergeProblems(zipProblems: BundleProblem[], report: BundleReport): BundleProblem[] {
  const damaged = new Set(zipProblems.map((p) => p.file));
  return [...zipProblems, ...report.problems.filter((p) => !(p.kind === 'MISSING_FILE' && damaged.has(p.file)))];
}

/** Every file under `dir`, by its '/'-separated path relative to it. */
function readFolder(dir: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) files.set(relative(dir, p).split(sep).join('/'), readFileSync(p));
    }
  };
  walk(dir);
  return files;
}

/** The origins a manifest names (best effort: a broken manifest is reported by verifyBundle). */
function manifestOrigins(files: Map<string, Uint8Array>): string[] {
  try {
    const m = JSON.parse(Buffer.from(files.get(MANIFEST_FILE) ?? new Uint8Array(0)).toString('utf8')) as { logs?: Record<string, { origin?: unknown }> };
    return Object.values(m.logs ?? {}).flatMap((l) => (typeof l?.origin === 'string' ? [l.origin] : []));
  } catch {
    return [];
  }
}

export interface VerifyBundleResult extends BundleReport {
  bundle: string;
  /** Where each trusted key came from. */
  keySources: Record<string, '--key' | 'trust file'>;
}

export function verifyBundleCommand(path: string, o: VerifyBundleFlags): number {
  const target = resolve(path);
  if (!existsSync(target)) throw new CustodyError('CONFIG', `${path} does not exist.`);
  const keys = o.key ?? [];
  for (const k of [...keys, ...(o.witness ?? [])]) {
    try {
      parseVerifierKey(k);
    } catch (e) {
      if (e instanceof VerifyError) throw new CustodyError('CONFIG', `${JSON.stringify(k.slice(0, 80))} is not a verifier key (<name>+<key id>+<key>): ${e.message}`);
      throw e;
    }
  }
  let files: Map<string, Uint8Array>;
  let zipProblems: BundleProblem[] = [];
  if (statSync(target).isDirectory()) files = readFolder(target);
  else {
    const r = readZip(readFileSync(target), basename(target));
    files = r.files;
    zipProblems = r.problems;
  }
  const keySources: Record<string, '--key' | 'trust file'> = {};
  for (const k of keys) keySources[k] = '--key';
  const trust = new TrustStore(o.trustFile);
  for (const origin of manifestOrigins(files)) {
    const t = trust.get(origin);
    if (t && !Object.hasOwn(keySources, t.verifierKey)) keySources[t.verifierKey] = 'trust file';
  }
  const report = verifyBundle(files, { keys: Object.keys(keySources), witnesses: o.witness ?? [], quorum: o.quorum ?? 0, hash: nativeSha256 });
  const problems = mergeProblems(zipProblems, report);
  const result: VerifyBundleResult = { ...report, ok: report.ok && zipProblems.length === 0, problems, bundle: target, keySources };
  print(o.json, result, () => human(result, path));
  return result.ok ? 0 : 1;
}

function human(r: VerifyBundleResult, path: string): string {
  const lines: string[] = [];
  if (r.ok) lines.push(`OK: ${path} — ${n(r.items)} entr${r.items === 1 ? 'y' : 'ies'} in ${r.logs.length} log${r.logs.length === 1 ? '' : 's'}, each proven in its log, every record and file intact.`);
  else lines.push(`INVALID: ${path} — ${n(r.problems.length + r.problemsOmitted)} problem${r.problems.length + r.problemsOmitted === 1 ? '' : 's'}; ${n(r.verified)} of ${n(r.items)} entries verified.`);
  for (const l of r.logs) {
    const by = l.verifiedBy ? `signed by ${l.verifiedBy} (${r.keySources[l.verifiedBy] ?? 'pinned'})${l.cosigners.length ? `, cosigned by ${l.cosigners.join(', ')}` : ''}` : 'NOT signed by a key you trust';
    lines.push(`  ${l.log}: ${l.origin}, ${n(l.items)} entries, checkpoint of size ${n(l.size)}; ${by}`);
  }
  if (r.problems.length) {
    lines.push('Problems:');
    for (const p of r.problems) lines.push(`  - ${p.file} [${p.kind}]: ${p.message}`);
    if (r.problemsOmitted) lines.push(`  … and ${n(r.problemsOmitted)} more (run with --json for the listed ones).`);
  }
  if (r.manifest) {
    lines.push(`Exported ${r.manifest.created} from ${r.manifest.vault}${r.manifest.query !== null ? ` for the query ${JSON.stringify(r.manifest.query)}` : ''} (as the bundle says; this is not proven).`);
  }
  return lines.join('\n');
}
