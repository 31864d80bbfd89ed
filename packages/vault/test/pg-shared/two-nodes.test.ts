/**
 * Dedupe across two real `custody serve` nodes of one shared vault (PostgreSQL + Ceph S3): a
 * CloudTrail record (eventID) sent to node A and node B at the same moment is stored once and
 * the other copy counted a duplicate; a record resent to the other node later is a duplicate
 * too; the log's size is the number of distinct records. An alarm rule added on node A fires on
 * node B (records sent to B only) within a few seconds.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { startCeph, type CephS3 } from '../support/ceph.js';
import { cleanup, waitFor, type Tokens } from '../support/server.js';
import { Node, getJson } from '../multinode/support.js';
import { TotpDevice } from '../support/totp.js';

let pgs: TestPostgres;
let ceph: CephS3;
let a: Node;
let b: Node;
let tokens: Tokens;

before(async () => {
  pgs = await startPostgres('pg-shared-nodes', { own: true });
  ceph = await startCeph('pg-shared');
  const bucket = await ceph.lockedBucket('pgshared');
  const common = { bucket, pgUrl: pgs.url, awsEnv: ceph.env };
  a = new Node({ ...common, nodeId: 'node-a' });
  b = new Node({ ...common, nodeId: 'node-b' });
  await a.start();
  await b.start();
  tokens = a.tokens();
});

after(async () => {
  await a?.stop().catch(() => undefined);
  await b?.stop().catch(() => undefined);
  await pgs?.stop();
  await ceph?.stop();
  await cleanup();
});

const ct = (id: string, eventName = 'GetObject'): string =>
  JSON.stringify({ eventVersion: '1.08', eventID: id, eventTime: new Date().toISOString(), eventSource: 's3.amazonaws.com', eventName, awsRegion: 'eu-west-1', recipientAccountId: '111122223333' });

interface Summary {
  stored: number;
  duplicates: number;
  rejected: number;
}

async function send(n: Node, ids: string[], eventName?: string): Promise<Summary> {
  const r = await fetch(`${n.url}/v1/ingest?source=cloudtrail`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens.writer}`, 'content-type': 'application/json' },
    body: `{"Records":[${ids.map((id) => ct(id, eventName)).join(',')}]}`,
  });
  const text = await r.text();
  assert.equal(r.status, 200, text);
  const body = JSON.parse(text) as Summary;
  return { stored: body.stored, duplicates: body.duplicates, rejected: body.rejected };
}

async function sizeOf(n: Node, log: string): Promise<number> {
  const r = await getJson<{ logs: Array<{ name: string; size: number }> }>(n.url, tokens.auditor, '/v1/logs');
  return r.body.logs.find((l) => l.name === log)?.size ?? 0;
}

const newId = (): string => `00000000-0000-4000-8000-${randomBytes(6).toString('hex')}`;

test('the same CloudTrail eventIDs sent to node A and node B at the same moment are stored once', async () => {
  // the region's log exists first, so both requests race on the records only
  await send(a, [newId()]);
  const before = await waitFor('eu-west-1 on both nodes', async () => {
    const [sa, sb] = await Promise.all([sizeOf(a, 'eu-west-1'), sizeOf(b, 'eu-west-1')]);
    return sa >= 1 && sa === sb ? sa : undefined;
  }, 30_000, 100);
  let distinct = 0;
  for (let round = 0; round < 10; round++) {
    const ids = Array.from({ length: 20 }, newId);
    distinct += ids.length;
    const [oa, ob] = await Promise.all([send(a, ids), send(b, [...ids].reverse())]);
    assert.equal(oa.rejected + ob.rejected, 0, `round ${round}: ${JSON.stringify([oa, ob])}`);
    assert.equal(oa.stored + ob.stored, ids.length, `round ${round}: each record stored once: ${JSON.stringify([oa, ob])}`);
    assert.equal(oa.duplicates + ob.duplicates, ids.length, `round ${round}: ${JSON.stringify([oa, ob])}`);
  }
  // resent later to the other node: a duplicate
  const once = newId();
  assert.deepEqual(await send(a, [once]), { stored: 1, duplicates: 0, rejected: 0 });
  assert.deepEqual(await send(b, [once]), { stored: 0, duplicates: 1, rejected: 0 });
  const want = before + distinct + 1;
  const got = await waitFor('the tree covering every stored record', async () => {
    const s = await sizeOf(b, 'eu-west-1');
    return s >= want ? s : undefined;
  }, 30_000, 100);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await sizeOf(a, 'eu-west-1'), want, 'no record stored twice');
  assert.equal(got, want);
});

test('an alarm rule added on node A runs on node B within a few seconds', async () => {
  const en = await fetch(`${a.url}/v1/admin/totp`, { method: 'POST', headers: { authorization: `Bearer ${tokens.admin}` } });
  assert.equal(en.status, 200, await en.clone().text());
  const device = new TotpDevice(((await en.json()) as { secret: string }).secret);
  const cf = await fetch(`${a.url}/v1/admin/totp/confirm`, { method: 'POST', headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ code: await device.next() }) });
  assert.equal(cf.status, 200, await cf.clone().text());
  const eventName = `H12SharedRule${randomBytes(3).toString('hex')}`;
  const action = `s3.amazonaws.com:${eventName}`;
  const rule = { id: 'content.h12-shared', description: 'added on node A', enabled: true, type: 'match', kind: 'content', severity: 'high', on: 'record', when: [{ field: 'action', equals: action }], title: 'seen {action}' };
  const alarmsOf = async (n: Node): Promise<Array<{ rule: string; title: string }>> => (await getJson<{ alarms: Array<{ rule: string; title: string }> }>(n.url, tokens.auditor, '/v1/alarms')).body.alarms.filter((x) => x.rule === rule.id);
  // before the rule exists, B raises nothing for the record
  assert.equal((await send(b, [newId()], eventName)).stored, 1);
  const added = await fetch(`${a.url}/v1/rules`, { method: 'POST', headers: { ...(await device.headers(tokens.admin)), 'content-type': 'application/json' }, body: JSON.stringify(rule) });
  assert.equal(added.status, 201, await added.clone().text());
  const t0 = Date.now();
  assert.equal((await alarmsOf(a)).length, 0);
  // node B lists the rule once it has reloaded, then a record sent to B only raises the alarm
  await waitFor('the rule on node B', async () => {
    const r = await getJson<{ rules: Array<{ rule?: { id: string }; id?: string }> }>(b.url, tokens.auditor, '/v1/rules');
    return r.body.rules.some((x) => (x.rule?.id ?? x.id) === rule.id) || undefined;
  }, 5_000, 50);
  const reached = Date.now() - t0;
  assert.equal((await send(b, [newId()], eventName)).stored, 1);
  const raised = await waitFor('the alarm raised by node B', async () => {
    const l = await alarmsOf(a);
    return l.length > 0 ? l : undefined;
  }, 10_000, 100);
  assert.equal(raised.length, 1, JSON.stringify(raised));
  assert.equal(raised[0]!.title, `seen ${action}`);
  assert.ok(reached < 5_000, `the rule reached node B in ${reached} ms`);
});
