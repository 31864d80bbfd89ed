/**
 * Notifiers on a shared vault, two real `custody serve` nodes (PostgreSQL + Ceph S3): a webhook
 * notifier added on node A (admin + TOTP) is listed by node B within a few seconds, and an alarm
 * raised on node B is delivered by node B to the webhook, signed with the notifier's secret
 * (the HMAC verified over the raw body as a receiver must). The PostgreSQL row holds neither the
 * secret nor the URL in the clear.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startPostgres, type TestPostgres } from '../support/postgres.js';
import { startCeph, type CephS3 } from '../support/ceph.js';
import { cleanup, waitFor, type Tokens } from '../support/server.js';
import { Node, getJson } from '../multinode/support.js';
import { TotpDevice } from '../support/totp.js';
import { startReceiver, verifyWebhook, type Receiver } from '../alarms/notify-support.js';

let pgs: TestPostgres;
let ceph: CephS3;
let a: Node;
let b: Node;
let tokens: Tokens;
let rx: Receiver;
let alice: TotpDevice;
let notifierId: string;
const SECRET = `whsec-${randomBytes(12).toString('hex')}`;

before(async () => {
  rx = await startReceiver();
  pgs = await startPostgres('pg-shared-notifiers-nodes', { own: true });
  ceph = await startCeph('pg-shared');
  const bucket = await ceph.lockedBucket('pgnotify');
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
  await rx?.close();
  await pgs?.stop();
  await ceph?.stop();
  await cleanup();
});

test('a webhook notifier added on node A receives, signed, an alarm raised on node B', async () => {
  // a log to report on
  const rec = JSON.stringify({ eventVersion: '1.08', eventID: `00000000-0000-4000-8000-${randomBytes(6).toString('hex')}`, eventTime: new Date().toISOString(), eventSource: 's3.amazonaws.com', eventName: 'GetObject', awsRegion: 'eu-west-1', recipientAccountId: '111122223333' });
  const ing = await fetch(`${b.url}/v1/ingest?source=cloudtrail`, { method: 'POST', headers: { authorization: `Bearer ${tokens.writer}`, 'content-type': 'application/json' }, body: `{"Records":[${rec}]}` });
  assert.equal(ing.status, 200, await ing.clone().text());

  const en = await fetch(`${a.url}/v1/admin/totp`, { method: 'POST', headers: { authorization: `Bearer ${tokens.admin}` } });
  assert.equal(en.status, 200, await en.clone().text());
  const device = new TotpDevice(((await en.json()) as { secret: string }).secret);
  const cf = await fetch(`${a.url}/v1/admin/totp/confirm`, { method: 'POST', headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ code: await device.next() }) });
  assert.equal(cf.status, 200, await cf.clone().text());

  const added = await fetch(`${a.url}/v1/notifiers`, { method: 'POST', headers: { ...(await device.headers(tokens.admin)), 'content-type': 'application/json' }, body: JSON.stringify({ type: 'webhook', url: rx.url, secret: SECRET, name: 'SOC', minSeverity: 'low' }) });
  assert.equal(added.status, 201, await added.clone().text());
  const id = ((await added.json()) as { notifier: { id: string } }).notifier.id;
  alice = device;
  notifierId = id;
  const t0 = Date.now();

  // node B picks it up from PostgreSQL (its secret shown as *** like any notifier)
  const listed = await waitFor('the notifier on node B', async () => {
    const r = await getJson<{ notifiers: Array<{ id: string; secret?: string }> }>(b.url, tokens.admin, '/v1/notifiers');
    return r.body.notifiers.find((n) => n.id === id);
  }, 10_000, 100);
  const reached = Date.now() - t0;
  assert.ok(reached < 5_000, `the notifier reached node B in ${reached} ms`);
  assert.ok(!JSON.stringify(listed).includes(SECRET), 'node B does not show the secret');

  // an alarm raised on node B only
  const root = Buffer.alloc(32, 7).toString('base64');
  const rep = await fetch(`${b.url}/v1/trust/report`, { method: 'POST', headers: { authorization: `Bearer ${tokens.auditor}`, 'content-type': 'application/json' }, body: JSON.stringify({ log: 'eu-west-1', reason: 'NOT_A_PREFIX', trusted: { size: 10, root }, seen: { size: 12, root }, message: 'forked (H14 two nodes)', client: 'h14-test' }) });
  assert.equal(rep.status, 202, await rep.clone().text());
  const alarm = ((await rep.json()) as { alarm: number }).alarm;

  const got = await waitFor('the delivery', () => rx.got.find((g) => g.raw.toString('utf8').includes('H14 two nodes')), 15_000, 100);
  assert.ok(verifyWebhook(SECRET, got.headers, got.raw), 'signed with the secret given on node A');
  assert.equal(verifyWebhook('another-secret-000000', got.headers, got.raw), false);
  const body = JSON.parse(got.raw.toString('utf8')) as Record<string, unknown>;
  assert.ok(JSON.stringify(body).includes(String(alarm)), 'the delivery names the alarm');

  // at rest in PostgreSQL: the row is there, its secret and URL are not in the clear
  const c = new pg.Client({ connectionString: pgs.url });
  await c.connect();
  try {
    const rows = (await c.query('SELECT * FROM custody_notifier_configs WHERE id = $1', [id])).rows;
    assert.equal(rows.length, 1);
    const text = JSON.stringify(rows);
    assert.ok(!text.includes(SECRET), 'no secret in the clear');
    assert.ok(!text.includes(rx.url), 'no URL in the clear');
  } finally {
    await c.end();
  }
});

test('removing it (two admins: asked on node A, approved on node B) stops it on node A within a few seconds', async () => {
  assert.ok(notifierId, 'the first test added the notifier');
  const second = await fetch(`${a.url}/v1/principals`, { method: 'POST', headers: { ...(await alice.headers(tokens.admin)), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bob', role: 'admin' }) });
  assert.equal(second.status, 201, await second.clone().text());
  const bobToken = ((await second.json()) as { token: string }).token;
  const en = await waitFor('bob known on node B', async () => {
    const r = await fetch(`${b.url}/v1/admin/totp`, { method: 'POST', headers: { authorization: `Bearer ${bobToken}` } });
    return r.status === 200 ? r : undefined;
  }, 10_000, 100);
  const bob = new TotpDevice(((await en.json()) as { secret: string }).secret);
  const cf = await fetch(`${b.url}/v1/admin/totp/confirm`, { method: 'POST', headers: { authorization: `Bearer ${bobToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ code: await bob.next() }) });
  assert.equal(cf.status, 200, await cf.clone().text());

  const req = await fetch(`${a.url}/v1/approvals`, { method: 'POST', headers: { ...(await alice.headers(tokens.admin)), 'content-type': 'application/json' }, body: JSON.stringify({ action: 'notifier.remove', params: { id: notifierId } }) });
  assert.equal(req.status, 202, await req.clone().text());
  const approval = ((await req.json()) as { approval: { id: string } }).approval.id;
  const ok = await fetch(`${b.url}/v1/approvals/${approval}/approve`, { method: 'POST', headers: await bob.headers(bobToken) });
  assert.equal(ok.status, 200, await ok.clone().text());
  const t0 = Date.now();
  await waitFor('the notifier gone on node A', async () => {
    const r = await getJson<{ notifiers: Array<{ id: string }> }>(a.url, tokens.admin, '/v1/notifiers');
    return r.body.notifiers.every((n) => n.id !== notifierId) || undefined;
  }, 10_000, 100);
  assert.ok(Date.now() - t0 < 5_000, 'within a few seconds');
  // an alarm raised on node A is no longer delivered
  const before = rx.got.length;
  const root = Buffer.alloc(32, 9).toString('base64');
  const rep = await fetch(`${a.url}/v1/trust/report`, { method: 'POST', headers: { authorization: `Bearer ${tokens.auditor}`, 'content-type': 'application/json' }, body: JSON.stringify({ log: 'eu-west-1', reason: 'NOT_A_PREFIX', trusted: { size: 20, root }, seen: { size: 22, root }, message: 'after removal (H14)', client: 'h14-test' }) });
  assert.equal(rep.status, 202, await rep.clone().text());
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(rx.got.length, before, 'nothing delivered after the removal');
});
