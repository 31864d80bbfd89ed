/**
 * Search semantics on a small controlled corpus: CloudTrail events whose fields and words the
 * test knows. Random queries (AND, OR, NOT, "-", phrases, prefixes, fields, time ranges) go
 * through the real API; an independent filter over the same records says what must match.
 * Paging by cursor must return every hit once, in both orders.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startInProc, bearer, type InProcVault } from './support/inproc.js';
import { prng } from './support/server.js';

const ACCOUNT = '111122223333';
const USERS = ['alice', 'bob', 'carol', 'dave'];
const EVENTS: Array<[string, string]> = [
  ['s3.amazonaws.com', 'GetObject'],
  ['s3.amazonaws.com', 'PutObject'],
  ['iam.amazonaws.com', 'CreateUser'],
  ['sts.amazonaws.com', 'AssumeRole'],
  ['ec2.amazonaws.com', 'RunInstances'],
];
/** Words that occur only in each record's note (nothing else in a record starts like them). */
const VOCAB = ['quartz', 'quasar', 'zebra', 'zulu', 'xenon', 'yodel', 'vortex', 'jaguar'];
const IPS = ['10.0.0.1', '10.0.0.2', '192.168.7.9', '172.16.4.4'];
const REGIONS = ['us-east-1', 'eu-west-1'];
const BASE = Date.UTC(2024, 2, 1);
const N = 360;

interface Rec {
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

const rnd = prng(4242);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const records: Rec[] = [];
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

type Q =
  | { k: 'word'; w: string }
  | { k: 'prefix'; p: string }
  | { k: 'phrase'; a: string; b: string }
  | { k: 'field'; f: 'actor' | 'action' | 'outcome' | 'srcIp'; v: string; prefix: boolean; upper: boolean }
  | { k: 'time'; from: number; to: number }
  | { k: 'not'; q: Q; dash: boolean }
  | { k: 'and'; a: Q; b: Q; explicit: boolean }
  | { k: 'or'; a: Q; b: Q };

function render(q: Q): string {
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

function matches(q: Q, r: Rec): boolean {
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

const leaf: fc.Arbitrary<Q> = fc.oneof(
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

const query: fc.Arbitrary<Q> = fc.letrec<{ q: Q }>((tie) => ({
  q: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.tuple(tie('q'), fc.boolean()).map(([q, dash]): Q => ({ k: 'not', q, dash })),
    fc.tuple(tie('q'), tie('q'), fc.boolean()).map(([a, b, explicit]): Q => ({ k: 'and', a, b, explicit })),
    fc.tuple(tie('q'), tie('q')).map(([a, b]): Q => ({ k: 'or', a, b })),
  ),
})).q;

// ---- the vault --------------------------------------------------------------------------------

let v: InProcVault;

interface Page {
  hits: Array<{ log: string; index: number; time: string }>;
  next: string | null;
  total: number;
  totalCapped: boolean;
}

async function search(params: Record<string, string>): Promise<Page> {
  const r = await v.app.inject({ method: 'GET', url: `/v1/search?${new URLSearchParams(params)}`, headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<Page>();
}

const key = (h: { log: string; index: number }): string => `${h.log}:${h.index}`;
/** Only the corpus: the audit log is indexed too. */
const scoped = (q: string): string => (q === '' ? 'source:aws.cloudtrail' : `source:aws.cloudtrail (${q})`);

before(async () => {
  v = await startInProc({ search: true });
  const r = await v.app.inject({
    method: 'POST',
    url: '/v1/logs/local/entries?source=cloudtrail',
    headers: { ...bearer(v.tokens.writer), 'content-type': 'application/x-ndjson' },
    payload: records.map((x) => x.line).join('\n') + '\n',
  });
  assert.equal(r.statusCode, 200, r.body);
  const ans = r.json<{ stored: number; appends: Array<{ log: string; first: number; count: number }> }>();
  assert.equal(ans.stored, N);
  // Within a log, records keep their input order.
  for (const region of REGIONS) {
    const a = ans.appends.find((x) => x.log === region)!;
    let next = a.first;
    for (const rec of records) if (rec.log === region) rec.index = next++;
    assert.equal(next - a.first, a.count);
  }
  for (const seq of v.vault.logs.values()) await seq.waitForCheckpoint(seq.sequencedSize);
  await v.search!.whenIndexed({ timeoutMs: 20_000 });
});

after(async () => {
  await v?.close();
});

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

test('a cursor is tied to its query', async () => {
  const p = await search({ q: scoped('quartz'), limit: '2' });
  assert.ok(p.next);
  const others: Array<Record<string, string>> = [{ q: scoped('zebra') }, { q: scoped('quartz'), order: 'asc' }, { q: scoped('quartz'), from: '2024-03-01' }];
  const cursor: string = p.next!;
  for (const other of others) {
    const url = `/v1/search?${new URLSearchParams({ ...other, limit: '2', cursor })}`;
    const res = await v.app.inject({ method: 'GET', url, headers: bearer(v.tokens.auditor) });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json<{ error: { code: string } }>().error.code, 'BAD_REQUEST');
  }
  const garbage = await v.app.inject({ method: 'GET', url: '/v1/search?q=a&cursor=%%%', headers: bearer(v.tokens.auditor) });
  assert.equal(garbage.statusCode, 400);
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
