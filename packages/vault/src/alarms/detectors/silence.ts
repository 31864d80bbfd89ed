/**
 * Silence: who usually talks, how often, and who went quiet.
 *
 * Every stored batch marks its source and producer as seen (on the ingest path: a map lookup
 * and a few numbers, nothing parsed). Per silence rule and watched key (a source, a producer,
 * or the pair) the tracker learns the usual gap between arrivals — an average (EWMA, α 0.2)
 * and the longest recent gap (which fades by 2% per arrival) — and a check loop raises
 * "silence" when a key that has been seen is quiet for longer than its threshold, and
 * "resumed" when it is back. State is saved to custody.db (detector_cadence) at each check.
 */
import type { Logger } from 'pino';
import type { SilenceRule } from './rule.js';
import type { CadenceRow, DetectorStore } from './store.js';

/** Watched keys per rule; beyond this, new keys are not tracked (and the operator is told once). */
export const MAX_KEYS_PER_RULE = 10_000;
const EWMA_ALPHA = 0.2;
const MAX_GAP_DECAY = 0.98;
const DEFAULT_MIN_GAP_MS = 1000;

interface Cadence extends CadenceRow {
  dirty: boolean;
}

export interface SilenceEvent {
  type: 'silence' | 'resumed';
  rule: SilenceRule;
  key: string;
  source: string;
  producer: string;
  lastSeen: number;
  /** Quiet for this long (when raised, or until it resumed). */
  silentForMs: number;
  thresholdMs: number;
  learned: { ewmaMs: number | null; maxGapMs: number; samples: number };
}

export class SilenceTracker {
  private rules: SilenceRule[] = [];
  private readonly state = new Map<string, Map<string, Cadence>>();
  /** source \0 producer → the rules that watch it (most specific win). Cleared on rule changes. */
  private readonly applicable = new Map<string, SilenceRule[]>();
  /** Time the tracker started: quiet while the vault was down is not the sender's silence. */
  private readonly startedAt = Date.now();
  private fullWarned = new Set<string>();

  constructor(
    private readonly store: DetectorStore,
    private readonly emit: (e: SilenceEvent) => void,
    private readonly log: Logger,
  ) {
    for (const r of store.cadences()) {
      let m = this.state.get(r.rule);
      if (!m) this.state.set(r.rule, (m = new Map()));
      m.set(r.key, { ...r, dirty: false });
    }
  }

  /** The enabled silence rules. */
  setRules(rules: SilenceRule[]): void {
    this.rules = rules;
    this.applicable.clear();
    for (const r of rules) if (!this.state.has(r.id)) this.state.set(r.id, new Map());
  }

  get active(): boolean {
    return this.rules.length > 0;
  }

  /** Rules that name this source or producer replace the rules that name neither. */
  private rulesFor(source: string, producer: string): SilenceRule[] {
    const k = `${source}\u0000${producer}`;
    let list = this.applicable.get(k);
    if (list) return list;
    const fits = this.rules.filter((r) => (!r.source || r.source.includes(source)) && (!r.producer || r.producer.includes(producer)));
    const specific = fits.filter((r) => r.source || r.producer);
    list = specific.length > 0 ? specific : fits;
    if (this.applicable.size >= 50_000) this.applicable.clear();
    this.applicable.set(k, list);
    return list;
  }

  private keyOf(r: SilenceRule, source: string, producer: string): string {
    return r.per === 'source' ? source : r.per === 'producer' ? producer : `${source}|${producer}`;
  }

  /** Records that `producer` stored records of `source` now. Called once per source in a batch. */
  see(source: string, producer: string, now: number): void {
    for (const r of this.rulesFor(source, producer)) {
      const m = this.state.get(r.id)!;
      const key = this.keyOf(r, source, producer);
      const c = m.get(key);
      if (!c) {
        if (m.size >= MAX_KEYS_PER_RULE) {
          if (!this.fullWarned.has(r.id)) {
            this.fullWarned.add(r.id);
            this.log.warn({ rule: r.id, keys: m.size }, `silence rule ${r.id} watches ${MAX_KEYS_PER_RULE} keys already; new sources or producers are not watched by it`);
          }
          continue;
        }
        m.set(key, { rule: r.id, key, source, producer, lastSeen: now, ewmaMs: null, maxGapMs: 0, samples: 0, silentSince: null, dirty: true });
        continue;
      }
      const gap = now - c.lastSeen;
      if (c.silentSince !== null) {
        this.emit({ type: 'resumed', rule: r, key, source, producer, lastSeen: c.lastSeen, silentForMs: gap, thresholdMs: this.threshold(r, c), learned: { ewmaMs: c.ewmaMs, maxGapMs: c.maxGapMs, samples: c.samples } });
        c.silentSince = null;
      } else if (gap >= (r.learn?.minGapMs ?? DEFAULT_MIN_GAP_MS)) {
        // A gap after a silence is not the usual cadence, so only gaps between normal arrivals teach it.
        c.ewmaMs = c.ewmaMs === null ? gap : c.ewmaMs + EWMA_ALPHA * (gap - c.ewmaMs);
        c.maxGapMs = Math.max(gap, c.maxGapMs * MAX_GAP_DECAY);
        c.samples++;
      }
      c.lastSeen = now;
      c.source = source;
      c.producer = producer;
      c.dirty = true;
    }
  }

  /** The silence threshold of a key under a rule, ms. */
  threshold(r: SilenceRule, c: CadenceRow): number {
    if (r.thresholdMs !== undefined) return r.thresholdMs;
    const l = r.learn!;
    if (c.samples < l.minSamples || c.ewmaMs === null) return l.ceilingMs;
    return Math.min(l.ceilingMs, Math.max(l.floorMs, l.factor * Math.max(c.ewmaMs, c.maxGapMs)));
  }

  /** Raises "silence" for every watched key quiet for longer than its threshold; saves state. */
  check(now: number): void {
    for (const r of this.rules) {
      const m = this.state.get(r.id);
      if (!m) continue;
      for (const c of m.values()) {
        if (c.silentSince !== null) continue;
        if (!this.rulesFor(c.source, c.producer).includes(r)) continue;
        const since = Math.max(c.lastSeen, this.startedAt);
        const t = this.threshold(r, c);
        if (now - since <= t) continue;
        c.silentSince = now;
        c.dirty = true;
        this.emit({ type: 'silence', rule: r, key: c.key, source: c.source, producer: c.producer, lastSeen: c.lastSeen, silentForMs: now - c.lastSeen, thresholdMs: t, learned: { ewmaMs: c.ewmaMs, maxGapMs: c.maxGapMs, samples: c.samples } });
      }
    }
    this.flush();
  }

  flush(): void {
    const rows: CadenceRow[] = [];
    for (const m of this.state.values()) {
      for (const c of m.values()) {
        if (!c.dirty) continue;
        c.dirty = false;
        rows.push({ rule: c.rule, key: c.key, source: c.source, producer: c.producer, lastSeen: c.lastSeen, ewmaMs: c.ewmaMs, maxGapMs: c.maxGapMs, samples: c.samples, silentSince: c.silentSince });
      }
    }
    try {
      this.store.saveCadences(rows);
    } catch (e) {
      for (const r of rows) {
        const c = this.state.get(r.rule)?.get(r.key);
        if (c) c.dirty = true;
      }
      this.log.error({ err: e }, 'detectors: could not save the learned cadences; will retry');
    }
  }

  /** What the tracker knows, for GET /v1/rules/:id of a silence rule. */
  watched(ruleId: string): Array<CadenceRow & { thresholdMs: number }> {
    const r = this.rules.find((x) => x.id === ruleId);
    const m = this.state.get(ruleId);
    if (!m) return [];
    return [...m.values()].slice(0, 1000).map((c) => ({ rule: c.rule, key: c.key, source: c.source, producer: c.producer, lastSeen: c.lastSeen, ewmaMs: c.ewmaMs, maxGapMs: c.maxGapMs, samples: c.samples, silentSince: c.silentSince, thresholdMs: r ? this.threshold(r, c) : -1 }));
  }
}
