/**
 * The digest format readers on hostile input (fast-check): whatever the bytes, metadata or keys
 * file, the answer is a parsed value or a named error — DigestFormatError for a digest, an
 * { error } for signature metadata, CustodyError BAD_REQUEST for a keys file — never a crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { DigestFormatError, parseDigestFile, parseDigestKey, parseLogKey, parsePublicKeysText, signatureFromMetadata, signatureFromSidecar, signingString } from '../../src/cloudtrail/index.js';
import { CustodyError } from '../../src/errors.js';

const VALID = {
  awsAccountId: '111122223333',
  digestStartTime: '2015-08-17T14:01:31Z',
  digestEndTime: '2015-08-17T15:01:31Z',
  digestS3Bucket: 'amzn-s3-demo-bucket',
  digestS3Object: 'AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz',
  digestPublicKeyFingerprint: '31e8b5433410dfb61a9dc45cc65b22ff',
  digestSignatureAlgorithm: 'SHA256withRSA',
  newestEventTime: '2015-08-17T14:52:27Z',
  oldestEventTime: '2015-08-17T14:42:27Z',
  previousDigestS3Bucket: 'amzn-s3-demo-bucket',
  previousDigestS3Object: 'AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T140131Z.json.gz',
  previousDigestHashValue: '97fb791cf91ffc440d274f8190dbdd9aa09c34432aba82739df18b6d3c13df2d',
  previousDigestHashAlgorithm: 'SHA-256',
  previousDigestSignature: '50887ccffad4c002b97caa37cc9dc626e3c680207d41d27fa5835458e066e0d3',
  logFiles: [{ s3Bucket: 'amzn-s3-demo-bucket', s3Object: 'AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz', hashValue: '9bb6196fc6b84d6f075a56548feca262bd99ba3c2de41b618e5b6e22c1fc71f6', hashAlgorithm: 'SHA-256', newestEventTime: '2015-08-17T14:52:27Z', oldestEventTime: '2015-08-17T14:42:27Z' }],
};

function parsesOrNames(bytes: Uint8Array): void {
  try {
    parseDigestFile(bytes);
  } catch (e) {
    if (!(e instanceof DigestFormatError)) throw e;
    assert.ok(e.message.length > 0);
  }
}

test('the documented example digest parses; its fields and keys read as AWS lays them out', () => {
  const p = parseDigestFile(gzipSync(JSON.stringify(VALID)));
  assert.equal(p.digest.logFiles.length, 1);
  assert.equal(p.digest.previousDigestHashValue, VALID.previousDigestHashValue);
  assert.match(p.sha256, /^[0-9a-f]{64}$/);
  const k = parseDigestKey(VALID.digestS3Object)!;
  assert.deepEqual([k.account, k.region, k.trail, k.homeRegion, new Date(k.endMs).toISOString()], ['111122223333', 'us-east-2', 'your-trail-name', 'us-east-2', '2015-08-17T15:01:31.000Z']);
  assert.equal(parseDigestKey('p/AWSLogs/o-abcdefghij/111122223333/CloudTrail-Digest/eu-west-1/2024/03/01/111122223333_CloudTrail-Digest_eu-west-1_my_trail_name_us-east-1_20240301T100000Z.json.gz')!.trail, 'my_trail_name');
  assert.equal(parseLogKey(VALID.logFiles[0]!.s3Object)!.digestBase, 'AWSLogs/111122223333/CloudTrail-Digest/us-east-2/');
  assert.equal(signingString({ ...VALID, previousDigestSignature: null }, 'ab'), `2015-08-17T15:01:31Z\namzn-s3-demo-bucket/${VALID.digestS3Object}\nab\nnull`);
});

test('any bytes: parsed or a named DigestFormatError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (b) => parsesOrNames(b)), { numRuns: 500 });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (b) => parsesOrNames(gzipSync(b))), { numRuns: 300 });
});

test('any JSON, and the example with any field replaced by any value: parsed or a named DigestFormatError', () => {
  fc.assert(fc.property(fc.jsonValue(), (v) => parsesOrNames(gzipSync(JSON.stringify(v)))), { numRuns: 300 });
  const fields = Object.keys(VALID);
  fc.assert(
    fc.property(fc.constantFrom(...fields, 'logFiles.0.hashValue', 'logFiles.0.s3Object', 'logFiles.0'), fc.jsonValue(), fc.boolean(), (field, value, remove) => {
      const d = structuredClone(VALID) as Record<string, unknown>;
      const [a, i, b] = field.split('.');
      const target = (b === undefined && i !== undefined ? d[a!] : b !== undefined ? (d[a!] as Array<Record<string, unknown>>)[Number(i)] : d) as Record<string, unknown>;
      const name = b ?? i ?? a!;
      if (remove) delete target[name];
      else target[name] = value;
      parsesOrNames(gzipSync(JSON.stringify(d)));
    }),
    { numRuns: 500 },
  );
});

test('any metadata or sidecar: a signature or an { error } sentence', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (m) => {
      const r = signatureFromMetadata(m);
      assert.ok('error' in r ? r.error.length > 0 : /^[0-9a-f]+$/.test(r.signature));
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.string(), (t) => {
      const r = signatureFromSidecar(t);
      assert.ok('error' in r || typeof r.signature === 'string');
    }),
    { numRuns: 300 },
  );
  assert.deepEqual(signatureFromMetadata({ 'X-Amz-Meta-Signature': 'ABCD', 'x-amz-meta-signature-algorithm': 'SHA256withRSA' }), { signature: 'abcd', algorithm: 'SHA256withRSA' });
});

test('any keys file: keys or a BAD_REQUEST naming the file', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)), fc.array(fc.record({ Fingerprint: fc.string(), Value: fc.string() })).map((v) => JSON.stringify({ PublicKeyList: v }))), (text) => {
      try {
        parsePublicKeysText(text, 'keys.json');
      } catch (e) {
        assert.ok(e instanceof CustodyError && e.code === 'BAD_REQUEST' && e.message.includes('keys.json'), String(e));
      }
    }),
    { numRuns: 400 },
  );
});
