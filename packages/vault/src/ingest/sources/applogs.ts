/**
 * Application and host logs: text, one record per line (byte-exact, without its line ending;
 * blank lines skipped). Every line is stored, whether or not its fields can be read — a
 * scanner's binary request line is evidence too; the fields are best-effort.
 *
 * - "apache": Apache/nginx access logs, combined or common format.
 * - "nginx-error": nginx error.log (`2021/09/30 09:23:53 [error] pid#tid: *cid message, client: …`).
 * - "syslog": host logs such as /var/log/auth.log (RFC 3164 `Mmm dd hh:mm:ss host app[pid]: msg`,
 *   or rsyslog's RFC 3339 timestamps) and RFC 5424 lines, with or without a leading `<PRI>`.
 *   `syslogFields` is also what the syslog listener calls on each received message.
 * - "cwlogs-export": CloudWatch Logs export-to-S3 objects (`…/000000.gz`, gzip removed by the
 *   caller), lines `<ISO timestamp> <message>`.
 *
 * Times without a zone (RFC 3164, nginx error.log) are read as UTC.
 */
import type { CommonFields, ParseContext, ParseResult, SourceParser } from '../types.js';
import { parseTextLines } from './generic.js';
import { compact, ipOrUndefined, isoTime, ocsfClass, OCSF, truncate } from './aws-common.js';

const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };

/** UTC milliseconds for a calendar time, or undefined when a part is out of range (Feb 30 …). */
function utcMs(y: number, mon: number, d: number, h: number, mi: number, s: number): number | undefined {
  if (y < 1970 || y > 9999 || mon < 0 || mon > 11 || d < 1 || h > 23 || mi > 59 || s > 60) return undefined;
  const ms = Date.UTC(y, mon, d, h, mi, Math.min(s, 59));
  return new Date(ms).getUTCDate() === d ? ms : undefined;
}

/** The entries of `o` that have a value (CommonFields.extra holds strings only). */
export function defined(o: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

/**
 * Up to `max` non-blank lines from the head of an input (detect() sees at most 64 KiB, so a
 * last line that fills the head may be cut and is left out).
 */
export function headLines(head: Buffer, max: number): string[] {
  const lines = head.toString('utf8').split('\n');
  if (head.length >= 64 * 1024 && lines.length > 1) lines.pop();
  const out: string[] = [];
  for (const l of lines) {
    if (l.trim() === '') continue;
    out.push(l.replace(/^\ufeff/, '').replace(/\r$/, ''));
    if (out.length >= max) break;
  }
  return out;
}

/** A detection score from how many sampled lines match: ≥ 60 once most of them do. */
function lineScore(head: Buffer, matches: (line: string) => boolean, max: number): number {
  const lines = headLines(head, 20);
  if (lines.length === 0) return 0;
  const ratio = lines.filter(matches).length / lines.length;
  return ratio > 0.5 ? Math.round(max * (0.7 + 0.3 * ratio)) : Math.round(40 * ratio);
}

// ---------------------------------------------------------------------------------------------
// Access logs (Apache/nginx combined and common)

// `host ident user [time] "request" status bytes ["referer" "user-agent"]`; quoted parts may hold
// `\"` (Apache) or `\xHH` (nginx) escapes. Each group stops at a delimiter it cannot contain, so
// matching is linear in the line length.
const ACCESS = /^(\S+) (\S+) (\S+) \[([^\]]{1,64})\] "((?:[^"\\]|\\.)*)" (\d{3}|-) (\d+|-)(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?/;
const CLF_TIME = /^(\d{2})\/([A-Z][a-z]{2})\/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/;

/** `10/Oct/2000:13:55:36 -0700` → RFC 3339 UTC. */
export function clfTime(s: string): string | undefined {
  const m = CLF_TIME.exec(s);
  if (!m) return undefined;
  const mon = MONTHS[m[2]!];
  if (mon === undefined) return undefined;
  const ms = utcMs(+m[3]!, mon, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  if (ms === undefined) return undefined;
  const off = (+m[8]! * 60 + +m[9]!) * 60_000 * (m[7] === '-' ? -1 : 1);
  return iso(ms - off);
}

function dash(s: string | undefined): string | undefined {
  return s === undefined || s === '-' || s === '' ? undefined : s;
}

/** "GET /path" from a request line; the raw line (shortened) when it is not METHOD PATH …. */
function requestAction(req: string | undefined): string | undefined {
  if (req === undefined || req === '' || req === '-') return undefined;
  const m = /^([A-Z][A-Z0-9_-]{0,31}) (\S+)/.exec(req);
  return m ? truncate(`${m[1]} ${m[2]}`, 256) : truncate(req, 128);
}

/** Fields of one access-log line, or undefined when it is not one. */
export function accessFields(line: string): CommonFields | undefined {
  const m = ACCESS.exec(line);
  if (!m) return undefined;
  const [, host, , user, time, request, status, bytes, referer, agent] = m;
  const code = dash(status);
  return compact<CommonFields>({
    time: clfTime(time!),
    actor: truncate(dash(user), 128),
    action: requestAction(request),
    outcome: code,
    srcIp: ipOrUndefined(host),
    ...ocsfClass(OCSF.HTTP_ACTIVITY),
    extra: defined({
      result: code === undefined ? undefined : +code < 400 ? 'success' : 'failure',
      client: ipOrUndefined(host) ? undefined : truncate(host, 128),
      bytes: dash(bytes),
      referer: truncate(dash(referer), 256),
      userAgent: truncate(dash(agent), 256),
    }),
  });
}

// ---------------------------------------------------------------------------------------------
// nginx error.log

const NGINX_ERROR = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2}) \[([a-z]+)\] (\d+)#(\d+): (?:\*(\d+) )?/;
const NGINX_LEVELS: Record<string, string> = {
  debug: 'Informational', info: 'Informational', notice: 'Low', warn: 'Medium', error: 'High', crit: 'Critical', alert: 'Critical', emerg: 'Critical',
};

/** Fields of one nginx error.log line, or undefined when it is not one. */
export function nginxErrorFields(line: string): CommonFields | undefined {
  const m = NGINX_ERROR.exec(line);
  if (!m) return undefined;
  const msg = line.slice(m[0].length);
  // Quoted captures are bounded: unanchored, an unbounded one is quadratic on a line of many `user "`.
  const client = /, client: ([^,\s]+)/.exec(msg)?.[1];
  const server = /, server: ([^,]*?)(?:, |$)/.exec(msg)?.[1];
  const request = /, request: "((?:[^"\\]|\\.){0,8192})"/.exec(msg)?.[1];
  const host = /, host: "((?:[^"\\]|\\.){0,1024})"/.exec(msg)?.[1];
  const user = /\buser "((?:[^"\\]|\\.){0,256})"/.exec(msg)?.[1];
  const authFailed = /user "[^"]*" was not found in|password mismatch|no user\/password was provided/.test(msg);
  return compact<CommonFields>({
    time: iso(utcMs(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)),
    actor: truncate(dash(user), 128),
    action: requestAction(request),
    outcome: authFailed ? 'failure' : undefined,
    srcIp: ipOrUndefined(client),
    severity: NGINX_LEVELS[m[7]!],
    // A line that names the request it is about is part of HTTP activity.
    ...ocsfClass(request !== undefined ? OCSF.HTTP_ACTIVITY : OCSF.BASE_EVENT),
    extra: defined({
      level: m[7],
      pid: m[8],
      connection: m[10],
      server: truncate(dash(server), 128),
      host: truncate(host, 128),
      message: truncate(msg.split(', client: ')[0], 200),
    }),
  });
}

// ---------------------------------------------------------------------------------------------
// syslog

/** The parts of a syslog line; everything but `msg` may be missing. */
export interface SyslogParts {
  facility?: number;
  severity?: number;
  time?: string;
  host?: string;
  app?: string;
  procid?: string;
  msgid?: string;
  msg: string;
}

const FACILITIES = ['kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp', 'ntp', 'security', 'console', 'solaris-cron', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'];
/** Syslog severity 0–7 (emerg … debug) → OCSF severity names. */
const SYSLOG_SEVERITY = ['Critical', 'Critical', 'Critical', 'High', 'Medium', 'Low', 'Informational', 'Informational'];

const BSD_TIME = /^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})? /;
const RFC3339_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})) /;
const TAG = /^([^\s[\]:]{1,64})(?:\[([^\]\s]{0,32})\])?:(?: |$)/;

/**
 * RFC 3164 timestamps have no year: take the latest year that does not put the time more than
 * a day in the future (a day allows for clock skew and zone differences).
 */
export function bsdTime(mon: string, day: number, h: number, mi: number, s: number, now: number = Date.now()): string | undefined {
  const m = MONTHS[mon];
  if (m === undefined) return undefined;
  const thisYear = new Date(now).getUTCFullYear();
  for (let y = thisYear; y >= thisYear - 8; y--) {
    const ms = utcMs(y, m, day, h, mi, s);
    if (ms !== undefined && ms <= now + 86_400_000) return iso(ms);
  }
  return undefined;
}

function nil(s: string | undefined): string | undefined {
  return s === undefined || s === '-' || s === '' ? undefined : s;
}

/** The end of RFC 5424 STRUCTURED-DATA starting at `i` (after "-" or the last "]"), or -1. */
function structuredDataEnd(s: string, i: number): number {
  if (s[i] === '-') return i + 1;
  let j = i;
  while (s[j] === '[') {
    let inQuote = false;
    j++;
    for (; j < s.length; j++) {
      const c = s[j];
      if (inQuote) {
        if (c === '\\') j++;
        else if (c === '"') inQuote = false;
      } else if (c === '"') inQuote = true;
      else if (c === ']') break;
    }
    if (j >= s.length) return -1;
    j++;
  }
  return j === i ? -1 : j;
}

/** Splits a syslog line (RFC 5424, RFC 3164, or a file line with RFC 3339 time) into parts. */
export function parseSyslog(line: string, now: number = Date.now()): SyslogParts {
  let s = line.replace(/[\r\n]+$/, '');
  const out: SyslogParts = { msg: s };
  const pri = /^<(\d{1,3})>/.exec(s);
  if (pri && +pri[1]! <= 191) {
    out.facility = +pri[1]! >> 3;
    out.severity = +pri[1]! & 7;
    s = s.slice(pri[0].length);
    out.msg = s;
  }
  // RFC 5424: VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG].
  // Without a PRI (a file line), only version 1 followed by a timestamp or "-" counts.
  const v5424 = (pri ? /^[1-9]\d{0,2} (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(s) : /^1 (\d{4}-\S+|-) (\S+) (\S+) (\S+) (\S+) /.exec(s)) ?? undefined;
  if (v5424 && (v5424[1] === '-' || (/^\d{4}-/.test(v5424[1]!) && isoTime(v5424[1]) !== undefined))) {
    const sdEnd = structuredDataEnd(s, v5424[0].length);
    if (sdEnd >= 0) {
      out.time = isoTime(v5424[1]);
      out.host = nil(v5424[2]);
      out.app = nil(v5424[3]);
      out.procid = nil(v5424[4]);
      out.msgid = nil(v5424[5]);
      out.msg = s.slice(sdEnd).replace(/^ /, '').replace(/^\ufeff/, '');
      return out;
    }
  }
  let rest: string | undefined;
  const bsd = BSD_TIME.exec(s);
  if (bsd) {
    out.time = bsdTime(bsd[1]!, +bsd[2]!, +bsd[3]!, +bsd[4]!, +bsd[5]!, now);
    rest = s.slice(bsd[0].length);
  } else {
    const r3339 = RFC3339_TIME.exec(s);
    if (r3339) {
      out.time = isoTime(r3339[1]);
      rest = s.slice(r3339[0].length);
    }
  }
  if (rest === undefined) return out;
  // HOSTNAME then TAG ("app[pid]:"); a sender that leaves the host out starts with the tag.
  let tagged = TAG.exec(rest);
  if (!tagged) {
    const host = /^(\S{1,255}) /.exec(rest);
    if (host) {
      out.host = host[1];
      rest = rest.slice(host[0].length);
      tagged = TAG.exec(rest);
    }
  }
  if (tagged) {
    out.app = tagged[1];
    out.procid = nil(tagged[2]);
    rest = rest.slice(tagged[0].length);
  }
  out.msg = rest;
  return out;
}

const SSHD_APPS = /^(sshd|sshd-session|sshd-auth|dropbear)$/;
const AUTH_MESSAGE = /pam_unix\(|authentication failure|Failed password|Accepted (?:password|publickey|keyboard-interactive)/;
const AUTH_FAILURE = /[Ii]nvalid user|Failed (?:password|publickey|none|keyboard-interactive)|authentication failure|not allowed because|Unable to negotiate|[Rr]efused connect|Too many authentication failures|maximum authentication attempts|Timeout before authentication|Did not receive identification|BREAK-IN ATTEMPT/;
const AUTH_SUCCESS = /^Accepted \S+ for |session opened for user /;
const USER_PATTERNS = [/\bfor (?:invalid user )?(\S+) from /, /\b[Ii]nvalid user (\S+) /, /\bauthenticating user (\S+) /, /\buser=(\S+)/, /^User (\S+) from /, /session opened for user ([^\s(]+)/];

function firstIp(msg: string): string | undefined {
  for (const tok of msg.split(/[\s,;()=[\]"']+/)) {
    const ip = ipOrUndefined(tok);
    if (ip) return ip;
  }
  return undefined;
}

/** The user an authentication line is about (the user tried, not the host). */
function authUser(msg: string): string | undefined {
  for (const re of USER_PATTERNS) {
    const u = re.exec(msg)?.[1];
    if (u && u !== 'from') return truncate(u, 64);
  }
  return undefined;
}

/**
 * Fields of one syslog message: actor = hostname (the app when there is none), action = app
 * name, time, severity from PRI, extra {app, procid, msgid, facility}. sshd and other
 * authentication lines also get the remote address, the user and success/failure. Never throws.
 */
export function syslogFields(line: string, now?: number): CommonFields {
  try {
    const p = parseSyslog(typeof line === 'string' ? line : String(line), now ?? Date.now());
    const msg = p.msg;
    const auth = (p.app !== undefined && SSHD_APPS.test(p.app)) || p.facility === 4 || p.facility === 10 || AUTH_MESSAGE.test(msg);
    const srcIp = auth ? firstIp(msg) : ipOrUndefined(/\b(?:from|rhost=|client:?) ?\[?([0-9A-Fa-f:.]{3,45})/.exec(msg)?.[1]);
    return compact<CommonFields>({
      time: p.time,
      actor: truncate(p.host ?? p.app, 255),
      action: truncate(p.app, 64),
      outcome: auth ? (AUTH_FAILURE.test(msg) ? 'failure' : AUTH_SUCCESS.test(msg) ? 'success' : undefined) : undefined,
      srcIp,
      severity: p.severity === undefined ? undefined : SYSLOG_SEVERITY[p.severity],
      ...ocsfClass(auth ? OCSF.AUTHENTICATION : OCSF.BASE_EVENT),
      extra: defined({
        app: truncate(p.app, 64),
        procid: truncate(p.procid, 32),
        msgid: truncate(p.msgid, 32),
        facility: p.facility === undefined ? undefined : FACILITIES[p.facility],
        user: auth ? authUser(msg) : undefined,
      }),
    });
  } catch {
    return {};
  }
}

/** A line that starts like syslog (PRI, RFC 5424 version, RFC 3164 or RFC 3339 time). */
const SYSLOG_START = /^(?:<\d{1,3}>|1 |[A-Z][a-z]{2} {1,2}\d{1,2} \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})/;

/** Whether a line looks like syslog: a PRI, an RFC 3164 or RFC 3339 time, then host and tag. */
function isSyslogLine(line: string): boolean {
  if (/^<\d{1,3}>/.test(line)) return true;
  if (/^1 \d{4}-\d{2}-\d{2}T\S+ \S+ \S+ \S+ \S+ /.test(line)) return true;
  const rest = BSD_TIME.exec(line) ?? RFC3339_TIME.exec(line);
  if (!rest) return false;
  const after = line.slice(rest[0].length);
  return TAG.test(after) || /^\S{1,255} [^\s[\]:]{1,64}(?:\[[^\]\s]{0,32}\])?:(?: |$)/.test(after);
}

// ---------------------------------------------------------------------------------------------
// CloudWatch Logs export to S3

const CWL_EXPORT = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z) /;
// Kubernetes klog lines, e.g. EKS control-plane logs: "I0710 20:27:23.782909  1 file.go:59] msg".
const KLOG = /^([IWEF])\d{4} \d{2}:\d{2}:\d{2}\.\d+ +\d+ ([^\s\]]{1,128})\] /;
const KLOG_SEVERITY: Record<string, string> = { I: 'Informational', W: 'Medium', E: 'High', F: 'Critical' };

/**
 * Fields of one export line: the export timestamp, plus what the message itself tells when it is
 * an access-log or syslog line (its own class) or a klog line (severity). Undefined for a line
 * without a timestamp: it continues a multi-line message.
 */
export function cwlExportFields(line: string, now?: number): CommonFields | undefined {
  const m = CWL_EXPORT.exec(line);
  if (!m) return undefined;
  const time = isoTime(m[1]);
  const msg = line.slice(m[0].length);
  const access = accessFields(msg);
  if (access) return { ...access, time: access.time ?? time };
  if (isSyslogLine(msg)) {
    const f = syslogFields(msg, now);
    return { ...f, time: f.time ?? time };
  }
  const k = KLOG.exec(msg);
  return compact<CommonFields>({
    time,
    severity: k ? KLOG_SEVERITY[k[1]!] : undefined,
    ...ocsfClass(OCSF.BASE_EVENT),
    extra: k ? defined({ location: k[2] }) : undefined,
  });
}

// ---------------------------------------------------------------------------------------------

/**
 * Fields of a line in whichever of the formats above it is (files mix them: nginx can write
 * access lines into error.log); a line of none of them is a Base Event with no other field.
 */
export function textLineFields(line: string, now?: number): CommonFields {
  return accessFields(line) ?? nginxErrorFields(line) ?? (isSyslogLine(line) ? syslogFields(line, now) : { ...ocsfClass(OCSF.BASE_EVENT) });
}

/** A parser's own reading of a line first, then any other format; never throws. */
function fieldsFirst(own: (line: string, now?: number) => CommonFields | undefined, now?: number): (line: string) => CommonFields {
  return (line) => {
    try {
      return own(line, now) ?? textLineFields(line, now);
    } catch {
      return { ...ocsfClass(OCSF.BASE_EVENT) };
    }
  };
}

export const applogParsers: SourceParser[] = [
  {
    name: 'apache',
    description: 'Apache/nginx access logs (combined or common format), one record per line',
    detect: (head: Buffer): number => lineScore(head, (l) => ACCESS.test(l), 90),
    parse: (body: Buffer, ctx: ParseContext): ParseResult => parseTextLines(body, 'app.apache', fieldsFirst(accessFields, ctx.now)),
  },
  {
    name: 'nginx-error',
    description: 'nginx error.log, one record per line',
    detect: (head: Buffer): number => lineScore(head, (l) => NGINX_ERROR.test(l), 90),
    parse: (body: Buffer, ctx: ParseContext): ParseResult => parseTextLines(body, 'app.nginx-error', fieldsFirst(nginxErrorFields, ctx.now)),
  },
  {
    name: 'syslog',
    description: 'Syslog lines (RFC 5424, RFC 3164, /var/log/auth.log and the like), one record per line',
    detect: (head: Buffer): number => lineScore(head, isSyslogLine, 90),
    parse: (body: Buffer, ctx: ParseContext): ParseResult => parseTextLines(body, 'app.syslog', fieldsFirst((l, now) => (SYSLOG_START.test(l) ? syslogFields(l, now) : undefined), ctx.now)),
  },
  {
    name: 'cwlogs-export',
    description: 'CloudWatch Logs exported to S3 (000000.gz objects, "<ISO time> <message>" lines), one record per line',
    detect(head: Buffer, ctx: ParseContext): number {
      const s = lineScore(head, (l) => CWL_EXPORT.test(l), 80);
      const named = ctx.name !== undefined && (/(?:^|[/_])\d{6}(?:\.gz)?$/.test(ctx.name) || /exportedlogs|aws-logs-write-test/i.test(ctx.name));
      return s > 0 && named ? Math.min(100, s + 15) : s;
    },
    parse: (body: Buffer, ctx: ParseContext): ParseResult => parseTextLines(body, 'aws.cwlogs-export', fieldsFirst(cwlExportFields, ctx.now)),
  },
];
