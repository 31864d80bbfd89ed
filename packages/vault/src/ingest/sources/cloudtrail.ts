/** STUB — replaced by the cloudtrail parser. */
import { CustodyError } from '../../errors.js';
import type { SourceParser } from '../types.js';

export const cloudtrailParser: SourceParser = {
  name: 'cloudtrail',
  description: 'cloudtrail (not written yet)',
  detect: () => 0,
  parse() {
    throw new CustodyError('UNKNOWN_SOURCE', 'The cloudtrail parser is not written yet.');
  },
};
