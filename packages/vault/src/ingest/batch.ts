/**
 * Request bodies: gzip/deflate inflated with a hard cap, so a compression bomb costs at most
 * the cap. Splitting into records is the source parsers' work (sources/generic.ts for JSON and
 * text lines).
 */
import { gunzip, inflate } from 'node:zlib';
import { promisify } from 'node:util';
import { CustodyError } from '../errors.js';

export const MAX_BODY_BYTES = 16 * 1024 * 1024;
const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

export async function decodeBody(body: Buffer, contentEncoding: string | undefined, maxBytes = MAX_BODY_BYTES): Promise<Buffer> {
  const enc = (contentEncoding ?? 'identity').trim().toLowerCase();
  if (enc === 'identity' || enc === '') return body;
  const opts = { maxOutputLength: maxBytes };
  try {
    if (enc === 'gzip' || enc === 'x-gzip') return await gunzipAsync(body, opts);
    if (enc === 'deflate') return await inflateAsync(body, opts);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new CustodyError('BODY_TOO_LARGE', `The body inflates to more than ${maxBytes} bytes; send smaller batches.`);
    }
    throw new CustodyError('BAD_ENCODING', `The body is not valid ${enc} data (${(e as Error).message}); check the Content-Encoding header.`);
  }
  throw new CustodyError('BAD_ENCODING', `Content-Encoding ${JSON.stringify(enc)} is not supported: send gzip, deflate or an uncompressed body.`);
}
