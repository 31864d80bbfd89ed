/**
 * Notifier secrets at rest: AES-256-GCM under a key derived with HKDF-SHA256 from the audit
 * log's signing seed (info "custody notifier secrets v1"), bound to the notifier's id as
 * additional data so a sealed value copied onto another row does not open.
 *
 * A vault-level key of its own (in the keyring, rotatable) would be cleaner than deriving from
 * a signing seed; HKDF with a distinct info string keeps the two uses apart meanwhile.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { CustodyError } from '../../errors.js';

const INFO = 'custody notifier secrets v1';
const PREFIX = 'v1:';

export class SecretBox {
  private readonly key: Buffer;
  constructor(seed: Buffer) {
    this.key = Buffer.from(hkdfSync('sha256', seed, Buffer.alloc(0), INFO, 32));
  }

  seal(id: string, secrets: Record<string, string>): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(id));
    const ct = Buffer.concat([c.update(JSON.stringify(secrets), 'utf8'), c.final()]);
    return PREFIX + Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64');
  }

  /** A keyed fingerprint of a whole configuration (to tell whether it changed without storing secrets in clear). */
  fingerprint(data: string): string {
    return createHmac('sha256', this.key).update('fingerprint\n').update(data).digest('base64url');
  }

  open(id: string, sealed: string): Record<string, string> {
    const fail = (): never => {
      throw new CustodyError('KEYRING', `The secrets of notifier ${id} do not decrypt: custody.db and the keyring do not belong together, or the row was altered. Add the notifier again.`);
    };
    if (!sealed.startsWith(PREFIX)) return fail();
    const b = Buffer.from(sealed.slice(PREFIX.length), 'base64');
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
