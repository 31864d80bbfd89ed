/**
 * The Custody auditor UI: a hash-routed single page (the vault serves only `/`, app.js and
 * app.css; docs/WEB.md). Routes:
 *   #/signin · #/search?q=&from=&to=&order= · #/entry/<log>/<index> · #/logs · #/logs/<log>
 *   #/alarms · #/verify (works signed out and offline)
 */
import { ApiError, getJson, setUnauthenticatedHandler, forgetLogs } from './api.js';
import { h, notice, replace } from './dom.js';
import { currentPrincipal, setPrincipal, signOut, token, type Principal } from './session.js';
import { checkAll, resetRun } from './trust-ui.js';
import type { PageContext } from './views/context.js';
import { renderSignIn } from './views/signin.js';
import { renderSearch } from './views/search.js';
import { renderEntry } from './views/entry.js';
import { renderLogs, renderLog } from './views/logs.js';
import { renderAlarms } from './views/alarms.js';
import { renderVerify } from './views/verify.js';

interface Route {
  pattern: RegExp;
  nav: string;
  auth: boolean;
  render(ctx: PageContext): void;
}

let signInReason: string | undefined;

const ROUTES: Route[] = [
  { pattern: /^\/signin$/, nav: '', auth: false, render: (ctx) => renderSignIn(ctx, afterSignIn, signInReason) },
  { pattern: /^\/search$/, nav: 'search', auth: true, render: renderSearch },
  { pattern: /^\/entry\/([^/]+)\/([^/]+)$/, nav: 'search', auth: true, render: renderEntry },
  { pattern: /^\/logs$/, nav: 'logs', auth: true, render: renderLogs },
  { pattern: /^\/logs\/([^/]+)$/, nav: 'logs', auth: true, render: renderLog },
  { pattern: /^\/alarms$/, nav: 'alarms', auth: true, render: renderAlarms },
  { pattern: /^\/verify$/, nav: 'verify', auth: false, render: renderVerify },
];

const NAV: Array<[string, string, string]> = [
  ['search', '#/search', 'Search'],
  ['logs', '#/logs', 'Logs'],
  ['alarms', '#/alarms', 'Alarms'],
  ['verify', '#/verify', 'Verify a bundle'],
];

let generation = 0;

function main(): HTMLElement {
  return document.getElementById('main')!;
}

function go(hash: string): void {
  if (location.hash === hash) void route();
  else location.hash = hash;
}

function renderChrome(active: string): void {
  const nav = document.getElementById('nav')!;
  const signedIn = currentPrincipal() !== null;
  replace(
    nav,
    NAV.filter(([key]) => signedIn || key === 'verify').map(([key, href, label]) => h('a', { href, 'aria-current': key === active ? 'page' : null }, label)),
  );
  const who = document.getElementById('who')!;
  const p = currentPrincipal();
  if (p) {
    const out = h('button', { type: 'button', id: 'signout' }, 'Sign out');
    out.addEventListener('click', () => {
      signOut();
      resetRun();
      forgetLogs();
      signInReason = 'You are signed out. The token was removed from this tab.';
      go('#/signin');
    });
    replace(who, h('span', { id: 'who-name' }, `Signed in as ${p.name} (${p.role})`), out);
  } else {
    replace(who, h('a', { href: '#/signin' }, 'Sign in'));
  }
}

async function route(): Promise<void> {
  const gen = ++generation;
  const raw = location.hash.startsWith('#') ? location.hash.slice(1) : '';
  if (raw === '' || raw === '/') {
    go(currentPrincipal() ? '#/search' : '#/signin');
    return;
  }
  const [path = '', qs = ''] = raw.split('?', 2) as [string, string?];
  for (const r of ROUTES) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    if (r.auth && !currentPrincipal()) {
      go(`#/signin?${new URLSearchParams({ next: `#${raw}` })}`);
      return;
    }
    if (path === '/signin' && currentPrincipal()) {
      go('#/search');
      return;
    }
    renderChrome(r.nav);
    let params: string[];
    try {
      params = m.slice(1).map((x) => decodeURIComponent(x));
    } catch {
      params = m.slice(1);
    }
    const ctx: PageContext = { main: main(), params, query: new URLSearchParams(qs), alive: () => gen === generation, go };
    r.render(ctx);
    signInReason = undefined;
    return;
  }
  renderChrome('');
  replace(main(), h('h1', { tabindex: '-1' }, 'Not found'), notice('warning', `There is no page at #${raw}.`), h('p', null, h('a', { href: '#/search' }, 'Go to search')));
}

function afterSignIn(next: string): void {
  forgetLogs();
  resetRun();
  void checkAll();
  go(next.startsWith('#/') && !next.startsWith('#/signin') ? next : '#/search');
}

async function boot(): Promise<void> {
  document.querySelector('.skip')?.addEventListener('click', (ev) => {
    ev.preventDefault();
    main().focus();
  });
  setUnauthenticatedHandler((e: ApiError) => {
    if (!currentPrincipal()) return;
    signOut();
    resetRun();
    signInReason = `The vault no longer accepts your token (${e.message}). Sign in again.`;
    go(`#/signin?${new URLSearchParams({ next: location.hash || '#/search' })}`);
  });
  const tok = token();
  if (tok) {
    try {
      const who = await getJson<Principal>('/v1/whoami');
      if (who.role === 'auditor') {
        setPrincipal(who);
        void checkAll(); // trust on first use: every visit proves each pinned log only grew
      } else signOut();
    } catch (e) {
      signOut();
      if (e instanceof ApiError && e.status === 401) signInReason = `The vault no longer accepts your token (${e.message}). Sign in again.`;
    }
  }
  window.addEventListener('hashchange', () => void route());
  await route();
}

void boot();
