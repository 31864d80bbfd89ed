/**
 * Notifiers with a real `custody serve` process and the `custody` CLI: a bad notifiers.json
 * stops the vault from starting with NOTIFIER_INVALID naming the file and field; a good one is
 * used; `custody notifiers add/list/test` work over HTTP with a real TOTP code; and no secret
 * reaches the server's log.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, runCli, makeTempDir, cleanup, listLogs, getJson, ServerExitedError, type ServerHandle } from '../support/server.js';
import { refHotp, refBase32 } from '../support/totp.js';
import { startReceiver, verifyWebhook, eventually } from './notify-support.js';

after(cleanup);

async function initDir(): Promise<string> {
  const dir = join(makeTempDir('notify-cli'), 'vault');
  const r = await runCli(['init', '--data', dir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return dir;
}

test('a bad notifiers.json keeps the vault from starting, naming the file and the field', async () => {
  const cases: Array<[string, RegExp]> = [
    ['[{"type":"webhook","url":"https://x.example.org/h","secret":"ok-secret-0123456789"},{"type":"webhook","url":"https://x.example.org/h","secret":"short"}]', /notifiers\.json: "\[1\]\.secret" of the webhook notifier must be at least 16 characters long/],
    ['[{"type":"pagerduty"}]', /notifiers\.json: "\[0\]\.type" of the notifier must be one of webhook, slack, email, sns/],
    ['{"type": "webhook",', /notifiers\.json: the file is not valid JSON/],
  ];
  for (const [text, message] of cases) {
    const dir = await initDir();
    writeFileSync(join(dir, 'notifiers.json'), text, { mode: 0o600 });
    await assert.rejects(startServer({ dataDir: dir, readyTimeoutMs: 20_000 }), (e: unknown) => {
      assert.ok(e instanceof ServerExitedError, String(e));
      assert.notEqual(e.code, 0);
      const out = e.stdout + e.stderr;
      assert.match(out, message);
      assert.match(out, /NOTIFIER_INVALID/);
      assert.ok(out.includes(join(dir, 'notifiers.json')), 'names the file');
      return true;
    });
  }
});

/**
 * Codes from the real clock (support/totp.ts's own HOTP), each on a later step than the last (a
 * code works only once). Starting one step back lets three codes pass without waiting.
 */
class RealCodes {
  private last = -Infinity;
  constructor(private readonly key: Buffer) {}
  async next(): Promise<string> {
    for (;;) {
      const now = Math.floor(Date.now() / 30_000);
      const step = Math.max(this.last + 1, now - 1);
      if (step <= now + 1) {
        this.last = step;
        return refHotp(this.key, step);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

async function enroll(s: ServerHandle): Promise<RealCodes> {
  const h = { authorization: `Bearer ${s.tokens.admin}`, 'content-type': 'application/json' };
  const start = await fetch(`${s.url}/v1/admin/totp`, { method: 'POST', headers: h, body: '{}' });
  assert.equal(start.status, 200);
  const codes = new RealCodes(refBase32(((await start.json()) as { secret: string }).secret));
  const confirm = await fetch(`${s.url}/v1/admin/totp/confirm`, { method: 'POST', headers: h, body: JSON.stringify({ code: await codes.next() }) });
  assert.equal(confirm.status, 200, await confirm.text());
  return codes;
}

test('custody notifiers add / list / test against a running server; notifiers.json is used; the server log holds no secret', async (t) => {
  const rx = await startReceiver();
  const fileSecret = 'file-secret-XYZZY-0123456789';
  const apiSecret = 'api-secret-PLUGH-0123456789';
  const dir = await initDir();
  writeFileSync(join(dir, 'notifiers.json'), JSON.stringify([{ id: 'ntf_from-file', type: 'webhook', url: rx.url.replace('/hook', '/file'), secret: fileSecret }]), { mode: 0o600 });
  const s = await startServer({ dataDir: dir });
  t.after(async () => {
    await s.stop();
    await rx.close();
  });
  const codes = await enroll(s);
  const env = { CUSTODY_URL: s.url, CUSTODY_TOKEN: s.tokens.admin };
  const cfg = join(makeTempDir('notify-cfg'), 'hook.json');
  writeFileSync(cfg, JSON.stringify({ type: 'webhook', url: rx.url, secret: apiSecret, name: 'SOC' }));

  const noCode = await runCli(['notifiers', 'add', cfg, '--json'], env);
  assert.equal(noCode.code, 2);
  assert.equal((JSON.parse(noCode.stdout) as { error: { code: string } }).error.code, 'TOTP_REQUIRED');
  const added = await runCli(['notifiers', 'add', cfg, '--totp', await codes.next(), '--json'], env);
  assert.equal(added.code, 0, added.stdout + added.stderr);
  const id = (JSON.parse(added.stdout) as { notifier: { id: string; config: { secret: string } } }).notifier.id;
  assert.equal((JSON.parse(added.stdout) as { notifier: { config: { secret: string } } }).notifier.config.secret, '***');

  const listed = await runCli(['notifiers', 'list', '--json'], env);
  assert.equal(listed.code, 0, listed.stderr);
  const list = (JSON.parse(listed.stdout) as { notifiers: Array<{ id: string; source: string }> }).notifiers;
  assert.deepEqual(list.map((n) => [n.id, n.source]).sort(), [[id, 'api'], ['ntf_from-file', 'file']].sort());
  const human = await runCli(['notifiers', 'list'], env);
  assert.match(human.stdout, new RegExp(`${id} "SOC"  webhook ${rx.url.replace(/[/.]/g, '\\$&')}`));
  for (const out of [listed.stdout, human.stdout]) assert.ok(!out.includes(apiSecret) && !out.includes(fileSecret));

  const tested = await runCli(['notifiers', 'test', id, '--totp', await codes.next(), '--json'], env);
  assert.equal(tested.code, 0, tested.stdout + tested.stderr);
  const outcome = (JSON.parse(tested.stdout) as { test: { ok: boolean; status: number } }).test;
  assert.deepEqual([outcome.ok, outcome.status], [true, 200]);
  const testBody = JSON.parse(rx.got[0]!.raw.toString('utf8')) as { event: string };
  assert.equal(testBody.event, 'test');
  assert.ok(verifyWebhook(apiSecret, rx.got[0]!.headers, rx.got[0]!.raw));

  // A real alarm: an auditor's client reports a fork. Both notifiers get it, signed with their own secrets.
  const root = Buffer.alloc(32, 7).toString('base64');
  const rep = await fetch(`${s.url}/v1/trust/report`, { method: 'POST', headers: { authorization: `Bearer ${s.tokens.auditor}`, 'content-type': 'application/json' }, body: JSON.stringify({ log: 'local', reason: 'ROLLBACK', trusted: { size: 9, root }, seen: { size: 3, root } }) });
  assert.equal(rep.status, 202);
  await eventually('both deliveries', () => rx.got.length >= 3);
  const fileHit = rx.got.find((g) => g.url === '/file')!;
  assert.ok(verifyWebhook(fileSecret, fileHit.headers, fileHit.raw));
  const apiHit = rx.got.filter((g) => g.url === '/hook')[1]!;
  assert.ok(verifyWebhook(apiSecret, apiHit.headers, apiHit.raw));

  // Removing is a request for a second admin; without a code it is refused like any sensitive action.
  const remove = await runCli(['notifiers', 'remove', id, '--json'], env);
  assert.equal(remove.code, 2);
  assert.equal((JSON.parse(remove.stdout) as { error: { code: string } }).error.code, 'TOTP_REQUIRED');
  await s.stop();
  const log = s.stdout.text + s.stderr.text;
  assert.match(log, /alarm delivered/, 'the server logged the deliveries');
  for (const secret of [apiSecret, fileSecret]) assert.ok(!log.includes(secret), 'no secret in the server log');

  // The file changes between starts: a new secret for one, another one added. The audit log says so.
  writeFileSync(join(dir, 'notifiers.json'), JSON.stringify([{ id: 'ntf_from-file', type: 'webhook', url: rx.url.replace('/hook', '/file'), secret: 'rotated-secret-0123456789' }, { id: 'ntf_second', type: 'slack', url: rx.url.replace('/hook', '/slack') }]), { mode: 0o600 });
  await s.restart();
  const events: Array<Record<string, unknown>> = [];
  const loads = await eventually('the second notifier.file.loaded record', async () => {
    const size = (await listLogs(s)).find((l) => l.name === 'audit')!.size;
    for (let i = events.length; i < size; i++) events.push(JSON.parse((await getJson<{ record: string }>(s.url, s.tokens.auditor, `/v1/logs/audit/entries/${i}`)).record) as Record<string, unknown>);
    const l = events.filter((e) => e['type'] === 'notifier.file.loaded');
    return l.length >= 2 ? l : undefined;
  });
  assert.equal(loads.length, 2, 'one record per start that found the file changed');
  assert.deepEqual([loads[0]!['added'], loads[0]!['changed'], loads[0]!['removed']], [['ntf_from-file'], [], []]);
  assert.deepEqual([loads[1]!['added'], loads[1]!['changed'], loads[1]!['removed']], [['ntf_second'], ['ntf_from-file'], []]);
  assert.ok(!JSON.stringify(events).includes('rotated-secret-0123456789'));
  const after = (await getJson<{ notifiers: Array<{ id: string }> }>(s.url, s.tokens.admin, '/v1/notifiers')).notifiers.map((n) => n.id).sort();
  assert.deepEqual(after, [id, 'ntf_from-file', 'ntf_second'].sort(), 'API notifiers survive the restart');
});
