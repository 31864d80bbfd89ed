/**
 * The auditor web UI end to end, in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core) against a real `custody serve` holding a real CloudTrail file from
 * ../shared/samples: sign in, search, open an entry and see its proof verified in the browser,
 * export evidence and verify it on the "verify a bundle" page; a wrong token, an empty result,
 * a bad query, a tampered entry, a tampered bundle and a rewritten log history each show a
 * clear message. Screenshots of every step go to artifacts/web/ (git-ignored).
 *
 * Every page also asserts that the browser asked nothing of any origin but the vault's, and
 * that no Content-Security-Policy violation or page error happened.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createHash } from 'node:crypto';
import { unzipSync, zipSync } from 'fflate';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startServer, cleanup, makeTempDir, waitFor, getJson, waitForCheckpoint, ROOT, type ServerHandle } from './support/server.js';

// The callbacks given to page.evaluate run in the browser; the vault's tsconfig has no DOM
// types, so the little of the DOM they touch is declared here (module scope only).
interface DomEl {
  id: string;
  textContent: string | null;
  classList: { contains(c: string): boolean };
}
declare const document: { activeElement: DomEl | null; querySelector(s: string): DomEl | null; querySelectorAll(s: string): ArrayLike<DomEl> & Iterable<DomEl> };
declare const localStorage: { getItem(k: string): string | null; setItem(k: string, v: string): void };
declare const sessionStorage: typeof localStorage;
declare function getComputedStyle(e: DomEl): { outlineStyle: string };

const CHROMIUM = process.env['CUSTODY_CHROMIUM'] ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'artifacts', 'web');
/** A real CloudTrail delivery: CheckMfa and ConsoleLogin of one IAM user, sa-east-1 (SOURCES.md). */
const SAMPLE = join(ROOT, '..', 'shared', 'samples', 'cloudtrail', 'grycap_974349055189', '974349055189_CloudTrail_sa-east-1_20180228T1730Z_i2Fpk1k9Ep9sd8xT.json.gz');
const ACTOR = 'arn:aws:iam::974349055189:user/alucloud147';
const LOG = 'sa-east-1';

let server: ServerHandle;
let browser: Browser;
let stored: { log: string; first: number; count: number };

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await startServer({ checkpointIntervalMs: 50 });
  const res = await fetch(`${server.url}/v1/ingest?${new URLSearchParams({ name: basename(SAMPLE) })}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.tokens.writer}`, 'content-type': 'application/octet-stream' },
    body: readFileSync(SAMPLE),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  const answer = JSON.parse(text) as { source: string; stored: number; appends: Array<{ log: string; first: number; count: number }> };
  assert.equal(answer.source, 'cloudtrail');
  assert.equal(answer.stored, 2);
  stored = answer.appends.find((a) => a.log === LOG)!;
  assert.ok(stored, `the records went to log ${LOG}: ${text}`);
  await waitForCheckpoint(server, LOG, stored.first + stored.count);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await cleanup();
});

interface Session {
  context: BrowserContext;
  page: Page;
  /** every URL the page asked for */
  requests: string[];
  /** CSP violations, page errors and console errors */
  problems: string[];
}

async function open(): Promise<Session> {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const s: Session = { context, page, requests: [], problems: [] };
  context.on('request', (r) => s.requests.push(r.url()));
  page.on('pageerror', (e) => s.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) s.problems.push(`console: ${m.text()}`);
  });
  return s;
}

/** Nothing but the vault's own origin (data: and blob: URLs are local). */
function assertOnlyVault(s: Session): void {
  const origin = new URL(server.url).origin;
  const foreign = s.requests.filter((u) => !u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin);
  assert.deepEqual(foreign, [], 'the page asked another origin');
  assert.ok(s.requests.length > 0);
}

async function close(s: Session): Promise<void> {
  assertOnlyVault(s);
  assert.deepEqual(s.problems, [], 'no CSP violation, page error or console error');
  await s.context.close();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function signIn(page: Page, token = server.tokens.auditor): Promise<void> {
  await page.goto(`${server.url}/#/signin`);
  await page.fill('#token', token);
  await page.click('#signin-button');
  await page.waitForSelector('#who-name');
}

/** Waits until this browser has pinned every log the vault lists (the visit check ran). */
async function pinnedAll(page: Page): Promise<Record<string, { size: number; root: string; checkpoint: string }>> {
  const logs = (await getJson<{ logs: Array<{ origin: string }> }>(server.url, server.tokens.auditor, '/v1/logs')).logs;
  return waitFor('the visit check to pin every log', async () => {
    const pins = (await page.evaluate(() => JSON.parse(localStorage.getItem('custody.trust.v1') ?? '{"pins":{}}').pins)) as Record<string, { size: number; root: string; checkpoint: string }>;
    return logs.every((l) => pins[l.origin]) ? pins : undefined;
  }, 10_000);
}

test('sign in: a wrong token and a writer token each get a clear message; an auditor signs in and out', async () => {
  const s = await open();
  const { page } = s;
  const nav = await page.goto(server.url);
  assert.equal(nav?.status(), 200);
  const csp = nav?.headers()['content-security-policy'] ?? '';
  for (const d of ["default-src 'self'", "img-src 'self' data:", "style-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) assert.ok(csp.includes(d), `CSP has ${d}: ${csp}`);
  assert.equal(nav?.headers()['x-content-type-options'], 'nosniff');
  assert.equal(nav?.headers()['referrer-policy'], 'no-referrer');
  await page.waitForSelector('#token');
  assert.match(page.url(), /#\/signin/);
  await shot(page, '01-signin');
  // the policy is enforced: an inline script is refused
  const ran = await page.evaluate(() => {
    const el = (globalThis as unknown as { document: { createElement(t: string): { textContent: string }; body: { appendChild(e: unknown): void } } }).document;
    const script = el.createElement('script');
    script.textContent = 'globalThis.__inline = 1';
    el.body.appendChild(script);
    return (globalThis as { __inline?: number }).__inline ?? null;
  });
  assert.equal(ran, null, 'inline script must not run');
  await waitFor('the CSP violation report', () => s.problems.some((p) => /Content Security Policy/.test(p)), 5000);
  s.problems.length = 0;

  await page.fill('#token', 'cust_this-is-not-a-token');
  await page.click('#signin-button');
  const wrong = page.locator('#signin-message [role="alert"]');
  await wrong.waitFor();
  assert.match(await wrong.innerText(), /did not accept this token/);
  assert.match(await wrong.innerText(), /check that you copied all of it/);
  await shot(page, '02-signin-wrong-token');

  await page.fill('#token', server.tokens.writer);
  await page.click('#signin-button');
  await page.waitForFunction(() => /not an auditor token/.test(document.querySelector('#signin-message')?.textContent ?? ''));
  assert.match(await page.locator('#signin-message').innerText(), /writer/);
  await shot(page, '03-signin-writer-token');

  await page.fill('#token', server.tokens.auditor);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#who-name');
  assert.match(await page.locator('#who-name').innerText(), /auditor/);
  assert.equal(await page.evaluate(() => localStorage.getItem('custody.token')), null, 'the token is never in localStorage');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('custody.token')), server.tokens.auditor);
  await page.click('#signout');
  await page.waitForSelector('#token');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('custody.token')), null);
  await close(s);
});

test('search by keyboard only: find the CloudTrail event, open it, see its proof verified in the browser', async () => {
  const s = await open();
  const { page } = s;
  await page.goto(server.url);
  await page.waitForSelector('#token');
  // the token field has focus: type, Enter
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'token');
  await page.keyboard.type(server.tokens.auditor);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#q');
  await page.waitForFunction(() => document.activeElement?.id === 'q');
  await page.keyboard.type(`actor:"${ACTOR}" ConsoleLogin`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#results-table');
  await shot(page, '10-search-results');
  const rows = page.locator('#results-table tbody tr');
  assert.equal(await rows.count(), 1);
  const row = await rows.first().innerText();
  assert.ok(row.includes(`${LOG}:${stored.first + 1}`), row); // ConsoleLogin is the second record of the file
  assert.match(row, /ConsoleLogin/);
  assert.match(row, /alucloud147/);
  assert.match(row, /83\.57\.141\.36/);
  assert.match(row, /2018-02-28T17:27:40/);

  // Tab to the result link (past the export button), with a visible focus ring, then Enter.
  let onLink = false;
  for (let i = 0; i < 6 && !onLink; i++) {
    await page.keyboard.press('Tab');
    onLink = await page.evaluate(() => document.activeElement?.classList.contains('hit-link') ?? false);
  }
  assert.ok(onLink, 'Tab reaches the first result');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
  assert.notEqual(outline, 'none', 'keyboard focus is visible');
  await shot(page, '11-search-keyboard-focus');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#proof-verdict');
  assert.equal(await page.getAttribute('#proof-verdict', 'data-verified'), 'true', await page.locator('#entry').innerText());
  assert.match(await page.locator('#record').innerText(), /"eventName": "ConsoleLogin"/);
  await shot(page, '12-entry-verified');
  await close(s);
});

test('an entry page shows the record, its envelope and what was checked; a tampered entry is a loud failure', async () => {
  const s = await open();
  const { page } = s;
  await signIn(page);
  const index = stored.first + 1; // ConsoleLogin (records keep their file order)
  await page.goto(`${server.url}/#/entry/${LOG}/${index}`);
  await page.waitForSelector('#proof-verdict');
  const verdict = await page.locator('#proof-verdict').innerText();
  assert.equal(await page.getAttribute('#proof-verdict', 'data-verified'), 'true', await page.locator('#entry').innerText());
  const cp = await getJson<{ logs: Array<{ name: string; origin: string; verifierKey: string; size: number }> }>(server.url, server.tokens.auditor, '/v1/logs');
  const info = cp.logs.find((l) => l.name === LOG)!;
  assert.match(verdict, new RegExp(`entry ${index} of log ${info.origin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.match(verdict, new RegExp(`size ${info.size}`));
  // each check is listed, passed, and says what it compared
  const checks = await page.locator('#proof-checks li').evaluateAll((els) => els.map((e) => ({ id: e.getAttribute('data-check'), ok: e.classList.contains('ok'), text: e.textContent ?? '' })));
  assert.deepEqual(checks.map((c) => c.id), ['envelope', 'leaf', 'record', 'signature', 'inclusion', 'consistency']);
  assert.ok(checks.every((c) => c.ok), JSON.stringify(checks));
  const entry = await getJson<{ leafHash: string; checkpoint: string }>(server.url, server.tokens.auditor, `/v1/logs/${LOG}/entries/${index}`);
  assert.ok(checks.find((c) => c.id === 'leaf')!.text.includes(entry.leafHash));
  const facts = await page.locator('#checkpoint-facts').innerText();
  assert.ok(facts.includes(info.verifierKey), 'shows the signer key');
  assert.ok(facts.includes(entry.checkpoint.split('\n')[2]!), 'shows the root hash');
  // the envelope, read from the entry bytes
  const env = await page.locator('#envelope').innerText();
  assert.match(env, /aws\.cloudtrail|cloudtrail/);
  assert.ok(env.includes(basename(SAMPLE)), 'the delivered file name (attr file)');
  assert.match(env, /sa-east-1/);
  // the record, indented for reading, every value as recorded
  const rec = await page.locator('#record').innerText();
  assert.match(rec, /"eventName": "ConsoleLogin"/);
  assert.match(rec, /"sourceIPAddress": "83\.57\.141\.36"/);
  await shot(page, '20-entry-verified');

  // A record is data, never markup: HTML inside it is shown as text, and runs nothing.
  const hostile = '{"msg":"<img src=/x onerror=globalThis.__pwned=1><script>globalThis.__pwned=2</script>"}';
  const appended = await fetch(`${server.url}/v1/logs/local/entries?wait=checkpoint`, { method: 'POST', headers: { authorization: `Bearer ${server.tokens.writer}`, 'content-type': 'application/x-ndjson' }, body: hostile + '\n' });
  assert.equal(appended.status, 200);
  const hi = ((await appended.json()) as { indices: number[] }).indices[0]!;
  await page.goto(`${server.url}/#/entry/local/${hi}`);
  await page.waitForSelector('#proof-verdict[data-verified="true"]');
  assert.equal(await page.locator('#record img, #record script').count(), 0);
  assert.match(await page.locator('#record').innerText(), /<img src=\/x onerror=/);
  assert.equal(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned ?? null), null);
  assert.equal(s.requests.filter((u) => u.endsWith('/x')).length, 0);

  // The vault (or someone between it and the browser) serves a changed record: a byte of the
  // entry altered, leaf hash recomputed to match, the old proof and checkpoint kept.
  await page.route(`**/v1/logs/${LOG}/entries/${index}`, async (route) => {
    const resp = await route.fetch();
    const j = (await resp.json()) as { entry: string; record: string; leafHash: string };
    const bytes = Buffer.from(j.entry, 'base64');
    const at = bytes.indexOf('83.57.141.36');
    bytes.write('10', at);
    j.entry = bytes.toString('base64');
    j.record = j.record.replace('83.57.141.36', '10.57.141.36');
    j.leafHash = createHash('sha256').update(Buffer.concat([Buffer.from([0]), bytes])).digest('base64');
    await route.fulfill({ response: resp, json: j });
  });
  await page.goto(`${server.url}/#/entry/${LOG}/${index}?tampered`);
  await page.waitForSelector('#proof-verdict');
  assert.equal(await page.getAttribute('#proof-verdict', 'data-verified'), 'false');
  assert.match(await page.locator('#proof-verdict').innerText(), /PROOF FAILED/);
  assert.equal(await page.getAttribute('#proof-verdict', 'role'), 'alert');
  assert.equal(await page.locator('#proof-checks li[data-check="inclusion"]').getAttribute('class'), 'bad');
  await shot(page, '21-entry-tampered');
  await page.unroute(`**/v1/logs/${LOG}/entries/${index}`);
  await close(s);
});

test('an empty result and a bad query each show a clear message', async () => {
  const s = await open();
  const { page } = s;
  await signIn(page);
  await page.goto(`${server.url}/#/search?${new URLSearchParams({ q: 'actor:"nobody-at-all-7f3a"' })}`);
  await page.waitForSelector('#no-results');
  assert.match(await page.locator('#no-results').innerText(), /No records match/);
  await shot(page, '30-search-empty');
  await page.goto(`${server.url}/#/search?${new URLSearchParams({ q: 'actor:(alice' })}`);
  await page.waitForSelector('#search-error');
  const msg = await page.locator('#search-error').innerText();
  assert.match(msg, /cannot be read/);
  assert.match(msg, /\^/, 'points at the problem');
  await shot(page, '31-search-bad-query');
  await close(s);
});

test('more results page through a large answer in order; the time range fields narrow it', async () => {
  // 142 real CloudTrail events of one file (us-east-1, 2017-06-01 21:50–21:53 UTC)
  const file = join(ROOT, '..', 'shared', 'samples', 'cloudtrail', 'grycap_sample-cloudtrail-event.json');
  const events = (JSON.parse(readFileSync(file, 'utf8')) as { Records: Array<{ eventTime: string }> }).Records;
  const res = await fetch(`${server.url}/v1/ingest?${new URLSearchParams({ name: basename(file) })}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.tokens.writer}`, 'content-type': 'application/json' },
    body: readFileSync(file),
  });
  assert.equal(res.status, 200, await res.text());
  await waitFor('the index to hold the file', async () => (await getJson<{ total: number }>(server.url, server.tokens.auditor, '/v1/search?q=log:us-east-1')).total === events.length, 15_000, 100);

  const s = await open();
  const { page } = s;
  await signIn(page);
  await page.goto(`${server.url}/#/search`);
  await page.fill('#q', 'log:us-east-1');
  await page.selectOption('#order', 'asc');
  await page.click('#search-button');
  await page.waitForSelector('#results-table');
  const rows = page.locator('#results-table tbody tr');
  assert.equal(await rows.count(), 50);
  assert.match(await page.locator('#results-summary').innerText(), /^142 matches; showing 50/);
  await page.click('#more-button');
  await page.waitForFunction(() => document.querySelectorAll('#results-table tbody tr').length === 100);
  // the first new row's link has the focus, so the keyboard continues where the new rows start
  assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('hit-link')), true);
  await page.click('#more-button');
  await page.waitForFunction(() => document.querySelectorAll('#results-table tbody tr').length === 142);
  assert.equal(await page.locator('#more-button').isVisible(), false, 'no more pages');
  const times = await rows.evaluateAll((trs) => trs.map((tr) => tr.querySelector('td')?.textContent ?? ''));
  assert.deepEqual(times, [...times].sort(), 'oldest first, across pages');
  assert.equal(new Set(await page.locator('.hit-link').allInnerTexts()).size, 142, 'no hit twice');
  await shot(page, '32-search-more');

  // the From and To fields (UTC) narrow the answer to one minute
  const inMinute = events.filter((e) => e.eventTime >= '2017-06-01T21:50:00Z' && e.eventTime <= '2017-06-01T21:50:59Z').length;
  assert.ok(inMinute > 0 && inMinute < 50);
  await page.fill('#from', '2017-06-01T21:50:00Z');
  await page.fill('#to', '2017-06-01T21:50:59Z');
  await page.click('#search-button');
  await page.waitForFunction((n) => document.querySelector('#results-summary')?.textContent?.startsWith(`${n} match`), inMinute);
  assert.equal(await rows.count(), inMinute);
  assert.match(page.url(), /from=2017-06-01T21%3A50%3A00Z/);
  await shot(page, '33-search-time-range');
  await close(s);
});

test('export evidence from a search, verify the bundle in the browser, and a tampered bundle names the file', async () => {
  const s = await open();
  const { page } = s;
  await signIn(page);
  await pinnedAll(page); // the browser pins the log keys; the bundle page trusts those
  await page.goto(`${server.url}/#/search?${new URLSearchParams({ q: `actor:"${ACTOR}"` })}`);
  await page.waitForSelector('#export-button');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-button')]);
  assert.match(download.suggestedFilename(), /^custody-evidence-.*\.zip$/);
  const dir = makeTempDir('web-bundle');
  const zipPath = join(dir, download.suggestedFilename());
  await download.saveAs(zipPath);
  await page.waitForSelector('#export-status .notice-ok');
  await shot(page, '40-export');
  const zip = readFileSync(zipPath);
  const files = unzipSync(new Uint8Array(zip));
  assert.ok(files['manifest.json'], 'a bundle with a manifest');
  const manifest = JSON.parse(Buffer.from(files['manifest.json']!).toString('utf8')) as { items: Array<{ log: string; index: number; record: string }> };
  assert.ok(manifest.items.length >= 1);

  // the bundle verifies on the page, offline (the page makes no request while checking)
  await page.goto(`${server.url}/#/verify`);
  await page.waitForSelector('#bundle-file');
  const before = s.requests.length;
  await page.setInputFiles('#bundle-file', zipPath);
  await page.waitForSelector('#bundle-result');
  assert.equal(await page.getAttribute('#bundle-result', 'data-ok'), 'true', await page.locator('#bundle-output').innerText());
  assert.equal(s.requests.length, before, 'verifying a bundle asks the network nothing');
  await shot(page, '41-verify-bundle-ok');

  // one byte of one record changed
  const rec = manifest.items[0]!.record;
  const bytes = Buffer.from(files[rec]!);
  bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0x01;
  files[rec] = new Uint8Array(bytes);
  const tampered = join(dir, 'tampered.zip');
  writeFileSync(tampered, zipSync(files));
  await page.setInputFiles('#bundle-file', tampered);
  await page.waitForSelector('#bundle-result[data-ok="false"]');
  const out = await page.locator('#bundle-output').innerText();
  assert.match(out, /does NOT verify/);
  assert.ok(out.includes(rec), `the tampered file ${rec} is named: ${out}`);
  await shot(page, '42-verify-bundle-tampered');

  // not a zip at all
  const junk = join(dir, 'junk.zip');
  writeFileSync(junk, 'this is not a zip');
  await page.setInputFiles('#bundle-file', junk);
  await page.waitForFunction(() => /cannot be opened/.test(document.querySelector('#bundle-output')?.textContent ?? ''));
  await close(s);

  // A recipient's browser: signed out, nothing pinned. The key inside the bundle is not trusted
  // for being there; pasting the log's key (from a source they trust) makes it verify.
  const r = await open();
  await r.page.goto(`${server.url}/#/verify`);
  await r.page.waitForSelector('#bundle-file');
  await r.page.setInputFiles('#bundle-file', zipPath);
  await r.page.waitForSelector('#bundle-result[data-ok="false"]');
  assert.match(await r.page.locator('#bundle-output').innerText(), /signed only by the key shipped inside the bundle/);
  assert.ok((await r.page.locator('#bundle-problems').innerText()).includes('KEY_NOT_PINNED'));
  await shot(r.page, '43-verify-bundle-key-not-pinned');
  const vkey = (await getJson<{ logs: Array<{ name: string; verifierKey: string }> }>(server.url, server.tokens.auditor, '/v1/logs')).logs.find((l) => l.name === LOG)!.verifierKey;
  await r.page.fill('#bundle-keys', vkey);
  await r.page.setInputFiles('#bundle-file', []);
  await r.page.setInputFiles('#bundle-file', zipPath);
  await r.page.waitForSelector('#bundle-result[data-ok="true"]');
  assert.ok(r.requests.every((u) => !u.includes('/v1/')), 'signed out, the page called no API');
  await close(r);
});

test('trust on first use: a rewritten log history raises a loud banner and is reported to the vault as an alarm', async () => {
  const s = await open();
  const { page } = s;
  await signIn(page);
  const pins = await pinnedAll(page);
  const info = (await getJson<{ logs: Array<{ name: string; origin: string; size: number }> }>(server.url, server.tokens.auditor, '/v1/logs')).logs.find((l) => l.name === LOG)!;
  assert.equal(pins[info.origin]!.size, info.size);
  await page.goto(`${server.url}/#/logs`);
  await page.waitForSelector('#logs-table');
  await page.waitForFunction((log) => /✓/.test([...document.querySelectorAll('#logs-table tr')].find((r) => r.textContent?.includes(log))?.textContent ?? ''), LOG);
  await shot(page, '50-logs-consistent');

  // What this browser remembers is a checkpoint the log cannot extend: as if the vault had
  // shown a different history before (or rewrote it since).
  await page.evaluate(
    ({ origin }) => {
      const f = JSON.parse(localStorage.getItem('custody.trust.v1')!);
      const p = f.pins[origin];
      p.size = p.size - 1;
      p.root = 'q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=';
      localStorage.setItem('custody.trust.v1', JSON.stringify(f));
    },
    { origin: info.origin },
  );
  const reported = page.waitForResponse((r) => r.url().endsWith('/v1/trust/report') && r.request().method() === 'POST');
  await page.reload();
  const banner = page.locator(`#trust-banner .trust-failure[data-log="${LOG}"]`);
  await banner.waitFor();
  assert.equal(await banner.getAttribute('data-reason'), 'CONSISTENCY_FAILED');
  const text = await banner.innerText();
  assert.match(text, /Tamper alarm/);
  assert.match(text, /rewritten or forked/);
  assert.equal(await page.getAttribute('#trust-banner', 'role'), 'alert');
  const r = await reported;
  assert.equal(r.status(), 202);
  await page.waitForFunction(() => /Reported to the vault/.test(document.querySelector('#trust-banner')?.textContent ?? ''));
  await shot(page, '51-trust-banner');

  // the vault recorded it in its audit log
  const audit = await waitFor('the alarm in the audit log', async () => {
    const size = (await getJson<{ logs: Array<{ name: string; size: number }> }>(server.url, server.tokens.auditor, '/v1/logs')).logs.find((l) => l.name === 'audit')!.size;
    for (let i = size - 1; i >= Math.max(0, size - 20); i--) {
      const e = JSON.parse((await getJson<{ record: string }>(server.url, server.tokens.auditor, `/v1/logs/audit/entries/${i}`)).record) as Record<string, unknown>;
      if (e['type'] === 'alarm.trust') return e;
    }
    return undefined;
  });
  assert.equal(audit['reason'], 'CONSISTENCY_FAILED');
  assert.equal(audit['log'], LOG);
  assert.equal((audit['trusted'] as { size: number }).size, info.size - 1);

  // the alarms page shows it as an alarm (GET /v1/alarms), and the audit log's refusals below
  // it show the trust report and the failed sign-ins of the first test
  await page.goto(`${server.url}/#/alarms`);
  await page.waitForSelector('#vault-alarms-table:not([hidden])');
  const row = page.locator('#vault-alarms-table tr[data-kind="trust"]').first();
  await row.waitFor();
  assert.equal(await row.getAttribute('data-severity'), 'critical');
  assert.match(await row.innerText(), /rewritten or forked/);
  await page.waitForSelector('#alarms-table:not([hidden])');
  const refusals = await page.locator('#alarms-table').innerText();
  assert.match(refusals, /Trust alarm/);
  assert.match(refusals, /Failed authentication/);
  // filtering by kind asks the vault again
  await page.selectOption('#alarm-kind', 'integrity');
  await page.waitForFunction(() => document.querySelector('#vault-alarms-status')?.textContent === 'No alarms.');
  await page.selectOption('#alarm-kind', 'trust');
  await page.locator('#vault-alarms-table tr[data-kind="trust"]').first().waitFor();
  await shot(page, '52-alarms');

  // a second visit does not report the same failure again
  let again = 0;
  page.on('request', (q) => void (q.url().endsWith('/v1/trust/report') && again++));
  await page.reload();
  await banner.waitFor();
  await page.waitForFunction(() => /already reported/.test(document.querySelector('#trust-banner')?.textContent ?? ''));
  assert.equal(again, 0);
  await close(s);
});

test('trust on first use against a vault without the report route (404): the banner stands and says to tell the operator', async () => {
  const s = await open();
  const { page } = s;
  await signIn(page);
  const info = (await getJson<{ logs: Array<{ name: string; origin: string }> }>(server.url, server.tokens.auditor, '/v1/logs')).logs.find((l) => l.name === LOG)!;
  await pinnedAll(page);
  // the same size, another root: a fork
  await page.evaluate(({ origin }) => {
    const f = JSON.parse(localStorage.getItem('custody.trust.v1')!);
    f.pins[origin].root = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
    localStorage.setItem('custody.trust.v1', JSON.stringify(f));
  }, { origin: info.origin });
  await page.route('**/v1/trust/report', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"NOT_FOUND","message":"Nothing at POST /v1/trust/report."}}' }));
  await page.reload();
  const banner = page.locator(`#trust-banner .trust-failure[data-log="${LOG}"]`);
  await banner.waitFor();
  assert.equal(await banner.getAttribute('data-reason'), 'NOT_A_PREFIX');
  await page.waitForFunction(() => /cannot take trust reports/.test(document.querySelector('#trust-banner')?.textContent ?? ''));
  assert.match(await banner.innerText(), /forked/);
  // the entry pages of that log now fail loudly too: their checkpoint is off the pinned history
  await page.goto(`${server.url}/#/entry/${LOG}/${stored.first}`);
  await page.waitForSelector('#proof-verdict[data-verified="false"]');
  assert.equal(await page.locator('#proof-checks li[data-check="consistency"]').getAttribute('class'), 'bad');
  await shot(page, '53-trust-banner-no-report-route');
  await close(s);
});

test('log page: size, latest checkpoint, verifier key, consistency, and the ingest rate by source', async () => {
  const s = await open();
  const { page } = s;
  await signIn(page);
  await page.goto(`${server.url}/#/logs/${LOG}`);
  await page.waitForSelector('#checkpoint-text');
  const info = (await getJson<{ logs: Array<{ name: string; verifierKey: string; size: number }> }>(server.url, server.tokens.auditor, '/v1/logs')).logs.find((l) => l.name === LOG)!;
  assert.equal(await page.locator('#verifier-key').innerText(), info.verifierKey);
  assert.match(await page.locator('#log-size').innerText(), new RegExp(`^${info.size} `));
  assert.match(await page.locator('#checkpoint-text').innerText(), new RegExp(`\\n${info.size}\\n`));
  await page.waitForFunction(() => /✓/.test(document.querySelector('#consistency-status')?.textContent ?? ''));
  // the chart: the records stored a moment ago are in the current hour, from source cloudtrail
  await page.waitForSelector('#ingest-chart rect');
  const bars = await page.locator('#ingest-chart rect').count();
  assert.ok(bars >= 1);
  assert.match(await page.locator('.legend').innerText(), /cloudtrail/);
  await shot(page, '60-log-page');
  await close(s);
});
