/** STUB — replaced by the macie parser. */
import { CustodyError } from '../../errors.js';
import type { SourceParser } from '../types.js';

export const macieParser: SourceParser = {
  name: 'macie',
  description: 'macie (not written yet)',
  detect: () => 0,
  parse() {
    throw new CustodyError('UNKNOWN_SOURCE', 'The macie parser is not written yet.');
  },
};
