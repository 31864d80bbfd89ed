/**
 * Ingest rate per push protocol, on one fresh `custody serve`, with the same CloudTrail-like
 * records (bench/records.ts) in each protocol's own framing, 1,000 records per request, W
 * keep-alive writers. Baseline: the NDJSON rate of the same run.
 *
 *   NDJSON        POST /v1/logs/local/entries          Authorization: Bearer
 *   Splunk HEC    POST /services/collector/event       Authorization: Splunk <token>; {"time","host","sourcetype","event":<record>} objects
 *   OTLP JSON     POST /v1/logs                        Bearer; one logRecord per record, body.stringValue = the record
 *   ES _bulk      POST /_bulk                          Basic (token as password); {"create":{…}} + record pairs
 *   Firehose      POST /firehose                       X-Amz-Firehose-Access-Key; 10 records of base64(gzip(CloudWatch Logs
 *                                                      DATA_MESSAGE with 100 logEvents)) — how CloudWatch Logs leave AWS
 *   syslog TCP    --syslog-port, CUSTODY_SYSLOG_TOKEN  RFC 5424 messages (MSG = the record), octet counting (RFC 6587)
 *
 * Every request carries fresh eventIDs (stamped in place, bench/records.ts), so dedupe never
 * drops a record. An HTTP protocol counts the records of the requests answered 200 inside the
 * measured window; afterwards the logs' growth is checked against what was acknowledged.
 * Syslog has no acknowledgements: the rate is the messages sent over the time until the logs
 * hold all of them. A route that answers 404 is reported "not available".
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { makeBatch, hex12, type BatchTemplate } from './records.js';
import { startServer, type ServerHandle } from './custody.js';
import { tempDir, dropTempDir, httpRequest, freePort, run, sleep, syncDisks, int, fixed } from './util.js';

const gzipAsync = promisify(gzip);

export interface ProtocolBenchOptions {
  bin: string;
  serverNodeArgs: string[];
  durationS: number;
  warmupS: number;
  writers: number;
  batch: number;
}

export interface ProtocolRate {
  protocol: string;
  route: string;
  available: boolean;
  /** Why it was not measured (route missing, refused, server without the listener …). */
  reason?: string;
  records: number;
  bytes: number;
  seconds: number;
  recordsPerSec: number;
  /** MB/s of request bodies (10^6 bytes, as sent: Firehose data is gzip + base64). */
  mbPerSec: number;
  /** records/s ÷ the NDJSON records/s of the same run. */
  ratio: number;
  requests: number;
  errors: number;
  lastError?: string;
  /** Whether the logs grew by exactly the acknowledged records. */
  logGrowth: number;
  acknowledged: number;
}

export interface ProtocolBenchResult {
  rates: ProtocolRate[];
  workload: string;
}

/** A request body with the byte offsets of its records' 12 stamped hex digits. */
interface Body {
  buf: Buffer;
  offsets: number[];
}

/** Lays out records in a protocol's framing and finds where each record's eventID suffix landed. */
function frame(t: BatchTemplate, build: (lines: string[]) => string): Body {
  const text = build(t.lines);
  const buf = Buffer.from(text, 'latin1');
  if (buf.length !== Buffer.byteLength(text)) throw new Error('bench bodies must be ASCII');
  const offsets: number[] = [];
  let from = 0;
  for (let i = 0; i < t.lines.length; i++) {
    // The eventID's first 24 characters are unique per record: find them, in order.
    const line = t.lines[i]!;
    const head = line.slice(t.lineIdOffset[i]! - 24, t.lineIdOffset[i]!);
    const at = text.indexOf(head, from);
    if (at < 0) throw new Error('eventID not found in the framed body');
    offsets.push(at + 24);
    from = at + 36;
  }
  return { buf, offsets };
}

/** Where the eventIDs of protocol `pi`, writer `w` start: every protocol and writer has its own range. */
function idBase(pi: number, w: number): number {
  return ((pi + 1) * 64 + w) * 2 ** 36;
}

function stamp(b: Body, base: number, seq: number): number {
  for (const off of b.offsets) b.buf.write(hex12(base + seq++), off, 12, 'latin1');
  return seq;
}

const T0_NS = '1704067200000000000';

const hecBody = (lines: string[]): string => lines.map((l) => `{"time":1704067200.123,"host":"bench-host","source":"cloudtrail","sourcetype":"aws:cloudtrail","event":${l}}`).join('\n');
const otlpBody = (lines: string[]): string =>
  `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"bench"}},{"key":"host.name","value":{"stringValue":"bench-host"}}]},"scopeLogs":[{"scope":{"name":"custody-bench"},"logRecords":[` +
  lines.map((l) => `{"timeUnixNano":"${T0_NS}","severityNumber":9,"severityText":"INFO","body":{"stringValue":${JSON.stringify(l)}}}`).join(',') +
  ']}]}]}';
const bulkBody = (lines: string[]): string => lines.map((l) => `{"create":{"_index":"cloudtrail"}}\n${l}\n`).join('');

interface HttpProtocol {
  protocol: string;
  route: string;
  headers: (token: string) => http.OutgoingHttpHeaders;
  /** Pre-built bodies per writer (stamped in place), or a builder per request. */
  bodies?: (t: BatchTemplate) => Body;
  build?: (t: BatchTemplate, idBase: number, seq: number) => Promise<{ buf: Buffer; headers?: http.OutgoingHttpHeaders; next: number }>;
}

const PROTOCOLS: HttpProtocol[] = [
  { protocol: 'NDJSON', route: '/v1/logs/local/entries', headers: (t) => ({ authorization: `Bearer ${t}`, 'content-type': 'application/x-ndjson' }), bodies: (t) => ({ buf: Buffer.from(t.body), offsets: [...t.idOffsets] }) },
  { protocol: 'Splunk HEC', route: '/services/collector/event', headers: (t) => ({ authorization: `Splunk ${t}`, 'content-type': 'application/json' }), bodies: (t) => frame(t, hecBody) },
  { protocol: 'OTLP JSON', route: '/v1/logs', headers: (t) => ({ authorization: `Bearer ${t}`, 'content-type': 'application/json' }), bodies: (t) => frame(t, otlpBody) },
  { protocol: 'ES _bulk', route: '/_bulk', headers: (t) => ({ authorization: `Basic ${Buffer.from(`bench:${t}`).toString('base64')}`, 'content-type': 'application/x-ndjson' }), bodies: (t) => frame(t, bulkBody) },
  {
    protocol: 'Firehose (CloudWatch Logs)',
    route: '/firehose',
    headers: (t) => ({ 'x-amz-firehose-access-key': t, 'x-amz-firehose-protocol-version': '1.0', 'x-amz-firehose-source-arn': 'arn:aws:firehose:us-east-1:123456789012:deliverystream/bench', 'content-type': 'application/json' }),
    // Each request: fresh eventIDs, then 10 Firehose records of 100 logEvents each, gzip + base64 (as CloudWatch Logs → Firehose deliver them).
    build: async (t, base, seq) => {
      const values = t.lines.map((l, i) => l.slice(0, t.lineIdOffset[i]!) + hex12(base + seq + i) + l.slice(t.lineIdOffset[i]! + 12));
      const next = seq + values.length;
      const per = Math.max(1, Math.ceil(values.length / 10));
      const records: string[] = [];
      for (let i = 0; i < values.length; i += per) {
        // CloudWatch Logs event ids are unique (and a dedupe key): from the same range as the eventIDs.
        const events = values.slice(i, i + per).map((m, k) => `{"id":"${'0'.repeat(44)}${hex12(base + seq + i + k)}","timestamp":1704067200123,"message":${JSON.stringify(m)}}`);
        const payload = `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/bench/cloudtrail","logStream":"123456789012_CloudTrail_us-east-1","subscriptionFilters":["bench"],"logEvents":[${events.join(',')}]}`;
        records.push(`{"data":"${(await gzipAsync(payload, { level: 1 })).toString('base64')}"}`);
      }
      const requestId = `bench-${base}-${seq}-${Date.now()}`;
      return { buf: Buffer.from(`{"requestId":"${requestId}","timestamp":${Date.now()},"records":[${records.join(',')}]}`), headers: { 'x-amz-firehose-request-id': requestId }, next };
    },
  },
];

/** Entries in every log but the audit log (integrated + waiting). */
async function logTotal(srv: ServerHandle, agent: http.Agent): Promise<number> {
  const r = await httpRequest(agent, srv.port, 'GET', '/v1/logs', { authorization: `Bearer ${srv.auditorToken}` }, undefined, 30_000);
  if (r.status !== 200) throw new Error(`GET /v1/logs: ${r.status}`);
  const logs = (JSON.parse(r.body.toString('utf8')) as { logs: Array<{ name: string; kind?: string; size: number; pending: number }> }).logs;
  return logs.filter((l) => l.kind !== 'audit' && l.name !== 'audit').reduce((a, l) => a + l.size + l.pending, 0);
}

function unavailable(p: { protocol: string; route: string }, reason: string): ProtocolRate {
  return { protocol: p.protocol, route: p.route, available: false, reason, records: 0, bytes: 0, seconds: 0, recordsPerSec: NaN, mbPerSec: NaN, ratio: NaN, requests: 0, errors: 0, logGrowth: 0, acknowledged: 0 };
}

async function measureHttp(srv: ServerHandle, p: HttpProtocol, pi: number, o: ProtocolBenchOptions, tpl: BatchTemplate[][], log: (s: string) => void): Promise<ProtocolRate> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.writers });
  const headers = p.headers(srv.writerToken);
  // One probe request: is the route there, and does it take our credentials?
  const probeT = tpl[0]![0]!;
  const probe = p.bodies ? p.bodies(probeT) : null;
  let first: { status: number; body: Buffer };
  let acknowledged = 0;
  const before = await logTotal(srv, agent);
  try {
    if (probe) {
      stamp(probe, idBase(pi, 63), 0);
      first = await httpRequest(agent, srv.port, 'POST', p.route, headers, probe.buf);
    } else {
      const b = await p.build!(probeT, idBase(pi, 63), 0);
      first = await httpRequest(agent, srv.port, 'POST', p.route, { ...headers, ...b.headers }, b.buf);
    }
  } catch (e) {
    agent.destroy();
    return unavailable(p, `request failed: ${(e as Error).message}`);
  }
  if (first.status === 404) {
    agent.destroy();
    return unavailable(p, 'not available (the route answers 404)');
  }
  if (first.status !== 200) {
    agent.destroy();
    return unavailable(p, `not measured: the first request was answered ${first.status} ${first.body.toString('utf8').slice(0, 200)}`);
  }
  acknowledged += probeT.lines.length;

  const bodies = p.bodies ? tpl.map((mine) => mine.map((t) => p.bodies!(t))) : null;
  const t0 = performance.now();
  const tMeasure = t0 + o.warmupS * 1000;
  const tEnd = tMeasure + o.durationS * 1000;
  let records = 0;
  let bytes = 0;
  let requests = 0;
  let errors = 0;
  let lastError = '';
  const writer = async (w: number): Promise<void> => {
    let seq = 1;
    let k = 0;
    while (performance.now() < tEnd) {
      const t = tpl[w]![k % tpl[w]!.length]!;
      let buf: Buffer;
      let extra: http.OutgoingHttpHeaders | undefined;
      if (bodies) {
        const b = bodies[w]![k % bodies[w]!.length]!;
        seq = stamp(b, idBase(pi, w), seq);
        buf = b.buf;
      } else {
        const b = await p.build!(t, idBase(pi, w), seq);
        seq = b.next;
        buf = b.buf;
        extra = b.headers;
      }
      k++;
      let res;
      try {
        res = await httpRequest(agent, srv.port, 'POST', p.route, extra ? { ...headers, ...extra } : headers, buf);
      } catch (e) {
        errors++;
        lastError = (e as Error).message;
        if (errors > 50) throw new Error(`${p.protocol}: too many failed requests; last: ${lastError}`);
        continue;
      }
      const at = performance.now();
      if (res.status === 200) {
        acknowledged += t.lines.length;
        if (at > tMeasure && at <= tEnd) {
          requests++;
          records += t.lines.length;
          bytes += buf.length;
        }
      } else if (res.status === 503 || res.status === 429) {
        await sleep(200);
      } else {
        errors++;
        lastError = `${res.status} ${res.body.toString('utf8').slice(0, 300)}`;
        if (errors > 50) throw new Error(`${p.protocol}: too many refused requests; last: ${lastError}`);
      }
    }
  };
  await Promise.all(Array.from({ length: o.writers }, (_, w) => writer(w)));
  const seconds = Math.min(performance.now(), tEnd) - tMeasure;
  const growth = (await logTotal(srv, agent)) - before;
  agent.destroy();
  const rps = records / (seconds / 1000);
  log(`protocols: ${p.protocol}: ${int(rps)} records/s, ${fixed(bytes / 1e6 / (seconds / 1000), 1)} MB/s${errors ? `, ${errors} errors (${lastError})` : ''}${growth !== acknowledged ? `; the logs grew by ${growth}, ${acknowledged} acknowledged` : ''}`);
  return { protocol: p.protocol, route: p.route, available: true, records, bytes, seconds: seconds / 1000, recordsPerSec: rps, mbPerSec: bytes / 1e6 / (seconds / 1000), ratio: NaN, requests, errors, ...(lastError ? { lastError } : {}), logGrowth: growth, acknowledged };
}

/** RFC 5424 over TCP with octet counting: send for warm-up + duration, then wait until the logs hold everything sent. */
async function measureSyslog(srv: ServerHandle, port: number, o: ProtocolBenchOptions, tpl: BatchTemplate[][], log: (s: string) => void): Promise<ProtocolRate> {
  const p = { protocol: 'syslog TCP (RFC 5424, octet counting)', route: `tcp://127.0.0.1:${port}` };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const before = await logTotal(srv, agent);
  const header = '<134>1 2024-01-01T00:00:00.123Z bench-host cloudtrail 4242 - - ';
  const bodies = tpl.map((mine) => mine.map((t) => frame(t, (lines) => lines.map((l) => `${header.length + l.length} ${header}${l}`).join(''))));
  let sent = 0;
  let bytes = 0;
  const t0 = performance.now();
  const tEnd = t0 + (o.warmupS + o.durationS) * 1000;
  const conn = (w: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const s: Socket = connect(port, '127.0.0.1');
      let seq = 1;
      let k = 0;
      s.on('error', reject);
      s.on('connect', async () => {
        try {
          while (performance.now() < tEnd) {
            const b = bodies[w]![k++ % bodies[w]!.length]!;
            seq = stamp(b, idBase(PROTOCOLS.length, w), seq);
            const copy = Buffer.from(b.buf); // the socket may still hold the last one
            sent += b.offsets.length;
            bytes += copy.length;
            if (!s.write(copy)) await new Promise((r) => s.once('drain', r));
          }
          s.end(() => resolve());
        } catch (e) {
          reject(e as Error);
        }
      });
    });
  try {
    await Promise.all(Array.from({ length: o.writers }, (_, w) => conn(w)));
  } catch (e) {
    agent.destroy();
    return unavailable(p, `connection failed: ${(e as Error).message}`);
  }
  const sentAt = performance.now();
  let growth = 0;
  for (;;) {
    growth = (await logTotal(srv, agent)) - before;
    if (growth >= sent || performance.now() - sentAt > 60_000) break;
    await sleep(50);
  }
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  const rps = growth / seconds;
  log(`protocols: syslog: ${int(rps)} records/s (${int(sent)} sent, ${int(growth)} stored in ${fixed(seconds, 1)} s, ${fixed((performance.now() - sentAt) / 1000, 1)} s of it after the last byte)`);
  return { protocol: p.protocol, route: p.route, available: true, records: growth, bytes, seconds, recordsPerSec: rps, mbPerSec: bytes / 1e6 / seconds, ratio: NaN, requests: 0, errors: sent - growth, logGrowth: growth, acknowledged: sent };
}

export async function protocolBench(o: ProtocolBenchOptions, log: (s: string) => void): Promise<ProtocolBenchResult> {
  const dir = tempDir('custody-bench-protocols-');
  const dataDir = join(dir, 'data');
  const tpl: BatchTemplate[][] = Array.from({ length: o.writers }, (_, w) => [0, 1].map((k) => makeBatch(5000 + w * 2 + k, o.batch)));
  let srv: ServerHandle | null = null;
  let syslogPort: number | null = null;
  let syslogReason = '';
  try {
    // Initialise first: the syslog listener writes as a writer whose token it is given.
    const init = await run(process.execPath, [o.bin, 'init', '--data', dataDir, '--json'], { timeoutMs: 60_000 });
    if (init.code !== 0) throw new Error(`custody init failed: ${(init.stderr || init.stdout).slice(-1000)}`);
    const tokensFile = (JSON.parse(init.stdout) as { tokensFile: string }).tokensFile;
    const writer = /^WRITER_TOKEN=(\S+)$/m.exec(readFileSync(tokensFile, 'utf8'))?.[1];
    const port = await freePort();
    try {
      srv = await startServer({ bin: o.bin, dataDir, logFile: join(dir, 'server.log'), nodeArgs: o.serverNodeArgs, args: ['--syslog-port', String(port)], env: { CUSTODY_SYSLOG_TOKEN: writer ?? '' } });
      syslogPort = port;
    } catch (e) {
      syslogReason = `not available: custody serve --syslog-port did not start (${(e as Error).message.split('\n').slice(-3).join(' ').slice(0, 300)})`;
      log(`protocols: syslog ${syslogReason}; measuring the HTTP protocols without it`);
      srv = await startServer({ bin: o.bin, dataDir, logFile: join(dir, 'server.log'), nodeArgs: o.serverNodeArgs });
    }
    log(`protocols: ${o.writers} writers × ${o.batch}-record requests, ${o.warmupS} s warm-up + ${o.durationS} s measured per protocol`);
    const rates: ProtocolRate[] = [];
    for (const [pi, p] of PROTOCOLS.entries()) {
      rates.push(await measureHttp(srv, p, pi, o, tpl, log));
      syncDisks();
    }
    if (syslogPort !== null) rates.push(await measureSyslog(srv, syslogPort, o, tpl, log));
    else rates.push(unavailable({ protocol: 'syslog TCP (RFC 5424, octet counting)', route: '--syslog-port' }, syslogReason));
    const nd = rates[0]!.recordsPerSec;
    for (const r of rates) r.ratio = r.recordsPerSec / nd;
    return { rates, workload: `${o.writers} writers × ${o.batch} CloudTrail-like records per request (${fixed(tpl[0]![0]!.body.length / o.batch, 0)} B each as NDJSON)` };
  } finally {
    if (srv) await srv.stop();
    dropTempDir(dir);
    syncDisks();
  }
}
