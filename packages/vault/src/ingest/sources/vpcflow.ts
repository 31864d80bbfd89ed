/** STUB — replaced by the vpcflow parser. */
import { CustodyError } from '../../errors.js';
import type { SourceParser } from '../types.js';

export const vpcflowParser: SourceParser = {
  name: 'vpcflow',
  description: 'vpcflow (not written yet)',
  detect: () => 0,
  parse() {
    throw new CustodyError('UNKNOWN_SOURCE', 'The vpcflow parser is not written yet.');
  },
};
