/**
 * Fields re-derived from a stored record when the search index is (re)built: a year-less
 * RFC 3164 syslog time is read relative to when the vault received the record, not to when it
 * is indexed — so rebuilding the index a year later gives the same time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deriveRow } from '../../src/search/derive.js';
import type { ParsedEntry } from '../../src/log/entry.js';

function entry(source: string, received: string, record: string): { env: ParsedEntry; record: Buffer } {
  const rec = Buffer.from(record);
  return { env: { origin: 'x/local', region: 'local', source, producer: 'p', received, salt: Buffer.alloc(16), record: rec, blob: null }, record: rec };
}

test('an RFC 3164 time gets the year of the receive time, whenever the index is built', () => {
  const line = '<34>Jan  5 10:00:00 web1 sshd[42]: Failed password for root from 203.0.113.7 port 22 ssh2';
  for (const source of ['app.syslog', 'syslog']) {
    const a = entry(source, '2025-01-05T10:00:05.000Z', line);
    assert.equal(new Date(deriveRow('local', 0, a.env, a.record).time).toISOString(), '2025-01-05T10:00:00.000Z', source);
    // Received on 2 January 2024 a line dated 31 December is from 2023.
    const b = entry(source, '2024-01-02T00:00:00.000Z', '<34>Dec 31 23:59:00 web1 cron[1]: job done');
    assert.equal(new Date(deriveRow('local', 1, b.env, b.record).time).toISOString(), '2023-12-31T23:59:00.000Z', source);
  }
});
