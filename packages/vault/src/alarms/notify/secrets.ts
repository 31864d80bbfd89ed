/**
 * Notifier secrets at rest: AES-256-GCM under the keyring's vault key "notifier-secrets"
 * (crypto/keyring.ts vaultKey), bound to the notifier's id as additional data so a sealed value
 * copied onto another row does not open. Stored as "v2:" ‖ base64(iv ‖ ciphertext ‖ tag).
 *
 * Version 1 ("v1:") sealed under a key derived with HKDF-SHA256 from the audit log's signing
 * seed (info "custody notifier secrets v1"). `SecretBox.legacy` opens those rows once, so the
 * store can re-seal them under the vault key (store.ts); nothing new is sealed with it.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { CustodyError } from '../../errors.js';

/** The keyring's vault-level key that seals notifier secrets (docs/ENCRYPTION.md). */
export const NOTIFIER_KEY_PURPOSE = 'notifier-secrets';

export class SecretBox {
  private readonly key: Buffer;
  private readonly fpKey: Buffer;

  /**
   * A box under the vault key `vaultKey` (32 bytes). Sealing and fingerprints use separate
   * subkeys (HKDF-SHA256, distinct info strings).
   */
  constructor(
    vaultKey: Buffer,
    private readonly version: 'v1:' | 'v2:' = 'v2:',
  ) {
    if (version === 'v1:') {
      // Version 1: one key for both, from the audit signing seed.
      this.key = Buffer.from(hkdfSync('sha256', vaultKey, Buffer.alloc(0), 'custody notifier secrets v1', 32));
      this.fpKey = this.key;
    } else {
      this.key = Buffer.from(hkdfSync('sha256', vaultKey, Buffer.alloc(0), 'custody notifier secrets v2 seal', 32));
      this.fpKey = Buffer.from(hkdfSync('sha256', vaultKey, Buffer.alloc(0), 'custody notifier secrets v2 fingerprint', 32));
    }
  }

  /** The version-1 box of a vault (key derived from its audit log's signing seed): for migration only. */
  static legacy(auditSigningSeed: Buffer): SecretBox {
    return new SecretBox(auditSigningSeed, 'v1:');
  }

  /** Whether a stored value was sealed by this box's version. */
  sealedHere(sealed: string): boolean {
    return sealed.startsWith(this.version);
  }

  seal(id: string, secrets: Record<string, string>): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(id));
    const ct = Buffer.concat([c.update(JSON.stringify(secrets), 'utf8'), c.final()]);
    return this.version + Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64');
  }

  /** A keyed fingerprint of a whole configuration (to tell whether it changed without storing secrets in clear). */
  fingerprint(data: string): string {
    return createHmac('sha256', this.fpKey).update('fingerprint\n').update(data).digest('base64url');
  }

  open(id: string, sealed: string): Record<string, string> {
    const fail = (): never => {
      throw new CustodyError('KEYRING', `The secrets of notifier ${id} do not decrypt: custody.db and the keyring do not belong together, or the row was altered. Add the notifier again.`);
    };
    if (!sealed.startsWith(this.version)) return fail();
    const b = Buffer.from(sealed.slice(this.version.length), 'base64');
    if (b.length < 28) return fail();
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, b.subarray(0, 12));
      d.setAAD(Buffer.from(id));
      d.setAuthTag(b.subarray(b.length - 16));
      const pt = Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]);
      return JSON.parse(pt.toString('utf8')) as Record<string, string>;
    } catch {
      return fail();
    }
  }
}
