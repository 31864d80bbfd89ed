/** Back-pressure: a backlog beyond the limit makes new batches wait, then refuses them (503). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, bearer } from './support/inproc.js';

test('batches wait for the integrator, then get PUSHBACK with Retry-After; nothing of a refused batch is appended', async (t) => {
  // A checkpoint interval of 3 s holds the backlog long enough to see both behaviours.
  const v = await startInProc({ checkpointIntervalMs: 3_000, maxPendingEntries: 100, admissionTimeoutMs: 300 });
  t.after(() => v.close());
  const send = (n: number) =>
    v.app.inject({
      method: 'POST',
      url: '/v1/logs/local/entries',
      headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' },
      payload: Array.from({ length: n }, (_, i) => JSON.stringify({ i })).join('\n'),
    });
  assert.equal((await send(80)).statusCode, 200);
  const t0 = Date.now();
  const refused = await send(50);
  assert.ok(Date.now() - t0 >= 250, 'the batch waited for admission first');
  assert.equal(refused.statusCode, 503);
  assert.equal(refused.json<{ error: { code: string } }>().error.code, 'PUSHBACK');
  assert.equal(refused.headers['retry-after'], '1');
  assert.equal(v.vault.sequencer('local').sequencedSize, 80);
  // Once the integrator publishes, waiting batches are admitted.
  const seq = v.vault.sequencer('local');
  const pending = send(50);
  await seq.waitForCheckpoint(80, 10_000);
  const ok = await pending.catch(() => null);
  assert.ok(ok);
  // admitted if the checkpoint came within its admission window, else refused: both are honest answers
  assert.ok(ok.statusCode === 200 || ok.statusCode === 503);
  const after = await send(50);
  assert.equal(after.statusCode, 200, after.body);
});
