/**
 * The CloudTrail, AWS Config and CloudWatch Logs source parsers against every real sample in
 * ../shared/samples/{cloudtrail,config,cloudwatch-subscription}: detection, zero errors, a record
 * count made here with plain JSON.parse (and the count SOURCES.md states), byte-exact slices
 * that parse to the same element, regions and dedupe keys — then the edge cases a hostile or
 * broken delivery brings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { join, relative } from 'node:path';
import { detectSource, sourceParser } from '../../src/ingest/sources/index.js';
import { cloudtrailParser, cloudtrailDigestParser, cloudtrailFields } from '../../src/ingest/sources/cloudtrail.js';
import { configParser } from '../../src/ingest/sources/config.js';
import { cwlogsParser, parseCwLogsPayload } from '../../src/ingest/sources/cwlogs.js';
import { eventBridgeDetail, isoTime, severityName, str, attrValue, arnRegion } from '../../src/ingest/sources/aws-common.js';
import { isCustodyError } from '../../src/errors.js';
import type { ParseResult, ParsedRecord } from '../../src/ingest/types.js';
import { ROOT } from '../support/server.js';

const SAMPLES = join(ROOT, '..', 'shared', 'samples');
type Obj = Record<string, unknown>;

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}
const files = (dir: string): string[] => walk(join(SAMPLES, dir)).map((p) => relative(SAMPLES, p));
const load = (rel: string): Buffer => {
  const raw = readFileSync(join(SAMPLES, rel));
  return rel.endsWith('.gz') ? gunzipSync(raw) : raw;
};
const isFirehoseBody = (rel: string): boolean => /\/firehose_http_/.test(rel);

/** The count SOURCES.md's "contents" column states for a file, when it states one. */
const sourcesMd = readFileSync(join(SAMPLES, 'SOURCES.md'), 'utf8');
function statedCount(rel: string): number | undefined {
  const row = sourcesMd.split('\n').find((l) => l.startsWith(`| \`${rel}\` |`));
  assert.ok(row, `SOURCES.md has a row for ${rel}`);
  const contents = row.split('|')[7]!.trim();
  const nested = /->\s*([\d,]+)\s+logEvents/.exec(contents);
  if (nested) return Number(nested[1]!.replace(/,/g, ''));
  const m = /^([\d,]+)\s+(records|configurationItems|logEvents|configuration item|rule-invocation event)/.exec(contents);
  return m ? Number(m[1]!.replace(/,/g, '')) : undefined;
}

/** Every record is a byte-exact slice of one of the haystacks. */
function assertSlices(rel: string, records: ParsedRecord[], haystacks: Buffer[]): void {
  for (const r of records) assert.ok(haystacks.some((h) => h.indexOf(r.bytes) >= 0), `${rel} record ${r.position}: a byte-exact slice of the input`);
}

function assertClean(rel: string, r: ParseResult, expected: number): void {
  assert.deepEqual(r.errors, [], `${rel}: no errors`);
  assert.equal(r.records.length, expected, `${rel}: ${expected} records`);
  const stated = statedCount(rel);
  if (stated !== undefined) assert.equal(r.records.length, stated, `${rel}: SOURCES.md states ${stated}`);
}

// ---- CloudTrail ---------------------------------------------------------------------------

test('every CloudTrail sample: detected, parsed with zero errors, one byte-exact record per Records element', () => {
  const rels = files('cloudtrail');
  assert.equal(rels.length, 38);
  const grycapRegions = new Set<string>();
  let total = 0;
  for (const rel of rels) {
    const body = load(rel);
    const name = rel.split('/').pop()!;
    assert.equal(detectSource(body, { name: rel }), 'cloudtrail', `${rel}: detected by name and content`);
    assert.equal(detectSource(body, {}), 'cloudtrail', `${rel}: detected by content alone`);
    const elements = (JSON.parse(body.toString('utf8')) as { Records: Obj[] }).Records;
    const r = cloudtrailParser.parse(body, { name });
    assertClean(rel, r, elements.length);
    assertSlices(rel, r.records, [body]);
    r.records.forEach((rec, i) => {
      const el = elements[i]!;
      assert.equal(rec.position, i + 1);
      assert.deepEqual(JSON.parse(rec.bytes.toString('utf8')), el, `${rel} record ${i + 1}: the same event as Records[${i}]`);
      assert.equal(rec.source, 'aws.cloudtrail');
      assert.equal(rec.region, el.awsRegion, `${rel} record ${i + 1}: region`);
      assert.equal(rec.dedupeKey, `aws.cloudtrail:${el.eventID as string}`);
      assert.equal(rec.fields.action, `${el.eventSource as string}:${el.eventName as string}`);
      assert.equal(rec.fields.outcome, el.errorCode || (el.responseElements as Obj | null)?.[el.eventName as string] === 'Failure' ? 'failure' : 'success');
      const signIn = el.eventType === 'AwsConsoleSignIn' || el.eventSource === 'signin.amazonaws.com';
      assert.equal(rec.fields.ocsfClass, signIn ? 3002 : 6003, `${rel} record ${i + 1}: OCSF class`);
      assert.equal(rec.fields.ocsfClassName, signIn ? 'Authentication' : 'API Activity');
      assert.match(rec.fields.time!, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      assert.equal(Date.parse(rec.fields.time!), Date.parse(el.eventTime as string));
      if (rel.includes('grycap_974349055189/')) grycapRegions.add(rec.region!);
    });
    total += r.records.length;
  }
  assert.deepEqual([...grycapRegions].sort(), ['sa-east-1', 'us-east-1']);
  assert.equal(total, 757, 'all CloudTrail samples together');
});

test('CloudTrail fields: a console sign-in, a denied call, an S3 data event by a service', () => {
  const signin = cloudtrailParser.parse(load('cloudtrail/grycap_974349055189/974349055189_CloudTrail_sa-east-1_20180228T1730Z_i2Fpk1k9Ep9sd8xT.json.gz'), {});
  const [mfa, login] = signin.records;
  assert.equal(mfa!.fields.action, 'signin.amazonaws.com:CheckMfa');
  assert.equal(mfa!.fields.actor, 'alucloud147', 'no ARN in userIdentity: the user name');
  assert.deepEqual(login!.fields, {
    time: '2018-02-28T17:27:40.000Z',
    account: '974349055189',
    region: 'sa-east-1',
    actor: 'arn:aws:iam::974349055189:user/alucloud147',
    action: 'signin.amazonaws.com:ConsoleLogin',
    outcome: 'success',
    srcIp: '83.57.141.36',
    ocsfClass: 3002,
    ocsfClassName: 'Authentication',
    extra: { eventType: 'AwsConsoleSignIn', userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10.13; rv:58.0) Gecko/20100101 Firefox/58.0', eventID: '326aa9bc-abfd-4cdf-a877-88fc0df83e5d' },
  });

  const failed = cloudtrailParser.parse(load('cloudtrail/grycap_974349055189/974349055189_CloudTrail_us-east-1_20140927T0455Z_xnu5Iax4u2p2U3Zg.json.gz'), {}).records[0]!;
  assert.equal(failed.fields.action, 'signin.amazonaws.com:ConsoleLogin');
  assert.equal(failed.fields.outcome, 'failure', 'responseElements.ConsoleLogin = Failure');
  assert.equal(failed.fields.srcIp, '83.37.50.95');

  const denied = cloudtrailParser.parse(load('cloudtrail/grycap_974349055189/974349055189_CloudTrail_sa-east-1_20180326T1545Z_mf3VHz5EOVxkx7j9.json.gz'), {}).records[0]!;
  assert.equal(denied.fields.action, 'cloudtrail.amazonaws.com:GetTrailStatus');
  assert.equal(denied.fields.outcome, 'failure');
  assert.equal(denied.fields.extra?.errorCode, 'AccessDenied');
  assert.equal(denied.fields.actor, 'arn:aws:iam::974349055189:user/gmolto');
  assert.equal(denied.fields.ocsfClass, 6003);

  const s3 = cloudtrailParser.parse(load('cloudtrail/cloudgrep_cloudtrail_singleline.json'), {}).records[0]!;
  assert.equal(s3.fields.actor, 'cloudtrail.amazonaws.com', 'an AWS service acts: invokedBy');
  assert.equal(s3.fields.srcIp, undefined, 'sourceIPAddress names a service, not an IP');
  assert.match(s3.fields.resource!, /^arn:aws:s3:::some-bucket\/AWSLogs\/001\/CloudTrail\//, 'the first resources[].ARN');

  const sg = cloudtrailParser.parse(load('cloudtrail/grycap_974349055189/974349055189_CloudTrail_us-east-1_20140926T1135Z_lDgzv42MdNbD3Utg.json.gz'), {}).records[0]!;
  assert.equal(sg.fields.action, 'ec2.amazonaws.com:DeleteSecurityGroup');
  assert.equal(sg.fields.resource, 'sg-be0d7ed4', 'requestParameters.groupId when there is no resources[]');
});

const ctEvent = (over: Obj = {}): Obj => ({
  eventVersion: '1.08',
  userIdentity: { type: 'IAMUser', arn: 'arn:aws:iam::111122223333:user/alice', accountId: '111122223333', userName: 'alice' },
  eventTime: '2024-03-01T10:00:00Z',
  eventSource: 'cloudtrail.amazonaws.com',
  eventName: 'StopLogging',
  awsRegion: 'eu-west-1',
  sourceIPAddress: '203.0.113.7',
  userAgent: 'aws-cli/2',
  requestParameters: { name: 'org-trail' },
  responseElements: null,
  eventID: 'e-1',
  eventType: 'AwsApiCall',
  recipientAccountId: '111122223333',
  ...over,
});

test('CloudTrail framings: minified and pretty files, an empty file, a single event, NDJSON, an array', () => {
  const empty = cloudtrailParser.parse(Buffer.from('{"Records":[]}'), {});
  assert.deepEqual(empty, { records: [], errors: [], ignored: 0 });
  assert.equal(detectSource(Buffer.from('{"Records":[]}'), {}), 'cloudtrail');
  assert.equal(detectSource(Buffer.from(' \n{ "Records" : [ ] }\n'), {}), 'cloudtrail');

  const pretty = Buffer.from(`\uFEFF${JSON.stringify({ Records: [ctEvent(), ctEvent({ eventID: 'e-2' })] }, null, 4)}\n`);
  const p = cloudtrailParser.parse(pretty, {});
  assert.equal(p.records.length, 2);
  assert.deepEqual(JSON.parse(p.records[1]!.bytes.toString()), ctEvent({ eventID: 'e-2' }));
  assertSlices('pretty', p.records, [pretty]);
  assert.equal(p.records[0]!.fields.action, 'cloudtrail.amazonaws.com:StopLogging');
  assert.equal(p.records[0]!.fields.resource, 'org-trail');

  const single = Buffer.from(JSON.stringify(ctEvent()));
  assert.equal(detectSource(single, {}), 'cloudtrail');
  const s = cloudtrailParser.parse(single, {});
  assert.equal(s.records.length, 1);
  assert.ok(s.records[0]!.bytes.equals(single));
  assert.equal(s.records[0]!.dedupeKey, 'aws.cloudtrail:e-1');

  const nd = Buffer.from([JSON.stringify(ctEvent()), '{"eventVersion": broken', '', JSON.stringify(ctEvent({ eventID: 'e-3' }))].join('\n'));
  assert.equal(detectSource(nd, {}), 'cloudtrail');
  const n = cloudtrailParser.parse(nd, {});
  assert.deepEqual(n.records.map((r) => r.position), [1, 4], 'position = line number');
  assert.deepEqual(n.errors.map((e) => [e.position, e.code]), [[2, 'BAD_JSON']]);
  assert.equal(n.ignored, 1, 'the blank line');

  const arr = Buffer.from(JSON.stringify([ctEvent(), { hello: 'world' }, ctEvent({ eventID: 'e-4' })]));
  const a = cloudtrailParser.parse(arr, {});
  assert.deepEqual(a.records.map((r) => r.position), [1, 3]);
  assert.deepEqual(a.errors.map((e) => [e.position, e.code]), [[2, 'NOT_CLOUDTRAIL']]);
});

test('CloudTrail: a truncated file is one BAD_JSON error; a record over 1 MiB is refused and its neighbours kept', () => {
  for (const rel of ['cloudtrail/loki_cloudtrail-log-file.json.gz', 'cloudtrail/grycap_sample-cloudtrail-event.json']) {
    const body = load(rel);
    const cut = body.subarray(0, Math.floor(body.length / 2));
    const r = cloudtrailParser.parse(cut, {});
    assert.equal(r.records.length, 0, `${rel} cut short: nothing stored`);
    assert.deepEqual(r.errors.map((e) => [e.position, e.code]), [[1, 'BAD_JSON']]);
    assert.match(r.errors[0]!.error, /whole file/);
  }
  const big = ctEvent({ eventID: 'big', userAgent: 'x'.repeat(1024 * 1024 + 10) });
  const body = Buffer.from(JSON.stringify({ Records: [ctEvent(), big, ctEvent({ eventID: 'e-9' })] }));
  const r = cloudtrailParser.parse(body, {});
  assert.deepEqual(r.records.map((x) => x.position), [1, 3]);
  assert.deepEqual(r.errors.map((e) => [e.position, e.code]), [[2, 'RECORD_TOO_LARGE']]);
  assertSlices('big', r.records, [body]);

  // One element that is not UTF-8 is refused alone.
  const good = Buffer.from(JSON.stringify(ctEvent()));
  const bad = Buffer.concat([Buffer.from('{"eventVersion":"1.08","eventName":"X","userAgent":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
  const mixed = Buffer.concat([Buffer.from('{"Records":['), good, Buffer.from(','), bad, Buffer.from(']}')]);
  const m = cloudtrailParser.parse(mixed, {});
  assert.deepEqual(m.records.map((x) => x.position), [1]);
  assert.deepEqual(m.errors.map((e) => [e.position, e.code]), [[2, 'BAD_ENCODING']]);
});

test('CloudTrail: other JSON is refused whole with BAD_REQUEST; S3 event notifications are not CloudTrail', () => {
  const s3n = Buffer.from(JSON.stringify({ Records: [{ eventVersion: '2.1', eventSource: 'aws:s3', eventName: 'ObjectCreated:Put', awsRegion: 'us-east-1', eventTime: '2024-01-01T00:00:00Z' }] }));
  assert.notEqual(detectSource(s3n, {}), 'cloudtrail');
  assert.equal(cloudtrailParser.detect!(s3n, {}), 0);
  for (const body of [s3n, Buffer.from('{"foo":1}'), Buffer.from('[1,2,3]'), Buffer.from('"text"'), Buffer.from('{"Records":5}')]) {
    assert.throws(() => cloudtrailParser.parse(body, {}), (e: unknown) => isCustodyError(e, 'BAD_REQUEST'), body.toString().slice(0, 40));
  }
});

test('CloudTrail through EventBridge: the whole event is the record, the fields come from detail', () => {
  const detail = ctEvent({ eventID: 'eb-1', awsRegion: 'ap-south-1' });
  const ev = { version: '0', id: 'ebid-1', 'detail-type': 'AWS API Call via CloudTrail', source: 'aws.cloudtrail', account: '111122223333', time: '2024-03-01T10:00:01Z', region: 'ap-south-1', resources: [], detail };
  const body = Buffer.from(JSON.stringify(ev, null, 2));
  assert.equal(cloudtrailParser.detect!(body, {}), 85);
  assert.equal(detectSource(body, {}), 'cloudtrail');
  const r = cloudtrailParser.parse(body, {});
  assert.equal(r.records.length, 1);
  assert.ok(r.records[0]!.bytes.equals(body), 'the stored record is the whole event');
  assert.equal(r.records[0]!.dedupeKey, 'aws.cloudtrail:eb-1', 'the CloudTrail eventID: the same event from S3 is a duplicate');
  assert.equal(r.records[0]!.region, 'ap-south-1');
  assert.equal(r.records[0]!.fields.action, 'cloudtrail.amazonaws.com:StopLogging');
  assert.equal(r.records[0]!.fields.actor, 'arn:aws:iam::111122223333:user/alice');

  const signIn = { ...ev, 'detail-type': 'AWS Console Sign In via CloudTrail', detail: ctEvent({ eventSource: 'signin.amazonaws.com', eventName: 'ConsoleLogin', eventType: 'AwsConsoleSignIn', responseElements: { ConsoleLogin: 'Failure' } }) };
  const s = cloudtrailParser.parse(Buffer.from(JSON.stringify(signIn)), {}).records[0]!;
  assert.equal(s.fields.ocsfClass, 3002);
  assert.equal(s.fields.outcome, 'failure');

  // NDJSON of EventBridge events, as an archive or a Firehose-to-S3 stream writes them.
  const nd = Buffer.from(`${JSON.stringify(ev)}\n${JSON.stringify(signIn)}\n`);
  assert.equal(cloudtrailParser.parse(nd, {}).records.length, 2);
});

test('CloudTrail detection by S3 key and file name', () => {
  const body = Buffer.from('{}');
  assert.equal(cloudtrailParser.detect!(body, { name: 'AWSLogs/111122223333/CloudTrail/eu-west-1/2024/03/01/x.json.gz' }), 95);
  assert.equal(cloudtrailParser.detect!(body, { name: 'AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/2024/03/01/x.json.gz' }), 95);
  assert.equal(cloudtrailParser.detect!(body, { name: '111122223333_CloudTrail_eu-west-1_20240301T1005Z_AbCd1234.json.gz' }), 95);
  assert.equal(cloudtrailParser.detect!(body, { name: 'AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2024/03/01/x.json.gz' }), 0);
  assert.equal(cloudtrailParser.detect!(body, { name: 'notes.json' }), 0);
});

test('CloudTrail digest files: one record, routed to the region in its key, refused when not a digest', () => {
  // The field set of aws-sources.md ("CloudTrail digest files"); no real digest is published.
  const digest = {
    awsAccountId: '111122223333',
    digestStartTime: '2024-03-01T09:00:00Z',
    digestEndTime: '2024-03-01T10:00:00Z',
    digestS3Bucket: 'trail-bucket',
    digestS3Object: 'AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2024/03/01/111122223333_CloudTrail-Digest_eu-west-1_org_eu-west-1_20240301T100000Z.json.gz',
    digestPublicKeyFingerprint: 'a'.repeat(32),
    digestSignatureAlgorithm: 'SHA256withRSA',
    newestEventTime: '2024-03-01T09:59:00Z',
    oldestEventTime: '2024-03-01T09:00:10Z',
    previousDigestS3Bucket: null,
    previousDigestS3Object: null,
    previousDigestHashValue: null,
    previousDigestHashAlgorithm: null,
    previousDigestSignature: null,
    logFiles: [{ s3Bucket: 'trail-bucket', s3Object: 'AWSLogs/111122223333/CloudTrail/eu-west-1/2024/03/01/a.json.gz', hashValue: 'b'.repeat(64), hashAlgorithm: 'SHA-256', newestEventTime: '2024-03-01T09:59:00Z', oldestEventTime: '2024-03-01T09:00:10Z' }],
  };
  const body = Buffer.from(JSON.stringify(digest));
  assert.equal(cloudtrailDigestParser.detect!(body, { name: digest.digestS3Object }), 96);
  assert.equal(cloudtrailDigestParser.detect!(body, {}), 90);
  for (const parser of [cloudtrailDigestParser, cloudtrailParser]) {
    const r = parser.parse(body, {});
    assert.equal(r.records.length, 1, parser.name);
    assert.ok(r.records[0]!.bytes.equals(body));
    assert.equal(r.records[0]!.source, 'aws.cloudtrail-digest');
    assert.equal(r.records[0]!.region, 'eu-west-1');
    assert.equal(r.records[0]!.dedupeKey, `aws.cloudtrail-digest:trail-bucket/${digest.digestS3Object}`);
    assert.equal(r.records[0]!.fields.time, '2024-03-01T10:00:00.000Z');
    assert.equal(r.records[0]!.fields.extra?.logFiles, '1');
  }
  assert.throws(() => cloudtrailDigestParser.parse(Buffer.from(JSON.stringify(ctEvent())), {}), (e: unknown) => isCustodyError(e, 'BAD_REQUEST'));
  assert.deepEqual(cloudtrailDigestParser.parse(body.subarray(0, 40), {}).errors.map((e) => e.code), ['BAD_JSON']);
});

// ---- AWS Config ---------------------------------------------------------------------------

function configElements(value: unknown): Obj[] {
  if (Array.isArray(value)) return value as Obj[];
  const o = value as Obj;
  return Array.isArray(o.configurationItems) ? (o.configurationItems as Obj[]) : [o];
}

test('every AWS Config sample: detected, parsed with zero errors, one byte-exact record per item', () => {
  const rels = files('config');
  assert.equal(rels.length, 13);
  for (const rel of rels) {
    const body = load(rel);
    assert.equal(detectSource(body, { name: rel }), 'config', `${rel}: detected`);
    const elements = configElements(JSON.parse(body.toString('utf8')));
    const r = configParser.parse(body, { name: rel });
    assertClean(rel, r, elements.length);
    assertSlices(rel, r.records, [body]);
    r.records.forEach((rec, i) => {
      const el = elements[i]!;
      assert.equal(rec.position, i + 1);
      assert.deepEqual(JSON.parse(rec.bytes.toString('utf8')), el);
      assert.equal(rec.source, 'aws.config');
      assert.ok(rec.dedupeKey, `${rel} record ${i + 1}: a dedupe key`);
      if (typeof el.invokingEvent === 'string') {
        assert.equal(rec.fields.ocsfClass, 2003, `${rel}: a rule invocation is a compliance finding`);
        return;
      }
      assert.equal(rec.fields.ocsfClass, 5001);
      assert.equal(rec.fields.ocsfClassName, 'Inventory Info');
      assert.equal(rec.fields.region, el.awsRegion);
      assert.equal(rec.region, el.awsRegion === 'global' ? undefined : el.awsRegion, `${rel}: a global resource names no region log`);
      assert.equal(rec.fields.account, el.awsAccountId ?? el.accountId);
      assert.equal(rec.fields.resource, el.ARN ?? el.arn);
      assert.equal(rec.fields.action, `config:${el.configurationItemStatus as string}`);
      assert.equal(rec.fields.extra?.resourceType, el.resourceType);
      assert.equal(rec.dedupeKey, `aws.config:${el.resourceType as string}:${el.resourceId as string}:${(el.configurationStateId ?? el.configurationItemCaptureTime) as string}`);
    });
  }
});

test('AWS Config fields: the ARN/awsAccountId spelling, a global resource, the rule invocation event', () => {
  const user = load('config/configurationitem_AWS_IAM_User.json');
  const u = configParser.parse(user, {}).records[0]!;
  assert.equal(u.fields.resource, 'arn:aws:iam::112233445566:user/johndoe');
  assert.equal(u.fields.account, '112233445566');
  assert.equal(u.fields.time, '2016-11-06T17:56:56.560Z');
  assert.equal(u.region, undefined);
  const delivered = configParser.parse(user, { name: 'AWSLogs/112233445566/Config/eu-west-1/2016/11/6/ConfigHistory/112233445566_Config_eu-west-1_ConfigHistory_AWS::IAM::User_20161106T175656Z_20161106T175656Z_1.json.gz' });
  assert.equal(delivered.records[0]!.region, 'eu-west-1', 'a global item goes to the region it was delivered from');

  const inv = configParser.parse(load('config/awslambdago_config_rule_invocation_event.json'), {}).records[0]!;
  assert.deepEqual(inv.fields, {
    time: '2016-02-24T18:23:20.328Z',
    account: '012345678912',
    region: 'us-east-1',
    action: 'config:ConfigurationSnapshotDeliveryCompleted',
    resource: 'arn:aws:config:us-east-1:012345678912:config-rule/config-rule-0123456',
    ocsfClass: 2003,
    ocsfClassName: 'Compliance Finding',
    extra: { configRuleName: 'periodic-config-rule', messageType: 'ConfigurationSnapshotDeliveryCompleted' },
  });
  assert.equal(inv.region, 'us-east-1', 'from the rule ARN');
  assert.equal(inv.dedupeKey, 'aws.config:invocation:periodic-config-rule:myResultToken');
});

test('AWS Config: EventBridge item change and compliance change events, invocations carrying an item, NDJSON, empty and foreign input', () => {
  const item = JSON.parse(load('config/configurationitem_AWS_EC2_Instance.json').toString()) as Obj;
  const change = {
    version: '0', id: 'cfg-ev-1', 'detail-type': 'Config Configuration Item Change', source: 'aws.config', account: '681361479661', time: '2017-04-05T22:23:12Z', region: 'us-east-1', resources: [],
    detail: { recordVersion: '1.3', messageType: 'ConfigurationItemChangeNotification', configurationItemDiff: { changeType: 'CREATE' }, notificationCreationTime: '2017-04-05T22:23:12.000Z', configurationItem: item },
  };
  const cb = Buffer.from(JSON.stringify(change));
  assert.equal(detectSource(cb, {}), 'config');
  const c = configParser.parse(cb, {}).records[0]!;
  assert.ok(c.bytes.equals(cb));
  assert.equal(c.fields.ocsfClass, 5001);
  assert.equal(c.fields.resource, 'arn:aws:ec2:us-east-1:681361479661:instance/i-03402838daac1d611');
  assert.equal(c.region, 'us-east-1');
  assert.equal(c.dedupeKey, 'aws.events:cfg-ev-1', 'one key per EventBridge event, as for GuardDuty and Macie');

  const compliance = {
    version: '0', id: 'cfg-ev-2', 'detail-type': 'Config Rules Compliance Change', source: 'aws.config', account: '111122223333', time: '2024-03-01T10:00:00Z', region: 'eu-west-1', resources: [],
    detail: {
      resourceId: 'my-bucket', awsRegion: 'eu-west-1', awsAccountId: '111122223333', configRuleName: 's3-bucket-logging-enabled', recordVersion: '1.0', messageType: 'ComplianceChangeNotification', resourceType: 'AWS::S3::Bucket',
      newEvaluationResult: { evaluationResultIdentifier: { evaluationResultQualifier: { configRuleName: 's3-bucket-logging-enabled', resourceType: 'AWS::S3::Bucket', resourceId: 'my-bucket' }, orderingTimestamp: '2024-03-01T09:59:00.000Z' }, complianceType: 'NON_COMPLIANT', resultRecordedTime: '2024-03-01T09:59:30.000Z', configRuleInvokedTime: '2024-03-01T09:59:10.000Z' },
    },
  };
  const k = configParser.parse(Buffer.from(JSON.stringify(compliance)), {}).records[0]!;
  assert.equal(k.fields.ocsfClass, 2003);
  assert.equal(k.fields.outcome, 'NON_COMPLIANT');
  assert.equal(k.fields.resource, 'my-bucket');
  assert.equal(k.fields.action, 'config:s3-bucket-logging-enabled');
  assert.equal(k.fields.time, '2024-03-01T09:59:30.000Z');
  assert.equal(k.region, 'eu-west-1');

  const invocation = { version: '1.0', configRuleName: 'r', configRuleArn: 'arn:aws:config:eu-west-1:111122223333:config-rule/config-rule-x', accountId: '111122223333', resultToken: 't1', eventLeftScope: false, invokingEvent: JSON.stringify({ messageType: 'ConfigurationItemChangeNotification', configurationItem: item, notificationCreationTime: '2017-04-05T22:23:12.000Z', recordVersion: '1.3' }) };
  const i = configParser.parse(Buffer.from(JSON.stringify(invocation)), {}).records[0]!;
  assert.equal(i.fields.ocsfClass, 2003);
  assert.equal(i.fields.resource, 'arn:aws:ec2:us-east-1:681361479661:instance/i-03402838daac1d611', 'the item inside invokingEvent');
  assert.equal(i.region, 'us-east-1');
  const broken = configParser.parse(Buffer.from(JSON.stringify({ ...invocation, invokingEvent: '{not json' })), {});
  assert.equal(broken.records.length, 1, 'an unreadable invokingEvent still stores the event');
  assert.equal(broken.records[0]!.region, 'eu-west-1');

  const nd = Buffer.from(`${JSON.stringify(item)}\n${JSON.stringify({ ...item, configurationStateId: '2' })}\n`);
  const n = configParser.parse(nd, {});
  assert.deepEqual(n.records.map((r) => r.position), [1, 2]);
  assert.notEqual(n.records[0]!.dedupeKey, n.records[1]!.dedupeKey);

  assert.deepEqual(configParser.parse(Buffer.from('{"fileVersion":"1.0","configSnapshotId":"x","configurationItems":[]}'), {}), { records: [], errors: [], ignored: 0 });
  assert.throws(() => configParser.parse(Buffer.from(JSON.stringify(ctEvent())), {}), (e: unknown) => isCustodyError(e, 'BAD_REQUEST'));
  const cut = load('config/clo_config_snapshot.json');
  assert.deepEqual(configParser.parse(cut.subarray(0, 5000), {}).errors.map((e) => [e.position, e.code]), [[1, 'BAD_JSON']]);
  assert.equal(configParser.detect!(Buffer.from('{}'), { name: 'AWSLogs/1/Config/eu-west-1/2024/3/1/ConfigSnapshot/x.json.gz' }), 95);
});

// ---- CloudWatch Logs ----------------------------------------------------------------------

interface Payload {
  messageType: string;
  owner: string;
  logGroup: string;
  logStream: string;
  logEvents: Obj[];
}

/** The payloads inside a sample, decoded here with plain zlib. */
function payloadsOf(body: Buffer): Buffer[] {
  const v = JSON.parse(body.toString('utf8')) as unknown;
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => {
    const o = x as { awslogs?: { data: string } };
    return o.awslogs ? gunzipSync(Buffer.from(o.awslogs.data, 'base64')) : body;
  });
}

test('every CloudWatch Logs sample: detected, parsed with zero errors, one byte-exact record per log event', () => {
  const rels = files('cloudwatch-subscription').filter((r) => !isFirehoseBody(r));
  assert.equal(rels.length, 9);
  for (const rel of rels) {
    const body = load(rel);
    assert.equal(detectSource(body, { name: rel }), 'cwlogs', `${rel}: detected`);
    const payloads = payloadsOf(body);
    const expected: Array<{ p: Payload; e: Obj }> = [];
    for (const raw of payloads) {
      const p = JSON.parse(raw.toString('utf8')) as Payload;
      if (p.messageType === 'DATA_MESSAGE') for (const e of p.logEvents) expected.push({ p, e });
    }
    const r = cwlogsParser.parse(body, { name: rel });
    assertClean(rel, r, expected.length);
    assertSlices(rel, r.records, payloads);
    const nested = payloads[0] !== body;
    r.records.forEach((rec, i) => {
      const { p, e } = expected[i]!;
      assert.deepEqual(JSON.parse(rec.bytes.toString('utf8')), e, `${rel} record ${i + 1}: the same log event`);
      assert.equal(rec.source, 'aws.cwlogs');
      assert.equal(rec.dedupeKey, `aws.cwlogs:${p.logGroup}:${p.logStream}:${e.id as string}`);
      assert.deepEqual(rec.attrs, { logGroup: p.logGroup, logStream: p.logStream, owner: p.owner });
      assert.equal(rec.fields.account, p.owner);
      if (!nested) assert.equal(rec.position, i + 1, 'a payload on its own: position = log event');
      const message = e.message as string;
      const ct = message.startsWith('{"eventVersion"');
      assert.equal(rec.region, ct ? (JSON.parse(message) as Obj).awsRegion : undefined, `${rel}: a region only when the message names one`);
      if (!ct && !/flow-logs/.test(p.logGroup)) {
        assert.equal(rec.fields.ocsfClass, 0);
        assert.equal(rec.fields.resource, p.logGroup);
      }
    });
  }
});

test('CloudWatch Logs fields: CloudTrail in a log group, a VPC flow line, Lambda events and their duplicates', () => {
  const ct = cwlogsParser.parse(load('cloudwatch-subscription/datadog_cwl_cloudtrail_4events.json'), {});
  const first = ct.records[0]!;
  assert.equal(first.fields.ocsfClass, 6003);
  assert.equal(first.fields.action, 'logs.amazonaws.com:DescribeLogStreams');
  assert.equal(first.fields.actor, 'arn:aws:sts::123456789123:assumed-role/DatadogAWSIntegrationRole/DatadogAWSIntegration');
  assert.equal(first.fields.srcIp, '54.161.67.200');
  assert.equal(first.fields.region, 'us-east-1');
  assert.equal(first.fields.extra?.logStream, '123456789123_CloudTrail_us-east-1');
  assert.equal(first.attrs?.logGroup, 'aws-cloudtrail-logs-123456789123-c81b5193');
  const msg = JSON.parse((JSON.parse(first.bytes.toString()) as { message: string }).message) as Obj;
  const own = cloudtrailFields(msg);
  for (const k of ['time', 'region', 'actor', 'action', 'outcome', 'srcIp', 'ocsfClass'] as const) assert.equal(first.fields[k], own[k], `${k}: the CloudTrail event's own`);
  assert.equal(first.fields.extra?.eventID, msg.eventID);

  const flow = cwlogsParser.parse(load('cloudwatch-subscription/newrelic_cwl_vpcflow.json'), {}).records[0]!;
  assert.equal(flow.fields.ocsfClass, 4001);
  assert.equal(flow.fields.time, '2019-01-31T11:41:10.000Z', 'the flow start, epoch seconds');
  assert.equal(flow.fields.extra?.logStatus, 'NODATA');
  assert.equal(flow.fields.extra?.interfaceId, 'eni-9f825df9');
  assert.equal(flow.fields.srcIp, undefined);

  const lambda = cwlogsParser.parse(load('cloudwatch-subscription/datadog_cwl_lambda_timeout.json'), {}).records[0]!;
  assert.equal(lambda.fields.time, '2020-06-09T15:02:23.146Z', 'timestamp in epoch milliseconds');
  assert.equal(lambda.attrs?.logStream, '2020/06/09/[$LATEST]b249865adaaf4fad80f95f8ad09725b8');

  const test1 = cwlogsParser.parse(load('cloudwatch-subscription/sumologic_cwl_testevent_awslogs.json'), {});
  assert.deepEqual(test1.records.map((r) => [r.position, r.dedupeKey]), [[1, 'aws.cwlogs:testLogGroup:testLogStream:eventId1'], [1, 'aws.cwlogs:testLogGroup:testLogStream:eventId2']]);

  // 50 Lambda events, three of them delivered twice: 4954 records, of which 4633 distinct keys.
  const sumoBody = load('cloudwatch-subscription/sumologic_cwl_lambda_events_awslogs_gzip_b64.json');
  const sumo = cwlogsParser.parse(sumoBody, {});
  const keys = new Set<string>();
  for (const raw of payloadsOf(sumoBody)) {
    const p = JSON.parse(raw.toString()) as Payload;
    for (const e of p.logEvents) keys.add(`${p.logGroup}|${p.logStream}|${e.id as string}`);
  }
  assert.equal(sumo.records.length, 4954);
  assert.equal(keys.size, 4633);
  assert.equal(new Set(sumo.records.map((r) => r.dedupeKey)).size, keys.size, 'retried deliveries share dedupe keys');
  assert.equal(Math.max(...sumo.records.map((r) => r.position)), 50, 'position = the Lambda event in the array');
});

test('parseCwLogsPayload: the records inside the Firehose sample bodies', () => {
  const rels = files('cloudwatch-subscription').filter(isFirehoseBody);
  let data = 0;
  let control = 0;
  for (const rel of rels) {
    const body = JSON.parse(load(rel).toString()) as { records: Array<{ data: string }> };
    body.records.forEach((fr, i) => {
      const raw = Buffer.from(fr.data, 'base64');
      if (raw[0] !== 0x1f || raw[1] !== 0x8b) return; // Direct PUT data, not CloudWatch Logs
      const payload = gunzipSync(raw);
      const p = JSON.parse(payload.toString()) as Payload;
      const r = parseCwLogsPayload(payload, i + 1);
      assert.deepEqual(r.errors, [], rel);
      if (p.messageType === 'CONTROL_MESSAGE') {
        control++;
        assert.deepEqual([r.records.length, r.ignored], [0, 1], `${rel}: a control message is acknowledged, not stored`);
        return;
      }
      data += r.records.length;
      assert.equal(r.records.length, p.logEvents.length);
      assertSlices(rel, r.records, [payload]);
      r.records.forEach((rec, j) => {
        assert.equal(rec.position, i + 1, 'position = the Firehose record');
        assert.deepEqual(JSON.parse(rec.bytes.toString()), p.logEvents[j]);
        assert.equal(rec.attrs?.logGroup, '/aws/lambda/logging-lambda');
      });
    });
  }
  assert.ok(data > 0 && control === 2, `data events ${data}, control messages ${control}`);
  const bad = parseCwLogsPayload(Buffer.from('not json'), 7);
  assert.deepEqual(bad.errors.map((e) => [e.position, e.code]), [[7, 'BAD_JSON']]);
  assert.deepEqual(parseCwLogsPayload(Buffer.from('{"a":1}'), 3).errors.map((e) => [e.position, e.code]), [[3, 'NOT_CWLOGS']]);
  assert.deepEqual(parseCwLogsPayload(Buffer.from([0x7b, 0xff, 0x7d]), 2).errors.map((e) => [e.position, e.code]), [[2, 'BAD_ENCODING']]);
});

const payload = (over: Partial<Payload> = {}): Payload => ({
  messageType: 'DATA_MESSAGE',
  owner: '111122223333',
  logGroup: '/aws/lambda/f',
  logStream: '2024/03/01/[$LATEST]abc',
  logEvents: [
    { id: '1', timestamp: 1709287200000, message: 'hello' },
    { id: '2', timestamp: 1709287200001, message: 'world' },
  ],
  ...over,
});
const awslogs = (data: string): string => JSON.stringify({ awslogs: { data } });
const gz64 = (p: unknown): string => gzipSync(Buffer.from(JSON.stringify(p))).toString('base64');

test('CloudWatch Logs: control messages, bad base64, truncated gzip and a gzip bomb never throw and spare the good events', () => {
  const control = Buffer.from(JSON.stringify({ ...payload(), messageType: 'CONTROL_MESSAGE', logGroup: '', logStream: '' }));
  assert.deepEqual(cwlogsParser.parse(control, {}), { records: [], errors: [], ignored: 1 });
  assert.deepEqual(cwlogsParser.parse(Buffer.from(awslogs(gz64({ ...payload(), messageType: 'CONTROL_MESSAGE' }))), {}), { records: [], errors: [], ignored: 1 });

  const good = gz64(payload());
  const truncated = gzipSync(Buffer.from(JSON.stringify(payload()))).subarray(0, 30).toString('base64');
  const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024)).toString('base64');
  const notGzip = Buffer.from('plain words').toString('base64');
  const body = Buffer.from(`[${[awslogs(good), awslogs('!!!not base64!!!'), awslogs(truncated), awslogs(bomb), awslogs(notGzip), awslogs(good.slice(1)), awslogs(good)].join(',')}]`);
  assert.equal(detectSource(body, {}), 'cwlogs');
  const r = cwlogsParser.parse(body, {});
  assert.deepEqual(r.records.map((x) => x.position), [1, 1, 7, 7]);
  assert.deepEqual(r.errors.map((e) => [e.position, e.code]), [[2, 'BAD_BASE64'], [3, 'BAD_GZIP'], [4, 'TOO_LARGE'], [5, 'BAD_GZIP'], [6, 'BAD_BASE64']]);
  for (const e of r.errors) assert.match(e.error, /^Record \d+: awslogs\.data /);

  // NDJSON of Lambda events: position = line.
  const nd = cwlogsParser.parse(Buffer.from(`${awslogs(good)}\n${awslogs('@@@@')}\n`), {});
  assert.deepEqual(nd.records.map((x) => x.position), [1, 1]);
  assert.deepEqual(nd.errors.map((e) => [e.position, e.code]), [[2, 'BAD_BASE64']]);
});

test('CloudWatch Logs: an oversized log event is refused alone; attributes that cannot be attributes are dropped', () => {
  const p = payload({ logGroup: 'my group', logEvents: [{ id: 'a', timestamp: 1, message: 'x' }, { id: 'b', timestamp: 2, message: 'y'.repeat(1024 * 1024 + 1) }, { id: 'c', timestamp: 1709287200000, message: 'z' }] });
  const body = Buffer.from(JSON.stringify(p, null, 1));
  const r = cwlogsParser.parse(body, {});
  assert.deepEqual(r.records.map((x) => x.position), [1, 3], 'position = log event');
  assert.deepEqual(r.errors.map((e) => [e.position, e.code]), [[2, 'RECORD_TOO_LARGE']]);
  assertSlices('oversized', r.records, [body]);
  assert.deepEqual(r.records[0]!.attrs, { logStream: p.logStream, owner: p.owner }, 'a log group with a space is no attribute');
  assert.equal(r.records[0]!.dedupeKey, 'aws.cwlogs:my group:2024/03/01/[$LATEST]abc:a', 'but it is still part of the dedupe key');
  assert.equal(r.records[1]!.fields.time, '2024-03-01T10:00:00.000Z');

  const wrong = cwlogsParser.parse(Buffer.from(JSON.stringify({ ...payload(), messageType: 'SOMETHING' })), {});
  assert.deepEqual(wrong.errors.map((e) => e.code), ['NOT_CWLOGS']);
  assert.throws(() => cwlogsParser.parse(Buffer.from('{"hello":1}'), {}), (e: unknown) => isCustodyError(e, 'BAD_REQUEST'));
  assert.deepEqual(cwlogsParser.parse(Buffer.from('{"messageType":"DATA_MESS'), {}).errors.map((e) => [e.position, e.code]), [[1, 'BAD_JSON']]);
});

// ---- shared helpers -----------------------------------------------------------------------

test('aws-common: times, severities, EventBridge envelopes, attribute values, ARNs', () => {
  assert.equal(isoTime('2014-09-26T11:35:00Z'), '2014-09-26T11:35:00.000Z');
  assert.equal(isoTime('2022-05-05T01:35:56.000+0000'), '2022-05-05T01:35:56.000Z');
  assert.equal(isoTime('2022-05-05T03:35:56+02:00'), '2022-05-05T01:35:56.000Z');
  assert.equal(isoTime('2022-05-05 01:35:56'), '2022-05-05T01:35:56.000Z', 'no zone: UTC');
  assert.equal(isoTime(1548934870), '2019-01-31T11:41:10.000Z', 'epoch seconds');
  assert.equal(isoTime(1600361930988), '2020-09-17T16:58:50.988Z', 'epoch milliseconds');
  assert.equal(isoTime('1548934870'), '2019-01-31T11:41:10.000Z');
  for (const bad of ['2014-13-45T99:00:00Z', 'yesterday', '', -1, Number.NaN, 1e20, null, {}, '99999-01-01T00:00:00Z']) assert.equal(isoTime(bad), undefined, String(bad));
  assert.deepEqual([0.5, 2, 5.5, 8, 9.5, 'HIGH', 'moderate', 'x', -1].map(severityName), ['Informational', 'Low', 'Medium', 'High', 'Critical', 'High', 'Medium', undefined, undefined]);
  assert.equal(str(''), undefined);
  assert.equal(str(12), '12');
  assert.equal(str({}), undefined);
  assert.equal(eventBridgeDetail({ 'detail-type': 'X', detail: [] }), null);
  assert.deepEqual(eventBridgeDetail({ 'detail-type': 'X', id: 'i', detail: { a: 1 } })?.detail, { a: 1 });
  assert.equal(attrValue('a b'), undefined);
  assert.equal(attrValue('a\u0001'), undefined);
  assert.equal(attrValue('x'.repeat(257)), undefined);
  assert.equal(attrValue('/aws/lambda/f'), '/aws/lambda/f');
  assert.equal(arnRegion('arn:aws:config:us-east-1:012345678912:config-rule/x'), 'us-east-1');
  assert.equal(arnRegion('arn:aws:iam::1:user/x'), undefined);
});
