/**
 * `custody alarms` — the vault's alarms, newest first (auditor or admin token). docs/ALARMS.md.
 * Exit code 0 whether or not there are alarms; `--json` prints the API's answer.
 */
import type { Alarm } from '../alarms/index.js';
import { CustodyClient } from './client.js';

export interface AlarmsFlags {
  url?: string;
  token?: string;
  json?: boolean;
  kind?: string;
  since?: string;
  until?: string;
  limit?: number;
}

const PAGE = 500;

function relative(t: string | undefined): string | undefined {
  if (!t) return undefined;
  const m = /^now-(\d+)([smhd])$/.exec(t);
  if (!m) return t;
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return new Date(Date.now() - Number(m[1]) * unit).toISOString();
}

export function alarmsTable(alarms: Alarm[]): string {
  if (alarms.length === 0) return 'No alarms.';
  const lines = alarms.map((a) => {
    const times = a.count > 1 ? `${a.time} (×${a.count}, last ${a.lastTime})` : a.time;
    return `#${a.id}  ${a.severity.toUpperCase().padEnd(8)} ${a.kind.padEnd(18)} ${times}\n    ${a.title}`;
  });
  return lines.join('\n');
}

export async function alarmsCommand(o: AlarmsFlags): Promise<number> {
  const c = new CustodyClient(o);
  c.requireToken();
  const want = o.limit ?? 50;
  const out: Alarm[] = [];
  let before: number | null = null;
  while (out.length < want) {
    const qs = new URLSearchParams({ limit: String(Math.min(PAGE, want - out.length)) });
    if (o.kind) qs.set('kind', o.kind);
    const since = relative(o.since);
    const until = relative(o.until);
    if (since) qs.set('since', since);
    if (until) qs.set('until', until);
    if (before !== null) qs.set('before', String(before));
    const r: { alarms: Alarm[]; next: number | null } = await c.json('GET', `/v1/alarms?${qs}`);
    out.push(...r.alarms);
    if (r.next === null) break;
    before = r.next;
  }
  if (o.json) process.stdout.write(JSON.stringify({ alarms: out }, null, 2) + '\n');
  else process.stdout.write(alarmsTable(out) + '\n');
  return 0;
}
