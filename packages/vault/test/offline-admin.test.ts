/** Bootstrap commands that work offline on the data directory still end up in the audit log. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, bearer, auditRecords } from './support/inproc.js';
import { tokenCreate } from '../src/cli/commands.js';

test('offline token creation works at once and is appended to the audit log', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
  try {
    await tokenCreate({ data: v.dataDir, role: 'auditor', name: 'offline-auditor', json: true });
  } finally {
    process.stdout.write = write;
  }
  const { token, principal } = JSON.parse(out.join('')) as { token: string; principal: { id: string } };
  await new Promise((r) => setTimeout(r, 600)); // the server notices the database changed
  const r = await v.app.inject({ method: 'GET', url: '/v1/whoami', headers: bearer(token) });
  assert.equal(r.statusCode, 200, r.body);
  await v.vault.drainOfflineAudit();
  const audit = await auditRecords(v);
  const init = audit.find((a) => a.type === 'vault.initialised');
  assert.ok(init, 'initialisation is the first thing the audit log records');
  const created = audit.find((a) => a.type === 'admin.principal.created' && a.offline === true);
  assert.ok(created);
  assert.equal((created.target as { id: string }).id, principal.id);
  assert.ok(!JSON.stringify(audit).includes(token));
});
