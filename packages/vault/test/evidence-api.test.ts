/**
 * GET and POST /v1/export on a real vault (in process, real storage, sequencer and search
 * index): who may export, what is refused before a byte is sent, the 100,000-entry limit, one
 * checkpoint per log while the log keeps growing, large records, and the audit trail.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { verifyBundle, type BundleManifest } from '@custody/verify';
import { readZip } from '../src/evidence/index.js';
import { nativeSha256 } from '../src/crypto/sha256.js';
import { auditRecords, bearer, startInProc, type InProcVault } from './support/inproc.js';
import { ROOT, cleanup, makeTempDir, runCli } from './support/server.js';

let v: InProcVault;
const BIG = 'x'.repeat(200_000); // a record too large for one entry: stored as a blob

async function append(lines: string[], log = 'local', source = 'app.test'): Promise<number[]> {
  const r = await v.app.inject({ method: 'POST', url: `/v1/logs/${log}/entries?wait=checkpoint&source=${source}`, headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: lines.join('\n') });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<{ indices: number[] }>().indices;
}

async function exportPost(entries: unknown, token = v.tokens.auditor): Promise<{ status: number; body: Buffer; headers: Record<string, unknown>; json: () => { error: { code: string; message: string; details?: Record<string, unknown> } } }> {
  const r = await v.app.inject({ method: 'POST', url: '/v1/export', headers: bearer(token), payload: entries as object });
  return { status: r.statusCode, body: r.rawPayload, headers: r.headers, json: () => r.json() };
}

function check(zip: Buffer): ReturnType<typeof verifyBundle> & { manifest: BundleManifest } {
  const { files, problems } = readZip(zip, 'export.zip');
  assert.deepEqual(problems, []);
  const keys = v.vault.logRows.map((r) => v.vault.sequencer(r.name).verifierKey);
  const report = verifyBundle(files, { keys, hash: nativeSha256 });
  return { ...report, manifest: JSON.parse(Buffer.from(files.get('manifest.json')!).toString('utf8')) as BundleManifest };
}

async function waitIndexed(q: string, want: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (v.search!.query(q, { limit: 1 }).total >= want) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`the search index never held ${want} hits for ${q}`);
}

interface CtEvent {
  eventID: string;
  eventSource: string;
  eventName: string;
  eventTime: string;
  awsRegion: string;
}
/** The real CloudTrail sample events (../shared/samples/cloudtrail), once each. */
const CT: CtEvent[] = [];

before(async () => {
  v = await startInProc({ search: true });
  const dir = join(ROOT, '..', 'shared', 'samples', 'cloudtrail');
  const seen = new Set<string>();
  for (const rel of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, rel);
    if (!statSync(path).isFile()) continue;
    const raw = readFileSync(path);
    const r = await v.app.inject({ method: 'POST', url: `/v1/ingest?source=cloudtrail&name=${encodeURIComponent(rel)}`, headers: bearer(v.tokens.writer), payload: raw });
    assert.equal(r.statusCode, 200, `${rel}: ${r.body}`);
    const body = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
    for (const e of (JSON.parse(body.toString('utf8')) as { Records: CtEvent[] }).Records) {
      if (!seen.has(e.eventID)) CT.push(e);
      seen.add(e.eventID);
    }
  }
  const lines: string[] = [];
  for (let i = 0; i < 700; i++) lines.push(JSON.stringify({ seq: i, user: i % 7 === 0 ? 'mallory' : 'alice', action: i % 7 === 0 ? 'secret.read' : 'page.view', time: new Date(Date.UTC(2025, 0, 3, 0, 0, i)).toISOString() }));
  await append(lines);
  await append([JSON.stringify({ user: 'mallory', action: 'bulk.dump', blob: BIG })]);
});
after(async () => {
  await v?.close();
  await cleanup();
});

describe('POST /v1/export', () => {
  test('streams a zip of the listed entries that verifies offline, large record included', async () => {
    const want = [0, 1, 255, 256, 257, 511, 699, 700];
    const r = await exportPost({ entries: [...want, 1, 0].map((index) => ({ log: 'local', index })) });
    assert.equal(r.status, 200, r.body.toString().slice(0, 300));
    assert.equal(r.headers['content-type'], 'application/zip');
    assert.match(String(r.headers['content-disposition']), /^attachment; filename="custody-evidence-\d{8}T\d{6}Z\.zip"$/);
    assert.equal(r.headers['x-custody-entries'], String(want.length), 'duplicates are exported once');
    const rep = check(r.body);
    assert.deepEqual(rep.problems, []);
    assert.equal(rep.ok, true);
    assert.equal(rep.verified, want.length);
    assert.deepEqual(rep.manifest.items.map((i) => i.index), want);
    assert.equal(rep.manifest.query, null);
    const { files } = readZip(r.body, 'export.zip');
    assert.equal(files.get('records/local/700')!.length, JSON.stringify({ user: 'mallory', action: 'bulk.dump', blob: BIG }).length);
    assert.match(Buffer.from(files.get('entries/local/700.entry')!).toString('latin1'), /\nblob sha256:[0-9a-f]{64} \d+\n\n$/);
  });

  test('every item of a log is proven against one checkpoint, taken when the export starts, while the log grows', async () => {
    const before = v.vault.sequencer('local').size;
    const entries = Array.from({ length: before }, (_, index) => ({ log: 'local', index }));
    let exporting = true;
    const growing = (async () => {
      for (let k = 0; exporting || k < 2; k++) await append(Array.from({ length: 200 }, (_, i) => JSON.stringify({ during: k * 200 + i })));
    })();
    const r = await exportPost({ entries });
    exporting = false;
    await growing;
    assert.equal(r.status, 200);
    const rep = check(r.body);
    assert.equal(rep.ok, true, JSON.stringify(rep.problems.slice(0, 3)));
    const size = rep.manifest.logs['local']!.size;
    assert.ok(size >= before);
    assert.ok(v.vault.sequencer('local').size > size, 'the log grew past the checkpoint the bundle uses');
    const cp = readZip(r.body, 'x').files.get('checkpoints/local.checkpoint')!;
    for (const i of [0, before - 1]) {
      const proof = Buffer.from(readZip(r.body, 'x').files.get(`proofs/local/${i}.tlog-proof`)!).toString('utf8');
      assert.ok(proof.endsWith(Buffer.from(cp).toString('utf8')), `proof ${i} carries the bundle's checkpoint`);
    }
  });

  test('refused before a byte is sent: bad shapes, unknown logs, entries not yet signed, nothing to export', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{}, 400, 'BAD_REQUEST'],
      [{ entries: 'local:1' }, 400, 'BAD_REQUEST'],
      [{ entries: [{ log: 'local', index: -1 }] }, 400, 'BAD_REQUEST'],
      [{ entries: [{ log: 'local', index: 1.5 }] }, 400, 'BAD_REQUEST'],
      [{ entries: [{ log: 'local' }] }, 400, 'BAD_REQUEST'],
      [{ entries: [] }, 400, 'BAD_REQUEST'],
      [{ entries: [{ log: 'nope', index: 0 }] }, 404, 'LOG_NOT_FOUND'],
      [{ entries: [{ log: 'local', index: 10_000_000 }] }, 404, 'ENTRY_NOT_FOUND'],
      [{ entries: [{ log: 'local', index: 0 }, { log: 'local', index: 1 }], limit: 1 }, 400, 'BAD_REQUEST'],
      [{ entries: [{ log: 'local', index: 0 }], limit: 0 }, 400, 'BAD_REQUEST'],
    ];
    for (const [body, status, code] of cases) {
      const r = await exportPost(body);
      assert.equal(r.status, status, JSON.stringify(body));
      assert.equal(r.json().error.code, code, JSON.stringify(body));
    }
  });

  test('more than 100,000 entries is a clear error', async () => {
    const entries = Array.from({ length: 100_001 }, (_, index) => ({ log: 'local', index }));
    const r = await exportPost({ entries });
    assert.equal(r.status, 400);
    const e = r.json().error;
    assert.equal(e.code, 'BAD_REQUEST');
    assert.match(e.message, /at most 100,000 entries/);
    assert.equal(e.details?.['max'], 100_000);
  });

  test('hostile bodies get a 4xx answer, never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (body) => {
        const r = await v.app.inject({ method: 'POST', url: '/v1/export', headers: { ...bearer(v.tokens.auditor), 'content-type': 'application/json' }, payload: JSON.stringify({ entries: body }) });
        assert.ok(r.statusCode < 500 && (r.statusCode >= 400 || r.headers['content-type'] === 'application/zip'), `${r.statusCode} ${r.body.slice(0, 200)}`);
      }),
      { numRuns: 150 },
    );
  });
});

describe('a bundle that would not verify is never handed out', () => {
  test('damaged stored hashes abort the stream; custody export says so and leaves no file', async () => {
    const seq = v.vault.sequencer('local');
    const orig = seq.nodeReader.bind(seq);
    const size = seq.size;
    // Storage damage, as the proof code would read it: one level-0 hash near the end is wrong,
    // so the bundle is well under way (its first bytes sent) when the damage shows.
    seq.nodeReader = (n: number) => {
      const r = orig(n);
      return (level: number, index: number) => (level === 0 && index === size - 20 ? new Uint8Array(32) : r(level, index));
    };
    try {
      const entries = Array.from({ length: size }, (_, index) => ({ log: 'local', index }));
      // Once the first bytes are out the response is cut off; before that it is a plain error.
      const r = await v.app.inject({ method: 'POST', url: '/v1/export', headers: bearer(v.tokens.auditor), payload: { entries } }).then(
        (x) => ({ status: x.statusCode, code: x.headers['content-type'] === 'application/zip' ? 'zip' : x.json<{ error: { code: string } }>().error.code }),
        (e: Error) => ({ status: 0, code: e.message }),
      );
      assert.ok(r.status === 0 ? /destroyed before completion/.test(r.code) : r.status === 500 && r.code === 'STORAGE_CORRUPT', JSON.stringify(r));
      await v.app.listen({ port: 0, host: '127.0.0.1' });
      const port = (v.app.server.address() as { port: number }).port;
      const dir = makeTempDir('corrupt');
      writeFileSync(join(dir, 'entries.txt'), entries.map((e) => `local:${e.index}`).join('\n'));
      const out = join(dir, 'bundle.zip');
      const run = await runCli(['export', '--entries-file', join(dir, 'entries.txt'), '--out', out, '--url', `http://127.0.0.1:${port}`, '--token', v.tokens.auditor]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /The download of the bundle broke off after [\d,]+ bytes .* Nothing was written to .*bundle\.zip|does not prove against its checkpoint .*STORAGE_CORRUPT/);
      assert.equal(existsSync(out), false);
      assert.equal(existsSync(`${out}.part`), false);
      const failed = (await auditRecords(v)).filter((e) => e['type'] === 'evidence.export.failed');
      assert.ok(failed.some((e) => /does not prove against its checkpoint/.test(String(e['reason']))), JSON.stringify(failed));
    } finally {
      seq.nodeReader = orig;
    }
  });
});

describe('GET /v1/export?q=', () => {
  test('exports exactly the matches of a full-text query', async () => {
    const q = 'log:local mallory';
    await waitIndexed(q, 101);
    const expected = [...v.search!.iterate(q, { order: 'asc' })].map((h) => `${h.log}/${h.index}`).sort();
    assert.equal(expected.length, 101, 'seq 0, 7, … 693 and the large record');
    const r = await v.app.inject({ method: 'GET', url: `/v1/export?q=${encodeURIComponent(q)}`, headers: bearer(v.tokens.auditor) });
    assert.equal(r.statusCode, 200, r.body.slice(0, 300));
    const rep = check(r.rawPayload);
    assert.equal(rep.ok, true, JSON.stringify(rep.problems.slice(0, 3)));
    assert.equal(rep.manifest.query, q);
    assert.deepEqual(rep.manifest.items.map((i) => `${i.log}/${i.index}`).sort(), expected);
    const { files } = readZip(r.rawPayload, 'q.zip');
    const readme = Buffer.from(files.get('README.txt')!).toString('utf8');
    assert.ok(readme.includes(`matched the search query\n\n    ${q}\n`), readme.slice(0, 600));
    assert.match(readme, /custody verify-bundle/);
  });

  test('a field query with a time range exports the CloudTrail events it names, from their region logs', async () => {
    const want = CT.filter((e) => e.eventSource === 'ec2.amazonaws.com' && e.eventName === 'DescribeInstances' && e.eventTime >= '2014-09-27T00:00:00Z' && e.eventTime <= '2014-09-27T23:59:59Z');
    assert.ok(want.length >= 5, `the samples hold ${want.length} such events`);
    const q = 'action:"ec2.amazonaws.com:DescribeInstances"';
    const range = 'from=2014-09-27T00:00:00Z&to=2014-09-27T23:59:59Z';
    for (let i = 0; i < 500 && v.search!.query(q, { from: '2014-09-27T00:00:00Z', to: '2014-09-27T23:59:59Z', limit: 1 }).total < want.length; i++) await new Promise((r) => setTimeout(r, 20));
    const r = await v.app.inject({ method: 'GET', url: `/v1/export?q=${encodeURIComponent(q)}&${range}`, headers: bearer(v.tokens.auditor) });
    assert.equal(r.statusCode, 200, r.body.slice(0, 300));
    const rep = check(r.rawPayload);
    assert.equal(rep.ok, true, JSON.stringify(rep.problems.slice(0, 3)));
    assert.equal(rep.items, want.length);
    assert.deepEqual([rep.manifest.from, rep.manifest.to], ['2014-09-27T00:00:00Z', '2014-09-27T23:59:59Z']);
    const { files } = readZip(r.rawPayload, 'ct.zip');
    const ids = rep.manifest.items.map((it) => (JSON.parse(Buffer.from(files.get(it.record)!).toString('utf8')) as { eventID: string }).eventID).sort();
    assert.deepEqual(ids, want.map((e) => e.eventID).sort());
    assert.deepEqual(new Set(rep.manifest.items.map((it) => it.log)), new Set(want.map((e) => e.awsRegion)));
    assert.ok(rep.manifest.items.every((it) => it.source === 'aws.cloudtrail'));
  });

  test('a query with no match, past its limit, or missing is refused with a plain message', async () => {
    const none = await v.app.inject({ method: 'GET', url: '/v1/export?q=nobody-at-all', headers: bearer(v.tokens.auditor) });
    assert.equal(none.statusCode, 400);
    assert.match(none.json<{ error: { message: string } }>().error.message, /matches no entries/);
    const over = await v.app.inject({ method: 'GET', url: `/v1/export?q=${encodeURIComponent('log:local mallory')}&limit=5`, headers: bearer(v.tokens.auditor) });
    assert.equal(over.statusCode, 400);
    assert.match(over.json<{ error: { message: string } }>().error.message, /more than the 5 entries you allowed/);
    const noQ = await v.app.inject({ method: 'GET', url: '/v1/export', headers: bearer(v.tokens.auditor) });
    assert.equal(noQ.statusCode, 400);
    const badLimit = await v.app.inject({ method: 'GET', url: '/v1/export?q=mallory&limit=100001', headers: bearer(v.tokens.auditor) });
    assert.equal(badLimit.statusCode, 400);
  });
});

describe('who may export', () => {
  test('writers and admins are refused (403) and the refusal is audited; no token is 401', async () => {
    const tries: Array<[string, string]> = [];
    for (const role of ['writer', 'admin'] as const) {
      const get = await v.app.inject({ method: 'GET', url: '/v1/export?q=mallory', headers: bearer(v.tokens[role]) });
      const post = await exportPost({ entries: [{ log: 'local', index: 0 }] }, v.tokens[role]);
      for (const r of [{ status: get.statusCode, code: get.json<{ error: { code: string } }>().error.code }, { status: post.status, code: post.json().error.code }]) {
        assert.equal(r.status, 403, role);
        assert.equal(r.code, 'FORBIDDEN', role);
      }
      tries.push([role, 'GET'], [role, 'POST']);
    }
    const anon = await v.app.inject({ method: 'GET', url: '/v1/export?q=mallory' });
    assert.equal(anon.statusCode, 401);
    const audit = await auditRecords(v);
    const refused = audit.filter((e) => e['type'] === 'request.refused' && e['path'] === '/v1/export');
    assert.deepEqual(
      refused.map((e) => [(e['principal'] as { role: string }).role, e['method']]),
      tries,
    );
    const exported = audit.filter((e) => e['type'] === 'evidence.exported');
    assert.ok(exported.length >= 3, 'each export by an auditor is recorded');
    const q = exported.find((e) => e['query'] === 'log:local mallory')!;
    assert.equal((q['principal'] as { role: string }).role, 'auditor');
    assert.equal(q['count'], 101);
  });
});
