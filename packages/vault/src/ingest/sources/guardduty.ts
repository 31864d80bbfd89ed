/** STUB — replaced by the guardduty parser. */
import { CustodyError } from '../../errors.js';
import type { SourceParser } from '../types.js';

export const guarddutyParser: SourceParser = {
  name: 'guardduty',
  description: 'guardduty (not written yet)',
  detect: () => 0,
  parse() {
    throw new CustodyError('UNKNOWN_SOURCE', 'The guardduty parser is not written yet.');
  },
};
