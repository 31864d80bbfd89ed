/**
 * CloudTrail's public keys: from a file (the output of `aws cloudtrail list-public-keys`), or
 * from the CloudTrail ListPublicKeys API. A key is chosen by the digest's
 * `digestPublicKeyFingerprint`; its `Value` is a DER PKCS#1 RSA public key (base64 in the CLI's
 * JSON output) — aws-sources.md, "Public keys".
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { CustodyError } from '../errors.js';

export interface CloudTrailPublicKey {
  /** Lower-case hex, as digests name it. */
  fingerprint: string;
  key: KeyObject;
  validityStart: string | null;
  validityEnd: string | null;
}

export class PublicKeySet {
  private readonly byFingerprint = new Map<string, CloudTrailPublicKey>();
  constructor(keys: CloudTrailPublicKey[] = []) {
    for (const k of keys) this.add(k);
  }
  add(k: CloudTrailPublicKey): void {
    this.byFingerprint.set(k.fingerprint.toLowerCase(), k);
  }
  get(fingerprint: string): CloudTrailPublicKey | undefined {
    return this.byFingerprint.get(fingerprint.toLowerCase());
  }
  get size(): number {
    return this.byFingerprint.size;
  }
  fingerprints(): string[] {
    return [...this.byFingerprint.keys()];
  }
}

function timeText(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (v instanceof Date) return v.toISOString();
  // The CLI prints timestamps as ISO 8601 strings (v2) or epoch seconds (v1).
  if (typeof v === 'number' && Number.isFinite(v)) return new Date(v * 1000).toISOString();
  if (typeof v === 'string') return v;
  return null;
}

/** One ListPublicKeys entry {Value, Fingerprint, ValidityStartTime, ValidityEndTime} → a key. */
export function publicKeyFromEntry(entry: unknown, where: string): CloudTrailPublicKey {
  if (typeof entry !== 'object' || entry === null) throw new CustodyError('BAD_REQUEST', `${where} is not an object with Value and Fingerprint.`);
  const e = entry as Record<string, unknown>;
  const fingerprint = e.Fingerprint;
  if (typeof fingerprint !== 'string' || !/^[0-9a-fA-F]{8,128}$/.test(fingerprint)) throw new CustodyError('BAD_REQUEST', `${where} has no hex Fingerprint.`);
  const value = e.Value;
  let key: KeyObject;
  try {
    if (value instanceof Uint8Array) key = createPublicKey({ key: Buffer.from(value), format: 'der', type: 'pkcs1' });
    else if (typeof value === 'string' && value.includes('-----BEGIN')) key = createPublicKey(value);
    else if (typeof value === 'string' && /^[A-Za-z0-9+/=\s]+$/.test(value)) key = createPublicKey({ key: Buffer.from(value, 'base64'), format: 'der', type: 'pkcs1' });
    else throw new Error('no Value');
  } catch {
    throw new CustodyError('BAD_REQUEST', `${where} (fingerprint ${fingerprint}) has no readable Value: it must be the base64 DER PKCS#1 RSA key that aws cloudtrail list-public-keys prints, or a PEM public key.`);
  }
  if (key.asymmetricKeyType !== 'rsa') throw new CustodyError('BAD_REQUEST', `${where} (fingerprint ${fingerprint}) is not an RSA key; CloudTrail signs with RSA.`);
  return { fingerprint: fingerprint.toLowerCase(), key, validityStart: timeText(e.ValidityStartTime), validityEnd: timeText(e.ValidityEndTime) };
}

/**
 * A keys file: `aws cloudtrail list-public-keys --output json` as printed
 * ({"PublicKeyList": [...]}), a bare array of its entries, or several such outputs, one per
 * line (one per region).
 */
export function parsePublicKeysText(text: string, name: string): PublicKeySet {
  const docs: unknown[] = [];
  const trimmed = text.trim();
  if (trimmed === '') throw new CustodyError('BAD_REQUEST', `${name} is empty; write the output of aws cloudtrail list-public-keys into it.`);
  try {
    docs.push(JSON.parse(trimmed));
  } catch {
    for (const [i, line] of trimmed.split('\n').entries()) {
      if (line.trim() === '') continue;
      try {
        docs.push(JSON.parse(line));
      } catch {
        throw new CustodyError('BAD_REQUEST', `${name} is not JSON (line ${i + 1}); write the output of aws cloudtrail list-public-keys --output json into it.`);
      }
    }
  }
  const set = new PublicKeySet();
  for (const doc of docs) {
    const list = Array.isArray(doc) ? doc : (doc as { PublicKeyList?: unknown })?.PublicKeyList;
    if (!Array.isArray(list)) throw new CustodyError('BAD_REQUEST', `${name} has no PublicKeyList; write the output of aws cloudtrail list-public-keys --output json into it.`);
    list.forEach((entry, i) => set.add(publicKeyFromEntry(entry, `${name}: PublicKeyList[${i}]`)));
  }
  if (set.size === 0) throw new CustodyError('BAD_REQUEST', `${name} lists no public key.`);
  return set;
}

export function readPublicKeysFile(path: string): PublicKeySet {
  let text: string;
  try {
    if (statSync(path).size > 16 * 1024 * 1024) throw new CustodyError('BAD_REQUEST', `${path} is larger than 16 MiB; it should hold the output of aws cloudtrail list-public-keys.`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof CustodyError) throw e;
    throw new CustodyError('BAD_REQUEST', `Cannot read the public keys file ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (e as Error).message}.`);
  }
  return parsePublicKeysText(text, path);
}

/**
 * The public keys of the given regions for a time range, from CloudTrail ListPublicKeys (one
 * call per region; pages followed). Needs credentials allowed cloudtrail:ListPublicKeys.
 */
export async function listPublicKeys(regions: string[], startMs: number, endMs: number, opts: { endpoint?: string } = {}): Promise<PublicKeySet> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { CloudTrailClient, ListPublicKeysCommand } = await import('@aws-sdk/client-cloudtrail');
  const set = new PublicKeySet();
  for (const region of regions) {
    const client = new CloudTrailClient({ region, maxAttempts: 4, ...(opts.endpoint ? { endpoint: opts.endpoint } : {}) });
    try {
      let next: string | undefined;
      let pages = 0;
      do {
        const r = await client.send(new ListPublicKeysCommand({
          // A margin of a day each side: a key's validity is not aligned with digest hours.
          ...(Number.isFinite(startMs) ? { StartTime: new Date(startMs - 86_400_000) } : {}),
          ...(Number.isFinite(endMs) ? { EndTime: new Date(Math.min(endMs + 86_400_000, Date.now())) } : {}),
          ...(next ? { NextToken: next } : {}),
        }));
        (r.PublicKeyList ?? []).forEach((entry, i) => set.add(publicKeyFromEntry(entry, `ListPublicKeys (${region}) [${i}]`)));
        next = r.NextToken;
      } while (next && ++pages < 1000);
    } catch (e) {
      if (e instanceof CustodyError) throw e;
      const err = e as { name?: string; message?: string };
      const hint = /Credential/i.test(err.name ?? '') || /credential/i.test(err.message ?? '')
        ? 'no AWS credentials were found'
        : err.name === 'AccessDeniedException' || err.name === 'AccessDenied'
          ? 'the credentials are not allowed cloudtrail:ListPublicKeys'
          : `CloudTrail answered ${err.name ?? 'an error'}${err.message ? `: ${err.message.slice(0, 200)}` : ''}`;
      throw new CustodyError('BAD_REQUEST', `Cannot get CloudTrail's public keys for ${region} (${hint}). Give them with --public-keys <file>: aws cloudtrail list-public-keys --region ${region} --output json > keys.json.`);
    } finally {
      client.destroy();
    }
  }
  return set;
}
