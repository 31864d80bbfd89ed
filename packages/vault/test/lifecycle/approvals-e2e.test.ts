/**
 * End to end through the two-person rule: an admin files `custody retention purge` (with their
 * TOTP code, over HTTP), a different admin approves it with theirs; then the bundles are gone,
 * `custody verify` passes with the shredded report, a shredded entry reads as 410 and its
 * proof still verifies with @custody/verify against the signed checkpoint. Extending retention
 * and rotating keys go the same way; a shorter retention is refused when it is requested.
 * The vault's retention clock runs 400 days ahead; the admin clock is a fake one (each code
 * moves it one 30 s step on).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint, parseVerifierKey, verifyInclusion, fromBase64 } from '@custody/verify';
import { runCli, verifyJson, type VerifyLogReport } from '../support/server.js';
import { enrollTotp, useFakeClock, type FakeClock, type TotpDevice } from '../support/totp.js';
import { openHarness, append, records, bearer, bundleFile, listen, auditRecords, DAY, type Harness } from './harness.js';

interface Approval {
  id: string;
  action: string;
  status: string;
  description: string;
  result: Record<string, unknown> | null;
}

describe('retention through two admins', () => {
  let h: Harness;
  let url: string;
  let clock: FakeClock;
  let alice: TotpDevice;
  let bob: TotpDevice;
  let bobToken: string;

  const cli = async (args: string[], token: string): Promise<{ code: number | null; out: Record<string, unknown>; stderr: string }> => {
    const r = await runCli([...args, '--json', '--url', url, '--token', token]);
    return { code: r.code, out: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {}, stderr: r.stderr };
  };
  const approve = async (id: string, token: string, device: TotpDevice): Promise<{ statusCode: number; body: { approval: Approval; result: Record<string, unknown> } & { error?: { code: string } } }> => {
    const r = await h.app.inject({ method: 'POST', url: `/v1/approvals/${id}/approve`, headers: { ...(await device.headers(token)), 'content-type': 'application/json' }, payload: {} });
    return { statusCode: r.statusCode, body: r.json() };
  };

  before(async () => {
    h = await openHarness({ timing: { retentionClockOffsetMs: 400 * DAY, retentionBlobIdleMs: 0 } });
    url = await listen(h);
    clock = useFakeClock(h.vault);
    alice = await enrollTotp(h.app, h.tokens.admin, clock);
    const r = await h.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...(await alice.headers(h.tokens.admin)), 'content-type': 'application/json' }, payload: { name: 'bob', role: 'admin' } });
    assert.equal(r.statusCode, 201, r.body);
    bobToken = r.json<{ token: string }>().token;
    bob = await enrollTotp(h.app, bobToken, clock);
    await append(h, records(700, 'E')); // bundles 0 and 1 full, 2 partial
  });
  after(() => h?.close());

  test('purge: requested with the CLI, refused to its requester, approved by another admin', async () => {
    const req = await cli(['retention', 'purge', 'local', '--totp', await alice.next()], h.tokens.admin);
    assert.equal(req.code, 0, req.stderr);
    const approval = req.out['approval'] as Approval;
    assert.equal(approval.action, 'purge');
    assert.equal(approval.status, 'pending');
    assert.match(approval.description, /^Purge local: crypto-shred/);
    assert.ok(existsSync(bundleFile(h, 0)), 'nothing happens before approval');

    const self = await approve(approval.id, h.tokens.admin, alice);
    assert.equal(self.statusCode, 403);
    assert.equal(self.body.error!.code, 'SELF_APPROVAL');
    assert.ok(existsSync(bundleFile(h, 0)));

    const ok = await approve(approval.id, bobToken, bob);
    assert.equal(ok.statusCode, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.approval.status, 'approved');
    assert.deepEqual([ok.body.result['purge'], ok.body.result['from'], ok.body.result['to'], ok.body.result['count']], [1, 0, 512, 512]);
    assert.equal(existsSync(bundleFile(h, 0)), false);
    assert.equal(existsSync(bundleFile(h, 1)), false);
    assert.ok(existsSync(bundleFile(h, 2) + '.p/188'));
    const rec = h.retention.store.purge(1)!;
    assert.deepEqual([rec.approval, rec.requestedBy, rec.approvedBy], [approval.id, 'initial-admin', 'bob']);
    const ev = (await auditRecords(h)).find((e) => e['type'] === 'retention.purged')!;
    assert.deepEqual(ev['approval'], { request: approval.id, requestedBy: 'initial-admin', approvedBy: 'bob' });
  });

  test('after the purge: verify passes with the shredded report, reads are 410, proofs verify', async () => {
    const v = await verifyJson(['--url', url, '--token', h.tokens.auditor, '--log', 'local'], { CUSTODY_TRUST_FILE: join(h.dataDir, 'trust-http.json') });
    assert.equal(v.code, 0, JSON.stringify(v.json.logs.map((l) => l.problems)));
    const report = v.json.logs[0] as VerifyLogReport & { shredded: Array<{ purge: number; count: number; message: string }> };
    assert.deepEqual(report.shredded.map((s) => s.message), ['512 entries shredded by approved purge #1 (entries 0–511)']);
    const d = await verifyJson(['--data', h.dataDir, '--log', 'local'], { CUSTODY_TRUST_FILE: join(h.dataDir, 'trust-data.json') });
    assert.equal(d.code, 0);

    const seq = h.vault.sequencer('local');
    const cp = openCheckpoint(seq.checkpoint.text, parseVerifierKey(seq.verifierKey)).checkpoint;
    for (const i of [0, 300, 511]) {
      const r = await h.app.inject({ method: 'GET', url: `/v1/logs/local/entries/${i}`, headers: bearer(h.tokens.auditor) });
      assert.equal(r.statusCode, 410);
      const e = r.json<{ error: { code: string; details: { purge: number; leafHash: string; inclusionProof: string[] } } }>().error;
      assert.equal(e.code, 'ENTRY_SHREDDED');
      assert.equal(e.details.purge, 1);
      verifyInclusion(fromBase64(e.details.leafHash, 32), i, cp.size, e.details.inclusionProof.map((p) => fromBase64(p, 32)), cp.rootHash);
    }
    const kept = await runCli(['proof', 'get', 'local', '650', '--out', join(h.dataDir, 'proofs'), '--json', '--url', url, '--token', h.tokens.auditor]);
    assert.equal(kept.code, 0, kept.stderr);
    assert.equal((JSON.parse(kept.stdout) as { verified: boolean }).verified, true);
  });

  test('extend: a shorter value is refused at request time; a longer one takes effect on approval', async () => {
    const shorter = await cli(['retention', 'extend', 'local', '100', '--totp', await alice.next()], h.tokens.admin);
    assert.equal(shorter.code, 2);
    assert.equal((shorter.out['error'] as { code: string }).code, 'RETENTION_SHORTENED');
    const req = await cli(['retention', 'extend', 'local', '500', '--totp', await alice.next()], h.tokens.admin);
    assert.equal(req.code, 0, req.stderr);
    const approval = req.out['approval'] as Approval;
    assert.equal(approval.description, 'Extend retention of local from 365 to 500 days');
    assert.equal(h.retention.store.retention('local').days, 365, 'not before approval');
    const ok = await approve(approval.id, bobToken, bob);
    assert.equal(ok.statusCode, 200, JSON.stringify(ok.body));
    assert.equal(h.retention.store.retention('local').days, 500);
  });

  test('keys: rotation requested with the CLI and approved; new bundles use the new KEK', async () => {
    const req = await cli(['keys', 'rotate', 'local', '--totp', await alice.next()], h.tokens.admin);
    assert.equal(req.code, 0, req.stderr);
    const ok = await approve((req.out['approval'] as Approval).id, bobToken, bob);
    assert.equal(ok.statusCode, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.result['kekId'], 2);
    await append(h, records(100, 'F')); // bundle 2 becomes full
    const sealed = (await h.vault.sequencer('local').store.readSealedBundle(2, 256))!;
    assert.equal(sealed.readUInt32BE(6), 2);
  });
});
