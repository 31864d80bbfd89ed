/** A flood of unauthenticated requests cannot grow the audit log without bound, and is still on record. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, auditRecords } from './support/inproc.js';

test('anonymous refusals: the first few per address in full, the rest as one counted record', async (t) => {
  const v = await startInProc({ auditFloodLimit: 5, auditFloodWindowMs: 300 });
  t.after(() => v.close());
  for (let i = 0; i < 40; i++) {
    const r = await v.app.inject({ method: 'GET', url: '/logs/local/checkpoint', headers: { authorization: 'Bearer cst_' + 'B'.repeat(43) } });
    assert.equal(r.statusCode, 401);
  }
  for (let i = 0; i < 12; i++) {
    const r = await v.app.inject({ method: 'DELETE', url: '/v1/logs/local/entries/0' });
    assert.equal(r.statusCode, 405);
  }
  await new Promise((r) => setTimeout(r, 700)); // the window ends; the periodic flush records the counts
  await v.vault.flushFloods(false);
  const audit = await auditRecords(v);
  const failed = audit.filter((a) => a.type === 'auth.failed');
  const suppressed = audit.filter((a) => a.type === 'auth.failed.suppressed');
  assert.equal(failed.length, 5);
  assert.equal(suppressed.reduce((s, a) => s + Number(a.count), 0), 35);
  assert.equal(audit.filter((a) => a.type === 'tamper.attempt').length, 5);
  assert.equal(audit.filter((a) => a.type === 'tamper.attempt.suppressed').reduce((s, a) => s + Number(a.count), 0), 7);
  assert.ok(suppressed.every((a) => a.address === '127.0.0.1' && typeof a.from === 'string' && typeof a.to === 'string'));
});
