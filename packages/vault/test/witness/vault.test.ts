/**
 * A vault with witnesses (docs/WITNESS.md): real witness servers on real directories, a real
 * vault (storage, sequencer, integrator thread, HTTP API).
 *
 * - 2 witnesses, policy 2: every published checkpoint carries both cosignatures; Go's
 *   tlogcheck accepts the cosigned checkpoint (it cannot check cosignatures: Go's note package
 *   knows only Ed25519 type 0x01 keys, and ignores unknown signature lines as signed-note
 *   requires) and `custody verify --witness … --witness-policy 2` reports both cosigners.
 * - one witness down, policy 2: no new checkpoint, entries acknowledged, ONE alarm; once the
 *   witness is back the acknowledged entries are published, cosigned by both.
 * - policy 1 with one down, one that refuses (403: it trusts another key) and one that
 *   disagrees (422: it cosigned another history): published with one cosignature; an alarm
 *   for each, once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Ed25519NoteSigner, checkCosignatures, openCheckpoint, parseNote, parseVerifierKey, toBase64 } from '@custody/verify';
import { initVault, Vault } from '../../src/vault.js';
import { buildServer } from '../../src/server/index.js';
import { WitnessStore } from '../../src/witness/store.js';
import { Witness, startWitnessServer, type WitnessServer } from '../../src/witness/server.js';
import { WitnessSet, type WitnessSpec } from '../../src/witness/client.js';
import { cleanup, makeTempDir, sleep, tlogcheck, verifyJson, waitFor } from '../support/server.js';
import type { Alarm } from '../../src/alarms/types.js';

const logger = pino({ level: 'silent' });

interface RunningWitness {
  name: string;
  store: WitnessStore;
  srv: WitnessServer | null;
  port: number;
  spec: WitnessSpec;
}

async function newWitness(name: string): Promise<RunningWitness> {
  const store = WitnessStore.init(join(makeTempDir('w'), name), name);
  const srv = await startWitnessServer(new Witness(store, logger), { logger });
  return { name, store, srv, port: srv.port, spec: { name, url: srv.url, vkey: store.verifierKey } };
}

async function stopWitness(w: RunningWitness): Promise<void> {
  await w.srv?.close();
  w.srv = null;
}

async function restartWitness(w: RunningWitness): Promise<void> {
  w.store = WitnessStore.open(w.store.dir); // what a new process would see
  w.srv = await startWitnessServer(new Witness(w.store, logger), { logger, port: w.port });
}

const records = (n: number, tag: string): Buffer[] => Array.from({ length: n }, (_, i) => Buffer.from(JSON.stringify({ tag, i, msg: `event ${i} of ${tag}` })));
const meta = { source: 'test.witness', producer: 'test' };

describe('a vault with witnesses', () => {
  let dataDir: string;
  let logs: Array<{ name: string; origin: string; verifierKey: string }>;
  let tokens: { auditor: string };
  let w1: RunningWitness;
  let w2: RunningWitness;
  let vault: Vault | null = null;
  let app: Awaited<ReturnType<typeof buildServer>> | null = null;
  let url = '';

  async function openVault(witnesses: WitnessSet): Promise<Vault> {
    vault = await Vault.open(dataDir, { logger, checkpointIntervalMs: 20, witnesses });
    app = await buildServer({ vault, logger });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    return vault;
  }
  async function closeVault(): Promise<void> {
    await app?.close();
    await vault?.close();
    app = null;
    vault = null;
  }
  const witnessAlarms = (): Promise<Alarm[]> => vault!.alarms.list({ kinds: ['witness'], limit: 500 });

  before(async () => {
    dataDir = join(makeTempDir('vault'), 'data');
    const init = initVault(dataDir, { regions: ['local'] });
    logs = init.logs;
    tokens = { auditor: init.tokens.find((t) => t.role === 'auditor')!.token };
    w1 = await newWitness('witness-one.example');
    w2 = await newWitness('witness-two.example');
    for (const w of [w1, w2]) for (const l of logs) w.store.addLog(l.origin, l.verifierKey);
  });
  after(async () => {
    await closeVault();
    for (const w of [w1, w2]) if (w) await stopWitness(w);
    await cleanup();
  });

  test('2 witnesses, policy 2: checkpoints are published cosigned by both; tlogcheck and custody verify accept them', async () => {
    const v = await openVault(new WitnessSet([w1.spec, w2.spec], { policy: 2, timeoutMs: 2000, logger }));
    const seq = v.sequencer('local');
    const a = await v.append('local', records(300, 'first'), meta);
    const cp = await seq.waitForCheckpoint(a.first + a.count, 20_000);
    const keys = [parseVerifierKey(w1.spec.vkey), parseVerifierKey(w2.spec.vkey)];
    const check = checkCosignatures(cp.text, keys, 2);
    assert.equal(check.ok, true, cp.text);
    assert.deepEqual(check.witnesses.map((w) => w.status), ['signed', 'signed']);
    // What is on disk (tree/checkpoint) is the cosigned note, and the log's signature holds.
    const onDisk = readFileSync(join(dataDir, 'logs', 'local', 'tree', 'checkpoint'), 'utf8');
    assert.equal(onDisk, cp.text);
    assert.equal(parseNote(onDisk).signatures.length, 3);
    const logKey = logs.find((l) => l.name === 'local')!.verifierKey;
    assert.equal(openCheckpoint(onDisk, parseVerifierKey(logKey), { witnesses: keys, quorum: 2 }).checkpoint.size, cp.size);
    // Each witness recorded what it cosigned.
    for (const w of [w1, w2]) assert.equal(w.store.state(logs.find((l) => l.name === 'local')!.origin)!.size, cp.size);
    // A second round extends it (old = the size each witness last cosigned, with a proof).
    const b = await v.append('local', records(40, 'second'), meta);
    const cp2 = await seq.waitForCheckpoint(b.first + b.count, 20_000);
    assert.equal(checkCosignatures(cp2.text, keys, 2).ok, true);

    const served = { url, tokens: { auditor: tokens.auditor, admin: '', writer: '' } };
    const go = await tlogcheck(served, 'local', logKey);
    assert.equal(go.code, 0, go.stderr + go.stdout);
    assert.match(go.stdout, new RegExp(`OK origin=\\S+ size=${cp2.size}`));

    const trust = join(makeTempDir('trust'), 'trust.json');
    const good = await verifyJson(['--url', url, '--token', tokens.auditor, '--log', 'local', '--witness', w1.spec.vkey, '--witness', w2.spec.vkey, '--witness-policy', '2'], { CUSTODY_TRUST_FILE: trust });
    assert.equal(good.code, 0, good.run.stdout + good.run.stderr);
    assert.deepEqual(good.json.logs[0]!.cosigners!.map((c) => [c.name, c.status]), [
      ['witness-one.example', 'signed'],
      ['witness-two.example', 'signed'],
    ]);
    // A witness the checkpoint does not carry: policy 3 of 3 fails, and says who is missing.
    const w3key = (await newWitnessKeyOnly('witness-three.example')).verifierKey;
    const bad = await verifyJson(['--url', url, '--token', tokens.auditor, '--log', 'local', '--witness', w1.spec.vkey, '--witness', w2.spec.vkey, '--witness', w3key, '--witness-policy', '3'], { CUSTODY_TRUST_FILE: join(makeTempDir('trust'), 't.json') });
    assert.equal(bad.code, 1);
    assert.equal(bad.json.logs[0]!.problems[0]!.kind, 'WITNESS_POLICY');
    assert.equal(bad.json.logs[0]!.cosigners![2]!.status, 'missing');
    assert.equal((await witnessAlarms()).length, 0, 'no alarm while every witness cosigns');
  });

  test('one witness down with policy 2: nothing new is published, one alarm; published once it is back', async () => {
    const v = vault!;
    const seq = v.sequencer('local');
    const before = seq.checkpoint;
    await stopWitness(w2);
    const a = await v.append('local', records(50, 'while-down'), meta); // acknowledged: durable
    const end = a.first + a.count;
    await sleep(3_500); // several retries with backoff
    assert.equal(seq.checkpoint.size, before.size, 'the previous checkpoint stays published');
    assert.equal(seq.checkpoint.text, before.text);
    assert.ok(seq.sequencedSize >= end, 'the entries are acknowledged');
    assert.match(seq.lastError?.code ?? '', /WITNESS_POLICY/);
    const alarms = await witnessAlarms();
    assert.equal(alarms.length, 1, JSON.stringify(alarms.map((x) => [x.rule, x.title])));
    assert.equal(alarms[0]!.rule, 'witness.down');
    assert.equal(alarms[0]!.details['witness'], 'witness-two.example');
    assert.equal(alarms[0]!.count, 1, 'raised once per incident, not per attempt');
    await restartWitness(w2);
    const cp = await seq.waitForCheckpoint(end, 20_000);
    assert.ok(cp.size >= end);
    assert.equal(checkCosignatures(cp.text, [parseVerifierKey(w1.spec.vkey), parseVerifierKey(w2.spec.vkey)], 2).ok, true);
    assert.equal((await witnessAlarms()).length, 1, 'no new alarm when it comes back');
  });

  test('policy 1: published with one down, one refusing (403) and one disagreeing (422); an alarm for each', async () => {
    await closeVault();
    const local = logs.find((l) => l.name === 'local')!;
    // w3 trusts another key for the origin: it answers 403.
    const w3 = await newWitness('witness-three.example');
    w3.store.addLog(local.origin, new Ed25519NoteSigner(local.origin, randomBytes(32)).verifierKey);
    // w4 has cosigned another history of the log at the vault's published size: it answers 422.
    const w4 = await newWitness('witness-four.example');
    w4.store.addLog(local.origin, local.verifierKey);
    const published = JSON.parse(JSON.stringify(w1.store.state(local.origin))) as { size: number };
    w4.store.saveState({ origin: local.origin, size: published.size, root: toBase64(randomBytes(32)), checkpoint: 'forked', cosignedAt: 1 });
    // w5 is new to this log: the vault guesses old = its published size, gets 409 "0" and
    // retries once from 0 (tlog-witness), so w5 cosigns too.
    const w5 = await newWitness('witness-five.example');
    w5.store.addLog(local.origin, local.verifierKey);
    await stopWitness(w2);
    try {
      const v = await openVault(new WitnessSet([w1.spec, w2.spec, w3.spec, w4.spec, w5.spec], { policy: 1, timeoutMs: 1000, logger }));
      const seq = v.sequencer('local');
      const a = await v.append('local', records(20, 'policy-1'), meta);
      const cp = await seq.waitForCheckpoint(a.first + a.count, 20_000);
      const keys = [w1, w2, w3, w4, w5].map((w) => parseVerifierKey(w.spec.vkey));
      const check = checkCosignatures(cp.text, keys, 1);
      assert.equal(check.ok, true);
      assert.deepEqual(check.witnesses.map((w) => w.status), ['signed', 'missing', 'missing', 'missing', 'signed']);
      assert.equal(w5.store.state(local.origin)!.size, cp.size);
      await v.append('local', records(5, 'again'), meta).then((r) => seq.waitForCheckpoint(r.first + r.count, 20_000));
      const alarms = await waitFor('three witness alarms', async () => {
        const l = (await witnessAlarms()).filter((x) => x.details['log'] === 'local' || x.rule === 'witness.down');
        return l.length >= 3 ? l : undefined;
      }, 10_000);
      const byWitness = new Map(alarms.map((x) => [x.details['witness'] as string, x]));
      assert.equal(byWitness.get('witness-two.example')?.rule, 'witness.down');
      assert.equal(byWitness.get('witness-three.example')?.rule, 'witness.refused');
      assert.equal(byWitness.get('witness-three.example')?.details['status'], 403);
      assert.equal(byWitness.get('witness-four.example')?.rule, 'witness.disagreement');
      assert.equal(byWitness.get('witness-four.example')?.details['status'], 422);
      assert.equal(byWitness.get('witness-four.example')?.severity, 'critical');
      // Once per incident: w2's earlier outage (previous test) and this one are two incidents,
      // grouped on one alarm by the alarm center; the others are first incidents.
      for (const x of alarms) assert.equal(x.count, x.rule === 'witness.down' ? 2 : 1, `${x.rule} raised once per incident`);
      // The forked witness never moved off its state; the honest one did.
      assert.equal(w4.store.state(local.origin)!.checkpoint, 'forked');
      assert.equal(w1.store.state(local.origin)!.size, seq.checkpoint.size);
    } finally {
      await closeVault();
      await stopWitness(w3);
      await stopWitness(w4);
      await stopWitness(w5);
      await restartWitness(w2);
    }
  });
});

/** A witness key without a server (for a verifier policy that cannot be met). */
async function newWitnessKeyOnly(name: string): Promise<WitnessStore> {
  return WitnessStore.init(join(makeTempDir('w'), name), name);
}
