/**
 * The detector engine: runs the rules (rule.ts) on what happens in the vault and raises
 * alarms through `vault.alarms.raise`.
 *
 *   audit events   vault.events 'audit' — refusals, tamper attempts, failed authentication …
 *                  (events whose type starts with "alarm." are never looked at: no loops)
 *   records        vault.events 'ingested' — every stored batch, on the ingest path
 *   the clock      a check loop (timing.silenceCheckMs, default 30 s) for silence
 *
 * The listeners run synchronously where the event happens, so they only test and count;
 * raising an alarm (a database write and an audit append) is queued and done in order.
 * Record rules are compiled into a dispatch per source and, where a rule names the `action`
 * field (CloudTrail "eventSource:eventName"), a map from action to rules: a record no rule is
 * interested in costs one or two map lookups and no allocation.
 *
 * Rules live in custody.db (store.ts), seeded from the default pack on first start and merged
 * with `<data>/rules.json` at every start. Changes that loosen a rule need a second admin
 * (action "rule.change", auth/actions.ts).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CustodyError } from '../../errors.js';
import type { IngestedRecord, Vault } from '../../vault.js';
import type { AlarmInput } from '../types.js';
import type { ActionContext, ActionHandler } from '../../auth/actions.js';
import { DEFAULT_PACK } from '../rules/default-pack.js';
import { validateRule, validateRuleFile, type MatchRule, type Rule, type SilenceRule, type ThresholdRule } from './rule.js';
import { compareRules, loosenings, type RuleChange } from './compare.js';
import { AuditSubject, RecordSubject, Template, allHold, compileConditions, groupValues, pick, type CompiledCondition, type Subject } from './match.js';
import { DetectorStore, localRuleStore, type RuleStoreApi, type StoredRule } from './store.js';
import { SilenceTracker, type SilenceEvent } from './silence.js';
import { ThresholdCounter } from './threshold.js';

export const RULES_FILE = 'rules.json';
const MAX_RULES_FILE = 4 * 1024 * 1024;
const MAX_QUEUED = 10_000;
const DEFAULT_CHECK_MS = 30_000;

export interface DetectorOptions {
  logger: Logger;
  /** silenceCheckMs: how often silence is checked and learned cadences saved (default 30 s). */
  timing?: Record<string, number>;
}

interface Compiled {
  rule: MatchRule | ThresholdRule;
  conds: CompiledCondition[];
  title: Template;
  counter?: ThresholdCounter;
}

interface Dispatch {
  /** action value → rules that require it. */
  byAction: Map<string, Compiled[]>;
  /** Rules that need a look at every record of the source. */
  other: Compiled[];
}

export type ChangeStatus = 'added' | 'tightened' | 'changed' | 'unchanged' | 'approval-needed';

export interface ChangeOutcome {
  status: ChangeStatus;
  rule: Rule;
  changes: RuleChange[];
  /** For approval-needed: the changes that loosen the rule. */
  loosens?: RuleChange[];
}

/** Who asks for a change, as recorded in the audit log. */
export interface ChangeActor {
  by: string;
  /** Set when a second admin approved (the two-person action). */
  approvedBy?: string;
  requestId?: string;
  /** Request context for the audit event (address, method, path …). */
  context?: Record<string, unknown>;
}

const DEFAULT_AUDIT_DETAILS = ['type', 'kind', 'principal', 'address', 'method', 'path', 'reason', 'userAgent'];
const DEFAULT_RECORD_DETAILS = ['actor', 'action', 'srcIp', 'dstIp', 'resource', 'account', 'region', 'time', 'outcome', 'source', 'producer'];

/** The engine of the running vault, for the "rule.change" action (registered once per vault). */
const engines = new WeakMap<Vault, DetectorEngine>();

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 2 * 3600_000) return `${Math.round(ms / 6000) / 10} min`;
  if (ms < 2 * 86400_000) return `${Math.round(ms / 360_000) / 10} h`;
  return `${Math.round(ms / 8640_000) / 10} d`;
}

/** The values a rule requires of a field (equals or in, not negated), or null: its dispatch keys. */
function requiredValues(rule: MatchRule | ThresholdRule, field: string): string[] | null {
  for (const c of rule.when) {
    if (c.field !== field || c.not) continue;
    if (typeof c.equals === 'string') return [c.equals];
    if (c.in && c.in.every((x) => typeof x === 'string')) return c.in as string[];
  }
  return null;
}

export class DetectorEngine {
  private readonly rules = new Map<string, StoredRule>();
  private auditByType = new Map<string, Compiled[]>();
  private auditOther: Compiled[] = [];
  private recordBySource = new Map<string, Dispatch>();
  private recordAny: Dispatch = { byAction: new Map(), other: [] };
  private recordRules = 0;
  private readonly silence: SilenceTracker;
  private readonly unsubscribe: Array<() => void> = [];
  private timer: NodeJS.Timeout | null = null;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private dropped = 0;
  private closed = false;
  /** Counters kept across recompiles so a rule change does not reset an ongoing burst. */
  private readonly counters = new Map<string, ThresholdCounter>();
  /** Shared vault: polls the rules' revision (storage/pg/rules.ts) and reloads on a change. */
  private rulesTimer: NodeJS.Timeout | null = null;
  private rulesRev: string | undefined;
  /** Rule changes and reloads, one at a time (the store is async). */
  private ruleLock: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly vault: Vault,
    readonly store: DetectorStore,
    private readonly log: Logger,
    private readonly ruleStore: RuleStoreApi = localRuleStore(store),
  ) {
    this.silence = new SilenceTracker(store, (e) => this.onSilence(e), log);
  }

  /**
   * Loads the rules (seeding the default pack, merging <data>/rules.json), starts listening
   * and starts the check loop. A bad rules file refuses with RULE_INVALID naming the file
   * and the field, and nothing is started.
   */
  static async start(vault: Vault, opts: DetectorOptions): Promise<DetectorEngine> {
    const log = opts.logger.child({ component: 'detectors' });
    const fileRules = readRulesFile(join(vault.dataDir, RULES_FILE));
    const store = new DetectorStore(vault.db.sqlite);
    const shared = vault.shared;
    const ruleStore = shared ? new (await import('../../storage/pg/rules.js')).PgRuleStore(shared.pool) : localRuleStore(store);
    const e = new DetectorEngine(vault, store, log, ruleStore);
    await e.load(fileRules);
    if (ruleStore.revision) {
      e.rulesRev = await ruleStore.revision();
      e.rulesTimer = setInterval(() => void e.refreshRules().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'detectors: cannot read the shared alarm rules; running the current ones')), Math.max(10, opts.timing?.['rulesPollMs'] ?? 1000));
      e.rulesTimer.unref();
    }
    e.unsubscribe.push(vault.events.on('audit', (ev, index) => e.onAudit(ev, index)));
    e.unsubscribe.push(vault.events.on('ingested', (records) => e.onIngested(records)));
    const every = opts.timing?.['silenceCheckMs'] ?? DEFAULT_CHECK_MS;
    e.timer = setInterval(() => e.tick(), Math.max(10, every));
    e.timer.unref();
    engines.set(vault, e);
    if (!vault.actions.has('rule.change')) vault.actions.register('rule.change', ruleChangeAction(vault));
    return e;
  }

  private async load(fileRules: Rule[] | null): Promise<void> {
    for (const s of await this.ruleStore.rules()) {
      if ('error' in s) {
        this.log.error({ rule: s.id }, `stored alarm rule ${s.id} is not valid and is not run: ${s.error}`);
        continue;
      }
      this.rules.set(s.rule.id, s);
    }
    const missing = DEFAULT_PACK.filter((r) => !this.rules.has(r.id)).map((r) => validateRule(r));
    if (missing.length > 0) {
      await this.ruleStore.putMany(missing, 'default', 'default pack');
      for (const r of missing) this.rules.set(r.id, (await this.stored(r.id))!);
      // Part of the release, not an admin's act: logged, not audited (rule changes are audited).
      this.log.info({ count: missing.length, ids: missing.map((r) => r.id) }, `detectors: installed ${missing.length} rules of the default pack`);
    }
    if (fileRules) {
      for (const r of fileRules) {
        const cur = this.rules.get(r.id);
        if (!cur) {
          await this.ruleStore.put(r, 'file', RULES_FILE);
          this.rules.set(r.id, (await this.stored(r.id))!);
          await this.audit({ type: 'rule.added', id: r.id, rule: r, by: RULES_FILE });
          continue;
        }
        const changes = compareRules(cur.rule, r);
        if (changes.length === 0) continue;
        const loose = loosenings(changes);
        if (loose.length > 0) {
          this.log.warn({ rule: r.id, loosens: loose.map((c) => c.note) }, `${RULES_FILE} would loosen rule ${r.id}; that needs two admins (POST /v1/rules, then /v1/approvals), so the stored rule is kept`);
          await this.audit({ type: 'rule.file.refused', id: r.id, loosens: loose, file: RULES_FILE });
          continue;
        }
        await this.ruleStore.put(r, cur.origin, RULES_FILE);
        this.rules.set(r.id, (await this.stored(r.id))!);
        await this.audit({ type: 'rule.changed', id: r.id, before: cur.rule, after: r, changes, by: RULES_FILE });
      }
    }
    this.compile();
  }

  private stored(id: string): Promise<StoredRule | undefined> {
    return this.ruleStore.get(id);
  }

  /** Runs `f` after the rule changes and reloads before it. */
  private withRules<T>(f: () => Promise<T>): Promise<T> {
    const run = this.ruleLock.then(f, f);
    this.ruleLock = run.catch(() => undefined);
    return run;
  }

  /** Shared vault: reloads the rule set when another node changed it (revision moved). */
  async refreshRules(force = false): Promise<boolean> {
    const rs = this.ruleStore;
    if (!rs.revision || this.closed) return false;
    return this.withRules(async () => {
      const rev = await rs.revision!();
      if (!force && rev === this.rulesRev) return false;
      const next = new Map<string, StoredRule>();
      for (const s of await rs.rules()) {
        if ('error' in s) {
          this.log.error({ rule: s.id }, `stored alarm rule ${s.id} is not valid and is not run: ${s.error}`);
          continue;
        }
        next.set(s.rule.id, s);
      }
      this.rules.clear();
      for (const [id, r] of next) this.rules.set(id, r);
      this.rulesRev = rev;
      this.compile();
      this.log.info({ rules: next.size }, 'detectors: reloaded the alarm rules changed on another node');
      return true;
    });
  }

  private async audit(event: Record<string, unknown>): Promise<void> {
    await this.vault.audit(event).catch((e: unknown) => this.log.error({ err: e, event: event['type'] }, 'detectors: could not record a rule event in the audit log'));
  }

  // ---- compiling ------------------------------------------------------------------------

  private compile(): void {
    const auditByType = new Map<string, Compiled[]>();
    const auditOther: Compiled[] = [];
    const named = new Map<string, Compiled[]>();
    const any: Compiled[] = [];
    const silence: SilenceRule[] = [];
    const liveCounters = new Set<string>();
    for (const { rule } of [...this.rules.values()].sort((a, b) => a.rule.id.localeCompare(b.rule.id))) {
      if (!rule.enabled) continue;
      if (rule.type === 'silence') {
        silence.push(rule);
        continue;
      }
      const c: Compiled = { rule, conds: compileConditions(rule.when, rule.on), title: new Template(rule.title) };
      if (rule.type === 'threshold') {
        const key = JSON.stringify(rule);
        let counter = this.counters.get(rule.id);
        if (!counter || JSON.stringify(counter.rule) !== key) counter = new ThresholdCounter(rule);
        this.counters.set(rule.id, counter);
        liveCounters.add(rule.id);
        c.counter = counter;
      }
      if (rule.on === 'audit') {
        const types = requiredValues(rule, 'type');
        if (types) {
          for (const t of types) {
            const list = auditByType.get(t) ?? [];
            list.push(c);
            auditByType.set(t, list);
          }
        } else auditOther.push(c);
      } else if (rule.source) {
        for (const s of rule.source) {
          const list = named.get(s) ?? [];
          list.push(c);
          named.set(s, list);
        }
      } else any.push(c);
    }
    for (const id of this.counters.keys()) if (!liveCounters.has(id)) this.counters.delete(id);
    const build = (rules: Compiled[]): Dispatch => {
      const d: Dispatch = { byAction: new Map(), other: [] };
      for (const c of rules) {
        const keys = requiredValues(c.rule, 'action');
        if (!keys) {
          d.other.push(c);
          continue;
        }
        for (const k of keys) {
          const list = d.byAction.get(k) ?? [];
          list.push(c);
          d.byAction.set(k, list);
        }
      }
      return d;
    };
    const bySource = new Map<string, Dispatch>();
    for (const [s, rules] of named) bySource.set(s, build([...rules, ...any]));
    this.auditByType = auditByType;
    this.auditOther = auditOther;
    this.recordBySource = bySource;
    this.recordAny = build(any);
    this.recordRules = any.length + named.size;
    this.silence.setRules(silence);
  }

  // ---- the listeners (hot paths: no awaits, no work for what no rule wants) -------------

  private onAudit(event: Record<string, unknown>, index: number): void {
    if (this.closed) return;
    const type = event['type'];
    if (typeof type !== 'string' || type.startsWith('alarm.')) return;
    const byType = this.auditByType.get(type);
    if (byType === undefined && this.auditOther.length === 0) return;
    const s = new AuditSubject(event, index);
    const now = Date.now();
    if (byType) for (const c of byType) this.evaluate(c, s, now, 'audit', index);
    for (const c of this.auditOther) this.evaluate(c, s, now, 'audit', index);
  }

  private onIngested(records: IngestedRecord[]): void {
    if (this.closed) return;
    const watch = this.silence.active;
    if (this.recordRules === 0 && !watch) return;
    const now = Date.now();
    let lastSource: string | undefined;
    let lastProducer: string | undefined;
    let d = this.recordAny;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.source !== lastSource || r.producer !== lastProducer) {
        lastSource = r.source;
        lastProducer = r.producer;
        d = this.recordBySource.get(r.source) ?? this.recordAny;
        if (watch) this.silence.see(r.source, r.producer, now);
      }
      if (d.byAction.size > 0) {
        const action = r.fields.action;
        if (action !== undefined) {
          const rules = d.byAction.get(action);
          if (rules !== undefined) this.evaluateRecord(rules, r, now);
        }
      }
      if (d.other.length > 0) this.evaluateRecord(d.other, r, now);
    }
  }

  private evaluateRecord(rules: Compiled[], r: IngestedRecord, now: number): void {
    const s = new RecordSubject(r);
    for (const c of rules) this.evaluate(c, s, now, r.log, r.index);
  }

  private evaluate(c: Compiled, s: Subject, now: number, log: string, entry: number): void {
    try {
      if (!allHold(c.conds, s)) return;
      if (c.rule.type === 'match') this.fireMatch(c, c.rule, s, log, entry);
      else this.count(c, c.rule, s, now, log, entry);
    } catch (e) {
      this.log.error({ err: e, rule: c.rule.id }, 'detectors: a rule failed on an event');
    }
  }

  private details(rule: MatchRule | ThresholdRule, s: Subject): Record<string, unknown> {
    if (rule.details) return pick(s, rule.details);
    if (s instanceof AuditSubject) return pick(s, DEFAULT_AUDIT_DETAILS);
    return pick(s, DEFAULT_RECORD_DETAILS);
  }

  private fireMatch(c: Compiled, rule: MatchRule, s: Subject, log: string, entry: number): void {
    const input: AlarmInput = {
      kind: rule.kind,
      rule: rule.id,
      severity: rule.severity,
      title: c.title.render(s),
      details: { ...this.details(rule, s), evidence: { log, entry } },
      log,
      entry,
    };
    if (rule.groupBy) input.groupKey = `${rule.id}|${groupValues(s, rule.groupBy).join('|')}`;
    this.enqueue(input);
  }

  private count(c: Compiled, rule: ThresholdRule, s: Subject, now: number, log: string, entry: number): void {
    let weight = 1;
    if (rule.weightField) {
      const w = s.get(rule.weightField.split('.'), rule.weightField);
      if (typeof w === 'number' && Number.isFinite(w) && w > 0) weight = Math.min(w, 1_000_000);
    }
    const values = groupValues(s, rule.groupBy);
    const hit = c.counter!.add(values.join('|'), weight, now);
    if (!hit) return;
    const vars = { count: hit.count, window: formatDuration(rule.windowMs), windowMs: rule.windowMs };
    const group = Object.fromEntries(rule.groupBy.map((f, i) => [f, values[i]]));
    this.enqueue({
      kind: rule.kind,
      rule: rule.id,
      severity: rule.severity,
      title: c.title.render(s, vars),
      details: { count: hit.count, threshold: rule.count, windowMs: rule.windowMs, group, firstAt: new Date(hit.firstAt).toISOString(), lastAt: new Date(hit.lastAt).toISOString(), last: this.details(rule, s), evidence: { log, entry } },
      groupKey: `${rule.id}|${values.join('|')}`,
      log,
      entry,
    });
  }

  private onSilence(e: SilenceEvent): void {
    const r = e.rule;
    const who = r.per === 'source' ? `source ${e.source}` : r.per === 'producer' ? `producer ${e.producer}` : `${e.source} from ${e.producer}`;
    const usual = e.learned.ewmaMs !== null ? formatDuration(e.learned.ewmaMs) : null;
    const vars = { key: e.key, who, source: e.source, producer: e.producer, silentFor: formatDuration(e.silentForMs), threshold: formatDuration(e.thresholdMs), usual: usual ?? 'not yet learned' };
    const details = {
      key: e.key,
      per: r.per,
      source: e.source,
      producer: e.producer,
      lastSeen: new Date(e.lastSeen).toISOString(),
      silentForMs: e.silentForMs,
      thresholdMs: e.thresholdMs,
      thresholdFrom: r.thresholdMs !== undefined ? 'rule' : 'learned',
      usualGapMs: e.learned.ewmaMs === null ? null : Math.round(e.learned.ewmaMs),
      longestRecentGapMs: Math.round(e.learned.maxGapMs),
      gapsSeen: e.learned.samples,
    };
    if (e.type === 'silence') {
      const title = r.title ? new Template(r.title).render(null, vars) : `Silence: ${who} has sent nothing for ${vars.silentFor} (threshold ${vars.threshold}${usual ? `, usually every ${usual}` : ''})`;
      this.enqueue({ kind: r.kind, rule: r.id, severity: r.severity, title, details });
    } else {
      this.enqueue({ kind: 'resumed', rule: r.id, severity: 'info', title: `Resumed: ${who} is sending again after ${vars.silentFor} of silence`, details });
    }
  }

  private tick(): void {
    if (this.closed) return;
    const now = Date.now();
    try {
      this.silence.check(now);
      for (const c of this.counters.values()) c.sweep(now);
    } catch (e) {
      this.log.error({ err: e }, 'detectors: the check loop failed');
    }
    if (this.dropped > 0) {
      this.log.error({ dropped: this.dropped }, `detectors: ${this.dropped} alarms were dropped because more than ${MAX_QUEUED} were waiting to be recorded`);
      this.dropped = 0;
    }
  }

  private enqueue(a: AlarmInput): void {
    if (this.closed) return;
    if (this.queued >= MAX_QUEUED) {
      this.dropped++;
      return;
    }
    this.queued++;
    this.queue = this.queue
      .then(() => this.vault.alarms.raise(a))
      .then(
        () => {
          this.queued--;
        },
        (e: unknown) => {
          this.queued--;
          this.log.error({ err: e, rule: a.rule }, 'detectors: could not raise an alarm');
        },
      );
  }

  /** Resolves once every alarm raised so far is recorded (tests, shutdown). */
  async idle(): Promise<void> {
    let q: Promise<void>;
    do {
      q = this.queue;
      await q;
    } while (q !== this.queue);
  }

  /** Runs the silence check now (tests; the loop does it every silenceCheckMs). */
  checkNow(): void {
    this.tick();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.rulesTimer) clearInterval(this.rulesTimer);
    this.rulesTimer = null;
    for (const u of this.unsubscribe.splice(0)) u();
    await this.idle();
    this.closed = true;
    this.silence.flush();
    if (engines.get(this.vault) === this) engines.delete(this.vault);
  }

  // ---- rules: reading and changing ------------------------------------------------------

  list(): StoredRule[] {
    return [...this.rules.values()].sort((a, b) => a.rule.id.localeCompare(b.rule.id));
  }

  get(id: string): StoredRule {
    const r = this.rules.get(id);
    if (!r) throw new CustodyError('RULE_NOT_FOUND', `There is no alarm rule "${id.slice(0, 100)}". GET /v1/rules lists them.`);
    return r;
  }

  /** For a silence rule: the keys it watches with their learned cadence and threshold. */
  watched(id: string): ReturnType<SilenceTracker['watched']> {
    return this.silence.watched(id);
  }

  /** What a change would do: its changes and whether it loosens (needs a second admin). */
  assess(input: unknown): { rule: Rule; current: StoredRule | undefined; changes: RuleChange[]; loosens: RuleChange[] } {
    const rule = validateRule(input);
    const current = this.rules.get(rule.id);
    const changes = current ? compareRules(current.rule, rule) : [];
    return { rule, current, changes, loosens: loosenings(changes) };
  }

  /**
   * Adds a rule or changes one. A change that loosens is applied only with `approvedBy` (a
   * different admin approved it); otherwise the answer is "approval-needed" and nothing changes.
   */
  async change(input: unknown, actor: ChangeActor): Promise<ChangeOutcome> {
    // Shared vault: compare against the newest rule set (another node may have changed it).
    if (this.ruleStore.revision) await this.refreshRules();
    return this.withRules(() => this.changeNow(input, actor));
  }

  private async changeNow(input: unknown, actor: ChangeActor): Promise<ChangeOutcome> {
    const { rule, current, changes, loosens } = this.assess(input);
    const ctx = { by: actor.by, ...(actor.approvedBy ? { approvedBy: actor.approvedBy, request: actor.requestId } : {}), ...(actor.context ?? {}) };
    if (!current) {
      await this.ruleStore.put(rule, 'api', actor.by);
      this.rules.set(rule.id, (await this.stored(rule.id))!);
      this.compile();
      await this.audit({ type: 'rule.added', id: rule.id, rule, ...ctx });
      return { status: 'added', rule, changes: [] };
    }
    if (changes.length === 0) return { status: 'unchanged', rule: current.rule, changes };
    if (loosens.length > 0 && (!actor.approvedBy || actor.approvedBy === actor.by)) {
      await this.audit({ type: 'rule.change.needs-approval', id: rule.id, loosens, ...ctx });
      return { status: 'approval-needed', rule: current.rule, changes, loosens };
    }
    await this.ruleStore.put(rule, current.origin, actor.by);
    this.rules.set(rule.id, (await this.stored(rule.id))!);
    this.compile();
    await this.audit({ type: 'rule.changed', id: rule.id, before: current.rule, after: rule, changes, ...ctx });
    return { status: loosens.length > 0 ? 'changed' : 'tightened', rule, changes };
  }
}

/** Reads and validates <data>/rules.json; null when there is none. */
export function readRulesFile(path: string): Rule[] | null {
  if (!existsSync(path)) return null;
  const size = statSync(path).size;
  if (size > MAX_RULES_FILE) throw new CustodyError('RULE_INVALID', `${path}: is ${size} bytes; a rules file is at most ${MAX_RULES_FILE} bytes.`, { field: '(file)', file: path });
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CustodyError('RULE_INVALID', `${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}).`, { field: '(file)', file: path });
  }
  return validateRuleFile(text, path);
}

interface RuleChangeParams {
  rule: Rule;
}

/** The two-person action "rule.change": params {rule}. Loosening needs approval; tightening does not. */
export function ruleChangeAction(vault: Vault): ActionHandler<RuleChangeParams> {
  const engine = (): DetectorEngine => {
    const e = engines.get(vault);
    if (!e) throw new CustodyError('NOT_READY', 'The detectors are not running; try again once the vault has started.');
    return e;
  };
  return {
    describe(p) {
      const e = engines.get(vault);
      const a = e?.assess(p.rule);
      if (!a?.current) return `Add alarm rule ${p.rule.id} (${p.rule.type}, ${p.rule.kind}, ${p.rule.severity})`;
      const notes = a.changes.map((c) => c.note);
      return `Change alarm rule ${p.rule.id}: ${notes.length > 0 ? notes.join('; ') : 'no change'}`;
    },
    validate(params) {
      const o = params as { rule?: unknown } | null;
      if (typeof o !== 'object' || o === null || Array.isArray(o) || o.rule === undefined) {
        throw new CustodyError('RULE_INVALID', 'params must be {"rule": {…}}: the whole rule as it should be after the change.', { field: 'params.rule' });
      }
      return { rule: validateRule(o.rule, undefined, 'rule') };
    },
    needsApproval(p) {
      return engine().assess(p.rule).loosens.length > 0;
    },
    async execute(p, ctx: ActionContext) {
      const out = await engine().change(p.rule, { by: ctx.requestedBy, approvedBy: ctx.approvedBy, requestId: ctx.requestId });
      if (out.status === 'approval-needed') throw new CustodyError('APPROVAL_REQUIRED', `Loosening rule ${p.rule.id} needs the approval of an admin other than ${ctx.requestedBy}.`);
      return { status: out.status, rule: out.rule, changes: out.changes };
    },
  };
}
