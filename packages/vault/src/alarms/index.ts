export * from './types.js';
export { AlarmStore } from './store.js';
export { AlarmCenter, type AlarmCenterOptions, type AlarmListener } from './center.js';
