/**
 * The logs: size, latest checkpoint, verifier key (served and pinned), consistency with what
 * this browser verified before, and the ingest rate per source (GET /v1/stats/ingest).
 */
import { ApiError, enc, getJson, getText, listLogs, withQuery, type IngestStats, type LogRow } from '../api.js';
import { h, notice, replace, type Child } from '../dom.js';
import { checkOne, failureTitle, onTrustChange, trustOf, trustStore, visitCheck, type LogTrust } from '../trust-ui.js';
import { ingestChart } from './chart.js';
import type { PageContext } from './context.js';

/**
 * Names on the signature lines of the checkpoint other than the log's own (docs/WITNESS.md).
 * This page does not know the witnesses' keys, so it shows the names as written; auditors check
 * the cosignatures with `custody verify --witness <key> --witness-policy k`.
 */
function cosignersText(cp: string, origin: string): string {
  const at = cp.lastIndexOf('\n\n');
  const names = at < 0 ? [] : cp.slice(at + 2).split('\n').filter((l) => l.startsWith('\u2014 ')).map((l) => l.slice(2).split(' ')[0] ?? '').filter((n) => n !== '' && n !== origin);
  return names.length === 0 ? 'none (this vault publishes checkpoints without witnesses)' : `${names.join(', ')} — names as written; check them with custody verify --witness <key>`;
}

function trustText(t: LogTrust | undefined): { cls: string; text: string } {
  if (!t) return { cls: 'status-warn', text: 'not checked yet' };
  switch (t.status) {
    case 'checking':
      return { cls: 'status-warn', text: 'checking…' };
    case 'error':
      return { cls: 'status-warn', text: t.message };
    case 'pinned':
      return { cls: 'status-ok', text: `✓ pinned on first use (size ${t.pin.size})` };
    case 'unchanged':
      return { cls: 'status-ok', text: `✓ unchanged since verified (size ${t.pin.size})` };
    case 'extended':
      return { cls: 'status-ok', text: `✓ consistent: grew ${t.from} → ${t.pin.size}, proven` };
    case 'older':
      return { cls: 'status-ok', text: `✓ consistent (size ${t.pin.size})` };
    case 'failed':
      return { cls: 'status-bad', text: `✗ ${failureTitle(t.failure)}` };
  }
}

export function renderLogs(ctx: PageContext): void {
  const title = h('h1', { tabindex: '-1' }, 'Logs');
  const body = h('div', { id: 'logs' }, h('p', { role: 'status' }, 'Loading…'));
  replace(ctx.main, title, h('p', null, 'One log per region, plus the vault\'s own audit log. Each is a Merkle tree whose signed checkpoints this browser checks on every visit.'), body);
  title.focus();
  const cells = new Map<string, HTMLTableCellElement>();
  const paint = (): void => {
    for (const [name, td] of cells) {
      const st = trustText(trustOf(name));
      td.className = st.cls;
      replace(td, st.text);
    }
  };
  void (async () => {
    let logs: LogRow[];
    try {
      logs = await listLogs();
    } catch (e) {
      if (ctx.alive()) replace(body, notice('error', (e as Error).message));
      return;
    }
    if (!ctx.alive()) return;
    replace(
      body,
      h(
        'table',
        { id: 'logs-table' },
        h('thead', null, h('tr', null, ...['Log', 'Origin', 'Region', 'Kind', 'Entries', 'Consistency with this browser'].map((t) => h('th', { scope: 'col', class: t === 'Entries' ? 'num' : null }, t)))),
        h(
          'tbody',
          null,
          ...logs.map((l) => {
            const td = h('td', { 'aria-live': 'polite' });
            cells.set(l.name, td);
            return h('tr', null, h('td', null, h('a', { href: `#/logs/${enc(l.name)}` }, l.name)), h('td', { class: 'mono' }, l.origin), h('td', null, l.region), h('td', null, l.kind), h('td', { class: 'num' }, l.size.toLocaleString('en-US')), td);
          }),
        ),
      ),
    );
    paint();
  })();
  // Trust results arrive one log at a time: update the status cells in place (focus stays put).
  const off = onTrustChange(() => (ctx.alive() ? paint() : off()));
}

const RANGES: Record<string, { label: string; ms: number; bucket: 'minute' | 'hour' }> = {
  '1h': { label: 'Last hour, per minute', ms: 3_600_000, bucket: 'minute' },
  '24h': { label: 'Last 24 hours, per hour', ms: 86_400_000, bucket: 'hour' },
  '7d': { label: 'Last 7 days, per hour', ms: 7 * 86_400_000, bucket: 'hour' },
};

export function renderLog(ctx: PageContext): void {
  const name = ctx.params[0] ?? '';
  const title = h('h1', { tabindex: '-1' }, `Log ${name}`);
  const body = h('div', { id: 'log' }, h('p', { role: 'status' }, 'Loading…'));
  replace(ctx.main, title, body);
  title.focus();
  void (async () => {
    let row: LogRow | undefined;
    let cp: string;
    try {
      await visitCheck();
      row = (await listLogs(true)).find((l) => l.name === name);
      if (!row) throw new ApiError(404, 'LOG_NOT_FOUND', `The vault has no log named "${name}".`);
      cp = await getText(`/logs/${enc(name)}/checkpoint`);
    } catch (e) {
      if (ctx.alive()) replace(body, notice('error', (e as Error).message));
      return;
    }
    if (!ctx.alive()) return;
    const log = row;
    const statusCell = h('dd', { id: 'consistency-status' });
    const pinCell = h('dd', { class: 'mono', id: 'pinned-key' });
    const paint = (): void => {
      const s = trustText(trustOf(log.name));
      replace(statusCell, h('span', { class: s.cls }, s.text));
      const pin = trustStore.get(log.origin);
      replace(pinCell, pin ? `${pin.verifierKey}${pin.verifierKey === log.verifierKey ? ' (the same key the vault serves)' : ' — DIFFERENT from the key the vault serves now'} · pinned ${pin.pinnedAt} · last verified size ${pin.size} on ${pin.verifiedAt}` : 'nothing pinned in this browser yet');
    };
    paint();
    const off = onTrustChange(() => (ctx.alive() ? paint() : off()));

    const again = h('button', { type: 'button', class: 'secondary', id: 'check-again' }, 'Check consistency again');
    again.addEventListener('click', () => void checkOne(log));
    const forgetMsg = h('div', { 'aria-live': 'polite' });
    const forget = h('button', { type: 'button', class: 'secondary', id: 'forget-pin' }, 'Forget the pinned key and checkpoint');
    forget.addEventListener('click', () => {
      trustStore.forget(log.origin);
      replace(forgetMsg, notice('warning', `This browser no longer remembers log ${log.name}. The next check pins whatever the vault shows then: do this only after a key rotation or reset that its operator announced.`));
      paint();
    });

    const rangeSel = h('select', { id: 'range' }, ...Object.entries(RANGES).map(([k, r]) => h('option', { value: k }, r.label)));
    rangeSel.value = '24h';
    const chartBox = h('div', { id: 'chart-box', 'aria-live': 'polite' });
    const loadChart = async (): Promise<void> => {
      const r = RANGES[rangeSel.value] ?? RANGES['24h']!;
      const stepMs = r.bucket === 'minute' ? 60_000 : 3_600_000;
      const toMs = Date.now();
      const fromMs = toMs - r.ms;
      replace(chartBox, h('p', null, 'Loading…'));
      try {
        const stats = await getJson<IngestStats>(withQuery('/v1/stats/ingest', { log: log.name, bucket: r.bucket, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() }));
        if (!ctx.alive()) return;
        if (stats.buckets.length === 0) replace(chartBox, notice('info', 'No entries were stored in this log in that time.'));
        else replace(chartBox, ingestChart(stats.buckets, { fromMs, toMs, stepMs }));
      } catch (e) {
        if (!ctx.alive()) return;
        const missing = e instanceof ApiError && e.status === 404 && e.code === 'NOT_FOUND';
        replace(chartBox, notice(missing ? 'info' : 'error', missing ? 'Ingest statistics come from the search index, which this vault does not have (no GET /v1/stats/ingest).' : (e as Error).message));
      }
    };
    rangeSel.addEventListener('change', () => void loadChart());

    const facts: Child[] = [
      h('dt', null, 'Origin'),
      h('dd', { class: 'mono' }, log.origin),
      h('dt', null, 'Region'),
      h('dd', null, log.region),
      h('dt', null, 'Kind'),
      h('dd', null, log.kind === 'audit' ? 'the vault\'s own audit log' : 'region log'),
      h('dt', null, 'Entries'),
      h('dd', { id: 'log-size' }, `${log.size.toLocaleString('en-US')} in the latest checkpoint${log.pending > 0 ? `, ${log.pending.toLocaleString('en-US')} more waiting for the next one` : ''}`),
      h('dt', null, 'Verifier key (served)'),
      h('dd', { class: 'mono', id: 'verifier-key' }, log.verifierKey),
      h('dt', null, 'Pinned here'),
      pinCell,
      h('dt', null, 'Consistency'),
      statusCell,
      h('dt', null, 'Witness cosignatures'),
      h('dd', { id: 'cosigners' }, cosignersText(cp, log.origin)),
    ];
    replace(
      body,
      h('dl', { class: 'meta' }, ...facts),
      h('div', { class: 'actions' }, again, forget),
      forgetMsg,
      h('h2', null, 'Latest checkpoint'),
      h('pre', { class: 'checkpoint', id: 'checkpoint-text' }, cp),
      h('h2', null, 'Ingest rate by source'),
      h('div', { class: 'form-row' }, h('div', null, h('label', { for: 'range' }, 'Time range'), rangeSel)),
      chartBox,
      h('p', null, h('a', { href: `#/search?${new URLSearchParams({ q: `log:${log.name}` })}` }, `Search this log`)),
    );
    void loadChart();
  })();
}
