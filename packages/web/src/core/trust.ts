/**
 * Trust on first use, per log origin, in this browser (localStorage): the first time the UI
 * sees a log it pins the log's verifier key and the checkpoint it verified with it. On every
 * later visit it fetches the current checkpoint, checks its signature with the PINNED key and
 * proves with a consistency proof that the log only grew from the pinned checkpoint; only
 * then does it move the pin forward. Anything else — another key, a smaller log, another root
 * at the same size, a proof that does not check — means the log's history was rewritten or
 * forked: the pin is kept as evidence and the failure is loud.
 *
 * Pure decisions over an injected storage and proof fetcher (the same rules as the CLI's
 * trust store, packages/vault/src/cli/trust.ts and verifier.ts).
 */
import {
  fromBase64,
  toBase64,
  bytesEqual,
  openCheckpoint,
  parseCheckpoint,
  parseNote,
  parseVerifierKey,
  verifyConsistency,
  EMPTY_ROOT,
} from '@custody/verify';

export interface Pin {
  log: string;
  origin: string;
  verifierKey: string;
  size: number;
  /** base64 root hash of the pinned checkpoint */
  root: string;
  /** the signed checkpoint note, verbatim: the evidence if the log forks later */
  checkpoint: string;
  pinnedAt: string;
  verifiedAt: string;
}

/** The reasons POST /v1/trust/report accepts. */
export type FailureReason = 'KEY_CHANGED' | 'CHECKPOINT_INVALID' | 'ROLLBACK' | 'NOT_A_PREFIX' | 'CONSISTENCY_FAILED';

export interface TrustFailure {
  log: string;
  origin: string;
  reason: FailureReason;
  message: string;
  trusted: { size: number; root: string };
  seen: { size: number; root: string };
  trustedKey: string;
  seenKey: string;
  /** the checkpoint the vault presented, verbatim */
  seenCheckpoint: string;
}

export type TrustOutcome =
  | { status: 'pinned'; pin: Pin }
  | { status: 'unchanged'; pin: Pin }
  | { status: 'extended'; pin: Pin; from: number }
  | { status: 'older'; pin: Pin; size: number }
  | { status: 'failed'; pin: Pin | null; failure: TrustFailure };

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

const STORE_KEY = 'custody.trust.v1';
const REPORTED_KEY = 'custody.trust.reported.v1';

interface StoreFile {
  version: 1;
  pins: Record<string, Pin>;
}

export class TrustStore {
  constructor(private readonly kv: KeyValueStore) {}

  private read(): StoreFile {
    try {
      const raw = this.kv.getItem(STORE_KEY);
      if (raw) {
        const f = JSON.parse(raw) as StoreFile;
        if (f && f.version === 1 && typeof f.pins === 'object' && f.pins !== null) return f;
      }
    } catch {
      /* damaged: start anew below, loudly at the caller's choice */
    }
    return { version: 1, pins: {} };
  }

  get(origin: string): Pin | undefined {
    const pins = this.read().pins;
    return Object.hasOwn(pins, origin) ? pins[origin] : undefined;
  }

  all(): Pin[] {
    return Object.values(this.read().pins);
  }

  set(pin: Pin): void {
    const f = this.read();
    f.pins[pin.origin] = pin;
    this.kv.setItem(STORE_KEY, JSON.stringify(f));
  }

  forget(origin: string): void {
    const f = this.read();
    delete f.pins[origin];
    this.kv.setItem(STORE_KEY, JSON.stringify(f));
  }

  private reported(): string[] {
    try {
      const seen = JSON.parse(this.kv.getItem(REPORTED_KEY) ?? '[]') as unknown;
      return Array.isArray(seen) ? (seen as string[]) : [];
    } catch {
      return [];
    }
  }

  /** Whether this failure was already reported from this browser (it is reported once, not on every visit). */
  wasReported(f: TrustFailure): boolean {
    return this.reported().includes(reportKey(f));
  }

  markReported(f: TrustFailure): void {
    const seen = this.reported();
    if (!seen.includes(reportKey(f))) seen.push(reportKey(f));
    this.kv.setItem(REPORTED_KEY, JSON.stringify(seen.slice(-200)));
  }
}

function reportKey(f: TrustFailure): string {
  return `${f.origin}|${f.reason}|${f.trusted.size}|${f.trusted.root}|${f.seen.size}|${f.seen.root}`;
}

/** What a checkpoint claims, read WITHOUT checking its signature (for failure reports only). */
function claimed(text: string): { size: number; root: string } {
  try {
    const cp = parseCheckpoint(parseNote(text).body);
    return { size: cp.size, root: toBase64(cp.rootHash) };
  } catch {
    return { size: 0, root: toBase64(EMPTY_ROOT) };
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export interface LogIdentity {
  name: string;
  origin: string;
  /** the key the vault presents now (GET /v1/logs) */
  verifierKey: string;
}

export interface CheckOptions {
  /** GET /v1/logs/<log>/proofs/consistency?from=&to= → the proof hashes (base64). */
  consistency(from: number, to: number): Promise<string[]>;
  now: string;
  /**
   * The checkpoint came with an entry rather than from /logs/<log>/checkpoint: one smaller than
   * the pin is then an older view, fine when it is a prefix of the pin (proven the other way).
   */
  allowOlder?: boolean;
}

/**
 * Checks `checkpointText` (as the vault served it now) against this browser's pin for the log
 * and moves the pin forward when it is a proven extension. Network failures of the proof
 * fetch are thrown (they prove nothing either way); broken promises become 'failed'.
 */
export async function checkLog(store: TrustStore, log: LogIdentity, checkpointText: string, opts: CheckOptions): Promise<TrustOutcome> {
  const pin = store.get(log.origin);
  const seen = claimed(checkpointText);
  const fail = (reason: FailureReason, msg: string, p: Pin | null): TrustOutcome => ({
    status: 'failed',
    pin: p,
    failure: {
      log: log.name,
      origin: log.origin,
      reason,
      message: msg,
      trusted: p ? { size: p.size, root: p.root } : { size: 0, root: toBase64(EMPTY_ROOT) },
      seen,
      trustedKey: p?.verifierKey ?? log.verifierKey,
      seenKey: log.verifierKey,
      seenCheckpoint: checkpointText,
    },
  });

  if (!pin) {
    // First use: the vault's key is taken on trust, but the checkpoint must verify with it.
    try {
      const { checkpoint } = openCheckpoint(checkpointText, parseVerifierKey(log.verifierKey));
      const p: Pin = {
        log: log.name,
        origin: log.origin,
        verifierKey: log.verifierKey,
        size: checkpoint.size,
        root: toBase64(checkpoint.rootHash),
        checkpoint: checkpointText,
        pinnedAt: opts.now,
        verifiedAt: opts.now,
      };
      store.set(p);
      return { status: 'pinned', pin: p };
    } catch (e) {
      return fail('CHECKPOINT_INVALID', `The checkpoint of log ${log.name} does not verify with the key the vault presents (${log.verifierKey}): ${message(e)}. Nothing was pinned.`, null);
    }
  }

  if (pin.verifierKey !== log.verifierKey) {
    return fail('KEY_CHANGED', `Log ${log.name} now presents verifier key ${log.verifierKey}, but this browser pinned ${pin.verifierKey} on ${pin.pinnedAt}. Someone replaced the log's signing key: do not trust this log until its operator explains.`, pin);
  }
  let size: number;
  let root: Uint8Array;
  try {
    const { checkpoint } = openCheckpoint(checkpointText, parseVerifierKey(pin.verifierKey));
    size = checkpoint.size;
    root = checkpoint.rootHash;
  } catch (e) {
    return fail('CHECKPOINT_INVALID', `The checkpoint the vault serves for log ${log.name} does not verify with the pinned key: ${message(e)}. It was altered or signed by another key.`, pin);
  }
  const pinnedRoot = fromBase64(pin.root, 32);

  if (size === pin.size) {
    if (!bytesEqual(root, pinnedRoot)) {
      return fail('NOT_A_PREFIX', `Log ${log.name} shows a different root at size ${size} than the checkpoint this browser verified on ${pin.verifiedAt}: the log was forked or its history rewritten.`, pin);
    }
    return { status: 'unchanged', pin };
  }

  if (size < pin.size) {
    if (opts.allowOlder) {
      const raw = await opts.consistency(size, pin.size);
      try {
        verifyConsistency(size, pin.size, raw.map((p) => fromBase64(p, 32)), root, pinnedRoot);
        return { status: 'older', pin, size };
      } catch (e) {
        return fail('CONSISTENCY_FAILED', `The checkpoint at size ${size} is not a prefix of the one this browser verified at size ${pin.size}: ${message(e)}. The log was forked or rewritten.`, pin);
      }
    }
    return fail('ROLLBACK', `Log ${log.name} now has ${size} entries, but this browser verified ${pin.size} on ${pin.verifiedAt}: its history was rolled back or rewritten.`, pin);
  }

  const raw = await opts.consistency(pin.size, size);
  try {
    verifyConsistency(pin.size, size, raw.map((p) => fromBase64(p, 32)), pinnedRoot, root);
  } catch (e) {
    return fail('CONSISTENCY_FAILED', `Log ${log.name} at size ${size} is not an extension of the checkpoint this browser verified at size ${pin.size} on ${pin.verifiedAt} (${message(e)}): its history was rewritten or forked.`, pin);
  }
  const next: Pin = { ...pin, size, root: toBase64(root), checkpoint: checkpointText, verifiedAt: opts.now };
  store.set(next);
  return { status: 'extended', pin: next, from: pin.size };
}
