export { LifecycleService, type LifecycleOptions, type LogRetention, type PurgeSummary } from './service.js';
export { RetentionStore, readPurges, purgeOnRecord, setInitialRetention, checkDays, DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, type PurgeRecord, type RetentionRow } from './store.js';
export { PurgeExecutor, PurgeInterrupted, type PurgeOptions, type PurgeOutcome } from './purge.js';
export { planPurge, previewPurge, purgeableBundleLimit, type PurgePlan, type PurgePreview } from './planner.js';
export { rotateLogKek, type RotationOutcome } from './rotation.js';
