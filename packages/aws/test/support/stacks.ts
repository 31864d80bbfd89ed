/**
 * The blueprint as the tests build it: placeholder accounts, one region, every option on, in
 * organization mode or account-list mode. No AWS account or network is needed.
 */
import { App } from 'aws-cdk-lib';
import { GuardrailsStack } from '../../src/guardrails-stack.js';
import { addNagPacks } from '../../src/nag.js';
import { SecurityAccountStack } from '../../src/security-account-stack.js';
import { WorkloadAccountStack } from '../../src/workload-account-stack.js';
import type { CfnTemplate } from './cfn.js';

export const SEC = '111111111111';
export const WORKLOAD = '222222222222';
export const ADMIN = '333333333333';
export const DEPLOY = '444444444444';
export const MGMT = '555555555555';
export const OTHER = '999999999999';
export const ORG = 'o-exampleorg1';
export const REGION = 'us-east-1';
/** What the resolver calls the lake key (key-<logical id>) is not known before synthesis; the workload stack gets this ARN. */
export const TEST_EXTERNAL_ID = 'test-external-id-0123456789abcdef';

export type Mode = 'organization' | 'accounts';

export interface TestBlueprint {
  app: App;
  security: SecurityAccountStack;
  workload: WorkloadAccountStack;
  organizationWorkload: WorkloadAccountStack;
  guardrails?: GuardrailsStack;
}

export function buildBlueprint(o: { mode?: Mode; nag?: boolean; lakeKeyArn?: string; evidenceBucket?: boolean; outdir?: string } = {}): TestBlueprint {
  const mode = o.mode ?? 'organization';
  const app = new App({ ...(o.outdir ? { outdir: o.outdir } : {}) });
  const security = new SecurityAccountStack(app, 'Security', {
    env: { account: SEC, region: REGION },
    producers: mode === 'organization' ? { organizationId: ORG } : { accounts: [WORKLOAD, MGMT] },
    adminAccount: ADMIN,
    deploymentAccount: DEPLOY,
    auditorAccounts: [OTHER],
    evidenceBucket: o.evidenceBucket ?? true,
    custodyService: {
      vpcId: 'vpc-0123456789abcdef0',
      availabilityZones: ['us-east-1a', 'us-east-1b'],
      privateSubnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
      privateSubnetRouteTableIds: ['rtb-0123456789abcdef0', 'rtb-0123456789abcdef1'],
      image: 'ghcr.io/example/custody:0.1.0',
      allowedCidr: '10.0.0.0/16',
    },
  });
  const lakeKeyArn = o.lakeKeyArn ?? `arn:aws:kms:${REGION}:${SEC}:key/00000000-0000-4000-8000-000000000001`;
  const workload = new WorkloadAccountStack(app, 'Workload', {
    env: { account: WORKLOAD, region: REGION },
    securityAccount: SEC,
    lakeKeyArn,
    trail: 'account',
    vpcIds: ['vpc-0123456789abcdef0', 'vpc-0fedcba9876543210'],
    guardDutyDetectorId: '12abc34d567e8fa901bc2d34eexample',
    config: true,
    macie: true,
    logGroupNames: ['/app/payments', '/app/web'],
  });
  const organizationWorkload = new WorkloadAccountStack(app, 'Management', {
    env: { account: MGMT, region: REGION },
    securityAccount: SEC,
    lakeKeyArn,
    trail: 'organization',
    config: false,
  });
  const guardrails =
    mode === 'organization'
      ? new GuardrailsStack(app, 'Guardrails', { env: { account: MGMT, region: REGION }, securityAccount: SEC, workloadTargets: [WORKLOAD, 'ou-ab12-cdef3456'] })
      : undefined;
  if (o.nag) addNagPacks(app);
  return { app, security, workload, organizationWorkload, ...(guardrails ? { guardrails } : {}) };
}

/** Synthesize once and return every stack's template by construct id. */
export function synthTemplates(b: TestBlueprint): Record<string, CfnTemplate> {
  const asm = b.app.synth();
  const out: Record<string, CfnTemplate> = {};
  for (const s of asm.stacks) out[s.stackName] = s.template as CfnTemplate;
  return out;
}
