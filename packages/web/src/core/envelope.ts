/**
 * The custody-entry/v1 envelope (docs/FORMAT.md), parsed in the browser from the exact leaf
 * bytes. The page shows what these bytes say — not what the server's JSON says — because
 * these are the bytes the inclusion proof covers.
 */

export const ENTRY_MAGIC = 'custody-entry/v1';

export interface Envelope {
  origin: string;
  region: string;
  source: string;
  producer: string;
  received: string;
  attrs: Record<string, string>;
  salt: string;
  blob: { sha256: string; size: number } | null;
  /** The inline record (empty for a blob entry): a view into the entry bytes. */
  body: Uint8Array;
}

export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

const FIELD_RE = /^[\x21-\x7e]{1,256}$/;
const ATTR_KEY_RE = /^[a-z][a-zA-Z0-9.-]{0,31}$/;
const SALT_RE = /^[A-Za-z0-9+/]{22}==$/;
const BLOB_RE = /^blob sha256:([0-9a-f]{64}) (0|[1-9][0-9]{0,9})$/;

export function parseEnvelope(bytes: Uint8Array): Envelope {
  const bad = (why: string): never => {
    throw new EnvelopeError(`not a valid ${ENTRY_MAGIC} envelope: ${why}`);
  };
  let end = -1;
  for (let i = 0; i + 1 < bytes.length; i++) {
    if (bytes[i] === 0x0a && bytes[i + 1] === 0x0a) {
      end = i;
      break;
    }
  }
  if (end < 0) bad('no blank line after the header');
  let header = '';
  for (let i = 0; i < end; i++) {
    const b = bytes[i]!;
    if (b !== 0x0a && (b < 0x20 || b > 0x7e)) bad(`header byte ${i} is not printable ASCII`);
    header += String.fromCharCode(b);
  }
  const lines = header.split('\n');
  if (lines[0] !== ENTRY_MAGIC) bad(`the first line must be "${ENTRY_MAGIC}"`);
  const field = (i: number, name: string): string => {
    const line = lines[i];
    if (line === undefined || !line.startsWith(`${name} `)) return bad(`line ${i + 1} must start with "${name} "`);
    const v = line.slice(name.length + 1);
    if (!FIELD_RE.test(v)) bad(`bad ${name} value`);
    return v;
  };
  const origin = field(1, 'log');
  const region = field(2, 'region');
  const source = field(3, 'source');
  const producer = field(4, 'producer');
  const received = field(5, 'received');
  let at = 6;
  const attrs: Record<string, string> = {};
  let lastKey = '';
  while (lines[at]?.startsWith('attr ')) {
    const m = /^attr (\S+) (\S+)$/.exec(lines[at]!);
    if (!m || !ATTR_KEY_RE.test(m[1]!) || !FIELD_RE.test(m[2]!) || m[1]! <= lastKey) bad(`bad attr line ${at + 1}`);
    lastKey = m![1]!;
    attrs[m![1]!] = m![2]!;
    at++;
  }
  const salt = field(at, 'salt');
  if (!SALT_RE.test(salt)) bad('the salt is not 16 bytes of base64');
  let blob: Envelope['blob'] = null;
  if (lines.length === at + 2) {
    const m = BLOB_RE.exec(lines[at + 1]!);
    if (!m) return bad('bad blob line');
    blob = { sha256: m[1]!, size: Number(m[2]) };
    if (end + 2 !== bytes.length) bad('a blob entry carries no inline record');
  } else if (lines.length !== at + 1) {
    bad('unexpected header lines');
  }
  return { origin, region, source, producer, received, attrs, salt, blob, body: bytes.subarray(end + 2) };
}
