/** The vault's witness flags: --witness name=url=vkey, --witnesses-file, --witness-policy. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Ed25519CosignatureSigner, Ed25519NoteSigner } from '@custody/verify';
import { parseWitnessArg, parseWitnessesFile, witnessSetFromFlags, WitnessSet } from '../../src/witness/client.js';
import { isCustodyError } from '../../src/errors.js';
import { cleanup, makeTempDir } from '../support/server.js';

const k1 = new Ed25519CosignatureSigner('w1.example', new Uint8Array(32).fill(1)).verifierKey;
const k2 = new Ed25519CosignatureSigner('w2.example', new Uint8Array(32).fill(2)).verifierKey;
const k1alias = new Ed25519CosignatureSigner('alias.example', new Uint8Array(32).fill(1)).verifierKey;
const logKey = new Ed25519NoteSigner('example.org/log', new Uint8Array(32).fill(3)).verifierKey;
const config = (fn: () => unknown): void => assert.throws(fn, (e: unknown) => isCustodyError(e, 'CONFIG'));

after(() => cleanup());

test('--witness parses name=url=vkey and url=vkey (name from the key)', () => {
  assert.deepEqual(parseWitnessArg(`one=https://w.example:8443/prefix/=${k1}`), { name: 'one', url: 'https://w.example:8443/prefix', vkey: k1 });
  assert.deepEqual(parseWitnessArg(`http://127.0.0.1:9/?a=b=${k2}`), { name: 'w2.example', url: 'http://127.0.0.1:9/?a=b', vkey: k2 });
});

test('bad --witness values are CONFIG errors: no key, a log key, a bad URL', () => {
  config(() => parseWitnessArg('just-a-name'));
  config(() => parseWitnessArg(`one=https://w.example=${logKey}`)); // type 0x01 cannot cosign
  config(() => parseWitnessArg(`one=ftp://w.example=${k1}`));
  config(() => parseWitnessArg(`one=not a url=${k1}`));
  config(() => parseWitnessArg('one=https://w.example=garbage+key'));
});

test('a witnesses file: one per line, comments and blank lines ignored', () => {
  const dir = makeTempDir('wfile');
  const f = join(dir, 'witnesses');
  writeFileSync(f, `# our witnesses\n\none=http://a.example=${k1}\n  two=http://b.example=${k2}  \n`);
  assert.deepEqual(parseWitnessesFile(`# x\none=http://a.example=${k1}\n`).map((w) => w.name), ['one']);
  const set = witnessSetFromFlags({ witnessesFile: f, witness: [] })!;
  assert.deepEqual(set.witnesses.map((w) => w.name), ['one', 'two']);
  assert.equal(set.policy, 2, 'default policy: all of them');
  config(() => witnessSetFromFlags({ witnessesFile: join(dir, 'missing') }));
});

test('the policy must be 1..distinct keys; no witnesses means no witnessing', () => {
  const a = { name: 'a', url: 'http://a.example', vkey: k1 };
  const b = { name: 'b', url: 'http://b.example', vkey: k2 };
  assert.equal(new WitnessSet([a, b], { policy: 1 }).policy, 1);
  config(() => new WitnessSet([a, b], { policy: 3 }));
  config(() => new WitnessSet([a, b], { policy: 0 }));
  config(() => new WitnessSet([a, { ...b, name: 'a' }]));
  // One key under two names is one witness: policy 2 cannot be met by it.
  config(() => new WitnessSet([a, { name: 'alias', url: 'http://c.example', vkey: k1alias }], { policy: 2 }));
  assert.equal(witnessSetFromFlags({}), undefined);
  config(() => witnessSetFromFlags({ witnessPolicy: 1 }));
});
