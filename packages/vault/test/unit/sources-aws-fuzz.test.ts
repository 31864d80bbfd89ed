/**
 * Hostile input for the CloudTrail, CloudTrail digest, AWS Config and CloudWatch Logs parsers:
 * random bytes, random JSON shaped like what each parser looks for, and real samples with bytes
 * flipped, cut out or inserted. Whatever comes in, `parse` either throws CustodyError
 * BAD_REQUEST (not this kind at all) or returns records that are byte-exact slices of the input
 * (or of a payload decoded from it) and errors with a position and a code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { join } from 'node:path';
import fc from 'fast-check';
import { cloudtrailParser, cloudtrailDigestParser } from '../../src/ingest/sources/cloudtrail.js';
import { configParser } from '../../src/ingest/sources/config.js';
import { cwlogsParser, parseCwLogsPayload } from '../../src/ingest/sources/cwlogs.js';
import { isCustodyError } from '../../src/errors.js';
import { MAX_RECORD_SIZE } from '../../src/log/entry.js';
import type { ParseResult, SourceParser } from '../../src/ingest/types.js';
import { ROOT } from '../support/server.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples');
const PARSERS: SourceParser[] = [cloudtrailParser, cloudtrailDigestParser, configParser, cwlogsParser];
const RUNS = 500;
/** What the runs reached, so a generator that never gets past the first check is noticed. */
const reached = { records: 0, errors: 0, refused: 0 };

function sample(rel: string): Buffer {
  const raw = readFileSync(join(SAMPLES, rel));
  return rel.endsWith('.gz') ? gunzipSync(raw) : raw;
}
const SEEDS = [
  'cloudtrail/loki_cloudtrail-log-file.json.gz',
  'cloudtrail/clo_cloudtrail_records.json',
  'cloudtrail/grycap_974349055189/974349055189_CloudTrail_sa-east-1_20180228T1730Z_i2Fpk1k9Ep9sd8xT.json.gz',
  'config/clo_config_history.json',
  'config/awslambdago_config_rule_invocation_event.json',
  'config/configurationitem_AWS_LAMBDA_FUNCTION.json',
  'cloudwatch-subscription/datadog_cwl_cloudtrail_4events.json',
  'cloudwatch-subscription/newrelic_cwl_vpcflow.json',
  'cloudwatch-subscription/sumologic_cwl_testevent_awslogs.json',
].map(sample);

/** Payloads a cwlogs input may carry in `"data":"<base64>"`, decoded here without the parser. */
function decodedPayloads(input: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (const m of input.toString('latin1').matchAll(/"data"\s*:\s*"([A-Za-z0-9+/=]*)"/g)) {
    const raw = Buffer.from(m[1]!, 'base64');
    out.push(raw);
    try {
      out.push(gunzipSync(raw, { maxOutputLength: 64 * 1024 * 1024 }));
    } catch {
      /* not gzip: the raw bytes are the candidate */
    }
  }
  return out;
}

function checkResult(what: string, r: ParseResult, haystacks: Buffer[]): void {
  assert.ok(Number.isInteger(r.ignored) && r.ignored >= 0, `${what}: ignored`);
  for (const rec of r.records) {
    assert.ok(Number.isInteger(rec.position) && rec.position >= 1, `${what}: record position ${rec.position}`);
    assert.ok(rec.bytes.length <= MAX_RECORD_SIZE, `${what}: record size`);
    assert.ok(haystacks.some((h) => h.indexOf(rec.bytes) >= 0), `${what}: record ${rec.position} is a slice of the input`);
    assert.doesNotThrow(() => JSON.parse(rec.bytes.toString('utf8')), `${what}: record ${rec.position} is JSON`);
    assert.equal(typeof rec.source, 'string');
    if (rec.attrs) for (const v of Object.values(rec.attrs)) assert.match(v, /^[\x21-\x7e]{1,256}$/, `${what}: attribute value`);
  }
  for (const e of r.errors) {
    assert.ok(Number.isInteger(e.position) && e.position >= 1, `${what}: error position ${e.position}`);
    assert.match(e.code, /^[A-Z][A-Z0-9_]*$/);
    assert.ok(e.error.length > 0);
  }
}

function check(parser: SourceParser, input: Buffer): void {
  const score = parser.detect!(input.subarray(0, 64 * 1024), { name: 'x' });
  assert.ok(score >= 0 && score <= 100, `${parser.name}: detect score ${score}`);
  let r: ParseResult;
  try {
    r = parser.parse(input, {});
  } catch (e) {
    assert.ok(isCustodyError(e, 'BAD_REQUEST'), `${parser.name} threw ${String(e)}`);
    reached.refused++;
    return;
  }
  reached.records += r.records.length;
  reached.errors += r.errors.length;
  checkResult(parser.name, r, parser === cwlogsParser ? [input, ...decodedPayloads(input)] : [input]);
}

// Keys and values each parser looks for, so random JSON reaches past the first checks.
const KEYS = [
  'Records', 'eventVersion', 'eventSource', 'eventName', 'eventID', 'eventTime', 'eventType', 'awsRegion', 'userIdentity', 'arn', 'userName',
  'responseElements', 'ConsoleLogin', 'errorCode', 'resources', 'ARN', 'requestParameters', 'bucketName', 'key', 'sourceIPAddress', 'insightDetails',
  'configurationItems', 'configurationItemCaptureTime', 'configurationItemStatus', 'resourceType', 'resourceId', 'configurationStateId', 'awsAccountId',
  'invokingEvent', 'configRuleName', 'configRuleArn', 'resultToken', 'configurationItem', 'newEvaluationResult',
  'detail-type', 'detail', 'source', 'id', 'region', 'time',
  'messageType', 'owner', 'logGroup', 'logStream', 'logEvents', 'timestamp', 'message', 'awslogs', 'data',
  'digestEndTime', 'logFiles', 'digestS3Object', 'digestS3Bucket',
];
const VALUES = [
  'DATA_MESSAGE', 'CONTROL_MESSAGE', 'AWS API Call via CloudTrail', 'Config Configuration Item Change', 'aws.config', 'aws:s3', 'signin.amazonaws.com',
  'ConsoleLogin', 'Success', 'Failure', 'AwsConsoleSignIn', '1.08', 'global', 'us-east-1', '10.0.0.1', '::1', '2024-03-01T10:00:00Z', '{"messageType":"ScheduledNotification"}',
  '2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 40 1709287200 1709287260 REJECT OK', 'AWSLogs/1/CloudTrail-Digest/eu-west-1/x', '{"eventVersion":"1.0","eventSource":"s.amazonaws.com","eventName":"X"}',
];
const leaf = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(...VALUES), fc.integer(), fc.constant(null));
const shaped: fc.Arbitrary<unknown> = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.dictionary(fc.constantFrom(...KEYS), tie('node'), { maxKeys: 6 }),
    fc.array(tie('node'), { maxLength: 4 }),
  ),
})).node;

/** Mostly the expected value, sometimes anything. */
const usually = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: leaf });
const word = fc.constantFrom('ConsoleLogin', 'CheckMfa', 'StopLogging', 'PutObject', 'OK', 'ResourceDeleted', 'x');
const ctEvent = fc.record(
  {
    eventVersion: usually(fc.constant('1.08')),
    eventSource: usually(fc.constantFrom('signin.amazonaws.com', 's3.amazonaws.com', 'aws:s3')),
    eventName: usually(word),
    eventID: usually(fc.string({ maxLength: 8 })),
    eventTime: usually(fc.constantFrom('2024-03-01T10:00:00Z', '2024-13-01T10:00:00Z')),
    awsRegion: usually(fc.constantFrom('us-east-1', 'global', '')),
    userIdentity: usually(fc.record({ arn: leaf, userName: leaf, principalId: leaf, invokedBy: leaf, accountId: leaf }, { requiredKeys: [] })),
    responseElements: usually(fc.dictionary(word, fc.constantFrom('Success', 'Failure', 1))),
    errorCode: leaf,
    sourceIPAddress: usually(fc.constantFrom('10.0.0.1', '::1', 'cloudtrail.amazonaws.com')),
    resources: usually(fc.array(fc.record({ ARN: leaf }, { requiredKeys: [] }), { maxLength: 2 })),
    requestParameters: usually(fc.dictionary(fc.constantFrom('bucketName', 'key', 'name', 'roleArn'), leaf)),
    insightDetails: shaped,
  },
  { requiredKeys: ['eventVersion', 'eventSource', 'eventName'] },
);
const configItem = fc.record(
  {
    configurationItemCaptureTime: usually(fc.constant('2024-03-01T10:00:00.123Z')),
    configurationItemStatus: usually(word),
    resourceType: usually(fc.constant('AWS::S3::Bucket')),
    resourceId: usually(fc.string({ maxLength: 6 })),
    configurationStateId: leaf,
    awsRegion: usually(fc.constantFrom('eu-west-1', 'global')),
    ARN: leaf,
    awsAccountId: leaf,
    configuration: shaped,
  },
  { requiredKeys: ['configurationItemCaptureTime', 'resourceType'] },
);
const ebOf = (detailType: string, detail: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.record({ 'detail-type': usually(fc.constant(detailType)), source: usually(fc.constantFrom('aws.cloudtrail', 'aws.config')), id: leaf, region: leaf, time: leaf, account: leaf, detail: usually(detail) }, { requiredKeys: ['detail-type', 'detail'] });
const logEvent = fc.record({ id: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), timestamp: fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 4 })), message: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom(...VALUES), shaped) }, { requiredKeys: [] });
const cwPayload = fc.record(
  { messageType: usually(fc.constantFrom('DATA_MESSAGE', 'CONTROL_MESSAGE', 'OTHER')), owner: usually(fc.string({ maxLength: 12 })), logGroup: usually(fc.constantFrom('/aws/vpc/flow-logs', 'a b', '/aws/lambda/f')), logStream: usually(fc.string({ maxLength: 12 })), logEvents: usually(fc.array(usually(logEvent), { maxLength: 5 })) },
  { requiredKeys: ['messageType'] },
);
const digest = fc.record({ digestEndTime: usually(fc.constant('2024-03-01T10:00:00Z')), logFiles: usually(fc.array(shaped, { maxLength: 2 })), digestS3Object: usually(fc.constantFrom('AWSLogs/1/CloudTrail-Digest/eu-west-1/x', 'y')), digestS3Bucket: leaf, awsAccountId: leaf }, { requiredKeys: ['digestEndTime', 'logFiles', 'digestS3Object'] });
/** Inputs each parser is meant for, with parts swapped for anything. */
const shapedInput: fc.Arbitrary<unknown> = fc.oneof(
  shaped,
  ctEvent,
  fc.record({ Records: fc.array(fc.oneof({ weight: 4, arbitrary: ctEvent }, { weight: 1, arbitrary: shaped }), { maxLength: 4 }) }),
  fc.array(fc.oneof(ctEvent, ebOf('AWS API Call via CloudTrail', ctEvent), shaped), { maxLength: 4 }),
  ebOf('AWS API Call via CloudTrail', ctEvent),
  configItem,
  fc.record({ fileVersion: leaf, configurationItems: fc.array(fc.oneof({ weight: 4, arbitrary: configItem }, { weight: 1, arbitrary: shaped }), { maxLength: 4 }) }),
  fc.record({ configRuleName: usually(word), configRuleArn: leaf, resultToken: leaf, accountId: leaf, invokingEvent: fc.oneof(fc.string({ maxLength: 20 }), fc.record({ messageType: leaf, configurationItem: usually(configItem), notificationCreationTime: leaf }, { requiredKeys: [] }).map((v) => JSON.stringify(v))) }, { requiredKeys: ['configRuleName', 'invokingEvent'] }),
  ebOf('Config Configuration Item Change', fc.record({ configurationItem: configItem, newEvaluationResult: shaped, messageType: leaf }, { requiredKeys: [] })),
  cwPayload,
  fc.array(fc.oneof(cwPayload, shaped), { maxLength: 3 }),
  digest,
);

const awslogsOf = (v: unknown, cut: number): string => {
  const b64 = gzipSync(Buffer.from(JSON.stringify(v) ?? 'null')).toString('base64');
  return JSON.stringify({ awslogs: { data: cut > 0 ? b64.slice(0, b64.length - cut) : b64 } });
};

test('random bytes: every parser answers with records and errors, or BAD_REQUEST', () => {
  fc.assert(
    fc.property(fc.constantFrom(...PARSERS), fc.uint8Array({ maxLength: 600 }), (parser, bytes) => check(parser, Buffer.from(bytes))),
    { numRuns: RUNS * 2 },
  );
  for (const p of PARSERS) for (const s of ['', ' ', '\n\n', '{', '[', '}', ']', 'null', '[]', '{}', '[[]]', '\uFEFF{}', '{"Records":[', '{"Records":[1,2]}']) check(p, Buffer.from(s));
});

test('random JSON shaped like CloudTrail, Config and CloudWatch Logs input', () => {
  Object.assign(reached, { records: 0, errors: 0, refused: 0 });
  fc.assert(
    fc.property(fc.constantFrom(...PARSERS), shapedInput, fc.constantFrom('whole', 'ndjson', 'pretty'), (parser, value, framing) => {
      let text: string;
      if (framing === 'ndjson' && Array.isArray(value)) text = value.map((v) => JSON.stringify(v) ?? 'null').join('\n');
      else text = JSON.stringify(value, null, framing === 'pretty' ? 2 : undefined) ?? 'null';
      check(parser, Buffer.from(text));
    }),
    { numRuns: RUNS * 3 },
  );
  assert.ok(reached.records > 50 && reached.errors > 0 && reached.refused > 0, `runs reached records, errors and refusals: ${JSON.stringify(reached)}`);
});

test('CloudWatch Logs: random payloads inside awslogs events, sometimes cut short', () => {
  Object.assign(reached, { records: 0, errors: 0, refused: 0 });
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.oneof({ weight: 4, arbitrary: cwPayload }, { weight: 1, arbitrary: shaped }), fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 6 }) })), { minLength: 1, maxLength: 4 }), fc.boolean(), (items, asArray) => {
      const units = items.map(([v, cut]) => awslogsOf(v, cut));
      const body = Buffer.from(asArray ? `[${units.join(',')}]` : units.join('\n'));
      check(cwlogsParser, body);
      for (const [v] of items) {
        const p = Buffer.from(JSON.stringify(v) ?? 'null');
        const r = parseCwLogsPayload(p, 9); // never throws, not even BAD_REQUEST
        checkResult('parseCwLogsPayload', r, [p]);
        for (const x of [...r.records, ...r.errors]) assert.equal(x.position, 9);
      }
    }),
    { numRuns: RUNS },
  );
  assert.ok(reached.records > 50 && reached.errors > 0, `runs reached records and errors: ${JSON.stringify(reached)}`);
});

test('real samples with bytes flipped, cut out, inserted or cut short', () => {
  Object.assign(reached, { records: 0, errors: 0, refused: 0 });
  const mutation = fc.record({ kind: fc.constantFrom('flip', 'delete', 'insert', 'truncate', 'dup'), at: fc.nat(), len: fc.nat({ max: 64 }), byte: fc.integer({ min: 0, max: 255 }) });
  fc.assert(
    fc.property(fc.constantFrom(...PARSERS), fc.nat({ max: SEEDS.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (parser, seed, muts) => {
      let b = SEEDS[seed]!;
      for (const m of muts) {
        const at = b.length === 0 ? 0 : m.at % b.length;
        if (m.kind === 'flip') {
          b = Buffer.from(b);
          if (b.length > 0) b[at] = m.byte;
        } else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.alloc(m.len % 8 + 1, m.byte), b.subarray(at)]);
        else if (m.kind === 'dup') b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]);
        else b = b.subarray(0, at);
      }
      check(parser, b);
    }),
    { numRuns: RUNS * 3 },
  );
  assert.ok(reached.records > 10 && reached.errors > 0 && reached.refused > 0, `runs reached records, errors and refusals: ${JSON.stringify(reached)}`);
});
