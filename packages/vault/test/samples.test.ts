/**
 * The "done means" for sources: every file in ../shared/samples outside edge-cases/
 * goes into a real vault the way it would in production — delivered files through
 * POST /v1/ingest (what `custody import` sends), Firehose request bodies through the Firehose
 * endpoint — with zero errors. Then every stored record is read back as an auditor and must be
 * a byte-exact slice of what was delivered, its entry must hash to the leaf the tree holds, and
 * its inclusion proof must lead to the log's signed checkpoint. The number of records per file
 * is compared with a count made here, independently of the parsers, with plain JSON.parse and
 * line splitting. The edge case yields exactly the refusal it describes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join, relative } from 'node:path';
import { fromBase64, hashLeaf, openCheckpoint, parseVerifierKey, verifyInclusion, toBase64 } from '@custody/verify';
import { startInProc, bearer, type InProcVault } from './support/inproc.js';
import { ROOT } from './support/server.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples');

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

const dataFiles = walk(SAMPLES)
  .map((p) => relative(SAMPLES, p))
  .filter((r) => !r.startsWith('LICENSES/') && !r.startsWith('edge-cases/') && r !== 'SOURCES.md');
const isFirehoseBody = (rel: string): boolean => rel.startsWith('cloudwatch-subscription/firehose_http_');

function inflate(buf: Buffer): Buffer {
  return buf.length > 2 && buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
}

const nonBlankLines = (t: string): string[] => t.split('\n').filter((l) => l.trim() !== '');

/** CloudWatch Logs payloads inside a file, decoded here with plain zlib and JSON.parse. */
function cwPayloads(v: unknown): Buffer[] {
  if (Array.isArray(v)) return v.flatMap(cwPayloads);
  const o = v as Record<string, unknown>;
  if (o && typeof o === 'object' && o['awslogs']) return [gunzipSync(Buffer.from((o['awslogs'] as { data: string }).data, 'base64'))];
  return [];
}

function dataEvents(payload: Buffer): number {
  const p = JSON.parse(payload.toString('utf8')) as { messageType: string; logEvents: unknown[] };
  return p.messageType === 'DATA_MESSAGE' ? p.logEvents.length : 0;
}

/** Records per file, counted without the parsers; plus nested payloads records may come from. */
function independent(rel: string, raw: Buffer): { count: number; haystacks: Buffer[] } {
  const body = inflate(raw);
  const text = body.toString('utf8');
  const dir = rel.split('/')[0];
  if (dir === 'applogs') return { count: nonBlankLines(text).length, haystacks: [body] };
  if (dir === 'vpcflow') return { count: nonBlankLines(text).filter((l) => !l.startsWith('version ')).length, haystacks: [body] };
  if (rel.endsWith('.ndjson') || rel.endsWith('.jsonl.gz')) return { count: nonBlankLines(text).length, haystacks: [body] };
  if (isFirehoseBody(rel)) {
    const payloads: Buffer[] = [];
    let count = 0;
    for (const r of (JSON.parse(text) as { records: Array<{ data: string }> }).records) {
      const d = Buffer.from(r.data, 'base64');
      if (d[0] === 0x1f && d[1] === 0x8b) {
        const p = gunzipSync(d);
        payloads.push(p);
        count += dataEvents(p);
      } else {
        payloads.push(d);
        count += 1;
      }
    }
    return { count, haystacks: payloads };
  }
  const v = JSON.parse(text) as Record<string, unknown>;
  if (dir === 'cloudwatch-subscription') {
    if (v['messageType']) return { count: dataEvents(body), haystacks: [body] };
    const payloads = cwPayloads(v);
    return { count: payloads.reduce((n, p) => n + dataEvents(p), 0), haystacks: payloads };
  }
  if (Array.isArray(v)) return { count: v.length, haystacks: [body] };
  if (Array.isArray(v['Records'])) return { count: (v['Records'] as unknown[]).length, haystacks: [body] };
  if (Array.isArray(v['configurationItems'])) return { count: (v['configurationItems'] as unknown[]).length, haystacks: [body] };
  return { count: 1, haystacks: [body] };
}

let v: InProcVault;
const expected = new Map<string, { count: number; haystacks: Buffer[] }>();
const answers = new Map<string, { stored: number; duplicates: number; rejected: number }>();

before(async () => {
  v = await startInProc({ checkpointIntervalMs: 20 });
});
after(async () => {
  await v?.close();
});

test('every delivered sample file is ingested with zero errors and the expected number of records', async () => {
  assert.ok(dataFiles.length >= 80, `found ${dataFiles.length} sample files`);
  for (const rel of dataFiles) {
    const raw = readFileSync(join(SAMPLES, rel));
    const exp = independent(rel, raw);
    expected.set(rel, exp);
    let r;
    if (isFirehoseBody(rel)) {
      // Firehose sends the body's request id in the header too.
      const reqId = (JSON.parse(raw.toString('utf8')) as { requestId: string }).requestId;
      r = await v.app.inject({
        method: 'POST',
        url: '/firehose',
        headers: { 'x-amz-firehose-access-key': v.tokens.writer, 'x-amz-firehose-request-id': reqId, 'x-amz-firehose-protocol-version': '1.0', 'content-type': 'application/json' },
        payload: raw,
      });
      assert.equal(r.statusCode, 200, `${rel}: ${r.body}`);
      assert.equal(r.json<{ requestId: string }>().requestId, reqId, `${rel}: the reply echoes the request id`);
      continue;
    }
    r = await v.app.inject({
      method: 'POST',
      url: `/v1/ingest?source=auto&name=${encodeURIComponent(rel)}&object=${encodeURIComponent('samples/' + rel)}`,
      headers: bearer(v.tokens.writer),
      payload: raw,
    });
    assert.equal(r.statusCode, 200, `${rel}: ${r.body}`);
    const a = r.json<{ stored: number; duplicates: number; rejected: number; source: string; errors?: unknown }>();
    assert.equal(a.rejected, 0, `${rel}: ${JSON.stringify(a.errors)}`);
    assert.notEqual(a.source, 'text', `${rel}: detected as a known source, not plain text`);
    assert.equal(a.stored + a.duplicates, exp.count, `${rel} (${a.source}): stored ${a.stored} + duplicates ${a.duplicates} = ${exp.count} records`);
    answers.set(rel, a);
  }
});

test('every stored record reads back byte-exact with an entry hash and inclusion proof that verify', async () => {
  assert.ok(answers.size > 0, 'the ingest test ran first');
  const logs = (await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(v.tokens.auditor) })).json<{ logs: Array<{ name: string; verifierKey: string; kind?: string }> }>().logs;
  const perFile = new Map<string, number>();
  let fromFirehose = 0;
  let checked = 0;
  for (const l of logs) {
    if (l.name === 'audit') continue;
    const seq = v.vault.sequencer(l.name);
    await seq.waitForCheckpoint(seq.sequencedSize);
    const verifier = parseVerifierKey(l.verifierKey);
    const roots = new Map<string, Uint8Array>();
    for (let i = 0; i < seq.size; i++) {
      const r = await v.app.inject({ method: 'GET', url: `/v1/logs/${l.name}/entries/${i}`, headers: bearer(v.tokens.auditor) });
      assert.equal(r.statusCode, 200, r.body);
      const e = r.json<{ record: string; recordEncoding: string; entry: string; leafHash: string; inclusionProof: string[]; checkpoint: string; treeSize: number; envelope: { attrs?: Record<string, string>; region: string } }>();
      const entry = fromBase64(e.entry);
      const leaf = hashLeaf(entry);
      assert.equal(toBase64(leaf), e.leafHash, `${l.name}/${i}: the entry hashes to its leaf`);
      let root = roots.get(e.checkpoint);
      if (!root) {
        root = openCheckpoint(e.checkpoint, verifier).checkpoint.rootHash;
        roots.set(e.checkpoint, root);
      }
      verifyInclusion(leaf, i, e.treeSize, e.inclusionProof.map((p) => fromBase64(p)), root);
      assert.equal(e.envelope.region, l.name === 'local' ? 'local' : l.name, 'a record is stored in its own region');
      const record = Buffer.from(e.record, e.recordEncoding === 'base64' ? 'base64' : 'utf8');
      const file = e.envelope.attrs?.['file'];
      const haystacks = file ? expected.get(decodeURI(file))?.haystacks : [...expected.entries()].filter(([k]) => isFirehoseBody(k)).flatMap(([, x]) => x.haystacks);
      assert.ok(haystacks, `${l.name}/${i}: from a known file (${file})`);
      assert.ok(haystacks.some((h) => h.indexOf(record) >= 0), `${l.name}/${i} (${file ?? 'firehose'}): the record is a byte-exact slice of what was delivered`);
      if (file) perFile.set(decodeURI(file), (perFile.get(decodeURI(file)) ?? 0) + 1);
      else fromFirehose++;
      checked++;
    }
  }
  for (const [rel, a] of answers) assert.equal(perFile.get(rel) ?? 0, a.stored, `${rel}: entries carrying its name = records stored`);
  const firehoseExpected = [...expected.entries()].filter(([k]) => isFirehoseBody(k)).reduce((n, [, x]) => n + x.count, 0);
  assert.ok(fromFirehose > 0 && fromFirehose <= firehoseExpected, `firehose records stored: ${fromFirehose} of ${firehoseExpected} (the rest are the same events delivered twice)`);
  assert.ok(checked > 15_000, `${checked} records checked`);
});

test('CloudTrail events are routed to the region they name, and delivered twice are stored once', async () => {
  const logs = (await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(v.tokens.auditor) })).json<{ logs: Array<{ name: string }> }>().logs.map((l) => l.name);
  for (const region of ['us-east-1', 'sa-east-1', 'eu-central-1', 'ap-south-1']) assert.ok(logs.includes(region), `a log for ${region}: ${logs.join(', ')}`);
  const rel = 'cloudtrail/coralogix_cloudtrail.log.gz';
  const again = await v.app.inject({ method: 'POST', url: `/v1/ingest?name=${encodeURIComponent('copy/' + rel)}`, headers: bearer(v.tokens.writer), payload: readFileSync(join(SAMPLES, rel)) });
  assert.equal(again.statusCode, 200, again.body);
  const a = again.json<{ stored: number; duplicates: number }>();
  assert.equal(a.stored, 0, 'the same CloudTrail events under another file name are not stored again');
  assert.equal(a.duplicates, expected.get(rel)!.count);
});

test('edge case: a Firehose body with a control message and an undecodable record is refused the Firehose way', async () => {
  const raw = readFileSync(join(SAMPLES, 'edge-cases', 'firehose_http_cwlogs_control_and_bad_record.json'));
  const sizes = () => v.vault.regionLogs().reduce((n, l) => n + v.vault.sequencer(l).sequencedSize, 0);
  const before = sizes();
  const r = await v.app.inject({
    method: 'POST',
    url: '/firehose',
    headers: { 'x-amz-firehose-access-key': v.tokens.writer, 'x-amz-firehose-request-id': (JSON.parse(raw.toString('utf8')) as { requestId: string }).requestId, 'content-type': 'application/json' },
    payload: raw,
  });
  assert.notEqual(r.statusCode, 200, 'Firehose must not treat the request as delivered');
  assert.ok(r.statusCode >= 400 && r.statusCode < 500, `status ${r.statusCode}`);
  const a = r.json<{ requestId: string; timestamp: number; errorMessage: string }>();
  assert.equal(a.requestId, (JSON.parse(raw.toString('utf8')) as { requestId: string }).requestId);
  assert.equal(typeof a.timestamp, 'number');
  assert.match(a.errorMessage, /record 2\b/i, 'the error names the undecodable record');
  assert.equal(sizes(), before, 'the control message is acknowledged, not stored; nothing half-parsed is stored');
});
