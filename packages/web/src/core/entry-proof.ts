/**
 * Verifies one entry as the vault served it (GET /v1/logs/<log>/entries/<i>) in the browser,
 * trusting nothing the server says about it but the bytes themselves:
 *
 *   1. the entry bytes are a custody-entry/v1 envelope of this log (its `log` line is the
 *      pinned log's origin);
 *   2. the leaf hash SHA-256(0x00 ‖ entry) is recomputed here;
 *   3. the record shown is the envelope's body byte for byte (or, for a large record, the
 *      blob whose SHA-256 and size the entry names);
 *   4. the checkpoint is signed by the verifier key pinned for this log (not the key the
 *      server offers now) and names the log's origin;
 *   5. the inclusion proof leads from that leaf at that index to the checkpoint's root.
 *
 * Pure: no DOM, no network, no clock. Each check is reported with what it compared.
 */
import {
  fromBase64,
  toBase64,
  toHex,
  hashLeaf,
  sha256,
  bytesEqual,
  utf8Encode,
  openCheckpoint,
  parseVerifierKey,
  verifyInclusion,
  type NoteVerifier,
} from '@custody/verify';
import { parseEnvelope, type Envelope } from './envelope.js';

export interface EntryAnswerLike {
  log: string;
  index: number;
  leafHash: string;
  record: string;
  recordEncoding: 'utf8' | 'base64';
  entry: string;
  inclusionProof: string[];
  checkpoint: string;
}

export type CheckId = 'envelope' | 'leaf' | 'record' | 'signature' | 'inclusion';

export interface Check {
  id: CheckId;
  label: string;
  ok: boolean;
  detail: string;
}

export interface CheckpointFacts {
  origin: string;
  size: number;
  rootHash: string;
  /** The checkpoint note text exactly as served. */
  text: string;
}

export interface EntryVerification {
  ok: boolean;
  checks: Check[];
  envelope: Envelope | null;
  /** The proven record bytes (the envelope body, or the blob that matches the entry). */
  record: Uint8Array | null;
  leafHash: string | null;
  checkpoint: CheckpointFacts | null;
  signer: { name: string; keyId: string; verifierKey: string };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function keyIdHex(v: NoteVerifier): string {
  return (v.keyId >>> 0).toString(16).padStart(8, '0');
}

export function verifyEntryAnswer(a: EntryAnswerLike, pinned: { origin: string; verifierKey: string }): EntryVerification {
  const checks: Check[] = [];
  const add = (id: CheckId, label: string, ok: boolean, detail: string): boolean => {
    checks.push({ id, label, ok, detail });
    return ok;
  };
  const out: EntryVerification = {
    ok: false,
    checks,
    envelope: null,
    record: null,
    leafHash: null,
    checkpoint: null,
    signer: { name: pinned.origin, keyId: '', verifierKey: pinned.verifierKey },
  };

  // 1. The envelope.
  let entry: Uint8Array | null = null;
  try {
    entry = fromBase64(a.entry);
    const env = parseEnvelope(entry);
    out.envelope = env;
    if (env.origin !== pinned.origin) {
      add('envelope', 'Entry belongs to this log', false, `The entry says it belongs to log "${env.origin}", not "${pinned.origin}": it was copied from another log.`);
    } else {
      add('envelope', 'Entry belongs to this log', true, `The entry is a custody-entry/v1 envelope of log ${env.origin} (${entry.length} bytes).`);
    }
  } catch (e) {
    add('envelope', 'Entry belongs to this log', false, `The entry bytes are not a valid envelope: ${message(e)}.`);
  }

  // 2. The leaf hash.
  let leaf: Uint8Array | null = null;
  if (entry) {
    leaf = hashLeaf(entry);
    out.leafHash = toBase64(leaf);
    const claimed = a.leafHash;
    if (claimed !== out.leafHash) {
      add('leaf', 'Leaf hash recomputed', false, `SHA-256(0x00 ‖ entry) is ${out.leafHash}, but the vault said ${claimed}.`);
    } else {
      add('leaf', 'Leaf hash recomputed', true, `SHA-256(0x00 ‖ entry) = ${out.leafHash}, computed in this browser.`);
    }
  }

  // 3. The record is the entry's own.
  if (out.envelope) {
    let served: Uint8Array | null = null;
    try {
      served = a.recordEncoding === 'base64' ? fromBase64(a.record) : utf8Encode(a.record);
    } catch (e) {
      add('record', 'Record is the one in the entry', false, `The record could not be decoded: ${message(e)}.`);
    }
    if (served) {
      const env = out.envelope;
      if (env.blob) {
        const got = toHex(sha256(served));
        if (got === env.blob.sha256 && served.length === env.blob.size) {
          out.record = served;
          add('record', 'Record is the one in the entry', true, `The record (${served.length} bytes, kept as a blob) has SHA-256 ${got}, as the entry says.`);
        } else {
          add('record', 'Record is the one in the entry', false, `The record has SHA-256 ${got} and ${served.length} bytes, but the entry names ${env.blob.sha256} and ${env.blob.size} bytes.`);
        }
      } else if (bytesEqual(served, env.body)) {
        out.record = env.body;
        add('record', 'Record is the one in the entry', true, `The record shown is the entry's body, byte for byte (${env.body.length} bytes).`);
      } else {
        add('record', 'Record is the one in the entry', false, 'The record the vault sent differs from the body of the entry. Only the entry is proven; the page shows the entry body.');
        out.record = env.body;
      }
    }
  }

  // 4. The checkpoint signature, with the pinned key.
  let verifier: NoteVerifier | null = null;
  try {
    verifier = parseVerifierKey(pinned.verifierKey);
    out.signer = { name: verifier.name, keyId: keyIdHex(verifier), verifierKey: pinned.verifierKey };
  } catch (e) {
    add('signature', 'Checkpoint signed by the pinned key', false, `The pinned verifier key cannot be read: ${message(e)}.`);
  }
  let root: Uint8Array | null = null;
  let size = 0;
  if (verifier) {
    try {
      const { checkpoint } = openCheckpoint(a.checkpoint, verifier);
      root = checkpoint.rootHash;
      size = checkpoint.size;
      out.checkpoint = { origin: checkpoint.origin, size, rootHash: toBase64(root), text: a.checkpoint };
      add('signature', 'Checkpoint signed by the pinned key', true, `Checkpoint of ${checkpoint.origin} at size ${size} is signed by ${verifier.name}+${keyIdHex(verifier)} (Ed25519).`);
    } catch (e) {
      add('signature', 'Checkpoint signed by the pinned key', false, `The checkpoint does not verify with the pinned key ${verifier.name}+${keyIdHex(verifier)}: ${message(e)}.`);
    }
  }

  // 5. Inclusion.
  if (leaf && root) {
    try {
      const proof = a.inclusionProof.map((p) => fromBase64(p, 32));
      if (!Number.isSafeInteger(a.index) || a.index < 0 || a.index >= size) throw new Error(`index ${a.index} is not inside the tree of size ${size}`);
      verifyInclusion(leaf, a.index, size, proof, root);
      add('inclusion', 'Inclusion proof checks', true, `The ${proof.length} proof hashes lead from leaf ${a.index} to root ${toBase64(root)} of the tree of size ${size}.`);
    } catch (e) {
      add('inclusion', 'Inclusion proof checks', false, `The inclusion proof does not lead from leaf ${a.index} to the checkpoint's root: ${message(e)}.`);
    }
  } else {
    add('inclusion', 'Inclusion proof checks', false, 'Not checked: it needs a recomputed leaf hash and a verified checkpoint.');
  }

  out.ok = checks.length === 5 && checks.every((c) => c.ok);
  return out;
}
