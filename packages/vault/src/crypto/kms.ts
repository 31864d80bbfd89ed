/**
 * AWS KMS as a key provider (docs/ENCRYPTION.md, "AWS KMS"). Each region log's entry bundles
 * are sealed under a data key from `GenerateDataKey` (AES_256) of ITS region's KMS key, asked
 * of a KMS client in that region and never another; the data key is bound to the log origin
 * and bundle index by the encryption context, so a bundle copied to another position (or log)
 * does not decrypt. The keyring's own secrets are wrapped by a key that `Encrypt` sealed under
 * the region's KMS key (crypto/keyring.ts).
 *
 * Configuration is the SDK's standard chain: credentials (environment, profile, instance role
 * …), AWS_ENDPOINT_URL_KMS for a VPC endpoint. The region of each client is the log's region,
 * never AWS_REGION.
 *
 * Decrypted data keys are cached in memory, bounded in count and time, per (region, key,
 * encryption context, ciphertext): a search or export over many entries of one bundle asks
 * KMS once. The context is part of the cache key, so the cache cannot open a bundle at
 * another position either.
 */
import { createHash } from 'node:crypto';
import { KMSClient, GenerateDataKeyCommand, DecryptCommand, EncryptCommand } from '@aws-sdk/client-kms';
import { CustodyError, type ErrorCode } from '../errors.js';

export type EncryptionContext = Record<string, string>;

/** A data key: its plaintext (never stored) and the KMS ciphertext that is stored with the data. */
export interface DataKey {
  /** The KMS key that made it, as KMS names it (an ARN). */
  keyId: string;
  plaintext: Buffer;
  blob: Buffer;
}

/** An AWS region name: the only thing that decides which KMS endpoint a client talks to. */
export const KMS_REGION_RE = /^[a-z]{2}(-[a-z]+){1,2}-[0-9]{1,2}$/;
/** A key id, key ARN, alias name or alias ARN, as KMS accepts them (KeyId: 1–2048 characters). */
export const KMS_KEY_RE = /^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)\/[A-Za-z0-9/_+=,.@:-]{1,256}|alias\/[A-Za-z0-9/_+=,.@:-]{1,256}|[A-Za-z0-9-]{1,128})$/;

/** The region an ARN names, or null for a bare key id or alias name. */
export function regionOfKeyArn(keyId: string): string | null {
  const m = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):/.exec(keyId);
  return m ? m[1]! : null;
}

/**
 * Checks a KMS key given for a region: well formed, and (an ARN) in that region — a key of
 * region A is never configured for region B.
 */
export function checkKmsKey(region: string, keyId: string): void {
  if (typeof region !== 'string' || typeof keyId !== 'string') throw new CustodyError('CONFIG', 'A KMS key is given as a region and a key ARN, key id or alias (text).');
  if (!KMS_REGION_RE.test(region)) throw new CustodyError('CONFIG', `"${region.slice(0, 64)}" is not an AWS region name (like eu-west-1): a KMS key belongs to one region.`);
  if (!KMS_KEY_RE.test(keyId)) throw new CustodyError('CONFIG', `"${keyId.slice(0, 100)}" is not a KMS key id, key ARN or alias (alias/name) for region ${region}.`);
  const r = regionOfKeyArn(keyId);
  if (r !== null && r !== region) {
    throw new CustodyError('CONFIG', `The KMS key ${keyId} is in region ${r}, not ${region}: each region's logs use a key of their own region. Give a key created in ${region}.`);
  }
}

const NAMES: Record<string, ErrorCode> = {
  AccessDeniedException: 'KMS_ACCESS_DENIED',
  CredentialsProviderError: 'KMS_ACCESS_DENIED',
  UnrecognizedClientException: 'KMS_ACCESS_DENIED',
  InvalidSignatureException: 'KMS_ACCESS_DENIED',
  ExpiredTokenException: 'KMS_ACCESS_DENIED',
  DisabledException: 'KMS_KEY_DISABLED',
  KMSInvalidStateException: 'KMS_KEY_DISABLED',
  KeyUnavailableException: 'KMS_KEY_DISABLED',
  NotFoundException: 'KMS_KEY_NOT_FOUND',
  InvalidKeyUsageException: 'KMS_KEY_NOT_FOUND',
};

/**
 * A KMS failure as a CustodyError that says what to do. The SDK's message is included only for
 * the unrecognised cases; it never holds key material (KMS never returns plaintext in errors).
 */
export function kmsError(e: unknown, op: string, region: string, keyId: string, what: string): CustodyError {
  if (e instanceof CustodyError) return e;
  const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = err?.name ?? '';
  const key = `KMS key ${keyId} in ${region}`;
  const code = NAMES[name];
  if (name === 'InvalidCiphertextException' || name === 'IncorrectKeyException') {
    return new CustodyError('STORAGE_CORRUPT', `${what}: AWS KMS does not decrypt its data key with ${key} and its encryption context: it was altered, or moved from another position or log.`, { what, region });
  }
  if (code === 'KMS_ACCESS_DENIED') {
    return new CustodyError(code, `AWS KMS refused ${op} on the ${key} (${name}) for ${what}: allow the vault's role kms:${op} on that key (the key policy and IAM; docs/ENCRYPTION.md), and check its AWS credentials.`, { region, keyId });
  }
  if (code === 'KMS_KEY_DISABLED') {
    return new CustodyError(code, `The ${key} is disabled or pending deletion (${name}), so ${what} cannot be sealed or read: enable the key again (aws kms enable-key, or cancel its deletion). Acknowledged entries wait in the journal.`, { region, keyId });
  }
  if (code === 'KMS_KEY_NOT_FOUND') {
    return new CustodyError(code, `The ${key} does not exist or cannot do this (${name}) for ${what}: check the key ARN configured for ${region} (custody keys rotate --kms-key to change it).`, { region, keyId });
  }
  const status = err?.$metadata?.httpStatusCode;
  return new CustodyError(
    'KMS_UNAVAILABLE',
    `AWS KMS in ${region} could not be used for ${what} (${name || 'error'}${status ? `, HTTP ${status}` : ''}: ${String(err?.message ?? e).slice(0, 200)}). The vault retries; acknowledged entries wait in the journal.`,
    { region, keyId },
  );
}

interface CacheEntry {
  key: Buffer;
  at: number;
}

export interface KmsOptions {
  /** Decrypted data keys kept (default 1024). */
  cacheEntries?: number;
  /** How long one is kept (default 5 minutes). */
  cacheMs?: number;
}

/** KMS clients of this thread, one per region, and the cache of decrypted data keys. */
export class Kms {
  private readonly clients = new Map<string, KMSClient>();
  private readonly cache = new Map<string, CacheEntry>();
  private readonly cacheEntries: number;
  private readonly cacheMs: number;

  constructor(opts: KmsOptions = {}) {
    this.cacheEntries = opts.cacheEntries ?? 1024;
    this.cacheMs = opts.cacheMs ?? 5 * 60_000;
  }

  /** The client of `region`; the region is the log's, so requests are signed for and sent to it. */
  client(region: string): KMSClient {
    if (!KMS_REGION_RE.test(region)) throw new CustodyError('CONFIG', `"${region.slice(0, 64)}" is not an AWS region name.`);
    let c = this.clients.get(region);
    if (!c) {
      c = new KMSClient({ region, maxAttempts: 3, requestHandler: { connectionTimeout: 5_000, requestTimeout: 15_000 } });
      this.clients.set(region, c);
    }
    return c;
  }

  async generateDataKey(region: string, keyId: string, context: EncryptionContext, what: string): Promise<DataKey> {
    let out;
    try {
      out = await this.client(region).send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
    } catch (e) {
      throw kmsError(e, 'GenerateDataKey', region, keyId, what);
    }
    if (!out.Plaintext || out.Plaintext.length !== 32 || !out.CiphertextBlob || out.CiphertextBlob.length === 0 || out.CiphertextBlob.length > 6144) {
      throw new CustodyError('KMS_UNAVAILABLE', `AWS KMS in ${region} answered GenerateDataKey for ${what} without a 256-bit data key; the vault retries.`, { region, keyId });
    }
    return { keyId: out.KeyId ?? keyId, plaintext: Buffer.from(out.Plaintext), blob: Buffer.from(out.CiphertextBlob) };
  }

  /** The plaintext of a data key (cached: bounded in count and age). */
  async decrypt(region: string, keyId: string, blob: Uint8Array, context: EncryptionContext, what: string): Promise<Buffer> {
    const ck = createHash('sha256').update(JSON.stringify([region, keyId, Object.entries(context).sort()])).update(blob).digest('base64');
    const hit = this.cache.get(ck);
    const now = Date.now();
    if (hit && now - hit.at < this.cacheMs) {
      this.cache.delete(ck);
      this.cache.set(ck, hit);
      return hit.key;
    }
    let out;
    try {
      out = await this.client(region).send(new DecryptCommand({ CiphertextBlob: blob, KeyId: keyId, EncryptionContext: context }));
    } catch (e) {
      throw kmsError(e, 'Decrypt', region, keyId, what);
    }
    if (!out.Plaintext || out.Plaintext.length !== 32) {
      throw new CustodyError('STORAGE_CORRUPT', `${what}: AWS KMS decrypted its data key to something that is not a 256-bit key: it was not written by Custody.`, { what });
    }
    const key = Buffer.from(out.Plaintext);
    this.cache.set(ck, { key, at: now });
    while (this.cache.size > this.cacheEntries) this.cache.delete(this.cache.keys().next().value!);
    return key;
  }

  async encrypt(region: string, keyId: string, plaintext: Uint8Array, context: EncryptionContext, what: string): Promise<Buffer> {
    try {
      const out = await this.client(region).send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: context }));
      if (!out.CiphertextBlob || out.CiphertextBlob.length === 0) throw new Error('no CiphertextBlob in the answer');
      return Buffer.from(out.CiphertextBlob);
    } catch (e) {
      throw kmsError(e, 'Encrypt', region, keyId, what);
    }
  }

  /** Forgets every cached data key (tests; a key that was disabled should stop working at once). */
  clearCache(): void {
    this.cache.clear();
  }

  destroy(): void {
    this.clearCache();
    for (const c of this.clients.values()) c.destroy();
    this.clients.clear();
  }
}

let shared: Kms | null = null;
/** The KMS clients of this thread (a worker thread gets its own). */
export function sharedKms(): Kms {
  return (shared ??= new Kms());
}
