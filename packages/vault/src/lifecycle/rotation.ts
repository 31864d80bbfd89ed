/**
 * Rotating a log's key-encryption key (KEK). The keyring gets a new KEK with the next id,
 * saved atomically (re-sealed when the keyring is protected); the running sequencer and its
 * integrator thread seal every object written from then on (bundles, blobs, journal segments)
 * with it. Old objects keep naming the KEK that wraps their data key (the id in their sealed
 * header), so they stay readable.
 *
 * In a vault whose keys are in AWS KMS, a rotation may also give the log a new KMS key of its
 * region (`kmsKey`): bundles written from then on get their data keys from it; older bundles
 * name the key that made theirs (crypto/aead.ts, version 2) and keep opening with it.
 *
 * The signing key is not rotated: it is the log's identity. Auditors pin its verifier key and
 * check every later checkpoint against it; a checkpoint signed by another key is exactly what
 * `custody verify` reports as KEY_CHANGED. A new signing key means a new log (a new origin).
 */
import type { Vault } from '../vault.js';
import type { ActionContext } from '../auth/actions.js';
import { CustodyError } from '../errors.js';
import { checkKmsKey } from '../crypto/kms.js';

export interface RotationOutcome {
  log: string;
  kekId: number;
  previousKekId: number;
  /** The KMS key of the log's new bundles, when the vault uses AWS KMS. */
  kmsKey?: string;
  message: string;
}

/** Checks the `kmsKey` parameter of `log.rotate-keys`: a key of the log's own region, in a KMS vault. */
export function checkRotationKmsKey(vault: Vault, log: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 2048) throw new CustodyError('BAD_REQUEST', 'kmsKey must be a KMS key ARN, key id or alias.');
  const kms = vault.keyring.forLog(log).kmsKey;
  if (!kms) throw new CustodyError('BAD_REQUEST', `Log "${log}" does not keep its keys in AWS KMS: kmsKey applies only to a vault initialised with --kms-key.`);
  try {
    checkKmsKey(kms.region, v);
  } catch (e) {
    throw new CustodyError('BAD_REQUEST', (e as Error).message);
  }
  return v;
}

export async function rotateLogKek(vault: Vault, log: string, ctx: ActionContext, kmsKey?: string): Promise<RotationOutcome> {
  const seq = vault.sequencer(log);
  const kek = vault.keyring.rotateKek(log, kmsKey !== undefined ? { kmsKeyId: kmsKey } : {});
  seq.useKek(kek, kmsKey);
  const previousKekId = kek.id - 1;
  const active = vault.keyring.forLog(log).kmsKey?.keyId;
  await vault.audit({
    type: 'log.keys.rotated',
    log,
    kekId: kek.id,
    previousKekId,
    ...(active ? { kmsKey: active } : {}),
    approval: { request: ctx.requestId, requestedBy: ctx.requestedBy, approvedBy: ctx.approvedBy },
  });
  return {
    log,
    kekId: kek.id,
    previousKekId,
    ...(active ? { kmsKey: active } : {}),
    message:
      `Log ${log} now seals new bundles and blobs with encryption key ${kek.id}; older data stays readable with the earlier keys. The signing key is unchanged.` +
      (kmsKey ? ` New bundles get their data keys from the AWS KMS key ${kmsKey}.` : ''),
  };
}
