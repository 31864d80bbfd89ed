/**
 * Tamper and authentication detectors, driven by real requests against the real app: a DELETE
 * on log data, a writer reading, an auditor writing, a writer appending to the audit log, an
 * Elasticsearch _bulk delete, bursts of bad tokens and wrong TOTP codes. Each raises the
 * alarm an auditor then reads from GET /v1/alarms — naming the principal and the address —
 * and is in the audit log as alarm.raised. Ordinary traffic raises nothing.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { auditRecords, bearer, startInProc, type InProcVault } from '../support/inproc.js';
import { enrollTotp } from '../support/totp.js';
import { alarms, settle, waitForAlarms } from './detectors-support.js';

const basic = (token: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`custody:${token}`).toString('base64')}` });

describe('tamper attempts', () => {
  let v: InProcVault;
  before(async () => {
    v = await startInProc();
  });
  after(() => v.close());

  test('ordinary traffic raises no alarm', async () => {
    const w = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries?wait=checkpoint', headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: '{"a":1}\n{"a":2}\n' });
    assert.equal(w.statusCode, 200, w.body);
    const r = await v.app.inject({ method: 'GET', url: '/v1/logs/local/entries/0', headers: bearer(v.tokens.auditor) });
    assert.equal(r.statusCode, 200, r.body);
    const p = await v.app.inject({ method: 'GET', url: '/v1/principals', headers: bearer(v.tokens.admin) });
    assert.equal(p.statusCode, 200, p.body);
    await settle(v);
    assert.deepEqual(await alarms(v), []);
  });

  test('a DELETE on log data raises a tamper alarm naming the principal and the address', async () => {
    const r = await v.app.inject({ method: 'DELETE', url: '/v1/logs/local/entries/0', headers: bearer(v.tokens.writer), remoteAddress: '198.51.100.7' });
    assert.equal(r.statusCode, 405);
    const [a] = await waitForAlarms(v, (l) => l.some((x) => x.rule === 'tamper.modify-log-data'), 'tamper alarm', 5000, 'tamper');
    assert.equal(a!.kind, 'tamper');
    assert.equal(a!.severity, 'high');
    assert.match(a!.title, /initial-writer/);
    assert.match(a!.title, /198\.51\.100\.7/);
    assert.match(a!.title, /DELETE \/v1\/logs\/local\/entries\/0/);
    assert.equal(a!.details['address'], '198.51.100.7');
    assert.equal((a!.details['principal'] as { name: string }).name, 'initial-writer');
    assert.equal(a!.log, 'audit');
  });

  test('repeats from the same principal and address count on that alarm instead of adding alarms', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await v.app.inject({ method: 'PATCH', url: `/v1/logs/local/entries/${i}`, headers: bearer(v.tokens.writer), remoteAddress: '198.51.100.7' });
      assert.equal(r.statusCode, 405);
    }
    await settle(v);
    const t = (await alarms(v, 'tamper')).filter((x) => x.rule === 'tamper.modify-log-data');
    assert.equal(t.length, 1);
    assert.equal(t[0]!.count, 5);
  });

  test('an anonymous PUT on the tile tree is a tamper alarm too (named as unauthenticated)', async () => {
    const r = await v.app.inject({ method: 'PUT', url: '/logs/local/checkpoint', remoteAddress: '203.0.113.9', payload: 'x' });
    assert.equal(r.statusCode, 405);
    const l = await waitForAlarms(v, (x) => x.some((a) => a.details['address'] === '203.0.113.9'), 'anonymous tamper alarm', 5000, 'tamper');
    const a = l.find((x) => x.details['address'] === '203.0.113.9')!;
    assert.match(a.title, /unauthenticated client/);
    assert.match(a.title, /PUT \/logs\/local\/checkpoint/);
  });

  test('a writer reading raises tamper.writer-read', async () => {
    const r = await v.app.inject({ method: 'GET', url: '/v1/logs/local/entries/0', headers: bearer(v.tokens.writer), remoteAddress: '192.0.2.10' });
    assert.equal(r.statusCode, 403);
    const l = await waitForAlarms(v, (x) => x.some((a) => a.rule === 'tamper.writer-read'), 'writer-read alarm', 5000, 'tamper');
    const a = l.find((x) => x.rule === 'tamper.writer-read')!;
    assert.match(a.title, /initial-writer/);
    assert.match(a.title, /192\.0\.2\.10/);
    assert.equal(a.details['kind'], 'writer-read');
  });

  test('an auditor writing raises tamper.auditor-write', async () => {
    const r = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries', headers: { ...bearer(v.tokens.auditor), 'content-type': 'application/x-ndjson' }, payload: '{"forged":true}\n', remoteAddress: '192.0.2.11' });
    assert.equal(r.statusCode, 403);
    const l = await waitForAlarms(v, (x) => x.some((a) => a.rule === 'tamper.auditor-write'), 'auditor-write alarm', 5000, 'tamper');
    const a = l.find((x) => x.rule === 'tamper.auditor-write')!;
    assert.match(a.title, /initial-auditor/);
    assert.match(a.title, /192\.0\.2\.11/);
    assert.equal(a.severity, 'high');
  });

  test('a writer appending to the audit log raises tamper.write-audit-log (critical)', async () => {
    const r = await v.app.inject({ method: 'POST', url: '/v1/logs/audit/entries', headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: '{"type":"alarm.raised"}\n', remoteAddress: '192.0.2.12' });
    assert.equal(r.statusCode, 403);
    const l = await waitForAlarms(v, (x) => x.some((a) => a.rule === 'tamper.write-audit-log'), 'write-audit-log alarm', 5000, 'tamper');
    const a = l.find((x) => x.rule === 'tamper.write-audit-log')!;
    assert.equal(a.severity, 'critical');
    assert.match(a.title, /192\.0\.2\.12/);
  });

  test('an Elasticsearch _bulk delete raises a tamper alarm (kind bulk-delete) naming the principal and address', async () => {
    const body = ['{"index":{"_index":"app"}}', '{"msg":"kept"}', '{"delete":{"_index":"app","_id":"evidence-1"}}', ''].join('\n');
    const r = await v.app.inject({ method: 'POST', url: '/_bulk', headers: { ...basic(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: body, remoteAddress: '192.0.2.13' });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json<{ errors: boolean }>().errors, true);
    const l = await waitForAlarms(v, (x) => x.some((a) => a.details['kind'] === 'bulk-delete'), 'bulk delete alarm', 5000, 'tamper');
    const a = l.find((x) => x.details['kind'] === 'bulk-delete')!;
    assert.equal(a.rule, 'tamper.modify-log-data');
    assert.match(a.title, /bulk-delete/);
    assert.match(a.title, /initial-writer/);
    assert.match(a.title, /192\.0\.2\.13/);
    assert.equal(a.details['id'], 'evidence-1');
  });

  test('every alarm is also in the audit log (alarm.raised, alarm.repeated)', async () => {
    await settle(v);
    const events = await auditRecords(v);
    const raised = events.filter((e) => e['type'] === 'alarm.raised').map((e) => (e['alarm'] as { rule: string }).rule);
    for (const rule of ['tamper.modify-log-data', 'tamper.writer-read', 'tamper.auditor-write', 'tamper.write-audit-log']) assert.ok(raised.includes(rule), `${rule} in ${raised.join(', ')}`);
    assert.equal(events.filter((e) => e['type'] === 'alarm.repeated').length, 4);
    // The alarms themselves are not alarmed on (no loop).
    const total = (await alarms(v)).length;
    await sleep(50);
    await settle(v);
    assert.equal((await alarms(v)).length, total);
  });
});

describe('bursts of failed authentication', () => {
  test('30 bad tokens from one address raise ONE auth alarm with the count; 5 from another raise none', async (t) => {
    const v = await startInProc();
    t.after(() => v.close());
    for (let i = 0; i < 30; i++) {
      const r = await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(`cust_wrong_${i}`), remoteAddress: '203.0.113.50' });
      assert.equal(r.statusCode, 401);
    }
    for (let i = 0; i < 5; i++) {
      const r = await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer('cust_wrong'), remoteAddress: '203.0.113.51' });
      assert.equal(r.statusCode, 401);
    }
    await settle(v);
    const auth = await alarms(v, 'auth');
    assert.equal(auth.length, 1, JSON.stringify(auth));
    const a = auth[0]!;
    assert.equal(a.rule, 'auth.burst-per-address');
    assert.equal(a.count, 1);
    assert.ok((a.details['count'] as number) >= 10, `count ${a.details['count']}`);
    assert.equal((a.details['group'] as Record<string, string>)['address'], '203.0.113.50');
    assert.match(a.title, /^\d+ failed authentications from 203\.0\.113\.50 within 60 s$/);
  });

  test('refusals the audit log only counted (auth.failed.suppressed) count toward the burst', async (t) => {
    // Only 3 per 200 ms are recorded one by one; the rest arrive as one event with a count.
    const v = await startInProc({ auditFloodLimit: 3, auditFloodWindowMs: 200 });
    t.after(() => v.close());
    for (let i = 0; i < 12; i++) {
      const r = await v.app.inject({ method: 'GET', url: '/v1/alarms', headers: bearer('nope'), remoteAddress: '203.0.113.60' });
      assert.equal(r.statusCode, 401);
    }
    await settle(v);
    assert.equal((await alarms(v, 'auth')).length, 0, '3 recorded refusals are below the threshold');
    const l = await waitForAlarms(v, (x) => x.length > 0, 'auth alarm after the suppressed count', 5000, 'auth');
    assert.equal(l.length, 1);
    assert.equal(l[0]!.details['count'], 12);
  });

  test('wrong TOTP codes for one admin raise one critical auth alarm naming the admin', async (t) => {
    const v = await startInProc();
    t.after(() => v.close());
    await enrollTotp(v.app, v.tokens.admin);
    const rule = JSON.stringify({ id: 'x.test', description: 'd', enabled: true, type: 'match', kind: 'content', severity: 'low', on: 'record', when: [{ field: 'action', equals: 'x' }], title: 't' });
    for (let i = 0; i < 6; i++) {
      const r = await v.app.inject({ method: 'POST', url: '/v1/rules', headers: { ...bearer(v.tokens.admin), 'content-type': 'application/json', 'x-custody-totp': String(100000 + i) }, payload: rule, remoteAddress: '198.51.100.77' });
      assert.equal(r.statusCode, 401, r.body);
      assert.equal(r.json<{ error: { code: string } }>().error.code, 'TOTP_INVALID');
    }
    await settle(v);
    const l = await alarms(v, 'auth');
    assert.equal(l.length, 1, JSON.stringify(l));
    assert.equal(l[0]!.rule, 'auth.totp-burst-per-principal');
    assert.equal(l[0]!.severity, 'critical');
    assert.match(l[0]!.title, /initial-admin/);
    assert.match(l[0]!.title, /198\.51\.100\.77/);
  });
});
