/** STUB — replaced by the application/host log parsers. */
import type { SourceParser, CommonFields } from '../types.js';

export const applogParsers: SourceParser[] = [];

/** Fields of one syslog line (RFC 5424, RFC 3164 or a file line like /var/log/auth.log). */
export function syslogFields(_line: string): CommonFields {
  return {};
}
