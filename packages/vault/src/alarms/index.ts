export * from './types.js';
export { AlarmStore } from './store.js';
export { AlarmCenter, type AlarmCenterOptions, type AlarmListener } from './center.js';
export { NotifierHub, NOTIFIERS_FILE, type NotifierHubOptions } from './notify/index.js';
export { DetectorEngine, type ChangeOutcome, type Rule, type StoredRule } from './detectors/index.js';
