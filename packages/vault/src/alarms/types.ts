/**
 * What an alarm is, for everything that raises one (detectors, the self-audit, trust reports,
 * witnesses) and everything that delivers one (notifiers, GET /v1/alarms, the web UI).
 */

/** The kinds of alarm (docs/ALARMS.md). */
export const ALARM_KINDS = [
  'tamper', // a refused write/delete/edit, a writer reading, an auditor writing, _bulk deletes
  'auth', // bursts of failed authentication per address or principal
  'silence', // a source or producer went quiet for longer than its threshold
  'resumed', // … and came back (a notice, severity info)
  'log-generation-off', // ingested CloudTrail shows log generation being stopped or deleted
  'integrity', // stored data no longer matches its proofs; a checkpoint not consistent with the last
  'trust', // an auditor's client saw a checkpoint inconsistent with what it verified before
  'witness', // a witness refused or disagreed
  'content', // a rule matched ingested records (rules as data)
  'admin', // a dangerous admin action was requested, approved or refused
] as const;
export type AlarmKind = (typeof ALARM_KINDS)[number];

export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface AlarmInput {
  kind: AlarmKind;
  /** The rule or built-in check that raised it, e.g. "cloudtrail.stop-logging", "self-audit". */
  rule: string;
  severity: Severity;
  /** One plain line a person reads first: who did what, where. */
  title: string;
  /** Structured facts: actor, address, action, resource, log, entry, counts … (JSON). */
  details: Record<string, unknown>;
  /**
   * Repeats with the same key inside the grouping window add to the count of one alarm
   * instead of adding alarms (e.g. "auth-burst|10.0.0.5"). Absent: never grouped.
   */
  groupKey?: string;
  /** The entry that caused it, when one did (a CloudTrail record, an audit event). */
  log?: string;
  entry?: number;
}

export interface Alarm extends AlarmInput {
  id: number;
  /** When it was first raised. */
  time: string;
  /** When it was last repeated (= time when count is 1). */
  lastTime: string;
  count: number;
}

/** What raises alarms talks to this. */
export interface AlarmSink {
  raise(a: AlarmInput): Promise<Alarm>;
}

/** Filters for listing alarms (GET /v1/alarms, custody alarms). */
export interface AlarmQuery {
  kinds?: AlarmKind[];
  /** RFC 3339; alarms last seen at or after. */
  since?: string;
  /** RFC 3339; alarms first raised before. */
  until?: string;
  /** Page size, 1–500 (default 100). */
  limit?: number;
  /** Alarms with an id below this (the `next` cursor of the previous page). */
  before?: number;
}
