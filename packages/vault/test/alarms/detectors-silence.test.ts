/**
 * Silence: a producer that sent regularly and stops raises one "silence" alarm; when it sends
 * again, one "resumed" notice. With fast timing (check every 100 ms) and rules from
 * <data>/rules.json: a set threshold of 400 ms, and a learned one. What the vault learned is
 * kept in custody.db, so a restart does not forget who usually talks.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { initVault, Vault } from '../../src/vault.js';
import { buildServer } from '../../src/server/index.js';
import { startServices } from '../../src/services.js';
import { bearer, startInProc, type InProcVault } from '../support/inproc.js';
import { alarms, settle, waitForAlarms } from './detectors-support.js';

const FAST = { silenceCheckMs: 100 };

const RULES = [
  { id: 'silence.heartbeat', description: 'The heartbeat app sends every 50 ms.', enabled: true, type: 'silence', kind: 'silence', severity: 'high', per: 'source+producer', source: ['app.heartbeat'], thresholdMs: 400 },
  { id: 'silence.learned-fast', description: 'Learned cadence, fast.', enabled: true, type: 'silence', kind: 'silence', severity: 'medium', per: 'source', source: ['app.learned'], learn: { factor: 2, floorMs: 200, ceilingMs: 4000, minSamples: 3, minGapMs: 20 } },
];

async function send(v: { app: InProcVault['app']; tokens: InProcVault['tokens'] }, source: string, n = 1): Promise<void> {
  const r = await v.app.inject({ method: 'POST', url: `/v1/logs/local/entries?source=${source}`, headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: Array.from({ length: n }, (_, i) => JSON.stringify({ beat: i, t: Date.now() })).join('\n') });
  assert.equal(r.statusCode, 200, r.body);
}

function withRules(dataDir: string): void {
  writeFileSync(join(dataDir, 'rules.json'), JSON.stringify(RULES));
}

test('a producer that stops raises one silence alarm, and one resumed notice when it is back', async (t) => {
  const v = await startInProc({ timing: FAST, beforeServices: withRules });
  t.after(() => v.close());
  let lastSend = 0;
  for (let i = 0; i < 6; i++) {
    lastSend = Date.now();
    await send(v, 'app.heartbeat');
    await sleep(50);
  }
  // While it talks, nothing.
  await settle(v);
  assert.deepEqual(await alarms(v, 'silence'), []);
  const [s] = await waitForAlarms(v, (l) => l.length > 0, 'silence alarm', 5000, 'silence');
  assert.ok(Date.now() - lastSend >= 400, 'not before the threshold');
  assert.equal(s!.rule, 'silence.heartbeat');
  assert.equal(s!.severity, 'high');
  assert.match(s!.title, /app\.heartbeat from initial-writer has sent nothing for/);
  assert.equal(s!.details['source'], 'app.heartbeat');
  assert.equal(s!.details['producer'], 'initial-writer');
  assert.equal(s!.details['thresholdMs'], 400);
  assert.equal(s!.details['thresholdFrom'], 'rule');
  // Still silent a while later: still one alarm.
  await sleep(500);
  await settle(v);
  assert.equal((await alarms(v, 'silence')).length, 1);
  assert.deepEqual(await alarms(v, 'resumed'), []);

  await send(v, 'app.heartbeat');
  await settle(v);
  const resumed = await alarms(v, 'resumed');
  assert.equal(resumed.length, 1);
  assert.equal(resumed[0]!.severity, 'info');
  assert.equal(resumed[0]!.rule, 'silence.heartbeat');
  assert.match(resumed[0]!.title, /app\.heartbeat from initial-writer is sending again after/);
  assert.ok((resumed[0]!.details['silentForMs'] as number) >= 400);
  // Talking again: no new silence while it keeps talking.
  for (let i = 0; i < 4; i++) {
    await sleep(50);
    await send(v, 'app.heartbeat');
  }
  await settle(v);
  assert.equal((await alarms(v, 'silence')).length, 1);
  assert.equal((await alarms(v, 'resumed')).length, 1);
  // The catch-all learned rule does not also watch a source a specific rule names.
  assert.ok((await alarms(v)).every((a) => a.rule !== 'silence.learned'));
});

test('a learned cadence: the threshold follows the usual gap, within floor and ceiling', async (t) => {
  const v = await startInProc({ timing: FAST, beforeServices: withRules });
  t.after(() => v.close());
  // Too few gaps to have learned anything: the threshold is the ceiling (4 s); nothing soon.
  await send(v, 'app.learned');
  await sleep(60);
  await send(v, 'app.learned');
  await sleep(700);
  await settle(v);
  assert.deepEqual(await alarms(v, 'silence'), []);
  const watched = await v.app.inject({ method: 'GET', url: '/v1/rules/silence.learned-fast', headers: bearer(v.tokens.auditor) });
  assert.equal(watched.statusCode, 200, watched.body);
  const w = watched.json<{ watched: Array<{ key: string; thresholdMs: number; samples: number }> }>().watched;
  assert.equal(w.length, 1);
  assert.equal(w[0]!.key, 'app.learned');
  assert.equal(w[0]!.thresholdMs, 4000);
  // Regular sends every ~60 ms teach a short cadence (the 700 ms gap above was a silence
  // under 4 s, so it is learned too; the longest recent gap fades with each arrival).
  for (let i = 0; i < 12; i++) {
    await send(v, 'app.learned');
    await sleep(60);
  }
  const after = (await v.app.inject({ method: 'GET', url: '/v1/rules/silence.learned-fast', headers: bearer(v.tokens.auditor) })).json<{ watched: Array<{ thresholdMs: number; samples: number }> }>().watched[0]!;
  assert.ok(after.samples >= 10, `samples ${after.samples}`);
  assert.ok(after.thresholdMs < 4000 && after.thresholdMs >= 200, `learned threshold ${after.thresholdMs}`);
  const [s] = await waitForAlarms(v, (l) => l.length > 0, 'learned silence alarm', 6000, 'silence');
  assert.equal(s!.rule, 'silence.learned-fast');
  assert.equal(s!.details['thresholdFrom'], 'learned');
  assert.ok((s!.details['gapsSeen'] as number) >= 10);
  assert.match(s!.title, /source app\.learned has sent nothing for .* usually every/);
});

test('a restart does not forget who usually talks (state in custody.db, table detector_cadence)', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'custody-test-silence-'));
  const init = initVault(dataDir);
  withRules(dataDir);
  const tokens = { admin: '', auditor: init.tokens.find((x) => x.role === 'auditor')!.token, writer: init.tokens.find((x) => x.role === 'writer')!.token };
  const logger = pino({ level: 'silent' });
  const start = async () => {
    const vault = await Vault.open(dataDir, { logger, checkpointIntervalMs: 20 });
    const services = await startServices(vault, { logger, timing: FAST });
    const app = await buildServer({ vault, logger, services });
    await app.ready();
    return {
      vault,
      services,
      app,
      tokens,
      dataDir,
      async close() {
        await app.close();
        await services.close();
        await vault.close();
      },
    } as unknown as InProcVault;
  };

  const a = await start();
  for (let i = 0; i < 4; i++) {
    await send(a, 'app.heartbeat');
    await sleep(40);
  }
  await a.close();

  // Restarted: the heartbeat stays quiet. The vault remembers it was seen, and alarms.
  const restarted = Date.now();
  const b = await start();
  t.after(async () => {
    await b.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const list = await b.app.inject({ method: 'GET', url: '/v1/rules/silence.heartbeat', headers: bearer(tokens.auditor) });
  assert.equal(list.statusCode, 200, list.body);
  const w = list.json<{ watched: Array<{ key: string; samples: number }> }>().watched;
  assert.deepEqual(w.map((x) => x.key), ['app.heartbeat|initial-writer']);
  const [s] = await waitForAlarms(b, (l) => l.length > 0, 'silence after restart', 5000, 'silence');
  assert.equal(s!.rule, 'silence.heartbeat');
  // Time the vault was down is not held against the sender: the threshold counts from the start.
  assert.ok(Date.now() - restarted >= 400);
  assert.ok(Date.parse(s!.details['lastSeen'] as string) < restarted, 'last seen before the restart');
  // The rules were not seeded or merged twice: one audit record of the seeding.
  const rules = await b.app.inject({ method: 'GET', url: '/v1/rules', headers: bearer(tokens.auditor) });
  assert.equal(rules.json<{ rules: Array<{ id: string; origin: string }> }>().rules.filter((r) => r.id === 'silence.heartbeat' && r.origin === 'file').length, 1);
});
