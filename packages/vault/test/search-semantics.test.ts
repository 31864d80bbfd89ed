/**
 * Search semantics on a small controlled corpus: CloudTrail events whose fields and words the
 * test knows. Random queries (AND, OR, NOT, "-", phrases, prefixes, fields, time ranges) go
 * through the real API; an independent filter over the same records says what must match.
 * Paging by cursor must return every hit once, in both orders. The cases are in
 * support/search-cases.ts; search-pg/ runs the same ones against a shared vault's index.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startInProc, bearer, type InProcVault } from './support/inproc.js';
import { records, N, REGIONS, scoped, semanticsTests, type Page } from './support/search-cases.js';

// ---- the vault --------------------------------------------------------------------------------

let v: InProcVault;

async function search(params: Record<string, string>): Promise<Page> {
  const r = await v.app.inject({ method: 'GET', url: `/v1/search?${new URLSearchParams(params)}`, headers: bearer(v.tokens.auditor) });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<Page>();
}


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

semanticsTests(search);

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
