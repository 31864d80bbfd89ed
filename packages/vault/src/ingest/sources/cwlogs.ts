/** STUB — replaced by the cwlogs parser. */
import { CustodyError } from '../../errors.js';
import type { SourceParser } from '../types.js';

export const cwlogsParser: SourceParser = {
  name: 'cwlogs',
  description: 'cwlogs (not written yet)',
  detect: () => 0,
  parse() {
    throw new CustodyError('UNKNOWN_SOURCE', 'The cwlogs parser is not written yet.');
  },
};

/**
 * One decoded (gunzipped) CloudWatch Logs subscription payload → one record per logEvent
 * (its exact JSON bytes), attrs logGroup/logStream/owner; CONTROL_MESSAGE counts as ignored.
 * `position` is the unit the caller reports in (e.g. the Firehose record number).
 */
export function parseCwLogsPayload(_json: Buffer, _position: number): import('../types.js').ParseResult {
  throw new CustodyError('UNKNOWN_SOURCE', 'The cwlogs parser is not written yet.');
}
