/**
 * `custody rules list|show|add`: the alarm rules of a server (docs/ALARMS.md). Reading takes an
 * auditor or admin token; adding or changing takes an admin token and a current TOTP code.
 * A change that loosens a rule is not applied but requested: another admin approves it.
 */
import { readFileSync } from 'node:fs';
import { CustodyError } from '../errors.js';
import { CustodyClient } from './client.js';
import { print, type ClientFlags } from './commands.js';
import { totpHeaders } from './admin.js';

interface RuleView {
  id: string;
  type: string;
  kind: string;
  severity: string;
  enabled: boolean;
  description: string;
  origin: string;
  updatedAt: string;
  updatedBy: string;
  [k: string]: unknown;
}

interface Watched {
  key: string;
  lastSeen: number;
  thresholdMs: number;
  samples: number;
  silentSince: number | null;
}

/** Exit code of `rules add` when a change waits for a second admin's approval. */
export const EXIT_APPROVAL_NEEDED = 3;

function client(o: ClientFlags): CustodyClient {
  const c = new CustodyClient(o);
  c.requireToken();
  return c;
}

function cell(s: string, w: number): string {
  return s.length > w ? `${s.slice(0, w - 1)}…` : s.padEnd(w);
}

export async function rulesList(o: ClientFlags): Promise<number> {
  const body = await client(o).json<{ rules: RuleView[] }>('GET', '/v1/rules');
  print(o.json, body, () => {
    const head = `${cell('id', 46)}  ${cell('type', 9)}  ${cell('kind', 18)}  ${cell('severity', 8)}  on?`;
    const rows = body.rules.map((r) => `${cell(r.id, 46)}  ${cell(r.type, 9)}  ${cell(r.kind, 18)}  ${cell(r.severity, 8)}  ${r.enabled ? 'yes' : 'NO'}`);
    const off = body.rules.filter((r) => !r.enabled).length;
    return [head, ...rows, '', `${body.rules.length} rules${off ? `, ${off} disabled` : ''}. One rule in full: custody rules show <id>`].join('\n');
  });
  return 0;
}

export async function rulesShow(id: string, o: ClientFlags): Promise<number> {
  const body = await client(o).json<{ rule: RuleView; watched?: Watched[] }>('GET', `/v1/rules/${encodeURIComponent(id)}`);
  print(o.json, body, () => {
    const { origin, createdAt, updatedAt, updatedBy, ...rule } = body.rule;
    void createdAt;
    const lines = [JSON.stringify(rule, null, 2), '', `From ${origin}; last changed ${updatedAt} by ${updatedBy}.`];
    if (body.watched) {
      lines.push('', body.watched.length === 0 ? 'Watching nothing yet (nothing has been received).' : 'Watching:');
      for (const w of body.watched) {
        lines.push(`  ${cell(w.key, 60)}  last seen ${new Date(w.lastSeen).toISOString()}  threshold ${Math.round(w.thresholdMs / 1000)} s${w.silentSince !== null ? '  SILENT' : ''}`);
      }
    }
    return lines.join('\n');
  });
  return 0;
}

/**
 * Posts the rule in the file: the whole rule as it should be. One rule per file — each TOTP
 * code is good for one request. Exit 0 when applied, 3 when it waits for another admin.
 */
export async function rulesAdd(file: string, o: ClientFlags & { totp?: string }): Promise<number> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}).`);
  }
  let rule: unknown;
  try {
    rule = JSON.parse(text);
  } catch (e) {
    throw new CustodyError('RULE_INVALID', `${file} is not valid JSON (${(e as Error).message.slice(0, 200)}); it must hold one rule, a JSON object.`, { field: '(file)' });
  }
  if (Array.isArray(rule)) {
    if (rule.length !== 1) throw new CustodyError('RULE_INVALID', `${file} holds ${rule.length} rules; \`custody rules add\` takes one rule per file (each TOTP code is good for one request).`, { field: '(file)' });
    rule = rule[0];
  }
  const res = await client(o).request('POST', '/v1/rules', { body: JSON.stringify(rule), headers: { 'content-type': 'application/json', ...totpHeaders(o) } });
  const body = (await res.json()) as { status: string; rule?: RuleView; id?: string; note?: string; changes?: Array<{ note: string }> };
  const id = body.rule?.id ?? body.id ?? '?';
  const changes = (body.changes ?? []).map((ch) => ch.note).join('; ');
  print(o.json, body, () =>
    body.status === 'added' ? `Added rule ${id}; it runs now.`
    : body.status === 'tightened' ? `Tightened rule ${id} (${changes}); it runs now.`
    : body.status === 'unchanged' ? `Rule ${id} is already like this; nothing changed.`
    : body.status === 'approval-needed' ? (body.note ?? `Rule ${id}: the change loosens it and waits for another admin's approval.`)
    : `Changed rule ${id}${changes ? ` (${changes})` : ''}.`,
  );
  return res.status === 202 ? EXIT_APPROVAL_NEEDED : 0;
}
