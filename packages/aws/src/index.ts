/** The AWS blueprint of the Custody security account (issue 8). */
export const BLUEPRINT_VERSION = '0.1.0';

export { SecurityAccountStack, type SecurityAccountStackProps, type CustodyServiceOptions } from './security-account-stack.js';
export { WorkloadAccountStack, FLOW_LOG_FORMAT, type WorkloadAccountStackProps, type TrailMode } from './workload-account-stack.js';
export { GuardrailsStack, type GuardrailsStackProps } from './guardrails-stack.js';
export { addBlueprint, allStacks, type BlueprintStacks } from './app.js';
export { parseBlueprintConfig, ConfigError, type BlueprintConfig, type WorkloadConfig } from './config.js';
export { Lake, lockedKey } from './lake.js';
export { Access } from './access.js';
export { Alarms } from './alarms.js';
export { CustodyService, serveCommand, type CustodyServiceProps, type CustodyStorage } from './custody-service.js';
export { checkMfaDelete, MfaDeleteInputError, type MfaDeleteReport } from './mfa-delete.js';
export * from './guardrails.js';
export * from './lake-policies.js';
export * from './log-stopping-calls.js';
export * from './names.js';
export { addNagPacks, acknowledge } from './nag.js';
