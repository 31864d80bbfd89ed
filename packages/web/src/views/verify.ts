/**
 * "Verify a bundle": an evidence .zip dropped or picked here is opened and checked in this
 * browser with verifyBundle from @custody/verify — the same checks as `custody verify-bundle`.
 * No network: this page works signed out and offline.
 */
import { BundleReadError, checkBundle, unzipBundle, type BundleReport } from '../core/bundle.js';
import { parseVerifierKey } from '@custody/verify';
import { h, notice, plural, replace } from '../dom.js';
import { trustStore } from '../trust-ui.js';
import type { PageContext } from './context.js';

function keysFrom(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function logsTable(r: BundleReport): HTMLElement | null {
  if (r.logs.length === 0) return null;
  return h(
    'table',
    { id: 'bundle-logs' },
    h('thead', null, h('tr', null, ...['Log', 'Records', 'Checkpoint', 'Signed by a key you trust'].map((t) => h('th', { scope: 'col' }, t)))),
    h(
      'tbody',
      null,
      ...r.logs.map((l) =>
        h(
          'tr',
          null,
          h('td', { class: 'mono' }, `${l.log} (${l.origin})`),
          h('td', { class: 'num' }, String(l.items)),
          h('td', { class: 'mono wrap' }, `size ${l.size}, root ${l.rootHash}`),
          h('td', { class: l.trusted ? 'status-ok' : 'status-bad' }, l.trusted ? `✓ ${l.verifiedBy ?? ''}${l.cosigners.length > 0 ? `; cosigned by ${l.cosigners.join(', ')}` : ''}` : '✗ no'),
        ),
      ),
    ),
  );
}

function manifestFacts(r: BundleReport): HTMLElement | null {
  const m = r.manifest;
  if (!m) return null;
  return h('p', { class: 'hint' }, `Exported ${m.created} from ${m.vault}${m.query !== null ? ` for the search ${JSON.stringify(m.query)}` : ''}${m.from || m.to ? ` (${m.from ?? 'beginning'} – ${m.to ?? 'now'})` : ''}. These descriptions are not signed; the records and proofs are.`);
}

function reportView(name: string, r: BundleReport): HTMLElement {
  if (r.ok) {
    return h(
      'div',
      { id: 'bundle-result', 'data-ok': 'true' },
      h('div', { class: 'verdict verdict-ok', role: 'status' }, h('strong', null, `✓ ${name} verifies. `), `${plural(r.verified, 'record')} from ${plural(r.logs.length, 'log')}: every file matches the manifest, every entry is included in its log's signed checkpoint, and every checkpoint is signed by a key you trust.`),
      manifestFacts(r),
      logsTable(r),
    );
  }
  const unpinned = r.problems.some((p) => p.kind === 'KEY_NOT_PINNED');
  return h(
    'div',
    { id: 'bundle-result', 'data-ok': 'false' },
    h(
      'div',
      { class: 'verdict verdict-bad', role: 'alert' },
      h('strong', null, `✗ ${name} does NOT verify. `),
      `${plural(r.problems.length + r.problemsOmitted, 'problem')} found${r.problemsOmitted > 0 ? ` (${r.problemsOmitted} not listed)` : ''}. ${r.verified} of ${r.items} records verified. ` +
        (unpinned
          ? 'Some checkpoints are signed only by the key shipped inside the bundle, which you have not said you trust: paste the log\'s verifier key from a source you trust above and check again.'
          : 'The bundle was changed after it was exported or is incomplete. Do not rely on it.'),
    ),
    h(
      'table',
      { id: 'bundle-problems' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'File'), h('th', { scope: 'col' }, 'Problem'), h('th', { scope: 'col' }, 'What it means'))),
      h('tbody', null, ...r.problems.map((p) => h('tr', { 'data-kind': p.kind }, h('td', { class: 'mono wrap' }, p.file), h('td', null, p.kind), h('td', null, p.message)))),
    ),
    manifestFacts(r),
    logsTable(r),
  );
}

export function renderVerify(ctx: PageContext): void {
  const title = h('h1', { tabindex: '-1' }, 'Verify an evidence bundle');
  const pinned = trustStore.all();
  const result = h('div', { id: 'bundle-output', 'aria-live': 'polite' });
  const fileInput = h('input', { type: 'file', id: 'bundle-file', accept: '.zip,application/zip', });
  const drop = h('label', { class: 'drop', for: 'bundle-file', id: 'bundle-drop' }, h('strong', null, 'Drop an evidence .zip here'), h('br'), 'or choose the file:', h('br'), fileInput);
  const keysArea = h('textarea', { id: 'bundle-keys', rows: 3, spellcheck: 'false', placeholder: 'custody-…/eu-west-1+1a2b3c4d+AbCd…', 'aria-describedby': 'keys-hint' });

  const check = async (file: File): Promise<void> => {
    replace(result, h('p', { role: 'status' }, `Checking ${file.name}…`));
    let files: Map<string, Uint8Array>;
    try {
      files = unzipBundle(new Uint8Array(await file.arrayBuffer()));
    } catch (e) {
      replace(result, h('div', { id: 'bundle-result', 'data-ok': 'false' }, notice('error', h('strong', null, `${file.name} cannot be opened.`), e instanceof BundleReadError ? e.message : String(e))));
      return;
    }
    const typed = keysFrom(keysArea.value);
    for (const k of typed) {
      try {
        parseVerifierKey(k);
      } catch (e) {
        replace(result, h('div', { id: 'bundle-result', 'data-ok': 'false' }, notice('error', h('strong', null, 'One of the keys you pasted cannot be read.'), `${k.slice(0, 80)}: ${(e as Error).message}. A verifier key looks like <origin>+<8 hex digits>+<base64>.`)));
        return;
      }
    }
    const keys = [...new Set([...typed, ...trustStore.all().map((p) => p.verifierKey)])];
    let report: BundleReport;
    try {
      report = checkBundle(files, keys);
    } catch (e) {
      replace(result, h('div', { id: 'bundle-result', 'data-ok': 'false' }, notice('error', h('strong', null, `${file.name} could not be verified.`), (e as Error).message)));
      return;
    }
    if (!ctx.alive()) return;
    replace(result, reportView(file.name, report));
    result.querySelector<HTMLElement>('.verdict')?.setAttribute('tabindex', '-1');
    result.querySelector<HTMLElement>('.verdict')?.focus();
  };

  fileInput.addEventListener('change', () => {
    const f = fileInput.files?.[0];
    if (f) void check(f);
  });
  drop.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer?.files?.[0];
    if (f) void check(f);
  });

  replace(
    ctx.main,
    title,
    h('p', null, 'Checks a bundle made by "Export evidence" or ', h('code', null, 'custody export'), ' entirely in this browser: nothing is uploaded, and it works without signing in.'),
    h('div', { class: 'form-grid' }, h('div', null, h('label', { for: 'bundle-keys' }, 'Verifier keys you trust ', h('span', { class: 'hint' }, '(one per line; optional)')), keysArea, h('p', { class: 'hint', id: 'keys-hint' }, pinned.length > 0 ? `Also trusted: the ${plural(pinned.length, 'key')} this browser pinned (${pinned.map((p) => p.log).join(', ')}). The keys inside a bundle are not trusted just for being there.` : 'This browser has pinned no keys yet (sign in to pin them). The keys inside a bundle are not trusted just for being there: paste the ones you got from the vault\'s operator.'))),
    drop,
    result,
  );
  title.focus();
}
