/** What every page gets from the router. */
export interface PageContext {
  main: HTMLElement;
  params: string[];
  query: URLSearchParams;
  /** False once the user has navigated away: a late answer must not touch the page. */
  alive(): boolean;
  /** Navigates (adds a history entry). */
  go(hash: string): void;
}
