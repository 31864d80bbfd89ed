/** docs/API.md is the error reference: it must list every code with its status. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../src/errors.js';

test('docs/API.md lists every error code with its HTTP status', () => {
  const doc = readFileSync(new URL('../../../../docs/API.md', import.meta.url), 'utf8');
  for (const [code, { status }] of Object.entries(ERROR_CODES)) {
    assert.match(doc, new RegExp('\\| `' + code + '` \\| ' + status + ' \\|'), `${code} (${status}) is missing from docs/API.md`);
  }
});
