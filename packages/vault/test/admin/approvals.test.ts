/**
 * The two-person rule over the real API: bootstrap of the second admin, admin.add and
 * writers.revoke requested by one admin and approved by another with their own code, and every
 * refusal — self-approval, approving twice, an expired request, denial, a race of two approvers
 * — each in the audit log. The admin clock is a fake one (each code moves it one 30 s step on),
 * so the admins can use as many codes as the test needs; the codes are real ones computed from
 * the secrets the API returned.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CustodyError } from '../../src/errors.js';
import { tokenCreate } from '../../src/cli/commands.js';
import { startInProc, bearer, auditRecords, type InProcVault } from '../support/inproc.js';
import { enrollTotp, useFakeClock, type FakeClock, type TotpDevice } from '../support/totp.js';

let v: InProcVault;
let clock: FakeClock;
const admins: Record<string, { token: string; totp: TotpDevice }> = {};

before(async () => {
  v = await startInProc({ regions: ['eu-west-1', 'us-east-1'] });
  clock = useFakeClock(v.vault);
  admins['alice'] = { token: v.tokens.admin, totp: await enrollTotp(v.app, v.tokens.admin, clock) };
});
after(async () => v.close());

type Approval = { id: string; action: string; status: string; description: string; requestedBy: string; decidedBy: string | null; params: Record<string, unknown>; result: Record<string, unknown> | null };
const errorOf = (r: { json: <T>() => T }) => r.json<{ error: { code: string; message: string; details?: Record<string, unknown> } }>().error;

async function as(who: string, method: 'GET' | 'POST', url: string, payload?: object) {
  const a = admins[who]!;
  const headers: Record<string, string> = method === 'POST' ? { ...(await a.totp.headers(a.token)), 'content-type': 'application/json' } : bearer(a.token);
  return v.app.inject({ method, url, headers, payload: method === 'POST' ? (payload ?? {}) : undefined });
}
const request = (who: string, action: string, params: object, extra: object = {}) => as(who, 'POST', '/v1/approvals', { action, params, ...extra });
const approve = (who: string, id: string) => as(who, 'POST', `/v1/approvals/${id}/approve`);
const deny = (who: string, id: string, reason?: string) => as(who, 'POST', `/v1/approvals/${id}/deny`, reason ? { reason } : {});
const getApproval = async (id: string): Promise<Approval> => (await v.app.inject({ method: 'GET', url: `/v1/approvals/${id}`, headers: bearer(v.tokens.auditor) })).json<{ approval: Approval }>().approval;
const whoami = (token: string) => v.app.inject({ method: 'GET', url: '/v1/whoami', headers: bearer(token) });

async function addWriter(name: string, logs?: string[]): Promise<string> {
  const r = await as('alice', 'POST', '/v1/principals', { name, role: 'writer', ...(logs ? { logs } : {}) });
  assert.equal(r.statusCode, 201, r.body);
  return r.json<{ token: string }>().token;
}

test('bootstrap: the only admin adds a second admin at once, with their code, and an alarm is raised', async () => {
  const r = await as('alice', 'POST', '/v1/principals', { name: 'bob', role: 'admin' });
  assert.equal(r.statusCode, 201, r.body);
  const { token } = r.json<{ token: string }>();
  assert.equal((await whoami(token)).json<{ role: string }>().role, 'admin');
  admins['bob'] = { token, totp: await enrollTotp(v.app, token, clock) };
  const alarms = (await v.app.inject({ method: 'GET', url: '/v1/alarms?kind=admin', headers: bearer(v.tokens.auditor) })).json<{ alarms: Array<{ rule: string; severity: string; title: string }> }>().alarms;
  const boot = alarms.find((a) => a.rule === 'admin.bootstrap');
  assert.ok(boot, 'bootstrap raised an alarm');
  assert.equal(boot.severity, 'medium');
  assert.match(boot.title, /initial-admin added "bob"/);
});

test('writers and auditors cannot request or decide; auditors can read the requests', async () => {
  for (const who of ['writer', 'auditor'] as const) {
    const r = await v.app.inject({ method: 'POST', url: '/v1/approvals', headers: { ...bearer(v.tokens[who]), 'content-type': 'application/json', 'x-custody-totp': '123456' }, payload: { action: 'admin.add', params: { name: 'mallory' } } });
    assert.equal(r.statusCode, 403, who);
    assert.equal(errorOf(r).code, 'FORBIDDEN');
    const a = await v.app.inject({ method: 'POST', url: '/v1/approvals/apr_x/approve', headers: { ...bearer(v.tokens[who]), 'x-custody-totp': '123456' } });
    assert.equal(errorOf(a).code, 'FORBIDDEN');
  }
  assert.equal((await v.app.inject({ method: 'GET', url: '/v1/approvals', headers: bearer(v.tokens.writer) })).statusCode, 403);
  assert.equal((await v.app.inject({ method: 'GET', url: '/v1/approvals', headers: bearer(v.tokens.auditor) })).statusCode, 200);
  assert.equal(errorOf(await v.app.inject({ method: 'GET', url: '/v1/approvals/apr_nope', headers: bearer(v.tokens.auditor) })).code, 'APPROVAL_NOT_FOUND');
});

let carolRequest: string;

test('with two admins, adding an admin becomes a request another admin must approve', async () => {
  const r = await as('alice', 'POST', '/v1/principals', { name: 'carol', role: 'admin' });
  assert.equal(r.statusCode, 202, r.body);
  const body = r.json<{ approval: Approval; code: string }>();
  assert.equal(body.code, 'APPROVAL_REQUIRED');
  assert.equal(body.approval.action, 'admin.add');
  assert.equal(body.approval.status, 'pending');
  assert.deepEqual(body.approval.params, { name: 'carol' });
  assert.match(body.approval.id, /^apr_[A-Za-z0-9_-]+$/);
  assert.equal(v.vault.db.getPrincipal('carol'), undefined, 'nothing happens before approval');
  carolRequest = body.approval.id;
  // the other admins hear of it
  const alarms = (await v.app.inject({ method: 'GET', url: '/v1/alarms?kind=admin', headers: bearer(v.tokens.admin) })).json<{ alarms: Array<{ rule: string; severity: string; title: string; details: Record<string, unknown> }> }>().alarms;
  const asked = alarms.find((a) => a.rule === 'approval.requested' && a.details['id'] === carolRequest);
  assert.ok(asked);
  assert.equal(asked.severity, 'info');
  assert.match(asked.title, /initial-admin asks .*Add "carol" as an admin/);
  // the list shows it to auditors
  const pending = (await v.app.inject({ method: 'GET', url: '/v1/approvals?status=pending', headers: bearer(v.tokens.auditor) })).json<{ approvals: Approval[] }>().approvals;
  assert.deepEqual(pending.map((a) => a.id), [carolRequest]);
});

test('the requester cannot approve their own request', async () => {
  const r = await approve('alice', carolRequest);
  assert.equal(r.statusCode, 403);
  assert.equal(errorOf(r).code, 'SELF_APPROVAL');
  assert.equal((await getApproval(carolRequest)).status, 'pending');
  assert.equal(v.vault.db.getPrincipal('carol'), undefined);
});

test('approving without a valid code is refused before anything happens', async () => {
  const r = await v.app.inject({ method: 'POST', url: `/v1/approvals/${carolRequest}/approve`, headers: { ...bearer(admins['bob']!.token), 'x-custody-totp': admins['bob']!.totp.codeAt(clock.t - 5 * 30_000) } });
  assert.equal(r.statusCode, 401);
  assert.equal(errorOf(r).code, 'TOTP_INVALID');
  assert.equal((await getApproval(carolRequest)).status, 'pending');
});

test('a different admin approves with their code: the admin exists, and its token (shown once) works', async () => {
  const r = await approve('bob', carolRequest);
  assert.equal(r.statusCode, 200, r.body);
  const { approval, result } = r.json<{ approval: Approval; result: { principal: { name: string; role: string }; token: string } }>();
  assert.equal(approval.status, 'approved');
  assert.equal(approval.decidedBy, 'bob');
  assert.equal(result.principal.name, 'carol');
  const me = await whoami(result.token);
  assert.equal(me.statusCode, 200);
  assert.deepEqual([me.json<{ name: string }>().name, me.json<{ role: string }>().role], ['carol', 'admin']);
  admins['carol'] = { token: result.token, totp: await enrollTotp(v.app, result.token, clock) };
  // stored and listed without the token
  const stored = await getApproval(carolRequest);
  assert.equal(stored.status, 'approved');
  assert.ok(!JSON.stringify(stored).includes(result.token));
  assert.match(String(stored.result?.['token']), /shown once/);
});

test('an approved request cannot be approved again', async () => {
  const r = await approve('carol', carolRequest);
  assert.equal(r.statusCode, 409);
  assert.equal(errorOf(r).code, 'APPROVAL_CLOSED');
  assert.equal(v.vault.db.listPrincipals().filter((p) => p.name === 'carol').length, 1);
});

test('a request past its expiry is closed and marked expired', async () => {
  const r = await request('alice', 'admin.add', { name: 'dave' }, { expiresInMinutes: 5 });
  assert.equal(r.statusCode, 202, r.body);
  const id = r.json<{ approval: Approval }>().approval.id;
  clock.advance(6 * 60_000);
  const late = await approve('bob', id);
  assert.equal(late.statusCode, 409);
  assert.equal(errorOf(late).code, 'APPROVAL_CLOSED');
  assert.match(errorOf(late).message, /expired/);
  assert.equal((await getApproval(id)).status, 'expired');
  assert.equal(v.vault.db.getPrincipal('dave'), undefined);
});

test('deny, and cancel by the requester; a decided request stays decided', async () => {
  const a = (await request('alice', 'admin.add', { name: 'erin' })).json<{ approval: Approval }>().approval.id;
  const d = await deny('bob', a, 'nobody told me about erin');
  assert.equal(d.statusCode, 200, d.body);
  assert.equal(d.json<{ approval: Approval }>().approval.status, 'denied');
  const late = await approve('carol', a);
  assert.equal(errorOf(late).code, 'APPROVAL_CLOSED');
  const b = (await request('alice', 'admin.add', { name: 'frank' })).json<{ approval: Approval }>().approval.id;
  const c = await deny('alice', b);
  assert.equal(c.json<{ approval: Approval }>().approval.status, 'cancelled');
  assert.equal(errorOf(await deny('bob', b)).code, 'APPROVAL_CLOSED');
  assert.equal(v.vault.db.getPrincipal('erin'), undefined);
  assert.equal(v.vault.db.getPrincipal('frank'), undefined);
});

test('bad requests: unknown action, bad parameters, bad expiry', async () => {
  const unknown = await request('alice', 'vault.delete', {});
  assert.equal(unknown.statusCode, 400);
  assert.equal(errorOf(unknown).code, 'BAD_REQUEST');
  assert.match(errorOf(unknown).message, /admin\.add/);
  assert.match(errorOf(unknown).message, /writers\.revoke/);
  assert.equal(errorOf(await request('alice', 'writers.revoke', {})).code, 'BAD_REQUEST');
  assert.equal(errorOf(await request('alice', 'writers.revoke', { logs: 'eu-west-1' })).code, 'BAD_REQUEST');
  assert.equal(errorOf(await request('alice', 'writers.revoke', { log: 'mars-1' })).code, 'LOG_NOT_FOUND');
  assert.equal(errorOf(await request('alice', 'admin.add', { name: 'bob' })).code, 'PRINCIPAL_EXISTS');
  assert.equal(errorOf(await request('alice', 'admin.add', { name: 'x y' })).code, 'BAD_REQUEST');
  assert.equal(errorOf(await request('alice', 'admin.add', { name: 'gina' }, { expiresInMinutes: 10081 })).code, 'BAD_REQUEST');
  assert.equal(errorOf(await request('alice', 'admin.add', { name: 'gina' }, { expiresInMinutes: 0.5 })).code, 'BAD_REQUEST');
  assert.equal(errorOf(await as('alice', 'POST', '/v1/approvals', { action: 'admin.add', params: ['gina'] })).code, 'BAD_REQUEST');
  assert.equal(errorOf(await as('alice', 'POST', '/v1/approvals', { action: 'admin.add', params: { name: 'x'.repeat(20_000) } })).code, 'BAD_REQUEST');
  const list = (await v.app.inject({ method: 'GET', url: '/v1/approvals?status=nope', headers: bearer(v.tokens.auditor) }));
  assert.equal(errorOf(list).code, 'BAD_REQUEST');
});

test('writers.revoke revokes exactly the writers of a log, or with a name prefix', async () => {
  const tok = {
    euOnly: await addWriter('shipper-eu', ['eu-west-1']),
    usOnly: await addWriter('shipper-us', ['us-east-1']),
    both: await addWriter('shipper-both', ['eu-west-1', 'us-east-1']),
    vector: await addWriter('vector-1', ['us-east-1']),
    vector2: await addWriter('vector-2'),
  };
  const r = await request('alice', 'writers.revoke', { log: 'eu-west-1' });
  assert.equal(r.statusCode, 202, r.body);
  const { id, description } = r.json<{ approval: Approval }>().approval;
  assert.match(description, /can append to log "eu-west-1"/);
  const ok = await approve('carol', id);
  assert.equal(ok.statusCode, 200, ok.body);
  const revoked = ok.json<{ result: { revoked: Array<{ name: string }>; count: number } }>().result.revoked.map((w) => w.name).sort();
  // unscoped writers append to every log, so they are writers of eu-west-1 too
  assert.deepEqual(revoked, ['initial-writer', 'shipper-both', 'shipper-eu', 'vector-2']);
  for (const t of [tok.euOnly, tok.both, tok.vector2, v.tokens.writer]) {
    const w = await whoami(t);
    assert.equal(w.statusCode, 401);
    assert.equal(errorOf(w).details?.['reason'], 'revoked');
  }
  for (const t of [tok.usOnly, tok.vector]) assert.equal((await whoami(t)).statusCode, 200);

  const p = (await request('bob', 'writers.revoke', { namePrefix: 'vector-' })).json<{ approval: Approval }>().approval.id;
  const ok2 = await approve('alice', p);
  assert.deepEqual(ok2.json<{ result: { revoked: Array<{ name: string }> } }>().result.revoked.map((w) => w.name), ['vector-1']);
  assert.equal((await whoami(tok.vector)).statusCode, 401);
  assert.equal((await whoami(tok.usOnly)).statusCode, 200, 'a writer of another log with another name is untouched');
});

test('revoking an admin is a request too: one admin cannot remove the other alone', async () => {
  // A third admin to revoke (alice, bob and carol exist by now).
  const add = (await request('alice', 'admin.add', { name: 'temp-admin' })).json<{ approval: Approval }>().approval.id;
  const added = await approve('bob', add);
  assert.equal(added.statusCode, 200, added.body);
  const target = added.json<{ result: { principal: { id: string }; token: string } }>().result;
  const r = await as('alice', 'POST', `/v1/principals/${target.principal.id}/revoke`);
  assert.equal(r.statusCode, 202, r.body);
  const ap = r.json<{ approval: Approval; code: string }>();
  assert.equal(ap.code, 'APPROVAL_REQUIRED');
  assert.equal(ap.approval.action, 'admin.revoke');
  assert.equal((await whoami(target.token)).statusCode, 200, 'still an admin until a second admin approves');
  assert.equal(errorOf(await approve('alice', ap.approval.id)).code, 'SELF_APPROVAL');
  const ok = await approve('carol', ap.approval.id);
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal((await whoami(target.token)).statusCode, 401);
  assert.equal(errorOf(await request('alice', 'admin.revoke', { id: target.principal.id })).code, 'BAD_REQUEST', 'already revoked');
  assert.equal(errorOf(await request('alice', 'admin.revoke', { id: 'nobody' })).code, 'PRINCIPAL_NOT_FOUND');
});

test('two admins approving one request at once: it runs once', async () => {
  const race = await addWriter('race-1');
  const id = (await request('alice', 'writers.revoke', { namePrefix: 'race-' })).json<{ approval: Approval }>().approval.id;
  const [b, c] = await Promise.all([approve('bob', id), approve('carol', id)]);
  const statuses = [b.statusCode, c.statusCode].sort();
  assert.deepEqual(statuses, [200, 409], `${b.body} ${c.body}`);
  const loser = b.statusCode === 409 ? b : c;
  assert.equal(errorOf(loser).code, 'APPROVAL_CLOSED');
  assert.equal((await whoami(race)).statusCode, 401);
  const audit = await auditRecords(v);
  assert.equal(audit.filter((a) => a.type === 'approval.executed' && a.id === id).length, 1);
  assert.equal(audit.filter((a) => a.type === 'approval.approved' && a.id === id).length, 1);
  assert.equal(audit.filter((a) => a.type === 'admin.principal.revoked' && a.approval === id).length, 1);
});

test('an action that needs no second admin runs at once; one that fails is marked failed', async () => {
  let runs = 0;
  v.vault.actions.register<{ n: number }>('test.tighten', {
    validate: (p) => ({ n: Number((p as { n?: unknown }).n ?? 1) }),
    describe: (p) => `Tighten by ${p.n}`,
    needsApproval: (p) => p.n > 10,
    execute: async (p) => ({ tightened: p.n, runs: ++runs }),
  });
  const direct = await request('alice', 'test.tighten', { n: 3 });
  assert.equal(direct.statusCode, 200, direct.body);
  assert.deepEqual(direct.json<{ result: unknown }>().result, { tightened: 3, runs: 1 });
  const loosen = await request('alice', 'test.tighten', { n: 20 });
  assert.equal(loosen.statusCode, 202);

  v.vault.actions.register('test.fails', {
    validate: (p) => p as Record<string, unknown>,
    describe: () => 'Fail on purpose',
    execute: async () => {
      throw new CustodyError('LOG_NOT_FOUND', 'There is no log "gone".');
    },
  });
  const id = (await request('alice', 'test.fails', {})).json<{ approval: Approval }>().approval.id;
  const r = await approve('bob', id);
  assert.equal(r.statusCode, 404);
  assert.equal(errorOf(r).code, 'LOG_NOT_FOUND');
  const a = await getApproval(id);
  assert.equal(a.status, 'failed');
  assert.deepEqual(a.result, { error: { code: 'LOG_NOT_FOUND', message: 'There is no log "gone".' } });
  assert.equal(errorOf(await approve('carol', id)).code, 'APPROVAL_CLOSED');
});

test('offline admin creation on the data directory is refused once two admins exist', async () => {
  await assert.rejects(tokenCreate({ data: v.dataDir, role: 'admin', name: 'sneaky', json: true }), (e: unknown) => {
    assert.ok(e instanceof CustodyError);
    assert.equal(e.code, 'FORBIDDEN');
    assert.match(e.message, /custody admin request admin\.add/);
    return true;
  });
  assert.equal(v.vault.db.getPrincipal('sneaky'), undefined);
});

test('every step is in the audit log: who, what, from where — and no token', async () => {
  const audit = await auditRecords(v);
  const of = (type: string) => audit.filter((a) => a.type === type);
  const carol = of('approval.requested').find((a) => a.id === carolRequest)!;
  assert.equal(carol.action, 'admin.add');
  assert.match(String(carol.description), /carol/);
  assert.equal((carol.principal as { name: string }).name, 'initial-admin');
  assert.equal(typeof carol.address, 'string');
  const self = of('approval.refused').find((a) => a.id === carolRequest && a.reason === 'self-approval');
  assert.ok(self, 'the self-approval attempt is recorded');
  const approved = of('approval.approved').find((a) => a.id === carolRequest)!;
  assert.equal(approved.approvedBy, 'bob');
  assert.equal((approved.principal as { name: string }).name, 'bob');
  assert.ok(of('approval.executed').some((a) => a.id === carolRequest));
  assert.ok(of('admin.principal.created').some((a) => a.approval === carolRequest && (a.target as { name: string }).name === 'carol'));
  assert.ok(of('admin.principal.created').some((a) => a.bootstrap === true && (a.target as { name: string }).name === 'bob'));
  for (const t of ['approval.denied', 'approval.cancelled', 'approval.expired', 'approval.failed', 'approval.executed-directly']) assert.ok(of(t).length > 0, `${t} is recorded`);
  assert.ok(of('approval.refused').some((a) => a.reason === 'closed'));
  assert.ok(of('alarm.raised').some((a) => (a.alarm as { rule: string }).rule === 'approval.requested'));
  assert.ok(of('alarm.raised').some((a) => (a.alarm as { rule: string }).rule === 'admin.bootstrap'));
  const text = JSON.stringify(audit);
  for (const a of Object.values(admins)) {
    assert.ok(!text.includes(a.token), 'no admin token in the audit log');
    assert.ok(!text.includes(a.totp.secret), 'no TOTP secret in the audit log');
  }
});
