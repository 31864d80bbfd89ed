/**
 * Support for the push-protocol tests: a real listening socket for the real clients, auditor
 * reads of stored records (byte for byte), and hostile bodies.
 */
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { parseEntry } from '../../src/log/entry.js';
import { bearer, type InProcVault } from './inproc.js';

/** Starts the in-process app on 127.0.0.1 (a free port) and returns its base URL. */
export async function listen(v: InProcVault): Promise<string> {
  await v.app.listen({ port: 0, host: '127.0.0.1' });
  const a = v.app.server.address() as AddressInfo;
  return `http://127.0.0.1:${a.port}`;
}

/** Entries appended to a log so far (durable, not yet necessarily in a checkpoint). */
export function logSize(v: InProcVault, log = 'local'): number {
  return v.vault.sequencer(log).sequencedSize;
}

export interface StoredEntry {
  bytes: Buffer;
  source: string;
  producer: string;
  attrs: Record<string, string>;
}

/** One stored record, read back through the auditor API (GET /v1/logs/:log/entries/:i). */
export async function readEntry(v: InProcVault, index: number, log = 'local'): Promise<StoredEntry> {
  await v.vault.sequencer(log).waitForCheckpoint(index + 1, 10_000);
  const r = await v.app.inject({ method: 'GET', url: `/v1/logs/${log}/entries/${index}`, headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, r.body);
  const e = r.json<{ record: string; recordEncoding: 'utf8' | 'base64'; entry: string; envelope: { source: string; producer: string } }>();
  const attrs = parseEntry(Buffer.from(e.entry, 'base64')).attrs ?? {};
  return { bytes: Buffer.from(e.record, e.recordEncoding), source: e.envelope.source, producer: e.envelope.producer, attrs };
}

/** The records stored at [from, to) of a log. */
export async function readEntries(v: InProcVault, from: number, to: number, log = 'local'): Promise<StoredEntry[]> {
  const out: StoredEntry[] = [];
  for (let i = from; i < to; i++) out.push(await readEntry(v, i, log));
  return out;
}

/** gzip of `size` zero bytes: tiny on the wire, `size` bytes once inflated. */
export function gzipBomb(size: number): Buffer {
  return gzipSync(Buffer.alloc(size), { level: 9 });
}

/** A gzip stream cut short: its header is fine, its end is missing. */
export function truncatedGzip(data: Buffer | string): Buffer {
  const z = gzipSync(data);
  return z.subarray(0, Math.max(12, z.length - 10));
}

/** The process still answers: health and a whoami with the writer token. */
export async function assertStillServing(v: InProcVault): Promise<void> {
  const h = await v.app.inject({ method: 'GET', url: '/healthz' });
  assert.equal(h.statusCode, 200);
  const w = await v.app.inject({ method: 'GET', url: '/v1/whoami', headers: bearer(v.tokens.writer) });
  assert.equal(w.statusCode, 200);
}

/** Audit events of one type (and kind), read as the auditor. */
export function ofType(events: Array<Record<string, unknown>>, type: string, kind?: string): Array<Record<string, unknown>> {
  return events.filter((e) => e['type'] === type && (kind === undefined || e['kind'] === kind));
}
