/**
 * The VPC Flow Logs, GuardDuty, Macie and application/host log parsers against every real
 * sample in ../shared/samples (vpcflow/, guardduty/, macie/, applogs/): detection picks the
 * right parser, nothing is refused, records are byte-exact slices of the input, counts match an
 * independent count and SOURCES.md, and a few fields are checked against values read off the
 * samples by hand. Then the edge cases the formats allow, and fuzzing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectSource, sourceParser } from '../../src/ingest/sources/index.js';
import { syslogFields, parseSyslog } from '../../src/ingest/sources/applogs.js';
import type { ParseResult, ParsedRecord } from '../../src/ingest/types.js';
import { ingestRecords } from '../../src/ingest/pipeline.js';
import { startInProc } from '../support/inproc.js';
import fc from 'fast-check';
import { CustodyError } from '../../src/errors.js';

const SAMPLES = process.env.CUSTODY_SAMPLES ?? fileURLToPath(new URL('../../../../../../shared/samples/', import.meta.url));
const DIRS = { vpcflow: 'vpcflow', guardduty: 'guardduty', macie: 'macie', applogs: 'applogs' } as const;

interface Sample {
  rel: string;
  body: Buffer;
}

function samples(dir: string): Sample[] {
  const d = join(SAMPLES, dir);
  assert.ok(existsSync(d), `sample folder ${d} is missing (set CUSTODY_SAMPLES)`);
  return readdirSync(d)
    .sort()
    .map((f) => {
      const raw = readFileSync(join(d, f));
      return { rel: `${dir}/${f}`, body: f.endsWith('.gz') ? gunzipSync(raw) : raw };
    });
}

function sample(rel: string): Buffer {
  const raw = readFileSync(join(SAMPLES, rel));
  return rel.endsWith('.gz') ? gunzipSync(raw) : raw;
}

/** SOURCES.md "contents" column: local path → the number it states, when it states one. */
function statedCounts(): Map<string, number | undefined> {
  const text = readFileSync(join(SAMPLES, 'SOURCES.md'), 'utf8');
  const out = new Map<string, number | undefined>();
  for (const line of text.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const path = /^`([^`]+)`$/.exec(cells[1] ?? '')?.[1];
    if (!path || cells.length < 9) continue;
    const n = /^(\d[\d,]*)/.exec(cells[7]!)?.[1];
    out.set(path, n === undefined ? undefined : Number(n.replace(/,/g, '')));
  }
  return out;
}
const STATED = statedCounts();

/** Non-blank text lines, without line endings (an independent splitter). */
function textLines(body: Buffer): string[] {
  return body
    .toString('utf8')
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.trim() !== '');
}

/** The JSON values a findings file holds, read independently of the parsers. */
function jsonValues(rel: string, body: Buffer): unknown[] {
  if (/\.(ndjson|jsonl)(\.gz)?$/.test(rel)) return textLines(body).map((l) => JSON.parse(l));
  const v = JSON.parse(body.toString('utf8')) as unknown;
  if (Array.isArray(v)) return v;
  const o = v as Record<string, unknown>;
  if (Array.isArray(o.Findings)) return o.Findings;
  if (Array.isArray(o.findings)) return o.findings;
  return [v];
}

/** Every record is a slice of `body` (same memory, same bytes), in input order. */
function assertSlices(body: Buffer, records: ParsedRecord[], what: string): void {
  let last = -1;
  let lastPos = 0;
  for (const r of records) {
    assert.equal(r.bytes.buffer, body.buffer, `${what}: record ${r.position} is not a view of the input`);
    const off = r.bytes.byteOffset - body.byteOffset;
    assert.ok(off >= 0 && off + r.bytes.length <= body.length, `${what}: record ${r.position} lies outside the input`);
    assert.ok(off > last, `${what}: records out of order`);
    assert.ok(r.position > lastPos, `${what}: positions must increase`);
    assert.equal(Buffer.compare(body.subarray(off, off + r.bytes.length), r.bytes), 0);
    last = off;
    lastPos = r.position;
  }
}

function run(parser: string, body: Buffer, name?: string): ParseResult {
  return sourceParser(parser).parse(body, name === undefined ? {} : { name });
}

function byLine(res: ParseResult, needle: string): ParsedRecord {
  const r = res.records.find((x) => x.bytes.toString('utf8').includes(needle));
  assert.ok(r, `no record contains ${needle}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Every sample

const EXPECTED_PARSER: Record<string, string> = {
  'applogs/cloudgrep_apache_access.log': 'apache',
  'applogs/cloudgrep_cwl_export_eks_000000.gz': 'cwlogs-export',
  'applogs/crowdsec_nginx_access_malformed.log': 'apache',
  'applogs/crowdsec_nginx_error_basic_auth.log': 'nginx-error',
  'applogs/crowdsec_sshd_auth.log': 'syslog',
  'applogs/crowdsec_sshd_bad_keyexchange.log': 'syslog',
  'applogs/crowdsec_sshd_slow_bruteforce.log': 'syslog',
  'applogs/elastic_examples_apache_logs': 'apache',
};

for (const dir of Object.values(DIRS)) {
  test(`every ${dir}/ sample: detected, parsed without errors, byte-exact, counted right`, () => {
    const all = samples(dir);
    assert.ok(all.length >= 2, `${dir}/ holds samples`);
    for (const { rel, body } of all) {
      const expected = dir === 'applogs' ? EXPECTED_PARSER[rel] : dir;
      assert.ok(expected, `${rel}: no expected parser listed in this test`);
      assert.equal(detectSource(body, { name: rel }), expected, `${rel}: detectSource`);
      const res = run(expected, body, rel);
      assert.deepEqual(res.errors, [], `${rel}: errors`);
      assertSlices(body, res.records, rel);
      let independent: number;
      if (dir === 'vpcflow' || dir === 'applogs') {
        const lines = textLines(body);
        const isHeader = (l: string): boolean => dir === 'vpcflow' && l.startsWith('version ');
        const headers = lines.filter(isHeader).length;
        independent = lines.length - headers;
        const dataLines = lines.filter((l) => !isHeader(l));
        assert.deepEqual(res.records.map((r) => r.bytes.toString('utf8')), dataLines, `${rel}: records are the lines`);
        assert.equal(res.ignored, headers, `${rel}: header lines are ignored, not stored`);
      } else {
        const values = jsonValues(rel, body);
        independent = values.length;
        assert.deepEqual(res.records.map((r) => JSON.parse(r.bytes.toString('utf8')) as unknown), values, `${rel}: records parse to the same values`);
      }
      assert.equal(res.records.length, independent, `${rel}: record count`);
      assert.ok(STATED.has(rel), `${rel} is described in SOURCES.md`);
      const stated = STATED.get(rel);
      if (stated !== undefined) assert.equal(res.records.length, stated, `${rel}: SOURCES.md says ${stated}`);
      for (const r of res.records) {
        assert.ok(r.fields.ocsfClass !== undefined, `${rel}: record ${r.position} has an OCSF class`);
        if (r.fields.time !== undefined) assert.match(r.fields.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// VPC Flow Logs

test('vpcflow: fields of known records, NODATA lines, and no dedupe key', () => {
  const body = sample('vpcflow/clo_vpcflow_v2_default.log');
  const res = run('vpcflow', body, 'vpcflow/clo_vpcflow_v2_default.log');
  const r = byLine(res, ' 205.185.127.13 ');
  assert.equal(r.source, 'aws.vpcflow');
  assert.equal(r.fields.srcIp, '205.185.127.13');
  assert.equal(r.fields.dstIp, '10.255.1.170');
  assert.equal(r.fields.account, '123456789012');
  assert.equal(r.fields.resource, 'eni-0b7ee7497ac15992e');
  assert.equal(r.fields.outcome, 'ACCEPT');
  assert.equal(r.fields.action, 'flow:udp');
  assert.equal(r.fields.time, new Date(1651646509 * 1000).toISOString());
  assert.equal(r.fields.ocsfClass, 4001);
  assert.deepEqual([r.fields.extra?.srcport, r.fields.extra?.dstport, r.fields.extra?.protocol, r.fields.extra?.bytes, r.fields.extra?.packets], ['52284', '9034', '17', '147', '1']);
  assert.equal(r.position, 5, 'the 4th data line is line 5 of the file');
  const nodata = res.records.filter((x) => x.bytes.toString().endsWith(' NODATA'));
  assert.equal(nodata.length, 7);
  for (const n of nodata) {
    assert.equal(n.fields.outcome, 'NODATA');
    assert.equal(n.fields.srcIp, undefined);
  }
  assert.ok(res.records.every((x) => x.dedupeKey === undefined && x.region === undefined));
});

test('vpcflow: the region comes from the S3 key (AWSLogs path or Hive partition)', () => {
  const body = sample('vpcflow/loki_vpcflowlog.log.gz');
  const key = 'AWSLogs/123456789012/vpcflowlogs/eu-west-1/2022/11/30/123456789012_vpcflowlogs_eu-west-1_fl-0a_20221130T2110Z_abc.log.gz';
  assert.equal(detectSource(body, { name: key }), 'vpcflow');
  const a = run('vpcflow', body, key);
  assert.deepEqual(a.records.map((r) => [r.region, r.fields.region]), [['eu-west-1', 'eu-west-1'], ['eu-west-1', 'eu-west-1'], ['eu-west-1', 'eu-west-1']]);
  const b = run('vpcflow', body, 'flows/aws-account-id=123456789012/aws-service=vpcflowlogs/region=ap-south-1/year=2022/x.log');
  assert.ok(b.records.every((r) => r.region === 'ap-south-1'));
  const c = run('vpcflow', body, 'AWSLogs/1/vpcflowlogs/not a region/x.log');
  assert.ok(c.records.every((r) => r.region === undefined), 'a key part that is not a region name is not used');
});

// The v3–v5 field list of aws-sources.md, written in an order of our own.
const CUSTOM_HEADER = [
  'traffic-path', 'flow-direction', 'pkt-dst-aws-service', 'pkt-src-aws-service', 'sublocation-id', 'sublocation-type',
  'az-id', 'region', 'pkt-dstaddr', 'pkt-srcaddr', 'type', 'tcp-flags', 'instance-id', 'subnet-id', 'vpc-id',
  'log-status', 'action', 'end', 'start', 'bytes', 'packets', 'protocol', 'dstport', 'srcport', 'dstaddr', 'srcaddr',
  'interface-id', 'account-id', 'version',
];

function customLine(v: Record<string, string>): string {
  return CUSTOM_HEADER.map((f) => v[f] ?? '-').join(' ');
}

test('vpcflow: a custom v5 format is read by its header, whatever the order', () => {
  const good = {
    version: '5', 'account-id': '210987654321', 'interface-id': 'eni-1235b8ca123456789', srcaddr: '10.0.1.5', dstaddr: '52.95.128.21',
    srcport: '44321', dstport: '443', protocol: '6', packets: '12', bytes: '4000', start: '1700000000', end: '1700000060', action: 'ACCEPT',
    'log-status': 'OK', 'vpc-id': 'vpc-0a1b2c3d', 'subnet-id': 'subnet-0a1b2c3d', 'instance-id': 'i-0123456789abcdef0', 'tcp-flags': '19',
    type: 'IPv4', 'pkt-srcaddr': '10.0.1.5', 'pkt-dstaddr': '52.95.128.21', region: 'eu-central-1', 'az-id': 'euc1-az2',
    'pkt-dst-aws-service': 'S3', 'flow-direction': 'egress', 'traffic-path': '8',
  };
  const rejected = { ...good, srcaddr: '198.51.100.7', dstaddr: '10.0.1.5', action: 'REJECT', protocol: '1', region: '-', 'pkt-dst-aws-service': '-' };
  const body = Buffer.from(`${CUSTOM_HEADER.join(' ')}\n${customLine(good)}\n${customLine(rejected)}\n`);
  assert.equal(detectSource(body, { name: 'upload.txt' }), 'vpcflow');
  const res = run('vpcflow', body, 'AWSLogs/210987654321/vpcflowlogs/us-east-2/2023/11/14/x.log');
  assert.deepEqual(res.errors, []);
  assert.equal(res.ignored, 1);
  const [a, b] = res.records;
  assert.equal(a!.fields.srcIp, '10.0.1.5');
  assert.equal(a!.fields.dstIp, '52.95.128.21');
  assert.equal(a!.fields.account, '210987654321');
  assert.equal(a!.fields.resource, 'eni-1235b8ca123456789');
  assert.equal(a!.fields.outcome, 'ACCEPT');
  assert.equal(a!.fields.action, 'flow:tcp');
  assert.equal(a!.fields.time, '2023-11-14T22:13:20.000Z');
  assert.equal(a!.region, 'eu-central-1', 'the region field wins over the key');
  assert.equal(a!.fields.extra?.['pkt-dst-aws-service'], 'S3');
  assert.equal(a!.fields.extra?.['flow-direction'], 'egress');
  assert.equal(a!.fields.extra?.['vpc-id'], 'vpc-0a1b2c3d');
  assert.equal(a!.fields.extra?.['tcp-flags'], '19');
  assert.equal(a!.fields.extra?.['sublocation-id'], undefined, '"-" is not applicable, not a value');
  assert.equal(b!.fields.outcome, 'REJECT');
  assert.equal(b!.fields.action, 'flow:icmp');
  assert.equal(b!.fields.srcIp, '198.51.100.7');
  assert.equal(b!.region, 'us-east-2', 'no region field: the key gives it');
});

test('vpcflow: a bad line is refused alone; no header and not v2 is refused', () => {
  const body = sample('vpcflow/clo_vpcflow_v2_default.log');
  const lines = body.toString().split('\n');
  lines.splice(3, 0, '2 123456789012 eni-0477053d545f22d48 - - - - - - - 1651646498 1651646529 -');
  const res = run('vpcflow', Buffer.from(lines.join('\n')));
  assert.equal(res.records.length, 17);
  assert.deepEqual(res.errors.map((e) => [e.position, e.code]), [[4, 'BAD_FLOW_RECORD']]);
  assert.match(res.errors[0]!.error, /13 fields but the header names 14/);

  const headerless = Buffer.from('2 123456789012 eni-0a 10.0.0.1 10.0.0.2 1 2 6 1 40 1700000000 1700000001 ACCEPT OK\n3 vpc-1 subnet-1 i-1 10.0.0.1\n');
  const h = run('vpcflow', headerless);
  assert.equal(h.records.length, 1);
  assert.equal(h.records[0]!.fields.srcIp, '10.0.0.1');
  assert.deepEqual(h.errors.map((e) => [e.position, e.code]), [[2, 'BAD_FLOW_RECORD']]);
  assert.match(h.errors[0]!.error, /header/);
});

test('vpcflow: a JSON body is not a flow log (BAD_REQUEST)', () => {
  assert.throws(() => run('vpcflow', Buffer.from('{"Records":[]}')), (e: unknown) => (e as { code?: string }).code === 'BAD_REQUEST');
});

// ---------------------------------------------------------------------------------------------
// GuardDuty

test('guardduty: a bare finding: type, severity, resource, region and its dedupe key', () => {
  const res = run('guardduty', sample('guardduty/aws_guardduty_finding_ec2.json'));
  const [r] = res.records;
  assert.equal(r!.source, 'aws.guardduty');
  assert.equal(r!.fields.action, 'Canary:EC2/Stateless.IntegTest');
  assert.equal(r!.fields.severity, 'Medium', 'severity 5 is Medium (4.0–6.9)');
  assert.equal(r!.fields.resource, 'Instance:i-05746eb48123455e0');
  assert.equal(r!.fields.time, '2017-10-31T23:16:23.824Z');
  assert.equal(r!.fields.ocsfClass, 2004);
  assert.equal(r!.region, 'us-east-1');
  assert.equal(r!.fields.extra?.findingId, '16afba5c5c43e07c9e3e5e2e544e95df');
  assert.equal(r!.dedupeKey, 'aws.guardduty:16afba5c5c43e07c9e3e5e2e544e95df:2017-10-31T23:16:23.824Z');

  const iam = run('guardduty', sample('guardduty/aws_guardduty_finding_iam.json')).records[0]!;
  assert.equal(iam.fields.resource, 'AccessKey:GeneratedFindingAccessKeyId');
  assert.equal(iam.fields.srcIp, '198.51.100.0');
  assert.equal(iam.fields.actor, 'GeneratedFindingUserName');
  const s3 = run('guardduty', sample('guardduty/aws_guardduty_finding_s3.json')).records[0]!;
  assert.equal(s3.fields.resource, 'S3Bucket:bucketName');
});

test('guardduty: EventBridge events: severity names by GuardDuty band, event id as dedupe key', () => {
  const body = sample('guardduty/foxsec_guardduty_sample_findings_eventbridge.ndjson');
  const res = run('guardduty', body);
  const events = textLines(body).map((l) => JSON.parse(l) as { id: string; detail: { type: string; severity: number } });
  const band = (n: number): string => (n < 4 ? 'Low' : n < 7 ? 'Medium' : n < 9 ? 'High' : 'Critical');
  res.records.forEach((r, i) => {
    assert.equal(r.fields.action, events[i]!.detail.type);
    assert.equal(r.fields.severity, band(events[i]!.detail.severity));
    assert.equal(r.dedupeKey, `aws.events:${events[i]!.id}`);
    assert.equal(r.region, 'us-west-2');
  });
  const drive = res.records.find((r) => r.fields.action === 'Trojan:EC2/DriveBySourceTraffic!DNS')!;
  assert.equal(drive.fields.severity, 'High');
  const root = res.records.find((r) => r.fields.action === 'Policy:IAMUser/RootCredentialUsage')!;
  assert.equal(root.fields.severity, 'Low');
});

test('guardduty: the duplicates file: every line is a record; one key per delivery', () => {
  const body = sample('guardduty/foxsec_guardduty_sample_findings_duplicates.ndjson');
  const res = run('guardduty', body);
  const events = textLines(body).map((l) => JSON.parse(l) as { id: string; detail: { id: string } });
  assert.equal(res.records.length, 5);
  const findingIds = new Set(events.map((e) => e.detail.id));
  assert.equal(findingIds.size, 2, 'the file repeats two findings');
  const deliveries = new Set(events.map((e) => e.id));
  assert.equal(new Set(res.records.map((r) => r.dedupeKey)).size, deliveries.size);
  // The very same delivery twice (a retried batch, a re-imported object) shares its key.
  const again = run('guardduty', Buffer.concat([body, body]));
  assert.equal(again.records.length, 10);
  assert.equal(new Set(again.records.map((r) => r.dedupeKey)).size, deliveries.size);
});

test('guardduty: arrays, {"Findings":[…]}, pretty EventBridge events, bad lines', () => {
  const f1 = JSON.parse(sample('guardduty/aws_guardduty_finding_ec2.json').toString()) as Record<string, unknown>;
  const f2 = JSON.parse(sample('guardduty/aws_guardduty_finding_s3.json').toString()) as Record<string, unknown>;
  const arr = Buffer.from(JSON.stringify([f1, f2], null, 2));
  const a = run('guardduty', arr);
  assert.deepEqual(a.records.map((r) => JSON.parse(r.bytes.toString()) as unknown), [f1, f2]);
  assert.deepEqual(a.records.map((r) => r.position), [1, 2]);
  assertSlices(arr, a.records, 'array');

  const wrapped = Buffer.from(`{"Findings": [${JSON.stringify(f1)}, ${JSON.stringify(f2)}]}`);
  assert.equal(detectSource(wrapped, { name: 'get-findings.json' }), 'guardduty');
  const w = run('guardduty', wrapped);
  assert.deepEqual(w.records.map((r) => JSON.parse(r.bytes.toString()) as unknown), [f1, f2]);
  assert.equal(w.records[1]!.fields.resource, 'S3Bucket:bucketName');

  const event = { version: '0', id: 'a1b2c3d4-0000-1111-2222-333344445555', 'detail-type': 'GuardDuty Finding', source: 'aws.guardduty', account: '123456789012', time: '2017-10-31T23:20:00Z', region: 'us-east-1', resources: [], detail: f1 };
  const pretty = Buffer.from(JSON.stringify(event, null, 2) + '\n');
  assert.equal(detectSource(pretty, {}), 'guardduty');
  const p = run('guardduty', pretty);
  assert.equal(p.records.length, 1);
  assert.equal(p.records[0]!.dedupeKey, 'aws.events:a1b2c3d4-0000-1111-2222-333344445555');
  assert.equal(p.records[0]!.fields.action, 'Canary:EC2/Stateless.IntegTest');

  const nd = Buffer.from([JSON.stringify(f1), '{"broken": ', JSON.stringify(f2), ''].join('\n'));
  const n = run('guardduty', nd);
  assert.equal(n.records.length, 2);
  assert.deepEqual(n.errors.map((e) => [e.position, e.code]), [[2, 'BAD_JSON']]);

  const brokenPretty = Buffer.from('{\n  "schemaVersion": "2.0",\n  "type": \n}\n');
  const bp = run('guardduty', brokenPretty);
  assert.deepEqual(bp.errors.map((e) => [e.position, e.code]), [[1, 'BAD_JSON']], 'a broken document is one error, not one per line');

  assert.throws(() => run('guardduty', Buffer.from('Feb 12 14:10:21 host sshd[1]: hello\n')), (e: unknown) => (e as { code?: string }).code === 'BAD_REQUEST');
});

test('guardduty: detection from the S3 export key', () => {
  const line = Buffer.from(JSON.stringify({ schemaVersion: '2.0', id: 'x', type: 'Recon:EC2/PortProbeUnprotectedPort' }) + '\n');
  assert.equal(detectSource(line, { name: 'AWSLogs/123456789012/GuardDuty/eu-west-1/2024/01/02/0f1e2d3c.jsonl.gz' }), 'guardduty');
});

// ---------------------------------------------------------------------------------------------
// Macie

test('macie: findings: bucket/key, severity, type, dedupe key; discovery results are 2001', () => {
  const csv = run('macie', sample('macie/macie2_finding_csv.json')).records[0]!;
  assert.equal(csv.source, 'aws.macie');
  assert.equal(csv.fields.resource, 's3://DOC-EXAMPLE-BUCKET1/macie-workshop/sample-data.csv');
  assert.equal(csv.fields.severity, 'High');
  assert.equal(csv.fields.action, 'SensitiveData:S3Object/Multiple');
  assert.equal(csv.fields.account, '555555555555');
  assert.equal(csv.fields.time, '2021-10-25T23:25:04.250Z');
  assert.equal(csv.fields.ocsfClass, 2004);
  assert.equal(csv.region, 'us-east-1');
  assert.equal(csv.dedupeKey, 'aws.macie:00000000000000000000000000000001:2021-10-25T23:25:04.250Z');
  const cdi = run('macie', sample('macie/macie2_finding_cdi.json')).records[0]!;
  assert.equal(cdi.fields.severity, 'Medium');

  const body = sample('macie/macie2_discovery_result_53039a83-54e8-33b5-aed0-5d5bb32c7178.jsonl.gz');
  const res = run('macie', body);
  const values = textLines(body).map((l) => JSON.parse(l) as { id: string; createdAt: string });
  assert.equal(res.records.length, 2);
  res.records.forEach((r, i) => {
    assert.equal(r.fields.ocsfClass, 2001);
    assert.equal(r.fields.ocsfClassName, 'Security Finding');
    assert.equal(r.dedupeKey, `aws.macie.result:${values[i]!.id}:${values[i]!.createdAt}`);
    assert.ok(r.fields.resource?.startsWith('s3://DOC-EXAMPLE-BUCKET1/'));
  });
  // A finding and a discovery result with the same (sanitised) id never share a key.
  const result5 = run('macie', sample('macie/macie2_discovery_result_bca1db4c-fb51-38cc-8555-bae4f195cf71.jsonl.gz')).records[0]!;
  assert.notEqual(result5.dedupeKey, cdi.dedupeKey);
});

test('macie: EventBridge "Macie Finding" events and GetFindings {"findings":[…]}', () => {
  const f = JSON.parse(sample('macie/macie2_finding_json.json').toString()) as Record<string, unknown>;
  const event = { version: '0', id: '0f0e0d0c-1111-2222-3333-444455556666', 'detail-type': 'Macie Finding', source: 'aws.macie', account: '555555555555', time: '2021-10-26T05:00:00Z', region: 'us-east-1', resources: [], detail: f };
  const body = Buffer.from(JSON.stringify(event) + '\n');
  assert.equal(detectSource(body, {}), 'macie');
  const r = run('macie', body).records[0]!;
  assert.equal(r.dedupeKey, 'aws.events:0f0e0d0c-1111-2222-3333-444455556666');
  assert.equal(r.fields.resource, 's3://DOC-EXAMPLE-BUCKET1/macie-workshop/CreditCardDataSmall.json');
  assert.equal(r.fields.ocsfClass, 2004);

  const wrapped = Buffer.from(JSON.stringify({ findings: [f, f] }));
  const w = run('macie', wrapped);
  assert.equal(w.records.length, 2);
  assert.equal(w.records[0]!.dedupeKey, w.records[1]!.dedupeKey, 'the same finding state twice shares its key');
  assertSlices(wrapped, w.records, 'wrapped');
});

// ---------------------------------------------------------------------------------------------
// Application and host logs

test('apache: client, time, request, status; malformed request lines are still stored', () => {
  const res = run('apache', sample('applogs/cloudgrep_apache_access.log'));
  const r = byLine(res, '"GET /favicon.ico HTTP/1.1" 404');
  assert.equal(r.source, 'app.apache');
  assert.equal(r.fields.srcIp, '86.166.103.163');
  assert.equal(r.fields.time, '2020-07-19T20:14:39.000Z');
  assert.equal(r.fields.action, 'GET /favicon.ico');
  assert.equal(r.fields.outcome, '404');
  assert.equal(r.fields.extra?.result, 'failure');
  assert.equal(r.fields.ocsfClass, 4002);

  const bad = run('apache', sample('applogs/crowdsec_nginx_access_malformed.log'));
  assert.equal(bad.records.length, 12);
  for (const x of bad.records) {
    assert.equal(x.fields.outcome, '400');
    assert.equal(x.fields.srcIp, '1.2.3.4');
    assert.match(x.fields.time!, /^2023-07-29T17:26:0[67]\.000Z$/, 'local time -0700 is 17:26 UTC');
  }
  assert.equal(byLine(bad, '"HELP"').fields.action, 'HELP');
});

test('nginx-error: client, level, request; basic-auth failures', () => {
  const res = run('nginx-error', sample('applogs/crowdsec_nginx_error_basic_auth.log'));
  const r = res.records[0]!;
  assert.equal(r.source, 'app.nginx-error');
  assert.equal(r.fields.srcIp, '127.0.0.1');
  assert.equal(r.fields.severity, 'High');
  assert.equal(r.fields.action, 'GET /');
  assert.equal(r.fields.outcome, 'failure');
  assert.equal(r.fields.actor, 'foo');
  assert.equal(r.fields.time, '2021-09-30T09:23:53.000Z');
  assert.equal(r.fields.ocsfClass, 4002);
  // This error.log also holds access lines (nginx can log both to one file): read as such.
  const access = byLine(res, '"POST /client HTTP/1.1" 401');
  assert.deepEqual([access.fields.ocsfClass, access.fields.outcome, access.fields.actor, access.fields.action, access.fields.time], [4002, '401', 'test', 'POST /client', '2022-03-06T16:14:13.000Z']);
  assert.equal(res.records.filter((x) => x.fields.ocsfClass === 4002).length, 22);
  const plain = run('nginx-error', Buffer.from('2024/01/02 03:04:05 [notice] 1#1: signal process started\n')).records[0]!;
  assert.equal(plain.fields.ocsfClass, 0);
  assert.equal(plain.fields.severity, 'Low');
});

test('syslog: sshd lines give source IP, user, failure and Authentication; times are never in the future', () => {
  const res = run('syslog', sample('applogs/crowdsec_sshd_auth.log'));
  const r = byLine(res, 'Invalid user pascal from 35.188.49.176');
  assert.equal(r.source, 'app.syslog');
  assert.equal(r.fields.srcIp, '35.188.49.176');
  assert.equal(r.fields.outcome, 'failure');
  assert.equal(r.fields.actor, 'sd-126005');
  assert.equal(r.fields.action, 'sshd');
  assert.equal(r.fields.extra?.user, 'pascal');
  assert.equal(r.fields.extra?.procid, '16378');
  assert.equal(r.fields.ocsfClass, 3002);
  assert.match(r.fields.time!, /-02-12T14:10:21\.000Z$/);
  assert.equal(byLine(res, 'rhost=5.33.63.160').fields.srcIp, '5.33.63.160');
  assert.equal(byLine(res, 'Failed password for invalid user root').fields.srcIp, '192.168.1.2');
  assert.equal(byLine(res, '2023-11-14T00:20:42.738197+01:00').fields.time, '2023-11-13T23:20:42.738Z');
  const limit = Date.now() + 86_400_000;
  for (const dir of ['crowdsec_sshd_auth.log', 'crowdsec_sshd_bad_keyexchange.log', 'crowdsec_sshd_slow_bruteforce.log']) {
    for (const x of run('syslog', sample(`applogs/${dir}`)).records) {
      assert.ok(x.fields.time && Date.parse(x.fields.time) <= limit, `${dir}:${x.position} time ${x.fields.time}`);
      assert.ok(x.fields.srcIp, `${dir}:${x.position} has a source IP`);
    }
  }
});

test('syslogFields: RFC 5424 and RFC 3164 with PRI, structured data, nil values', () => {
  const a = syslogFields('<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeff\'su root\' failed for lonvick on /dev/pts/8');
  assert.equal(a.time, '2003-10-11T22:14:15.003Z');
  assert.equal(a.actor, 'mymachine.example.com');
  assert.equal(a.action, 'su');
  assert.equal(a.severity, 'Critical', 'PRI 34: facility auth, severity 2 (critical)');
  assert.deepEqual(a.extra, { app: 'su', msgid: 'ID47', facility: 'auth' });
  assert.equal(a.ocsfClass, 3002);

  const b = syslogFields('<165>1 2003-10-11T22:14:15.003Z host.example.com evntslog 8710 ID47 [exampleSDID@32473 iut="3" eventSource="Appl\\]ication"][x@1 a="b"] An application event');
  assert.deepEqual([b.actor, b.action, b.severity, b.extra?.procid, b.extra?.msgid, b.extra?.facility, b.ocsfClass], ['host.example.com', 'evntslog', 'Low', '8710', 'ID47', 'local4', 0]);
  assert.equal(parseSyslog('<165>1 2003-10-11T22:14:15.003Z h a p m [x@1 a="]"] msg').msg, 'msg');

  const c = syslogFields('<38>Dec  3 10:00:00 bastion sshd[12]: Accepted publickey for bob from 10.1.2.3 port 5000 ssh2');
  assert.deepEqual([c.actor, c.action, c.outcome, c.srcIp, c.severity, c.extra?.user], ['bastion', 'sshd', 'success', '10.1.2.3', 'Informational', 'bob']);

  const d = syslogFields('<13>1 - - - - - -');
  assert.equal(d.actor, undefined);
  assert.equal(d.severity, 'Low');

  // RFC 3164 has no year: the latest year that is not in the future.
  assert.equal(parseSyslog('Dec 31 23:00:00 h app: x', Date.UTC(2024, 0, 5)).time, '2023-12-31T23:00:00.000Z');
  assert.equal(parseSyslog('Jan  4 23:00:00 h app: x', Date.UTC(2024, 0, 5)).time, '2024-01-04T23:00:00.000Z');
  assert.equal(parseSyslog('Feb 29 12:00:00 h app: x', Date.UTC(2025, 5, 1)).time, '2024-02-29T12:00:00.000Z');
  assert.equal(parseSyslog('Feb 30 12:00:00 h app: x', Date.UTC(2025, 5, 1)).time, undefined);
  assert.deepEqual(syslogFields('not syslog at all'), { ocsfClass: 0, ocsfClassName: 'Base Event' });
});

test('cwlogs-export: export timestamps; continuation lines kept without a time', () => {
  const body = sample('applogs/cloudgrep_cwl_export_eks_000000.gz');
  const res = run('cwlogs-export', body);
  assert.equal(res.records[0]!.source, 'aws.cwlogs-export');
  assert.equal(res.records[0]!.fields.time, '2021-07-10T20:27:23.000Z');
  assert.equal(res.records[0]!.fields.severity, 'Informational', 'klog "I" line');
  const cont = byLine(res, 'Running on machine: ip-10-0-55-213');
  assert.equal(cont.fields.time, undefined);
  assert.equal(res.records.filter((r) => r.fields.time === undefined).length, 3);
  const access = run('cwlogs-export', Buffer.from('2024-01-02T03:04:05.000Z 10.0.0.9 - - [02/Jan/2024:03:04:04 +0000] "POST /login HTTP/1.1" 401 12 "-" "curl/8"\n')).records[0]!;
  assert.deepEqual([access.fields.ocsfClass, access.fields.srcIp, access.fields.outcome, access.fields.time], [4002, '10.0.0.9', '401', '2024-01-02T03:04:04.000Z']);
});

test('text parsers: an invalid UTF-8 line and a 2 MiB line are refused alone', () => {
  const good = 'Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502';
  const body = Buffer.concat([Buffer.from(`${good}\n`), Buffer.from([0x46, 0x65, 0x62, 0x20, 0xff, 0xfe, 0x0a]), Buffer.from(`${'x'.repeat(2 * 1024 * 1024)}\n${good}\r\n`)]);
  for (const p of ['apache', 'nginx-error', 'syslog', 'cwlogs-export']) {
    const res = run(p, body);
    assert.deepEqual(res.errors.map((e) => [e.position, e.code]), [[2, 'BAD_ENCODING'], [3, 'RECORD_TOO_LARGE']], p);
    assert.deepEqual(res.records.map((r) => [r.position, r.bytes.toString()]), [[1, good], [4, good]], p);
    assertSlices(body, res.records, p);
  }
  const flows = Buffer.concat([
    Buffer.from('version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n'),
    Buffer.from([0x32, 0x20, 0xc3, 0x28, 0x0a]),
    Buffer.from(`${'2 '.repeat(1024 * 1024 + 8)}\n2 123456789012 eni-0a 10.0.0.1 10.0.0.2 1 2 6 1 40 1700000000 1700000001 ACCEPT OK\n`),
  ]);
  const f = run('vpcflow', flows);
  assert.deepEqual(f.errors.map((e) => [e.position, e.code]), [[2, 'BAD_ENCODING'], [3, 'RECORD_TOO_LARGE']]);
  assert.deepEqual(f.records.map((r) => r.position), [4]);
  const json = Buffer.concat([Buffer.from('{"id":"a","updatedAt":"t"}\n'), Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d, 0x0a]), Buffer.from(`{"pad":"${'y'.repeat(2 * 1024 * 1024)}"}\n{"id":"b","updatedAt":"t"}\n`)]);
  for (const p of ['guardduty', 'macie']) {
    const j = run(p, json);
    assert.deepEqual(j.errors.map((e) => [e.position, e.code]), [[2, 'BAD_ENCODING'], [3, 'RECORD_TOO_LARGE']], p);
    assert.deepEqual(j.records.map((r) => r.position), [1, 4], p);
  }
});

// ---------------------------------------------------------------------------------------------
// Through the real pipeline: duplicates and regions

test('pipeline: GuardDuty and Macie records route to their region and are stored once', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const writer = v.vault.auth.authenticate(v.tokens.writer)!;
  const gd = run('guardduty', sample('guardduty/foxsec_guardduty_sample_findings_duplicates.ndjson'));
  const mc = run('macie', sample('macie/macie2_discovery_result_53039a83-54e8-33b5-aed0-5d5bb32c7178.jsonl.gz'));
  const first = await ingestRecords(v.vault, [...gd.records, ...mc.records], { principal: writer });
  assert.equal(first.stored, 7);
  assert.deepEqual([...new Set(first.outcomes.map((o) => (o.status === 'stored' ? o.log : o.status)))].sort(), ['us-east-1', 'us-west-2']);
  const again = await ingestRecords(v.vault, [...gd.records, ...mc.records], { principal: writer });
  assert.equal(again.stored, 0);
  assert.equal(again.duplicates, 7);
});

// ---------------------------------------------------------------------------------------------
// Fuzzing

const PARSERS = ['vpcflow', 'guardduty', 'macie', 'apache', 'nginx-error', 'syslog', 'cwlogs-export'];
const SEED_LINES = [
  'version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status',
  '2 123456789012 eni-0477053d545f22d48 205.185.127.13 10.255.1.170 52284 9034 17 1 147 1651646509 1651646511 ACCEPT OK',
  'vpc-id region pkt-srcaddr',
  '{"schemaVersion":"2.0","id":"x","type":"T","severity":9.5,"updatedAt":"2020-01-01T00:00:00Z","resource":{"resourceType":"Instance"},"service":{"action":{"networkConnectionAction":{}}}}',
  '{"detail-type":"GuardDuty Finding","id":"e","detail":{"id":3,"severity":"x"}}',
  '{"findings":[{"id":1},2,[]]}',
  '[{"classificationDetails":{},"resourcesAffected":{"s3Bucket":{"name":"b"}},"severity":{"score":"2"}}]',
  '86.166.103.163 - - [19/Jul/2020:20:14:39 +0000] "GET / HTTP/1.1" 200 3380 "-" "UA"',
  '1.2.3.4 - - [29/Feb/2023:10:26:06 -0700] "\\x16\\x03\\"" 400 157 "-" "-"',
  '2021/09/30 09:23:53 [error] 1#1: *17 user "foo" was not found in "/x", client: 127.0.0.1, server: _, request: "GET / HTTP/1.1", host: "h"',
  '<34>1 2003-10-11T22:14:15.003Z h su - ID47 [a b="\\]"] msg',
  'Feb 30 14:10:21 sd-126005 sshd[16378]: Invalid user x from 1.2.3.4 port 1',
  '2021-07-10T20:27:23.000Z I0710 20:27:23.782909       1 flags.go:59] FLAG',
  '', ' ', '{', '[', ']', '"', '\\',
];

const mutatedText = fc
  .array(fc.oneof(fc.constantFrom(...SEED_LINES), fc.string({ maxLength: 40 }), fc.constantFrom(...SEED_LINES).chain((l) => fc.nat({ max: Math.max(0, l.length) }).map((n) => l.slice(0, n)))), { maxLength: 8 })
  .chain((lines) => fc.constantFrom('\n', '\r\n').map((sep) => Buffer.from(lines.join(sep))));

function checkParse(name: string, body: Buffer): void {
  let res: ParseResult;
  try {
    res = run(name, body, 'fuzz/input');
  } catch (e) {
    assert.ok(e instanceof CustodyError && e.code === 'BAD_REQUEST', `${name} threw ${String(e)}`);
    return;
  }
  assertSlices(body, res.records, name);
  for (const r of res.records) JSON.stringify(r.fields);
  for (const e of res.errors) assert.ok(e.position >= 1 && typeof e.code === 'string' && e.error.length > 0);
}

test('fuzz: parsers return records that are slices of the input, or throw BAD_REQUEST', () => {
  fc.assert(
    fc.property(fc.constantFrom(...PARSERS), fc.oneof(mutatedText, fc.uint8Array({ maxLength: 400 }).map((u) => Buffer.from(u))), (name, body) => {
      checkParse(name, body);
      detectSource(body, { name: 'fuzz/input' });
    }),
    { numRuns: 1500 },
  );
});

test('fuzz: syslogFields never throws and returns plain string fields', () => {
  const line = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: 'grapheme', maxLength: 80 }),
    fc.tuple(fc.integer({ min: -5, max: 400 }), fc.constantFrom(...SEED_LINES), fc.string({ maxLength: 30 })).map(([p, l, s]) => `<${p}>${l}${s}`),
    fc.tuple(fc.integer({ min: 0, max: 191 }), fc.array(fc.constantFrom('1', '-', '2003-10-11T22:14:15Z', 'h', '[', ']', '"', '\\', ' ', 'a="b"', 'x@1'), { maxLength: 14 })).map(([p, parts]) => `<${p}>${parts.join(' ')}`),
  );
  fc.assert(
    fc.property(line, (l) => {
      const f = syslogFields(l);
      for (const [k, v] of Object.entries(f)) {
        if (k === 'extra') for (const x of Object.values(v as Record<string, unknown>)) assert.equal(typeof x, 'string');
        else if (k !== 'ocsfClass') assert.equal(typeof v, 'string', k);
      }
    }),
    { numRuns: 2000 },
  );
});
