/**
 * Evidence bundles end to end, as an auditor and a recipient use them: a real `custody serve`
 * holding the real CloudTrail samples (routed to their region logs) and a large record;
 * `custody export --query` and `--entry`; the server stopped; then `custody verify-bundle`
 * with no server and no network, and Go's reference code (archive/zip, x/mod note.Open and
 * tlog.CheckRecord) on the same zip; tlogcheck -old proves the bundle's checkpoints are
 * prefixes of the live logs. Tampering, unpinned and wrong keys, and the unzipped-folder form.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { Ed25519NoteSigner, type BundleManifest } from '@custody/verify';
import { readZip } from '../src/evidence/index.js';
import type { VerifyBundleResult } from '../src/cli/export.js';
import { evidenceCheckTool } from '../bench/evidence-go.js';
import {
  ROOT,
  appendNdjson,
  cleanup,
  getJson,
  goTool,
  listLogs,
  makeTempDir,
  runCli,
  runProcess,
  startServer,
  tlogcheck,
  waitFor,
  type ServerHandle,
} from './support/server.js';

interface CtEvent {
  eventID: string;
  eventSource: string;
  eventName: string;
  eventTime: string;
  awsRegion: string;
}

let server: ServerHandle;
let work: string;
let keys: Map<string, string>; // log → verifier key
const CT: CtEvent[] = [];
const QUERY = 'action:"ec2.amazonaws.com:DescribeInstances"';
let expected: CtEvent[];
let queryZip: string;
let listZip: string;
let blobIndex: number;

const keyArgs = (logs: Iterable<string>): string[] => [...logs].flatMap((l) => ['--key', keys.get(l)!]);

async function verifyBundleJson(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; r: VerifyBundleResult; out: string }> {
  const run = await runCli(['verify-bundle', ...args, '--json'], { CUSTODY_URL: 'http://127.0.0.1:9', ...env });
  try {
    return { code: run.code, r: JSON.parse(run.stdout) as VerifyBundleResult, out: run.stdout };
  } catch {
    throw new Error(`verify-bundle printed no JSON (exit ${run.code}): ${run.stdout.slice(-2000)} ${run.stderr.slice(-2000)}`);
  }
}

function manifestOf(zipPath: string): BundleManifest {
  return JSON.parse(Buffer.from(readZip(readFileSync(zipPath), 'x').files.get('manifest.json')!).toString('utf8')) as BundleManifest;
}

before(async () => {
  goTool('tlogcheck');
  work = makeTempDir('evidence');
  server = await startServer({ checkpointIntervalMs: 50 });
  const dir = join(ROOT, '..', 'shared', 'samples', 'cloudtrail');
  const seen = new Set<string>();
  for (const rel of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, rel);
    if (!statSync(path).isFile()) continue;
    const raw = readFileSync(path);
    const res = await fetch(`${server.url}/v1/ingest?source=cloudtrail&name=${encodeURIComponent(rel)}`, { method: 'POST', headers: { authorization: `Bearer ${server.tokens.writer}` }, body: raw });
    assert.equal(res.status, 200, `${rel}: ${await res.text()}`);
    await res.arrayBuffer().catch(() => undefined);
    const body = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
    for (const e of (JSON.parse(body.toString('utf8')) as { Records: CtEvent[] }).Records) {
      if (!seen.has(e.eventID)) CT.push(e);
      seen.add(e.eventID);
    }
  }
  const a = await appendNdjson(server.url, server.tokens.writer, [JSON.stringify({ note: 'small' }), JSON.stringify({ dump: randomBytes(120_000).toString('base64') })], { wait: 'checkpoint' });
  blobIndex = a.indices[1]!;
  expected = CT.filter((e) => e.eventSource === 'ec2.amazonaws.com' && e.eventName === 'DescribeInstances');
  assert.ok(expected.length >= 10, `${expected.length} DescribeInstances events in the samples`);
  keys = new Map((await listLogs(server)).map((l) => [l.name, l.verifierKey]));
  // The search index keeps up with the logs (≤ 2 s): wait until it has every match.
  await waitFor('the search index to hold the CloudTrail samples', async () => {
    const r = await getJson<{ total: number }>(server.url, server.tokens.auditor, `/v1/search?q=${encodeURIComponent(QUERY)}&limit=1`);
    return r.total >= expected.length;
  }, 30_000, 100);
  queryZip = join(work, 'query.zip');
  listZip = join(work, 'list.zip');
});

after(async () => {
  if (server?.running) await server.stop();
  await cleanup();
});

describe('custody export and verify-bundle', { timeout: 240_000 }, () => {
  test('custody export --query writes a bundle of exactly the matches and checks it', async () => {
    const run = await runCli(['export', '--query', QUERY, '--out', queryZip, '--url', server.url, '--token', server.tokens.auditor, '--json']);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const s = JSON.parse(run.stdout) as { out: string; entries: number; bytes: number; verified: boolean };
    assert.equal(s.verified, true);
    assert.equal(s.entries, expected.length);
    assert.equal(statSync(queryZip).size, s.bytes);
    const m = manifestOf(queryZip);
    assert.equal(m.query, QUERY);
    const { files } = readZip(readFileSync(queryZip), 'query.zip');
    const ids = m.items.map((it) => (JSON.parse(Buffer.from(files.get(it.record)!).toString('utf8')) as { eventID: string }).eventID).sort();
    assert.deepEqual(ids, expected.map((e) => e.eventID).sort());
    assert.deepEqual(new Set(Object.keys(m.logs)), new Set(expected.map((e) => e.awsRegion)));
  });

  test('custody export --entry / --entries-file: the explicit form, with a large record', async () => {
    const listFile = join(work, 'entries.txt');
    writeFileSync(listFile, `# two from the local log\nlocal:0\nlocal ${blobIndex}\n`);
    const region = expected[0]!.awsRegion;
    const run = await runCli(['export', '--entry', `${region}:0`, '--entries-file', listFile, '--out', listZip, '--url', server.url, '--token', server.tokens.auditor]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /Wrote .*list\.zip: 3 entries/);
    assert.match(run.stdout, /Checked: every entry is proven/);
    const { files } = readZip(readFileSync(listZip), 'list.zip');
    assert.ok(files.get(`records/local/${blobIndex}`)!.length > 100_000, 'the large record is in the bundle');
    const bad = await runCli(['export', '--out', join(work, 'x.zip'), '--url', server.url, '--token', server.tokens.auditor]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Give either --query .* or the entries themselves/);
  });

  test("each bundle checkpoint is a prefix of the live log (Go's tlogcheck -old), and custody verify records the keys", async () => {
    for (const [log] of Object.entries(manifestOf(queryZip).logs)) {
      const cp = join(work, `${log}.checkpoint`);
      writeFileSync(cp, readZip(readFileSync(queryZip), 'q').files.get(`checkpoints/${log}.checkpoint`)!);
      const r = await tlogcheck(server, log, keys.get(log)!, ['-old', cp]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /consistent with old checkpoint of size \d+/);
    }
    // Trust on first use for one log, into a trust file used below without --key.
    const region = expected[0]!.awsRegion;
    const v = await runCli(['verify', '--log', region, '--trust-file', join(work, 'trust.json'), '--url', server.url, '--token', server.tokens.auditor, '--json']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    await server.stop();
    assert.equal(server.running, false);
  });

  test('verify-bundle with the pinned keys: OK with no server, and Go agrees', async () => {
    assert.equal(server.running, false, 'the server is stopped');
    const m = manifestOf(queryZip);
    const { code, r } = await verifyBundleJson([queryZip, ...keyArgs(Object.keys(m.logs))]);
    assert.equal(code, 0, JSON.stringify(r.problems));
    assert.equal(r.ok, true);
    assert.equal(r.items, expected.length);
    assert.equal(r.verified, expected.length);
    assert.ok(r.logs.every((l) => l.trusted && r.keySources[l.verifiedBy!] === '--key'));
    const go = await runProcess(evidenceCheckTool(), [queryZip, ...Object.keys(m.logs).map((l) => keys.get(l)!)]);
    assert.equal(go.code, 0, go.stderr);
    assert.match(go.stdout, new RegExp(`^OK items=${expected.length} logs=${Object.keys(m.logs).length} `));
    const golist = await runProcess(evidenceCheckTool(), [listZip, ...keys.values()]);
    assert.equal(golist.code, 0, golist.stderr);
    assert.match(golist.stdout, /^OK items=3 logs=2 /);
    const human = await runCli(['verify-bundle', listZip, ...keyArgs(keys.keys())]);
    assert.equal(human.code, 0, human.stdout + human.stderr);
    assert.match(human.stdout, /^OK: .*list\.zip — 3 entries in 2 logs/);
  });

  test('keys the user did not pin are reported as such; a wrong key is a mismatch; the trust file counts as pinned', async () => {
    const region = expected[0]!.awsRegion;
    const none = await runCli(['verify-bundle', listZip], { CUSTODY_URL: 'http://127.0.0.1:9' });
    assert.equal(none.code, 1);
    assert.match(none.stdout, /INVALID: .*list\.zip/);
    assert.match(none.stdout, /checkpoints\/local\.checkpoint \[KEY_NOT_PINNED\]: .*signed by the key in the bundle .* which you have not pinned/);
    const wrong = new Ed25519NoteSigner(`${manifestOf(listZip).logs['local']!.origin}`, randomBytes(32)).verifierKey;
    const { code, r } = await verifyBundleJson([listZip, '--key', wrong, '--key', keys.get(region)!]);
    assert.equal(code, 1);
    assert.deepEqual(r.problems.map((p) => [p.file, p.kind]), [['checkpoints/local.checkpoint', 'KEY_MISMATCH']]);
    // The region log's key was recorded by `custody verify` (trust on first use): with the
    // trust file and --key for "local" only, everything verifies.
    const t = await verifyBundleJson([listZip, '--trust-file', join(work, 'trust.json'), '--key', keys.get('local')!]);
    assert.equal(t.code, 0, JSON.stringify(t.r.problems));
    assert.equal(t.r.keySources[keys.get(region)!], 'trust file');
    const badKey = await runCli(['verify-bundle', listZip, '--key', 'nonsense']);
    assert.equal(badKey.code, 2);
    assert.match(badKey.stderr, /is not a verifier key/);
  });

  test('a changed byte in the zip is caught and the file is named; an unzipped folder verifies too', async () => {
    const zip = readFileSync(listZip);
    const { files } = readZip(zip, 'list.zip');
    const target = `records/local/0`;
    // The record's data: right after its local header (30 bytes and the name; small files are stored).
    let at = -1;
    for (let i = zip.indexOf(target); i >= 0; i = zip.indexOf(target, i + 1)) {
      if (zip.readUInt32LE(i - 30) === 0x04034b50) at = i + target.length + zip.readUInt16LE(i - 2);
    }
    assert.ok(at > 0 && zip.readUInt16LE(at - target.length - 22) === 0, 'records/local/0 is stored');
    assert.deepEqual(zip.subarray(at, at + files.get(target)!.length), Buffer.from(files.get(target)!));
    const tampered = Buffer.from(zip);
    tampered[at] = tampered[at]! ^ 0x01;
    const path = join(work, 'tampered.zip');
    writeFileSync(path, tampered);
    const run = await runCli(['verify-bundle', path, ...keyArgs(keys.keys())]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, new RegExp(`${target} \\[ZIP\\]: The zip entry of this file does not match its CRC-32`));
    const folder = join(work, 'unzipped');
    for (const [name, bytes] of files) {
      mkdirSync(dirname(join(folder, name)), { recursive: true });
      writeFileSync(join(folder, name), bytes);
    }
    const ok = await verifyBundleJson([folder, ...keyArgs(keys.keys())]);
    assert.equal(ok.code, 0, JSON.stringify(ok.r.problems));
    writeFileSync(join(folder, target), Buffer.from('{"note":"changed"}'));
    const bad = await verifyBundleJson([folder, ...keyArgs(keys.keys())]);
    assert.equal(bad.code, 1);
    assert.deepEqual(bad.r.problems.map((p) => [p.file, p.kind]), [[target, 'HASH_MISMATCH'], [target, 'RECORD_MISMATCH']]);
  });
});
