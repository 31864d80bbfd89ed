/**
 * The self-audit catches changes to stored data without anyone running verify: a flipped
 * byte in a sealed entry bundle, a changed hash tile, a replaced checkpoint, a missing blob —
 * each raises one integrity alarm (read by an auditor from GET /v1/alarms), recorded in the
 * audit log. An honest vault raises none.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { tilePath } from '@custody/verify';
import { auditRecords, bearer, startInProc, type InProcVault } from '../support/inproc.js';
import type { Alarm } from '../../src/alarms/index.js';

const FAST = { selfAuditIntervalMs: 50, selfAuditBudgetMs: 1000 };

async function fill(v: InProcVault, n: number, big = false): Promise<void> {
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ i, msg: big && i === 3 ? 'b'.repeat(70_000) : `event ${i}` }));
  const r = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries?wait=checkpoint', headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' }, payload: lines.join('\n') });
  assert.equal(r.statusCode, 200, r.body);
}

async function integrityAlarms(v: InProcVault): Promise<Alarm[]> {
  const r = await v.app.inject({ method: 'GET', url: '/v1/alarms?kind=integrity', headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<{ alarms: Alarm[] }>().alarms;
}

async function waitForAlarm(v: InProcVault, rule: string, ms = 10_000): Promise<Alarm> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const a = (await integrityAlarms(v)).find((x) => x.rule === rule);
    if (a) return a;
    await sleep(50);
  }
  assert.fail(`no ${rule} alarm within ${ms} ms; alarms: ${JSON.stringify(await integrityAlarms(v))}`);
}

/** Waits until the self-audit has made a full pass over the local log. */
async function waitForPass(v: InProcVault): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < 10_000) {
    const s = v.services.selfAudit!.status().find((x) => x.log === 'local')!;
    if (s.lastPassAt !== null && s.checkedSize === v.vault.sequencer('local').size) return;
    await sleep(50);
  }
  assert.fail('the self-audit made no full pass');
}

function tree(v: InProcVault): string {
  return join(v.dataDir, 'logs', 'local', 'tree');
}

test('an honest vault: the self-audit makes full passes and raises nothing', async (t) => {
  const v = await startInProc({ timing: FAST });
  t.after(() => v.close());
  await fill(v, 700, true);
  await waitForPass(v);
  await waitForPass(v);
  assert.deepEqual(await integrityAlarms(v), []);
  const s = v.services.selfAudit!.status().find((x) => x.log === 'local')!;
  assert.ok(s.bundlesChecked >= 3, `${s.bundlesChecked} bundles checked`);
});

test('a flipped byte in a sealed entry bundle raises one integrity alarm, recorded in the audit log', async (t) => {
  const v = await startInProc({ timing: FAST });
  t.after(() => v.close());
  await fill(v, 600);
  await waitForPass(v);
  const file = join(tree(v), tilePath({ level: 'entries', index: 1, width: 256 }));
  const b = readFileSync(file);
  const mid = Math.floor(b.length / 2);
  b[mid] = b[mid]! ^ 0x01;
  writeFileSync(file, b);
  const a = await waitForAlarm(v, 'self-audit.bundle');
  assert.equal(a.severity, 'critical');
  assert.equal(a.log, 'local');
  assert.match(a.title, /tile\/entries\/001/);
  assert.equal(a.details['file'], 'tile/entries/001');
  // Grouped: more ticks over the same damage count on the alarm instead of adding alarms.
  await sleep(400);
  const all = (await integrityAlarms(v)).filter((x) => x.rule === 'self-audit.bundle');
  assert.equal(all.length, 1);
  const audit = await auditRecords(v);
  assert.ok(audit.some((e) => e['type'] === 'alarm.raised' && (e['alarm'] as { id: number }).id === a.id));
});

test('a changed hash tile, a replaced checkpoint, and a missing blob are each caught', async (t) => {
  const v = await startInProc({ timing: FAST });
  t.after(() => v.close());
  await fill(v, 300, true);
  await waitForPass(v);
  // A blob (the 70 kB record) removed from disk.
  const blobDir = join(v.dataDir, 'logs', 'local', 'blobs');
  const sub = readdirSync(blobDir)[0]!;
  rmSync(join(blobDir, sub, readdirSync(join(blobDir, sub))[0]!));
  await waitForAlarm(v, 'self-audit.blob');
  // A level-0 hash tile changed: the tree no longer adds up to the signed root.
  const tile = join(tree(v), tilePath({ level: 0, index: 0, width: 256 }));
  const tb = readFileSync(tile);
  tb[5] = tb[5]! ^ 0xff;
  writeFileSync(tile, tb);
  await waitForAlarm(v, 'self-audit.tiles');
  tb[5] = tb[5]! ^ 0xff;
  writeFileSync(tile, tb);
  // The checkpoint file replaced by one with a bad signature.
  const cpFile = join(tree(v), 'checkpoint');
  const cp = readFileSync(cpFile, 'utf8');
  writeFileSync(cpFile, cp.replace(/\n(\d+)\n/, (_m, n: string) => `\n${Number(n) + 1}\n`));
  await waitForAlarm(v, 'self-audit.checkpoint');
});

test('an older (validly signed) checkpoint put back on disk is a rollback alarm', async (t) => {
  const v = await startInProc({ timing: FAST });
  t.after(() => v.close());
  await fill(v, 10);
  const cpFile = join(tree(v), 'checkpoint');
  const old = readFileSync(cpFile);
  await fill(v, 10);
  await waitForPass(v);
  writeFileSync(cpFile, old);
  const a = await waitForAlarm(v, 'self-audit.rollback');
  assert.equal(a.details['size'], 10);
  assert.equal(a.details['before'], 20);
});
