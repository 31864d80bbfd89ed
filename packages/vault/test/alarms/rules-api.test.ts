/**
 * Rule management over the real API: GET /v1/rules (auditor, admin), POST /v1/rules (admin +
 * TOTP). A new rule or a tightening applies at once and shows in the very next alarm; a
 * loosening becomes a two-person request that applies only when a different admin approves
 * it (through /v1/approvals); malformed rules are refused with RULE_INVALID naming the field,
 * and the vault stays up. Every change is in the audit log with before and after.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { auditRecords, bearer, startInProc, type InProcVault } from '../support/inproc.js';
import { enrollTotp, useFakeClock, type FakeClock, type TotpDevice } from '../support/totp.js';
import { alarms, callRecord, ingestCloudTrail, settle } from './detectors-support.js';

type RuleView = Record<string, unknown> & { id: string; enabled: boolean; severity: string; origin: string; updatedBy: string };
const errorOf = (r: { json: <T>() => T }) => r.json<{ error: { code: string; message: string; details?: Record<string, unknown> } }>().error;

let v: InProcVault;
let clock: FakeClock;
const admins: Record<string, { token: string; totp: TotpDevice }> = {};

before(async () => {
  v = await startInProc();
  clock = useFakeClock(v.vault);
  admins['alice'] = { token: v.tokens.admin, totp: await enrollTotp(v.app, v.tokens.admin, clock) };
  const r = await v.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...(await admins['alice'].totp.headers(v.tokens.admin)), 'content-type': 'application/json' }, payload: { name: 'bob', role: 'admin' } });
  assert.equal(r.statusCode, 201, r.body);
  const bob = r.json<{ token: string }>().token;
  admins['bob'] = { token: bob, totp: await enrollTotp(v.app, bob, clock) };
});
after(() => v.close());

async function post(who: string, url: string, payload: unknown, raw = false) {
  const a = admins[who]!;
  return v.app.inject({ method: 'POST', url, headers: { ...(await a.totp.headers(a.token)), 'content-type': 'application/json' }, payload: raw ? (payload as string) : JSON.stringify(payload) });
}
const getRule = async (id: string): Promise<RuleView> => {
  const r = await v.app.inject({ method: 'GET', url: `/v1/rules/${id}`, headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<{ rule: RuleView }>().rule;
};
const ruleOnly = (r: RuleView): Record<string, unknown> => {
  const { origin, createdAt, updatedAt, updatedBy, ...rule } = r;
  void [origin, createdAt, updatedAt, updatedBy];
  return rule;
};

describe('reading rules', () => {
  test('auditors and admins list the default pack; writers are refused', async () => {
    for (const who of ['auditor', 'admin'] as const) {
      const r = await v.app.inject({ method: 'GET', url: '/v1/rules', headers: bearer(v.tokens[who]) });
      assert.equal(r.statusCode, 200, r.body);
      const rules = r.json<{ rules: RuleView[] }>().rules;
      assert.ok(rules.length >= 58, `${rules.length} rules`);
      assert.ok(rules.every((x) => x.origin === 'default' && x.enabled && x.updatedBy === 'default pack'));
      for (const id of ['tamper.modify-log-data', 'tamper.writer-read', 'tamper.auditor-write', 'auth.burst-per-address', 'auth.totp-burst-per-principal', 'silence.learned', 'log-off.cloudtrail.StopLogging']) {
        assert.ok(rules.some((x) => x.id === id), id);
      }
    }
    const w = await v.app.inject({ method: 'GET', url: '/v1/rules', headers: bearer(v.tokens.writer) });
    assert.equal(w.statusCode, 403);
  });

  test('one rule; an unknown id is RULE_NOT_FOUND', async () => {
    const r = await getRule('log-off.cloudtrail.StopLogging');
    assert.equal(r['kind'], 'log-generation-off');
    assert.equal(r.severity, 'critical');
    const n = await v.app.inject({ method: 'GET', url: '/v1/rules/nope', headers: bearer(v.tokens.auditor) });
    assert.equal(n.statusCode, 404);
    assert.equal(errorOf(n).code, 'RULE_NOT_FOUND');
  });

  test('the default pack is stored as such: origin default, by "default pack"', async () => {
    const r = await getRule('silence.learned');
    assert.equal(r.origin, 'default');
    assert.equal(r.updatedBy, 'default pack');
    // Installing the pack is part of the release, not an admin's act: the audit log holds no rule events yet.
    assert.deepEqual((await auditRecords(v)).filter((e) => String(e['type']).startsWith('rule')), []);
  });
});

describe('changing rules', () => {
  test('POST /v1/rules needs an admin with a current TOTP code', async () => {
    const rule = { ...ruleOnly(await getRule('tamper.writer-read')), severity: 'critical' };
    const none = await v.app.inject({ method: 'POST', url: '/v1/rules', headers: { ...bearer(v.tokens.admin), 'content-type': 'application/json' }, payload: JSON.stringify(rule) });
    assert.equal(none.statusCode, 401);
    assert.equal(errorOf(none).code, 'TOTP_REQUIRED');
    const auditor = await v.app.inject({ method: 'POST', url: '/v1/rules', headers: { ...bearer(v.tokens.auditor), 'content-type': 'application/json', 'x-custody-totp': '123456' }, payload: JSON.stringify(rule) });
    assert.equal(auditor.statusCode, 403);
    assert.equal((await getRule('tamper.writer-read')).severity, 'high');
  });

  test('malformed rules are refused with RULE_INVALID naming the field; the vault stays up', async () => {
    const base = { id: 'content.console-login-failed', description: 'Failed console sign-ins.', enabled: true, type: 'match', kind: 'content', severity: 'medium', on: 'record', when: [{ field: 'action', equals: 'signin.amazonaws.com:ConsoleLogin' }, { field: 'outcome', equals: 'failure' }], title: '{actor} failed to sign in from {srcIp}' };
    const cases: Array<[string, unknown, string]> = [
      ['not JSON', '{"id": "x", ', '(body)'],
      ['an array', '[]', '(rule)'],
      ['empty body', '', '(body)'],
      ['unknown type', { ...base, type: 'magic' }, 'type'],
      ['unknown member', { ...base, colour: 'red' }, 'colour'],
      ['bad severity', { ...base, severity: 'urgent' }, 'severity'],
      ['bad kind', { ...base, kind: 'nonsense' }, 'kind'],
      ['no conditions', { ...base, when: [] }, 'when'],
      ['two operators', { ...base, when: [{ field: 'actor', equals: 'a', prefix: 'b' }] }, 'when[0]'],
      ['bad field name', { ...base, when: [{ field: 'a..b', equals: 'x' }] }, 'when[0].field'],
      ['regex too long', { ...base, when: [{ field: 'actor', regex: 'a'.repeat(201) }] }, 'when[0].regex'],
      ['invalid regex', { ...base, when: [{ field: 'actor', regex: '(' }] }, 'when[0].regex'],
      ['catastrophic regex', { ...base, when: [{ field: 'actor', regex: '^(a+)+$' }] }, 'when[0].regex'],
      ['huge in-list', { ...base, when: [{ field: 'actor', in: Array.from({ length: 1001 }, (_, i) => `a${i}`) }] }, 'when[0].in'],
      ['unbalanced title', { ...base, title: '{actor failed' }, 'title'],
      ['bad id', { ...base, id: '../etc' }, 'id'],
      ['threshold without count', { ...base, type: 'threshold', groupBy: ['srcIp'], windowMs: 60000 }, 'count'],
      ['silence with both thresholds', { id: 's.x', description: 'd', enabled: true, type: 'silence', kind: 'silence', severity: 'high', thresholdMs: 1000, learn: true }, 'thresholdMs'],
      ['enabled not boolean', { ...base, enabled: 'yes' }, 'enabled'],
    ];
    for (const [what, body, field] of cases) {
      const r = await post('alice', '/v1/rules', typeof body === 'string' ? body : JSON.stringify(body), true);
      assert.equal(r.statusCode, 400, `${what}: ${r.body}`);
      const e = errorOf(r);
      assert.equal(e.code, 'RULE_INVALID', what);
      assert.equal(e.details?.['field'], field, `${what}: ${e.message}`);
      if (!field.startsWith('(')) assert.ok(e.message.includes(field), `${what}: the message names ${field}: ${e.message}`);
    }
    const big = await post('alice', '/v1/rules', JSON.stringify({ ...base, description: 'x'.repeat(300 * 1024) }), true);
    assert.equal(big.statusCode, 413);
    const h = await v.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(h.statusCode, 200);
    assert.equal((await v.app.inject({ method: 'GET', url: '/v1/rules/content.console-login-failed', headers: bearer(v.tokens.auditor) })).statusCode, 404);
  });

  test('a new rule applies at once: the next matching record raises its alarm', async () => {
    const rule = { id: 'content.console-login-failed', description: 'Failed console sign-ins.', enabled: true, type: 'match', kind: 'content', severity: 'medium', on: 'record', source: ['aws.cloudtrail'], when: [{ field: 'action', equals: 'signin.amazonaws.com:ConsoleLogin' }, { field: 'outcome', equals: 'failure' }, { field: 'additionalEventData.MFAUsed', equals: 'No' }], title: "{actor|userIdentity.userName} failed to sign in from {srcIp} (MFA used: {additionalEventData.MFAUsed|'?'})" };
    const r = await post('alice', '/v1/rules', rule);
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.json<{ status: string }>().status, 'added');
    const stored = await getRule(rule.id);
    assert.equal(stored.origin, 'api');
    assert.equal(stored.updatedBy, 'initial-admin');
    assert.deepEqual(ruleOnly(stored), rule);
    const login = (outcome: 'Success' | 'Failure') =>
      callRecord('signin.amazonaws.com', 'ConsoleLogin', null, { eventType: 'AwsConsoleSignIn', responseElements: { ConsoleLogin: outcome }, additionalEventData: { LoginTo: 'https://console.aws.amazon.com/', MobileVersion: 'No', MFAUsed: 'No' } });
    await ingestCloudTrail(v, [login('Success'), login('Failure')]);
    await settle(v);
    const got = await alarms(v, 'content');
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.equal(got[0]!.title, 'arn:aws:iam::974349055189:user/gmolto failed to sign in from 158.42.56.207 (MFA used: No)');
    const added = (await auditRecords(v)).filter((e) => e['type'] === 'rule.added');
    assert.equal(added.length, 1);
    assert.equal(added[0]!['by'], 'initial-admin');
    assert.deepEqual(added[0]!['rule'], rule);
  });

  test('tightening applies at once: a lower count makes the next burst alarm sooner', async () => {
    const cur = ruleOnly(await getRule('auth.burst-per-address'));
    assert.equal(cur['count'], 10);
    const r = await post('alice', '/v1/rules', { ...cur, count: 3, severity: 'critical' });
    assert.equal(r.statusCode, 200, r.body);
    const body = r.json<{ status: string; changes: Array<{ field: string; effect: string }> }>();
    assert.equal(body.status, 'tightened');
    assert.deepEqual(body.changes.map((c) => [c.field, c.effect]).sort(), [['count', 'tightens'], ['severity', 'tightens']]);
    for (let i = 0; i < 3; i++) {
      const f = await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer('wrong'), remoteAddress: '203.0.113.99' });
      assert.equal(f.statusCode, 401);
    }
    await settle(v);
    const auth = (await alarms(v, 'auth')).filter((a) => a.rule === 'auth.burst-per-address');
    assert.equal(auth.length, 1);
    assert.equal(auth[0]!.severity, 'critical');
    assert.equal(auth[0]!.details['count'], 3);
    const changed = (await auditRecords(v)).filter((e) => e['type'] === 'rule.changed' && e['id'] === 'auth.burst-per-address');
    assert.equal(changed.length, 1);
    assert.equal((changed[0]!['before'] as { count: number }).count, 10);
    assert.equal((changed[0]!['after'] as { count: number }).count, 3);
    assert.equal(changed[0]!['by'], 'initial-admin');
    // Adding values to an in-list catches more: a tightening too.
    const t = ruleOnly(await getRule('tamper.modify-log-data'));
    const more = await post('alice', '/v1/rules', { ...t, when: [{ field: 'type', in: ['tamper.attempt', 'tamper.attempt.suppressed', 'tamper.other'] }] });
    assert.equal(more.json<{ status: string }>().status, 'tightened');
    // The same rule again changes nothing.
    const same = await post('alice', '/v1/rules', { ...t, when: [{ field: 'type', in: ['tamper.attempt', 'tamper.attempt.suppressed', 'tamper.other'] }] });
    assert.equal(same.json<{ status: string }>().status, 'unchanged');
  });

  let requestId = '';
  test('loosening (disabling a rule) is refused without a second admin: 202 and a pending request', async () => {
    const cur = ruleOnly(await getRule('tamper.writer-read'));
    const r = await post('alice', '/v1/rules', { ...cur, enabled: false });
    assert.equal(r.statusCode, 202, r.body);
    const body = r.json<{ status: string; loosens: Array<{ field: string }>; approval: { id: string; action: string; status: string; params: { rule: { enabled: boolean } } }; note: string }>();
    assert.equal(body.status, 'approval-needed');
    assert.deepEqual(body.loosens.map((c) => c.field), ['enabled']);
    assert.equal(body.approval.action, 'rule.change');
    assert.equal(body.approval.status, 'pending');
    assert.equal(body.approval.params.rule.enabled, false);
    assert.match(body.note, /different admin/);
    requestId = body.approval.id;
    assert.equal((await getRule('tamper.writer-read')).enabled, true);
    // Still in force: a writer reading still alarms.
    const before = (await alarms(v, 'tamper')).filter((a) => a.rule === 'tamper.writer-read').length;
    await v.app.inject({ method: 'GET', url: '/logs/local/checkpoint', headers: bearer(v.tokens.writer), remoteAddress: '192.0.2.200' });
    await settle(v);
    assert.equal((await alarms(v, 'tamper')).filter((a) => a.rule === 'tamper.writer-read').length, before + 1);
    // Other loosenings are refused the same way.
    const t = ruleOnly(await getRule('auth.burst-per-address'));
    for (const [what, rule] of [
      ['raise a threshold', { ...t, count: 50 }],
      ['lower severity', { ...t, severity: 'low' }],
      ['shorter window', { ...t, windowMs: 10_000 }],
      ['remove a matched value', { ...t, when: [{ field: 'type', in: ['auth.failed'] }] }],
    ] as const) {
      const x = await post('alice', '/v1/rules', rule);
      assert.equal(x.statusCode, 202, what);
    }
    const s = ruleOnly(await getRule('silence.learned'));
    const longer = await post('alice', '/v1/rules', { ...s, learn: { ...(s['learn'] as object), ceilingMs: 48 * 3600_000 } });
    assert.equal(longer.statusCode, 202, 'a longer silence threshold');
    assert.equal((await getRule('auth.burst-per-address'))['count'], 3);
  });

  test('the requester cannot approve it; a different admin can, and it applies then', async () => {
    const self = await post('alice', `/v1/approvals/${requestId}/approve`, {});
    assert.equal(self.statusCode, 403);
    assert.equal(errorOf(self).code, 'SELF_APPROVAL');
    assert.equal((await getRule('tamper.writer-read')).enabled, true);
    const ok = await post('bob', `/v1/approvals/${requestId}/approve`, {});
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json<{ result: { status: string } }>().result.status, 'changed');
    const now = await getRule('tamper.writer-read');
    assert.equal(now.enabled, false);
    assert.equal(now.updatedBy, 'initial-admin');
    // Disabled: a writer reading raises nothing now.
    const before = (await alarms(v, 'tamper')).filter((a) => a.rule === 'tamper.writer-read').length;
    await v.app.inject({ method: 'GET', url: '/logs/local/checkpoint', headers: bearer(v.tokens.writer), remoteAddress: '192.0.2.201' });
    await settle(v);
    assert.equal((await alarms(v, 'tamper')).filter((a) => a.rule === 'tamper.writer-read').length, before);
    const changed = (await auditRecords(v)).filter((e) => e['type'] === 'rule.changed' && e['id'] === 'tamper.writer-read');
    assert.equal(changed.length, 1);
    assert.equal(changed[0]!['approvedBy'], 'bob');
    assert.equal(changed[0]!['by'], 'initial-admin');
    assert.equal((changed[0]!['before'] as { enabled: boolean }).enabled, true);
    assert.equal((changed[0]!['after'] as { enabled: boolean }).enabled, false);
  });

  test('through /v1/approvals directly: re-enabling (a tightening) runs at once; a loosening waits', async () => {
    const cur = ruleOnly(await getRule('tamper.writer-read'));
    const on = await post('bob', '/v1/approvals', { action: 'rule.change', params: { rule: { ...cur, enabled: true } } });
    assert.equal(on.statusCode, 200, on.body);
    assert.equal((await getRule('tamper.writer-read')).enabled, true);
    const off = await post('bob', '/v1/approvals', { action: 'rule.change', params: { rule: { ...cur, enabled: false } } });
    assert.equal(off.statusCode, 202, off.body);
    assert.equal((await getRule('tamper.writer-read')).enabled, true);
    const bad = await post('bob', '/v1/approvals', { action: 'rule.change', params: { rule: { ...cur, severity: 'loud' } } });
    assert.equal(bad.statusCode, 400);
    assert.equal(errorOf(bad).code, 'RULE_INVALID');
    assert.equal(errorOf(bad).details?.['field'], 'rule.severity');
  });

  test('the rule.change action: needsApproval and execute (unit, on the registered handler)', async () => {
    const h = v.vault.actions.get('rule.change');
    const cur = ruleOnly(await getRule('tamper.auditor-write'));
    assert.equal(h.needsApproval!(h.validate({ rule: { ...cur, severity: 'critical' } })), false);
    assert.equal(h.needsApproval!(h.validate({ rule: { ...cur, severity: 'medium' } })), true);
    assert.equal(h.needsApproval!(h.validate({ rule: { ...cur, id: 'brand.new' } })), false);
    assert.throws(() => h.validate({}), (e: { code?: string }) => e.code === 'RULE_INVALID');
    assert.match(h.describe(h.validate({ rule: { ...cur, severity: 'medium' } })), /severity high → medium/);
    // execute refuses a loosening approved by its own requester (defence in depth).
    await assert.rejects(h.execute(h.validate({ rule: { ...cur, enabled: false } }), { requestId: 'apr_t', requestedBy: 'initial-admin', approvedBy: 'initial-admin' }), (e: { code?: string }) => e.code === 'APPROVAL_REQUIRED');
    assert.equal((await getRule('tamper.auditor-write')).enabled, true);
  });
});
