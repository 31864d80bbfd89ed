/**
 * From parsed records to durable entries: region routing, the writer's scope, duplicates,
 * grouping, and the appends. Every protocol ends here, so the rules hold for all of them:
 *
 * - A record that names its region goes to that region's log; one without goes to the
 *   request's default log. A region the vault does not keep is refused per record
 *   (REGION_NOT_ALLOWED) — never stored in another region. On the embedded default ("auto"
 *   region mode) a new region's log is created on first sight (vault.ensureRegionLog).
 * - A writer scoped to some logs cannot reach others through a record's region either.
 * - A record with a dedupe key is stored once: later copies (in the same batch, in flight, or
 *   already stored) are answered "duplicate" with where the first copy is. Keys are
 *   remembered only once their record is durable, so a crash can only cause a second copy,
 *   never a lost record.
 * - One bad record never sinks the others: it gets its own outcome.
 */
import { hash } from 'node:crypto';
import { CustodyError, isCustodyError } from '../errors.js';
import type { Vault, IngestedRecord } from '../vault.js';
import type { PrincipalRow, DedupeStoreApi } from '../storage/db.js';
import { cleanAttrs } from '../log/entry.js';
import { DATA_DIR_DBS } from '../storage/sqlite.js';
import type { ParsedRecord, IngestSummary, RecordOutcome } from './types.js';

export interface IngestOptions {
  principal: PrincipalRow;
  /** Log for records that name no region; default: the writer's default log. */
  defaultLog?: string;
  /** Extra envelope attributes for every record of this request (merged under the record's). */
  attrs?: Record<string, string>;
  /** Keep each stored record's leaf hash and salt (for receipts). */
  receipts?: boolean;
}

interface Waiter {
  promise: Promise<void>;
}

const inFlight = new WeakMap<Vault, Map<string, Waiter>>();

/**
 * A shared vault's dedupe store (storage/pg/dedupe.ts): claims in PostgreSQL order the nodes;
 * undefined on an embedded vault, whose dedupe.db is used exactly as before.
 */
const sharedDedupes = new WeakMap<Vault, Promise<DedupeStoreApi>>();
function sharedDedupe(vault: Vault): Promise<DedupeStoreApi> | undefined {
  const sh = vault.shared;
  if (!sh) return undefined;
  let p = sharedDedupes.get(vault);
  if (!p) {
    p = import('../storage/pg/dedupe.js').then((m) => new m.PgDedupeStore(sh.pool, sh.nodeId, vault.keyring.vaultKey(DATA_DIR_DBS.dedupe.purpose)));
    sharedDedupes.set(vault, p);
  }
  return p;
}

function keyHash(key: string): Buffer {
  return (hash('sha256', key, 'buffer') as Buffer).subarray(0, 16);
}

function outcomeRejected(e: unknown): RecordOutcome {
  if (isCustodyError(e)) return { status: 'rejected', code: e.code, error: e.message };
  throw e;
}

export async function ingestRecords(vault: Vault, records: ParsedRecord[], opts: IngestOptions): Promise<IngestSummary> {
  const principal = opts.principal;
  const defaultLog = opts.defaultLog ?? vault.defaultLogFor(principal);
  const outcomes: RecordOutcome[] = new Array(records.length);
  const target: Array<string | undefined> = new Array(records.length);

  // 1. Route each record to a log (creating a region's log on first sight).
  const regionLog = new Map<string, string | CustodyError>();
  const resolveRegion = async (region: string): Promise<string | CustodyError> => {
    const existing = vault.logForRegion(region);
    if (existing) return existing;
    if (principal.logs !== null) {
      return new CustodyError('REGION_NOT_ALLOWED', `Writer "${principal.name}" may append only to ${principal.logs.join(', ')}; a record for region "${region.slice(0, 64)}" is refused.`);
    }
    try {
      return await vault.ensureRegionLog(region, principal.name);
    } catch (e) {
      if (isCustodyError(e)) return e;
      throw e;
    }
  };
  for (let i = 0; i < records.length; i++) {
    const region = records[i]!.region;
    if (region === undefined || region === '') {
      target[i] = defaultLog;
      continue;
    }
    let got = regionLog.get(region);
    if (got === undefined) {
      got = await resolveRegion(region);
      regionLog.set(region, got);
    }
    if (got instanceof CustodyError) outcomes[i] = outcomeRejected(got);
    else target[i] = got;
  }
  for (let i = 0; i < records.length; i++) {
    const log = target[i];
    if (log === undefined || outcomes[i]) continue;
    if (principal.logs !== null && !principal.logs.includes(log)) {
      outcomes[i] = { status: 'rejected', code: 'FORBIDDEN', error: `Writer "${principal.name}" may not append to log "${log}"; it may append to: ${principal.logs.join(', ')}.` };
    } else if (vault.logRow(log).kind !== 'region') {
      outcomes[i] = { status: 'rejected', code: 'FORBIDDEN', error: `Log "${log}" is the vault's own; writers cannot append to it.` };
    }
  }

  // 2. Duplicates: within the batch, in flight in another request, or already stored.
  let flights = inFlight.get(vault);
  if (!flights) inFlight.set(vault, (flights = new Map()));
  const keys: Array<Buffer | undefined> = new Array(records.length);
  const firstInBatch = new Map<string, number>();
  const dupOf: Array<number | undefined> = new Array(records.length);
  const lookups: Buffer[] = [];
  for (let i = 0; i < records.length; i++) {
    const k = records[i]!.dedupeKey;
    if (k === undefined || outcomes[i]) continue;
    const h = keyHash(k);
    const hex = h.toString('hex');
    const first = firstInBatch.get(hex);
    if (first !== undefined) {
      dupOf[i] = first;
      continue;
    }
    firstInBatch.set(hex, i);
    keys[i] = h;
    lookups.push(h);
  }
  // Wait for other requests carrying the same keys, then look them up.
  const waits = new Set<Promise<void>>();
  for (const h of lookups) {
    const w = flights.get(h.toString('hex'));
    if (w) waits.add(w.promise);
  }
  if (waits.size > 0) await Promise.allSettled([...waits]);
  // Shared vault: the keys not seen are claimed in PostgreSQL before the append (another node
  // may hold the same key right now); they are remembered or released below.
  // (No await on an embedded vault: nothing may run between the wait above and the flights below.)
  const sharedP = sharedDedupe(vault);
  const shared = sharedP ? await sharedP : undefined;
  const { seen, busy } = shared ? await shared.claim(lookups) : { seen: vault.dedupe.lookup(lookups), busy: undefined };
  let release!: () => void;
  const mine: Waiter = { promise: new Promise<void>((res) => (release = res)) };
  const claimed: string[] = [];
  const dbClaims = new Map<string, Buffer>();
  for (let i = 0; i < records.length; i++) {
    const h = keys[i];
    if (!h) continue;
    const hex = h.toString('hex');
    const s = seen.get(hex);
    if (s) {
      outcomes[i] = { status: 'duplicate', log: s.log, index: s.index };
      keys[i] = undefined;
    } else if (busy?.has(hex)) {
      outcomes[i] = { status: 'rejected', code: 'PUSHBACK', error: 'Another node of the vault is storing a copy of this record right now; send it again in a few seconds.' };
      keys[i] = undefined;
    } else if (shared) {
      dbClaims.set(hex, h);
      flights.set(hex, mine);
      claimed.push(hex);
    } else if (flights.has(hex)) {
      // Claimed by a request that started after our wait: it will store the record.
      outcomes[i] = { status: 'duplicate' };
      keys[i] = undefined;
    } else {
      flights.set(hex, mine);
      claimed.push(hex);
    }
  }

  try {
    // 3. Group the records to store by (log, source, attributes) in input order, and append.
    const groups = new Map<string, { log: string; source: string; attrs?: Record<string, string>; idx: number[] }>();
    const requestAttrs = cleanAttrs(opts.attrs);
    const requestAttrsKey = requestAttrs ? JSON.stringify(requestAttrs) : '';
    for (let i = 0; i < records.length; i++) {
      if (outcomes[i] || dupOf[i] !== undefined) continue;
      const r = records[i]!;
      const attrs = r.attrs ? cleanAttrs({ ...(opts.attrs ?? {}), ...r.attrs }) : requestAttrs;
      const gk = `${target[i]}\u0000${r.source}\u0000${r.attrs ? (attrs ? JSON.stringify(attrs) : '') : requestAttrsKey}`;
      let g = groups.get(gk);
      if (!g) groups.set(gk, (g = { log: target[i]!, source: r.source, attrs, idx: [] }));
      g.idx.push(i);
    }
    const appends: IngestSummary['appends'] = [];
    let received = new Date().toISOString();
    // Groups of one log go in order (one after another); different logs in parallel.
    const byLog = new Map<string, Array<{ source: string; attrs?: Record<string, string>; idx: number[] }>>();
    for (const g of groups.values()) {
      let l = byLog.get(g.log);
      if (!l) byLog.set(g.log, (l = []));
      l.push(g);
    }
    const remember: Array<{ key: Buffer; log: string; index: number }> = [];
    await Promise.all(
      [...byLog].map(async ([log, gs]) => {
        for (const g of gs) {
          const r = await vault.append(
            log,
            g.idx.map((i) => records[i]!.bytes),
            { source: g.source, producer: principal.name, attrs: g.attrs },
            { receipts: opts.receipts },
          );
          received = r.received;
          appends.push({ log, first: r.first, count: r.count });
          g.idx.forEach((i, n) => {
            outcomes[i] = r.receipts ? { status: 'stored', log, index: r.first + n, receipt: r.receipts[n]! } : { status: 'stored', log, index: r.first + n };
            const k = keys[i];
            if (k) remember.push({ key: k, log, index: r.first + n });
          });
        }
      }),
    );
    if (shared) {
      for (const r of remember) dbClaims.delete(r.key.toString('hex'));
      // The records are durable: a lost pointer must not fail the request (a later copy may be
      // stored again after the claim goes stale; storage/pg/dedupe.ts).
      await Promise.resolve(shared.remember(remember)).catch((e: unknown) => vault.logger.warn({ err: (e as Error).message }, 'shared vault: could not record dedupe keys of stored records'));
    } else vault.dedupe.remember(remember);
    if (vault.events.has('ingested')) {
      const seen: IngestedRecord[] = [];
      for (let i = 0; i < records.length; i++) {
        const o = outcomes[i];
        if (o?.status !== 'stored') continue;
        const r = records[i]!;
        seen.push({ log: o.log, index: o.index, source: r.source, producer: principal.name, fields: r.fields, bytes: r.bytes });
      }
      if (seen.length > 0) vault.events.emit('ingested', seen);
    }
    for (let i = 0; i < records.length; i++) {
      const d = dupOf[i];
      if (d === undefined) continue;
      const o = outcomes[d]!;
      outcomes[i] = o.status === 'stored' || o.status === 'duplicate' ? { status: 'duplicate', log: o.log, index: o.index } : o;
    }
    let stored = 0;
    let duplicates = 0;
    let rejected = 0;
    for (const o of outcomes) {
      if (o.status === 'stored') stored++;
      else if (o.status === 'duplicate') duplicates++;
      else rejected++;
    }
    return { stored, duplicates, rejected, appends, outcomes, received };
  } finally {
    if (shared && dbClaims.size > 0) await shared.release([...dbClaims.values()]);
    for (const hex of claimed) if (flights.get(hex) === mine) flights.delete(hex);
    release();
  }
}
