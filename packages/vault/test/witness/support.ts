/** A tiny in-memory log for witness tests: leaves, signed checkpoints and consistency proofs. */
import { Ed25519NoteSigner, formatCheckpoint, hashLeaf, naiveRoot, proveConsistency, signNote, toBase64, utf8Encode, type NodeReader } from '@custody/verify';
import { nativeSha256 } from '../../src/crypto/sha256.js';

export class TestLog {
  readonly signer: Ed25519NoteSigner;
  readonly leaves: Uint8Array[] = [];
  constructor(
    readonly origin: string,
    seedByte: number,
    private readonly salt = 'a',
  ) {
    this.signer = new Ed25519NoteSigner(origin, new Uint8Array(32).fill(seedByte));
  }
  get vkey(): string {
    return this.signer.verifierKey;
  }
  grow(n: number): this {
    for (let i = 0; i < n; i++) this.leaves.push(hashLeaf(utf8Encode(`${this.salt}/${this.leaves.length}`), nativeSha256));
    return this;
  }
  root(size: number): Uint8Array {
    return naiveRoot(this.leaves.slice(0, size), nativeSha256);
  }
  private reader(): NodeReader {
    return (level, index) => naiveRoot(this.leaves.slice(index * 2 ** level, (index + 1) * 2 ** level), nativeSha256);
  }
  /** The signed checkpoint at `size` (default: all leaves), optionally signed by another signer. */
  checkpoint(size = this.leaves.length, signer: Ed25519NoteSigner = this.signer): string {
    return signNote(formatCheckpoint({ origin: this.origin, size, rootHash: this.root(size), extensions: [] }), [signer]);
  }
  proof(from: number, to = this.leaves.length): Uint8Array[] {
    return from === 0 || from === to ? [] : proveConsistency(from, to, this.reader(), nativeSha256);
  }
  /** The add-checkpoint body (C2SP tlog-witness). */
  body(old: number, size = this.leaves.length, proof = this.proof(old, size), cp = this.checkpoint(size)): string {
    return `old ${old}\n${proof.map((p) => toBase64(p) + '\n').join('')}\n${cp}`;
  }
}

export async function post(url: string, body: string | Buffer, path = '/add-checkpoint', method = 'POST'): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(url + path, { method, body: method === 'GET' ? undefined : body });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}
