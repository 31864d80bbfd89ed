/**
 * The notifier API: configurations refused with NOTIFIER_INVALID naming the field; roles and the
 * second factor; secrets never shown, never audited, never stored in clear; notifiers.json read
 * at start; removal only through a second admin's approval (POST /v1/approvals).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { startInProc, bearer } from '../support/inproc.js';
import { cleanup, freePort } from '../support/server.js';
import { startReceiver, verifyWebhook, enrollTotp, addNotifier, trustReport, auditOf, eventually, sleep, makeCert, FAST } from './notify-support.js';

after(cleanup);

const SECRET = 'whsec-api-test-0123456789';

test('bad configurations are refused with NOTIFIER_INVALID naming the field; nothing is stored; the server stays up', async (t) => {
  const v = await startInProc({ timing: FAST });
  t.after(() => v.close());
  const admin = await enrollTotp(v);
  const cert = makeCert();
  const hook = { type: 'webhook', url: 'https://siem.example.org/hook', secret: SECRET };
  const mail = { type: 'email', host: 'smtp.example.org', from: 'custody@example.org', to: ['soc@example.org'] };
  const sns = { type: 'sns', topicArn: 'arn:aws:sns:eu-west-1:123456789012:alarms', region: 'eu-west-1' };
  const cases: Array<[unknown, string]> = [
    [{ ...hook, url: 'not a url' }, 'url'],
    [{ ...hook, url: 'ftp://siem.example.org/hook' }, 'url'],
    [{ ...hook, url: 'https://user:pw@siem.example.org/hook' }, 'url'],
    [{ ...hook, url: 'https://siem.example.org/' + 'a'.repeat(40_000) }, 'url'],
    [{ ...hook, secret: 'short' }, 'secret'],
    [{ ...hook, secret: undefined }, 'secret'],
    [{ ...hook, secert: SECRET }, 'secert'],
    [{ ...hook, minSeverity: 'urgent' }, 'minSeverity'],
    [{ ...hook, kinds: ['tamper', 'nonsense'] }, 'kinds'],
    [{ ...hook, kinds: [] }, 'kinds'],
    [{ ...hook, type: 'pager' }, 'type'],
    [{ url: 'https://x.example.org' }, 'type'],
    [[hook], '(body)'],
    ['webhook', '(body)'],
    [{ type: 'slack', url: 'javascript:alert(1)' }, 'url'],
    [{ ...mail, secure: 'none' }, 'secure'],
    [{ ...mail, secure: 'ssl' }, 'secure'],
    [{ ...mail, port: 70000 }, 'port'],
    [{ ...mail, to: ['soc@example.org\r\nBcc: evil@example.org'] }, 'to[0]'],
    [{ ...mail, to: [] }, 'to'],
    [{ ...mail, from: 'nobody' }, 'from'],
    [{ ...mail, user: 'alerts' }, 'password'],
    [{ ...mail, ca: 'relative/ca.pem' }, 'ca'],
    [{ ...mail, ca: '/nonexistent/ca.pem' }, 'ca'],
    [{ ...mail, ca: cert.keyPath }, 'ca'],
    [{ ...sns, region: 'us-east-1' }, 'region'],
    [{ ...sns, topicArn: 'arn:aws:s3:::bucket' }, 'topicArn'],
    [{ ...sns, accessKeyId: 'AKIAIOSFODNN7EXAMPLE' }, 'secretAccessKey'],
    [{ ...sns, endpoint: 'file:///etc/passwd' }, 'endpoint'],
  ];
  for (const [body, field] of cases) {
    const r = await v.app.inject({ method: 'POST', url: '/v1/notifiers', headers: { ...admin.headers(), 'content-type': 'application/json' }, payload: JSON.stringify(body) });
    assert.equal(r.statusCode, 400, `${JSON.stringify(body).slice(0, 100)}: ${r.body.slice(0, 300)}`);
    const e = r.json<{ error: { code: string; message: string; details: { field: string } } }>().error;
    assert.equal(e.code, 'NOTIFIER_INVALID', JSON.stringify(body).slice(0, 100));
    assert.equal(e.details.field, field, `${JSON.stringify(body).slice(0, 100)} → ${e.message}`);
    assert.ok(e.message.length < 600, 'the message stays readable');
    assert.ok(!e.message.includes(SECRET), 'and never repeats a secret');
  }
  // A huge body: refused before parsing, and the field says so; beyond the server's limit, 413.
  const big = await v.app.inject({ method: 'POST', url: '/v1/notifiers', headers: { ...admin.headers(), 'content-type': 'application/json' }, payload: JSON.stringify({ ...hook, name: 'x'.repeat(200_000) }) });
  assert.equal(big.statusCode, 400);
  assert.equal(big.json<{ error: { code: string; details: { field: string } } }>().error.code, 'NOTIFIER_INVALID');
  assert.equal(big.json<{ error: { details: { field: string } } }>().error.details.field, '(body)');
  const huge = await v.app.inject({ method: 'POST', url: '/v1/notifiers', headers: { ...admin.headers(), 'content-type': 'application/json' }, payload: '{"a":"' + 'x'.repeat(3 * 1024 * 1024) + '"}' });
  assert.ok(huge.statusCode === 400 || huge.statusCode === 413, String(huge.statusCode));

  const list = await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(v.tokens.admin) });
  assert.deepEqual(list.json<{ notifiers: unknown[] }>().notifiers, []);
  assert.equal((await auditOf(v, 'notifier.added')).length, 0);
  // Still serving, and a good one is taken.
  await addNotifier(v, admin, hook);
  assert.equal((await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(v.tokens.admin) })).json<{ notifiers: unknown[] }>().notifiers.length, 1);
});

test('roles and the second factor: only admins; adding and testing need a current, unused TOTP code; unknown ids are NOTIFIER_NOT_FOUND', async (t) => {
  const v = await startInProc({ timing: FAST });
  t.after(() => v.close());
  const hook = { type: 'webhook', url: 'https://siem.example.org/hook', secret: SECRET };
  for (const tok of [v.tokens.writer, v.tokens.auditor]) {
    assert.equal((await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(tok) })).statusCode, 403);
    assert.equal((await v.app.inject({ method: 'POST', url: '/v1/notifiers', headers: bearer(tok), payload: hook })).statusCode, 403);
  }
  assert.equal((await v.app.inject({ method: 'GET', url: '/v1/notifiers' })).statusCode, 401);
  const notEnrolled = await v.app.inject({ method: 'POST', url: '/v1/notifiers', headers: bearer(v.tokens.admin), payload: hook });
  assert.equal(notEnrolled.json<{ error: { code: string } }>().error.code, 'TOTP_NOT_ENROLLED');
  const admin = await enrollTotp(v);
  const noCode = await v.app.inject({ method: 'POST', url: '/v1/notifiers', headers: bearer(v.tokens.admin), payload: hook });
  assert.equal(noCode.statusCode, 401);
  assert.equal(noCode.json<{ error: { code: string } }>().error.code, 'TOTP_REQUIRED');
  const headers = admin.headers();
  const ok = await v.app.inject({ method: 'POST', url: '/v1/notifiers', headers, payload: hook });
  assert.equal(ok.statusCode, 201, ok.body);
  const replayed = await v.app.inject({ method: 'POST', url: '/v1/notifiers', headers, payload: hook });
  assert.equal(replayed.json<{ error: { code: string } }>().error.code, 'TOTP_INVALID', 'a used code does not work twice');
  const id = ok.json<{ notifier: { id: string } }>().notifier.id;
  const testNoCode = await v.app.inject({ method: 'POST', url: `/v1/notifiers/${id}/test`, headers: bearer(v.tokens.admin) });
  assert.equal(testNoCode.json<{ error: { code: string } }>().error.code, 'TOTP_REQUIRED');
  const unknown = await v.app.inject({ method: 'POST', url: '/v1/notifiers/ntf_0000000000000000/test', headers: admin.headers() });
  assert.equal(unknown.statusCode, 404);
  assert.equal(unknown.json<{ error: { code: string } }>().error.code, 'NOTIFIER_NOT_FOUND');
  const del = await v.app.inject({ method: 'DELETE', url: `/v1/notifiers/${id}`, headers: admin.headers() });
  assert.equal(del.statusCode, 404, 'there is no direct DELETE');
  assert.equal((await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(v.tokens.admin) })).json<{ notifiers: unknown[] }>().notifiers.length, 1);
  const added = await auditOf(v, 'notifier.added');
  assert.equal(added.length, 1);
  assert.equal((added[0]!['principal'] as { role: string }).role, 'admin');
});

test('secrets are never returned, never audited and never stored in clear; failed deliveries do not leak them either', async (t) => {
  const rx = await startReceiver({ fallback: { status: 400, body: 'no' } });
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await rx.close();
  });
  const admin = await enrollTotp(v);
  const secrets = {
    hmac: 'hmac-secret-XYZZY-0123456789',
    slackPath: '/services/T0SECRET/B0SECRET/XyZsEcReTtOkEn123',
    smtp: 'smtp-password-PLUGH-42',
    aws: 'aws-secret-key-FROTZ/abcdefghijklmnop',
    session: 'aws-session-token-GNUSTO-0123456789',
  };
  const deadPort = await freePort();
  await addNotifier(v, admin, { type: 'webhook', url: `${rx.url}?token=query-secret-RUBBER`, secret: secrets.hmac });
  await addNotifier(v, admin, { type: 'slack', url: `http://127.0.0.1:${deadPort}${secrets.slackPath}` });
  await addNotifier(v, admin, { type: 'email', host: '127.0.0.1', port: deadPort, secure: 'starttls', user: 'alerts', password: secrets.smtp, from: 'custody@example.org', to: ['soc@example.org'] });
  await addNotifier(v, admin, { type: 'sns', topicArn: 'arn:aws:sns:eu-west-1:123456789012:alarms', region: 'eu-west-1', endpoint: `http://127.0.0.1:${deadPort}`, accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: secrets.aws, sessionToken: secrets.session });
  await trustReport(v);
  await eventually('the failures', async () => (await auditOf(v, 'alarm.delivery.failed')).length >= 1);
  const listing = await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(v.tokens.admin) });
  const text = listing.body;
  const all = [...Object.values(secrets), 'query-secret-RUBBER'];
  for (const s of all) assert.ok(!text.includes(s), `GET /v1/notifiers shows ${s}`);
  const views = listing.json<{ notifiers: Array<{ type: string; config: Record<string, unknown>; target: string }> }>().notifiers;
  const byType = (ty: string): Record<string, unknown> => views.find((n) => n.type === ty)!.config;
  assert.equal(byType('webhook')['secret'], '***');
  assert.equal(byType('webhook')['url'], `${rx.url}?***`);
  assert.equal(byType('slack')['url'], `http://127.0.0.1:${deadPort}/***`);
  assert.equal(byType('email')['password'], '***');
  assert.equal(byType('email')['user'], 'alerts');
  assert.equal(byType('sns')['secretAccessKey'], '***');
  assert.equal(byType('sns')['sessionToken'], '***');
  const slackId = listing.json<{ notifiers: Array<{ id: string; type: string }> }>().notifiers.find((n) => n.type === 'slack')!.id;
  const tested = await v.app.inject({ method: 'POST', url: `/v1/notifiers/${slackId}/test`, headers: admin.headers() });
  assert.equal(tested.json<{ test: { ok: boolean } }>().test.ok, false);
  for (const s of all) assert.ok(!tested.body.includes(s), `the test outcome shows ${s}`);

  const audit = JSON.stringify(await auditOf(v));
  for (const s of all) assert.ok(!audit.includes(s), `the audit log holds ${s}`);
  assert.ok(audit.includes('"secret":"***"'), 'the audit log shows secrets as ***');
  // custody.db (and its WAL) hold the secrets only encrypted.
  v.vault.db.sqlite.pragma('wal_checkpoint(TRUNCATE)');
  for (const f of readdirSync(v.dataDir).filter((n) => n.startsWith('custody.db'))) {
    const bytes = readFileSync(join(v.dataDir, f));
    for (const s of [...Object.values(secrets), 'query-secret-RUBBER']) assert.equal(bytes.indexOf(s), -1, `${f} holds ${s} in clear`);
  }
  const rows = v.vault.db.sqlite.prepare('SELECT secrets FROM notifier_configs').all() as Array<{ secrets: string }>;
  assert.equal(rows.length, 4);
  for (const r of rows) assert.match(r.secrets, /^v2:[A-Za-z0-9+/]+=*$/);
});

test('<data>/notifiers.json is read at start: listed as from the file, delivers, recorded in the audit log; its notifiers are not removable by approval', async (t) => {
  const rx = await startReceiver();
  const v = await startInProc({
    timing: FAST,
    beforeServices: (dir) => {
      const p = join(dir, 'notifiers.json');
      writeFileSync(p, JSON.stringify([{ id: 'ntf_soc-hook', type: 'webhook', url: rx.url, secret: SECRET, minSeverity: 'high' }, { type: 'slack', url: rx.url.replace('/hook', '/slack'), kinds: ['integrity'] }]));
      chmodSync(p, 0o600);
    },
  });
  t.after(async () => {
    await v.close();
    await rx.close();
  });
  const list = (await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(v.tokens.admin) })).json<{ notifiers: Array<{ id: string; source: string; config: Record<string, unknown> }> }>().notifiers;
  assert.equal(list.length, 2);
  assert.equal(list.find((n) => n.id === 'ntf_soc-hook')!.source, 'file');
  const slack = list.find((n) => n.id !== 'ntf_soc-hook')!;
  assert.match(slack.id, /^ntf_file-[A-Za-z0-9_-]{12}$/);
  assert.equal(slack.config['url'], `http://127.0.0.1:${rx.port}/***`);
  const loaded = await auditOf(v, 'notifier.file.loaded');
  assert.equal(loaded.length, 1);
  assert.deepEqual([...(loaded[0]!['added'] as string[])].sort(), list.map((n) => n.id).sort());
  assert.ok(!JSON.stringify(loaded).includes(SECRET));

  await trustReport(v);
  await eventually('the delivery', () => rx.got.length >= 1);
  await sleep(200);
  assert.equal(rx.got.length, 1, 'the trust alarm goes to the webhook only (the Slack one takes integrity alarms)');
  assert.equal(rx.got[0]!.url, '/hook');
  assert.ok(verifyWebhook(SECRET, rx.got[0]!.headers, rx.got[0]!.raw));

  const admin = await enrollTotp(v);
  const r = await v.app.inject({ method: 'POST', url: '/v1/approvals', headers: admin.headers(), payload: { action: 'notifier.remove', params: { id: 'ntf_soc-hook' } } });
  assert.equal(r.statusCode, 400, r.body);
  assert.match(r.json<{ error: { message: string } }>().error.message, /notifiers\.json/);
});

test('removing a notifier takes a second admin: requested with TOTP, refused to its requester, done when another admin approves', async (t) => {
  const rx = await startReceiver();
  const v = await startInProc({ timing: FAST });
  t.after(async () => {
    await v.close();
    await rx.close();
  });
  const alice = await enrollTotp(v);
  const second = await v.app.inject({ method: 'POST', url: '/v1/principals', headers: alice.headers(), payload: { name: 'bob', role: 'admin' } });
  assert.equal(second.statusCode, 201, second.body);
  const bob = await enrollTotp(v, second.json<{ token: string }>().token);
  const id = await addNotifier(v, alice, { type: 'webhook', url: rx.url, secret: SECRET, name: 'SOC' });

  const req = await v.app.inject({ method: 'POST', url: '/v1/approvals', headers: alice.headers(), payload: { action: 'notifier.remove', params: { id } } });
  assert.equal(req.statusCode, 202, req.body);
  const approval = req.json<{ approval: { id: string; description: string } }>().approval;
  assert.equal(approval.description, `Stop sending alarms to webhook ${rx.url} (notifier ${id}, "SOC")`);
  // Until approved, it still delivers.
  await trustReport(v);
  await eventually('a delivery while the request waits', () => rx.got.length >= 1);
  const self = await v.app.inject({ method: 'POST', url: `/v1/approvals/${approval.id}/approve`, headers: alice.headers() });
  assert.equal(self.statusCode, 403);
  assert.equal(self.json<{ error: { code: string } }>().error.code, 'SELF_APPROVAL');
  assert.equal((await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(v.tokens.admin) })).json<{ notifiers: unknown[] }>().notifiers.length, 1);

  const ok = await v.app.inject({ method: 'POST', url: `/v1/approvals/${approval.id}/approve`, headers: bob.headers() });
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(ok.json<{ result: { removed: string } }>().result.removed, id);
  assert.deepEqual((await v.app.inject({ method: 'GET', url: '/v1/notifiers', headers: bearer(v.tokens.admin) })).json<{ notifiers: unknown[] }>().notifiers, []);
  const removed = await auditOf(v, 'notifier.removed');
  assert.equal(removed.length, 1);
  assert.equal(removed[0]!['requestedBy'], 'initial-admin');
  assert.equal(removed[0]!['approvedBy'], 'bob');
  const before = rx.got.length;
  await trustReport(v);
  await sleep(300);
  assert.equal(rx.got.length, before, 'no more deliveries');
  assert.equal((v.vault.db.sqlite.prepare('SELECT COUNT(*) AS n FROM notifier_configs').get() as { n: number }).n, 0, 'gone from custody.db');
  const unknown = await v.app.inject({ method: 'POST', url: '/v1/approvals', headers: alice.headers(), payload: { action: 'notifier.remove', params: { id } } });
  assert.equal(unknown.json<{ error: { code: string } }>().error.code, 'NOTIFIER_NOT_FOUND');
});
