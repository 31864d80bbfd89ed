/**
 * The entry envelope: the exact bytes that become a leaf of the log (docs/FORMAT.md).
 *
 *   custody-entry/v1\n
 *   log <origin>\n
 *   region <region>\n
 *   source <source type>\n
 *   producer <principal name>\n
 *   received <UTC time, RFC 3339 with milliseconds>\n
 *   [attr <key> <value>\n]*               delivery context, keys sorted (e.g. logGroup)
 *   salt <base64 of 16 random bytes>\n
 *   [blob sha256:<hex> <size>\n]          only when the record lives in a blob
 *   \n
 *   <the record, byte for byte as received>  (empty when it lives in a blob)
 *
 * The salt makes every leaf hash unguessable, so nobody can confirm a guessed record from
 * the public tiles, and a record can later be shredded while its leaf hash stays valid.
 */
import { randomFillSync } from 'node:crypto';
import { CustodyError } from '../errors.js';

export const ENTRY_MAGIC = 'custody-entry/v1';
/** C2SP entry bundles prefix each entry with a uint16 length. */
export const MAX_ENTRY_SIZE = 65535;
export const MAX_RECORD_SIZE = 1024 * 1024;
const SALT_SIZE = 16;
const FIELD_RE = /^[\x21-\x7e]{1,256}$/;

export interface EnvelopeFields {
  origin: string;
  region: string;
  source: string;
  producer: string;
  received: string;
  /** Delivery context shared by a batch (CloudWatch log group, S3 object …), see ATTR_KEY_RE. */
  attrs?: Record<string, string>;
}

export const ATTR_KEY_RE = /^[a-z][a-zA-Z0-9.-]{0,31}$/;

/** Keeps the attributes a header can carry: valid keys, values that pass checkField. */
export function cleanAttrs(attrs: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!attrs) return undefined;
  const out: Record<string, string> = {};
  let n = 0;
  for (const k of Object.keys(attrs).sort()) {
    const v = attrs[k];
    if (typeof v !== 'string' || !ATTR_KEY_RE.test(k) || !FIELD_RE.test(v)) continue;
    out[k] = v;
    if (++n >= 16) break;
  }
  return n > 0 ? out : undefined;
}

export interface BlobRef {
  sha256: string; // hex
  size: number;
}

export interface ParsedEntry extends EnvelopeFields {
  salt: Buffer;
  record: Buffer | null; // null when it lives in a blob
  blob: BlobRef | null;
}

export function checkField(name: string, value: string): void {
  if (!FIELD_RE.test(value)) {
    throw new CustodyError('BAD_REQUEST', `${name} must be 1 to 256 printable ASCII characters without spaces; got ${JSON.stringify(value.slice(0, 64))}.`);
  }
}

/** The part of the header every entry of one batch shares. */
export function envelopePrefix(f: EnvelopeFields): Buffer {
  checkField('origin', f.origin);
  checkField('region', f.region);
  checkField('source', f.source);
  checkField('producer', f.producer);
  checkField('received', f.received);
  let attrs = '';
  for (const [k, v] of Object.entries(f.attrs ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!ATTR_KEY_RE.test(k)) throw new CustodyError('BAD_REQUEST', `Attribute name ${JSON.stringify(k.slice(0, 40))} is not allowed.`);
    checkField(`attribute ${k}`, v);
    attrs += `attr ${k} ${v}\n`;
  }
  return Buffer.from(`${ENTRY_MAGIC}\nlog ${f.origin}\nregion ${f.region}\nsource ${f.source}\nproducer ${f.producer}\nreceived ${f.received}\n${attrs}salt `);
}

/** Room left for an inline record after the header. */
export function inlineLimit(prefix: Buffer): number {
  return MAX_ENTRY_SIZE - prefix.length - 24 - 2;
}

/**
 * Builds one envelope per record, already in the C2SP bundle / journal encoding: each entry as
 * a big-endian uint16 length followed by its bytes, all in one buffer (one allocation, one
 * copy of each record). `blobs[i]`, when set, replaces record i by a reference (the record
 * itself is stored as a content-addressed blob).
 */
export function encodeEnvelopes(prefix: Buffer, records: Buffer[], blobs?: Array<BlobRef | undefined>): Buffer {
  const n = records.length;
  const salts = Buffer.allocUnsafe(n * SALT_SIZE);
  randomFillSync(salts);
  const blobLines: Array<Buffer | undefined> = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const blob = blobs?.[i];
    if (blob) blobLines[i] = Buffer.from(`blob sha256:${blob.sha256} ${blob.size}\n`);
    const len = prefix.length + 24 + 2 + (blob ? blobLines[i]!.length : records[i]!.length);
    if (len > MAX_ENTRY_SIZE) throw new CustodyError('RECORD_TOO_LARGE', `Record ${i + 1} does not fit in one entry; store it as a blob.`);
    total += 2 + len;
  }
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (let i = 0; i < n; i++) {
    const blobLine = blobLines[i];
    const body = blobLine ?? records[i]!;
    const len = prefix.length + 24 + 2 + body.length;
    out.writeUInt16BE(len, off);
    off += 2;
    off += prefix.copy(out, off);
    off += out.write(salts.toString('base64', i * SALT_SIZE, (i + 1) * SALT_SIZE), off, 'latin1');
    if (blobLine) {
      out[off++] = 0x0a;
      off += blobLine.copy(out, off);
      out[off++] = 0x0a;
    } else {
      out[off++] = 0x0a;
      out[off++] = 0x0a;
      off += body.copy(out, off);
    }
  }
  return out;
}

/** The entries of an encoded buffer (uint16 length ‖ bytes)*, as views into it. */
export function splitEncoded(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    const n = buf.readUInt16BE(off);
    out.push(buf.subarray(off + 2, off + 2 + n));
    off += 2 + n;
  }
  if (off !== buf.length) throw new CustodyError('STORAGE_CORRUPT', 'Encoded entries end in the middle of an entry.');
  return out;
}

/** One envelope per record (see encodeEnvelopes), as separate views. */
export function buildEnvelopes(prefix: Buffer, records: Buffer[], blobs?: Array<BlobRef | undefined>): Buffer[] {
  return splitEncoded(encodeEnvelopes(prefix, records, blobs));
}

function bad(why: string): never {
  throw new CustodyError('STORAGE_CORRUPT', `Entry is not a valid ${ENTRY_MAGIC} envelope: ${why}.`);
}

export function parseEntry(bytes: Uint8Array): ParsedEntry {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = b.indexOf('\n\n');
  if (end < 0) bad('no blank line after the header');
  const lines = b.toString('latin1', 0, end).split('\n');
  const want = ['', 'log', 'region', 'source', 'producer', 'received'];
  if (lines[0] !== ENTRY_MAGIC) bad('wrong first line');
  const vals: string[] = [];
  const field = (i: number, name: string): string => {
    const line = lines[i];
    if (line === undefined || !line.startsWith(name + ' ')) bad(`line ${i + 1} must start with "${name} "`);
    const v = line.slice(name.length + 1);
    if (!FIELD_RE.test(v)) bad(`bad ${name} value`);
    return v;
  };
  for (let i = 1; i < want.length; i++) vals.push(field(i, want[i]!));
  let at = want.length;
  let attrs: Record<string, string> | undefined;
  let lastKey = '';
  while (lines[at]?.startsWith('attr ')) {
    const m = /^attr (\S+) (\S+)$/.exec(lines[at]!);
    if (!m || !ATTR_KEY_RE.test(m[1]!) || !FIELD_RE.test(m[2]!) || m[1]! <= lastKey) bad('bad attr line');
    lastKey = m[1]!;
    (attrs ??= {})[m[1]!] = m[2]!;
    at++;
  }
  const saltText = field(at, 'salt');
  const salt = Buffer.from(saltText, 'base64');
  if (salt.length !== SALT_SIZE || salt.toString('base64') !== saltText) bad('bad salt');
  let blob: BlobRef | null = null;
  if (lines.length === at + 2) {
    const m = /^blob sha256:([0-9a-f]{64}) (0|[1-9][0-9]{0,9})$/.exec(lines[at + 1]!);
    if (!m) bad('bad blob line');
    blob = { sha256: m[1]!, size: Number(m[2]) };
    if (end + 2 !== b.length) bad('a blob entry carries no inline record');
  } else if (lines.length !== at + 1) {
    bad('unexpected header lines');
  }
  return {
    origin: vals[0]!,
    region: vals[1]!,
    source: vals[2]!,
    producer: vals[3]!,
    received: vals[4]!,
    ...(attrs ? { attrs } : {}),
    salt,
    record: blob ? null : b.subarray(end + 2),
    blob,
  };
}

/** The base64 salt of a well-formed entry (its header is fixed up to the salt line). */
export function saltOf(entry: Buffer): string {
  const at = entry.indexOf('\nsalt ');
  return entry.toString('latin1', at + 6, at + 6 + 24);
}
