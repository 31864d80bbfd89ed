/** The query language: what parses to what, and every mistake as BAD_QUERY with its position. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseQuery, parseTimeBound, type QueryNode } from '../src/search/index.js';
import { CustodyError } from '../src/errors.js';

/** A compact rendering of a tree, to compare shapes. */
function show(n: QueryNode): string {
  switch (n.kind) {
    case 'all':
      return '*';
    case 'and':
      return `(${n.children.map(show).join(' & ')})`;
    case 'or':
      return `(${n.children.map(show).join(' | ')})`;
    case 'not':
      return `!${show(n.child)}`;
    case 'text':
      return `t[${n.value}${n.prefix ? '*' : ''}]`;
    case 'field':
      return `${n.field}[${n.value}${n.prefix ? '*' : ''}]`;
    case 'time':
      return `time[${n.from === null ? '*' : new Date(n.from).toISOString()}..${n.to === null ? '*' : new Date(n.to).toISOString()}]`;
  }
}

test('terms, fields, phrases and prefixes parse to the expected tree', () => {
  const cases: Array<[string, string]> = [
    ['', '*'],
    ['   ', '*'],
    ['alice', 't[alice]'],
    ['ali*', 't[ali*]'],
    ['"access denied"', 't[access denied]'],
    ['"access den"*', 't[access den*]'],
    ['actor:arn:aws:iam::111122223333:user/alice', 'actor[arn:aws:iam::111122223333:user/alice]'],
    ['action:s3.amazonaws.com:GetObject', 'action[s3.amazonaws.com:GetObject]'],
    ['action:s3*', 'action[s3*]'],
    ['ACTOR:"Jane Doe"', 'actor[Jane Doe]'],
    ['srcip:10.0.0.1 dst_ip:10.0.0.2', '(srcIp[10.0.0.1] & dstIp[10.0.0.2])'],
    ['ocsf:6003', 'ocsf[6003]'],
    ['resource:*', 'resource[*]'],
    ['text:"two words"', 't[two words]'],
    ['a b c', '(t[a] & t[b] & t[c])'],
    ['a AND b', '(t[a] & t[b])'],
    ['a OR b c', '(t[a] | (t[b] & t[c]))'],
    ['(a OR b) c', '((t[a] | t[b]) & t[c])'],
    ['NOT a', '!t[a]'],
    ['-a b', '(!t[a] & t[b])'],
    ['a -"x y"', '(t[a] & !t[x y])'],
    ['NOT NOT a', '!!t[a]'],
    ['-(a OR b)', '!(t[a] | t[b])'],
    ['and or not', '(t[and] & t[or] & t[not])'],
    ['12:30', 't[12:30]'],
    ['us-east-1', 't[us-east-1]'],
    ['"say \\"hi\\""', 't[say "hi"]'],
    ['time:[2024-01-01 TO 2024-01-31T12:00:00Z]', 'time[2024-01-01T00:00:00.000Z..2024-01-31T12:00:00.999Z]'],
    ['time:[* TO 2024-01-31]', 'time[*..2024-01-31T23:59:59.999Z]'],
    ['time:2024-03-03', 'time[2024-03-03T00:00:00.000Z..2024-03-03T23:59:59.999Z]'],
    ['time:[2024-01-01T10:00+02:00 TO *]', 'time[2024-01-01T08:00:00.000Z..*]'],
  ];
  for (const [q, want] of cases) assert.equal(show(parseQuery(q)), want, q);
});

test('time bounds cover the unit they name; relative times count back from now', () => {
  assert.equal(parseTimeBound('2024-02-29', 'start'), Date.UTC(2024, 1, 29));
  assert.equal(parseTimeBound('2024-02-29', 'end'), Date.UTC(2024, 2, 1) - 1);
  assert.equal(parseTimeBound('2024-02-29T10:15', 'end'), Date.UTC(2024, 1, 29, 10, 16) - 1);
  assert.equal(parseTimeBound('2024-02-29T10:15:30Z', 'end'), Date.UTC(2024, 1, 29, 10, 15, 31) - 1);
  assert.equal(parseTimeBound('2024-02-29T10:15:30.250Z', 'end'), Date.UTC(2024, 1, 29, 10, 15, 30, 250));
  assert.equal(parseTimeBound('2024-02-29 10:15:30', 'start'), Date.UTC(2024, 1, 29, 10, 15, 30));
  assert.equal(parseTimeBound('2024-01-01T00:00:00-05:00', 'start'), Date.UTC(2024, 0, 1, 5));
  assert.equal(parseTimeBound('now-2h', 'start', 10_000_000), 10_000_000 - 7_200_000);
  assert.equal(parseTimeBound('now', 'end', 42), 42);
  for (const bad of ['2023-02-29', '2024-13-01', '2024-01-01T24:00', 'yesterday', '2024/01/01', '1700000000', 'now+1h', '']) {
    assert.equal(parseTimeBound(bad, 'start'), null, bad);
  }
});

function badQuery(q: string): { position: number; expected: string; message: string } {
  try {
    parseQuery(q);
  } catch (e) {
    assert.ok(e instanceof CustodyError, `${q}: ${String(e)}`);
    assert.equal(e.code, 'BAD_QUERY', q);
    const d = e.details as { position: number; expected: string };
    assert.equal(typeof d.position, 'number');
    assert.equal(typeof d.expected, 'string');
    return { ...d, message: e.message };
  }
  assert.fail(`${JSON.stringify(q)} should be refused`);
}

test('mistakes are BAD_QUERY with the position of the problem and what was expected', () => {
  const cases: Array<[string, number, RegExp]> = [
    ['(a OR b', 7, /\)/],
    ['a OR', 4, /term/],
    ['OR a', 0, /term/],
    ['a AND AND b', 6, /term/],
    ['a )', 2, /term/],
    ['()', 1, /term/],
    ['"unclosed', 0, /"/],
    ['actor:"unclosed', 6, /"/],
    ['colour:red', 0, /field/],
    ['actor:', 6, /value/],
    ['NOT', 3, /term/],
    ['a -', 2, /letter or digit/],
    ['time:[2024-01-01 TO]', 6, /TO/],
    ['time:[2024-01-01 TO nope]', 20, /time/],
    ['time:[2024-02-01 TO 2024-01-01]', 0, /start is not after/],
    ['time:yesterday', 0, /time/],
    ['time:[2024-01-01 TO 2024-01-02', 5, /\]/],
    ['ocsf:api', 0, /class number/],
    ['actor:[a TO b]', 0, /value/],
    ['***', 0, /letter or digit/],
    ['x "!!"', 2, /letter or digit/],
  ];
  for (const [q, pos, expected] of cases) {
    const e = badQuery(q);
    assert.equal(e.position, pos, `${q}: position`);
    assert.match(e.expected, expected, `${q}: expected`);
    assert.match(e.message, new RegExp(`at character ${pos + 1} `), `${q}: the message says where`);
  }
  assert.equal(badQuery('a '.repeat(65)).expected, 'fewer terms');
  assert.equal(badQuery('('.repeat(40) + 'a' + ')'.repeat(40)).expected, 'fewer parentheses');
  assert.equal(badQuery('x'.repeat(5000)).expected, 'a shorter query');
});

test('any input either parses or is refused as BAD_QUERY (never another error)', () => {
  const alphabet = fc.constantFrom('a', 'b', ' ', '(', ')', '"', '\\', '*', '-', ':', '[', ']', 'AND', 'OR', 'NOT', 'TO', 'actor:', 'time:', 'ocsf:', '2024-01-01', 'é', '\u0000');
  fc.assert(
    fc.property(fc.array(alphabet, { maxLength: 30 }), fc.string({ maxLength: 40 }), (parts, s) => {
      for (const q of [parts.join(''), s]) {
        try {
          parseQuery(q);
        } catch (e) {
          if (!(e instanceof CustodyError) || e.code !== 'BAD_QUERY') throw e;
          const p = (e.details as { position: number }).position;
          if (!(Number.isInteger(p) && p >= 0 && p <= q.length)) throw new Error(`position ${p} outside the query ${JSON.stringify(q)}`);
        }
      }
    }),
    { numRuns: 2000 },
  );
});
