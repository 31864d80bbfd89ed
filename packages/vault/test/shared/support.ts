/**
 * Helpers for the shared-log tests: a keyring every node process opens, deterministic entries
 * (so the parent can check each acknowledged batch at its indices), child node processes
 * (node-child.ts) driven over stdin/stdout, and reading a whole log back from S3.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { decodeBundle } from '@custody/verify';
import { Keyring, type LogKeys } from '../../src/crypto/keyring.js';
import type { LogStore, LogStoreInit } from '../../src/storage/log-store.js';
import { waitFor } from '../support/server.js';


export function makeKeys(dir: string, log: string): { path: string; keys: LogKeys } {
  const path = join(dir, 'keyring.json');
  const keys = Keyring.create(path, { passphrase: null }).addLog(log);
  return { path, keys };
}

export function entry(node: string, seq: number, i: number): Buffer {
  return Buffer.from(`${node}|${seq}|${i}|payload-${'x'.repeat((seq * 7 + i) % 40)}`);
}

/** Entries encoded for add(): uint16 length ‖ bytes each. */
export function encode(entries: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const h = Buffer.alloc(2);
    h.writeUInt16BE(e.length);
    parts.push(h, e);
  }
  return Buffer.concat(parts);
}

export function batch(node: string, seq: number, count: number): Buffer {
  return encode(Array.from({ length: count }, (_, i) => entry(node, seq, i)));
}

/** Every entry of the log up to `size`, read from the store's bundles. */
export async function readAll(store: LogStore, size: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let k = 0; k * 256 < size; k++) {
    const width = Math.min(256, size - k * 256);
    const b = await store.readBundle(k, width);
    if (!b) throw new Error(`bundle ${k}/${width} is missing`);
    for (const e of decodeBundle(b, width)) out.push(Buffer.from(e));
  }
  return out;
}

export interface Ack {
  node: string;
  seq: number;
  first: number;
  count: number;
}

/** Checks every acknowledged batch is at its indices and no entry is in the tree twice. */
export function checkTree(entries: Buffer[], acks: Ack[]): { problems: string[] } {
  const problems: string[] = [];
  for (const a of acks) {
    for (let i = 0; i < a.count; i++) {
      const got = entries[a.first + i];
      if (!got || !got.equals(entry(a.node, a.seq, i))) {
        problems.push(`acked ${a.node}#${a.seq} entry ${i} is not at index ${a.first + i} (found ${got?.toString().slice(0, 30) ?? 'nothing'})`);
        break;
      }
    }
  }
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    const k = e.toString().split('|').slice(0, 3).join('|');
    if (seen.has(k)) problems.push(`entry ${k} is in the tree twice (again at ${i})`);
    seen.add(k);
  });
  return { problems };
}

export interface ChildConfig {
  url: string;
  keyring: string;
  log: string;
  origin: string;
  node: string;
  s3: Extract<LogStoreInit, { kind: 's3' }>;
  cacheDir: string;
}

export interface ChildEvent {
  event: string;
  node: string;
  t: number;
  [k: string]: unknown;
}

/** A vault node in its own process (node-child.ts). */
export class ChildNode {
  readonly proc: ChildProcess;
  readonly events: ChildEvent[] = [];
  readonly acks: Ack[] = [];
  constructor(readonly cfg: ChildConfig) {
    const script = fileURLToPath(new URL('./node-child.js', import.meta.url));
    this.proc = spawn(process.execPath, [script, Buffer.from(JSON.stringify(cfg)).toString('base64')], { stdio: ['pipe', 'pipe', 'inherit'] });
    let buf = '';
    this.proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const e = JSON.parse(buf.slice(0, i)) as ChildEvent;
        buf = buf.slice(i + 1);
        this.events.push(e);
        if (e.event === 'acked') this.acks.push({ node: cfg.node, seq: e.seq as number, first: e.first as number, count: e.count as number });
      }
    });
    this.proc.stdin!.on('error', () => undefined);
  }
  send(cmd: Record<string, unknown>): void {
    this.proc.stdin!.write(JSON.stringify(cmd) + '\n');
  }
  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
  waitEvent(what: string, pred: (e: ChildEvent) => boolean = () => true, timeoutMs = 30_000): Promise<ChildEvent> {
    return waitFor(`${this.cfg.node}: ${what}`, () => this.events.find((e) => e.event === what && pred(e)), timeoutMs);
  }
  get leading(): boolean {
    const l = [...this.events].reverse().find((e) => e.event === 'lease');
    return !!l && l.epoch !== null;
  }
  exited(): Promise<void> {
    if (!this.alive) return Promise.resolve();
    return new Promise((r) => this.proc.once('exit', () => r()));
  }
}
