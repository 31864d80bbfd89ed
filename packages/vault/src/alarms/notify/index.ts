/** Notifiers: webhook, Slack, e-mail and SNS deliveries of alarms (docs/NOTIFIERS.md). */
export { NotifierHub, NOTIFIERS_FILE, type NotifierHubOptions, type TestOutcome } from './hub.js';
export { parseNotifierConfig, redactConfig, describeTarget, publicView, REDACTED } from './config.js';
export { signature } from './transports/http.js';
export * from './types.js';
