/**
 * C2SP tlog-checkpoint note bodies:
 *   <origin>\n<tree size>\n<base64 root hash>\n[<extension line>\n]...
 */
import { fromBase64, toBase64 } from './encoding.js';
import { VerifyError } from './errors.js';
import { HASH_SIZE } from './hash.js';
import { checkBytes, checkIndex, describe, fail, isWellFormedString } from './internal.js';

export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Uint8Array;
  extensions: string[];
}

/** Largest checkpoint body accepted (the note holding it is capped at 1 MiB as well). */
export const MAX_CHECKPOINT_SIZE = 2 ** 20;

const SIZE_RE = /^(?:0|[1-9][0-9]{0,15})$/;

/** A line is acceptable when it is non-empty, well-formed, and has no ASCII control characters. */
function lineProblem(line: string): string | null {
  if (line.length === 0) return 'is empty';
  if (!isWellFormedString(line)) return 'is not valid Unicode';
  for (let i = 0; i < line.length; i++) {
    if (line.charCodeAt(i) < 0x20) return 'contains a control character';
  }
  return null;
}

export function formatCheckpoint(cp: Checkpoint): string {
  if (typeof cp !== 'object' || cp === null) fail('INVALID_ARGUMENT', 'checkpoint must be an object');
  const { origin, size, rootHash, extensions } = cp;
  if (typeof origin !== 'string') fail('INVALID_ARGUMENT', 'checkpoint origin must be a string');
  const op = lineProblem(origin);
  if (op) fail('INVALID_ARGUMENT', `checkpoint origin ${op}`);
  checkIndex('checkpoint size', size);
  checkBytes('checkpoint root hash', rootHash, HASH_SIZE);
  const ext = extensions ?? [];
  if (!Array.isArray(ext)) fail('INVALID_ARGUMENT', 'checkpoint extensions must be an array of strings');
  for (let i = 0; i < ext.length; i++) {
    const e: unknown = ext[i];
    if (typeof e !== 'string') fail('INVALID_ARGUMENT', `checkpoint extension ${i} must be a string`);
    const p = lineProblem(e);
    if (p) fail('INVALID_ARGUMENT', `checkpoint extension ${i} ${p}`);
  }
  const body = `${origin}\n${size}\n${toBase64(rootHash)}\n${ext.map((e) => `${e}\n`).join('')}`;
  if (body.length > MAX_CHECKPOINT_SIZE) fail('INVALID_ARGUMENT', 'checkpoint is too large');
  return body;
}

/**
 * Strict tlog-checkpoint "Note text": ends with a newline, at least three lines, non-empty
 * origin, size in decimal without leading zeroes and a safe integer, root exactly 32 bytes of
 * canonical base64, extension lines non-empty. No control characters. Else MALFORMED_CHECKPOINT.
 */
export function parseCheckpoint(body: string): Checkpoint {
  const bad = (why: string): never => fail('MALFORMED_CHECKPOINT', `malformed checkpoint: ${why}`);
  if (typeof body !== 'string') bad(`expected a string, got ${describe(body)}`);
  if (body.length > MAX_CHECKPOINT_SIZE) bad('too large');
  if (!body.endsWith('\n')) bad('does not end with a newline');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 3) bad(`has ${lines.length} lines, at least 3 are needed`);
  for (let i = 0; i < lines.length; i++) {
    const p = lineProblem(lines[i]!);
    if (p) bad(`line ${i + 1} ${p}`);
  }
  const [origin, sizeLine, rootLine] = lines as [string, string, string];
  if (!SIZE_RE.test(sizeLine)) bad('tree size must be decimal without leading zeroes');
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) bad('tree size is too large');
  let rootHash: Uint8Array;
  try {
    rootHash = fromBase64(rootLine, HASH_SIZE);
  } catch (e) {
    if (e instanceof VerifyError) bad(`root hash: ${e.message}`);
    throw e;
  }
  return { origin, size, rootHash, extensions: lines.slice(3) };
}
