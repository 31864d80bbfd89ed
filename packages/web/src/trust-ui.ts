/**
 * Trust on first use, wired to the vault and the page: on every visit each log's current
 * checkpoint is checked against this browser's pin (core/trust.ts); a failure raises the red
 * banner on every page and is reported once to the vault (POST /v1/trust/report), which
 * records it in its audit log as an alarm.
 */
import { checkLog, TrustStore, type TrustFailure, type TrustOutcome } from './core/trust.js';
import { ApiError, enc, getJson, getText, listLogs, postJson, withQuery, type LogRow } from './api.js';
import { h, replace } from './dom.js';

export const trustStore = new TrustStore(localStorage);

export type LogTrust = TrustOutcome | { status: 'error'; message: string } | { status: 'checking' };

const state = new Map<string, LogTrust>();
const reports = new Map<string, string>();
let lastRun: Promise<void> | null = null;
const listeners = new Set<() => void>();

export function onTrustChange(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

function changed(): void {
  renderBanner();
  for (const f of listeners) f();
}

export function trustOf(log: string): LogTrust | undefined {
  return state.get(log);
}

export function failures(): TrustFailure[] {
  const out: TrustFailure[] = [];
  for (const s of state.values()) if (s.status === 'failed') out.push(s.failure);
  return out;
}

function consistencyFetcher(log: string): (from: number, to: number) => Promise<string[]> {
  return async (from, to) => (await getJson<{ proof: string[] }>(withQuery(`/v1/logs/${enc(log)}/proofs/consistency`, { from, to }))).proof;
}

async function report(f: TrustFailure): Promise<void> {
  const key = `${f.origin}|${f.reason}`;
  if (trustStore.wasReported(f)) {
    reports.set(key, 'This failure was already reported to the vault from this browser.');
    return;
  }
  try {
    await postJson('/v1/trust/report', {
      log: f.log,
      origin: f.origin,
      reason: f.reason,
      trusted: f.trusted,
      seen: f.seen,
      trustedKey: f.trustedKey,
      seenKey: f.seenKey,
      message: f.message,
      client: 'custody-web',
    });
    trustStore.markReported(f);
    reports.set(key, 'Reported to the vault: it is recorded in the vault\'s audit log as an alarm.');
  } catch (e) {
    // The report route may be missing on an older vault (404): the failure stays loud here.
    // Other failures (network, 5xx) are retried on the next visit.
    const missing = e instanceof ApiError && e.status === 404;
    if (missing) trustStore.markReported(f);
    reports.set(key, missing ? 'This vault cannot take trust reports (no /v1/trust/report); tell its operator yourself.' : `Reporting it to the vault failed (${(e as Error).message}); it will be tried again on your next visit. Tell the operator yourself too.`);
  }
}

async function settle(log: LogRow, outcome: TrustOutcome): Promise<TrustOutcome> {
  state.set(log.name, outcome);
  changed();
  if (outcome.status === 'failed') {
    await report(outcome.failure);
    changed();
  }
  return outcome;
}

/** Checks one log's current checkpoint (GET /logs/<log>/checkpoint) against the pin. */
export async function checkOne(log: LogRow): Promise<LogTrust> {
  state.set(log.name, { status: 'checking' });
  try {
    const cp = await getText(`/logs/${enc(log.name)}/checkpoint`);
    const outcome = await checkLog(trustStore, log, cp, { consistency: consistencyFetcher(log.name), now: new Date().toISOString() });
    return await settle(log, outcome);
  } catch (e) {
    const s: LogTrust = { status: 'error', message: `Could not check log ${log.name}: ${(e as Error).message}` };
    state.set(log.name, s);
    changed();
    return s;
  }
}

/** The visit check: every log the vault lists (new ones are pinned on first use). */
export function checkAll(): Promise<void> {
  lastRun = (async () => {
    let logs: LogRow[];
    try {
      logs = await listLogs(true);
    } catch {
      return; // the page that needs the list shows the error
    }
    await Promise.all(logs.map((l) => checkOne(l)));
  })();
  return lastRun;
}

export function visitCheck(): Promise<void> {
  return lastRun ?? checkAll();
}

/**
 * A checkpoint that came with an entry: checked against the pin too (and moves it forward
 * when it extends it), so an entry is never proven against a checkpoint off the pinned history.
 */
export async function observe(log: LogRow, checkpointText: string): Promise<TrustOutcome> {
  const outcome = await checkLog(trustStore, log, checkpointText, { consistency: consistencyFetcher(log.name), now: new Date().toISOString(), allowOlder: true });
  if (outcome.status === 'failed') return settle(log, outcome);
  return outcome;
}

export function resetRun(): void {
  lastRun = null;
  state.clear();
  changed();
}

const REASON_TITLE: Record<TrustFailure['reason'], string> = {
  KEY_CHANGED: 'the log\'s signing key changed',
  CHECKPOINT_INVALID: 'the log\'s checkpoint does not verify',
  ROLLBACK: 'the log shrank',
  NOT_A_PREFIX: 'the log was forked',
  CONSISTENCY_FAILED: 'the log\'s history was rewritten or forked',
};

export function failureTitle(f: TrustFailure): string {
  return REASON_TITLE[f.reason];
}

function renderBanner(): void {
  const el = document.getElementById('trust-banner');
  if (!el) return;
  const fs = failures();
  if (fs.length === 0) {
    el.hidden = true;
    replace(el);
    return;
  }
  el.hidden = false;
  el.setAttribute('role', 'alert');
  replace(
    el,
    fs.map((f) =>
      h(
        'section',
        { class: 'trust-failure', 'data-log': f.log, 'data-reason': f.reason },
        h('h2', null, `Tamper alarm: log "${f.log}" — ${failureTitle(f)}`),
        h('p', null, f.message),
        h(
          'p',
          null,
          `This browser verified log ${f.origin} at size ${f.trusted.size} (root ${f.trusted.root}); the vault now shows size ${f.seen.size} (root ${f.seen.root}). ` +
            'A log that only appends can never do this: records were changed, removed or shown differently to different people. Do not rely on this log until the operator explains, and keep both checkpoints below — they are the evidence.',
        ),
        h('p', { class: 'report-status' }, reports.get(`${f.origin}|${f.reason}`) ?? 'Reporting it to the vault…'),
        h(
          'details',
          null,
          h('summary', null, 'Both checkpoints'),
          h('p', null, 'Verified before (pinned in this browser):'),
          h('pre', null, trustStore.get(f.origin)?.checkpoint ?? '(none pinned)'),
          h('p', null, 'Shown by the vault now:'),
          h('pre', null, f.seenCheckpoint),
        ),
        h('p', null, h('a', { href: `#/logs/${enc(f.log)}` }, `Open log ${f.log}`)),
      ),
    ),
  );
}
