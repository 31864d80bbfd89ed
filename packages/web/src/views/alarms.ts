/**
 * Alarms, for now read straight from the vault's own audit log (`audit`): refusals, failed
 * sign-ins, tamper attempts and trust alarms, newest first. The alarms feature (issue 5,
 * /v1/alarms: detectors, notifications, acknowledgement) will replace this list; until then
 * every row here is still an audit-log entry with its own proof (follow the link).
 */
import { getJson, listLogs, type EntryAnswer } from '../api.js';
import { h, notice, replace } from '../dom.js';
import type { PageContext } from './context.js';

const BATCH = 100;
const PARALLEL = 8;

/** The audit event types that belong on this page. */
export function isAlarmType(type: string): boolean {
  return /^(tamper\.|alarm\.|request\.refused|auth\.failed|syslog\.refused)/.test(type);
}

const TITLES: Array<[RegExp, string]> = [
  [/^alarm\.trust/, 'Trust alarm: a client saw the log rewritten or forked'],
  [/^tamper\.attempt\.suppressed/, 'Many attempts to change or delete records (counted)'],
  [/^tamper\.attempt/, 'Attempt to change or delete records'],
  [/^auth\.failed\.suppressed/, 'Many failed sign-ins or bad tokens (counted)'],
  [/^auth\.failed/, 'Failed authentication'],
  [/^request\.refused/, 'Request refused for its role'],
  [/^syslog\.refused/, 'Syslog connection refused'],
  [/^alarm\./, 'Alarm'],
];

function titleOf(type: string): string {
  return TITLES.find(([re]) => re.test(type))?.[1] ?? type;
}

function detailOf(e: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const k of ['kind', 'reason', 'log', 'method', 'path', 'count', 'message']) {
    const v = e[k];
    if (v !== undefined && v !== null && v !== '') parts.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return parts.join(' · ');
}

function who(e: Record<string, unknown>): string {
  const p = e['principal'] as { name?: unknown; role?: unknown } | null | undefined;
  if (p && typeof p.name === 'string') return `${p.name} (${String(p.role ?? '')})`;
  return 'no valid token';
}

export function renderAlarms(ctx: PageContext): void {
  const title = h('h1', { tabindex: '-1' }, 'Alarms');
  const status = h('p', { role: 'status', id: 'alarms-status' }, 'Reading the newest entries of the audit log…');
  const tbody = h('tbody');
  const table = h(
    'table',
    { id: 'alarms-table', hidden: true },
    h('thead', null, h('tr', null, ...['Time (UTC)', 'What', 'Details', 'Who', 'From', 'Audit entry'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody,
  );
  const more = h('button', { type: 'button', class: 'secondary', id: 'alarms-more', hidden: true }, 'Look further back');
  replace(
    ctx.main,
    title,
    notice('info', 'Full alarms (detectors, notifications, acknowledgement) come with the alarms feature. Until then this page lists what the vault recorded in its own audit log: refused requests, failed sign-ins, attempts to change or delete records, and trust alarms reported by auditors\' clients.'),
    status,
    table,
    h('div', { class: 'actions' }, more),
  );
  title.focus();

  let nextBelow = -1; // audit entries [0, nextBelow) are not read yet
  let found = 0;
  let read = 0;
  const readBatch = async (): Promise<void> => {
    more.disabled = true;
    try {
      if (nextBelow < 0) {
        const audit = (await listLogs(true)).find((l) => l.kind === 'audit');
        if (!audit) throw new Error('The vault lists no audit log.');
        nextBelow = audit.size;
      }
      const hi = nextBelow;
      const lo = Math.max(0, hi - BATCH);
      const indices: number[] = [];
      for (let i = hi - 1; i >= lo; i--) indices.push(i);
      const rows = new Map<number, Record<string, unknown>>();
      for (let k = 0; k < indices.length; k += PARALLEL) {
        const chunk = indices.slice(k, k + PARALLEL);
        const answers = await Promise.all(chunk.map((i) => getJson<EntryAnswer>(`/v1/logs/audit/entries/${i}`)));
        answers.forEach((a, j) => {
          try {
            const rec = JSON.parse(a.record) as Record<string, unknown>;
            if (typeof rec['type'] === 'string' && isAlarmType(rec['type'])) rows.set(chunk[j]!, rec);
          } catch {
            /* not JSON: not an event of ours */
          }
        });
        if (!ctx.alive()) return;
      }
      nextBelow = lo;
      read += hi - lo;
      for (const i of indices) {
        const e = rows.get(i);
        if (!e) continue;
        found++;
        tbody.appendChild(
          h(
            'tr',
            { 'data-type': String(e['type']) },
            h('td', { class: 'mono' }, String(e['time'] ?? '')),
            h('td', null, titleOf(String(e['type'])), h('br'), h('span', { class: 'badge' }, String(e['type']))),
            h('td', { class: 'wrap' }, detailOf(e)),
            h('td', null, who(e)),
            h('td', null, typeof e['address'] === 'string' ? e['address'] : ''),
            h('td', null, h('a', { href: `#/entry/audit/${i}` }, `audit:${i}`)),
          ),
        );
      }
      table.hidden = found === 0;
      const span = `the newest ${read.toLocaleString('en-US')} audit ${read === 1 ? 'entry' : 'entries'}`;
      replace(status, found === 0 ? `Nothing alarming in ${span}${lo > 0 ? '; look further back for older ones' : ''}.` : `${found.toLocaleString('en-US')} ${found === 1 ? 'event' : 'events'} in ${span}, newest first.`);
      more.hidden = lo === 0;
    } catch (e) {
      if (ctx.alive()) status.replaceWith(notice('error', `The audit log could not be read: ${(e as Error).message}`));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', () => void readBatch());
  void readBatch();
}

