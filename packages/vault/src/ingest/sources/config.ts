/** STUB — replaced by the config parser. */
import { CustodyError } from '../../errors.js';
import type { SourceParser } from '../types.js';

export const configParser: SourceParser = {
  name: 'config',
  description: 'config (not written yet)',
  detect: () => 0,
  parse() {
    throw new CustodyError('UNKNOWN_SOURCE', 'The config parser is not written yet.');
  },
};
