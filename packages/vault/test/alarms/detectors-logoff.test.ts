/**
 * Log generation switched off: for each API call of shared/reference/aws-sources.md ("API
 * calls that stop or delete log generation"), a CloudTrail record of it — the real grycap
 * sample record with the call changed — ingested through POST /v1/ingest raises exactly one
 * log-generation-off alarm naming who (the user's ARN), from where (the source address) and on
 * what. Benign calls, and every real CloudTrail sample, raise none.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { auditRecords, bearer, startInProc, type InProcVault } from '../support/inproc.js';
import { LOG_OFF_ACTIONS } from '../../src/alarms/detectors/index.js';
import { alarms, callRecord, EVENT_SOURCE, ingestCloudTrail, readSample, referenceCalls, SAMPLE_ACTOR, SAMPLE_IP, SAMPLES, sampleRecord, settle } from './detectors-support.js';

/** Realistic requestParameters of each call (as CloudTrail logs them). */
const PARAMS: Record<string, unknown> = {
  'cloudtrail:StopLogging': { name: 'arn:aws:cloudtrail:sa-east-1:974349055189:trail/management-events' },
  'cloudtrail:DeleteTrail': { name: 'management-events' },
  'cloudtrail:UpdateTrail': { name: 'management-events', s3BucketName: 'attacker-bucket', isMultiRegionTrail: false },
  'cloudtrail:PutEventSelectors': { trailName: 'management-events', eventSelectors: [{ readWriteType: 'ReadOnly', includeManagementEvents: false, dataResources: [] }] },
  'cloudtrail:DeleteEventDataStore': { eventDataStore: 'arn:aws:cloudtrail:sa-east-1:974349055189:eventdatastore/EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE' },
  'cloudtrail:UpdateEventDataStore': { eventDataStore: 'arn:aws:cloudtrail:sa-east-1:974349055189:eventdatastore/EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE', retentionPeriod: 7 },
  'ec2:DeleteFlowLogs': { DeleteFlowLogsRequest: { FlowLogId: { content: 'fl-0123456789abcdef0', tag: 1 } } },
  'guardduty:DeleteDetector': { detectorId: '12abc34d567e8fa901bc2d34e56789f0' },
  'guardduty:UpdateDetector': { detectorId: '12abc34d567e8fa901bc2d34e56789f0', enable: false },
  'guardduty:DisassociateFromMasterAccount': { detectorId: '12abc34d567e8fa901bc2d34e56789f0' },
  'guardduty:DisassociateFromAdministratorAccount': { detectorId: '12abc34d567e8fa901bc2d34e56789f0' },
  'guardduty:DisassociateMembers': { detectorId: '12abc34d567e8fa901bc2d34e56789f0', accountIds: ['111122223333'] },
  'guardduty:DeleteMembers': { detectorId: '12abc34d567e8fa901bc2d34e56789f0', accountIds: ['111122223333'] },
  'guardduty:StopMonitoringMembers': { detectorId: '12abc34d567e8fa901bc2d34e56789f0', accountIds: ['111122223333'] },
  'guardduty:DeletePublishingDestination': { detectorId: '12abc34d567e8fa901bc2d34e56789f0', destinationId: 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5' },
  'guardduty:UpdatePublishingDestination': { detectorId: '12abc34d567e8fa901bc2d34e56789f0', destinationId: 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5', destinationProperties: { destinationArn: 'arn:aws:s3:::other-bucket' } },
  'guardduty:CreateFilter': { detectorId: '12abc34d567e8fa901bc2d34e56789f0', name: 'quiet', action: 'ARCHIVE', rank: 1, findingCriteria: { criterion: { severity: { gte: 0 } } } },
  'config:StopConfigurationRecorder': { configurationRecorderName: 'default' },
  'config:DeleteConfigurationRecorder': { configurationRecorderName: 'default' },
  'config:DeleteDeliveryChannel': { deliveryChannelName: 'default' },
  'config:PutDeliveryChannel': { deliveryChannel: { name: 'default', s3BucketName: 'attacker-bucket' } },
  'config:PutConfigurationRecorder': { configurationRecorder: { name: 'default', roleARN: 'arn:aws:iam::974349055189:role/config', recordingGroup: { allSupported: false, resourceTypes: [] } } },
  'config:DeleteConfigRule': { configRuleName: 'cloudtrail-enabled' },
  'macie2:DisableMacie': {},
  'macie2:DisableOrganizationAdminAccount': { adminAccountId: '111122223333' },
  'macie2:UpdateMacieSession': { status: 'PAUSED' },
  'macie2:ArchiveFindings': { findingIds: ['90b8f3bbea1e4b69a1d2b6c1b3e1c3b1'] },
  'macie2:CreateFindingsFilter': { name: 'archive-all', action: 'ARCHIVE', findingCriteria: { criterion: {} } },
  'macie2:UpdateFindingsFilter': { id: '8a1c3508-0c3f-4f9b-9e6a-EXAMPLE', action: 'ARCHIVE' },
  'macie2:DisassociateFromMasterAccount': {},
  'macie2:DisassociateMember': { id: '111122223333' },
  'logs:DeleteLogGroup': { logGroupName: '/aws/cloudtrail/management-events' },
  'logs:DeleteLogStream': { logGroupName: '/aws/cloudtrail/management-events', logStreamName: '974349055189_CloudTrail_sa-east-1' },
  'logs:DeleteSubscriptionFilter': { logGroupName: '/aws/cloudtrail/management-events', filterName: 'to-custody' },
  'logs:PutRetentionPolicy': { logGroupName: '/aws/cloudtrail/management-events', retentionInDays: 1 },
  'logs:DeleteDestination': { destinationName: 'custody-destination' },
  's3:PutBucketLifecycle': { bucketName: 'org-cloudtrail-logs', Host: 'org-cloudtrail-logs.s3.amazonaws.com', lifecycle: '', LifecycleConfiguration: { Rule: { Status: 'Enabled', Expiration: { Days: 1 }, Filter: { Prefix: '' }, ID: 'expire' } } },
  's3:DeleteBucketLifecycle': { bucketName: 'org-cloudtrail-logs', Host: 'org-cloudtrail-logs.s3.amazonaws.com', lifecycle: '' },
  's3:PutBucketPolicy': { bucketName: 'org-cloudtrail-logs', Host: 'org-cloudtrail-logs.s3.amazonaws.com', policy: '', bucketPolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Deny', Principal: { Service: 'cloudtrail.amazonaws.com' }, Action: 's3:PutObject', Resource: 'arn:aws:s3:::org-cloudtrail-logs/*' }] } },
  's3:DeleteBucketPolicy': { bucketName: 'org-cloudtrail-logs', Host: 'org-cloudtrail-logs.s3.amazonaws.com', policy: '' },
  's3:PutBucketVersioning': { bucketName: 'org-cloudtrail-logs', Host: 'org-cloudtrail-logs.s3.amazonaws.com', versioning: '', VersioningConfiguration: { Status: 'Suspended' } },
  's3:PutBucketReplication': { bucketName: 'org-cloudtrail-logs', Host: 'org-cloudtrail-logs.s3.amazonaws.com', replication: '', ReplicationConfiguration: { Role: 'arn:aws:iam::974349055189:role/repl', Rule: { Status: 'Disabled' } } },
  's3:DeleteBucketReplication': { bucketName: 'org-cloudtrail-logs', Host: 'org-cloudtrail-logs.s3.amazonaws.com', replication: '' },
  's3:DeleteBucketEncryption': { bucketName: 'org-cloudtrail-logs', Host: 'org-cloudtrail-logs.s3.amazonaws.com', encryption: '' },
  's3:DeleteBucket': { bucketName: 'org-cloudtrail-logs', Host: 's3.sa-east-1.amazonaws.com' },
  's3:PutBucketAcl': { bucketName: 'org-cloudtrail-logs', Host: 'org-cloudtrail-logs.s3.amazonaws.com', acl: '', AccessControlPolicy: { AccessControlList: { Grant: [] } } },
  'kms:DisableKey': { keyId: 'arn:aws:kms:sa-east-1:974349055189:key/1234abcd-12ab-34cd-56ef-1234567890ab' },
  'kms:ScheduleKeyDeletion': { keyId: 'arn:aws:kms:sa-east-1:974349055189:key/1234abcd-12ab-34cd-56ef-1234567890ab', pendingWindowInDays: 7 },
  'events:DisableRule': { name: 'guardduty-findings-to-custody' },
  'events:DeleteRule': { name: 'guardduty-findings-to-custody' },
  'cloudwatch:DeleteAlarms': { alarmNames: ['cis-3.5-cloudtrail-configuration-changes'] },
};

/** What the alarm must name as the target ("on what"). */
function targetOf(params: unknown): string {
  const p = params as Record<string, unknown>;
  for (const k of ['bucketName', 'name', 'trailName', 'logGroupName', 'keyId', 'detectorId', 'configRuleName']) if (typeof p[k] === 'string') return p[k] as string;
  // Calls that name no usual target show their request parameters.
  const json = JSON.stringify(p);
  return json.slice(0, 60);
}

let v: InProcVault;
before(async () => {
  v = await startInProc();
});
after(() => v.close());

test('the default pack has one rule for each call of the reference list, and nothing but those calls is in it', () => {
  const ref = referenceCalls();
  assert.ok(ref.length >= 50, `the reference lists ${ref.length} calls`);
  const want = ref.map((c) => `${EVENT_SOURCE[c.service] ?? assert.fail(`no eventSource known for service ${c.service}`)}:${c.eventName}`);
  assert.deepEqual([...new Set(want)].sort(), [...LOG_OFF_ACTIONS].sort());
  assert.equal(new Set(want).size, want.length, 'no call is listed twice for one service');
  for (const c of ref) assert.ok(PARAMS[`${c.service}:${c.eventName}`] !== undefined, `the test has parameters for ${c.service}:${c.eventName}`);
});

describe('each call of the reference list in ingested CloudTrail', () => {
  const ref = referenceCalls();
  const sent = new Map<string, { rec: Record<string, unknown>; call: (typeof ref)[number] }>();

  before(async () => {
    const records = ref.map((c) => {
      const rec = callRecord(EVENT_SOURCE[c.service]!, c.eventName, PARAMS[`${c.service}:${c.eventName}`]);
      sent.set(rec['eventID'] as string, { rec, call: c });
      return rec;
    });
    // Benign neighbours in the same file: reads, and the same services' harmless calls.
    const benign = [
      callRecord('ec2.amazonaws.com', 'DescribeInstances', { instancesSet: {}, filterSet: {} }),
      callRecord('cloudtrail.amazonaws.com', 'DescribeTrails', { trailNameList: [] }),
      callRecord('cloudtrail.amazonaws.com', 'StartLogging', { name: 'management-events' }),
      callRecord('guardduty.amazonaws.com', 'UpdateDetector', { detectorId: '12abc34d567e8fa901bc2d34e56789f0', enable: true }),
      callRecord('guardduty.amazonaws.com', 'CreateFilter', { detectorId: '12abc34d567e8fa901bc2d34e56789f0', name: 'flag', action: 'NOOP', findingCriteria: {} }),
      callRecord('s3.amazonaws.com', 'GetBucketAcl', { bucketName: 'org-cloudtrail-logs', acl: '' }),
      callRecord('kms.amazonaws.com', 'Decrypt', { encryptionAlgorithm: 'SYMMETRIC_DEFAULT' }),
      // DeleteRule of another service is not EventBridge's.
      callRecord('elasticloadbalancing.amazonaws.com', 'DeleteRule', { ruleArn: 'arn:aws:elasticloadbalancing:sa-east-1:974349055189:listener-rule/app/x/1/2/3' }),
    ];
    const r = await ingestCloudTrail(v, [...records.slice(0, 20), ...benign, ...records.slice(20)]);
    assert.equal(r.stored, records.length + benign.length);
    await settle(v);
  });

  test('raise exactly one log-generation-off alarm per call, naming who, from where and on what', async () => {
    const got = await alarms(v, 'log-generation-off');
    assert.equal(got.length, ref.length, `one alarm per call: ${got.map((a) => a.rule).join(', ')}`);
    const byEvent = new Map<string, (typeof got)[number]>();
    for (const a of got) {
      const id = a.details['eventID'] as string;
      assert.ok(!byEvent.has(id), `one alarm for event ${id}`);
      byEvent.set(id, a);
    }
    for (const [eventID, { rec, call }] of sent) {
      const a = byEvent.get(eventID);
      assert.ok(a, `an alarm for ${call.service}:${call.eventName}`);
      assert.equal(a.rule, `log-off.${call.service}.${call.eventName}`);
      assert.ok(a.severity === 'high' || a.severity === 'critical', a.severity);
      assert.ok(a.title.includes(SAMPLE_ACTOR), `title names the actor: ${a.title}`);
      assert.ok(a.title.includes(SAMPLE_IP), `title names the address: ${a.title}`);
      assert.ok(a.title.includes(call.eventName), a.title);
      assert.ok(a.title.includes(targetOf(rec['requestParameters'])), `title names the target: ${a.title}`);
      assert.equal(a.details['actor'], SAMPLE_ACTOR);
      assert.equal(a.details['userIdentity.arn'], SAMPLE_ACTOR);
      assert.equal(a.details['srcIp'], SAMPLE_IP);
      assert.equal(a.details['eventSource'], EVENT_SOURCE[call.service]);
      assert.equal(a.details['eventName'], call.eventName);
      assert.deepEqual(a.details['requestParameters'], rec['requestParameters']);
      // The alarm cites the stored entry, which an auditor can fetch with its proof.
      assert.equal(a.log, 'sa-east-1');
      const e = await v.app.inject({ method: 'GET', url: `/v1/logs/${a.log}/entries/${a.entry}`, headers: bearer(v.tokens.auditor) });
      assert.equal(e.statusCode, 200, e.body);
      assert.equal((JSON.parse(e.json<{ record: string }>().record) as { eventID: string }).eventID, eventID);
    }
  });

  test('each alarm is in the audit log as alarm.raised', async () => {
    const raised = (await auditRecords(v)).filter((e) => e['type'] === 'alarm.raised' && (e['alarm'] as { kind: string }).kind === 'log-generation-off');
    assert.equal(raised.length, ref.length);
    assert.ok(raised.every((e) => (e['alarm'] as { title: string }).title.includes(SAMPLE_ACTOR)));
  });

  test('the same file delivered again raises nothing new (duplicates are not stored)', async () => {
    const r = await ingestCloudTrail(v, [...sent.values()].map((s) => s.rec));
    assert.equal(r.duplicates, sent.size);
    await settle(v);
    assert.equal((await alarms(v, 'log-generation-off')).length, ref.length);
  });
});

test('a call that failed (AccessDenied) still alarms, and says it failed', async () => {
  const before = (await alarms(v, 'log-generation-off')).length;
  const rec = callRecord('cloudtrail.amazonaws.com', 'StopLogging', { name: 'management-events' }, { errorCode: 'AccessDenied', errorMessage: 'User is not authorized to perform: cloudtrail:StopLogging' });
  await ingestCloudTrail(v, [rec]);
  await settle(v);
  const got = await alarms(v, 'log-generation-off');
  assert.equal(got.length, before + 1);
  assert.equal(got[0]!.rule, 'log-off.cloudtrail.StopLogging');
  assert.match(got[0]!.title, /AccessDenied/);
  assert.equal(got[0]!.details['outcome'], 'failure');
});

test('the same call through EventBridge ("AWS API Call via CloudTrail") alarms and names the actor', async () => {
  const before = (await alarms(v, 'log-generation-off')).length;
  const detail = callRecord('guardduty.amazonaws.com', 'UpdateDetector', { detectorId: '12abc34d567e8fa901bc2d34e56789f0', enable: false });
  const eb = { version: '0', id: 'c2a2b5f3-0000-4000-8000-000000000001', 'detail-type': 'AWS API Call via CloudTrail', source: 'aws.guardduty', account: '974349055189', time: '2018-03-26T15:42:31Z', region: 'sa-east-1', resources: [], detail };
  const r = await v.app.inject({ method: 'POST', url: '/v1/ingest?source=cloudtrail', headers: { ...bearer(v.tokens.writer), 'content-type': 'application/json' }, payload: JSON.stringify(eb) });
  assert.equal(r.statusCode, 200, r.body);
  await settle(v);
  const got = await alarms(v, 'log-generation-off');
  assert.equal(got.length, before + 1);
  assert.equal(got[0]!.rule, 'log-off.guardduty.UpdateDetector');
  assert.ok(got[0]!.title.includes(SAMPLE_ACTOR) && got[0]!.title.includes(SAMPLE_IP), got[0]!.title);
});

test('CloudTrail forwarded by CloudWatch Logs (the real Datadog sample): benign as is; with DeleteLogGroup it alarms once', async () => {
  const before = (await alarms(v, 'log-generation-off')).length;
  const raw = readSample('cloudwatch-subscription/datadog_cwl_cloudtrail_4events.json');
  const post = async (body: Buffer | string) => {
    const r = await v.app.inject({ method: 'POST', url: '/v1/ingest?source=cwlogs', headers: { ...bearer(v.tokens.writer), 'content-type': 'application/json' }, payload: body });
    assert.equal(r.statusCode, 200, r.body);
    return r.json<{ stored: number }>().stored;
  };
  assert.equal(await post(raw), 4);
  await settle(v);
  assert.equal((await alarms(v, 'log-generation-off')).length, before);
  // The same payload with the first event's call changed (and new event ids, so nothing is a duplicate).
  const payload = JSON.parse(raw.toString('utf8')) as { logEvents: Array<{ id: string; message: string }> };
  const ev = JSON.parse(payload.logEvents[0]!.message) as Record<string, unknown>;
  ev['eventName'] = 'DeleteLogGroup';
  ev['requestParameters'] = { logGroupName: 'aws-cloudtrail-logs-123456789123-c81b5193' };
  payload.logEvents[0]!.message = JSON.stringify(ev);
  for (const e of payload.logEvents) e.id = e.id.replace(/^3/, '4');
  assert.equal(await post(JSON.stringify(payload)), 4);
  await settle(v);
  const got = await alarms(v, 'log-generation-off');
  assert.equal(got.length, before + 1);
  assert.equal(got[0]!.rule, 'log-off.logs.DeleteLogGroup');
  assert.equal(got[0]!.details['source'], 'aws.cwlogs');
  assert.match(got[0]!.title, /arn:aws:sts::123456789123:assumed-role\/DatadogAWSIntegrationRole\/DatadogAWSIntegration called logs:DeleteLogGroup on aws-cloudtrail-logs-123456789123-c81b5193 from 54\.161\.67\.200/);
});

test('every real CloudTrail sample ingests without a false log-generation-off alarm', async () => {
  const before = await alarms(v, 'log-generation-off');
  const dir = join(SAMPLES, 'cloudtrail');
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(dir);
  assert.ok(files.length >= 30, `${files.length} sample files`);
  // The samples hold no call of the list (checked here, so a new sample that does must alarm).
  const listed = new Set(LOG_OFF_ACTIONS);
  let expected = 0;
  let stored = 0;
  for (const f of files) {
    const rel = relative(SAMPLES, f);
    const body = readSample(rel);
    const text = body.toString('utf8');
    for (const m of text.matchAll(/"eventSource"\s*:\s*"([^"]+)"\s*,\s*"eventName"\s*:\s*"([^"]+)"/g)) if (listed.has(`${m[1]}:${m[2]}`)) expected++;
    const r = await v.app.inject({ method: 'POST', url: `/v1/ingest?source=cloudtrail&name=${encodeURIComponent(rel)}`, headers: { ...bearer(v.tokens.writer), 'content-type': 'application/octet-stream' }, payload: body });
    assert.equal(r.statusCode, 200, `${rel}: ${r.body}`);
    stored += r.json<{ stored: number }>().stored;
  }
  assert.ok(stored > 500, `${stored} records stored`);
  await settle(v);
  const got = await alarms(v, 'log-generation-off');
  assert.equal(got.length - before.length, expected, got.slice(0, got.length - before.length).map((a) => a.title).join('\n'));
  // The sample record the other tests are modelled on is benign itself.
  assert.equal(sampleRecord()['eventName'], 'DescribeTrails');
});
