/**
 * AWS KMS as the key provider (issue 6; docs/ENCRYPTION.md "AWS KMS"): unit tests of the
 * requests Custody sends, through the real AWS SDK, to a local server speaking the KMS JSON
 * protocol (fake-kms.ts; no real KMS is reachable here). Asserted per request: the KeyId is
 * the key of the log's region, the request is signed for that region (SigV4 credential scope),
 * the encryption context binds origin and bundle index, Decrypt gets the same context. Also: a
 * bundle moved to another index or log does not open; ingest → restart → read → verify --data;
 * access denied, a disabled key and HTTP 500 give clear errors while the server stays up and
 * acknowledged entries are integrated once the key works again; rotation to a new KMS key.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, readdirSync, lstatSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FakeKms, type KmsRequest } from './fake-kms.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { Kms, kmsError } from '../../src/crypto/kms.js';
import { PosixLogStore } from '../../src/storage/posix.js';
import { initVault } from '../../src/vault.js';
import { isCustodyError } from '../../src/errors.js';
import { appendNdjson, cleanup, getJson, makeTempDir, runCli, startServer, verifyJson, waitFor, waitForCheckpoint, checkpointSize, type ServerHandle } from '../support/server.js';
import { openHarness, append, records, bearer, CTX, type Harness } from '../lifecycle/harness.js';

const fake = new FakeKms();
const work = makeTempDir('keys-kms');
const dataDir = join(work, 'vault');
const keyringPath = join(dataDir, 'keyring.json');
const NO_PASS = { CUSTODY_PASSPHRASE: '' };
let EU = '';
let US = '';
let EU2 = '';
/** Requests before this one were the unit test's (one of them deliberately to the wrong region). */
let pinFrom = 0;

before(async () => {
  await fake.start();
  Object.assign(process.env, fake.env(), { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
  EU = fake.createKey('eu-west-1');
  US = fake.createKey('us-east-1');
  EU2 = fake.createKey('eu-west-1', 'custody-eu-2');
});
after(async () => {
  await cleanup();
  await fake.stop();
});

const ctx = (r: KmsRequest): Record<string, string> => (r.body['EncryptionContext'] ?? {}) as Record<string, string>;
const lines = (n: number, tag: string): string[] => Array.from({ length: n }, (_, i) => JSON.stringify({ tag, i, msg: `kms test ${tag} ${i}` }));

/** Every request so far was sent to the region its key lives in (never region A's key to B, or B's client for A). */
function assertRegionPinned(reqs: KmsRequest[]): void {
  // (the unit test's one deliberate wrong-region request is before pinFrom)
  for (const r of reqs.slice(pinFrom)) {
    const key = String(r.body['KeyId'] ?? '');
    if (key) assert.equal(fake.regionOf(key.startsWith('alias/') ? EU2 : key), r.region, `${r.op} for ${key} was signed for ${r.region}`);
    assert.match(r.authorization, new RegExp(`/${r.region}/kms/aws4_request`), 'SigV4 scope names the region');
  }
}

/** The KMS key a version-2 sealed object names ("CSTE" | 2 | flags | keyIdLen u16 | keyId …). */
function keyOfSealed(b: Buffer): string {
  assert.equal(b.subarray(0, 4).toString(), 'CSTE');
  assert.equal(b[4], 2, 'a KMS-sealed object (version 2)');
  return b.subarray(8, 8 + b.readUInt16BE(6)).toString('utf8');
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...walk(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

describe('the KMS client (unit)', () => {
  test('failures map to clear codes; a decrypted data key is cached per ciphertext and context, bounded', async () => {
    const cases: Array<[string, string]> = [
      ['AccessDeniedException', 'KMS_ACCESS_DENIED'],
      ['DisabledException', 'KMS_KEY_DISABLED'],
      ['KMSInvalidStateException', 'KMS_KEY_DISABLED'],
      ['NotFoundException', 'KMS_KEY_NOT_FOUND'],
      ['InvalidCiphertextException', 'STORAGE_CORRUPT'],
      ['ThrottlingException', 'KMS_UNAVAILABLE'],
      ['TimeoutError', 'KMS_UNAVAILABLE'],
    ];
    for (const [name, code] of cases) {
      const e = kmsError(Object.assign(new Error('x'), { name }), 'Decrypt', 'eu-west-1', EU, 'entry bundle 3');
      assert.equal(e.code, code, name);
      assert.match(e.message, /eu-west-1|entry bundle 3/);
    }
    const kms = new Kms({ cacheEntries: 2 });
    try {
      const c0 = { 'custody:origin': 'o/eu-west-1', 'custody:bundle': '0', 'custody:purpose': 'bundle' };
      const dk = await kms.generateDataKey('eu-west-1', EU, c0, 'unit');
      assert.equal(dk.plaintext.length, 32);
      assert.equal(dk.keyId, EU);
      const n = fake.of('Decrypt').length;
      assert.ok((await kms.decrypt('eu-west-1', EU, dk.blob, c0, 'unit')).equals(dk.plaintext));
      assert.ok((await kms.decrypt('eu-west-1', EU, dk.blob, c0, 'unit')).equals(dk.plaintext));
      assert.equal(fake.of('Decrypt').length, n + 1, 'the second decrypt came from the cache');
      // The cache does not answer for another context: KMS is asked, and refuses.
      await assert.rejects(kms.decrypt('eu-west-1', EU, dk.blob, { ...c0, 'custody:bundle': '1' }, 'unit'), (e: unknown) => isCustodyError(e, 'STORAGE_CORRUPT'));
      assert.equal(fake.of('Decrypt').length, n + 2);
      // Bounded: two more entries push the first out.
      for (const b of ['5', '6']) {
        const c = { ...c0, 'custody:bundle': b };
        await kms.decrypt('eu-west-1', EU, (await kms.generateDataKey('eu-west-1', EU, c, 'unit')).blob, c, 'unit');
      }
      await kms.decrypt('eu-west-1', EU, dk.blob, c0, 'unit');
      assert.equal(fake.of('Decrypt').length, n + 5, 'evicted, asked again');
      // A region other than the key's: not found there (a key never crosses regions).
      await assert.rejects(kms.generateDataKey('us-east-1', EU, c0, 'unit'), (e: unknown) => isCustodyError(e, 'KMS_KEY_NOT_FOUND'));
    } finally {
      kms.destroy();
      pinFrom = fake.requests.length;
    }
  });
});

describe('a vault with its keys in AWS KMS (two regions)', () => {
  let server: ServerHandle;
  let prefix = '';
  const euLines = lines(300, 'eu');
  const usLines = lines(10, 'us');
  after(async () => {
    await server?.stop().catch(() => undefined);
  });

  test('custody init --kms-key refuses a key of another region, a region without a key and a passphrase besides', async () => {
    const bad = async (args: string[], re: RegExp, env: Record<string, string> = NO_PASS): Promise<void> => {
      const dir = join(work, `bad-${Math.random().toString(36).slice(2)}`);
      const r = await runCli(['init', '--data', dir, ...args], env);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, re);
      assert.throws(() => readdirSync(dir), 'nothing was created');
    };
    await bad(['--kms-key', `eu-west-1=${US}`], /is in region us-east-1, not eu-west-1.*\[CONFIG\]/);
    await bad(['--kms-key', `eu-west-1=${EU}`, '--regions', 'eu-west-1,us-east-1'], /Region us-east-1 has no --kms-key.*\[CONFIG\]/);
    await bad(['--kms-key', `eu-west-1=${EU}`], /Choose one protection.*\[CONFIG\]/, { CUSTODY_PASSPHRASE: 'a passphrase that is long' });
    await bad(['--kms-key', 'eu-west-1'], /--kms-key takes <region>=<key ARN or alias>.*\[CONFIG\]/);
    assert.equal(fake.requests.filter((r) => r.op === 'Encrypt').length, 0, 'no KMS request for a refused init');
  });

  test('custody init --kms-key: one Encrypt per region, in that region, with its key; the keyring holds no key in the clear', async () => {
    const from = fake.requests.length;
    const r = await runCli(['init', '--data', dataDir, '--kms-key', `eu-west-1=${EU}`, '--kms-key', `us-east-1=${US}`, '--json'], NO_PASS);
    assert.equal(r.code, 0, r.stderr);
    const init = JSON.parse(r.stdout) as { logs: Array<{ name: string; origin: string }> };
    assert.deepEqual(init.logs.map((l) => l.name), ['eu-west-1', 'us-east-1', 'audit']);
    prefix = init.logs[0]!.origin.replace(/\/eu-west-1$/, '');
    const text = readFileSync(keyringPath);
    const j = JSON.parse(text.toString()) as {
      version: number;
      id: string;
      protection: string;
      logs: Record<string, { region: string; kmsKeys: Array<{ keyId: string }> }>;
      sections: Array<{ name: string; key: { region: string; keyId: string } }>;
    };
    assert.equal(j.version, 2);
    assert.equal(j.protection, 'kms');
    assert.deepEqual(j.sections.map((s) => [s.name, s.key.region, s.key.keyId]), [['region:eu-west-1', 'eu-west-1', EU], ['region:us-east-1', 'us-east-1', US]]);
    assert.deepEqual(Object.entries(j.logs).map(([n, l]) => [n, l.region, l.kmsKeys.map((k) => k.keyId)]), [
      ['eu-west-1', 'eu-west-1', [EU]],
      ['us-east-1', 'us-east-1', [US]],
      ['audit', 'eu-west-1', [EU]],
    ]);
    const enc = fake.requests.slice(from).filter((x) => x.op === 'Encrypt');
    assert.equal(enc.length, 2);
    for (const e of enc) {
      assert.equal(e.body['KeyId'], e.region === 'eu-west-1' ? EU : US);
      assert.deepEqual(ctx(e), { 'custody:keyring': j.id, 'custody:section': `region:${e.region}`, 'custody:purpose': 'keyring' });
    }
    assert.deepEqual(enc.map((e) => e.region).sort(), ['eu-west-1', 'us-east-1']);
    // Opened with KMS (Decrypt in each region): every secret is absent from the file.
    const ring = await Keyring.open(keyringPath);
    for (const log of ring.logNames) {
      const k = ring.forLog(log).exportForWorker();
      for (const s of [k.signingSeed, k.blobNameKey, ...k.keks.map((x) => x.key)]) assert.equal(text.includes(s.toString('base64')), false, `a key of ${log} in the clear`);
    }
    for (const p of ring.vaultKeyPurposes) assert.equal(text.includes(ring.vaultKey(p).toString('base64')), false);
    assert.ok(ring.vaultKeyPurposes.includes('sqlite-custody'));
    const dec = fake.requests.slice(from).filter((x) => x.op === 'Decrypt');
    assert.deepEqual(dec.map((d) => [d.region, d.body['KeyId'], ctx(d)['custody:section']]).sort(), [['eu-west-1', EU, 'region:eu-west-1'], ['us-east-1', US, 'region:us-east-1']]);
    assertRegionPinned(fake.requests);
  });

  test("a server seals each region's bundles with data keys of its own region's key, bound to origin and bundle index", { timeout: 120_000 }, async () => {
    const from = fake.requests.length;
    server = await startServer({ dataDir, checkpointIntervalMs: 20 });
    await appendNdjson(server.url, server.tokens.writer, euLines, undefined, 'eu-west-1');
    await appendNdjson(server.url, server.tokens.writer, usLines, undefined, 'us-east-1');
    await waitForCheckpoint(server, 'eu-west-1', 300);
    await waitForCheckpoint(server, 'us-east-1', 10);
    const gen = fake.requests.slice(from).filter((r) => r.op === 'GenerateDataKey');
    assert.ok(gen.length >= 4, `${gen.length} GenerateDataKey requests`);
    for (const g of gen) {
      const c = ctx(g);
      assert.deepEqual(Object.keys(c).sort(), ['custody:bundle', 'custody:origin', 'custody:purpose']);
      assert.equal(c['custody:purpose'], 'bundle');
      assert.match(c['custody:bundle']!, /^[0-9]+$/);
      assert.equal(g.body['KeySpec'], 'AES_256');
      const log = c['custody:origin']!.slice(prefix.length + 1);
      const region = log === 'audit' ? 'eu-west-1' : log;
      assert.equal(g.region, region, `the client of ${log} is in ${region}`);
      assert.equal(g.body['KeyId'], region === 'eu-west-1' ? EU : US, `${log} uses its region's key`);
    }
    const bundlesOf = (log: string): string[] => [...new Set(gen.filter((g) => ctx(g)['custody:origin'] === `${prefix}/${log}`).map((g) => ctx(g)['custody:bundle']!))].sort();
    assert.ok(['0', '1'].every((b) => bundlesOf('eu-west-1').includes(b)), `eu-west-1 bundles ${bundlesOf('eu-west-1').join(',')}`);
    assert.ok(bundlesOf('us-east-1').includes('0'));
    assertRegionPinned(fake.requests);
    // On disk: version-2 headers naming the region's key; no record in the clear.
    const tree = (log: string): string => join(dataDir, 'logs', log, 'tree', 'tile', 'entries');
    const b0 = readFileSync(join(tree('eu-west-1'), '000'));
    assert.equal(keyOfSealed(b0), EU);
    assert.equal(keyOfSealed(readFileSync(join(tree('eu-west-1'), '001.p', '44'))), EU);
    assert.equal(keyOfSealed(readFileSync(join(tree('us-east-1'), '000.p', '10'))), US);
    for (const p of walk(join(dataDir, 'logs'))) {
      const data = readFileSync(p);
      for (const l of [euLines[3]!, usLines[3]!]) assert.equal(data.includes(l), false, `${p} holds a record in the clear`);
    }
  });

  test('restart, read back (Decrypt gets the same context), and custody verify --data opens it', { timeout: 120_000 }, async () => {
    await server.stop();
    const from = fake.requests.length;
    await server.launch();
    for (const [log, i, want] of [['eu-west-1', 5, euLines[5]], ['eu-west-1', 299, euLines[299]], ['us-east-1', 3, usLines[3]]] as const) {
      const e: { record: string } = await getJson<{ record: string }>(server.url, server.tokens.auditor, `/v1/logs/${log}/entries/${i}`);
      assert.equal(e.record, want);
    }
    const dec = fake.requests.slice(from).filter((r) => r.op === 'Decrypt' && ctx(r)['custody:purpose'] === 'bundle');
    const got = new Set(dec.map((d) => `${ctx(d)['custody:origin']}#${ctx(d)['custody:bundle']}`));
    for (const want of [`${prefix}/eu-west-1#0`, `${prefix}/eu-west-1#1`, `${prefix}/us-east-1#0`]) assert.ok(got.has(want), `Decrypt for ${want}`);
    for (const d of dec) {
      assert.equal(d.outcome, '200');
      const region = ctx(d)['custody:origin']!.endsWith('/us-east-1') ? 'us-east-1' : 'eu-west-1';
      assert.equal(d.body['KeyId'], region === 'us-east-1' ? US : EU, 'Decrypt names the key of the header');
    }
    assertRegionPinned(fake.requests);
    await server.stop();
    const v = await verifyJson(['--data', dataDir, '--trust-file', join(work, 'trust.json')], NO_PASS);
    assert.equal(v.code, 0, v.run.stderr + v.run.stdout);
    assert.equal(v.json.ok, true);
    assert.deepEqual(v.json.logs.map((l) => [l.log, l.ok, l.size]).filter(([l]) => l !== 'audit').sort(), [['eu-west-1', true, 300], ['us-east-1', true, 10]]);
  });

  test('a bundle copied to another index, or into another region\'s log, does not open', async () => {
    const copy = join(work, 'copy');
    cpSync(dataDir, copy, { recursive: true });
    const ring = await Keyring.open(join(copy, 'keyring.json'));
    const eu = new PosixLogStore(join(copy, 'logs', 'eu-west-1'), `${prefix}/eu-west-1`, ring.forLog('eu-west-1'));
    const entries = join(copy, 'logs', 'eu-west-1', 'tree', 'tile', 'entries');
    assert.equal((await eu.readBundle(0, 256))!.length > 0, true, 'bundle 0 opens where it belongs');
    // Bundle 0's sealed bytes at index 1 (the partial of 44 entries).
    writeFileSync(join(entries, '001.p', '44'), readFileSync(join(entries, '000')));
    const from = fake.requests.length;
    await assert.rejects(eu.readBundle(1, 44), (e: unknown) => isCustodyError(e, 'STORAGE_CORRUPT'));
    const asked = fake.requests.slice(from).filter((r) => r.op === 'Decrypt');
    assert.equal(asked.length, 1);
    assert.equal(ctx(asked[0]!)['custody:bundle'], '1', 'KMS was asked with the context of the new position');
    assert.equal(asked[0]!.outcome, 'InvalidCiphertextException');
    // Into the us-east-1 log: its header names an eu-west-1 key, which this log never uses.
    const us = new PosixLogStore(join(copy, 'logs', 'us-east-1'), `${prefix}/us-east-1`, ring.forLog('us-east-1'));
    const usEntries = join(copy, 'logs', 'us-east-1', 'tree', 'tile', 'entries');
    mkdirSync(usEntries, { recursive: true });
    writeFileSync(join(usEntries, '000.p', '10'), readFileSync(join(entries, '000')));
    const before = fake.requests.length;
    await assert.rejects(us.readBundle(0, 10), (e: unknown) => isCustodyError(e, 'STORAGE_CORRUPT') && /names a KMS key in region eu-west-1/.test((e as Error).message));
    assert.equal(fake.requests.length, before, 'no request at all: region B never asks with region A\'s key');
  });

  test('hostile input: malformed KMS headers and altered ciphertext are STORAGE_CORRUPT; an altered keyring is KEYRING_LOCKED', async () => {
    const copy = join(work, 'copy-hostile');
    cpSync(dataDir, copy, { recursive: true });
    const ring = await Keyring.open(join(copy, 'keyring.json'));
    const eu = new PosixLogStore(join(copy, 'logs', 'eu-west-1'), `${prefix}/eu-west-1`, ring.forLog('eu-west-1'));
    const entries = join(copy, 'logs', 'eu-west-1', 'tree', 'tile', 'entries');
    const good = readFileSync(join(entries, '000'));
    const keyLen = good.readUInt16BE(6);
    const variants: Array<[string, Buffer, boolean]> = [
      ['key name length 0xffff', Buffer.concat([good.subarray(0, 6), Buffer.from([0xff, 0xff]), good.subarray(8)]), false],
      ['blob length 0xffff', (() => { const b = Buffer.from(good); b.writeUInt16BE(0xffff, 8 + keyLen); return b; })(), false],
      ['truncated header', good.subarray(0, 8 + keyLen + 1), false],
      ['no ciphertext', good.subarray(0, 10 + keyLen + good.readUInt16BE(8 + keyLen) + 10), false],
      ['a flipped ciphertext byte', (() => { const b = Buffer.from(good); b[b.length - 40]! ^= 1; return b; })(), true],
      ['a flipped flags byte', (() => { const b = Buffer.from(good); b[5]! ^= 2; return b; })(), true],
    ];
    for (const [what, bytes, asksKms] of variants) {
      writeFileSync(join(entries, '000'), bytes);
      const before = fake.requests.length;
      await assert.rejects(eu.readBundle(0, 256), (e: unknown) => isCustodyError(e, 'STORAGE_CORRUPT'), what);
      if (!asksKms) assert.equal(fake.requests.length, before, `${what}: refused before any KMS request`);
    }
    // The keyring: a section key KMS does not decrypt, and a public part changed to another key of the same region.
    const kr = JSON.parse(readFileSync(join(copy, 'keyring.json'), 'utf8')) as { logs: Record<string, { kmsKeys: Array<{ keyId: string }> }>; sections: Array<{ key: { blob: string } }> };
    const blob = Buffer.from(kr.sections[0]!.key.blob, 'base64');
    blob[blob.length - 20]! ^= 1;
    const bad1 = structuredClone(kr);
    bad1.sections[0]!.key.blob = blob.toString('base64');
    writeFileSync(join(work, 'kr-blob.json'), JSON.stringify(bad1));
    await assert.rejects(Keyring.open(join(work, 'kr-blob.json')), (e: unknown) => isCustodyError(e, 'KEYRING_LOCKED') && /AWS KMS does not decrypt the key of the keyring/.test((e as Error).message));
    const bad2 = structuredClone(kr);
    bad2.logs['eu-west-1']!.kmsKeys[0]!.keyId = EU2;
    writeFileSync(join(work, 'kr-swapped.json'), JSON.stringify(bad2));
    await assert.rejects(Keyring.open(join(work, 'kr-swapped.json')), (e: unknown) => isCustodyError(e, 'KEYRING_LOCKED') && /was altered/.test((e as Error).message));
  });

  test('access denied, a disabled key and HTTP 500: clear errors (503), the server stays up, acknowledged entries are integrated when the key works again', { timeout: 240_000 }, async () => {
    await server.launch();
    let size = 300;
    const readyz = async (): Promise<{ status: string; problems?: Array<{ log: string; code: string }> }> => (await fetch(`${server.url}/readyz`)).json() as Promise<{ status: string; problems?: Array<{ log: string; code: string }> }>;
    // Reads: bundle 0 is not cached by this process yet.
    fake.faults.set('Decrypt', 'AccessDeniedException');
    const denied = await fetch(`${server.url}/v1/logs/eu-west-1/entries/10`, { headers: bearer(server.tokens.auditor) });
    assert.equal(denied.status, 503);
    const body = (await denied.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'KMS_ACCESS_DENIED');
    assert.match(body.error.message, /kms:Decrypt/);
    fake.faults.clear();
    const ok: { record: string } = await getJson<{ record: string }>(server.url, server.tokens.auditor, '/v1/logs/eu-west-1/entries/10');
    assert.equal(ok.record, euLines[10]);

    const faults: Array<[string, () => void, () => void, string]> = [
      ['access denied', () => fake.faults.set('GenerateDataKey', 'AccessDeniedException'), () => fake.faults.clear(), 'KMS_ACCESS_DENIED'],
      ['a disabled key', () => fake.setEnabled(EU, false), () => fake.setEnabled(EU, true), 'KMS_KEY_DISABLED'],
      ['HTTP 500', () => fake.faults.set('GenerateDataKey', 'http500'), () => fake.faults.clear(), 'KMS_UNAVAILABLE'],
    ];
    for (const [what, on, off, code] of faults) {
      on();
      // 600 entries: beyond the tail bundle and the one prefetched, so new data keys are needed.
      const batch = lines(600, `fault-${code}`);
      const a = await appendNdjson(server.url, server.tokens.writer, batch, undefined, 'eu-west-1');
      assert.equal(a.first, size, `${what}: acknowledged (durable in the journal)`);
      const r = await waitFor(`${what}: /readyz reports ${code}`, async () => {
        const j = await readyz();
        return j.problems?.some((p) => p.log === 'eu-west-1' && p.code === code) ? j : undefined;
      }, 30_000, 100);
      assert.equal(r.status, 'degraded');
      const cp = await (await fetch(`${server.url}/logs/eu-west-1/checkpoint`, { headers: bearer(server.tokens.auditor) })).text();
      assert.ok(checkpointSize(cp) < size + 600, `${what}: not all integrated while the key is unusable`);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'the server stays up');
      off();
      size += 600;
      await waitForCheckpoint(server, 'eu-west-1', size, 60_000);
      const back: { record: string } = await getJson<{ record: string }>(server.url, server.tokens.auditor, `/v1/logs/eu-west-1/entries/${size - 1}`);
      assert.equal(back.record, batch[599], `${what}: the last acknowledged entry is in the log`);
      await waitFor('ready again', async () => ((await readyz()).status === 'ready' ? true : undefined), 30_000, 100);
    }
    assertRegionPinned(fake.requests);
    await server.stop();
    const v = await verifyJson(['--data', dataDir, '--trust-file', join(work, 'trust-2.json')], NO_PASS);
    assert.equal(v.code, 0, v.run.stderr + v.run.stdout);
    assert.equal(v.json.logs.find((l) => l.log === 'eu-west-1')!.size, size);
  });
});

describe('rotation in a KMS vault (log.rotate-keys with kmsKey)', () => {
  let h: Harness | undefined;
  const dir = join(work, 'rotate');
  after(async () => {
    await h?.close();
  });

  test('new bundles use the new KMS key, old ones keep opening (also after a restart); a key of another region is refused', { timeout: 120_000 }, async () => {
    const ring = await Keyring.createKms(join(dir, 'keyring.json'), { regions: { 'eu-west-1': EU }, vaultRegion: 'eu-west-1' });
    initVault(dir, { regions: ['eu-west-1'], regionMode: 'fixed', keyring: ring });
    h = await openHarness({ dataDir: dir });
    await append(h, records(300, 'old'), 'eu-west-1');
    const a = h.vault.actions.get('log.rotate-keys');
    assert.throws(() => a.validate({ log: 'eu-west-1', kmsKey: US }), (e: unknown) => isCustodyError(e, 'BAD_REQUEST') && /is in region us-east-1, not eu-west-1/.test((e as Error).message));
    assert.throws(() => a.validate({ log: 'eu-west-1', kmsKey: 'not a key!' }), (e: unknown) => isCustodyError(e, 'BAD_REQUEST'));
    assert.throws(() => a.validate({ log: 'eu-west-1', kmsKey: 7 }), (e: unknown) => isCustodyError(e, 'BAD_REQUEST'));
    assert.match(a.describe({ log: 'eu-west-1', kmsKey: 'alias/custody-eu-2' }), /new bundles use the AWS KMS key alias\/custody-eu-2/);
    const from = fake.requests.length;
    const res = await a.execute(a.validate({ log: 'eu-west-1', kmsKey: 'alias/custody-eu-2' }), CTX);
    assert.equal(res['kmsKey'], 'alias/custody-eu-2');
    await append(h, records(300, 'new'), 'eu-west-1'); // bundle 1 completes after the rotation; bundle 2 partial
    const gen = fake.requests.slice(from).filter((r) => r.op === 'GenerateDataKey' && ctx(r)['custody:origin']!.endsWith('/eu-west-1'));
    assert.ok(gen.length >= 2);
    for (const g of gen) assert.equal(g.body['KeyId'], 'alias/custody-eu-2', 'after the rotation the new key is asked');
    const entries = join(dir, 'logs', 'eu-west-1', 'tree', 'tile', 'entries');
    assert.equal(keyOfSealed(readFileSync(join(entries, '000'))), EU, 'bundle 0 names the old key');
    assert.equal(keyOfSealed(readFileSync(join(entries, '001'))), EU2, 'bundle 1, written after the rotation, names the new key (as KMS names it)');
    assert.equal(keyOfSealed(readFileSync(join(entries, '002.p', '88'))), EU2);
    const pub = JSON.parse(readFileSync(join(dir, 'keyring.json'), 'utf8')) as { logs: Record<string, { kmsKeys: Array<{ keyId: string }> }> };
    assert.deepEqual(pub.logs['eu-west-1']!.kmsKeys.map((k) => k.keyId), [EU, 'alias/custody-eu-2']);
    await h.stop();
    h = await openHarness({ dataDir: dir });
    for (const [i, want] of [[5, records(300, 'old')[5]], [550, records(300, 'new')[250]]] as const) {
      const r: { statusCode: number; body: string; json<T>(): T } = await h.app.inject({ method: 'GET', url: `/v1/logs/eu-west-1/entries/${i}`, headers: bearer(h.tokens.auditor) });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json<{ record: string }>().record, want);
    }
    const dec = fake.requests.filter((r) => r.op === 'Decrypt' && ctx(r)['custody:origin']?.endsWith('/eu-west-1') && ctx(r)['custody:bundle'] === '0');
    assert.equal(dec[dec.length - 1]!.body['KeyId'], EU, 'an old bundle is decrypted with the key its header names');
    assertRegionPinned(fake.requests);
  });
});
