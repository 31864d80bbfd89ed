/**
 * AWS SNS Publish (the SDK's own retries are off: the hub retries with its backoff). Subject
 * at most 100 ASCII characters; Message is the JSON notice; MessageAttributes carry severity
 * and kind so subscriptions can filter. FIFO topics get a group id and the delivery id as the
 * deduplication id. The SDK is loaded on first use (it is large; most CLI runs never need it).
 */
import type { SNSClient } from '@aws-sdk/client-sns';
import { DeliveryError, type Notice, type SendContext, type SendResult, type SnsConfig, type Transport } from '../types.js';
import { jsonBody, snsSubject } from '../message.js';

interface AwsError extends Error {
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  $fault?: string;
  code?: string;
}

export function classifyAws(e: AwsError): DeliveryError {
  const status = e.$metadata?.httpStatusCode;
  const msg = `${e.name}: ${(e.message || '').replace(/\s+/g, ' ').slice(0, 300)}`;
  if (e.name === 'CredentialsProviderError') return new DeliveryError(`no AWS credentials (${msg}); give accessKeyId and secretAccessKey or run with a role`, false);
  if (status === undefined) return new DeliveryError(`cannot reach SNS (${msg})`, true);
  if (status === 408 || status === 429 || status >= 500 || e.$retryable !== undefined || /Throttl/.test(e.name)) return new DeliveryError(`SNS answered HTTP ${status} (${msg})`, true, status);
  return new DeliveryError(`SNS refused the message with HTTP ${status} (${msg})`, false, status);
}

export class SnsTransport implements Transport {
  private client: Promise<SNSClient> | undefined;
  constructor(
    private readonly c: SnsConfig,
    private readonly timeoutMs: number,
  ) {}

  private sdk(): Promise<SNSClient> {
    const c = this.c;
    this.client ??= import('@aws-sdk/client-sns').then(
      ({ SNSClient }) =>
        new SNSClient({
          region: c.region,
          maxAttempts: 1,
          ...(c.endpoint ? { endpoint: c.endpoint } : {}),
          ...(c.accessKeyId && c.secretAccessKey ? { credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}) } } : {}),
          requestHandler: { connectionTimeout: this.timeoutMs, requestTimeout: this.timeoutMs },
        }),
    );
    return this.client;
  }

  async send(n: Notice, ctx: SendContext): Promise<SendResult> {
    const fifo = this.c.topicArn.endsWith('.fifo');
    const client = await this.sdk();
    const { PublishCommand } = await import('@aws-sdk/client-sns');
    try {
      const out = await client.send(
        new PublishCommand({
          TopicArn: this.c.topicArn,
          Subject: snsSubject(n),
          Message: jsonBody(n, new Date()),
          MessageAttributes: {
            severity: { DataType: 'String', StringValue: n.alarm.severity },
            kind: { DataType: 'String', StringValue: n.alarm.kind },
            event: { DataType: 'String', StringValue: n.event },
          },
          ...(fifo ? { MessageGroupId: 'custody-alarms', MessageDeduplicationId: ctx.deliveryId } : {}),
        }),
        { abortSignal: ctx.signal },
      );
      return { status: out.$metadata.httpStatusCode ?? 200, ...(out.MessageId ? { messageId: out.MessageId } : {}) };
    } catch (e) {
      if (ctx.signal.aborted) throw new DeliveryError('the vault is shutting down', true);
      throw classifyAws(e as AwsError);
    }
  }

  close(): void {
    void this.client?.then((c) => c.destroy()).catch(() => undefined);
  }
}
