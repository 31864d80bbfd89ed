/**
 * What a delivery says, in each transport's form: the JSON body (webhook, SNS message), the
 * Slack text, the e-mail subject and body. Built from the alarm only; bounded in size.
 */
import type { Alarm } from '../types.js';
import type { AlarmPayload, Notice } from './types.js';

/** Larger bodies get their `details` replaced by a note (SNS takes at most 256 KB). */
export const MAX_BODY_BYTES = 200 * 1024;

export function toPayload(a: Alarm): AlarmPayload {
  return {
    id: a.id,
    kind: a.kind,
    rule: a.rule,
    severity: a.severity,
    title: a.title,
    details: a.details,
    time: a.time,
    lastTime: a.lastTime,
    count: a.count,
    log: a.log ?? null,
    entry: a.entry ?? null,
  };
}

/** The JSON body of a webhook delivery and of an SNS message. */
export function jsonBody(n: Notice, sentAt: Date): string {
  const body = (alarm: AlarmPayload): string =>
    JSON.stringify({ event: n.event, alarm, ...(n.repeats !== undefined ? { repeats: n.repeats } : {}), vault: n.vault, sentAt: sentAt.toISOString() });
  const full = body(n.alarm);
  if (Buffer.byteLength(full) <= MAX_BODY_BYTES) return full;
  const title = n.alarm.title.length > 2000 ? n.alarm.title.slice(0, 2000) + '…' : n.alarm.title;
  return body({ ...n.alarm, title, details: { truncated: true, note: `The details are too large to send; read them with GET /v1/alarms/${n.alarm.id}.` } });
}

function oneLine(s: string, max: number): string {
  const t = s.replace(/[\r\n\t]+/g, ' ').trim();
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

function what(n: Notice): string {
  if (n.event === 'test') return 'This is a test message: the notifier works.';
  if (n.event === 'repeated') return `Repeated ${n.repeats} more time${n.repeats === 1 ? '' : 's'} (seen ${n.alarm.count} times in all, last at ${n.alarm.lastTime}).`;
  return n.alarm.count > 1 ? `Seen ${n.alarm.count} times, last at ${n.alarm.lastTime}.` : `Raised at ${n.alarm.time}.`;
}

/** The e-mail subject: "[Custody high] <title>" (with "repeated" / "test" marked). */
export function subject(n: Notice): string {
  const tag = n.event === 'repeated' ? ` repeated x${n.repeats}` : n.event === 'test' ? ' test' : '';
  return oneLine(`[Custody ${n.alarm.severity}${tag}] ${n.alarm.title}`, 200);
}

/** The e-mail body: every fact, and where to look the alarm up. */
export function emailText(n: Notice): string {
  const a = n.alarm;
  let details = JSON.stringify(a.details, null, 2);
  if (details.length > MAX_BODY_BYTES) details = `(too large to send; read them with GET /v1/alarms/${a.id})`;
  const lines = [
    a.title,
    '',
    what(n),
    '',
    `Alarm:     #${a.id}`,
    `Severity:  ${a.severity}`,
    `Kind:      ${a.kind}`,
    `Rule:      ${a.rule}`,
    `Raised:    ${a.time}`,
    `Last seen: ${a.lastTime}`,
    `Count:     ${a.count}`,
    ...(a.log !== null ? [`Entry:     log ${a.log}${a.entry !== null ? `, index ${a.entry}` : ''}`] : []),
    `Vault:     ${n.vault.prefix} (${n.vault.id})`,
    '',
    'Details:',
    details,
    '',
    n.event === 'test'
      ? 'Nothing happened in the vault; an admin asked for this message (POST /v1/notifiers/<id>/test).'
      : `Look it up: GET /v1/alarms/${a.id} on the vault (auditor or admin token), or \`custody alarms --json\`.` +
        (a.log !== null && a.entry !== null ? `\nThe entry that caused it: GET /v1/logs/${a.log}/entries/${a.entry} (auditor).` : ''),
    '',
    '-- ',
    'Sent by Custody. Every delivery is recorded in the vault\'s audit log.',
  ];
  return lines.join('\n');
}

function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A Slack incoming-webhook body: a plain `text` summary, and the same as one block. */
export function slackBody(n: Notice): string {
  const a = n.alarm;
  const head = `[Custody ${a.severity.toUpperCase()}${n.event === 'test' ? ' TEST' : ''}] ${oneLine(a.title, 2000)}`;
  const tail = `${what(n)} Alarm #${a.id} (kind ${a.kind}, rule ${a.rule}) — look it up: GET /v1/alarms/${a.id}`;
  const text = slackEscape(`${head}\n${tail}`);
  return JSON.stringify({
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${slackEscape(head)}*`.slice(0, 3000) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: slackEscape(`${tail} · vault ${n.vault.prefix}`).slice(0, 3000) }] },
    ],
  });
}

/** An SNS Subject: ASCII, no line breaks, at most 100 characters. */
export function snsSubject(n: Notice): string {
  const ascii = subject(n).replace(/[^\x20-\x7e]/g, '?');
  return ascii.length > 100 ? ascii.slice(0, 97) + '...' : ascii;
}
