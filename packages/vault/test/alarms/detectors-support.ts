/**
 * Helpers for the detector tests: read alarms as an auditor through GET /v1/alarms, wait for
 * the detectors' queue, ingest CloudTrail through POST /v1/ingest, and build CloudTrail
 * records from a real sample (shared/samples) with the call changed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bearer, type InProcVault } from '../support/inproc.js';
import { ROOT } from '../support/server.js';
import type { Alarm } from '../../src/alarms/index.js';

export const SHARED = join(ROOT, '..', 'shared');
export const SAMPLES = join(SHARED, 'samples');

/** Every alarm (newest first) an auditor sees, optionally of some kinds. */
export async function alarms(v: InProcVault, kind?: string): Promise<Alarm[]> {
  const out: Alarm[] = [];
  let before: number | null = null;
  for (;;) {
    const qs = new URLSearchParams({ limit: '500' });
    if (kind) qs.set('kind', kind);
    if (before !== null) qs.set('before', String(before));
    const r = await v.app.inject({ method: 'GET', url: `/v1/alarms?${qs}`, headers: bearer(v.tokens.auditor) });
    assert.equal(r.statusCode, 200, r.body);
    const page = r.json<{ alarms: Alarm[]; next: number | null }>();
    out.push(...page.alarms);
    if (page.next === null) return out;
    before = page.next;
  }
}

/** Waits until every alarm the detectors raised so far is recorded. */
export async function settle(v: InProcVault): Promise<void> {
  // Every acknowledged entry integrated (an alarm cites its entry, which must be readable) …
  for (const seq of v.vault.logs.values()) await seq.waitForCheckpoint(seq.sequencedSize);
  // … and every alarm the detectors queued raised.
  await v.services.detectors!.idle();
}

/** Polls GET /v1/alarms until `pred` holds for the list (or fails after `ms`). */
export async function waitForAlarms(v: InProcVault, pred: (a: Alarm[]) => boolean, what: string, ms = 10_000, kind?: string): Promise<Alarm[]> {
  const t0 = Date.now();
  for (;;) {
    await settle(v);
    const a = await alarms(v, kind);
    if (pred(a)) return a;
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms; alarms: ${JSON.stringify(a.map((x) => ({ rule: x.rule, kind: x.kind, title: x.title, count: x.count })))}`);
    await sleep(25);
  }
}

/** POST /v1/ingest?source=cloudtrail of a delivered-file body {"Records":[…]}. */
export async function ingestCloudTrail(v: InProcVault, records: unknown[], name = 'AWSLogs/974349055189/CloudTrail/sa-east-1/2018/03/26/974349055189_CloudTrail_sa-east-1_20180326T1545Z_test.json'): Promise<{ stored: number; duplicates: number }> {
  const r = await v.app.inject({ method: 'POST', url: `/v1/ingest?source=cloudtrail&name=${encodeURIComponent(name)}`, headers: { ...bearer(v.tokens.writer), 'content-type': 'application/json' }, payload: JSON.stringify({ Records: records }) });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<{ stored: number; duplicates: number }>();
}

export function readSample(rel: string): Buffer {
  const b = readFileSync(join(SAMPLES, rel));
  return rel.endsWith('.gz') ? gunzipSync(b) : b;
}

/**
 * A real CloudTrail record (grycap sample: IAM user gmolto calling cloudtrail:DescribeTrails
 * from 158.42.56.207 through the console), to be modelled on.
 */
export function sampleRecord(): Record<string, unknown> {
  const body = JSON.parse(readSample('cloudtrail/grycap_974349055189/974349055189_CloudTrail_sa-east-1_20180326T1545Z_N30ObemcnvBIdU0B.json.gz').toString('utf8')) as { Records: Array<Record<string, unknown>> };
  const r = body.Records[0]!;
  assert.equal(r['eventName'], 'DescribeTrails');
  return r;
}
export const SAMPLE_ACTOR = 'arn:aws:iam::974349055189:user/gmolto';
export const SAMPLE_IP = '158.42.56.207';

let serial = 0;
/** The sample record with another call: eventSource, eventName, requestParameters and a new eventID. */
export function callRecord(eventSource: string, eventName: string, requestParameters: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  serial++;
  return {
    ...sampleRecord(),
    eventSource,
    eventName,
    requestParameters,
    responseElements: null,
    requestID: `00000000-0000-4000-8000-${String(serial).padStart(12, '0')}`,
    eventID: `11111111-1111-4111-8111-${String(serial).padStart(12, '0')}`,
    ...extra,
  };
}

export interface ReferenceCall {
  service: string;
  eventName: string;
}

/**
 * The API calls listed in shared/reference/aws-sources.md under "API calls that stop or delete
 * log generation", read from the file itself (so a call added there fails these tests until
 * the default pack has it). Qualifiers in parentheses ("(enable=false)") are kept aside.
 */
export function referenceCalls(): Array<ReferenceCall & { qualifier?: string }> {
  const text = readFileSync(join(SHARED, 'reference', 'aws-sources.md'), 'utf8');
  const start = text.indexOf('## API calls that stop or delete log generation');
  assert.ok(start >= 0, 'the reference has the section');
  const lines = text.slice(start).split('\n').slice(1);
  const items: string[] = [];
  for (const l of lines) {
    if (l.startsWith('- ')) items.push(l.slice(2));
    else if (/^\s+\S/.test(l) && items.length > 0) items[items.length - 1] += ' ' + l.trim();
    else break;
  }
  const out: Array<ReferenceCall & { qualifier?: string }> = [];
  for (const item of items) {
    for (const part of item.split(';')) {
      const m = /^\s*([a-z0-9]+)(?:\s*\([^)]*\))?:\s*(.*)$/.exec(part);
      assert.ok(m, `cannot read "${part}"`);
      for (const call of m[2]!.split(',')) {
        const c = /^\s*([A-Za-z]+)\s*(?:\(([^)]*)\))?\s*$/.exec(call);
        assert.ok(c, `cannot read call "${call}"`);
        out.push({ service: m[1]!, eventName: c[1]!, ...(c[2] ? { qualifier: c[2] } : {}) });
      }
    }
  }
  return out;
}

/** The eventSource each service's calls carry in CloudTrail. */
export const EVENT_SOURCE: Record<string, string> = {
  cloudtrail: 'cloudtrail.amazonaws.com',
  ec2: 'ec2.amazonaws.com',
  guardduty: 'guardduty.amazonaws.com',
  config: 'config.amazonaws.com',
  macie2: 'macie2.amazonaws.com',
  logs: 'logs.amazonaws.com',
  s3: 's3.amazonaws.com',
  kms: 'kms.amazonaws.com',
  events: 'events.amazonaws.com',
  cloudwatch: 'monitoring.amazonaws.com',
};
