/**
 * E-mail over SMTP with nodemailer: "starttls" requires the server to offer STARTTLS
 * (requireTLS), "tls" is implicit TLS (port 465), "none" only reaches this machine (tests).
 * Server certificates are verified unless rejectUnauthorized is false; `ca` adds a trusted CA.
 *
 * A 4xx SMTP reply or a connection problem is retried; a 5xx reply, a refused login or a
 * TLS problem is final (retrying will not fix the configuration).
 */
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { DeliveryError, type EmailConfig, type Notice, type SendContext, type SendResult, type Transport } from '../types.js';
import { emailText, subject } from '../message.js';
import { readCa } from '../config.js';

const RETRY_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'EHLO', 'EPROTOCOL', 'ESTREAM', 'EABORT']);

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

export function classifySmtp(e: SmtpError): DeliveryError {
  const rc = e.responseCode;
  const msg = (e.message || String(e)).replace(/\s+/g, ' ').slice(0, 300);
  if (/certificate|self[- ]signed|unable to verify|CERT_|hostname\/IP does not match/i.test(msg)) {
    return new DeliveryError(`the SMTP server's certificate is not trusted (${msg}); set "ca" to its CA's PEM file`, false, rc);
  }
  if (e.code === 'EAUTH' || e.code === 'ENOAUTH') {
    const temporary = typeof rc === 'number' && rc >= 400 && rc < 500;
    return new DeliveryError(`the SMTP server refused the login${temporary ? ' for now' : '; check "user" and "password"'}: ${msg}`, temporary, rc);
  }
  if (typeof rc === 'number' && rc >= 400 && rc < 500) return new DeliveryError(`the SMTP server answered ${rc} (try again later): ${msg}`, true, rc);
  if (typeof rc === 'number' && rc >= 500) return new DeliveryError(`the SMTP server refused the message with ${rc}: ${msg}`, false, rc);
  if (e.code === 'ETLS' || e.code === 'EREQUIRETLS') return new DeliveryError(`TLS with the SMTP server failed (${msg}); with "starttls" the server must offer STARTTLS`, false, rc);
  if (e.code !== undefined && RETRY_CODES.has(e.code)) return new DeliveryError(`cannot reach the SMTP server (${msg})`, true, rc);
  if (e.code === undefined && /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|socket/i.test(msg)) return new DeliveryError(`cannot reach the SMTP server (${msg})`, true, rc);
  return new DeliveryError(`sending the e-mail failed (${e.code ?? 'error'}: ${msg})`, false, rc);
}

export class EmailTransport implements Transport {
  constructor(
    private readonly c: EmailConfig,
    private readonly timeoutMs: number,
  ) {}

  async send(n: Notice, ctx: SendContext): Promise<SendResult> {
    const c = this.c;
    // Read at each send: a renewed CA file is picked up without a restart.
    const ca = c.ca ? readCa(c.ca, (p) => { throw new DeliveryError(`"ca" ${p}`, false); }) : undefined;
    const opts: SMTPTransport.Options = {
      host: c.host,
      port: c.port,
      secure: c.secure === 'tls',
      requireTLS: c.secure === 'starttls',
      ignoreTLS: c.secure === 'none',
      ...(c.user !== undefined ? { auth: { user: c.user, pass: c.password ?? '' } } : {}),
      tls: { rejectUnauthorized: c.rejectUnauthorized, ...(ca ? { ca } : {}), minVersion: 'TLSv1.2' },
      connectionTimeout: this.timeoutMs,
      greetingTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs * 3,
      disableFileAccess: true,
      disableUrlAccess: true,
    };
    const { createTransport } = await import('nodemailer');
    const transport = createTransport(opts);
    const abort = (): void => transport.close();
    ctx.signal.addEventListener('abort', abort, { once: true });
    try {
      const info = await transport.sendMail({
        from: c.from,
        to: c.to,
        subject: subject(n),
        text: emailText(n),
        headers: { 'X-Custody-Alarm': String(n.alarm.id), 'X-Custody-Delivery': ctx.deliveryId, 'X-Custody-Severity': n.alarm.severity },
      });
      const m = /^(\d{3})/.exec(info.response ?? '');
      return { status: m ? Number(m[1]) : 250, ...(info.messageId ? { messageId: info.messageId } : {}) };
    } catch (e) {
      if (ctx.signal.aborted) throw new DeliveryError('the vault is shutting down', true);
      throw classifySmtp(e as SmtpError);
    } finally {
      ctx.signal.removeEventListener('abort', abort);
      transport.close();
    }
  }
  close(): void {}
}
