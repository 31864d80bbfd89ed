/**
 * The issue's compression target, end to end on a real `custody serve`: every CloudTrail sample
 * file goes in through POST /v1/ingest (as `custody import` sends it); the sealed bundle and
 * blob files the vault then holds for those records must be ≤ 25% of the records' raw bytes
 * (read back as an auditor), and hold none of them in plaintext.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT, startServer, waitFor } from '../support/server.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples', 'cloudtrail');

function files(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
}

test('CloudTrail samples through POST /v1/ingest: stored bundles and blobs ≤ 25% of the raw records, no plaintext', async (t) => {
  const s = await startServer({ checkpointIntervalMs: 200 });
  t.after(() => s.stop());
  const w = { authorization: `Bearer ${s.tokens.writer}` };
  const sizes = new Map<string, number>();
  let stored = 0;
  for (const f of files(SAMPLES)) {
    const name = relative(SAMPLES, f);
    const res = await fetch(`${s.url}/v1/ingest?name=${encodeURIComponent(name)}`, { method: 'POST', headers: w, body: readFileSync(f) });
    const j = (await res.json()) as { stored: number; rejected: number; appends: Array<{ log: string; first: number; count: number }> };
    assert.equal(res.status, 200, JSON.stringify(j));
    assert.equal(j.rejected, 0, name);
    stored += j.stored;
    for (const a of j.appends) sizes.set(a.log, Math.max(sizes.get(a.log) ?? 0, a.first + a.count));
  }
  assert.ok(stored > 500, `${stored} records stored`);
  const a = { authorization: `Bearer ${s.tokens.auditor}` };
  for (const [log, size] of sizes) {
    await waitFor(`log ${log} at ${size}`, async () => {
      const cp = await (await fetch(`${s.url}/logs/${log}/checkpoint`, { headers: a })).text();
      return Number(cp.split('\n')[1]) >= size;
    });
  }
  // the records as the vault holds them, read back as an auditor
  let raw = 0;
  const ids: string[] = [];
  for (const [log, size] of sizes) {
    for (let i = 0; i < size; i++) {
      const r = (await (await fetch(`${s.url}/v1/logs/${log}/entries/${i}`, { headers: a })).json()) as { record: string; recordEncoding: 'utf8' | 'base64' };
      const rec = Buffer.from(r.record, r.recordEncoding);
      raw += rec.length;
      const id = /"eventID"\s*:\s*"([^"]+)"/.exec(rec.toString('utf8'))?.[1];
      if (id) ids.push(id);
    }
  }
  await s.stop();
  // every bundle (full and partial) and blob file of the region logs, as they are on disk
  let onDisk = 0;
  const contents: Buffer[] = [];
  for (const log of sizes.keys()) {
    const dir = join(s.dataDir, 'logs', log);
    for (const sub of [join('tree', 'tile', 'entries'), 'blobs']) {
      let list: string[] = [];
      try {
        list = files(join(dir, sub));
      } catch {
        /* no blobs */
      }
      for (const f of list) {
        const b = readFileSync(f);
        assert.equal(b.subarray(0, 4).toString(), 'CSTE', f);
        onDisk += b.length;
        contents.push(b);
      }
    }
  }
  const ratio = onDisk / raw;
  t.diagnostic(`${stored} records in ${sizes.size} logs: ${raw} B raw → ${onDisk} B of bundle and blob files (${(ratio * 100).toFixed(1)}%)`);
  assert.ok(ratio <= 0.25, `stored/raw = ${ratio}`);
  assert.ok(ids.length > 500);
  const all = Buffer.concat(contents);
  for (const id of ids) assert.ok(!all.includes(id), `eventID ${id} is in a stored file in plaintext`);
});
