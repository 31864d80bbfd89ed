/**
 * The vault's side of witnessing (docs/WITNESS.md): after the integrator produced a new signed
 * checkpoint, the sequencer's publish step asks every configured witness to cosign it (C2SP
 * tlog-witness add-checkpoint, in parallel, with a timeout) and publishes the checkpoint only
 * when at least `policy` witnesses returned a valid cosignature (cosignature/v1, checked
 * against each witness's key). The cosignature lines are appended to the checkpoint note.
 *
 * Per log and witness it remembers the size the witness last cosigned; a 409 answer carries
 * the witness's size (text/x.tlog.size), and the request is retried once with a proof from it.
 * A witness that is down, refuses or disagrees raises a "witness" alarm once per incident (an
 * incident ends with the witness's next cosignature), never once per attempt.
 */
import {
  addCosignatures,
  parseSignatureLines,
  parseTlogSize,
  parseVerifierKey,
  toBase64,
  verifyCosignature,
  KEY_TYPE_COSIGNATURE,
  type NoteSignature,
  type NoteVerifier,
} from '@custody/verify';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { CustodyError } from '../errors.js';
import type { AlarmInput, AlarmSink, Severity } from '../alarms/types.js';

export interface WitnessSpec {
  /** A label for messages and alarms (default: the key's name). */
  name: string;
  /** Base URL; the request goes to <url>/add-checkpoint. */
  url: string;
  /** The witness's cosignature/v1 verifier key (type 0x04). */
  vkey: string;
}

/** Parses "<name>=<url>=<vkey>" (or "<url>=<vkey>"); a vkey never holds "=". CONFIG on error. */
export function parseWitnessArg(arg: string): WitnessSpec {
  const last = arg.lastIndexOf('=');
  if (last < 0) throw new CustodyError('CONFIG', `--witness "${arg}": expected <name>=<url>=<vkey>.`);
  const vkey = arg.slice(last + 1).trim();
  const head = arg.slice(0, last);
  const first = head.indexOf('=');
  const hasName = first >= 0 && !/^[a-z]+:\/\//i.test(head);
  const name = hasName ? head.slice(0, first).trim() : '';
  const url = (hasName ? head.slice(first + 1) : head).trim();
  let v: NoteVerifier;
  try {
    v = parseVerifierKey(vkey);
  } catch (e) {
    throw new CustodyError('CONFIG', `--witness "${name || url}": the key is not a verifier key (${(e as Error).message}). Use the key \`custody witness init\` printed.`);
  }
  if (v.type !== KEY_TYPE_COSIGNATURE) throw new CustodyError('CONFIG', `--witness "${name || url}": ${v.name} is not a witness key (cosignature/v1, type 0x04); a log key cannot cosign.`);
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new CustodyError('CONFIG', `--witness "${name || v.name}": "${url}" is not an http(s) URL.`);
  }
  return { name: name || v.name, url: url.replace(/\/+$/, ''), vkey };
}

/** Parses a witnesses file: one "<name>=<url>=<vkey>" per line, # comments. */
export function parseWitnessesFile(text: string): WitnessSpec[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map(parseWitnessArg);
}

/** The URL without user or password, for messages and alarms (no secrets in log lines). */
function shown(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = '***';
      u.password = '';
    }
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(invalid URL)';
  }
}

export interface AddCheckpointResult {
  status: number;
  body: string;
  contentType: string;
}

/** POST <url>/add-checkpoint (tlog-witness); rejects on network errors and timeouts. */
export async function postAddCheckpoint(url: string, old: number, proof: Uint8Array[], checkpoint: string, timeoutMs: number): Promise<AddCheckpointResult> {
  const body = `old ${old}\n${proof.map((h) => toBase64(h) + '\n').join('')}\n${checkpoint}`;
  const res = await fetch(`${url}/add-checkpoint`, { method: 'POST', body, headers: { 'content-type': 'text/plain; charset=utf-8' }, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  const b = await res.text();
  return { status: res.status, body: b.slice(0, 64 * 1024), contentType: res.headers.get('content-type') ?? '' };
}

export type WitnessOutcome =
  | { witness: string; ok: true; signature: NoteSignature; size: number }
  | { witness: string; ok: false; kind: IncidentKind; status?: number; message: string };

/** down: no answer; refused: 400/403/404; disagreement: 422, a larger tree, a bad cosignature. */
export type IncidentKind = 'down' | 'refused' | 'disagreement';

interface Peer {
  spec: WitnessSpec;
  verifier: NoteVerifier;
  /** per log: the size this witness last cosigned (as far as we know) */
  sizes: Map<string, number>;
  /** open incidents: "<kind>" (witness-wide) or "<kind>|<log>" */
  incidents: Set<string>;
}

export interface CosignRequest {
  log: string;
  origin: string;
  size: number;
  /** The log-signed checkpoint note. */
  text: string;
  /** The size of the log's last published checkpoint (a first guess of what witnesses hold). */
  publishedSize: number;
  /** A consistency proof from `from` to `size`, from the log's tiles. */
  prove(from: number): Uint8Array[];
}

export interface CosignResult {
  /** The checkpoint with the cosignature lines appended, when the policy is met; else null. */
  text: string | null;
  cosigned: number;
  policy: number;
  outcomes: WitnessOutcome[];
}

export interface WitnessSetOptions {
  policy?: number;
  timeoutMs?: number;
  logger?: Logger;
}

export class WitnessSet {
  readonly policy: number;
  readonly timeoutMs: number;
  private readonly peers: Peer[];
  private alarms: AlarmSink | undefined;
  private readonly log: Logger | undefined;

  constructor(specs: WitnessSpec[], opts: WitnessSetOptions = {}) {
    if (specs.length === 0) throw new CustodyError('CONFIG', 'A witness policy needs at least one witness (--witness).');
    const names = new Set<string>();
    this.peers = specs.map((s) => {
      if (names.has(s.name)) throw new CustodyError('CONFIG', `Two witnesses are named "${s.name}"; give each its own name.`);
      names.add(s.name);
      return { spec: s, verifier: parseVerifierKey(s.vkey), sizes: new Map(), incidents: new Set() };
    });
    const keys = new Set(this.peers.map((p) => toBase64(p.verifier.publicKey)));
    this.policy = opts.policy ?? specs.length;
    if (!Number.isInteger(this.policy) || this.policy < 1 || this.policy > keys.size) {
      throw new CustodyError('CONFIG', `--witness-policy ${this.policy} must be from 1 to the number of distinct witness keys (${keys.size}).`);
    }
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.log = opts.logger;
  }

  get witnesses(): WitnessSpec[] {
    return this.peers.map((p) => p.spec);
  }

  /** Where alarms go (the vault's alarm center); set once the vault is open. */
  useAlarms(sink: AlarmSink): void {
    this.alarms = sink;
  }

  /** Asks every witness in parallel; resolves with the cosigned text when the policy is met. */
  async cosign(r: CosignRequest): Promise<CosignResult> {
    const outcomes = await Promise.all(this.peers.map((p) => this.ask(p, r)));
    const good = outcomes.filter((o): o is Extract<WitnessOutcome, { ok: true }> => o.ok);
    const distinct = new Set(good.map((o) => toBase64(this.peers.find((p) => p.spec.name === o.witness)!.verifier.publicKey)));
    const met = distinct.size >= this.policy;
    return { text: met ? addCosignatures(r.text, good.map((o) => o.signature)) : null, cosigned: distinct.size, policy: this.policy, outcomes };
  }

  private async ask(p: Peer, r: CosignRequest): Promise<WitnessOutcome> {
    const known = p.sizes.get(r.log);
    let old = known ?? r.publishedSize;
    if (old > r.size) old = 0; // we do not know better: the 409 tells us
    let outcome: WitnessOutcome | undefined;
    for (let attempt = 0; attempt < 2 && !outcome; attempt++) {
      let res: AddCheckpointResult;
      try {
        const proof = old > 0 && old < r.size ? r.prove(old) : [];
        res = await postAddCheckpoint(p.spec.url, old, proof, r.text, this.timeoutMs);
      } catch (e) {
        const why = (e as Error)?.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : `cannot reach it (${(e as { cause?: { code?: string } })?.cause?.code ?? (e as Error)?.message ?? e})`;
        outcome = { witness: p.spec.name, ok: false, kind: 'down', message: `witness ${p.spec.name} at ${shown(p.spec.url)}: ${why}` };
        break;
      }
      if (res.status === 200) {
        outcome = this.checkCosignature(p, r, res.body);
      } else if (res.status === 409 && attempt === 0) {
        let theirs: number;
        try {
          theirs = parseTlogSize(res.body);
        } catch {
          outcome = { witness: p.spec.name, ok: false, kind: 'refused', status: 409, message: `witness ${p.spec.name} answered 409 without a tree size` };
          break;
        }
        p.sizes.set(r.log, theirs);
        if (theirs > r.size) {
          outcome = { witness: p.spec.name, ok: false, kind: 'disagreement', status: 409, message: `witness ${p.spec.name} has already cosigned ${theirs} entries of log "${r.log}", more than the ${r.size} the vault has now: the log was rolled back, or it is catching up after a restart` };
          break;
        }
        old = theirs;
      } else {
        outcome = this.refusal(p, r, res);
      }
    }
    outcome ??= { witness: p.spec.name, ok: false, kind: 'refused', status: 409, message: `witness ${p.spec.name} answered 409 twice for log "${r.log}"` };
    this.track(p, r, outcome);
    return outcome;
  }

  private checkCosignature(p: Peer, r: CosignRequest, body: string): WitnessOutcome {
    const noteBody = r.text.slice(0, r.text.indexOf('\n\n') + 1);
    let sigs: NoteSignature[];
    try {
      sigs = parseSignatureLines(body);
    } catch (e) {
      return { witness: p.spec.name, ok: false, kind: 'disagreement', status: 200, message: `witness ${p.spec.name} answered 200 without a readable cosignature (${(e as Error).message})` };
    }
    const sig = sigs.find((s) => verifyCosignature(noteBody, s, p.verifier));
    if (!sig) {
      return { witness: p.spec.name, ok: false, kind: 'disagreement', status: 200, message: `witness ${p.spec.name} answered 200 but no cosignature verifies with its key ${p.spec.vkey}` };
    }
    p.sizes.set(r.log, r.size);
    return { witness: p.spec.name, ok: true, signature: sig, size: r.size };
  }

  private refusal(p: Peer, r: CosignRequest, res: AddCheckpointResult): WitnessOutcome {
    const said = res.body.trim().slice(0, 300);
    const n = p.spec.name;
    switch (res.status) {
      case 404:
        return { witness: n, ok: false, kind: 'refused', status: 404, message: `witness ${n} does not witness log "${r.log}" (origin ${r.origin}); on the witness run: custody witness add-log --origin '${r.origin}' --vkey <the log's key from custody logs>` };
      case 403:
        return { witness: n, ok: false, kind: 'refused', status: 403, message: `witness ${n} refused the checkpoint of log "${r.log}": it does not accept the log's signature (it trusts another key for ${r.origin})` };
      case 422:
        return { witness: n, ok: false, kind: 'disagreement', status: 422, message: `witness ${n} refused the checkpoint of log "${r.log}" at ${r.size} as inconsistent with what it cosigned before (${said}): someone may have shown it another history of this log` };
      case 400:
        return { witness: n, ok: false, kind: 'refused', status: 400, message: `witness ${n} refused the request for log "${r.log}" as malformed (${said})` };
      default:
        return { witness: n, ok: false, kind: 'down', status: res.status, message: `witness ${n} answered HTTP ${res.status} for log "${r.log}" (${said})` };
    }
  }

  /** Opens and closes incidents; an alarm only when one opens. */
  private track(p: Peer, r: CosignRequest, o: WitnessOutcome): void {
    if (o.ok) {
      const closed = [...p.incidents].filter((k) => k === 'down' || k.endsWith(`|${r.log}`));
      for (const k of closed) p.incidents.delete(k);
      if (closed.length > 0) this.log?.info({ witness: p.spec.name, log: r.log }, 'witness cosigns again');
      return;
    }
    const key = o.kind === 'down' ? 'down' : `${o.kind}|${r.log}`;
    this.log?.warn({ witness: p.spec.name, log: r.log, kind: o.kind, status: o.status }, o.message);
    if (p.incidents.has(key)) return;
    p.incidents.add(key);
    const severity: Severity = o.kind === 'disagreement' ? 'critical' : 'high';
    const alarm: AlarmInput = {
      kind: 'witness',
      rule: `witness.${o.kind}`,
      severity,
      title: o.kind === 'down' ? `Witness ${p.spec.name} is down: checkpoints wait for its cosignature` : o.kind === 'refused' ? `Witness ${p.spec.name} refused to cosign log "${r.log}"` : `Witness ${p.spec.name} disagrees with log "${r.log}"`,
      details: { witness: p.spec.name, url: shown(p.spec.url), vkey: p.spec.vkey, log: r.log, origin: r.origin, size: r.size, status: o.status ?? null, message: o.message, policy: this.policy },
      groupKey: `witness|${p.spec.name}|${key}`,
      log: r.log,
    };
    // Never awaited: the alarm goes to the audit log, which may itself wait for witnesses.
    void this.alarms?.raise(alarm).catch((e: unknown) => this.log?.error({ err: e }, 'could not raise the witness alarm'));
  }
}

/** The vault's witnesses from `custody serve --witness … --witnesses-file … --witness-policy k`. */
export function witnessSetFromFlags(o: { witness?: string[]; witnessesFile?: string; witnessPolicy?: number; witnessTimeout?: number }, logger?: Logger): WitnessSet | undefined {
  const specs: WitnessSpec[] = (o.witness ?? []).map(parseWitnessArg);
  if (o.witnessesFile) {
    let text: string;
    try {
      text = readFileSync(o.witnessesFile, 'utf8');
    } catch (e) {
      throw new CustodyError('CONFIG', `Cannot read --witnesses-file: ${(e as Error).message}.`);
    }
    specs.push(...parseWitnessesFile(text));
  }
  if (specs.length === 0) {
    if (o.witnessPolicy !== undefined && o.witnessPolicy > 0) throw new CustodyError('CONFIG', '--witness-policy needs witnesses: pass --witness <name>=<url>=<vkey> (repeatable) or --witnesses-file.');
    return undefined;
  }
  return new WitnessSet(specs, { policy: o.witnessPolicy, timeoutMs: o.witnessTimeout, logger });
}
