/**
 * Pure pieces of the notifiers, with property tests: whatever an alarm's title holds, the SNS
 * subject stays ASCII and ≤ 100 characters and no header gets a line break; any JSON thrown at
 * the config checker is refused with NOTIFIER_INVALID (never another error); Retry-After and
 * the backoff stay within their bounds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { isCustodyError } from '../../src/errors.js';
import { parseNotifierConfig, redactConfig } from '../../src/alarms/notify/config.js';
import { snsSubject, subject, slackBody, jsonBody, MAX_BODY_BYTES } from '../../src/alarms/notify/message.js';
import { parseRetryAfter, signature } from '../../src/alarms/notify/transports/http.js';
import { SecretBox } from '../../src/alarms/notify/secrets.js';
import { NotifierStore } from '../../src/alarms/notify/store.js';
import Database from 'better-sqlite3';
import type { Notice } from '../../src/alarms/notify/types.js';

function notice(title: string, details: Record<string, unknown> = {}, event: Notice['event'] = 'raised'): Notice {
  return { event, ...(event === 'repeated' ? { repeats: 3 } : {}), vault: { id: 'abcd1234', prefix: 'custody-test' }, alarm: { id: 7, kind: 'tamper', rule: 'r', severity: 'high', title, details, time: '2026-01-01T00:00:00.000Z', lastTime: '2026-01-01T00:00:00.000Z', count: 1, log: 'local', entry: 3 } };
}

test('subjects: SNS ASCII ≤ 100, no line breaks anywhere; Slack and JSON bodies always parse', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 400 }), fc.constantFrom<Notice['event']>('raised', 'repeated', 'test'), (title, event) => {
      const n = notice(title, {}, event);
      const s = snsSubject(n);
      assert.ok(s.length <= 100);
      assert.match(s, /^[\x20-\x7e]*$/);
      assert.ok(!/[\r\n]/.test(subject(n)));
      const slack = JSON.parse(slackBody(n)) as { text: string };
      assert.ok(!/[<>]/.test(slack.text), 'Slack markup characters are escaped');
      assert.equal((JSON.parse(jsonBody(n, new Date())) as { alarm: { title: string } }).alarm.title, title);
    }),
    { numRuns: 300 },
  );
  const big = jsonBody(notice('t', { blob: 'x'.repeat(MAX_BODY_BYTES * 2) }), new Date());
  assert.ok(Buffer.byteLength(big) < MAX_BODY_BYTES);
  assert.equal((JSON.parse(big) as { alarm: { details: { truncated: boolean } } }).alarm.details.truncated, true);
});

test('any JSON value is either a valid configuration or NOTIFIER_INVALID with a field', () => {
  const types = fc.constantFrom('webhook', 'slack', 'email', 'sns', 'x', 1, null);
  const anyConfig = fc.oneof(
    fc.jsonValue(),
    fc.record({ type: types, url: fc.oneof(fc.webUrl(), fc.string()), secret: fc.string({ maxLength: 40 }), minSeverity: fc.string(), kinds: fc.array(fc.string()) }, { requiredKeys: ['type'] }),
    fc.record({ type: fc.constant('email'), host: fc.domain(), port: fc.integer({ min: -5, max: 70000 }), secure: fc.constantFrom('starttls', 'tls', 'none', 'x'), from: fc.emailAddress(), to: fc.array(fc.emailAddress(), { maxLength: 3 }) }, { requiredKeys: ['type'] }),
  );
  let valid = 0;
  fc.assert(
    fc.property(anyConfig, (c) => {
      try {
        const ok = parseNotifierConfig(c);
        valid++;
        const shown = JSON.stringify(redactConfig(ok));
        if (ok.type === 'webhook') assert.ok(!shown.includes(`"${ok.secret}"`));
      } catch (e) {
        assert.ok(isCustodyError(e, 'NOTIFIER_INVALID'), String(e));
        assert.equal(typeof e.details?.['field'], 'string');
      }
    }),
    { numRuns: 500 },
  );
  assert.ok(valid > 0, 'some generated configurations are valid');
});

test('Retry-After in seconds or as a date; the HMAC is the documented one; sealed secrets open only for their notifier', () => {
  assert.equal(parseRetryAfter('7'), 7000);
  assert.equal(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1)), 30_000);
  assert.equal(parseRetryAfter('soon'), undefined);
  assert.equal(parseRetryAfter(null), undefined);
  // Computed independently by openssl: HMAC-SHA256 keyed with the secret over "<ts>.<body>".
  const body = '{"event":"raised","alarm":{"id":1}}';
  const ref = execFileSync('openssl', ['dgst', '-sha256', '-hmac', 'key-of-sixteen-chars'], { input: `1700000000.${body}` }).toString().trim().split(/\s+/).pop();
  assert.equal(signature('key-of-sixteen-chars', '1700000000', body), `sha256=${ref}`);
  assert.notEqual(signature('key-of-sixteen-chars', '1700000000', '{}'), signature('key-of-sixteen-chars', '1700000001', '{}'));
  const box = new SecretBox(Buffer.alloc(32, 9));
  const sealed = box.seal('ntf_a', { secret: 's3cr3t' });
  assert.deepEqual(box.open('ntf_a', sealed), { secret: 's3cr3t' });
  assert.throws(() => box.open('ntf_b', sealed), (e: unknown) => isCustodyError(e, 'KEYRING'));
  assert.throws(() => new SecretBox(Buffer.alloc(32, 8)).open('ntf_a', sealed), (e: unknown) => isCustodyError(e, 'KEYRING'));
});

test('a stored notifier whose secrets no longer decrypt (another keyring) is kept and marked broken, not dropped', () => {
  const db = new Database(':memory:');
  try {
    const mine = new NotifierStore(db, new SecretBox(Buffer.alloc(32, 1)));
    mine.add({ id: 'ntf_x', config: { type: 'webhook', url: 'https://h.example.org/x?t=1', secret: 'sixteen-characters!', minSeverity: 'low' }, source: 'api', createdAt: 'now', createdBy: 'test' });
    const row = db.prepare('SELECT config, secrets FROM notifier_configs').get() as { config: string; secrets: string };
    assert.ok(!row.config.includes('sixteen-characters!') && !row.config.includes('h.example.org'), 'secret and URL are not in the plain column');
    assert.equal(mine.list()[0]!.broken, undefined);
    assert.equal((mine.list()[0]!.config as { secret: string }).secret, 'sixteen-characters!');
    const other = new NotifierStore(db, new SecretBox(Buffer.alloc(32, 2)));
    const [n] = other.list();
    assert.equal(n!.id, 'ntf_x');
    assert.match(n!.broken!, /do not decrypt/);
    assert.equal((n!.config as { secret?: string }).secret, undefined);
  } finally {
    db.close();
  }
});
