/**
 * Alarms: the vault's alarms from GET /v1/alarms (detectors, the self-audit, trust reports —
 * newest first, filterable by kind, repeats counted on one row), and below them the raw
 * refusals recorded in the vault's own audit log (refused requests, failed sign-ins, attempts
 * to change or delete records), each a link to its audit entry and its proof.
 */
import { getJson, listLogs, type EntryAnswer } from '../api.js';
import { h, notice, replace } from '../dom.js';
import type { PageContext } from './context.js';

const BATCH = 100;
const PARALLEL = 8;

/** The audit event types that belong on this page. */
export function isAlarmType(type: string): boolean {
  return /^(tamper\.|alarm\.trust|request\.refused|auth\.failed|syslog\.refused|admin\.totp\.failed)/.test(type);
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

interface Alarm {
  id: number;
  kind: string;
  rule: string;
  severity: string;
  title: string;
  details: Record<string, unknown>;
  time: string;
  lastTime: string;
  count: number;
  log?: string;
  entry?: number;
}

const KINDS = ['tamper', 'auth', 'silence', 'resumed', 'log-generation-off', 'integrity', 'trust', 'witness', 'content', 'admin'];
const PAGE = 100;

function detailsText(d: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(d)) {
    if (k === 'whatToDo' || v === undefined || v === null || v === '') continue;
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    parts.push(`${k}: ${text.length > 120 ? text.slice(0, 119) + '…' : text}`);
    if (parts.length >= 8) break;
  }
  return parts.join(' · ');
}

export function renderAlarms(ctx: PageContext): void {
  const title = h('h1', { tabindex: '-1' }, 'Alarms');
  const kind = h('select', { id: 'alarm-kind', 'aria-label': 'Kind of alarm' }, h('option', { value: '' }, 'All kinds'), ...KINDS.map((k) => h('option', { value: k }, k)));
  const status = h('div', { role: 'status', id: 'vault-alarms-status' }, 'Reading alarms…');
  const abody = h('tbody');
  const atable = h(
    'table',
    { id: 'vault-alarms-table', hidden: true },
    h('thead', null, h('tr', null, ...['Time (UTC)', 'Severity', 'Kind', 'What happened', 'Details', 'Cause'].map((t) => h('th', { scope: 'col' }, t)))),
    abody,
  );
  const amore = h('button', { type: 'button', class: 'secondary', id: 'vault-alarms-more', hidden: true }, 'Older alarms');
  const auditTitle = h('h2', null, 'Refusals in the audit log');
  const auditStatus = h('p', { role: 'status', id: 'alarms-status' }, 'Reading the newest entries of the audit log…');
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
    h('div', { class: 'actions' }, h('label', { for: 'alarm-kind' }, 'Show '), kind),
    status,
    atable,
    h('div', { class: 'actions' }, amore),
    auditTitle,
    h('p', null, 'Every refused request, failed sign-in and attempt to change or delete records, as the vault recorded it in its own audit log — each with its entry and proof. Alarms above are raised from these by the detectors.'),
    auditStatus,
    table,
    h('div', { class: 'actions' }, more),
  );
  title.focus();

  let before: number | null = null;
  let shown = 0;
  const readAlarms = async (fresh: boolean): Promise<void> => {
    amore.disabled = true;
    try {
      if (fresh) {
        before = null;
        shown = 0;
        abody.replaceChildren();
      }
      const qs = new URLSearchParams({ limit: String(PAGE) });
      if ((kind as HTMLSelectElement).value) qs.set('kind', (kind as HTMLSelectElement).value);
      if (before !== null) qs.set('before', String(before));
      const r = await getJson<{ alarms: Alarm[]; next: number | null }>(`/v1/alarms?${qs}`);
      if (!ctx.alive()) return;
      for (const a of r.alarms) {
        shown++;
        abody.appendChild(
          h(
            'tr',
            { 'data-kind': a.kind, 'data-severity': a.severity, 'data-id': String(a.id) },
            h('td', { class: 'mono' }, a.time, a.count > 1 ? h('span', null, h('br'), `×${a.count}, last ${a.lastTime}`) : null),
            h('td', null, h('span', { class: `badge severity-${a.severity}` }, a.severity)),
            h('td', null, a.kind),
            h('td', { class: 'wrap' }, a.title),
            h('td', { class: 'wrap' }, detailsText(a.details)),
            h('td', null, a.log !== undefined && a.entry !== undefined ? h('a', { href: `#/entry/${encodeURIComponent(a.log)}/${a.entry}` }, `${a.log}:${a.entry}`) : `#${a.id}`),
          ),
        );
      }
      before = r.next;
      atable.hidden = shown === 0;
      amore.hidden = r.next === null;
      replace(status, shown === 0 ? 'No alarms.' : `${shown.toLocaleString('en-US')} ${shown === 1 ? 'alarm' : 'alarms'}, newest first.`);
    } catch (e) {
      if (ctx.alive()) replace(status, notice('error', `The alarms could not be read: ${(e as Error).message}`));
    } finally {
      amore.disabled = false;
    }
  };
  kind.addEventListener('change', () => void readAlarms(true));
  amore.addEventListener('click', () => void readAlarms(false));
  void readAlarms(true);

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
      replace(auditStatus, found === 0 ? `Nothing alarming in ${span}${lo > 0 ? '; look further back for older ones' : ''}.` : `${found.toLocaleString('en-US')} ${found === 1 ? 'event' : 'events'} in ${span}, newest first.`);
      more.hidden = lo === 0;
    } catch (e) {
      if (ctx.alive()) auditStatus.replaceWith(notice('error', `The audit log could not be read: ${(e as Error).message}`));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', () => void readBatch());
  void readBatch();
}

