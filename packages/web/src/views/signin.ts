/** Sign in with an auditor token (checked with GET /v1/whoami; kept in sessionStorage). */
import { ApiError, getJson } from '../api.js';
import { h, notice, replace } from '../dom.js';
import { signIn, type Principal } from '../session.js';
import type { PageContext } from './context.js';

export function renderSignIn(ctx: PageContext, onSignedIn: (next: string) => void, reason?: string): void {
  const next = ctx.query.get('next') ?? '#/search';
  const msg = h('div', { id: 'signin-message', 'aria-live': 'polite' });
  if (reason) replace(msg, notice('warning', reason));
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'token-hint' });
  const button = h('button', { type: 'submit', id: 'signin-button' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin', novalidate: true },
    h('label', { for: 'token' }, 'Auditor token'),
    input,
    h('p', { class: 'hint', id: 'token-hint' }, 'The token stays in this tab (sessionStorage) and is sent only to this vault. Closing the tab or "Sign out" forgets it.'),
    h('div', { class: 'actions' }, button),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const tok = input.value.trim();
    if (!tok) {
      replace(msg, notice('error', 'Paste your auditor token first.'));
      input.focus();
      return;
    }
    button.disabled = true;
    replace(msg, notice('info', 'Checking the token…'));
    void (async () => {
      try {
        const who = await getJson<Principal>('/v1/whoami', { token: tok });
        if (who.role !== 'auditor') {
          replace(msg, notice('error', h('strong', null, 'This is not an auditor token.'), `It belongs to "${who.name}", a ${who.role}. The auditor UI needs an auditor token: ask an admin for one.`));
          input.select();
          return;
        }
        signIn(tok, who);
        onSignedIn(next);
      } catch (e) {
        const text =
          e instanceof ApiError && e.status === 401
            ? [h('strong', null, 'The vault did not accept this token.'), e.message, ' Failed sign-ins are recorded in the vault\'s audit log.']
            : [h('strong', null, 'Could not sign in.'), (e as Error).message];
        replace(msg, notice('error', ...text));
        input.select();
        input.focus();
      } finally {
        button.disabled = false;
      }
    })();
  });
  replace(ctx.main, h('h1', { tabindex: '-1' }, 'Sign in'), h('p', null, 'Search, read and verify the records kept in this vault. You need an auditor token.'), msg, form, h('p', { class: 'hint' }, 'Only checking a bundle you already have? ', h('a', { href: '#/verify' }, 'Verify a bundle'), ' works without signing in and without the network.'));
  input.focus();
}
