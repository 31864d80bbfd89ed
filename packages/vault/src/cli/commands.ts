/** The client-side commands: token, logs, append, verify, proof. */
import { readFileSync, writeFileSync, mkdirSync, createReadStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { createGunzip } from 'node:zlib';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import {
  parseVerifierKey,
  KEY_TYPE_COSIGNATURE,
  verifyProofFile,
  openCheckpoint,
  verifyConsistency,
  fromBase64,
  toBase64,
  hashLeaf,
} from '@custody/verify';
import { CustodyError } from '../errors.js';
import { VaultDb, type Role } from '../storage/db.js';
import { createPrincipal } from '../auth/tokens.js';
import { readConfig } from '../vault.js';
import { nativeSha256 } from '../crypto/sha256.js';
import { CustodyClient, ApiError } from './client.js';
import { HttpSource, DataDirSource, type LogSource } from './sources.js';
import { verifyLog, type VerifyReport } from './verifier.js';
import { TrustStore } from './trust.js';
import { Keyring } from '../crypto/keyring.js';
import { dataDirDbKey, openEncrypted } from '../storage/sqlite.js';
import { logLocation } from '../server/read.js';
import { ProgressBar } from './progress.js';

export interface ClientFlags {
  url?: string;
  token?: string;
  json?: boolean;
}

export function print(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : human() + '\n');
}

// ---- tokens --------------------------------------------------------------------------

/** The X-Custody-TOTP header (docs/ADMIN.md) from --totp or $CUSTODY_TOTP. */
function totpHeader(o: { totp?: string }): Record<string, string> {
  const code = (o.totp ?? process.env.CUSTODY_TOTP ?? '').trim();
  return code ? { 'x-custody-totp': code } : {};
}

export async function tokenCreate(o: ClientFlags & { data?: string; role: string; name: string; logs?: string; totp?: string }): Promise<void> {
  const logs = o.logs ? o.logs.split(',').map((s) => s.trim()).filter(Boolean) : null;
  let result: { principal: unknown; token: string };
  if (o.data) {
    const dataDir = resolve(o.data);
    readConfig(dataDir);
    const db = VaultDb.inDataDir(dataDir);
    try {
      // Two-person rule (docs/ADMIN.md): the data directory is no way around it once it applies.
      if (o.role === 'admin' && db.listPrincipals().filter((p) => p.role === 'admin' && !p.revokedAt).length >= 2) {
        throw new CustodyError('FORBIDDEN', `This vault has two admins or more, so a new admin needs a second admin's approval; use the two-person approval: custody admin request admin.add --param name=${o.name} --totp <code>, then another admin runs custody admin approve <id> --totp <code>.`);
      }
      const regionLogs = db.listLogs().filter((l) => l.kind === 'region').map((l) => l.name);
      const created = createPrincipal(db, { name: o.name, role: o.role as Role, logs, createdBy: 'custody token create --data' }, regionLogs);
      const p = created.principal;
      db.addPendingAudit({ type: 'admin.principal.created', offline: true, target: { id: p.id, name: p.name, role: p.role, logs: p.logs }, principal: null, via: 'custody token create --data' });
      result = created;
    } finally {
      db.close();
    }
  } else {
    const c = new CustodyClient(o);
    c.requireToken();
    const res = await c.request('POST', '/v1/principals', { body: JSON.stringify({ name: o.name, role: o.role, ...(logs ? { logs } : {}) }), headers: { 'content-type': 'application/json', ...totpHeader(o) } });
    const answer = (await res.json()) as { principal: unknown; token: string } | { approval: { id: string; description: string; expiresAt: string } };
    if ('approval' in answer) {
      const a = answer.approval;
      print(o.json, answer, () => `Adding an admin needs a second admin. Requested ${a.id}: ${a.description}\nIt takes effect when a different admin approves it before ${a.expiresAt}:\n  custody admin approve ${a.id} --totp <code>`);
      return;
    }
    result = answer;
  }
  print(o.json, result, () => `Created ${o.role} "${o.name}". Its token (shown only now):\n${result.token}`);
}

export async function tokenList(o: ClientFlags & { data?: string }): Promise<void> {
  let principals: Array<{ id: string; name: string; role: string; logs: string[] | null; createdAt: string; revokedAt: string | null }>;
  if (o.data) {
    const db = VaultDb.inDataDir(resolve(o.data));
    try {
      principals = db.listPrincipals();
    } finally {
      db.close();
    }
  } else {
    const c = new CustodyClient(o);
    c.requireToken();
    principals = (await c.json<{ principals: typeof principals }>('GET', '/v1/principals')).principals;
  }
  print(o.json, { principals }, () =>
    principals
      .map((p) => `${p.id}  ${p.role.padEnd(7)}  ${p.name.padEnd(24)}  ${p.revokedAt ? `revoked ${p.revokedAt}` : `active since ${p.createdAt}`}${p.logs ? `  logs: ${p.logs.join(',')}` : ''}`)
      .join('\n') || 'No principals.',
  );
}

export async function tokenRevoke(id: string, o: ClientFlags & { data?: string; totp?: string }): Promise<void> {
  let principal: { id: string; name: string; revokedAt: string | null };
  if (o.data) {
    const db = VaultDb.inDataDir(resolve(o.data));
    try {
      principal = db.revokePrincipal(id, 'custody token revoke --data');
      db.addPendingAudit({ type: 'admin.principal.revoked', offline: true, target: { id: principal.id, name: principal.name }, principal: null, via: 'custody token revoke --data' });
    } finally {
      db.close();
    }
  } else {
    const c = new CustodyClient(o);
    c.requireToken();
    const res = await c.request('POST', `/v1/principals/${encodeURIComponent(id)}/revoke`, { body: '{}', headers: { 'content-type': 'application/json', ...totpHeader(o) } });
    principal = ((await res.json()) as { principal: typeof principal }).principal;
  }
  print(o.json, { principal }, () => `Revoked ${principal.name} (${principal.id}) at ${principal.revokedAt}.`);
}

// ---- logs ----------------------------------------------------------------------------

function sourceOf(o: ClientFlags & { data?: string }): LogSource {
  if (o.data) return new DataDirSource(resolve(o.data));
  const c = new CustodyClient(o);
  c.requireToken();
  return new HttpSource(c);
}

/** A log as `custody logs` shows it: GET /v1/logs, or the same read from a data directory. */
interface LogDescription {
  name: string;
  origin: string;
  region?: string;
  kind?: string;
  verifierKey: string;
  size?: number;
  storage?: { kind?: string; path?: string; bucket?: string; prefix?: string };
  key?: { provider?: string; kekId?: number; keyArn?: string; region?: string; problem?: string };
  [more: string]: unknown;
}

/** The logs of a data directory with where each lives (offline; stop the server or not, it only reads). */
async function describeDataDir(dataDir: string): Promise<LogDescription[]> {
  const src = new DataDirSource(dataDir);
  try {
    const keyring = Keyring.load(join(dataDir, 'keyring.json'));
    const db = openEncrypted(join(dataDir, 'custody.db'), dataDirDbKey(keyring, dataDir, 'custody'), { what: 'the vault database', readonly: true });
    let rows: Array<{ name: string; region: string; kind: string }>;
    try {
      rows = db.prepare('SELECT name, region, kind FROM logs').all() as typeof rows;
    } finally {
      db.close();
    }
    const out: LogDescription[] = [];
    for (const info of await src.listLogs()) {
      const row = rows.find((r) => r.name === info.name);
      let size: number | undefined;
      try {
        size = Number((await src.checkpoint(info.name)).split('\n')[1]);
      } catch {
        size = undefined;
      }
      out.push({ ...info, region: row?.region, kind: row?.kind, size, ...logLocation(dataDir, join(dataDir, 'logs', info.name), () => keyring.forLog(info.name)) });
    }
    return out;
  } finally {
    src.close();
  }
}

/** The KEY column: provider, KMS key and the active key id. */
function keyText(k: LogDescription['key']): string {
  if (!k) return '-';
  if (k.problem) return `${k.provider ?? '?'} (${k.problem.slice(0, 60)})`;
  return [k.provider ?? '?', k.keyArn, k.kekId !== undefined ? `kek ${k.kekId}` : undefined].filter(Boolean).join(' ');
}

export async function logsList(o: ClientFlags & { data?: string }): Promise<void> {
  let logs: LogDescription[];
  if (o.data) logs = await describeDataDir(resolve(o.data));
  else {
    const c = new CustodyClient(o);
    c.requireToken();
    logs = (await c.json<{ logs: LogDescription[] }>('GET', '/v1/logs')).logs;
  }
  print(o.json, { logs }, () => {
    const head = ['NAME', 'REGION', 'KIND', 'ENTRIES', 'STORAGE', 'KEY', 'VERIFIER KEY'];
    const body = logs.map((l) => [l.name, l.region ?? '-', l.kind ?? '-', l.size === undefined ? '-' : String(l.size), l.storage?.path ? `${l.storage.kind ?? ''} ${l.storage.path}`.trim() : l.storage?.bucket ? `s3 ${l.storage.bucket}/${l.storage.prefix ?? ''}` : '-', keyText(l.key), l.verifierKey]);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
    return [head, ...body].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
  });
}

// ---- append --------------------------------------------------------------------------

/** Non-blank input lines with where they came from (file and line number). */
async function* lines(files: string[]): AsyncGenerator<{ line: string; where: string }> {
  const inputs: Array<[string, () => Readable]> = files.length === 0 ? [['stdin', () => process.stdin]] : files.map((f) => [f, () => {
    const s = createReadStream(f);
    return f.endsWith('.gz') ? s.pipe(createGunzip()) : s;
  }]);
  for (const [name, open] of inputs) {
    const rl = createInterface({ input: open(), crlfDelay: Infinity });
    let n = 0;
    for await (const line of rl) {
      n++;
      if (line.trim() !== '') yield { line, where: `${name}:${n}` };
    }
  }
}

export async function append(files: string[], o: ClientFlags & { log: string; source?: string; wait?: boolean; batch: number; receipts?: string; text?: boolean }): Promise<boolean> {
  const c = new CustodyClient(o);
  c.requireToken();
  const query = new URLSearchParams();
  if (o.source) query.set('source', o.source);
  if (o.wait) query.set('wait', 'checkpoint');
  const path = `/v1/logs/${encodeURIComponent(o.log)}/entries${query.size ? '?' + query : ''}`;
  let batch: string[] = [];
  let origins: string[] = [];
  let bytes = 0;
  let sent = 0;
  let first: number | null = null;
  let last: number | null = null;
  const receipts: unknown[] = [];
  let duplicates = 0;
  const refused: Array<{ where: string; code: string; error: string }> = [];
  const bar = new ProgressBar('append', 0, !o.json);
  const post = async (): Promise<void> => {
    if (batch.length === 0) return;
    let res: Response;
    try {
      res = await c.request('POST', path, { body: batch.join('\n') + '\n', headers: { 'content-type': o.text ? 'text/plain' : 'application/x-ndjson' } });
    } catch (e) {
      // Name the input lines, not the lines of the batch the server saw.
      const bad = e instanceof ApiError ? (e.details as { lines?: Array<{ line: number; error: string }> } | undefined)?.lines : undefined;
      if (e instanceof ApiError && bad) {
        const mapped = bad.map((l) => ({ ...l, where: origins[l.line - 1] }));
        throw new ApiError(e.status, e.code, `${e.message} Bad input lines: ${mapped.map((l) => `${l.where} (${l.error})`).join('; ')}.${sent > 0 ? ` The ${sent} records before this batch were appended.` : ''}`);
      }
      throw e;
    }
    const r = (await res.json()) as { first: number | null; count: number; indices: number[]; duplicates?: number; errors?: Array<{ line: number; code: string; error: string }>; checkpoint?: string; receipts?: unknown[]; envelope?: unknown };
    if (r.indices.length > 0) {
      first ??= r.first;
      last = r.indices[r.indices.length - 1]!;
    }
    sent += r.count;
    duplicates += r.duplicates ?? 0;
    for (const e of r.errors ?? []) refused.push({ where: origins[e.line - 1] ?? `line ${e.line}`, code: e.code, error: e.error });
    if (r.receipts) receipts.push({ checkpoint: r.checkpoint, envelope: r.envelope, receipts: r.receipts });
    bar.setTotal(sent);
    bar.update(sent);
    batch = [];
    origins = [];
    bytes = 0;
  };
  for await (const { line, where } of lines(files)) {
    batch.push(line);
    origins.push(where);
    bytes += Buffer.byteLength(line) + 1;
    if (batch.length >= o.batch || bytes >= 8 * 1024 * 1024) await post();
  }
  await post();
  bar.done();
  if (o.receipts && receipts.length > 0) writeFileSync(o.receipts, JSON.stringify(receipts, null, 2) + '\n');
  print(o.json, { log: o.log, count: sent, first, last, duplicates, rejected: refused.length, errors: refused.slice(0, 100), ...(o.receipts ? { receipts: o.receipts } : {}) }, () =>
    [
      sent === 0 ? 'Nothing was appended.' : `Appended ${sent} records (first ${first}, last ${last} in ${o.log}, unless their region sent them to another log); each was durable before it was acknowledged.`,
      ...(duplicates > 0 ? [`${duplicates} records were already stored and were not stored again.`] : []),
      ...(refused.length > 0 ? [`${refused.length} records were refused:`, ...refused.slice(0, 20).map((r) => `  ${r.where}: ${r.error} [${r.code}]`), ...(refused.length > 20 ? [`  … and ${refused.length - 20} more (use --json to see up to 100).`] : [])] : []),
    ].join('\n'),
  );
  return refused.length === 0;
}

// ---- verify --------------------------------------------------------------------------

/** "N entries shredded by approved purge #id" lines of a verify report (docs/RETENTION.md). */
function shreddedText(r: VerifyReport): string {
  return (r.shredded ?? []).map((x) => `\n      ${x.message}.`).join('');
}

export async function verify(o: ClientFlags & { data?: string; log?: string; key?: string; full?: boolean; trustFile?: string; hashesOnly?: boolean; witness?: string[]; witnessPolicy?: number }): Promise<boolean> {
  const witnessKeys = checkWitnessFlags(o.witness, o.witnessPolicy);
  const src = sourceOf(o);
  const trust = new TrustStore(o.trustFile);
  const logs = (await src.listLogs()).filter((l) => !o.log || l.name === o.log);
  if (logs.length === 0) throw new CustodyError('LOG_NOT_FOUND', `There is no log "${o.log}" at ${src.description}.`);
  if (o.key && logs.length > 1) throw new CustodyError('BAD_REQUEST', '--key pins one log\'s key: give --log too.');
  const reports: VerifyReport[] = [];
  const reported: string[] = [];
  for (const info of logs) {
    const bar = new ProgressBar(`verify ${info.name}`, 0, !o.json);
    const trustedBefore = trust.get(info.origin);
    const r = await verifyLog(src, info, {
      trust,
      key: o.key,
      full: o.full,
      hash: nativeSha256,
      hashesOnly: !!o.hashesOnly,
      ...witnessKeys,
      onProgress: (d, t) => {
        bar.setTotal(t);
        bar.update(d);
      },
    });
    bar.done();
    reports.push(r);
    // A log that disagrees with what this auditor verified before is reported to the vault,
    // which records it as an alarm in its audit log (the auditor is the witness here).
    const breach = r.problems.find((p) => TRUST_BREACHES.has(p.kind));
    if (breach && trustedBefore && src instanceof HttpSource) {
      const ok = await src.client
        .json('POST', '/v1/trust/report', {
          log: info.name,
          reason: breach.kind,
          trusted: { size: trustedBefore.size, root: trustedBefore.rootHash },
          seen: { size: r.size, root: r.rootHash ?? trustedBefore.rootHash },
          trustedKey: trustedBefore.verifierKey,
          seenKey: info.verifierKey,
          message: breach.message,
          client: 'custody-cli',
        })
        .then(() => true)
        .catch(() => false);
      reported.push(ok ? `${info.name}: reported to the vault as an alarm (it is in the audit log).` : `${info.name}: could not report this to the vault; tell its operators and your team yourself.`);
    }
  }
  src.close();
  const ok = reports.every((r) => r.ok);
  const hashesNote = o.hashesOnly ? ['Hashes only: entry bundles were NOT read (signatures, tiles, root and consistency were checked); the trusted checkpoint was not updated. Run without --hashes-only to check the entries.'] : [];
  print(o.json, { ok, source: src.description, trustFile: trust.path, ...(o.hashesOnly ? { hashesOnly: true, entriesRead: false } : {}), logs: reports, reported }, () =>
    reports
      .map((r) =>
        r.ok && r.hashesOnly
          ? `OK    ${r.log}: ${r.size} entries, root ${r.rootHash}; ${r.entriesChecked} leaf hashes and ${r.tilesChecked} tiles checked from the stored tiles (entries not read) in ${r.seconds.toFixed(1)} s.${shreddedText(r)}`
          : r.ok
          ? `OK    ${r.log}: ${r.size} entries, root ${r.rootHash}; ${r.entriesChecked} entries and ${r.tilesChecked} tiles recomputed${r.resumedFrom > 0 ? ` (resumed from the trusted checkpoint at ${r.resumedFrom})` : ''} in ${r.seconds.toFixed(1)} s.${shreddedText(r)}`
          : [`FAIL  ${r.log}: ${r.problems.length} problem(s):`, ...r.problems.map((p) => `  - [${p.kind}] ${p.where}: ${p.message}`), '  The trusted checkpoint was not updated.'].join('\n') + shreddedText(r),
      )
      .concat(reported, hashesNote, cosignerLines(reports))
      .join('\n'),
  );
  return ok;
}

/** --witness keys must be witness keys (type 0x04), and the policy at most their number. */
function checkWitnessFlags(keys: string[] | undefined, policy: number | undefined): { witnesses?: string[]; witnessPolicy?: number } {
  if (!keys || keys.length === 0) {
    if (policy) throw new CustodyError('BAD_REQUEST', '--witness-policy needs the witnesses\' keys: pass --witness <vkey> (repeatable).');
    return {};
  }
  for (const k of keys) {
    let v;
    try {
      v = parseVerifierKey(k);
    } catch (e) {
      throw new CustodyError('BAD_REQUEST', `--witness ${k}: ${(e as Error).message}`);
    }
    if (v.type !== KEY_TYPE_COSIGNATURE) throw new CustodyError('BAD_REQUEST', `--witness ${k} is not a witness key (cosignature/v1, type 0x04).`);
  }
  const k = policy ?? keys.length;
  if (k > keys.length) throw new CustodyError('BAD_REQUEST', `--witness-policy ${k} is more than the ${keys.length} witness keys given.`);
  return { witnesses: keys, witnessPolicy: k };
}

/** "cosigned by" lines of verify reports checked against witness keys. */
function cosignerLines(reports: VerifyReport[]): string[] {
  return reports
    .filter((r) => r.cosigners)
    .map((r) => `      ${r.log}: cosigned by ${r.cosigners!.filter((c) => c.status === 'signed').map((c) => c.name).join(', ') || 'no witness you trust'}${r.cosigners!.some((c) => c.status !== 'signed') ? `; not by ${r.cosigners!.filter((c) => c.status !== 'signed').map((c) => `${c.name} (${c.status})`).join(', ')}` : ''}`);
}

/** Problems that mean the log's history changed under a checkpoint this auditor verified. */
const TRUST_BREACHES = new Set(['KEY_CHANGED', 'ROLLBACK', 'NOT_A_PREFIX']);

// ---- proofs --------------------------------------------------------------------------

interface EntryAnswer {
  log: string;
  index: number;
  treeSize: number;
  leafHash: string;
  entry: string;
  record: string;
  recordEncoding: string;
  envelope: Record<string, unknown>;
  checkpoint: string;
  proofFile: string;
}

export async function proofGet(log: string, index: string, o: ClientFlags & { out?: string; key?: string; trustFile?: string }): Promise<void> {
  const c = new CustodyClient(o);
  c.requireToken();
  const a = await c.json<EntryAnswer>('GET', `/v1/logs/${encodeURIComponent(log)}/entries/${encodeURIComponent(index)}`);
  const logs = (await c.json<{ logs: Array<{ name: string; origin: string; verifierKey: string }> }>('GET', '/v1/logs')).logs;
  const info = logs.find((l) => l.name === log)!;
  const trusted = new TrustStore(o.trustFile).get(info.origin);
  const key = o.key ?? trusted?.verifierKey ?? info.verifierKey;
  const entry = Buffer.from(a.entry, 'base64');
  const res = verifyProofFile(a.proofFile, hashLeaf(entry, nativeSha256), parseVerifierKey(key));
  const out = resolve(o.out ?? '.');
  mkdirSync(out, { recursive: true });
  const base = join(out, `${log}-${a.index}`);
  writeFileSync(`${base}.entry`, entry);
  writeFileSync(`${base}.tlog-proof`, a.proofFile);
  print(o.json, { log, index: a.index, treeSize: res.checkpoint.size, verified: true, entryFile: `${base}.entry`, proofFile: `${base}.tlog-proof`, verifierKey: key, envelope: a.envelope }, () =>
    [
      `Entry ${a.index} of ${log} is included in the signed checkpoint of size ${res.checkpoint.size} (verified with ${key}).`,
      `Wrote ${base}.entry (the entry exactly as logged) and ${base}.tlog-proof (C2SP tlog-proof).`,
      `Anyone can check them offline: custody proof verify ${base}.tlog-proof --entry ${base}.entry --key '${key}'`,
    ].join('\n'),
  );
}

export async function proofVerify(file: string, o: { entry: string; key: string; json?: boolean }): Promise<void> {
  const text = readFileSync(file, 'utf8');
  const entry = readFileSync(o.entry);
  const r = verifyProofFile(text, hashLeaf(entry, nativeSha256), parseVerifierKey(o.key));
  print(o.json, { verified: true, index: r.index, origin: r.checkpoint.origin, treeSize: r.checkpoint.size, rootHash: toBase64(r.checkpoint.rootHash) }, () =>
    `OK: the entry is number ${r.index} of ${r.checkpoint.origin}, included in its signed checkpoint of size ${r.checkpoint.size}.`,
  );
}

export async function proofConsistency(log: string, o: ClientFlags & { from: string; to?: string; key?: string; trustFile?: string }): Promise<void> {
  const c = new CustodyClient(o);
  c.requireToken();
  const q = new URLSearchParams({ from: o.from, ...(o.to ? { to: o.to } : {}) });
  const a = await c.json<{ from: number; to: number; fromRoot: string; toRoot: string; proof: string[]; checkpoint?: string }>('GET', `/v1/logs/${encodeURIComponent(log)}/proofs/consistency?${q}`);
  const info = (await c.json<{ logs: Array<{ name: string; origin: string; verifierKey: string }> }>('GET', '/v1/logs')).logs.find((l) => l.name === log)!;
  const key = o.key ?? new TrustStore(o.trustFile).get(info.origin)?.verifierKey ?? info.verifierKey;
  const proof = a.proof.map((p) => fromBase64(p, 32));
  verifyConsistency(a.from, a.to, proof, fromBase64(a.fromRoot, 32), fromBase64(a.toRoot, 32), nativeSha256);
  let signed = false;
  if (a.checkpoint) {
    const cp = openCheckpoint(a.checkpoint, parseVerifierKey(key)).checkpoint;
    signed = cp.size === a.to && toBase64(cp.rootHash) === a.toRoot;
    if (!signed) throw new CustodyError('VERIFY_FAILED', 'The consistency proof does not end at the signed checkpoint.');
  }
  print(o.json, { ...a, verified: true, signedCheckpoint: signed }, () =>
    `OK: the tree of size ${a.from} (root ${a.fromRoot}) is a prefix of the tree of size ${a.to} (root ${a.toRoot})${signed ? ', which is the signed checkpoint' : ''}.`,
  );
}
