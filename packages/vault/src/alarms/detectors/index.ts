/** Detectors: alarm rules as data, run on audit events and ingested records (docs/ALARMS.md). */
export { DetectorEngine, readRulesFile, ruleChangeAction, formatDuration, RULES_FILE, type ChangeOutcome, type ChangeStatus, type ChangeActor, type DetectorOptions } from './engine.js';
export { validateRule, validateRuleFile, type Rule, type MatchRule, type ThresholdRule, type SilenceRule, type Condition } from './rule.js';
export { compareRules, loosenings, type RuleChange } from './compare.js';
export type { StoredRule, RuleOrigin } from './store.js';
export { DEFAULT_PACK, LOG_OFF_ACTIONS } from '../rules/default-pack.js';
