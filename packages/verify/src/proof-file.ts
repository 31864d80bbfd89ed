/**
 * C2SP tlog-proof: an offline-verifiable inclusion proof.
 *   c2sp.org/tlog-proof@v1\n [extra <base64>\n] index <n>\n <base64 hash>\n... \n <checkpoint note>
 */
import { parseCheckpoint, type Checkpoint } from './checkpoint.js';
import { fromBase64, toBase64 } from './encoding.js';
import { VerifyError } from './errors.js';
import { HASH_SIZE } from './hash.js';
import { checkBytes, checkIndex, copyBytes, describe, fail } from './internal.js';
import { verifyInclusion } from './merkle.js';
import { MAX_NOTE_SIZE, openCheckpoint, parseNote, type NoteVerifier } from './note.js';

export interface ProofFile {
  index: number;
  proof: Uint8Array[];
  /** the checkpoint note text, verbatim */
  checkpoint: string;
  /** opaque, unauthenticated application data */
  extra?: Uint8Array;
}

export const PROOF_FILE_HEADER = 'c2sp.org/tlog-proof@v1';
/** An inclusion proof in a tree of at most 2^53 leaves has at most 53 hashes. */
const MAX_PROOF_HASHES = 64;
const INDEX_RE = /^(?:0|[1-9][0-9]{0,15})$/;

export function formatProofFile(p: ProofFile): string {
  if (typeof p !== 'object' || p === null) fail('INVALID_ARGUMENT', 'proof file must be an object');
  checkIndex('index', p.index);
  if (!Array.isArray(p.proof) || p.proof.length > MAX_PROOF_HASHES) fail('INVALID_ARGUMENT', `proof must be an array of at most ${MAX_PROOF_HASHES} hashes`);
  p.proof.forEach((h, i) => checkBytes(`proof[${i}]`, h, HASH_SIZE));
  try {
    parseCheckpoint(parseNote(p.checkpoint).body);
  } catch (e) {
    if (e instanceof VerifyError) fail('INVALID_ARGUMENT', `checkpoint is not a signed checkpoint note: ${e.message}`);
    throw e;
  }
  let out = `${PROOF_FILE_HEADER}\n`;
  if (p.extra !== undefined) out += `extra ${toBase64(checkBytes('extra', p.extra))}\n`;
  out += `index ${p.index}\n`;
  for (const h of p.proof) out += `${toBase64(h)}\n`;
  return `${out}\n${p.checkpoint}`;
}

/** Strict tlog-proof "Format" parser; the checkpoint must be a well-formed checkpoint note. MALFORMED_PROOF_FILE. */
export function parseProofFile(text: string): ProofFile {
  const bad = (why: string, cause?: VerifyError): never =>
    fail('MALFORMED_PROOF_FILE', `malformed tlog-proof: ${why}`, cause ? { cause: cause.code } : undefined);
  if (typeof text !== 'string') bad(`expected a string, got ${describe(text)}`);
  if (text.length > MAX_NOTE_SIZE + 8192) bad('too large');
  let pos = 0;
  const nextLine = (): string => {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) return bad('ends before the checkpoint');
    const line = text.slice(pos, nl);
    pos = nl + 1;
    return line;
  };
  if (nextLine() !== PROOF_FILE_HEADER) bad(`first line must be ${PROOF_FILE_HEADER}`);
  let line = nextLine();
  let extra: Uint8Array | undefined;
  if (line.startsWith('extra ')) {
    try {
      extra = fromBase64(line.slice(6));
    } catch (e) {
      if (e instanceof VerifyError) return bad(`extra: ${e.message}`, e);
      throw e;
    }
    line = nextLine();
  }
  if (!line.startsWith('index ')) bad("missing 'index' line");
  const idx = line.slice(6);
  if (!INDEX_RE.test(idx) || !Number.isSafeInteger(Number(idx))) bad('index must be a decimal safe integer without leading zeroes');
  const index = Number(idx);
  const proof: Uint8Array[] = [];
  for (line = nextLine(); line !== ''; line = nextLine()) {
    if (proof.length === MAX_PROOF_HASHES) bad(`more than ${MAX_PROOF_HASHES} proof hashes`);
    try {
      proof.push(fromBase64(line, HASH_SIZE));
    } catch (e) {
      if (e instanceof VerifyError) return bad(`proof hash ${proof.length + 1}: ${e.message}`, e);
      throw e;
    }
  }
  const checkpoint = text.slice(pos);
  try {
    // Syntax only; nothing in it is trusted before verifyProofFile checks the signatures.
    parseCheckpoint(parseNote(checkpoint).body);
  } catch (e) {
    if (e instanceof VerifyError) return bad(`checkpoint: ${e.message}`, e);
    throw e;
  }
  const out: ProofFile = { index, proof, checkpoint };
  if (extra !== undefined) out.extra = copyBytes(extra);
  return out;
}

/**
 * Parses a tlog-proof, opens its checkpoint with the log key (and witness policy), and checks
 * that `leafHash` is at `index` in that tree. The extra data is not authenticated.
 */
export function verifyProofFile(
  text: string,
  leafHash: Uint8Array,
  log: NoteVerifier,
  opts?: { witnesses?: NoteVerifier[]; quorum?: number },
): { checkpoint: Checkpoint; index: number } {
  checkBytes('leafHash', leafHash, HASH_SIZE);
  const p = parseProofFile(text);
  const { checkpoint } = openCheckpoint(p.checkpoint, log, opts);
  verifyInclusion(leafHash, p.index, checkpoint.size, p.proof, checkpoint.rootHash);
  return { checkpoint, index: p.index };
}
