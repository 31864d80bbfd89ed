/**
 * The checks and signatures of one integration round, shared by LogSequencer (one node) and
 * SharedLogSequencer (many nodes): never sign a checkpoint that is not an extension of the last
 * published one, and publish it only with the witnesses' cosignatures when witnesses are set.
 */
import {
  formatCheckpoint,
  proveConsistency,
  verifyConsistency,
  signNote,
  type NodeReader,
  type NoteSignature,
  type Sha256,
} from '@custody/verify';
import { CustodyError } from '../errors.js';
import type { WitnessSet } from '../witness/client.js';

export interface RoundToSign {
  name: string;
  origin: string;
  /** The published size and root the round extends. */
  S: number;
  publishedRoot: Uint8Array;
  /** The new size and root, and the tree's hashes at N. */
  N: number;
  root: Uint8Array;
  entries: number;
  reader: NodeReader;
  h: Sha256;
  signer: { sign(body: string): NoteSignature };
}

/** Checks N extends S consistently and returns the log-signed checkpoint note (C2SP tlog-checkpoint). */
export function checkAndSign(r: RoundToSign): string {
  if (r.N !== r.S + r.entries) throw new CustodyError('INTERNAL', `integrator reports size ${r.N} after ${r.entries} entries from ${r.S}`);
  if (r.S > 0) {
    // Never sign a checkpoint that is not an extension of the last one (C2SP tlog-checkpoint).
    try {
      const proof = proveConsistency(r.S, r.N, r.reader, r.h);
      verifyConsistency(r.S, r.N, proof, r.publishedRoot, r.root, r.h);
    } catch (e) {
      throw new CustodyError('STORAGE_CORRUPT', `Refusing to sign: the tree of log "${r.name}" at ${r.N} is not consistent with the published checkpoint at ${r.S} (${(e as Error).message}).`);
    }
  }
  return signNote(formatCheckpoint({ origin: r.origin, size: r.N, rootHash: r.root, extensions: [] }), [r.signer]);
}

/**
 * Sends the signed checkpoint to the witnesses; returns it with their cosignature lines when
 * the policy is met, else throws WITNESS_POLICY (the previous checkpoint stays published).
 */
export async function cosignOrRefuse(witnesses: WitnessSet, r: { name: string; origin: string; N: number; text: string; publishedSize: number; prove: (from: number) => Uint8Array[] }): Promise<string> {
  const res = await witnesses.cosign({ log: r.name, origin: r.origin, size: r.N, text: r.text, publishedSize: r.publishedSize, prove: r.prove });
  if (!res.text) {
    const refused = res.outcomes.filter((o) => !o.ok).map((o) => o.witness);
    throw new CustodyError('WITNESS_POLICY', `The checkpoint of log "${r.name}" at ${r.N} has ${res.cosigned} of the ${res.policy} witness cosignatures it needs (no cosignature from ${refused.join(', ')}); the entries are durable and will be published when enough witnesses cosign.`, { cosigned: res.cosigned, policy: res.policy });
  }
  return res.text;
}
