/**
 * The index is never the only copy of anything: `custody reindex` rebuilds it from the logs
 * (and refuses while a server runs on the directory), and a server that finds no index builds
 * one by itself. Both give the same hits as the index the live follower built.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, runCli, cleanup, sleep, ROOT, type ServerHandle } from './support/server.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples');

after(cleanup);

const QUERIES = [
  '-log:audit',
  'source:aws.cloudtrail outcome:failure',
  'action:ec2.amazonaws.com:Describe* OR action:sts*',
  'DescribeInstances -outcome:failure',
  '"access denied" OR AccessDenied',
  'time:[2014-09-26 TO 2014-09-27T12:00] -DescribeAlarms',
  'source:app.syslog (sshd OR sudo) -outcome:success',
  'ocsf:3002',
];

async function get<T>(s: ServerHandle, path: string): Promise<T> {
  const r = await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${s.tokens.auditor}` } });
  assert.equal(r.status, 200, `${path}: ${await r.clone().text()}`);
  return (await r.json()) as T;
}

interface Page {
  hits: Array<{ log: string; index: number }>;
  next: string | null;
  total: number;
  lag: Record<string, number>;
}

/** Every hit of each query, in order, as "log:index". */
async function answers(s: ServerHandle): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const q of QUERIES) {
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const p: Page = await get<Page>(s, `/v1/search?${new URLSearchParams({ q, limit: '1000', ...(cursor ? { cursor } : {}) })}`);
      ids.push(...p.hits.map((h) => `${h.log}:${h.index}`));
      cursor = p.next;
    } while (cursor);
    out.set(q, ids);
  }
  return out;
}

/** Waits until the index has every published entry of every log. */
async function caughtUp(s: ServerHandle, stored: number): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    const p = await get<Page>(s, '/v1/search?q=-log%3Aaudit&limit=1');
    if (p.total === stored && Object.values(p.lag).every((n) => n === 0)) return;
    if (Date.now() > until) throw new Error(`the index did not catch up: total ${p.total} of ${stored}, lag ${JSON.stringify(p.lag)}`);
    await sleep(50);
  }
}

test('custody reindex rebuilds the index the follower built; a server without an index builds it by itself', async () => {
  const s = await startServer({ checkpointIntervalMs: 50 });
  const files = [
    ...readdirSync(join(SAMPLES, 'cloudtrail', 'grycap_974349055189')).map((f) => join('cloudtrail', 'grycap_974349055189', f)),
    'cloudtrail/coralogix_cloudtrail.log.gz',
    'applogs/crowdsec_sshd_auth.log',
    'applogs/crowdsec_sshd_slow_bruteforce.log',
  ];
  let stored = 0;
  for (const rel of files) {
    const r = await fetch(`${s.url}/v1/ingest?source=auto&name=${encodeURIComponent(rel)}`, { method: 'POST', headers: { authorization: `Bearer ${s.tokens.writer}` }, body: readFileSync(join(SAMPLES, rel)) });
    assert.equal(r.status, 200, `${rel}: ${await r.clone().text()}`);
    stored += ((await r.json()) as { stored: number }).stored;
  }
  assert.ok(stored > 400);
  await caughtUp(s, stored);
  const live = await answers(s);
  for (const q of QUERIES) assert.ok(live.get(q)!.length > 0, `${q} finds something (a test that can fail)`);

  // custody search: the same hits, as JSON or as a table; a mistake is a plain error.
  const q = QUERIES[1]!;
  const auth = ['--url', s.url, '--token', s.tokens.auditor];
  const asJson = await runCli(['search', q, '--limit', '1500', '--json', ...auth]);
  assert.equal(asJson.code, 0, asJson.stderr);
  const j = JSON.parse(asJson.stdout) as Page;
  assert.deepEqual(j.hits.map((h) => `${h.log}:${h.index}`), live.get(q), 'all pages, followed by the CLI');
  const asTable = await runCli(['search', q, '--limit', '3', ...auth]);
  assert.equal(asTable.code, 0, asTable.stderr);
  assert.match(asTable.stdout, /^time\s+log:index\s+source\s+action\s+actor\s+outcome/);
  for (const id of live.get(q)!.slice(0, 3)) assert.ok(asTable.stdout.includes(id), `the table shows ${id}`);
  assert.match(asTable.stdout, new RegExp(`3 of ${live.get(q)!.length} matching entries shown. More: --cursor \\S+`));
  const mistake = await runCli(['search', 'action:iam* (a OR', ...auth]);
  assert.equal(mistake.code, 2);
  assert.match(mistake.stderr, /BAD_QUERY/);
  assert.match(mistake.stderr, /at character 18/);

  // Refused while the server runs, with what to do instead.
  const busy = await runCli(['reindex', '--data', s.dataDir]);
  assert.notEqual(busy.code, 0);
  assert.match(busy.stderr, /Stop it before reindexing/);
  assert.match(busy.stderr, /search\.db/);

  await s.stop();
  const rebuilt = await runCli(['reindex', '--data', s.dataDir, '--json']);
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  const report = JSON.parse(rebuilt.stdout) as { entries: number; logs: Array<{ log: string; entries: number }> };
  assert.ok(report.entries >= stored, `${report.entries} entries reindexed`);
  assert.ok(report.logs.some((l) => l.log === 'audit'));
  assert.ok(!existsSync(join(s.dataDir, 'search.db.rebuild')), 'the temporary file is gone');

  await s.restart();
  await caughtUp(s, stored);
  assert.deepEqual(await answers(s), live, 'the reindexed index answers like the live one');

  // No index at all: the server builds it while it runs, and says so.
  await s.stop();
  for (const f of ['search.db', 'search.db-wal', 'search.db-shm']) rmSync(join(s.dataDir, f), { force: true });
  await s.restart();
  await caughtUp(s, stored);
  assert.deepEqual(await answers(s), live, 'the index built on start answers like the live one');
  assert.match(s.stdout.text, /search index: building it from the logs/);
  await s.stop();
});
