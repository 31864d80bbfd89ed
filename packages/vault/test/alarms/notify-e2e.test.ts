/**
 * End to end with the real detectors: real traffic against the running app raises the alarm
 * (the default rule pack), and the alarm arrives at a real webhook receiver (HMAC verified), a
 * real SMTP server over STARTTLS, and a local endpoint standing in for SNS.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, bearer } from '../support/inproc.js';
import { cleanup } from '../support/server.js';
import { startReceiver, startSmtp, makeCert, verifyWebhook, verifySigV4, snsPublishOk, enrollTotp, addNotifier, auditOf, eventually, sleep, FAST, type TestCert } from './notify-support.js';
import { ingestCloudTrail, callRecord, SAMPLE_ACTOR, SAMPLE_IP } from './detectors-support.js';

after(cleanup);

let cert: TestCert;
before(() => {
  cert = makeCert();
});

const SECRET = 'whsec-e2e-0123456789abcdef';

test('ten tamper attempts by a writer: one alarm at the webhook and by e-mail at once, then one "repeated 9 more times" at each', async (t) => {
  const rx = await startReceiver();
  const smtp = await startSmtp(cert, { user: 'alerts', pass: 'smtp-e2e-password' });
  const v = await startInProc({ timing: { ...FAST, notifyGroupMs: 1_500 } });
  t.after(async () => {
    await v.close();
    await rx.close();
    await smtp.close();
  });
  const admin = await enrollTotp(v);
  const hook = await addNotifier(v, admin, { type: 'webhook', url: rx.url, secret: SECRET, kinds: ['tamper'] });
  const mail = await addNotifier(v, admin, { type: 'email', host: '127.0.0.1', port: smtp.port, secure: 'starttls', user: 'alerts', password: 'smtp-e2e-password', from: 'custody@example.org', to: ['soc@example.org'], ca: cert.certPath, kinds: ['tamper'] });

  for (let i = 0; i < 10; i++) {
    const r = await v.app.inject({ method: 'DELETE', url: '/v1/logs/local/entries/0', headers: bearer(v.tokens.writer) });
    assert.equal(r.statusCode, 405);
  }
  await eventually('the webhook delivery', () => rx.got.length >= 1);
  await eventually('the e-mail', () => smtp.mails.length >= 1);
  const first = JSON.parse(rx.got[0]!.raw.toString('utf8')) as { event: string; alarm: { id: number; kind: string; rule: string; title: string } };
  assert.ok(verifyWebhook(SECRET, rx.got[0]!.headers, rx.got[0]!.raw));
  assert.equal(first.event, 'raised');
  assert.equal(first.alarm.kind, 'tamper');
  assert.equal(first.alarm.rule, 'tamper.modify-log-data');
  assert.match(first.alarm.title, /initial-writer tried DELETE \/v1\/logs\/local\/entries\/0/);
  assert.equal(smtp.mails[0]!.secure, true);
  assert.match(smtp.mails[0]!.subject, /^\[Custody high\] Tamper attempt/);
  assert.ok(smtp.mails[0]!.text.includes(`GET /v1/alarms/${first.alarm.id}`));
  await sleep(300);
  assert.equal(rx.got.length, 1, 'the repeats wait for the end of the window');
  assert.equal(smtp.mails.length, 1);

  await eventually('the webhook summary', () => rx.got.length >= 2, 10_000);
  await eventually('the e-mail summary', () => smtp.mails.length >= 2, 10_000);
  const summary = JSON.parse(rx.got[1]!.raw.toString('utf8')) as { event: string; repeats: number; alarm: { id: number; count: number } };
  assert.ok(verifyWebhook(SECRET, rx.got[1]!.headers, rx.got[1]!.raw));
  assert.deepEqual([summary.event, summary.repeats, summary.alarm.id, summary.alarm.count], ['repeated', 9, first.alarm.id, 10]);
  assert.match(smtp.mails[1]!.subject, /^\[Custody high repeated x9\] Tamper attempt/);
  assert.match(smtp.mails[1]!.text, /Repeated 9 more times \(seen 10 times in all/);
  const delivered = await eventually('four delivery records', async () => {
    const d = await auditOf(v, 'alarm.delivered');
    return d.length >= 4 ? d : undefined;
  });
  assert.deepEqual(delivered.filter((d) => d['notifier'] === hook).map((d) => d['event']), ['raised', 'repeated']);
  assert.deepEqual(delivered.filter((d) => d['notifier'] === mail).map((d) => d['event']), ['raised', 'repeated']);
  // The delivery records do not themselves raise alarms.
  assert.equal((await v.vault.alarms.list({})).length, 1);
});

test('CloudTrail StopLogging ingested by a writer: the log-generation-off alarm is published to SNS and posted to the webhook, naming the actor', async (t) => {
  const rx = await startReceiver();
  const sns = await startReceiver({ fallback: { status: 200, body: snsPublishOk('11111111-2222-4333-8444-555555555555'), headers: { 'content-type': 'text/xml' } }, path: '/' });
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await rx.close();
    await sns.close();
  });
  const admin = await enrollTotp(v);
  await addNotifier(v, admin, { type: 'webhook', url: rx.url, secret: SECRET, kinds: ['log-generation-off'] });
  const secretKey = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  await addNotifier(v, admin, { type: 'sns', topicArn: 'arn:aws:sns:sa-east-1:974349055189:custody-alarms', region: 'sa-east-1', endpoint: `http://127.0.0.1:${sns.port}`, accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: secretKey, minSeverity: 'high' });

  const stored = await ingestCloudTrail(v, [callRecord('cloudtrail.amazonaws.com', 'StopLogging', { name: 'management-events' })]);
  assert.equal(stored.stored, 1);
  await eventually('the webhook delivery', () => rx.got.length >= 1);
  await eventually('the SNS publish', () => sns.got.length >= 1);
  const body = JSON.parse(rx.got[0]!.raw.toString('utf8')) as { alarm: { kind: string; title: string; details: Record<string, unknown>; log: string; entry: number } };
  assert.ok(verifyWebhook(SECRET, rx.got[0]!.headers, rx.got[0]!.raw));
  assert.equal(body.alarm.kind, 'log-generation-off');
  assert.ok(body.alarm.title.includes(SAMPLE_ACTOR) && body.alarm.title.includes(SAMPLE_IP), body.alarm.title);
  assert.equal(typeof body.alarm.entry, 'number', 'names the entry that caused it');
  const form = new URLSearchParams(sns.got[0]!.raw.toString('utf8'));
  assert.equal(form.get('Action'), 'Publish');
  assert.ok(verifySigV4(sns.got[0]!, secretKey).ok);
  const msg = JSON.parse(form.get('Message')!) as { alarm: { kind: string; title: string } };
  assert.equal(msg.alarm.kind, 'log-generation-off');
  assert.ok(msg.alarm.title.includes(SAMPLE_ACTOR));
  assert.match(form.get('Subject')!, /^\[Custody (high|critical)\] StopLogging: /);
  await sleep(200);
  assert.equal(rx.got.length, 1);
  assert.equal(sns.got.length, 1);
  assert.equal((await auditOf(v, 'alarm.delivered')).length, 2);
});
