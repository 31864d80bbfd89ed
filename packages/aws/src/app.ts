/**
 * The whole blueprint as one CDK app: a security stack per region, the guardrails stack in the
 * management account (organizations only) and a workload stack per listed account and region.
 * Stacks deploy with the caller's own credentials (CliCredentialsStackSynthesizer): the
 * deployer role's session runs CloudFormation, so its permissions — bounded by the guardrails —
 * are exactly what a deployment can do; no bootstrap admin role is involved.
 */
import { CliCredentialsStackSynthesizer, type App, type Stack } from 'aws-cdk-lib';
import type { BlueprintConfig } from './config.js';
import { GuardrailsStack } from './guardrails-stack.js';
import { addNagPacks } from './nag.js';
import { SecurityAccountStack } from './security-account-stack.js';
import { WorkloadAccountStack } from './workload-account-stack.js';

export interface BlueprintStacks {
  security: SecurityAccountStack[];
  guardrails?: GuardrailsStack;
  workloads: WorkloadAccountStack[];
}

export function addBlueprint(app: App, c: BlueprintConfig, options: { nag?: boolean } = {}): BlueprintStacks {
  const synthesizer = () => new CliCredentialsStackSynthesizer();
  const prefix = c.namePrefix ? { namePrefix: c.namePrefix } : {};
  const security = c.regions.map((region) => {
    const service = c.custodyService && c.custodyService.region === region ? c.custodyService : undefined;
    return new SecurityAccountStack(app, `CustodySecurity-${region}`, {
      env: { account: c.securityAccount, region },
      synthesizer: synthesizer(),
      producers: c.producers,
      adminAccount: c.adminAccount,
      deploymentAccount: c.deploymentAccount,
      auditorAccounts: c.auditorAccounts,
      evidenceBucket: c.evidenceBucket,
      ...(service ? { custodyService: service } : {}),
      ...prefix,
    });
  });
  let guardrails: GuardrailsStack | undefined;
  if (c.managementAccount) {
    if (!('organizationId' in c.producers)) throw new Error('config.managementAccount is set but config.organizationId is not: SCPs exist only in an organization.');
    guardrails = new GuardrailsStack(app, 'CustodyGuardrails', {
      env: { account: c.managementAccount, region: c.regions[0] as string },
      synthesizer: synthesizer(),
      securityAccount: c.securityAccount,
      workloadTargets: c.workloadScpTargets,
      ...prefix,
    });
  }
  const workloads = c.workloads.map((w) => {
    if (!c.regions.includes(w.region)) throw new Error(`Workload ${w.account} in ${w.region}: the security account has no lake there (config.regions: ${c.regions.join(', ')}).`);
    return new WorkloadAccountStack(app, `CustodyWorkload-${w.account}-${w.region}`, {
      env: { account: w.account, region: w.region },
      synthesizer: synthesizer(),
      securityAccount: c.securityAccount,
      lakeKeyArn: w.lakeKeyArn,
      ...(w.trail ? { trail: w.trail } : {}),
      ...(w.vpcIds ? { vpcIds: w.vpcIds } : {}),
      ...(w.guardDutyDetectorId ? { guardDutyDetectorId: w.guardDutyDetectorId } : {}),
      ...(w.config !== undefined ? { config: w.config } : {}),
      ...(w.macie !== undefined ? { macie: w.macie } : {}),
      ...(w.logGroupNames ? { logGroupNames: w.logGroupNames } : {}),
      ...prefix,
    });
  });
  if (options.nag ?? true) addNagPacks(app);
  return { security, ...(guardrails ? { guardrails } : {}), workloads };
}

export function allStacks(s: BlueprintStacks): Stack[] {
  return [...s.security, ...(s.guardrails ? [s.guardrails] : []), ...s.workloads];
}
