#!/usr/bin/env node
/**
 * Report whether MFA delete is on, from the output of `aws s3api get-bucket-versioning`:
 *
 *   aws s3api get-bucket-versioning --bucket B --output json | node dist/bin/check-mfa-delete.js --bucket B [--json]
 *   node dist/bin/check-mfa-delete.js --bucket B versioning.json
 *
 * Exit status: 0 MFA delete on, 1 off, 2 the input is not a GetBucketVersioning answer.
 */
import { readFileSync } from 'node:fs';
import { checkMfaDelete, MfaDeleteInputError } from '../src/mfa-delete.js';

const args = process.argv.slice(2);
let bucket: string | null = null;
let json = false;
let file: string | null = null;
for (let i = 0; i < args.length; i++) {
  const a = args[i] as string;
  if (a === '--json') json = true;
  else if (a === '--bucket') bucket = args[++i] ?? null;
  else if (a === '--help' || a === '-h') {
    console.log('Usage: aws s3api get-bucket-versioning --bucket B --output json | check-mfa-delete --bucket B [--json] [file]\nExit status: 0 MFA delete on, 1 off, 2 unreadable input.');
    process.exit(0);
  } else if (a.startsWith('-') && a !== '-') {
    console.error(`Unknown option ${a}. Use --bucket NAME, --json and an optional file (default: standard input).`);
    process.exit(2);
  } else file = a;
}
if (bucket !== null && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
  console.error(`${JSON.stringify(bucket)} is not an S3 bucket name.`);
  process.exit(2);
}
let text: string;
try {
  text = readFileSync(file === null || file === '-' ? 0 : file, 'utf8');
} catch (e) {
  console.error(`Cannot read ${file ?? 'standard input'}: ${(e as Error).message}`);
  process.exit(2);
}
try {
  const r = checkMfaDelete(text, bucket);
  console.log(json ? JSON.stringify(r) : r.message);
  process.exit(r.ok ? 0 : 1);
} catch (e) {
  if (!(e instanceof MfaDeleteInputError)) throw e;
  if (json) console.log(JSON.stringify({ error: e.code, message: e.message }));
  else console.error(e.message);
  process.exit(2);
}
