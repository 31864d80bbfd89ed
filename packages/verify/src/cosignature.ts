/**
 * Witness cosignatures on checkpoints (C2SP tlog-cosignature, cosignature/v1; see
 * ../shared/reference/transparency-log.md "Cosignatures and witnesses"):
 *
 * - key ID: signed-note key ID with type byte 0x04;
 * - signature bytes: 8-byte big-endian timestamp ‖ 64-byte Ed25519 signature over
 *   "cosignature/v1\ntime <T>\n" + checkpoint body.
 *
 * A cosigned checkpoint is the log's signed note with the witnesses' signature lines appended
 * (signed-note allows any number of signature lines). Everything here is pure: no I/O.
 */
import { parseNote, formatNote, cosignatureTimestamp, isValidKeyName, KEY_TYPE_COSIGNATURE, type NoteSignature, type NoteVerifier } from './note.js';
import { toBase64 } from './encoding.js';
import { VerifyError } from './errors.js';
import { checkIndex, describe, fail } from './internal.js';

/** One signature line "— <name> <base64(key ID ‖ signature)>\n". */
export function formatSignatureLine(sig: NoteSignature): string {
  // formatNote checks the name, key ID and signature; take its last line.
  const text = formatNote({ body: 'x\n', signatures: [sig] });
  return text.slice(3);
}

/**
 * Parses the body of a witness's 200 answer: one or more signature lines, each ending with a
 * newline (tlog-witness). MALFORMED_NOTE when a line is not a signature line.
 */
export function parseSignatureLines(text: string): NoteSignature[] {
  if (typeof text !== 'string') fail('MALFORMED_NOTE', `expected signature lines, got ${describe(text)}`);
  if (text.length === 0 || !text.endsWith('\n')) fail('MALFORMED_NOTE', 'signature lines must be non-empty and end with a newline');
  if (text.length > 64 * 1024) fail('MALFORMED_NOTE', 'too many signature lines');
  // Reuse the note parser: a dummy body, then the lines as its signature block.
  try {
    return parseNote(`x\n\n${text}`).signatures;
  } catch (e) {
    if (e instanceof VerifyError) fail('MALFORMED_NOTE', e.message.replace('malformed note', 'malformed signature lines'));
    throw e;
  }
}

/** The note with `sigs` appended (signatures already on it with the same name and key ID are kept, not doubled). */
export function addCosignatures(noteText: string, sigs: NoteSignature[]): string {
  const note = parseNote(noteText);
  const have = new Set(note.signatures.map((s) => `${s.name}+${s.keyId}`));
  const added: NoteSignature[] = [...note.signatures];
  for (const s of sigs) {
    const k = `${s.name}+${s.keyId}`;
    if (have.has(k)) continue;
    have.add(k);
    added.push(s);
  }
  return formatNote({ body: note.body, signatures: added });
}

export interface CosignatureCheck {
  /** The witness's key name. */
  name: string;
  keyId: number;
  /** signed: a valid cosignature; invalid: a line with its name and key ID that does not verify; missing: none. */
  status: 'signed' | 'invalid' | 'missing';
  /** POSIX seconds of a valid cosignature. */
  timestamp?: number;
}

export interface CosignatureReport {
  /** One per witness given, in the order given. */
  witnesses: CosignatureCheck[];
  /** Distinct witness keys (by public key) with a valid cosignature. */
  cosigned: number;
  /** The k of the k-of-n policy. */
  policy: number;
  /** cosigned ≥ policy. */
  ok: boolean;
}

/**
 * Verifies one cosignature (type 0x04) of `body` by `witness`: false for a wrong key, a wrong
 * signature length, a timestamp above 2^63-1 or a signature over another body or time.
 */
export function verifyCosignature(body: string, sig: NoteSignature, witness: NoteVerifier): boolean {
  if (typeof witness !== 'object' || witness === null || witness.type !== KEY_TYPE_COSIGNATURE) fail('INVALID_ARGUMENT', 'the witness key must be a cosignature/v1 key (type 0x04)');
  if (typeof sig !== 'object' || sig === null) return false;
  if (sig.name !== witness.name || sig.keyId !== witness.keyId) return false;
  return witness.verify(body, sig.signature);
}

/**
 * Checks the cosignatures on a checkpoint note against the witnesses' keys and a k-of-n
 * policy. It does NOT check the log's own signature (use openCheckpoint for that); it never
 * throws for a bad or missing cosignature, it reports it. Witnesses sharing a public key count
 * once (the cosigned message does not commit to the name).
 */
export function checkCosignatures(noteText: string, witnesses: NoteVerifier[], policy: number): CosignatureReport {
  if (!Array.isArray(witnesses)) fail('INVALID_ARGUMENT', 'witnesses must be an array');
  checkIndex('witness policy', policy);
  if (policy > witnesses.length) fail('INVALID_ARGUMENT', `the witness policy asks for ${policy} cosignatures but only ${witnesses.length} witness keys were given`);
  for (const w of witnesses) {
    if (typeof w !== 'object' || w === null || w.type !== KEY_TYPE_COSIGNATURE || !isValidKeyName(w.name)) {
      fail('INVALID_ARGUMENT', 'each witness key must be a cosignature/v1 key (type 0x04)');
    }
  }
  const note = parseNote(noteText);
  const checks: CosignatureCheck[] = [];
  const keys = new Set<string>();
  for (const w of witnesses) {
    const mine = note.signatures.filter((s) => s.name === w.name && s.keyId === w.keyId);
    let check: CosignatureCheck = { name: w.name, keyId: w.keyId, status: mine.length > 0 ? 'invalid' : 'missing' };
    for (const s of mine) {
      if (w.verify(note.body, s.signature)) {
        check = { name: w.name, keyId: w.keyId, status: 'signed', timestamp: cosignatureTimestamp(s) };
        keys.add(toBase64(w.publicKey));
        break;
      }
    }
    checks.push(check);
  }
  return { witnesses: checks, cosigned: keys.size, policy, ok: keys.size >= policy };
}

/** Parses the body of a witness's 409 answer (text/x.tlog.size): "<size>\n". */
export function parseTlogSize(text: string): number {
  const m = /^(0|[1-9][0-9]{0,15})\n?$/.exec(typeof text === 'string' ? text : '');
  if (!m) fail('INVALID_ARGUMENT', `not a tree size: ${describe(typeof text === 'string' ? text.slice(0, 40) : text)}`);
  const n = Number(m[1]);
  if (!Number.isSafeInteger(n)) fail('INVALID_ARGUMENT', 'tree size is too large');
  return n;
}
