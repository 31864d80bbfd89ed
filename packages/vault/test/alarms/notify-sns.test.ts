/**
 * SNS deliveries. There is no local SNS, so a real local HTTP server stands in as the
 * `endpoint`: the test checks that what the AWS SDK sends is a proper SNS Publish (the Query
 * protocol: Action=Publish form body), that its SigV4 signature verifies with the secret key the
 * admin configured (which the vault stored encrypted), and answers as SNS does, in XML.
 * Nothing here talks to AWS.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc } from '../support/inproc.js';
import { cleanup } from '../support/server.js';
import { startReceiver, verifySigV4, snsPublishOk, snsError, enrollTotp, addNotifier, trustReport, auditOf, eventually, sleep, FAST } from './notify-support.js';

after(cleanup);

const AKID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:custody-alarms';

test('an alarm is published to SNS as a signed Publish call (local endpoint): topic, subject, JSON message, attributes; audited with the MessageId', async (t) => {
  const sns = await startReceiver({ fallback: { status: 200, body: snsPublishOk('5a2b2c3d-aaaa-4bbb-8ccc-000000000001'), headers: { 'content-type': 'text/xml' } }, path: '/' });
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await sns.close();
  });
  const admin = await enrollTotp(v);
  const id = await addNotifier(v, admin, { type: 'sns', topicArn: TOPIC, region: 'eu-west-1', endpoint: `http://127.0.0.1:${sns.port}`, accessKeyId: AKID, secretAccessKey: SECRET_KEY });
  const alarmId = await trustReport(v);
  const req = await eventually('the Publish call', () => sns.got[0]);

  assert.equal(req.method, 'POST');
  assert.match(String(req.headers['content-type']), /^application\/x-www-form-urlencoded/);
  const form = new URLSearchParams(req.raw.toString('utf8'));
  assert.equal(form.get('Action'), 'Publish');
  assert.equal(form.get('Version'), '2010-03-31');
  assert.equal(form.get('TopicArn'), TOPIC);
  const subject = form.get('Subject')!;
  assert.ok(subject.length <= 100, `Subject is ${subject.length} characters`);
  assert.match(subject, /^\[Custody critical\] Auditor /);
  assert.match(subject, /^[\x20-\x7e]+$/, 'ASCII only');
  const message = JSON.parse(form.get('Message')!) as { event: string; alarm: { id: number; kind: string; severity: string }; vault: { id: string } };
  assert.equal(message.event, 'raised');
  assert.equal(message.alarm.id, alarmId);
  assert.equal(message.alarm.kind, 'trust');
  assert.equal(message.vault.id, v.vault.config.vaultId);
  const attrs: Record<string, string> = {};
  for (let i = 1; form.has(`MessageAttributes.entry.${i}.Name`); i++) {
    assert.equal(form.get(`MessageAttributes.entry.${i}.Value.DataType`), 'String');
    attrs[form.get(`MessageAttributes.entry.${i}.Name`)!] = form.get(`MessageAttributes.entry.${i}.Value.StringValue`)!;
  }
  assert.equal(attrs['severity'], 'critical');
  assert.equal(attrs['kind'], 'trust');

  const sig = verifySigV4(req, SECRET_KEY);
  assert.equal(sig.accessKeyId, AKID);
  assert.equal(sig.region, 'eu-west-1');
  assert.equal(sig.service, 'sns');
  assert.ok(sig.ok, 'the SigV4 signature verifies with the configured secret key');
  assert.equal(verifySigV4(req, SECRET_KEY.replace('K', 'k')).ok, false, 'and not with another key');

  const d = await eventually('the audit record', async () => (await auditOf(v, 'alarm.delivered'))[0]);
  assert.equal(d['notifier'], id);
  assert.equal(d['notifierType'], 'sns');
  assert.equal(d['status'], 200);
  assert.equal(d['messageId'], '5a2b2c3d-aaaa-4bbb-8ccc-000000000001');
  const audit = JSON.stringify(await auditOf(v));
  assert.ok(!audit.includes(SECRET_KEY), 'the secret key is nowhere in the audit log');
  assert.ok(audit.includes(AKID), 'the access key id is not a secret and is shown');
});

test('SNS answering 500 is retried; 400 (InvalidParameter) is final; a FIFO topic gets a group id and the delivery id as dedup id', async (t) => {
  const flaky = await startReceiver({ answers: [{ status: 500, body: snsError('Receiver', 'InternalError', 'try again'), headers: { 'content-type': 'text/xml' } }], fallback: { status: 200, body: snsPublishOk('msg-2'), headers: { 'content-type': 'text/xml' } }, path: '/' });
  const refusing = await startReceiver({ fallback: { status: 400, body: snsError('Sender', 'InvalidParameter', 'Invalid parameter: Subject'), headers: { 'content-type': 'text/xml' } }, path: '/' });
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await flaky.close();
    await refusing.close();
  });
  const admin = await enrollTotp(v);
  const fifoTopic = 'arn:aws:sns:us-east-1:123456789012:custody-alarms.fifo';
  const flakyId = await addNotifier(v, admin, { type: 'sns', topicArn: fifoTopic, region: 'us-east-1', endpoint: `http://127.0.0.1:${flaky.port}`, accessKeyId: AKID, secretAccessKey: SECRET_KEY });
  const refusingId = await addNotifier(v, admin, { type: 'sns', topicArn: TOPIC, region: 'eu-west-1', endpoint: `http://127.0.0.1:${refusing.port}`, accessKeyId: AKID, secretAccessKey: SECRET_KEY, minSeverity: 'high' });
  await trustReport(v);
  const d = await eventually('the retried delivery', async () => (await auditOf(v, 'alarm.delivered')).find((e) => e['notifier'] === flakyId));
  assert.equal(d['attempt'], 2);
  assert.match(String(d['lastError']), /HTTP 500/);
  const forms = flaky.got.map((g) => new URLSearchParams(g.raw.toString('utf8')));
  assert.equal(forms.length, 2);
  for (const f of forms) {
    assert.equal(f.get('MessageGroupId'), 'custody-alarms');
    assert.equal(f.get('MessageDeduplicationId'), d['delivery'], 'one dedup id over the retries');
  }
  const f = await eventually('the final failure', async () => (await auditOf(v, 'alarm.delivery.failed')).find((e) => e['notifier'] === refusingId));
  assert.equal(f['status'], 400);
  assert.equal(f['attempts'], 1);
  assert.match(String(f['error']), /InvalidParameter/);
  await sleep(400);
  assert.equal(refusing.got.length, 1, 'not retried');
});
