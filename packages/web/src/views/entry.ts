/**
 * One entry: the record, its envelope, and its inclusion proof verified in this browser
 * against the checkpoint signed by the key pinned for the log (core/entry-proof.ts), with the
 * checkpoint itself checked against this browser's pinned history (trust-ui.ts).
 */
import { utf8Decode, toBase64, fromBase64 } from '@custody/verify';
import { ApiError, enc, getJson, listLogs, type EntryAnswer, type LogRow } from '../api.js';
import { verifyEntryAnswer, type EntryVerification } from '../core/entry-proof.js';
import { prettyJson } from '../core/pretty.js';
import type { TrustOutcome } from '../core/trust.js';
import { download, h, notice, replace, type Child } from '../dom.js';
import { observe, trustStore, visitCheck, failureTitle } from '../trust-ui.js';
import type { PageContext } from './context.js';

function recordView(bytes: Uint8Array): { text: string; kind: string } {
  let text: string;
  try {
    text = utf8Decode(bytes);
  } catch {
    return { text: toBase64(bytes), kind: 'binary record, shown as base64' };
  }
  const pretty = prettyJson(text);
  if (pretty !== null) return { text: pretty, kind: 'JSON, indented for reading (values exactly as recorded)' };
  return { text, kind: 'text, exactly as recorded' };
}

function trustLine(t: TrustOutcome): { ok: boolean; detail: string } {
  switch (t.status) {
    case 'pinned':
      return { ok: true, detail: `First use: this browser pinned the log's key and this checkpoint (size ${t.pin.size}) just now. Later visits prove the log only grew from here.` };
    case 'unchanged':
      return { ok: true, detail: `It is the checkpoint this browser verified on ${t.pin.verifiedAt} (size ${t.pin.size}).` };
    case 'extended':
      return { ok: true, detail: `A consistency proof shows it extends the checkpoint this browser verified before (size ${t.from} → ${t.pin.size}).` };
    case 'older':
      return { ok: true, detail: `It is an earlier state (size ${t.size}) of the checkpoint this browser already verified (size ${t.pin.size}); a consistency proof links the two.` };
    case 'failed':
      return { ok: false, detail: `${failureTitle(t.failure)}: ${t.failure.message}` };
  }
}

function bytesBlob(b: Uint8Array, type: string): Blob {
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return new Blob([copy.buffer], { type });
}

export function renderEntry(ctx: PageContext): void {
  const [log = '', indexText = ''] = ctx.params;
  const title = h('h1', { tabindex: '-1' }, `Entry ${log}:${indexText}`);
  const body = h('div', { id: 'entry' }, h('p', { role: 'status' }, 'Fetching the entry and checking its proof in your browser…'));
  replace(ctx.main, title, body);
  title.focus();
  if (!/^(0|[1-9][0-9]{0,15})$/.test(indexText)) {
    replace(body, notice('error', `"${indexText}" is not an entry index.`));
    return;
  }
  void load(ctx, body, log, Number(indexText));
}

async function load(ctx: PageContext, body: HTMLElement, logName: string, index: number): Promise<void> {
  let answer: EntryAnswer;
  let row: LogRow | undefined;
  try {
    await visitCheck();
    const [a, logs] = await Promise.all([getJson<EntryAnswer>(`/v1/logs/${enc(logName)}/entries/${index}`), listLogs()]);
    answer = a;
    row = logs.find((l) => l.name === logName);
  } catch (e) {
    if (!ctx.alive()) return;
    const nf = e instanceof ApiError && (e.code === 'ENTRY_NOT_FOUND' || e.code === 'LOG_NOT_FOUND');
    replace(body, notice('error', h('strong', null, nf ? 'No such entry.' : 'The entry could not be read.'), (e as Error).message));
    return;
  }
  if (!ctx.alive()) return;
  if (!row) {
    replace(body, notice('error', `The vault does not list a log named "${logName}".`));
    return;
  }

  let trust: TrustOutcome | null = null;
  let trustError: string | null = null;
  try {
    trust = await observe(row, answer.checkpoint);
  } catch (e) {
    trustError = `The checkpoint could not be compared with the pinned history: ${(e as Error).message}`;
  }
  if (!ctx.alive()) return;
  const pin = trustStore.get(row.origin);
  const v = verifyEntryAnswer(answer, { origin: row.origin, verifierKey: pin?.verifierKey ?? row.verifierKey });
  const tl = trust ? trustLine(trust) : { ok: false, detail: trustError ?? 'Not checked.' };
  const allOk = v.ok && tl.ok;
  replace(body, ...view(answer, row, v, tl, allOk, pin?.pinnedAt ?? null));
}

function view(a: EntryAnswer, row: LogRow, v: EntryVerification, tl: { ok: boolean; detail: string }, allOk: boolean, pinnedAt: string | null): Child[] {
  const cp = v.checkpoint;
  const failed = [...v.checks.filter((c) => !c.ok).map((c) => c.label), ...(tl.ok ? [] : ['Checkpoint is on the pinned history'])];
  const verdict = allOk
    ? h(
        'div',
        { class: 'verdict verdict-ok', id: 'proof-verdict', 'data-verified': 'true', role: 'status' },
        h('strong', null, '✓ Proof verified in your browser. '),
        `This record is entry ${a.index} of log ${row.origin}, included in the checkpoint of size ${cp!.size} with root ${cp!.rootHash}, signed by ${v.signer.name}+${v.signer.keyId}.`,
      )
    : h(
        'div',
        { class: 'verdict verdict-bad', id: 'proof-verdict', 'data-verified': 'false', role: 'alert' },
        h('strong', null, '✗ PROOF FAILED — do not rely on this record. '),
        `Failed: ${failed.join('; ')}. What the vault serves for entry ${a.index} of log ${a.log} does not match what it signed. Keep the downloads below as evidence and tell the vault's operator.`,
      );

  const checks = h(
    'ul',
    { class: 'checks', id: 'proof-checks' },
    ...v.checks.map((c) => h('li', { class: c.ok ? 'ok' : 'bad', 'data-check': c.id }, h('span', { class: 'mark', 'aria-hidden': 'true' }, c.ok ? '✓' : '✗'), h('span', { class: 'sr-only' }, c.ok ? 'Passed: ' : 'FAILED: '), c.label, h('span', { class: 'detail' }, c.detail))),
    h('li', { class: tl.ok ? 'ok' : 'bad', 'data-check': 'consistency' }, h('span', { class: 'mark', 'aria-hidden': 'true' }, tl.ok ? '✓' : '✗'), 'Checkpoint is on the pinned history', h('span', { class: 'detail' }, tl.detail)),
  );

  const env = v.envelope;
  const meta = h(
    'dl',
    { class: 'meta', id: 'envelope' },
    h('dt', null, 'Log'),
    h('dd', null, `${a.log} (${env?.origin ?? a.envelope.origin})`),
    h('dt', null, 'Index'),
    h('dd', null, String(a.index)),
    h('dt', null, 'Region'),
    h('dd', null, env?.region ?? ''),
    h('dt', null, 'Source'),
    h('dd', null, env?.source ?? ''),
    h('dt', null, 'Producer'),
    h('dd', null, env?.producer ?? ''),
    h('dt', null, 'Received'),
    h('dd', null, env?.received ?? ''),
    ...Object.entries(env?.attrs ?? {}).flatMap(([k, val]) => [h('dt', null, `attr ${k}`), h('dd', null, val)]),
    h('dt', null, 'Salt'),
    h('dd', { class: 'mono' }, env?.salt ?? ''),
    ...(env?.blob ? [h('dt', null, 'Blob'), h('dd', { class: 'mono' }, `sha256:${env.blob.sha256} (${env.blob.size} bytes)`)] : []),
    h('dt', null, 'Leaf hash'),
    h('dd', { class: 'mono' }, v.leafHash ?? ''),
  );

  const cpMeta = h(
    'dl',
    { class: 'meta', id: 'checkpoint-facts' },
    h('dt', null, 'Tree size'),
    h('dd', null, cp ? String(cp.size) : '—'),
    h('dt', null, 'Root hash'),
    h('dd', { class: 'mono' }, cp?.rootHash ?? '—'),
    h('dt', null, 'Signed by'),
    h('dd', { class: 'mono' }, `${v.signer.name}+${v.signer.keyId}`),
    h('dt', null, 'Verifier key'),
    h('dd', { class: 'mono' }, v.signer.verifierKey),
    h('dt', null, 'Key pinned'),
    h('dd', null, pinnedAt ? `on ${pinnedAt}, in this browser (trust on first use)` : 'not pinned'),
  );

  const rec = v.record ? recordView(v.record) : null;
  const entryBytes = (() => {
    try {
      return fromBase64(a.entry);
    } catch {
      return null;
    }
  })();
  const downloads = h(
    'div',
    { class: 'actions' },
    rec && v.record ? h('button', { type: 'button', class: 'secondary', onclick: () => download(`${a.log}-${a.index}.record`, bytesBlob(v.record!, 'application/octet-stream')) }, 'Download record (exact bytes)') : null,
    entryBytes ? h('button', { type: 'button', class: 'secondary', onclick: () => download(`${a.log}-${a.index}.entry`, bytesBlob(entryBytes, 'application/octet-stream')) }, 'Download entry') : null,
    h('button', { type: 'button', class: 'secondary', onclick: () => download(`${a.log}-${a.index}.tlog-proof`, new Blob([a.proofFile], { type: 'text/plain' })) }, 'Download proof (C2SP tlog-proof)'),
  );

  return [
    verdict,
    h('h2', null, 'What was checked'),
    checks,
    h('h2', null, 'Against this checkpoint'),
    cpMeta,
    h('details', null, h('summary', null, 'Checkpoint text'), h('pre', { class: 'checkpoint' }, a.checkpoint)),
    h('h2', null, 'Record'),
    allOk ? null : notice('error', h('strong', null, 'Not proven.'), 'This is what the vault served; the checks above failed, so nothing shows it is what the log holds.'),
    rec ? h('p', { class: 'hint' }, rec.kind) : notice('error', 'The record could not be shown: the entry is not valid.'),
    rec ? h('pre', { class: 'record', id: 'record', tabindex: '0', 'aria-label': 'Record' }, rec.text) : null,
    downloads,
    h('h2', null, 'Envelope'),
    h('p', { class: 'hint' }, 'Read from the entry bytes themselves (the bytes the proof covers).'),
    meta,
    h('p', null, h('a', { href: `#/logs/${enc(a.log)}` }, `Log ${a.log}`)),
  ];
}
