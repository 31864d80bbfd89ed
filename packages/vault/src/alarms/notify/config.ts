/**
 * Checking notifier configurations (POST /v1/notifiers, <data>/notifiers.json) and showing them
 * without their secrets. Every refusal is NOTIFIER_INVALID with `details.field` naming the field
 * (and `details.file` when it came from a file), so a person can fix it at once.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { CustodyError } from '../../errors.js';
import { ALARM_KINDS, SEVERITIES, type AlarmKind, type Severity } from '../types.js';
import { NOTIFIER_TYPES, type NotifierConfig, type NotifierType, type EmailConfig, type SnsConfig, type Notifier } from './types.js';

export const REDACTED = '***';

/** The fields of each type that are secrets: stored encrypted, never shown, never logged. */
export const SECRET_FIELDS: Record<NotifierType, readonly string[]> = {
  // The URL too: query strings often carry a receiver's token. Shown without its query.
  webhook: ['secret', 'url'],
  slack: ['url'],
  email: ['password'],
  sns: ['secretAccessKey', 'sessionToken'],
};

const COMMON = ['type', 'name', 'minSeverity', 'kinds'];
const FIELDS: Record<NotifierType, readonly string[]> = {
  webhook: [...COMMON, 'url', 'secret'],
  slack: [...COMMON, 'url'],
  email: [...COMMON, 'host', 'port', 'secure', 'user', 'password', 'from', 'to', 'rejectUnauthorized', 'ca'],
  sns: [...COMMON, 'topicArn', 'region', 'endpoint', 'accessKeyId', 'secretAccessKey', 'sessionToken'],
};

const ID_RE = /^ntf_[A-Za-z0-9_-]{1,48}$/;
const REGION_RE = /^[a-z]{2}(-[a-z]+){1,2}-[0-9]{1,2}$/;
const ARN_RE = /^arn:aws(-[a-z]+)*:sns:([a-z]{2}(?:-[a-z]+){1,2}-[0-9]{1,2}):[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/;
const HOST_RE = /^[A-Za-z0-9](?:[A-Za-z0-9.:-]{0,252})$/;
const ADDRESS_RE = /^[^\s@<>()",;:\\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$/;
const NAMED_ADDRESS_RE = /^[A-Za-z0-9 .'_-]{1,80} <([^\s@<>()",;:\\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))>$/;
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** Where a configuration came from, for the error messages. */
export interface Origin {
  /** The file it was read from (notifiers.json). */
  file?: string;
  /** The field path prefix inside that file, e.g. "[2]". */
  at?: string;
}

class Checker {
  constructor(
    private readonly origin: Origin,
    private readonly type: string,
  ) {}

  fail(field: string, problem: string): never {
    const path = this.origin.at !== undefined ? `${this.origin.at}.${field}` : field;
    const where = this.origin.file ? `${this.origin.file}: ` : '';
    const what = this.type ? `${this.type} notifier` : 'notifier';
    throw new CustodyError('NOTIFIER_INVALID', `${where}"${path}" of the ${what} ${problem}`, { field: path, ...(this.origin.file ? { file: this.origin.file } : {}) });
  }

  str(o: Record<string, unknown>, field: string, min: number, max: number, required: true): string;
  str(o: Record<string, unknown>, field: string, min: number, max: number, required: false): string | undefined;
  str(o: Record<string, unknown>, field: string, min: number, max: number, required: boolean): string | undefined {
    const v = o[field];
    if (v === undefined || v === null) {
      if (required) this.fail(field, 'is required.');
      return undefined;
    }
    if (typeof v !== 'string') this.fail(field, 'must be a string.');
    if (v.length < min) this.fail(field, min === 1 ? 'must not be empty.' : `must be at least ${min} characters long.`);
    if (v.length > max) this.fail(field, `is ${v.length} characters long; at most ${max} are allowed.`);
    if (CONTROL_RE.test(v)) this.fail(field, 'must not contain control characters or line breaks.');
    return v;
  }

  url(o: Record<string, unknown>, field: string, required: boolean): string | undefined {
    const s = required ? this.str(o, field, 1, 2048, true) : this.str(o, field, 1, 2048, false);
    if (s === undefined) return undefined;
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      return this.fail(field, 'is not a URL; write it like https://alerts.example.org/custody.');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') this.fail(field, `must be an http or https URL, not ${u.protocol.slice(0, 20)}.`);
    if (u.username || u.password) this.fail(field, 'must not carry a user name or password; webhooks authenticate the vault by the signature.');
    if (!u.hostname) this.fail(field, 'has no host.');
    return u.toString();
  }
}

function severity(c: Checker, o: Record<string, unknown>): Severity {
  const v = o['minSeverity'];
  if (v === undefined || v === null) return 'low';
  if (typeof v !== 'string' || !(SEVERITIES as readonly string[]).includes(v)) c.fail('minSeverity', `must be one of ${SEVERITIES.join(', ')}.`);
  return v as Severity;
}

function kinds(c: Checker, o: Record<string, unknown>): AlarmKind[] | undefined {
  const v = o['kinds'];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length === 0 || v.length > ALARM_KINDS.length * 2) c.fail('kinds', `must be a non-empty list of alarm kinds (${ALARM_KINDS.join(', ')}); leave it out for every kind.`);
  const out: AlarmKind[] = [];
  for (const k of v) {
    if (typeof k !== 'string' || !(ALARM_KINDS as readonly string[]).includes(k)) c.fail('kinds', `holds ${JSON.stringify(k).slice(0, 40)}, which is not an alarm kind; use ${ALARM_KINDS.join(', ')}.`);
    if (!out.includes(k as AlarmKind)) out.push(k as AlarmKind);
  }
  return out;
}

function address(c: Checker, field: string, s: string, named: boolean): string {
  if (ADDRESS_RE.test(s)) return s;
  if (named && NAMED_ADDRESS_RE.test(s)) return s;
  return c.fail(field, `holds ${JSON.stringify(s.slice(0, 80))}, which is not an e-mail address like soc@example.org${named ? ' or "Custody <custody@example.org>"' : ''}.`);
}

function email(c: Checker, o: Record<string, unknown>): Omit<EmailConfig, 'type' | 'minSeverity' | 'kinds' | 'name'> {
  const host = c.str(o, 'host', 1, 253, true);
  if (!HOST_RE.test(host)) c.fail('host', 'must be a host name or IP address, like smtp.example.org.');
  const secure = o['secure'] ?? 'starttls';
  if (secure !== 'starttls' && secure !== 'tls' && secure !== 'none') c.fail('secure', 'must be "starttls" (port 587; the server must offer STARTTLS), "tls" (implicit TLS, port 465) or "none".');
  if (secure === 'none' && !LOCAL_HOSTS.has(host.toLowerCase())) c.fail('secure', 'is "none", which sends alarms and the password in clear text; it is allowed only for a server on this machine (127.0.0.1, localhost), for testing. Use "starttls" or "tls".');
  let port = o['port'];
  if (port === undefined || port === null) port = secure === 'tls' ? 465 : secure === 'starttls' ? 587 : 25;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) c.fail('port', 'must be a whole number from 1 to 65535.');
  const user = c.str(o, 'user', 1, 256, false);
  const password = c.str(o, 'password', 1, 1024, false);
  if (password !== undefined && user === undefined) c.fail('user', 'is required with "password".');
  if (user !== undefined && password === undefined) c.fail('password', 'is required with "user".');
  const from = address(c, 'from', c.str(o, 'from', 3, 340, true), true);
  const toV = o['to'];
  if (typeof toV === 'string') o = { ...o, to: [toV] };
  const to = o['to'];
  if (!Array.isArray(to) || to.length === 0 || to.length > 50) c.fail('to', 'must be a list of 1 to 50 e-mail addresses.');
  const list = to.map((a, i) => {
    if (typeof a !== 'string' || a.length > 320) c.fail(`to[${i}]`, 'must be an e-mail address.');
    return address(c, `to[${i}]`, a, false);
  });
  const ru = o['rejectUnauthorized'];
  if (ru !== undefined && ru !== null && typeof ru !== 'boolean') c.fail('rejectUnauthorized', 'must be true or false.');
  const ca = c.str(o, 'ca', 1, 4096, false);
  if (ca !== undefined) readCa(ca, (problem) => c.fail('ca', problem));
  return {
    host,
    port,
    secure,
    ...(user !== undefined ? { user, password: password! } : {}),
    from,
    to: list,
    rejectUnauthorized: ru !== false,
    ...(ca !== undefined ? { ca } : {}),
  };
}

/** Reads a PEM CA file; `fail` gets a plain sentence (never the file's content). */
export function readCa(path: string, fail: (problem: string) => never): Buffer {
  if (!isAbsolute(path)) fail(`must be the absolute path of a PEM file (got ${JSON.stringify(path.slice(0, 200))}).`);
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    return fail(`names a file that cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'}): ${path}.`);
  }
  if (pem.length > 1024 * 1024 || !pem.includes('-----BEGIN CERTIFICATE-----')) fail(`names a file that holds no PEM certificate: ${path}.`);
  try {
    new X509Certificate(pem);
  } catch {
    fail(`names a file whose certificate cannot be read: ${path}.`);
  }
  return pem;
}

function sns(c: Checker, o: Record<string, unknown>): Omit<SnsConfig, 'type' | 'minSeverity' | 'kinds' | 'name'> {
  const topicArn = c.str(o, 'topicArn', 1, 400, true);
  const m = ARN_RE.exec(topicArn);
  if (!m) c.fail('topicArn', 'must be an SNS topic ARN like arn:aws:sns:eu-west-1:123456789012:custody-alarms.');
  const region = c.str(o, 'region', 1, 32, true);
  if (!REGION_RE.test(region)) c.fail('region', 'must be an AWS region like eu-west-1.');
  if (m[2] !== region) c.fail('region', `is ${region} but the topic is in ${m[2]}; they must agree.`);
  const endpoint = c.url(o, 'endpoint', false);
  const accessKeyId = c.str(o, 'accessKeyId', 16, 128, false);
  if (accessKeyId !== undefined && !/^[A-Z0-9]+$/.test(accessKeyId)) c.fail('accessKeyId', 'must be an AWS access key id (capital letters and digits).');
  const secretAccessKey = c.str(o, 'secretAccessKey', 16, 256, false);
  const sessionToken = c.str(o, 'sessionToken', 16, 4096, false);
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) c.fail(accessKeyId === undefined ? 'accessKeyId' : 'secretAccessKey', 'must be given together with the other; leave both out to use the standard AWS credential chain (environment, profile, instance role).');
  if (sessionToken !== undefined && accessKeyId === undefined) c.fail('sessionToken', 'needs accessKeyId and secretAccessKey.');
  return { topicArn, region, ...(endpoint ? { endpoint } : {}), ...(accessKeyId ? { accessKeyId, secretAccessKey: secretAccessKey! } : {}), ...(sessionToken ? { sessionToken } : {}) };
}

/**
 * Checks one configuration and returns it normalised (defaults filled in). Unknown fields are
 * refused: a typo like "secert" must not silently leave a webhook unsigned.
 */
export function parseNotifierConfig(input: unknown, origin: Origin = {}): NotifierConfig {
  const top = new Checker(origin, '');
  if (!input || typeof input !== 'object' || Array.isArray(input)) top.fail('type', `is missing: a notifier is a JSON object like {"type": "webhook", "url": "https://…", "secret": "…"}.`);
  const o = input as Record<string, unknown>;
  const type = o['type'];
  if (typeof type !== 'string' || !(NOTIFIER_TYPES as readonly string[]).includes(type)) {
    top.fail('type', `must be one of ${NOTIFIER_TYPES.join(', ')}${typeof type === 'string' ? ` (got ${JSON.stringify(type.slice(0, 40))})` : ''}.`);
  }
  const t = type as NotifierType;
  const c = new Checker(origin, t);
  for (const k of Object.keys(o)) {
    if (!FIELDS[t].includes(k)) c.fail(k.slice(0, 60), `is not a known field; the fields are ${FIELDS[t].join(', ')}.`);
  }
  const name = c.str(o, 'name', 1, 100, false);
  const common = { ...(name !== undefined ? { name } : {}), minSeverity: severity(c, o), ...(o['kinds'] != null ? { kinds: kinds(c, o) } : {}) };
  switch (t) {
    case 'webhook': {
      const url = c.url(o, 'url', true)!;
      const secret = c.str(o, 'secret', 16, 1024, true);
      return { type: t, ...common, url, secret };
    }
    case 'slack':
      return { type: t, ...common, url: c.url(o, 'url', true)! };
    case 'email':
      return { type: t, ...common, ...email(c, o) };
    case 'sns':
      return { type: t, ...common, ...sns(c, o) };
  }
}

/** The id a file entry gives itself, checked. */
export function parseId(v: unknown, origin: Origin): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !ID_RE.test(v)) return new Checker(origin, '').fail('id', 'must look like ntf_soc-webhook (ntf_ then up to 48 letters, digits, _ or -).');
  return v;
}

export function isNotifierId(v: string): boolean {
  return ID_RE.test(v);
}

/** The configuration without its secrets (what goes into the plain column). */
export function splitSecrets(c: NotifierConfig): { plain: Record<string, unknown>; secrets: Record<string, string> } {
  const plain: Record<string, unknown> = { ...c };
  const secrets: Record<string, string> = {};
  for (const f of SECRET_FIELDS[c.type]) {
    const v = plain[f];
    if (typeof v === 'string') secrets[f] = v;
    delete plain[f];
  }
  return { plain, secrets };
}

function redactUrl(u: string, whole: boolean): string {
  try {
    const url = new URL(u);
    if (whole) return `${url.origin}/${REDACTED}`;
    return `${url.origin}${url.pathname}${url.search ? `?${REDACTED}` : ''}`;
  } catch {
    return REDACTED;
  }
}

/** The configuration as the API and the audit log show it: every secret is "***". */
export function redactConfig(c: NotifierConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...c };
  for (const f of SECRET_FIELDS[c.type]) if (out[f] !== undefined) out[f] = REDACTED;
  if (c.type === 'slack') out['url'] = redactUrl(c.url, true);
  if (c.type === 'webhook') out['url'] = redactUrl(c.url, false);
  return out;
}

/** Where it sends, in a few words without secrets: "webhook https://siem.example.org/hook". */
export function describeTarget(c: NotifierConfig): string {
  switch (c.type) {
    case 'webhook':
      return `webhook ${redactUrl(c.url, false)}`;
    case 'slack':
      return `Slack webhook ${redactUrl(c.url, true)}`;
    case 'email':
      return `e-mail to ${c.to.join(', ')} via ${c.host}:${c.port}`;
    case 'sns':
      return `SNS topic ${c.topicArn}`;
  }
}

/** A notifier as GET /v1/notifiers shows it. */
export function publicView(n: Notifier): Record<string, unknown> {
  return { id: n.id, type: n.config.type, source: n.source, target: describeTarget(n.config), createdAt: n.createdAt, createdBy: n.createdBy, config: redactConfig(n.config) };
}

/** The secret values of a configuration, to scrub from any error text before it is shown or logged. */
export function secretValues(c: NotifierConfig): string[] {
  const vals: string[] = [];
  const rec = c as unknown as Record<string, unknown>;
  for (const f of SECRET_FIELDS[c.type]) {
    const v = rec[f];
    if (typeof v === 'string' && v.length >= 4) vals.push(v);
  }
  if (c.type === 'slack') {
    try {
      const u = new URL(c.url);
      if (u.pathname.length > 4) vals.push(u.pathname);
    } catch {
      /* checked before */
    }
  }
  return vals;
}

export function scrub(text: string, secrets: readonly string[]): string {
  let t = text;
  for (const s of secrets) t = t.split(s).join(REDACTED);
  return t;
}
