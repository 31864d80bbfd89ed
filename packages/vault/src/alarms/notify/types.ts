/**
 * Notifier configurations (what an admin sends to POST /v1/notifiers or writes into
 * <data>/notifiers.json) and what a transport is handed to deliver. docs/NOTIFIERS.md.
 */
import type { AlarmKind, Severity } from '../types.js';

export const NOTIFIER_TYPES = ['webhook', 'slack', 'email', 'sns'] as const;
export type NotifierType = (typeof NOTIFIER_TYPES)[number];

/** Which alarms a notifier receives. */
export interface NotifierFilter {
  /** Alarms of this severity or higher (default "low"). */
  minSeverity: Severity;
  /** Only these kinds; absent = every kind. */
  kinds?: AlarmKind[];
}

interface Common extends NotifierFilter {
  /** An optional label for people ("SOC on-call"). */
  name?: string;
}

export interface WebhookConfig extends Common {
  type: 'webhook';
  url: string;
  /** HMAC-SHA256 key, at least 16 characters. A secret. */
  secret: string;
}

export interface SlackConfig extends Common {
  type: 'slack';
  /** The incoming-webhook URL; whoever holds it can post, so it is kept as a secret. */
  url: string;
}

export type SmtpSecurity = 'starttls' | 'tls' | 'none';

export interface EmailConfig extends Common {
  type: 'email';
  host: string;
  port: number;
  secure: SmtpSecurity;
  user?: string;
  /** A secret. */
  password?: string;
  from: string;
  to: string[];
  rejectUnauthorized: boolean;
  /** Path of a PEM file with the CA (or self-signed certificate) the server's certificate must chain to. */
  ca?: string;
}

export interface SnsConfig extends Common {
  type: 'sns';
  topicArn: string;
  region: string;
  /** Another endpoint than AWS's (tests, SNS-compatible services). */
  endpoint?: string;
  accessKeyId?: string;
  /** A secret. Absent: the standard AWS credential chain (env, profile, instance role …). */
  secretAccessKey?: string;
  sessionToken?: string;
}

export type NotifierConfig = WebhookConfig | SlackConfig | EmailConfig | SnsConfig;

/** A stored notifier: its configuration and where it came from. */
export interface Notifier {
  id: string;
  config: NotifierConfig;
  /** "api" (POST /v1/notifiers) or "file" (<data>/notifiers.json, read at start). */
  source: 'api' | 'file';
  createdAt: string;
  createdBy: string;
}

/** The alarm as it leaves the vault (the webhook body's `alarm`, the SNS message's `alarm`). */
export interface AlarmPayload {
  id: number;
  kind: string;
  rule: string;
  severity: Severity;
  title: string;
  details: Record<string, unknown>;
  time: string;
  lastTime: string;
  count: number;
  log: string | null;
  entry: number | null;
}

/**
 * What one delivery says: the first sighting of an alarm ("raised"), a summary of its repeats
 * inside the grouping window ("repeated", with `repeats`), or an operator's test ("test").
 */
export interface Notice {
  event: 'raised' | 'repeated' | 'test';
  alarm: AlarmPayload;
  /** With "repeated": how many more times the alarm was seen since the last delivery. */
  repeats?: number;
  vault: { id: string; prefix: string };
}

/** The outcome of one attempt that did not throw. */
export interface SendResult {
  /** HTTP status, SMTP reply code, or 200 for an SNS Publish that was accepted. */
  status: number;
  /** The receiving side's id of the message, when it gives one (SMTP queue id, SNS MessageId). */
  messageId?: string;
}

/** Per attempt: a fresh signing time; the delivery id stays the same over retries. */
export interface SendContext {
  deliveryId: string;
  signal: AbortSignal;
}

/** One kind of destination. Transports throw DeliveryError when an attempt fails. */
export interface Transport {
  send(n: Notice, ctx: SendContext): Promise<SendResult>;
  close(): void;
}

/** A failed attempt: retryable (network, 5xx, 408, 429 …) or final (4xx, bad credentials). */
export class DeliveryError extends Error {
  override readonly name = 'DeliveryError';
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    /** The receiver asked to wait this long before the next attempt (Retry-After). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}
