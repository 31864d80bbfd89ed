/**
 * The search semantics cases (docs/SEARCH.md), shared by the embedded index's test
 * (search-semantics.test.ts, SQLite) and the shared vault's (search-pg/, PostgreSQL): a small
 * controlled corpus of CloudTrail events whose fields and words the test knows, an independent
 * filter over the records that says what must match, and the tests, run against any `search`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { prng } from './server.js';

export const ACCOUNT = '111122223333';
export const USERS = ['alice', 'bob', 'carol', 'dave'];
export const EVENTS: Array<[string, string]> = [
  ['s3.amazonaws.com', 'GetObject'],
  ['s3.amazonaws.com', 'PutObject'],
  ['iam.amazonaws.com', 'CreateUser'],
  ['sts.amazonaws.com', 'AssumeRole'],
  ['ec2.amazonaws.com', 'RunInstances'],
];
/** Words that occur only in each record's note (nothing else in a record starts like them). */
export const VOCAB = ['quartz', 'quasar', 'zebra', 'zulu', 'xenon', 'yodel', 'vortex', 'jaguar'];
export const IPS = ['10.0.0.1', '10.0.0.2', '192.168.7.9', '172.16.4.4'];
export const REGIONS = ['us-east-1', 'eu-west-1'];
export const BASE = Date.UTC(2024, 2, 1);
export const N = 360;

export interface Rec {
  line: string;
  log: string;
  index: number;
  time: number;
  actor: string;
  action: string;
  outcome: string;
  srcIp: string;
  note: string[];
}

export const rnd = prng(4242);
export const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
export const records: Rec[] = [];
for (let i = 0; i < N; i++) {
  const user = pick(USERS);
  const [src, name] = pick(EVENTS);
  const failed = rnd() < 0.3;
  // Three events per second: equal times exercise the order of ties.
  const time = BASE + Math.floor(i / 3) * 60_000;
  const note = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => pick(VOCAB));
  const region = pick(REGIONS);
  const ip = pick(IPS);
  const ev: Record<string, unknown> = {
    eventVersion: '1.08',
    userIdentity: { type: 'IAMUser', arn: `arn:aws:iam::${ACCOUNT}:user/${user}`, accountId: ACCOUNT, userName: user },
    eventTime: new Date(time).toISOString().replace('.000Z', 'Z'),
    eventSource: src,
    eventName: name,
    awsRegion: region,
    sourceIPAddress: ip,
    requestParameters: { note: note.join(' ') },
    eventID: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    recipientAccountId: ACCOUNT,
    ...(failed ? { errorCode: 'AccessDenied' } : {}),
  };
  records.push({ line: JSON.stringify(ev), log: region, index: -1, time, actor: `arn:aws:iam::${ACCOUNT}:user/${user}`, action: `${src}:${name}`, outcome: failed ? 'failure' : 'success', srcIp: ip, note });
}

// ---- the independent filter -------------------------------------------------------------------

export type Q =
  | { k: 'word'; w: string }
  | { k: 'prefix'; p: string }
  | { k: 'phrase'; a: string; b: string }
  | { k: 'field'; f: 'actor' | 'action' | 'outcome' | 'srcIp'; v: string; prefix: boolean; upper: boolean }
  | { k: 'time'; from: number; to: number }
  | { k: 'not'; q: Q; dash: boolean }
  | { k: 'and'; a: Q; b: Q; explicit: boolean }
  | { k: 'or'; a: Q; b: Q };

export function render(q: Q): string {
  switch (q.k) {
    case 'word':
      return q.w;
    case 'prefix':
      return `${q.p}*`;
    case 'phrase':
      return `"${q.a} ${q.b}"`;
    case 'field': {
      const v = q.upper ? q.v.toUpperCase() : q.v;
      return `${q.f}:${v}${q.prefix ? '*' : ''}`;
    }
    case 'time':
      return `time:[${new Date(q.from).toISOString()} TO ${new Date(q.to).toISOString()}]`;
    case 'not':
      return q.dash && (q.q.k === 'word' || q.q.k === 'field' || q.q.k === 'phrase') ? `-${render(q.q)}` : `NOT (${render(q.q)})`;
    case 'and':
      return `(${render(q.a)}${q.explicit ? ' AND ' : ' '}${render(q.b)})`;
    case 'or':
      return `(${render(q.a)} OR ${render(q.b)})`;
  }
}

export function matches(q: Q, r: Rec): boolean {
  switch (q.k) {
    case 'word':
      return r.note.includes(q.w);
    case 'prefix':
      return r.note.some((t) => t.startsWith(q.p));
    case 'phrase':
      return r.note.some((t, i) => t === q.a && r.note[i + 1] === q.b);
    case 'field': {
      const have = r[q.f].toLowerCase();
      const want = q.v.toLowerCase();
      return q.prefix ? have.startsWith(want) : have === want;
    }
    case 'time':
      return r.time >= q.from && r.time <= q.to;
    case 'not':
      return !matches(q.q, r);
    case 'and':
      return matches(q.a, r) && matches(q.b, r);
    case 'or':
      return matches(q.a, r) || matches(q.b, r);
  }
}

export const leaf: fc.Arbitrary<Q> = fc.oneof(
  fc.constantFrom(...VOCAB).map((w): Q => ({ k: 'word', w })),
  fc.tuple(fc.constantFrom(...VOCAB), fc.integer({ min: 1, max: 4 })).map(([w, n]): Q => ({ k: 'prefix', p: w.slice(0, n) })),
  fc.tuple(fc.constantFrom(...VOCAB), fc.constantFrom(...VOCAB)).map(([a, b]): Q => ({ k: 'phrase', a, b })),
  fc.tuple(fc.constantFrom(...USERS), fc.boolean()).map(([u, upper]): Q => ({ k: 'field', f: 'actor', v: `arn:aws:iam::${ACCOUNT}:user/${u}`, prefix: false, upper })),
  fc.constantFrom(...EVENTS).map(([s, n]): Q => ({ k: 'field', f: 'action', v: `${s}:${n}`, prefix: false, upper: false })),
  fc.constantFrom('s3', 'i', 'sts.amazonaws.com:A', 'ec2.amazonaws.com:RunInstances').map((p): Q => ({ k: 'field', f: 'action', v: p, prefix: true, upper: false })),
  fc.constantFrom('failure', 'success').map((v): Q => ({ k: 'field', f: 'outcome', v, prefix: false, upper: false })),
  fc.constantFrom(...IPS).map((v): Q => ({ k: 'field', f: 'srcIp', v, prefix: false, upper: false })),
  fc.tuple(fc.integer({ min: 0, max: N / 3 }), fc.integer({ min: 0, max: N / 3 })).map(([a, b]): Q => ({ k: 'time', from: BASE + Math.min(a, b) * 60_000, to: BASE + Math.max(a, b) * 60_000 })),
);

export const query: fc.Arbitrary<Q> = fc.letrec<{ q: Q }>((tie) => ({
  q: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.tuple(tie('q'), fc.boolean()).map(([q, dash]): Q => ({ k: 'not', q, dash })),
    fc.tuple(tie('q'), tie('q'), fc.boolean()).map(([a, b, explicit]): Q => ({ k: 'and', a, b, explicit })),
    fc.tuple(tie('q'), tie('q')).map(([a, b]): Q => ({ k: 'or', a, b })),
  ),
})).q;

export interface Page {
  hits: Array<{ log: string; index: number; time: string }>;
  next: string | null;
  total: number;
  totalCapped: boolean;
}

export const key = (h: { log: string; index: number }): string => `${h.log}:${h.index}`;
/** Only the corpus: the audit log is indexed too. */
export const scoped = (q: string): string => (q === '' ? 'source:aws.cloudtrail' : `source:aws.cloudtrail (${q})`);

/** A page of /v1/search for these query parameters (q, limit, order, cursor, from, to). */
export type SearchFn = (params: Record<string, string>) => Promise<Page>;

/** The semantics tests, against one index. */
export function semanticsTests(search: SearchFn): void {
  test('random queries find exactly what an independent filter over the records finds', async () => {
    await fc.assert(
      fc.asyncProperty(query, fc.boolean(), async (q, asc) => {
        const text = render(q);
        const want = records.filter((r) => matches(q, r));
        const page = await search({ q: scoped(text), limit: '1000', order: asc ? 'asc' : 'desc' });
        const got = page.hits.map(key).sort();
        assert.deepEqual(got, want.map(key).sort(), `query: ${text}`);
        assert.equal(page.total, want.length, `total of ${text}`);
        assert.equal(page.next, null);
        const times = page.hits.map((h) => Date.parse(h.time));
        for (let i = 1; i < times.length; i++) assert.ok(asc ? times[i]! >= times[i - 1]! : times[i]! <= times[i - 1]!, `order of ${text}`);
      }),
      { numRuns: 120 },
    );
  });

  test('operator precedence: OR binds loosest, NOT and "-" bind to the next term', async () => {
    const ids = async (q: string): Promise<string[]> => (await search({ q: scoped(q), limit: '1000' })).hits.map(key).sort();
    const f = (pred: (r: Rec) => boolean): string[] => records.filter(pred).map(key).sort();
    assert.deepEqual(await ids('quartz OR zebra zulu'), f((r) => r.note.includes('quartz') || (r.note.includes('zebra') && r.note.includes('zulu'))));
    assert.deepEqual(await ids('NOT quartz zebra'), f((r) => !r.note.includes('quartz') && r.note.includes('zebra')));
    assert.deepEqual(await ids('-outcome:failure -zebra'), f((r) => r.outcome !== 'failure' && !r.note.includes('zebra')));
    assert.deepEqual(await ids('NOT (quartz OR outcome:failure)'), f((r) => !r.note.includes('quartz') && r.outcome !== 'failure'));
    // Sanity: the corpus has both kinds for every term used above.
    for (const w of ['quartz', 'zebra', 'zulu']) assert.ok(records.some((r) => r.note.includes(w)) && records.some((r) => !r.note.includes(w)));
  });

  test('paging by cursor returns every hit once, in order, in both orders', async () => {
    for (const q of ['', 'quartz OR outcome:failure', 'NOT zebra', 'action:s3*', 'time:[2024-03-01T01:00 TO 2024-03-01T03:00] -yodel']) {
      for (const order of ['desc', 'asc']) {
        const all = await search({ q: scoped(q), limit: '1000', order });
        assert.ok(all.hits.length > 20, `${q}: enough hits to page through`);
        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const p: Page = await search({ q: scoped(q), limit: '7', order, ...(cursor ? { cursor } : {}) });
          assert.ok(p.hits.length <= 7);
          assert.equal(p.total, all.total);
          seen.push(...p.hits.map(key));
          cursor = p.next;
          pages++;
        } while (cursor !== null && pages < 1000);
        assert.deepEqual(seen, all.hits.map(key), `${q} ${order}: pages concatenated equal one big page`);
        assert.equal(new Set(seen).size, seen.length, `${q} ${order}: no hit twice`);
      }
    }
    // The ties (three events per second) come out in opposite orders.
    const desc = (await search({ q: scoped(''), limit: '1000', order: 'desc' })).hits.map(key);
    const asc = (await search({ q: scoped(''), limit: '1000', order: 'asc' })).hits.map(key);
    assert.deepEqual(asc, [...desc].reverse());
  });

  test('from and to narrow like a time range in the query', async () => {
    const from = new Date(BASE + 20 * 60_000).toISOString();
    const to = new Date(BASE + 50 * 60_000).toISOString();
    const a = await search({ q: scoped('outcome:failure'), from, to, limit: '1000' });
    const b = await search({ q: scoped(`outcome:failure time:[${from} TO ${to}]`), limit: '1000' });
    const want = records.filter((r) => r.outcome === 'failure' && r.time >= BASE + 20 * 60_000 && r.time <= BASE + 50 * 60_000).map(key).sort();
    assert.deepEqual(a.hits.map(key).sort(), want);
    assert.deepEqual(b.hits.map(key).sort(), want);
  });
}
