/**
 * The auditor's token lives in sessionStorage: it is gone when the tab closes, it is never
 * written to localStorage or a cookie, and it is only sent in the Authorization header of
 * this page's own API calls.
 */
const KEY = 'custody.token';

export interface Principal {
  id: string;
  name: string;
  role: string;
}

let principal: Principal | null = null;

export function token(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function signIn(t: string, who: Principal): void {
  sessionStorage.setItem(KEY, t);
  principal = who;
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
  principal = null;
}

export function currentPrincipal(): Principal | null {
  return principal;
}

export function setPrincipal(p: Principal | null): void {
  principal = p;
}
