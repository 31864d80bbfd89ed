/**
 * C2SP signed-note (Ed25519, type 0x01) and C2SP tlog-cosignature (timestamped Ed25519
 * witness cosignatures, type 0x04): parsing, formatting, verifier keys, signing, opening.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { parseCheckpoint, type Checkpoint } from './checkpoint.js';
import { fromBase64, fromHex, toBase64, utf8Encode } from './encoding.js';
import { VerifyError } from './errors.js';
import { sha256 } from './hash.js';
import { checkBytes, checkIndex, copyBytes, describe, fail, isWellFormedString, utf8Length } from './internal.js';

export interface NoteSignature {
  name: string;
  /** uint32 key ID */
  keyId: number;
  /** the signature bytes after the 4-byte key ID */
  signature: Uint8Array;
}

export interface Note {
  body: string;
  signatures: NoteSignature[];
}

export const KEY_TYPE_ED25519 = 0x01;
export const KEY_TYPE_COSIGNATURE = 0x04;
/** Most signatures a note may carry (signed-note: verifiers SHOULD cap it, MUST accept 16). */
export const MAX_NOTE_SIGNATURES = 100;
/** Largest note accepted, in UTF-8 bytes. */
export const MAX_NOTE_SIZE = 2 ** 20;

const SIG_PREFIX = '\u2014 '; // em dash, space
// Unicode spaces as Go's unicode.IsSpace sees them, plus '+': not allowed in key names.
const NAME_FORBIDDEN = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000+]/;

/** signed-note "Format": non-empty, well-formed, no Unicode spaces, no '+'. */
export function isValidKeyName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && isWellFormedString(name) && !NAME_FORBIDDEN.test(name) && !hasControl(name);
}

function hasControl(s: string, allowNewline = false): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && !(allowNewline && c === 0x0a)) return true;
  }
  return false;
}

function checkKeyId(v: unknown, code: 'INVALID_ARGUMENT' | 'MALFORMED_NOTE' = 'INVALID_ARGUMENT'): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) fail(code, `key ID must be a uint32, got ${describe(v)}`);
  return v;
}

function u32be(b: Uint8Array, o: number): number {
  return b[o]! * 0x1000000 + b[o + 1]! * 0x10000 + b[o + 2]! * 0x100 + b[o + 3]!;
}

function putU32be(out: Uint8Array, o: number, v: number): void {
  out[o] = Math.floor(v / 0x1000000);
  out[o + 1] = Math.floor(v / 0x10000) % 256;
  out[o + 2] = Math.floor(v / 0x100) % 256;
  out[o + 3] = v % 256;
}

/**
 * Parses a signed note (signed-note "Format"): valid UTF-8 text without control characters
 * other than newline; the body ends with a newline and is separated from the signature lines
 * by the last blank line; 1..100 lines "— <name> <base64(key ID ‖ signature)>". MALFORMED_NOTE.
 */
export function parseNote(text: string): Note {
  const bad = (why: string): never => fail('MALFORMED_NOTE', `malformed note: ${why}`);
  if (typeof text !== 'string') bad(`expected a string, got ${describe(text)}`);
  if (text.length > MAX_NOTE_SIZE || utf8Length(text) > MAX_NOTE_SIZE) bad(`larger than ${MAX_NOTE_SIZE} bytes`);
  if (!isWellFormedString(text)) bad('not valid Unicode (lone surrogate)');
  if (hasControl(text, true)) bad('contains a control character other than newline');
  const split = text.lastIndexOf('\n\n');
  if (split < 0) bad('no blank line before the signatures');
  const body = text.slice(0, split + 1);
  const sigText = text.slice(split + 2);
  if (sigText.length === 0 || !sigText.endsWith('\n')) bad('the signature block must be non-empty and end with a newline');
  const lines = sigText.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) bad(`more than ${MAX_NOTE_SIGNATURES} signatures`);
  const signatures: NoteSignature[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith(SIG_PREFIX)) bad(`signature line ${i + 1} does not start with an em dash and a space`);
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.indexOf(' ');
    if (sp < 0) bad(`signature line ${i + 1} has no signature`);
    const name = rest.slice(0, sp);
    if (!isValidKeyName(name)) bad(`signature line ${i + 1} has an invalid key name`);
    let raw: Uint8Array;
    try {
      raw = fromBase64(rest.slice(sp + 1));
    } catch (e) {
      if (e instanceof VerifyError) return bad(`signature line ${i + 1}: ${e.message}`);
      throw e;
    }
    if (raw.length < 5) bad(`signature line ${i + 1} is shorter than a key ID and a signature`);
    signatures.push({ name, keyId: u32be(raw, 0), signature: raw.slice(4) });
  }
  return { body, signatures };
}

function checkBody(body: unknown, code: 'INVALID_ARGUMENT' | 'MALFORMED_NOTE' = 'INVALID_ARGUMENT'): string {
  if (typeof body !== 'string' || body.length === 0 || !body.endsWith('\n')) fail(code, 'note body must be a non-empty string ending with a newline');
  if (!isWellFormedString(body) || hasControl(body, true)) fail(code, 'note body must be valid Unicode without control characters other than newline');
  return body;
}

/** The note text; INVALID_ARGUMENT unless the result parses back to the same note. */
export function formatNote(note: Note): string {
  if (typeof note !== 'object' || note === null) fail('INVALID_ARGUMENT', 'note must be an object');
  const body = checkBody(note.body);
  const sigs = note.signatures;
  if (!Array.isArray(sigs) || sigs.length < 1 || sigs.length > MAX_NOTE_SIGNATURES) {
    fail('INVALID_ARGUMENT', `a note needs 1..${MAX_NOTE_SIGNATURES} signatures`);
  }
  let text = `${body}\n`;
  for (const s of sigs) {
    if (!isValidKeyName(s?.name)) fail('INVALID_ARGUMENT', `invalid signature key name ${describe(s?.name)}`);
    checkKeyId(s.keyId);
    checkBytes('signature', s.signature);
    if (s.signature.length < 1) fail('INVALID_ARGUMENT', 'empty signature');
    const raw = new Uint8Array(4 + s.signature.length);
    putU32be(raw, 0, s.keyId);
    raw.set(s.signature, 4);
    text += `${SIG_PREFIX}${s.name} ${toBase64(raw)}\n`;
  }
  if (utf8Length(text) > MAX_NOTE_SIZE) fail('INVALID_ARGUMENT', `note is larger than ${MAX_NOTE_SIZE} bytes`);
  return text;
}

/** signed-note key ID: the first 4 bytes of SHA-256(name ‖ 0x0A ‖ type ‖ public key), as a uint32. */
export function keyId(name: string, type: number, publicKey: Uint8Array): number {
  if (!isValidKeyName(name)) fail('INVALID_ARGUMENT', `invalid key name ${describe(name)}`);
  if (!Number.isInteger(type) || type < 0 || type > 255) fail('INVALID_ARGUMENT', `key type must be a byte, got ${describe(type)}`);
  checkBytes('public key', publicKey);
  const n = utf8Encode(name);
  const buf = new Uint8Array(n.length + 2 + publicKey.length);
  buf.set(n, 0);
  buf[n.length] = 0x0a;
  buf[n.length + 1] = type;
  buf.set(publicKey, n.length + 2);
  return u32be(sha256(buf), 0);
}

function hex8(v: number): string {
  return v.toString(16).padStart(8, '0');
}

/** signed-note verifier key "<name>+<8 hex key ID>+<base64(type ‖ public key)>". */
export function verifierKeyString(name: string, publicKey: Uint8Array, type: number = KEY_TYPE_ED25519): string {
  if (type !== KEY_TYPE_ED25519 && type !== KEY_TYPE_COSIGNATURE) fail('INVALID_ARGUMENT', `unsupported key type ${describe(type)}`);
  checkBytes('public key', publicKey, 32);
  const id = keyId(name, type, publicKey);
  const raw = new Uint8Array(33);
  raw[0] = type;
  raw.set(publicKey, 1);
  return `${name}+${hex8(id)}+${toBase64(raw)}`;
}

export interface NoteVerifier {
  name: string;
  keyId: number;
  type: number;
  publicKey: Uint8Array;
  /** For type 0x04 the signature is an 8-byte big-endian timestamp ‖ 64-byte Ed25519 signature. */
  verify(body: string, signature: Uint8Array): boolean;
}

/** tlog-cosignature "Ed25519 signed message": "cosignature/v1\ntime <T>\n" + body. */
function cosignedMessage(body: string, timestamp: bigint | number): Uint8Array {
  return utf8Encode(`cosignature/v1\ntime ${timestamp.toString()}\n${body}`);
}

function ed25519Verify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  try {
    // Strict RFC 8032 decoding (no ZIP-215 leniency): non-canonical encodings are rejected.
    return ed25519.verify(sig, msg, pub, { zip215: false });
  } catch {
    return false;
  }
}

function makeVerifier(name: string, type: number, publicKey: Uint8Array): NoteVerifier {
  const pub = copyBytes(publicKey);
  const id = keyId(name, type, pub);
  const verify =
    type === KEY_TYPE_ED25519
      ? (body: string, sig: Uint8Array): boolean => {
          if (typeof body !== 'string' || !(sig instanceof Uint8Array) || sig.length !== 64 || !isWellFormedString(body)) return false;
          return ed25519Verify(sig, utf8Encode(body), pub);
        }
      : (body: string, sig: Uint8Array): boolean => {
          if (typeof body !== 'string' || !(sig instanceof Uint8Array) || sig.length !== 72 || !isWellFormedString(body)) return false;
          const ts = BigInt(u32be(sig, 0)) * 0x100000000n + BigInt(u32be(sig, 4));
          if (ts > 0x7fffffffffffffffn) return false; // tlog-cosignature: MUST NOT exceed 2^63 - 1
          return ed25519Verify(sig.subarray(8), cosignedMessage(body, ts), pub);
        };
  return { name, keyId: id, type, publicKey: pub, verify };
}

/** A verifier from a public key (type 0x01 note signatures or 0x04 cosignatures). */
export function newVerifier(name: string, publicKey: Uint8Array, type: number = KEY_TYPE_ED25519): NoteVerifier {
  if (type !== KEY_TYPE_ED25519 && type !== KEY_TYPE_COSIGNATURE) fail('INVALID_ARGUMENT', `unsupported key type ${describe(type)}`);
  if (!isValidKeyName(name)) fail('INVALID_ARGUMENT', `invalid key name ${describe(name)}`);
  checkBytes('public key', publicKey, 32);
  return makeVerifier(name, type, publicKey);
}

const HEX8_RE = /^[0-9a-fA-F]{8}$/;

/** Parses "<name>+<hex key ID>+<base64(type ‖ key)>"; MALFORMED_KEY on any problem. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  const bad = (why: string): never => fail('MALFORMED_KEY', `malformed verifier key: ${why}`);
  if (typeof vkey !== 'string') bad(`expected a string, got ${describe(vkey)}`);
  if (vkey.length > 4096) bad('too long');
  const p1 = vkey.indexOf('+');
  const p2 = p1 < 0 ? -1 : vkey.indexOf('+', p1 + 1);
  if (p2 < 0) bad("expected '<name>+<key ID>+<key>'");
  const name = vkey.slice(0, p1);
  const idHex = vkey.slice(p1 + 1, p2);
  if (!isValidKeyName(name)) bad('invalid key name');
  if (!HEX8_RE.test(idHex)) bad('key ID must be 8 hex digits');
  let raw: Uint8Array;
  try {
    raw = fromBase64(vkey.slice(p2 + 1));
  } catch (e) {
    if (e instanceof VerifyError) return bad(`key: ${e.message}`);
    throw e;
  }
  if (raw.length === 0) bad('empty key');
  const type = raw[0]!;
  if (type !== KEY_TYPE_ED25519 && type !== KEY_TYPE_COSIGNATURE) bad(`unsupported key type 0x${type.toString(16).padStart(2, '0')}`);
  const pub = raw.subarray(1);
  if (pub.length !== 32) bad(`Ed25519 public key must be 32 bytes, got ${pub.length}`);
  try {
    ed25519.Point.fromBytes(pub, false);
  } catch {
    bad('public key is not a valid Ed25519 point');
  }
  const id = u32be(fromHex(idHex), 0);
  if (id !== keyId(name, type, pub)) bad('key ID does not match the name and key');
  return makeVerifier(name, type, pub);
}

function checkSeed(seed: unknown): Uint8Array {
  return copyBytes(checkBytes('Ed25519 seed', seed, 32));
}

/** An Ed25519 signing key with its signed-note name, type, key ID and verifier key. */
abstract class Ed25519Key {
  readonly name: string;
  readonly publicKey: Uint8Array;
  readonly keyId: number;
  readonly verifierKey: string;
  readonly #seed: Uint8Array;

  protected constructor(
    name: string,
    seed: Uint8Array,
    private readonly type: number,
  ) {
    if (!isValidKeyName(name)) fail('INVALID_ARGUMENT', `invalid key name ${describe(name)}`);
    this.#seed = checkSeed(seed);
    this.name = name;
    this.publicKey = ed25519.getPublicKey(this.#seed);
    this.keyId = keyId(name, type, this.publicKey);
    this.verifierKey = verifierKeyString(name, this.publicKey, type);
  }

  protected signBytes(message: Uint8Array): Uint8Array {
    return ed25519.sign(message, this.#seed);
  }

  verifier(): NoteVerifier {
    return makeVerifier(this.name, this.type, this.publicKey);
  }
}

/** Signs note bodies with Ed25519 (signed-note type 0x01). */
export class Ed25519NoteSigner extends Ed25519Key {
  constructor(name: string, seed: Uint8Array) {
    super(name, seed, KEY_TYPE_ED25519);
  }

  sign(body: string): NoteSignature {
    checkBody(body);
    return { name: this.name, keyId: this.keyId, signature: this.signBytes(utf8Encode(body)) };
  }
}

/** Signs checkpoints as a witness: tlog-cosignature timestamped Ed25519 (type 0x04). */
export class Ed25519CosignatureSigner extends Ed25519Key {
  constructor(name: string, seed: Uint8Array) {
    super(name, seed, KEY_TYPE_COSIGNATURE);
  }

  /** `timestamp` in POSIX seconds, a non-negative safe integer. */
  sign(body: string, timestamp: number): NoteSignature {
    checkBody(body);
    checkIndex('timestamp', timestamp);
    const sig = new Uint8Array(72);
    putU32be(sig, 0, Math.floor(timestamp / 0x100000000));
    putU32be(sig, 4, timestamp % 0x100000000);
    sig.set(this.signBytes(cosignedMessage(body, timestamp)), 8);
    return { name: this.name, keyId: this.keyId, signature: sig };
  }
}

/** The timestamp (POSIX seconds) of a type 0x04 cosignature; MALFORMED_NOTE if it is not one. */
export function cosignatureTimestamp(sig: NoteSignature): number {
  const s = sig?.signature;
  if (!(s instanceof Uint8Array) || s.length !== 72) fail('MALFORMED_NOTE', 'a cosignature is an 8-byte timestamp and a 64-byte signature');
  const ts = u32be(s, 0) * 0x100000000 + u32be(s, 4);
  if (!Number.isSafeInteger(ts)) fail('MALFORMED_NOTE', 'cosignature timestamp is too large');
  return ts;
}

/** Signs `body` with every signer and returns the full note text. */
export function signNote(body: string, signers: Array<{ sign(body: string): NoteSignature }>): string {
  checkBody(body);
  if (!Array.isArray(signers) || signers.length === 0) fail('INVALID_ARGUMENT', 'signNote needs at least one signer');
  return formatNote({ body, signatures: signers.map((s) => s.sign(body)) });
}

export interface OpenedNote {
  note: Note;
  /** the given verifiers whose signature checks, in the order they were given */
  verified: NoteVerifier[];
}

function verifierKeyOf(name: string, id: number): string {
  return `${name}+${hex8(id)}`;
}

/**
 * Parses a note and checks signatures (signed-note "Signatures"): signatures by unknown keys
 * are ignored; one whose name and key ID match a verifier but does not verify is
 * SIGNATURE_INVALID (every such signature is checked); if none verifies, NO_TRUSTED_SIGNATURE.
 */
export function openNote(text: string, verifiers: NoteVerifier[]): OpenedNote {
  if (!Array.isArray(verifiers)) fail('INVALID_ARGUMENT', 'verifiers must be an array');
  const byId = new Map<string, NoteVerifier>();
  for (const v of verifiers) {
    if (typeof v !== 'object' || v === null || !isValidKeyName(v.name) || typeof v.verify !== 'function') {
      fail('INVALID_ARGUMENT', 'each verifier needs a valid name, key ID and verify function');
    }
    const k = verifierKeyOf(v.name, checkKeyId(v.keyId));
    if (byId.has(k)) fail('INVALID_ARGUMENT', `two verifiers share the name and key ID ${k}`);
    byId.set(k, v);
  }
  const note = parseNote(text);
  const ok = new Set<NoteVerifier>();
  for (const s of note.signatures) {
    const v = byId.get(verifierKeyOf(s.name, s.keyId));
    if (v === undefined) continue;
    if (!v.verify(note.body, s.signature)) {
      fail('SIGNATURE_INVALID', `signature by ${verifierKeyOf(s.name, s.keyId)} does not verify`, { name: s.name, keyId: s.keyId });
    }
    ok.add(v);
  }
  const verified = verifiers.filter((v) => ok.has(v));
  if (verified.length === 0) fail('NO_TRUSTED_SIGNATURE', 'the note has no valid signature by a trusted key');
  return { note, verified };
}

/**
 * Opens a signed checkpoint: the log's signature is required; the origin must equal the log's
 * key name (ORIGIN_MISMATCH); with quorum > 0, at least `quorum` distinct witnesses (counted by
 * public key) must have valid cosignatures (NO_TRUSTED_SIGNATURE). The body is parsed only
 * after the signatures check (signed-note: unverified text must be ignored).
 */
export function openCheckpoint(
  text: string,
  log: NoteVerifier,
  opts: { witnesses?: NoteVerifier[]; quorum?: number } = {},
): { checkpoint: Checkpoint; note: Note; cosigners: NoteVerifier[] } {
  if (typeof log !== 'object' || log === null) fail('INVALID_ARGUMENT', 'log verifier is required');
  const witnesses = opts.witnesses ?? [];
  if (!Array.isArray(witnesses)) fail('INVALID_ARGUMENT', 'witnesses must be an array');
  const quorum = checkIndex('quorum', opts.quorum ?? 0);
  if (quorum > witnesses.length) fail('INVALID_ARGUMENT', `quorum ${quorum} is larger than the ${witnesses.length} witnesses given`);
  const { note, verified } = openNote(text, [log, ...witnesses]);
  if (!verified.includes(log)) fail('NO_TRUSTED_SIGNATURE', `the checkpoint is not signed by the log key ${verifierKeyOf(log.name, log.keyId)}`);
  const checkpoint = parseCheckpoint(note.body);
  if (checkpoint.origin !== log.name) {
    fail('ORIGIN_MISMATCH', `checkpoint origin ${describe(checkpoint.origin)} is not the log's name ${describe(log.name)}`, { origin: checkpoint.origin, expected: log.name });
  }
  const cosigners = verified.filter((v) => v !== log);
  // The Ed25519 cosigned message does not commit to the witness name, so one key listed under
  // two names must count once; the log's own key never counts as a witness.
  const keys = new Set<string>([toBase64(log.publicKey ?? new Uint8Array(0))]);
  let count = 0;
  for (const w of cosigners) {
    const k = toBase64(w.publicKey ?? new Uint8Array(0));
    if (keys.has(k)) continue;
    keys.add(k);
    count++;
  }
  if (count < quorum) {
    fail('NO_TRUSTED_SIGNATURE', `${count} of the required ${quorum} witness cosignatures verify`, { cosigned: count, quorum });
  }
  return { checkpoint, note, cosigners };
}
