/**
 * Search (GET /v1/search, docs/SEARCH.md) and "export evidence" (GET /v1/export,
 * docs/EVIDENCE.md). The index only finds records: every hit links to its entry page, where
 * the record is proven.
 */
import { ApiError, enc, getJson, request, withQuery, type SearchAnswer, type SearchHit } from '../api.js';
import { download, h, isoTime, notice, plural, replace, type Child } from '../dom.js';
import type { PageContext } from './context.js';

const PAGE = 50;

function hitRow(hit: SearchHit): HTMLTableRowElement {
  const outcome = hit.outcome ?? '';
  return h(
    'tr',
    null,
    h('td', null, isoTime(hit.time)),
    h('td', null, h('a', { href: `#/entry/${enc(hit.log)}/${hit.index}`, class: 'hit-link' }, `${hit.log}:${hit.index}`)),
    h('td', null, hit.source ?? ''),
    h('td', null, hit.action ?? ''),
    h('td', { class: 'wrap' }, hit.actor ?? ''),
    h('td', { class: outcome ? `outcome-${outcome.toLowerCase()}` : null }, outcome),
    h('td', null, hit.srcIp ?? ''),
  );
}

function resultsTable(): { table: HTMLTableElement; body: HTMLTableSectionElement } {
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'results', id: 'results-table' },
    h('caption', { class: 'sr-only' }, 'Search results'),
    h('thead', null, h('tr', null, ...['Time', 'Log:index', 'Source', 'Action', 'Actor', 'Outcome', 'Source IP'].map((t) => h('th', { scope: 'col' }, t)))),
    body,
  );
  return { table, body };
}

function queryProblem(q: string, e: ApiError): HTMLElement {
  const pos = typeof e.details?.['position'] === 'number' ? (e.details['position'] as number) : null;
  const expected = e.details?.['expected'];
  const parts: Child[] = [h('strong', null, 'The query cannot be read.'), e.message];
  if (pos !== null && pos >= 0 && pos <= q.length) {
    parts.push(h('pre', { class: 'mono', 'aria-label': `Problem at character ${pos + 1}` }, `${q}\n${' '.repeat(pos)}^`));
  }
  if (expected !== undefined && !e.message.includes(String(expected))) parts.push(h('p', null, `Expected: ${Array.isArray(expected) ? expected.join(', ') : String(expected)}.`));
  return h('div', { id: 'search-error' }, notice('error', ...parts));
}

function filenameOf(res: Response): string {
  const cd = res.headers.get('content-disposition') ?? '';
  const m = /filename="?([^";]+)"?/i.exec(cd);
  const name = m?.[1] ?? `custody-evidence-${new Date().toISOString().replace(/[:.]/g, '-')}.zip`;
  return name.replace(/[\\/]/g, '_');
}

export function renderSearch(ctx: PageContext): void {
  const q = ctx.query;
  const query = q.get('q');
  const qInput = h('input', { id: 'q', name: 'q', type: 'search', class: 'query-box', value: query ?? '', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'q-help' });
  const fromInput = h('input', { id: 'from', name: 'from', type: 'text', value: q.get('from') ?? '', placeholder: '2024-01-31, …T12:00:00Z or now-1h', size: 26 });
  const toInput = h('input', { id: 'to', name: 'to', type: 'text', value: q.get('to') ?? '', placeholder: 'now', size: 26 });
  const order = h('select', { id: 'order', name: 'order' }, h('option', { value: 'desc' }, 'Newest first'), h('option', { value: 'asc' }, 'Oldest first'));
  order.value = q.get('order') === 'asc' ? 'asc' : 'desc';
  const results = h('section', { id: 'results', 'aria-labelledby': 'results-heading' });
  const form = h(
    'form',
    { role: 'search', id: 'search-form' },
    h(
      'div',
      { class: 'form-grid' },
      h(
        'div',
        null,
        h('label', { for: 'q' }, 'Query'),
        qInput,
        h(
          'p',
          { class: 'hint', id: 'q-help' },
          'Fields: ',
          h('code', null, 'actor:"arn:aws:iam::123456789012:user/alice"'),
          ', ',
          h('code', null, 'actor:ali*'),
          ', ',
          h('code', null, 'outcome:failure'),
          ', ',
          h('code', null, 'srcIp:203.0.113.7'),
          ', ',
          h('code', null, 'source:aws.cloudtrail'),
          ', also log, region, account, dstIp, severity, resource, ocsf. Words and "quoted phrases" search the full text; combine with AND, OR, NOT, -term and ( ). Time: ',
          h('code', null, 'time:[2024-01-01 TO 2024-01-31T12:00:00Z]'),
          ' or the fields below. See docs/SEARCH.md.',
        ),
      ),
      h(
        'div',
        { class: 'form-row' },
        h('div', null, h('label', { for: 'from' }, 'From ', h('span', { class: 'hint' }, '(UTC)')), fromInput),
        h('div', null, h('label', { for: 'to' }, 'To ', h('span', { class: 'hint' }, '(UTC)')), toInput),
        h('div', null, h('label', { for: 'order' }, 'Order'), order),
        h('div', null, h('button', { type: 'submit', id: 'search-button' }, 'Search')),
      ),
    ),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.go(`#/search?${new URLSearchParams({ q: qInput.value.trim(), ...(fromInput.value.trim() ? { from: fromInput.value.trim() } : {}), ...(toInput.value.trim() ? { to: toInput.value.trim() } : {}), order: order.value })}`);
  });
  replace(ctx.main, h('h1', { tabindex: '-1' }, 'Search'), form, results);

  if (query === null) {
    qInput.focus();
    return;
  }
  const params = { q: query, from: q.get('from') ?? undefined, to: q.get('to') ?? undefined, order: order.value };
  replace(results, h('p', { role: 'status' }, 'Searching…'));
  void runSearch(ctx, results, params);
}

async function runSearch(ctx: PageContext, results: HTMLElement, params: { q: string; from?: string | undefined; to?: string | undefined; order: string }): Promise<void> {
  let answer: SearchAnswer;
  try {
    answer = await getJson<SearchAnswer>(withQuery('/v1/search', { ...params, limit: PAGE }));
  } catch (e) {
    if (!ctx.alive()) return;
    if (e instanceof ApiError && e.code === 'BAD_QUERY') replace(results, queryProblem(params.q, e));
    else if (e instanceof ApiError && e.status === 404 && e.code === 'NOT_FOUND') replace(results, notice('error', h('strong', null, 'Search is not available on this vault.'), 'It has no search index (GET /v1/search). Records can still be read by index from the Logs page.'));
    else replace(results, notice('error', h('strong', null, 'The search failed.'), (e as Error).message));
    results.querySelector<HTMLElement>('[role="alert"]')?.focus();
    return;
  }
  if (!ctx.alive()) return;

  const heading = h('h2', { id: 'results-heading', tabindex: '-1' }, 'Results');
  const lagging = Object.entries(answer.lag ?? {}).filter(([, n]) => n > 0);
  const lagNote = lagging.length > 0 ? notice('warning', `The search index is still catching up (${lagging.map(([l, n]) => `${l}: ${plural(n, 'entry', 'entries')} not yet indexed`).join('; ')}); the newest records may be missing from these results.`) : null;

  if (answer.hits.length === 0) {
    replace(
      results,
      heading,
      lagNote,
      h('div', { id: 'no-results' }, notice('info', h('strong', null, 'No records match this search.'), `Nothing matches ${JSON.stringify(params.q)}${params.from || params.to ? ` between ${params.from || 'the beginning'} and ${params.to || 'now'}` : ''}. Try fewer terms, a wider time range, or a prefix like actor:ali*.`)),
    );
    heading.focus();
    return;
  }

  const { table, body } = resultsTable();
  for (const hit of answer.hits) body.appendChild(hitRow(hit));
  const summary = h('p', { id: 'results-summary', role: 'status' });
  const shown = (): void => {
    replace(summary, `${answer.totalCapped ? `More than ${answer.total.toLocaleString('en-US')}` : answer.total.toLocaleString('en-US')} ${answer.total === 1 && !answer.totalCapped ? 'match' : 'matches'}; showing ${body.rows.length.toLocaleString('en-US')}.`);
  };
  shown();
  let next = answer.next;
  const more = h('button', { type: 'button', class: 'secondary', id: 'more-button' }, 'More results');
  more.hidden = next === null;
  more.addEventListener('click', () => {
    if (!next) return;
    more.disabled = true;
    void (async () => {
      try {
        const page = await getJson<SearchAnswer>(withQuery('/v1/search', { ...params, limit: PAGE, cursor: next }));
        if (!ctx.alive()) return;
        const first = body.rows.length;
        for (const hit of page.hits) body.appendChild(hitRow(hit));
        next = page.next;
        more.hidden = next === null;
        shown();
        body.rows[first]?.querySelector<HTMLElement>('a')?.focus();
      } catch (e) {
        more.after(notice('error', `Could not load more results: ${(e as Error).message}`));
      } finally {
        more.disabled = false;
      }
    })();
  });

  const exportStatus = h('div', { id: 'export-status', 'aria-live': 'polite' });
  const exportButton = h('button', { type: 'button', id: 'export-button' }, 'Export evidence (.zip)');
  exportButton.addEventListener('click', () => {
    exportButton.disabled = true;
    replace(exportStatus, notice('info', 'Building the evidence bundle: every matching record with its entry, inclusion proof and signed checkpoint…'));
    void (async () => {
      try {
        const res = await request('GET', withQuery('/v1/export', { q: params.q, from: params.from, to: params.to }), { accept: 'application/zip' });
        const blob = await res.blob();
        const name = filenameOf(res);
        download(name, blob);
        replace(exportStatus, notice('ok', h('strong', null, `Saved ${name}`), `(${blob.size.toLocaleString('en-US')} bytes). Anyone can check it without trusting this vault: `, h('a', { href: '#/verify' }, 'Verify a bundle'), ' here, or ', h('code', null, `custody verify-bundle ${name} --key <vkey>`), '.'));
      } catch (e) {
        const missing = e instanceof ApiError && e.status === 404 && e.code === 'NOT_FOUND';
        replace(exportStatus, notice('error', h('strong', null, missing ? 'Evidence export is not available on this vault.' : 'The export failed.'), missing ? 'It has no GET /v1/export.' : (e as Error).message));
      } finally {
        exportButton.disabled = false;
      }
    })();
  });

  replace(results, heading, summary, lagNote, h('div', { class: 'actions' }, exportButton), exportStatus, table, h('div', { class: 'actions' }, more));
  heading.focus();
}
