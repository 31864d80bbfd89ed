/**
 * Search through the real API on an in-process vault with its follower: a real CloudTrail
 * event is findable by actor, action, words and time within 2 s of its ingest; every sample
 * file's records are indexed with the same fields their source parser gave at ingest, and
 * every hit's entry link leads to the record; the auditor alone may search (others are
 * refused and the refusal audited); mistakes are BAD_QUERY with a position.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join, relative } from 'node:path';
import { startInProc, bearer, auditRecords, type InProcVault } from './support/inproc.js';
import { ROOT } from './support/server.js';
import { decodeBundle } from '@custody/verify';
import { sourceParser } from '../src/ingest/index.js';
import { parseEntry } from '../src/log/index.js';
import { SearchIndex, type Hit, type SearchResult } from '../src/search/index.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples');

let v: InProcVault;

before(async () => {
  v = await startInProc({ search: true, checkpointIntervalMs: 20 });
});
after(async () => {
  await v?.close();
});

async function search(q: string, extra: Record<string, string> = {}): Promise<SearchResult> {
  const r = await v.app.inject({ method: 'GET', url: `/v1/search?${new URLSearchParams({ q, limit: '1000', ...extra })}`, headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<SearchResult>();
}

async function entryRecord(path: string): Promise<Buffer> {
  const r = await v.app.inject({ method: 'GET', url: path, headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, `${path}: ${r.body.slice(0, 300)}`);
  const e = r.json<{ record: string; recordEncoding: 'utf8' | 'base64' }>();
  return Buffer.from(e.record, e.recordEncoding);
}

async function settle(): Promise<void> {
  for (const seq of v.vault.logs.values()) await seq.waitForCheckpoint(seq.sequencedSize);
  await v.search!.whenIndexed({ timeoutMs: 60_000 });
}

test('a CloudTrail event from the samples is found by actor, action, words and time within 2 s of its ingest', async () => {
  const rel = 'cloudtrail/grycap_sample-cloudtrail-event.json';
  const raw = readFileSync(join(SAMPLES, rel));
  const events = (JSON.parse(raw.toString('utf8')) as { Records: Array<Record<string, unknown>> }).Records;
  const ev = events[0]!;
  const ui = ev['userIdentity'] as { arn: string };
  const region = ev['awsRegion'] as string;
  const eventTime = ev['eventTime'] as string;
  const r = await v.app.inject({ method: 'POST', url: `/v1/ingest?source=auto&name=${encodeURIComponent(rel)}`, headers: bearer(v.tokens.writer), payload: raw });
  assert.equal(r.statusCode, 200, r.body);
  const acked = performance.now();
  const ans = r.json<{ stored: number; appends: Array<{ log: string; first: number; count: number }> }>();
  assert.equal(ans.stored, events.length);
  // Records of one log keep the file's order: the event's index is its place among its region's.
  const index = ans.appends.find((a) => a.log === region)!.first + events.filter((e) => e['awsRegion'] === region).indexOf(ev);
  const want = `${region}:${index}`;
  const queries = [
    `actor:${ui.arn}`,
    `action:${ev['eventSource'] as string}:${ev['eventName'] as string}`,
    `"${ev['requestID'] as string}"`,
    `time:[${eventTime} TO ${eventTime}]`,
    `actor:"${ui.arn.toUpperCase()}" time:[${eventTime.slice(0, 10)} TO ${eventTime.slice(0, 10)}] ${ev['eventName'] as string}`,
  ];
  const found = new Map<string, number>();
  while (found.size < queries.length && performance.now() - acked < 10_000) {
    for (const q of queries) {
      if (found.has(q)) continue;
      const res = await search(q);
      if (res.hits.some((h) => `${h.log}:${h.index}` === want)) found.set(q, performance.now() - acked);
    }
    if (found.size < queries.length) await new Promise((res) => setTimeout(res, 25));
  }
  for (const q of queries) {
    const ms = found.get(q);
    assert.ok(ms !== undefined, `not found by ${q}`);
    assert.ok(ms < 2000, `found by ${q} only after ${Math.round(ms)} ms`);
  }
  // The hit is the event: its fields, and its entry link leads to the record byte for byte.
  const hit = (await search(`"${ev['requestID'] as string}"`)).hits.find((h) => `${h.log}:${h.index}` === want)!;
  assert.equal(hit.actor, ui.arn);
  assert.equal(hit.action, `${ev['eventSource'] as string}:${ev['eventName'] as string}`);
  assert.equal(hit.time, new Date(eventTime).toISOString());
  assert.equal(hit.source, 'aws.cloudtrail');
  assert.equal(hit.ocsfClass, 6003);
  assert.deepEqual(JSON.parse((await entryRecord(hit.entry)).toString('utf8')), ev);
});

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

const norm = (s: string | number | null | undefined): string | number | null => (s === undefined || s === null || s === '' ? null : typeof s === 'string' ? s.slice(0, 1024) : s);

test('every sample record is indexed with the fields its parser gave at ingest, and every hit leads to its record', async () => {
  const files = walk(SAMPLES)
    .map((p) => relative(SAMPLES, p))
    .filter((r) => !r.startsWith('LICENSES/') && !r.startsWith('edge-cases/') && r !== 'SOURCES.md' && !r.startsWith('cloudwatch-subscription/firehose_http_'));
  assert.ok(files.length > 50);
  /** Record bytes (as latin1 text) → what the parser said about them at ingest. */
  const expected = new Map<string, { source: string; fields: Record<string, unknown>; region: string | undefined }>();
  for (const rel of files) {
    const raw = readFileSync(join(SAMPLES, rel));
    const r = await v.app.inject({ method: 'POST', url: `/v1/ingest?source=auto&name=${encodeURIComponent(rel)}&object=${encodeURIComponent('s/' + rel)}`, headers: bearer(v.tokens.writer), payload: raw });
    assert.equal(r.statusCode, 200, `${rel}: ${r.body}`);
    const parser = r.json<{ source: string }>().source;
    const body = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
    for (const rec of sourceParser(parser).parse(body, { name: rel }).records) {
      expected.set(rec.bytes.toString('latin1'), { source: rec.source, fields: rec.fields as Record<string, unknown>, region: rec.region });
    }
  }
  await settle();
  const hits: Hit[] = [];
  let cursor: string | null = null;
  do {
    const p: SearchResult = await search('-log:audit', cursor ? { cursor } : {});
    hits.push(...p.hits);
    cursor = p.next;
  } while (cursor);
  assert.ok(hits.length >= expected.size, `${hits.length} hits for ${expected.size} distinct records`);
  // The records, read from the logs' entry bundles; every tenth hit's entry link is followed too.
  const stored = new Map<string, Buffer>();
  for (const log of new Set(hits.map((h) => h.log))) {
    const seq = v.vault.sequencer(log);
    for (let k = 0; k * 256 < seq.size; k++) {
      const width = Math.min(256, seq.size - k * 256);
      decodeBundle((await seq.store.readBundle(k, width))!, width).forEach((e, i) => {
        const env = parseEntry(e);
        stored.set(`${log}:${k * 256 + i}`, env.record!);
      });
    }
  }
  const sources = new Set<string>();
  let compared = 0;
  for (const [n, h] of hits.entries()) {
    assert.equal(h.entry, `/v1/logs/${h.log}/entries/${h.index}`);
    const record = stored.get(`${h.log}:${h.index}`)!;
    if (n % 10 === 0) assert.ok((await entryRecord(h.entry)).equals(record), `${h.entry} leads to the record`);
    const e = expected.get(record.toString('latin1'));
    if (!e) continue; // the event of the first test (same bytes are one record: it is compared there)
    compared++;
    sources.add(h.source);
    const f = e.fields;
    const where = `${h.entry} (${h.source})`;
    assert.equal(h.source, e.source, where);
    assert.equal(Date.parse(h.time), Date.parse((f['time'] as string | undefined) ?? h.received), `${where}: time`);
    for (const [k, col] of [['account', 'account'], ['actor', 'actor'], ['action', 'action'], ['outcome', 'outcome'], ['srcIp', 'srcIp'], ['dstIp', 'dstIp'], ['severity', 'severity'], ['resource', 'resource']] as const) {
      assert.equal(norm(h[col]), norm(f[k] as string | undefined), `${where}: ${k}`);
    }
    assert.equal(h.ocsfClass, (f['ocsfClass'] as number | undefined) ?? null, `${where}: ocsfClass`);
    assert.equal(h.region, (f['region'] as string | undefined) ?? v.vault.logRow(h.log).region, `${where}: region`);
  }
  assert.ok(compared >= expected.size, `compared ${compared} hits with ${expected.size} parsed records`);
  for (const s of ['aws.cloudtrail', 'aws.config', 'aws.guardduty', 'aws.macie', 'aws.cwlogs', 'aws.vpcflow', 'app.apache', 'app.nginx-error', 'app.syslog', 'aws.cwlogs-export']) {
    assert.ok(sources.has(s), `the samples cover ${s} (have ${[...sources].join(', ')})`);
  }
});

test('field searches find records of each kind of source', async () => {
  const checks: Array<[string, (h: Hit) => boolean]> = [
    ['source:aws.vpcflow outcome:ACCEPT srcIp:10.26.1.153', (h) => h.srcIp === '10.26.1.153' && h.outcome === 'ACCEPT'],
    ['source:app.syslog outcome:failure sshd', (h) => h.outcome === 'failure' && h.ocsfClass === 3002],
    ['source:aws.cwlogs ocsf:6003', (h) => h.ocsfClass === 6003 && h.action !== null],
    ['source:aws.guardduty severity:*', (h) => h.severity !== null],
    ['source:app.apache action:GET*', (h) => h.action!.startsWith('GET ')],
  ];
  for (const [q, ok] of checks) {
    const res = await search(q);
    assert.ok(res.hits.length > 0, `${q} finds something`);
    for (const h of res.hits) assert.ok(ok(h), `${q}: ${JSON.stringify(h)}`);
  }
});

test('records stored as blobs (larger than an entry) are indexed in full', async () => {
  const big = JSON.stringify({ note: 'filler '.repeat(40_000), marker: 'zanzibarquokka', n: 1 });
  const line = 'x'.repeat(300_000) + ' tailword ' + 'y'.repeat(10);
  const r = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries?source=app.bigrecords', headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: big + '\n' });
  assert.equal(r.statusCode, 200, r.body);
  const t = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries?source=app.bigtext', headers: { ...bearer(v.tokens.writer), 'content-type': 'text/plain' }, payload: line + '\n' });
  assert.equal(t.statusCode, 200, t.body);
  await settle();
  const a = await search('zanzibarquokka');
  assert.equal(a.total, 1);
  assert.equal(a.hits[0]!.source, 'app.bigrecords');
  assert.equal((await entryRecord(a.hits[0]!.entry)).toString('utf8'), big);
  const b = await search('tailword source:app.bigtext');
  assert.equal(b.total, 1);
  assert.equal((await entryRecord(b.hits[0]!.entry)).length, line.length);
});

test('ingest statistics per source come from the index', async () => {
  const all = await search('source:aws.cloudtrail');
  const r = await v.app.inject({ method: 'GET', url: '/v1/stats/ingest?bucket=hour', headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, r.body);
  const st = r.json<{ buckets: Array<{ t: string; source: string; count: number }> }>();
  const ct = st.buckets.filter((b) => b.source === 'aws.cloudtrail').reduce((n, b) => n + b.count, 0);
  assert.equal(ct, all.total);
  for (const b of st.buckets) assert.equal(Date.parse(b.t) % 3_600_000, 0, 'buckets start on the hour');
  const one = await v.app.inject({ method: 'GET', url: '/v1/stats/ingest?log=audit&bucket=minute', headers: bearer(v.tokens.auditor) });
  assert.ok(one.json<{ buckets: Array<{ source: string }> }>().buckets.every((b) => b.source === 'custody.audit'));
  for (const bad of ['bucket=day', 'log=nope', 'from=tomorrow', 'bucket=minute&from=2020-01-01&to=2024-01-01']) {
    const res = await v.app.inject({ method: 'GET', url: `/v1/stats/ingest?${bad}`, headers: bearer(v.tokens.auditor) });
    assert.ok(res.statusCode === 400 || res.statusCode === 404, `${bad}: ${res.statusCode}`);
  }
});

test('bad queries and parameters are refused with a code, and a query mistake with its position', async () => {
  const bad = async (qs: string, code: string): Promise<{ code: string; details?: { position: number; expected: string } }> => {
    const r = await v.app.inject({ method: 'GET', url: `/v1/search?${qs}`, headers: bearer(v.tokens.auditor) });
    assert.equal(r.statusCode, 400, `${qs}: ${r.body}`);
    const e = r.json<{ error: { code: string; details?: { position: number; expected: string } } }>().error;
    assert.equal(e.code, code, qs);
    return e;
  };
  assert.deepEqual((await bad(`q=${encodeURIComponent('actor:alice (a OR')}`, 'BAD_QUERY')).details, { position: 17, expected: 'a search term' });
  assert.equal((await bad(`q=${encodeURIComponent('colour:red')}`, 'BAD_QUERY')).details!.position, 0);
  assert.equal((await bad(`q=${encodeURIComponent('time:[2024-01-01 TO later]')}`, 'BAD_QUERY')).details!.position, 20);
  await bad('q=a&limit=0', 'BAD_REQUEST');
  await bad('q=a&limit=1001', 'BAD_REQUEST');
  await bad('q=a&order=up', 'BAD_REQUEST');
  await bad('q=a&from=yesterday', 'BAD_REQUEST');
  await bad('q=a&from=2024-02-01&to=2024-01-01', 'BAD_REQUEST');
  await bad('q=a&q=b', 'BAD_REQUEST');
});

test('only auditors may search: writer and admin tokens are refused (403) and the refusal is audited', async () => {
  for (const [role, token] of [['writer', v.tokens.writer], ['admin', v.tokens.admin]] as const) {
    for (const url of ['/v1/search?q=alice', '/v1/stats/ingest']) {
      const r = await v.app.inject({ method: 'GET', url, headers: bearer(token) });
      assert.equal(r.statusCode, 403, `${role} ${url}`);
      assert.equal(r.json<{ error: { code: string } }>().error.code, 'FORBIDDEN');
    }
  }
  const none = await v.app.inject({ method: 'GET', url: '/v1/search?q=alice' });
  assert.equal(none.statusCode, 401);
  const audit = await auditRecords(v);
  for (const role of ['writer', 'admin']) {
    assert.ok(
      audit.some((e) => e['type'] === 'request.refused' && e['path'] === '/v1/search' && (e['principal'] as { role: string } | null)?.role === role),
      `the ${role}'s refused search is in the audit log`,
    );
  }
  // The audit log is searchable too: the refusals are found by what they are and who.
  await settle();
  const refused = await search('log:audit action:request.refused outcome:failure actor:initial-writer');
  assert.ok(refused.hits.length >= 2);
});

test('an entry the follower cannot read holds the index back (reported, retried), never skipped', async () => {
  const w = await startInProc();
  try {
    const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ n: i, word: i === 5 ? 'bundlezero' : 'later' }));
    const r = await w.app.inject({ method: 'POST', url: '/v1/logs/local/entries', headers: { ...bearer(w.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: lines.join('\n') });
    assert.equal(r.statusCode, 200, r.body);
    const seq = w.vault.sequencer('local');
    await seq.waitForCheckpoint(300);
    const bundle = join(w.dataDir, 'logs', 'local', 'tree', 'tile', 'entries', '000');
    renameSync(bundle, `${bundle}.away`);
    const s = SearchIndex.open(w.vault, { pollMs: 20 });
    try {
      const until = Date.now() + 10_000;
      while (!s.followerErrors.has('local') && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
      assert.match(s.followerErrors.get('local') ?? '', /bundle 0 .*missing/);
      assert.equal(s.lag()['local'], 300, 'nothing past the gap is indexed');
      assert.equal(s.query('bundlezero').total, 0);
      renameSync(`${bundle}.away`, bundle);
      await s.whenIndexed({ log: 'local', timeoutMs: 20_000 });
      assert.equal(s.followerErrors.has('local'), false);
      assert.equal(s.query('bundlezero').total, 1);
      assert.equal(s.query('later').total, 299);
    } finally {
      await s.close();
    }
  } finally {
    await w.close();
  }
});

test('a server without the index says so', async () => {
  const plain = await startInProc();
  try {
    const r = await plain.app.inject({ method: 'GET', url: '/v1/search?q=a', headers: bearer(plain.tokens.auditor) });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json<{ error: { code: string } }>().error.code, 'NOT_READY');
  } finally {
    await plain.close();
  }
});
