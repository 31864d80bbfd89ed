/**
 * `custody admin …` end to end: the real CLI against a real `custody serve`, on the real clock.
 * Two admins enroll their second factor, one requests a new admin, the other approves it; the
 * data directory is no way around the two-person rule; the server log never shows a secret.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, runCli, cleanup, getJson, type RunResult } from '../support/server.js';
import { TotpDevice } from '../support/totp.js';

after(cleanup);

function parsed<T>(r: RunResult, what: string): T {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

test('custody admin: enroll, confirm, request, approve — and the refusals a person sees', async () => {
  const s = await startServer({ checkpointIntervalMs: 20 });
  const as = (token: string, extra: Record<string, string> = {}) => ({ CUSTODY_URL: s.url, CUSTODY_TOKEN: token, ...extra });

  // alice (the first admin) enrolls: the human output says what to do next
  const human = await runCli(['admin', 'totp', 'enroll'], as(s.tokens.admin));
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /authenticator app/);
  assert.match(human.stdout, /custody admin totp confirm <code>/);
  const secretA = /secret {2}([A-Z2-7]{32})/.exec(human.stdout)![1]!;
  assert.match(human.stdout, new RegExp(`otpauth://totp/Custody:initial-admin\\?secret=${secretA}&issuer=Custody`));
  const alice = new TotpDevice(secretA);
  const wrong = await runCli(['admin', 'totp', 'confirm', alice.codeAt(Date.now() - 5 * 30_000)], as(s.tokens.admin));
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /TOTP_INVALID/);
  parsed(await runCli(['admin', 'totp', 'confirm', await alice.next(), '--json'], as(s.tokens.admin)), 'confirm');
  assert.equal(parsed<{ totpEnrolled: boolean }>(await runCli(['admin', 'me', '--json'], as(s.tokens.admin)), 'me').totpEnrolled, true);

  // a sensitive command without a code says how to give one
  const noCode = await runCli(['token', 'create', '--role', 'writer', '--name', 'w1'], as(s.tokens.admin));
  assert.equal(noCode.code, 2);
  assert.match(noCode.stderr, /--totp <code> or CUSTODY_TOTP/);
  assert.match(noCode.stderr, /TOTP_REQUIRED/);

  // bob, the second admin, is added on the data directory while the vault has one admin
  const bobToken = parsed<{ token: string }>(await runCli(['token', 'create', '--data', s.dataDir, '--role', 'admin', '--name', 'bob', '--json']), 'offline bootstrap').token;
  const enrolled = parsed<{ secret: string; otpauthUri: string }>(await runCli(['admin', 'totp', 'enroll', '--json'], as(bobToken)), 'bob enroll');
  const bob = new TotpDevice(enrolled.secret);
  const bobConfirm = await runCli(['admin', 'totp', 'confirm', await bob.next()], as(bobToken));
  assert.equal(bobConfirm.code, 0, bobConfirm.stderr);
  assert.match(bobConfirm.stdout, /second factor is active/);

  // two admins now: the data directory refuses a third
  const sneaky = await runCli(['token', 'create', '--data', s.dataDir, '--role', 'admin', '--name', 'sneaky']);
  assert.equal(sneaky.code, 2);
  assert.match(sneaky.stderr, /custody admin request admin\.add/);

  // alice asks (code from the environment), bob approves with his own code
  const req = parsed<{ approval: { id: string; status: string; description: string } }>(
    await runCli(['admin', 'request', 'admin.add', '--param', 'name=carol', '--json'], as(s.tokens.admin, { CUSTODY_TOTP: await alice.next() })),
    'request',
  );
  assert.equal(req.approval.status, 'pending');
  const listed = parsed<{ approvals: Array<{ id: string }> }>(await runCli(['admin', 'approvals', '--status', 'pending', '--json'], as(s.tokens.auditor)), 'list');
  assert.deepEqual(listed.approvals.map((a) => a.id), [req.approval.id]);
  const listHuman = await runCli(['admin', 'approvals'], as(s.tokens.admin));
  assert.match(listHuman.stdout, new RegExp(`${req.approval.id}  PENDING`));
  assert.match(listHuman.stdout, /Add "carol" as an admin/);

  const ok = parsed<{ approval: { status: string }; result: { token: string } }>(await runCli(['admin', 'approve', req.approval.id, '--totp', await bob.next(), '--json'], as(bobToken)), 'approve');
  assert.equal(ok.approval.status, 'approved');
  const carol = await getJson<{ name: string; role: string }>(s.url, ok.result.token, '/v1/whoami');
  assert.deepEqual([carol.name, carol.role], ['carol', 'admin']);

  // a code used once is refused the second time, and the CLI says why
  const replay = await runCli(['admin', 'deny', req.approval.id, '--totp', bob.codeAt(bob.last * 30_000)], as(bobToken));
  assert.equal(replay.code, 2);
  assert.match(replay.stderr, /already used/);
  assert.match(replay.stderr, /TOTP_INVALID/);

  // the server's log never shows a secret, a token made by approval, or the code header
  const logs = s.stdout.text + s.stderr.text;
  assert.ok(!logs.includes(secretA) && !logs.includes(enrolled.secret), 'a TOTP secret reached the server log');
  assert.ok(!logs.includes(ok.result.token), 'a token reached the server log');
  const headerLines = logs.split('\n').filter((l) => /"x-custody-totp"\s*:/i.test(l));
  assert.deepEqual(headerLines, [], 'request headers reached the server log');
  await s.stop();
});
