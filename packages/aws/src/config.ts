/**
 * The blueprint's configuration file (see config/example.json and docs/AWS.md): which accounts,
 * regions and options the CDK app deploys. Read once by bin/app.ts; every mistake is reported
 * with the field it concerns.
 */
import type { CustodyServiceOptions } from './security-account-stack.js';
import type { TrailMode } from './workload-account-stack.js';
import type { Producers } from './lake-policies.js';

export interface WorkloadConfig {
  account: string;
  region: string;
  /** The security stack's LakeKeyArn output for this region. */
  lakeKeyArn: string;
  trail?: TrailMode;
  vpcIds?: string[];
  guardDutyDetectorId?: string;
  config?: boolean;
  macie?: boolean;
  logGroupNames?: string[];
}

export interface BlueprintConfig {
  securityAccount: string;
  regions: string[];
  producers: Producers;
  adminAccount: string;
  deploymentAccount: string;
  auditorAccounts: string[];
  /** The organization's management account (for the guardrails stack); omit outside an organization. */
  managementAccount?: string;
  /** Workload accounts or OUs the workload SCP is attached to. */
  workloadScpTargets: string[];
  evidenceBucket: boolean;
  namePrefix?: string;
  custodyService?: CustodyServiceOptions & { region: string };
  workloads: WorkloadConfig[];
}

class ConfigError extends Error {}

function str(o: Record<string, unknown>, k: string, where: string, optional = false): string | undefined {
  const v = o[k];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${where}.${k} must be a non-empty string.`);
  return v;
}

function strList(o: Record<string, unknown>, k: string, where: string): string[] {
  const v = o[k] ?? [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ConfigError(`${where}.${k} must be a list of strings.`);
  return v as string[];
}

function bool(o: Record<string, unknown>, k: string, where: string, dflt: boolean): boolean {
  const v = o[k] ?? dflt;
  if (typeof v !== 'boolean') throw new ConfigError(`${where}.${k} must be true or false.`);
  return v;
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${where} must be a JSON object.`);
  return v as Record<string, unknown>;
}

/** Check a parsed configuration file and return it typed; throws with the offending field named. */
export function parseBlueprintConfig(input: unknown): BlueprintConfig {
  const c = obj(input, 'config');
  const known = new Set(['securityAccount', 'regions', 'organizationId', 'workloadAccounts', 'adminAccount', 'deploymentAccount', 'auditorAccounts', 'managementAccount', 'workloadScpTargets', 'evidenceBucket', 'namePrefix', 'custodyService', 'workloads', '$comment']);
  for (const k of Object.keys(c)) if (!known.has(k)) throw new ConfigError(`config.${k} is not a setting of the blueprint (known: ${[...known].filter((x) => x !== '$comment').join(', ')}).`);
  const regions = strList(c, 'regions', 'config');
  if (regions.length === 0) throw new ConfigError('config.regions must name at least one region.');
  const org = str(c, 'organizationId', 'config', true);
  const accounts = strList(c, 'workloadAccounts', 'config');
  if (org && accounts.length) throw new ConfigError('Give config.organizationId or config.workloadAccounts, not both.');
  if (!org && !accounts.length) throw new ConfigError('Give config.organizationId (every account of the organization may produce) or config.workloadAccounts.');
  const workloads = (Array.isArray(c.workloads) ? c.workloads : c.workloads === undefined ? [] : null);
  if (workloads === null) throw new ConfigError('config.workloads must be a list.');
  const service = c.custodyService === undefined ? undefined : obj(c.custodyService, 'config.custodyService');
  const managementAccount = str(c, 'managementAccount', 'config', true);
  const namePrefix = str(c, 'namePrefix', 'config', true);
  return {
    securityAccount: str(c, 'securityAccount', 'config') as string,
    regions,
    producers: org ? { organizationId: org } : { accounts },
    adminAccount: str(c, 'adminAccount', 'config') as string,
    deploymentAccount: str(c, 'deploymentAccount', 'config') as string,
    auditorAccounts: strList(c, 'auditorAccounts', 'config'),
    ...(managementAccount ? { managementAccount } : {}),
    workloadScpTargets: strList(c, 'workloadScpTargets', 'config'),
    evidenceBucket: bool(c, 'evidenceBucket', 'config', false),
    ...(namePrefix ? { namePrefix } : {}),
    ...(service
      ? {
          custodyService: {
            region: str(service, 'region', 'config.custodyService') as string,
            vpcId: str(service, 'vpcId', 'config.custodyService') as string,
            availabilityZones: strList(service, 'availabilityZones', 'config.custodyService'),
            privateSubnetIds: strList(service, 'privateSubnetIds', 'config.custodyService'),
            privateSubnetRouteTableIds: strList(service, 'privateSubnetRouteTableIds', 'config.custodyService'),
            image: str(service, 'image', 'config.custodyService') as string,
            allowedCidr: str(service, 'allowedCidr', 'config.custodyService') as string,
            ...(service.storage === undefined ? {} : { storage: service.storage === 's3' || service.storage === 'data-dir' ? service.storage : (() => { throw new ConfigError('config.custodyService.storage must be "s3" or "data-dir".'); })() }),
          },
        }
      : {}),
    workloads: workloads.map((x, i) => {
      const where = `config.workloads[${i}]`;
      const w = obj(x, where);
      const trail = w.trail ?? 'account';
      if (trail !== 'organization' && trail !== 'account' && trail !== 'none') throw new ConfigError(`${where}.trail must be "organization", "account" or "none".`);
      const detector = str(w, 'guardDutyDetectorId', where, true);
      return {
        account: str(w, 'account', where) as string,
        region: str(w, 'region', where) as string,
        lakeKeyArn: str(w, 'lakeKeyArn', where) as string,
        trail,
        vpcIds: strList(w, 'vpcIds', where),
        ...(detector ? { guardDutyDetectorId: detector } : {}),
        config: bool(w, 'config', where, true),
        macie: bool(w, 'macie', where, false),
        logGroupNames: strList(w, 'logGroupNames', where),
      };
    }),
  };
}

export { ConfigError };
