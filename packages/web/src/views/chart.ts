/**
 * Ingest rate per source over time: stacked bars drawn as SVG (no chart library), with the
 * same numbers as a table for screen readers and for copying.
 */
import { h, svg, type Child } from '../dom.js';

export const PALETTE = ['#1d4ed8', '#c2410c', '#15803d', '#7e22ce', '#be123c', '#0e7490', '#a16207', '#4b5563'];

export interface Bucket {
  t: string;
  source: string;
  count: number;
}

function label(ms: number, stepMs: number): string {
  const iso = new Date(ms).toISOString();
  return stepMs < 3_600_000 ? iso.slice(11, 16) : `${iso.slice(5, 10)} ${iso.slice(11, 13)}h`;
}

/** Time slots from..to in steps (gaps shown as zero), or the distinct bucket times when that would be too many. */
function slots(buckets: Bucket[], fromMs: number, toMs: number, stepMs: number): number[] {
  const n = Math.floor((toMs - fromMs) / stepMs) + 1;
  if (n > 0 && n <= 2000) {
    const start = Math.floor(fromMs / stepMs) * stepMs;
    return Array.from({ length: n }, (_, i) => start + i * stepMs);
  }
  return [...new Set(buckets.map((b) => Date.parse(b.t)).filter((t) => Number.isFinite(t)))].sort((a, b) => a - b);
}

export function ingestChart(buckets: Bucket[], range: { fromMs: number; toMs: number; stepMs: number }): Child {
  const sources = [...new Set(buckets.map((b) => b.source))].sort();
  const times = slots(buckets, range.fromMs, range.toMs, range.stepMs);
  const index = new Map<number, number>();
  times.forEach((t, i) => index.set(t, i));
  const counts = times.map(() => new Map<string, number>());
  for (const b of buckets) {
    const t = Date.parse(b.t);
    const slot = index.get(Math.floor(t / range.stepMs) * range.stepMs) ?? index.get(t);
    if (slot === undefined) continue;
    counts[slot]!.set(b.source, (counts[slot]!.get(b.source) ?? 0) + b.count);
  }
  const totals = counts.map((m) => [...m.values()].reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const total = totals.reduce((a, b) => a + b, 0);

  const W = 900;
  const H = 260;
  const L = 56;
  const R = 12;
  const T = 12;
  const B = 36;
  const plotW = W - L - R;
  const plotH = H - T - B;
  const slotW = plotW / Math.max(1, times.length);
  const barW = Math.max(1, slotW * 0.8);
  const y = (v: number): number => T + plotH - (v / max) * plotH;

  const parts: SVGElement[] = [];
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    parts.push(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#d5dde5', 'stroke-width': 1 }));
    parts.push(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  times.forEach((t, i) => {
    let base = 0;
    sources.forEach((s, si) => {
      const c = counts[i]!.get(s) ?? 0;
      if (c === 0) return;
      const top = y(base + c);
      parts.push(svg('rect', { x: L + i * slotW + (slotW - barW) / 2, y: top, width: barW, height: Math.max(0.5, y(base) - top), fill: PALETTE[si % PALETTE.length]! }, svg('title', {}, `${new Date(t).toISOString()} ${s}: ${c}`)));
      base += c;
    });
  });
  if (times.length > 0) {
    const marks = times.length === 1 ? [0] : [0, Math.floor((times.length - 1) / 2), times.length - 1];
    for (const i of marks) {
      parts.push(svg('text', { x: L + i * slotW + slotW / 2, y: H - B + 16, 'text-anchor': i === 0 ? 'start' : i === times.length - 1 ? 'end' : 'middle' }, label(times[i]!, range.stepMs)));
    }
  }
  parts.push(svg('text', { x: L, y: H - 4 }, 'UTC'));
  parts.push(svg('line', { x1: L, x2: W - R, y1: T + plotH, y2: T + plotH, stroke: '#4a5866', 'stroke-width': 1 }));

  const chart = svg('svg', { class: 'chart', id: 'ingest-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Entries stored per ${range.stepMs < 3_600_000 ? 'minute' : 'hour'} by source: ${total} in total, at most ${max} in one ${range.stepMs < 3_600_000 ? 'minute' : 'hour'}.` }, ...parts);

  const legend = h('ul', { class: 'legend' }, ...sources.map((s, i) => h('li', null, h('span', { class: `swatch swatch-${i % PALETTE.length}`, 'aria-hidden': 'true' }), `${s} (${buckets.filter((b) => b.source === s).reduce((a, b) => a + b.count, 0).toLocaleString('en-US')})`)));

  const rows = buckets.filter((b) => b.count > 0).sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.source < b.source ? -1 : 1));
  const table = h(
    'details',
    null,
    h('summary', null, 'The same numbers as a table'),
    h('table', null, h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Time (UTC)'), h('th', { scope: 'col' }, 'Source'), h('th', { scope: 'col', class: 'num' }, 'Entries'))), h('tbody', null, ...rows.map((b) => h('tr', null, h('td', null, b.t), h('td', null, b.source), h('td', { class: 'num' }, String(b.count)))))),
  );
  return [chart, legend, table];
}
