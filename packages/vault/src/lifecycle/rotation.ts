/**
 * Rotating a log's key-encryption key (KEK). The keyring gets a new KEK with the next id,
 * saved atomically; the running sequencer and its integrator thread seal every object written
 * from then on (bundles, blobs, journal segments) with it. Old objects keep naming the KEK that
 * wraps their data key (the id in their sealed header), so they stay readable.
 *
 * The signing key is not rotated: it is the log's identity. Auditors pin its verifier key and
 * check every later checkpoint against it; a checkpoint signed by another key is exactly what
 * `custody verify` reports as KEY_CHANGED. A new signing key means a new log (a new origin).
 */
import type { Vault } from '../vault.js';
import type { ActionContext } from '../auth/actions.js';

export interface RotationOutcome {
  log: string;
  kekId: number;
  previousKekId: number;
  message: string;
}

export async function rotateLogKek(vault: Vault, log: string, ctx: ActionContext): Promise<RotationOutcome> {
  const seq = vault.sequencer(log);
  const kek = vault.keyring.rotateKek(log);
  seq.useKek(kek);
  const previousKekId = kek.id - 1;
  await vault.audit({
    type: 'log.keys.rotated',
    log,
    kekId: kek.id,
    previousKekId,
    approval: { request: ctx.requestId, requestedBy: ctx.requestedBy, approvedBy: ctx.approvedBy },
  });
  return {
    log,
    kekId: kek.id,
    previousKekId,
    message: `Log ${log} now seals new bundles and blobs with encryption key ${kek.id}; older data stays readable with the earlier keys. The signing key is unchanged.`,
  };
}
