/**
 * Retention per log: listed for auditors and admins, extended only through the two-person
 * action `retention.extend` (its handler's validate and execute, as the approvals service
 * runs them), never shortened by any path; `custody init --retention-days`; the CLI.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCustodyError } from '../../src/errors.js';
import { runCli } from '../support/server.js';
import { openHarness, append, records, bearer, bundleFile, auditRecords, listen, CTX, type Harness } from './harness.js';

interface Overview {
  defaultDays: number;
  logs: Array<{ log: string; days: number; updatedBy: string; size: number; purgeable: { count: number }; shredded: { entries: number } }>;
}

function rejects(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isCustodyError(e) && e.code === code, `expected ${code}`);
}

describe('retention: list and extend (never shorten)', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h?.close());

  test('every log starts with 365 days, listed for auditors and admins only', async () => {
    for (const token of [h.tokens.auditor, h.tokens.admin]) {
      const r = await h.app.inject({ method: 'GET', url: '/v1/retention', headers: bearer(token) });
      assert.equal(r.statusCode, 200);
      const o = r.json<Overview>();
      assert.equal(o.defaultDays, 365);
      assert.deepEqual(o.logs.map((l) => [l.log, l.days]).sort(), [['audit', 365], ['local', 365]]);
    }
    assert.equal((await h.app.inject({ method: 'GET', url: '/v1/retention', headers: bearer(h.tokens.writer) })).statusCode, 403);
    assert.equal((await h.app.inject({ method: 'GET', url: '/v1/retention' })).statusCode, 401);
    assert.equal((await h.app.inject({ method: 'GET', url: '/v1/retention/purges?log=..%2F..%2Fetc', headers: bearer(h.tokens.auditor) })).statusCode, 404);
    const purges = await h.app.inject({ method: 'GET', url: '/v1/retention/purges?log=local', headers: bearer(h.tokens.admin) });
    assert.deepEqual(purges.json(), { purges: [] });
  });

  test('the three actions are registered for two-person approval', () => {
    for (const a of ['retention.extend', 'purge', 'log.rotate-keys']) assert.ok(h.vault.actions.has(a), a);
  });

  test('retention.extend validates: longer only (RETENTION_SHORTENED 409), whole days, known log, no extra fields', () => {
    const x = h.vault.actions.get('retention.extend');
    assert.deepEqual(x.validate({ log: 'local', days: 400 }), { log: 'local', days: 400 });
    assert.equal(x.describe({ log: 'local', days: 400 }), 'Extend retention of local from 365 to 400 days');
    rejects(() => x.validate({ log: 'local', days: 365 }), 'RETENTION_SHORTENED');
    rejects(() => x.validate({ log: 'local', days: 30 }), 'RETENTION_SHORTENED');
    try {
      x.validate({ log: 'local', days: 30 });
    } catch (e) {
      assert.equal((e as { status: number }).status, 409);
    }
    for (const days of [0, -5, 400.5, '400', 1e12, null, Number.NaN]) rejects(() => x.validate({ log: 'local', days }), 'BAD_REQUEST');
    rejects(() => x.validate({ log: 'nope', days: 400 }), 'LOG_NOT_FOUND');
    rejects(() => x.validate({ log: 'local', days: 400, force: true }), 'BAD_REQUEST');
    rejects(() => x.validate(null), 'BAD_REQUEST');
    rejects(() => x.validate(['local', 400]), 'BAD_REQUEST');
    rejects(() => x.validate({ log: 'x'.repeat(100_000), days: 400 }), 'BAD_REQUEST');
  });

  test('executing an approved extension raises it, records who, and audits it', async () => {
    const x = h.vault.actions.get('retention.extend');
    const res = await x.execute(x.validate({ log: 'local', days: 400 }), CTX);
    assert.equal(res['from'], 365);
    assert.equal(res['to'], 400);
    const o = (await h.app.inject({ method: 'GET', url: '/v1/retention', headers: bearer(h.tokens.auditor) })).json<Overview>();
    const local = o.logs.find((l) => l.log === 'local')!;
    assert.equal(local.days, 400);
    assert.equal(local.updatedBy, 'bob');
    assert.equal(o.logs.find((l) => l.log === 'audit')!.days, 365, 'other logs keep theirs');
    const ev = (await auditRecords(h)).find((e) => e['type'] === 'retention.extended')!;
    assert.deepEqual([ev['log'], ev['from'], ev['to']], ['local', 365, 400]);
    assert.deepEqual(ev['approval'], { request: 'test-request', requestedBy: 'alice', approvedBy: 'bob' });
  });

  test('no path shortens it: a later, shorter approval fails at execution; the store refuses too', async () => {
    const x = h.vault.actions.get('retention.extend');
    const asked = x.validate({ log: 'local', days: 450 }); // requested while 400 was in force
    await x.execute(x.validate({ log: 'local', days: 500 }), CTX); // another request approved first
    await assert.rejects(x.execute(asked, CTX), (e: unknown) => isCustodyError(e, 'RETENTION_SHORTENED'));
    rejects(() => h.retention.store.extend('local', 499, 'mallory', null), 'RETENTION_SHORTENED');
    rejects(() => h.retention.store.extend('local', 500, 'mallory', null), 'RETENTION_SHORTENED');
    assert.equal(h.retention.store.retention('local').days, 500);
  });
});

describe('purge as a two-person action, and the CLI', () => {
  let h: Harness;
  let url: string;
  before(async () => {
    // The service's clock runs 400 days ahead: every entry is past 365 days.
    h = await openHarness({ timing: { retentionClockOffsetMs: 400 * 86_400_000 } });
    url = await listen(h);
  });
  after(() => h?.close());

  test('the purge action never takes the last bundle, even when it is full', async () => {
    await append(h, records(512, 'P'));
    const p = h.vault.actions.get('purge');
    assert.deepEqual(p.validate({ log: 'local' }), { log: 'local' });
    assert.match(p.describe({ log: 'local' }), /^Purge local: crypto-shred the whole 256-entry bundles whose every entry is older than its retention of 365 days/);
    rejects(() => p.validate({ log: 'local', from: 0 }), 'BAD_REQUEST');
    rejects(() => p.validate({}), 'BAD_REQUEST');
    rejects(() => p.validate({ log: 'nope' }), 'LOG_NOT_FOUND');
    const preview = (await h.app.inject({ method: 'GET', url: '/v1/retention', headers: bearer(h.tokens.admin) })).json<Overview>();
    assert.equal(preview.logs.find((l) => l.log === 'local')!.purgeable.count, 256);
    const res = await p.execute(p.validate({ log: 'local' }), { requestId: 'r-1', requestedBy: 'alice', approvedBy: 'bob' });
    assert.deepEqual([res['purge'], res['from'], res['to'], res['count']], [1, 0, 256, 256]);
    assert.equal(existsSync(bundleFile(h, 0)), false);
    assert.ok(existsSync(bundleFile(h, 1)), 'the last bundle stays although it is full and old');
    const again = await p.execute(p.validate({ log: 'local' }), CTX);
    assert.equal(again['count'], 0);
    assert.equal(again['purge'], null);
  });

  test('custody retention list --json', async () => {
    const r = await runCli(['retention', 'list', '--json', '--url', url, '--token', h.tokens.auditor]);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as Overview;
    const local = o.logs.find((l) => l.log === 'local')!;
    assert.equal(local.shredded.entries, 256);
    const human = await runCli(['retention', 'list', '--url', url, '--token', h.tokens.admin]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /local: kept 365 days/);
    assert.match(human.stdout, /256 entries shredded by approved purge #1/);
  });

  test('CLI refusals: no TOTP code, a days value that is not a number', async () => {
    const noCode = await runCli(['retention', 'purge', 'local', '--url', url, '--token', h.tokens.admin], { CUSTODY_TOTP: '' });
    assert.equal(noCode.code, 2);
    assert.match(noCode.stderr, /TOTP_REQUIRED/);
    const bad = await runCli(['retention', 'extend', 'local', 'forever', '--totp', '123456', '--url', url, '--token', h.tokens.admin]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /BAD_REQUEST/);
  });
});

test('custody init --retention-days sets the retention of the new vault\'s logs', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'custody-retinit-')), 'vault');
  try {
    const r = await runCli(['init', '--data', dir, '--retention-days', '30', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const bad = await runCli(['init', '--data', join(dir, 'x'), '--retention-days', '0']);
    assert.notEqual(bad.code, 0);
    const h = await openHarness({ dataDir: dir });
    try {
      const o = (await h.app.inject({ method: 'GET', url: '/v1/retention', headers: bearer(h.tokens.auditor) })).json<Overview>();
      assert.equal(o.defaultDays, 30);
      assert.deepEqual(o.logs.map((l) => l.days), [30, 30]);
    } finally {
      await h.stop();
    }
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});
