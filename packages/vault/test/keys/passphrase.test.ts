/**
 * A keyring protected by a passphrase (issue 6, key providers; docs/ENCRYPTION.md "Passphrase"):
 * `custody init --passphrase-file` seals the keyring under a key from scrypt; a real server
 * ingests, restarts with the passphrase and reads back; `custody verify --data` opens it; a
 * wrong or missing passphrase is refused with KEYRING_LOCKED (exit 2) and writes nothing;
 * rotation and new vault keys keep the file sealed; `custody keys passphrase` adds or changes
 * the passphrase atomically; a damaged or crafted keyring file is refused before scrypt runs.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, readdirSync, statSync, writeFileSync, lstatSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import { Keyring } from '../../src/crypto/keyring.js';
import { initVault } from '../../src/vault.js';
import { isCustodyError } from '../../src/errors.js';
import { appendNdjson, cleanup, getJson, makeTempDir, runCli, startServer, verifyJson, waitForCheckpoint, type ServerHandle } from '../support/server.js';

const PASS = 'correct horse battery staple 7';
const NEW_PASS = 'a brand new passphrase, longer 9';
const WRONG = 'correct horse battery staple 8';

const work = makeTempDir('keys-pp');
const file = (name: string, text: string): string => {
  const p = join(work, name);
  writeFileSync(p, text + '\n', { mode: 0o600 });
  return p;
};
const ppFile = file('pp', PASS);
const newFile = file('new', NEW_PASS);
const wrongFile = file('wrong', WRONG);
const shortFile = file('short', 'too short');
const dataDir = join(work, 'vault');
const keyringPath = join(dataDir, 'keyring.json');
/** The CLI without any passphrase in its environment (the test process may have one set). */
const NO_ENV = { CUSTODY_PASSPHRASE: '', CUSTODY_NEW_PASSPHRASE: '' };

after(() => cleanup());

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

/** Every file of the data directory and its SHA-256. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(walk(dir).map((p) => [relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex')]));
}

/** Every secret a keyring holds (32 bytes each): signing seeds, KEKs, blob-name keys, vault keys. */
function secretsOf(ring: Keyring): Buffer[] {
  const out: Buffer[] = [];
  for (const log of ring.logNames) {
    const k = ring.forLog(log).exportForWorker();
    out.push(k.signingSeed, k.blobNameKey, ...k.keks.map((x) => x.key));
  }
  for (const p of ring.vaultKeyPurposes) out.push(ring.vaultKey(p));
  return out;
}

/** No secret in `text` in any encoding a file could hold it in. */
function assertNoKeyMaterial(where: string, data: Buffer, secrets: Buffer[]): void {
  for (const s of secrets) {
    for (const form of [s.toString('base64'), s.toString('base64url'), s.toString('hex'), s.toString('base64').slice(0, 24)]) {
      assert.equal(data.includes(form), false, `${where} holds a key in the clear (${form.slice(0, 8)}…)`);
    }
    assert.equal(data.includes(s), false, `${where} holds a key's raw bytes`);
  }
}

async function withPassphrase<T>(p: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env['CUSTODY_PASSPHRASE'];
  process.env['CUSTODY_PASSPHRASE'] = p;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env['CUSTODY_PASSPHRASE'];
    else process.env['CUSTODY_PASSPHRASE'] = before;
  }
}

const lines = (n: number, tag: string): string[] => Array.from({ length: n }, (_, i) => JSON.stringify({ tag, i, msg: `passphrase test ${tag} ${i}` }));

describe('a passphrase-protected keyring', () => {
  let server: ServerHandle | undefined;
  after(async () => {
    await server?.stop().catch(() => undefined);
  });

  test('custody init --passphrase-file seals the keyring: version 2, scrypt parameters recorded, no key in the clear', async () => {
    const r = await runCli(['init', '--data', dataDir, '--regions', 'local', '--passphrase-file', ppFile, '--json'], NO_ENV);
    assert.equal(r.code, 0, r.stderr);
    const text = readFileSync(keyringPath);
    const j = JSON.parse(text.toString('utf8')) as { version: number; protection: string; kdf: { name: string; salt: string; N: number; r: number; p: number }; sections: Array<{ name: string }> };
    assert.equal(j.version, 2);
    assert.equal(j.protection, 'passphrase');
    assert.equal(j.kdf.name, 'scrypt');
    assert.ok(j.kdf.N >= 2 ** 15, `N = ${j.kdf.N}`);
    assert.equal(j.kdf.r, 8);
    assert.equal(j.kdf.p, 1);
    assert.equal(Buffer.from(j.kdf.salt, 'base64').length, 16);
    assert.equal(statSync(keyringPath).mode & 0o777, 0o600);
    for (const word of ['signingSeed', 'blobNameKey', 'keks', 'sqlite-custody']) assert.equal(text.includes(word), false, `${word} is not in the clear`);
    const ring = Keyring.load(keyringPath, { passphrase: PASS });
    assert.deepEqual(ring.logNames.sort(), ['audit', 'local']);
    const secrets = secretsOf(ring);
    assert.ok(secrets.length >= 7, `${secrets.length} secrets`);
    assertNoKeyMaterial('keyring.json', text, secrets);
  });

  test('serve with the passphrase: ingest, restart, read back; verify --data opens it; no file holds a key', { timeout: 120_000 }, async () => {
    server = await withPassphrase(PASS, () => startServer({ dataDir, checkpointIntervalMs: 20 }));
    const sent = lines(300, 'a');
    const a = await appendNdjson(server.url, server.tokens.writer, sent);
    assert.equal(a.count, 300);
    await waitForCheckpoint(server, 'local', 300);
    await server.stop();
    await withPassphrase(PASS, () => server!.launch());
    for (const i of [0, 5, 256, 299]) {
      const e: { record: string } = await getJson<{ record: string }>(server.url, server.tokens.auditor, `/v1/logs/local/entries/${i}`);
      assert.equal(e.record, sent[i]);
    }
    await server.stop();
    const v = await verifyJson(['--data', dataDir, '--trust-file', join(work, 'trust-a.json'), '--passphrase-file', ppFile], NO_ENV);
    assert.equal(v.code, 0, v.run.stderr);
    assert.equal(v.json.ok, true);
    assert.equal(v.json.logs.find((l) => l.log === 'local')!.size, 300);
    const secrets = secretsOf(Keyring.load(keyringPath, { passphrase: PASS }));
    for (const p of walk(dataDir)) assertNoKeyMaterial(relative(dataDir, p), readFileSync(p), secrets);
  });

  test('a wrong or missing passphrase is refused (KEYRING_LOCKED, exit 2) and nothing in the data directory changes', { timeout: 120_000 }, async () => {
    const before = snapshot(dataDir);
    const serve = await runCli(['serve', '--data', dataDir, '--port', '0'], { ...NO_ENV, CUSTODY_PASSPHRASE: WRONG }, 60_000);
    assert.equal(serve.code, 2, serve.stdout + serve.stderr);
    assert.match(serve.stderr, /The passphrase does not open the keyring .*keyring\.json.*\[KEYRING_LOCKED\]/);
    const none = await runCli(['logs', '--data', dataDir], NO_ENV);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /protected by a passphrase: give it with --passphrase-file.*\[KEYRING_LOCKED\]/);
    const verify = await runCli(['verify', '--json', '--data', dataDir, '--trust-file', join(work, 'trust-b.json'), '--passphrase-file', wrongFile], NO_ENV);
    assert.equal(verify.code, 2);
    assert.equal((JSON.parse(verify.stdout) as { error: { code: string } }).error.code, 'KEYRING_LOCKED');
    const rotate = await runCli(['keys', 'passphrase', '--data', dataDir, '--passphrase-file', wrongFile, '--new-passphrase-file', newFile], NO_ENV);
    assert.equal(rotate.code, 2);
    assert.match(rotate.stderr, /KEYRING_LOCKED/);
    assert.deepEqual(snapshot(dataDir), before, 'no file was written, changed or removed');
    for (const r of [serve, none, verify, rotate]) assert.equal((r.stdout + r.stderr).includes(PASS), false, 'the passphrase is never printed');
    assert.throws(() => Keyring.load(keyringPath, { passphrase: WRONG }), (e: unknown) => isCustodyError(e, 'KEYRING_LOCKED'), 'a wrong passphrase is checked even after the right one opened it in this process');
  });

  test('rotation and new vault keys re-seal the keyring; it still opens with the passphrase and holds them', () => {
    const ring = Keyring.load(keyringPath, { passphrase: PASS });
    const kek = ring.rotateKek('local');
    const vk = ring.vaultKey('h1-test-purpose');
    const text = readFileSync(keyringPath);
    assert.equal((JSON.parse(text.toString('utf8')) as { protection: string }).protection, 'passphrase');
    assertNoKeyMaterial('keyring.json after rotation', text, [kek.key, vk, ...secretsOf(ring)]);
    assert.equal(text.includes('h1-test-purpose'), false, 'even the purpose names are sealed');
    assert.deepEqual(readdirSync(dataDir).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left');
    const again = Keyring.load(keyringPath, { passphrase: PASS });
    assert.ok(again.forLog('local').lookup(kek.id).key.equals(kek.key));
    assert.ok(again.vaultKey('h1-test-purpose').equals(vk));
    assert.equal(again.forLog('local').activeKek.id, kek.id);
  });

  test('custody keys passphrase: a too-short new one and a running server are refused; the change works, the old one stops', { timeout: 120_000 }, async () => {
    const before = readFileSync(keyringPath);
    const short = await runCli(['keys', 'passphrase', '--data', dataDir, '--passphrase-file', ppFile, '--new-passphrase-file', shortFile], NO_ENV);
    assert.equal(short.code, 2);
    assert.match(short.stderr, /at least 12 characters.*\[BAD_REQUEST\]/);
    await withPassphrase(PASS, () => server!.launch());
    const busy = await runCli(['keys', 'passphrase', '--data', dataDir, '--passphrase-file', ppFile, '--new-passphrase-file', newFile], NO_ENV);
    assert.equal(busy.code, 2, 'refused while the server holds the data directory');
    assert.match(busy.stderr, /Another Custody server \(pid [0-9]+\) is using .*\[CONFIG\]/);
    await server!.stop();
    assert.ok(readFileSync(keyringPath).equals(before), 'nothing written');

    const ok = await runCli(['keys', 'passphrase', '--data', dataDir, '--passphrase-file', ppFile, '--new-passphrase-file', newFile, '--json'], NO_ENV);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { changed: string }).changed, 'passphrase changed');
    const salt = (p: Buffer | string): string => (JSON.parse(p.toString()) as { kdf: { salt: string } }).kdf.salt;
    assert.notEqual(salt(readFileSync(keyringPath)), salt(before), 'a new salt');
    const old = await runCli(['logs', '--data', dataDir, '--passphrase-file', ppFile], NO_ENV);
    assert.equal(old.code, 2);
    assert.match(old.stderr, /KEYRING_LOCKED/);
    const now = await runCli(['logs', '--data', dataDir, '--json', '--passphrase-file', newFile], NO_ENV);
    assert.equal(now.code, 0, now.stderr);
    const ring = Keyring.load(keyringPath, { passphrase: NEW_PASS });
    assert.equal(ring.forLog('local').activeKek.id, 2, 'the rotated KEK survived the change');
    // The data is still readable under the new passphrase.
    await withPassphrase(NEW_PASS, () => server!.launch());
    const e = await getJson<{ record: string }>(server!.url, server!.tokens.auditor, '/v1/logs/local/entries/7');
    assert.equal(e.record, lines(300, 'a')[7]);
    await server!.stop();
  });

  test('a version-1 keyring (in the clear) still opens, and keys passphrase protects it', async () => {
    const dir = join(work, 'plain');
    Keyring.usePassphrase(undefined);
    const saved = process.env['CUSTODY_PASSPHRASE'];
    delete process.env['CUSTODY_PASSPHRASE'];
    try {
      initVault(dir, { regions: ['local'] });
    } finally {
      if (saved !== undefined) process.env['CUSTODY_PASSPHRASE'] = saved;
    }
    const plain = JSON.parse(readFileSync(join(dir, 'keyring.json'), 'utf8')) as { version: number; logs: Record<string, unknown> };
    assert.equal(plain.version, 1);
    assert.ok(plain.logs['local']);
    const seed = Keyring.load(join(dir, 'keyring.json')).forLog('local').signingSeed;
    const r = await runCli(['keys', 'passphrase', '--data', dir, '--new-passphrase-file', newFile, '--json'], NO_ENV);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { changed: string }).changed, 'passphrase added');
    const text = readFileSync(join(dir, 'keyring.json'));
    assert.equal((JSON.parse(text.toString()) as { version: number }).version, 2);
    assertNoKeyMaterial('converted keyring', text, [seed]);
    assert.ok(Keyring.load(join(dir, 'keyring.json'), { passphrase: NEW_PASS }).forLog('local').signingSeed.equals(seed));
    const logs = await runCli(['logs', '--data', dir, '--passphrase-file', newFile], NO_ENV);
    assert.equal(logs.code, 0, logs.stderr);
  });

  test('a damaged or crafted keyring is refused: costly or weak scrypt parameters before scrypt runs, altered parts by authentication', () => {
    const good = JSON.parse(readFileSync(keyringPath, 'utf8')) as Record<string, unknown> & { kdf: Record<string, unknown>; sections: Array<Record<string, string>> };
    const variant = (name: string, change: (j: typeof good) => unknown): string => {
      const j = structuredClone(good);
      const out = change(j) ?? j;
      const p = join(work, `crafted-${name}.json`);
      writeFileSync(p, typeof out === 'string' ? out : JSON.stringify(out));
      return p;
    };
    const cases: Array<[string, (j: typeof good) => unknown, string]> = [
      ['huge-N', (j) => void (j.kdf['N'] = 2 ** 30), 'KEYRING'],
      ['weak-N', (j) => void (j.kdf['N'] = 2 ** 10), 'KEYRING'],
      ['odd-N', (j) => void (j.kdf['N'] = 40000), 'KEYRING'],
      ['huge-r', (j) => void (j.kdf['r'] = 1e9), 'KEYRING'],
      ['short-salt', (j) => void (j.kdf['salt'] = 'AAAA'), 'KEYRING'],
      ['no-sections', (j) => void (j.sections = []), 'KEYRING'],
      ['not-json', () => '{"version":2,', 'KEYRING'],
      ['version-3', (j) => void (j['version'] = 3), 'KEYRING'],
      ['flipped-ciphertext', (j) => {
        const ct = Buffer.from(j.sections[0]!['ct']!, 'base64');
        ct[10]! ^= 1;
        j.sections[0]!['ct'] = ct.toString('base64');
      }, 'KEYRING_LOCKED'],
      ['other-id', (j) => void (j['id'] = '0'.repeat(32)), 'KEYRING_LOCKED'],
      ['swapped-tag', (j) => void (j.sections[0]!['tag'] = Buffer.alloc(16).toString('base64')), 'KEYRING_LOCKED'],
    ];
    copyFileSync(keyringPath, join(work, 'crafted-control.json'));
    assert.ok(Keyring.load(join(work, 'crafted-control.json'), { passphrase: NEW_PASS }).has('local'), 'the unchanged copy opens');
    for (const [name, change, code] of cases) {
      const t0 = Date.now();
      assert.throws(() => Keyring.load(variant(name, change), { passphrase: NEW_PASS }), (e: unknown) => isCustodyError(e, code as 'KEYRING'), name);
      assert.ok(Date.now() - t0 < 5_000, `${name} was refused quickly`);
    }
  });
});
