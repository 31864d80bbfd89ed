/**
 * Webhook and Slack deliveries: one HTTPS (or HTTP) POST per attempt.
 *
 * Webhook: the JSON notice, signed. X-Custody-Signature is "sha256=" and the hex HMAC-SHA256,
 * keyed with the notifier's secret, over "<X-Custody-Timestamp>.<raw body>"; the timestamp is
 * in Unix seconds and changes with each attempt; X-Custody-Delivery stays the same over the
 * retries of one delivery, so a receiver can drop duplicates.
 *
 * 2xx delivered; 408, 429, 5xx and network failures are retried (Retry-After honoured);
 * any other answer (including redirects, which are not followed) is final.
 */
import { createHmac } from 'node:crypto';
import { DeliveryError, type Notice, type SendContext, type SendResult, type Transport, type SlackConfig, type WebhookConfig } from '../types.js';
import { jsonBody, slackBody } from '../message.js';

const USER_AGENT = 'Custody-Notifier/1';

/** "sha256=<hex>" over "<timestamp>.<body>". Exported for receivers' tests and the docs. */
export function signature(secret: string, timestamp: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/** Retry-After: seconds or an HTTP date; milliseconds from now, or undefined. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (v === null) return undefined;
  const t = v.trim();
  if (/^\d{1,9}$/.test(t)) return Number(t) * 1000;
  const d = Date.parse(t);
  return Number.isNaN(d) ? undefined : Math.max(0, d - now);
}

async function shortText(res: Response): Promise<string> {
  try {
    const reader = res.body?.getReader();
    if (!reader) return '';
    const chunks: Uint8Array[] = [];
    let n = 0;
    while (n < 4096) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
    }
    await reader.cancel().catch(() => undefined);
    return Buffer.concat(chunks).toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 200);
  } catch {
    return '';
  }
}

function networkProblem(e: unknown, timeoutMs: number, signal: AbortSignal): DeliveryError {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError' || (err.name === 'AbortError' && !signal.aborted)) return new DeliveryError(`no answer within ${timeoutMs / 1000} s`, true);
  if (signal.aborted) return new DeliveryError('the vault is shutting down', true);
  const c = err.cause;
  return new DeliveryError(`cannot reach the receiver (${c?.code ?? c?.message ?? err.message})`, true);
}

export async function post(url: string, body: string, headers: Record<string, string>, ctx: SendContext, timeoutMs: number): Promise<SendResult> {
  let res: Response;
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
  try {
    res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT, ...headers }, redirect: 'manual', signal });
  } catch (e) {
    throw networkProblem(e, timeoutMs, ctx.signal);
  }
  const status = res.status;
  if (status >= 200 && status < 300) {
    await res.body?.cancel().catch(() => undefined);
    return { status };
  }
  const text = await shortText(res);
  const said = text ? `: ${text}` : '';
  if (status === 408 || status === 429 || status >= 500) {
    throw new DeliveryError(`the receiver answered HTTP ${status}${said}`, true, status, parseRetryAfter(res.headers.get('retry-after')));
  }
  if (status >= 300 && status < 400) throw new DeliveryError(`the receiver answered HTTP ${status} (a redirect, which is not followed: configure the final URL)`, false, status);
  throw new DeliveryError(`the receiver refused the delivery with HTTP ${status}${said}`, false, status);
}

export class WebhookTransport implements Transport {
  constructor(
    private readonly c: WebhookConfig,
    private readonly timeoutMs: number,
  ) {}
  send(n: Notice, ctx: SendContext): Promise<SendResult> {
    const now = new Date();
    const body = jsonBody(n, now);
    const ts = String(Math.floor(now.getTime() / 1000));
    return post(this.c.url, body, { 'x-custody-signature': signature(this.c.secret, ts, body), 'x-custody-timestamp': ts, 'x-custody-delivery': ctx.deliveryId, 'x-custody-event': n.event }, ctx, this.timeoutMs);
  }
  close(): void {}
}

export class SlackTransport implements Transport {
  constructor(
    private readonly c: SlackConfig,
    private readonly timeoutMs: number,
  ) {}
  send(n: Notice, ctx: SendContext): Promise<SendResult> {
    return post(this.c.url, slackBody(n), {}, ctx, this.timeoutMs);
  }
  close(): void {}
}
