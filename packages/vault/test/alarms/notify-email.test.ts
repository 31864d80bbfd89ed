/**
 * E-mail deliveries against a real SMTP server (smtp-server) with STARTTLS and AUTH, using a
 * certificate openssl makes for the test: the alarm of a real request arrives with its title and
 * id; without the CA the certificate is refused; a wrong password is final; a server without
 * STARTTLS is refused; implicit TLS works; an unreachable server is retried, then recorded.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, bearer } from '../support/inproc.js';
import { cleanup, freePort } from '../support/server.js';
import { startSmtp, makeCert, enrollTotp, addNotifier, trustReport, auditOf, eventually, sleep, FAST, type TestCert } from './notify-support.js';

after(cleanup);

let cert: TestCert;
before(() => {
  cert = makeCert();
});

const USER = 'custody-alerts';
const PASS = 'smtp-pass-Zq81-never-shown';

test('an alarm from real traffic arrives by e-mail over STARTTLS with AUTH: subject, title, alarm id and how to look it up', async (t) => {
  const smtp = await startSmtp(cert, { user: USER, pass: PASS });
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await smtp.close();
  });
  const admin = await enrollTotp(v);
  const id = await addNotifier(v, admin, { type: 'email', host: '127.0.0.1', port: smtp.port, secure: 'starttls', user: USER, password: PASS, from: 'Custody <custody@example.org>', to: ['soc@example.org', 'oncall@example.org'], ca: cert.certPath });

  const alarmId = await trustReport(v, 'checkpoint mismatch seen by the nightly verify');
  const mail = await eventually('the e-mail', () => smtp.mails[0]);
  assert.equal(mail.secure, true, 'the session was upgraded with STARTTLS before any mail');
  assert.equal(mail.user, USER, 'the vault logged in');
  assert.equal(mail.from, 'custody@example.org');
  assert.deepEqual(mail.to, ['soc@example.org', 'oncall@example.org']);
  const alarm = (await v.vault.alarms.get(alarmId))!;
  assert.ok(mail.subject.startsWith('[Custody critical] Auditor'), mail.subject);
  assert.ok(mail.text.includes(alarm.title), 'the body has the title');
  assert.match(mail.text, new RegExp(`Alarm: +#${alarmId}\\b`));
  assert.ok(mail.text.includes(`GET /v1/alarms/${alarmId}`), 'and says how to look it up');
  assert.ok(mail.text.includes('checkpoint mismatch seen by the nightly verify'), 'and the details');
  assert.match(mail.raw, new RegExp(`^X-Custody-Alarm: ${alarmId}\\r?$`, 'm'));
  assert.ok(!mail.raw.includes(PASS));

  const d = await eventually('the audit record', async () => (await auditOf(v, 'alarm.delivered'))[0]);
  assert.equal(d['notifier'], id);
  assert.equal(d['notifierType'], 'email');
  assert.equal(d['status'], 250);
  assert.equal(d['attempt'], 1);

  const tested = await v.app.inject({ method: 'POST', url: `/v1/notifiers/${id}/test`, headers: admin.headers() });
  assert.equal(tested.statusCode, 200, tested.body);
  assert.equal(tested.json<{ test: { ok: boolean; status: number } }>().test.ok, true);
  assert.equal(tested.json<{ test: { ok: boolean; status: number } }>().test.status, 250);
  await eventually('the test e-mail', () => smtp.mails.length >= 2);
  assert.match(smtp.mails[1]!.subject, /^\[Custody info test\] Test message from Custody/);
  const audit = JSON.stringify(await auditOf(v));
  assert.ok(!audit.includes(PASS), 'the password is nowhere in the audit log');
});

test('certificate not trusted, wrong password, no STARTTLS offered: each a final failure with a plain reason, never retried', async (t) => {
  const smtp = await startSmtp(cert, { user: USER, pass: PASS });
  const plain = await startSmtp(cert, { user: USER, pass: PASS });
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await smtp.close();
    await plain.close();
  });
  const admin = await enrollTotp(v);
  const base = { type: 'email', host: '127.0.0.1', from: 'custody@example.org', to: ['soc@example.org'] };
  const noCa = await addNotifier(v, admin, { ...base, port: smtp.port, secure: 'starttls', user: USER, password: PASS });
  const badPass = await addNotifier(v, admin, { ...base, port: smtp.port, secure: 'starttls', user: USER, password: 'not-the-password', ca: cert.certPath });
  await trustReport(v);
  const failed = await eventually('two final failures', async () => {
    const f = await auditOf(v, 'alarm.delivery.failed');
    return f.length >= 2 ? f : undefined;
  });
  const byId = (id: string): Record<string, unknown> => failed.find((e) => e['notifier'] === id)!;
  assert.match(String(byId(noCa)['error']), /certificate is not trusted.*set "ca"/);
  assert.match(String(byId(badPass)['error']), /refused the login/);
  for (const f of failed) {
    assert.equal(f['attempts'], 1, 'not retried');
    assert.equal(f['final'], true);
  }
  assert.equal(smtp.authFailures, 1, 'one wrong login, not a storm of them');
  assert.equal(smtp.mails.length, 0);
  assert.ok(!JSON.stringify(failed).includes('not-the-password'));

  // A server that does not offer STARTTLS: with "starttls" the vault refuses to send in clear.
  const { SMTPServer } = await import('smtp-server');
  const noTls = new SMTPServer({ disabledCommands: ['STARTTLS'], hideSTARTTLS: true, authOptional: true, logger: false, onData: (s, _x, cb) => { s.resume(); s.on('end', () => cb()); } });
  await new Promise<void>((ok) => noTls.listen(0, '127.0.0.1', () => ok()));
  t.after(() => new Promise<void>((ok) => noTls.close(() => ok())));
  const port = (noTls.server.address() as { port: number }).port;
  const clear = await addNotifier(v, admin, { ...base, port, secure: 'starttls' });
  const r = await v.app.inject({ method: 'POST', url: `/v1/notifiers/${clear}/test`, headers: admin.headers() });
  const outcome = r.json<{ test: { ok: boolean; error: string } }>().test;
  assert.equal(outcome.ok, false);
  assert.match(outcome.error, /STARTTLS/);
});

test('implicit TLS ("tls") delivers; an unreachable SMTP server is retried, then the final failure is recorded', async (t) => {
  const tls = await startSmtp(cert, { user: USER, pass: PASS, implicitTls: true });
  const deadPort = await freePort();
  const v = await startInProc({ timing: { ...FAST, notifyMaxAttempts: 3 } });
  t.after(async () => {
    await v.close();
    await tls.close();
  });
  const admin = await enrollTotp(v);
  const ok = await addNotifier(v, admin, { type: 'email', host: 'localhost', port: tls.port, secure: 'tls', user: USER, password: PASS, from: 'custody@example.org', to: 'soc@example.org', ca: cert.certPath });
  const dead = await addNotifier(v, admin, { type: 'email', host: '127.0.0.1', port: deadPort, secure: 'starttls', from: 'custody@example.org', to: ['soc@example.org'] });
  await trustReport(v);
  const mail = await eventually('the TLS e-mail', () => tls.mails[0]);
  assert.equal(mail.secure, true);
  const f = await eventually('the final failure', async () => (await auditOf(v, 'alarm.delivery.failed')).find((e) => e['notifier'] === dead));
  assert.equal(f['attempts'], 3, 'retried up to notifyMaxAttempts');
  assert.match(String(f['error']), /cannot reach the SMTP server.*ECONNREFUSED/);
  assert.match(String(f['reason']), /gave up/);
  assert.ok((await auditOf(v, 'alarm.delivered')).some((e) => e['notifier'] === ok));
  await sleep(300);
  assert.equal((await auditOf(v, 'alarm.delivery.failed')).length, 1);
  const list = await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(v.tokens.admin) });
  assert.ok(!list.body.includes(PASS));
});
