/** Region logs: one log per region, and writers scoped to some of them. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, bearer, type InProcVault } from './support/inproc.js';
import { enrollTotp } from './support/totp.js';

let v: InProcVault;
before(async () => {
  v = await startInProc({ regions: ['eu-west-1', 'us-east-1'] });
});
after(async () => v.close());

test('a vault has one log per region, plus its audit log, each with its own key and origin', async () => {
  const r = await v.app.inject({ method: 'GET', url: '/v1/logs', headers: bearer(v.tokens.auditor) });
  const logs = r.json<{ logs: Array<{ name: string; origin: string; region: string; kind: string; verifierKey: string }> }>().logs;
  assert.deepEqual(logs.map((l) => l.name).sort(), ['audit', 'eu-west-1', 'us-east-1']);
  assert.equal(new Set(logs.map((l) => l.verifierKey)).size, 3);
  for (const l of logs) assert.ok(l.origin.endsWith('/' + l.name));
  assert.equal(logs.find((l) => l.name === 'eu-west-1')!.region, 'eu-west-1');
});

test('a writer scoped to one region cannot append to another', async () => {
  const totp = await enrollTotp(v.app, v.tokens.admin); // creating principals needs the admin's TOTP code
  const c = await v.app.inject({ method: 'POST', url: '/v1/principals', headers: { ...(await totp.headers(v.tokens.admin)), 'content-type': 'application/json' }, payload: { name: 'eu-only', role: 'writer', logs: ['eu-west-1'] } });
  assert.equal(c.statusCode, 201, c.body);
  const token = c.json<{ token: string }>().token;
  const send = (log: string) =>
    v.app.inject({ method: 'POST', url: `/v1/logs/${log}/entries`, headers: { ...bearer(token), 'content-type': 'application/x-ndjson' }, payload: '{"r":1}\n' });
  assert.equal((await send('eu-west-1')).statusCode, 200);
  const refused = await send('us-east-1');
  assert.equal(refused.statusCode, 403);
  assert.equal(refused.json<{ error: { code: string } }>().error.code, 'FORBIDDEN');
  assert.equal(v.vault.sequencer('us-east-1').sequencedSize, 0);
});
