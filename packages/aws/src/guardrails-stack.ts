/**
 * The organization's guardrails, deployed in the management account (SCPs can only be managed
 * there): the security account SCP (src/guardrails.ts, the same statements as the roles'
 * permissions boundary) and, optionally, the workload SCP on the workload accounts or OUs.
 *
 * Deploy it after the first deploy of every security stack: the SCP denies the bucket and key
 * changes that creating the lake requires.
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as organizations from 'aws-cdk-lib/aws-organizations';
import { Construct } from 'constructs';
import { policySize, SCP_MAX_CHARS, securityAccountScp, workloadAccountScp } from './guardrails.js';
import { checkAccount, DEFAULT_NAME_PREFIX } from './names.js';

export interface GuardrailsStackProps extends StackProps {
  env: { account: string; region: string };
  securityAccount: string;
  /** Workload accounts, OUs (ou-…) or the root (r-…) the workload SCP is attached to. */
  workloadTargets?: string[];
  namePrefix?: string;
}

export class GuardrailsStack extends Stack {
  readonly securityScp: organizations.CfnPolicy;
  readonly workloadScp?: organizations.CfnPolicy;

  constructor(scope: Construct, id: string, props: GuardrailsStackProps) {
    super(scope, id, { description: 'Custody guardrails: service control policies for the security and workload accounts (management account; packages/aws)', ...props });
    const prefix = props.namePrefix ?? DEFAULT_NAME_PREFIX;
    const account = checkAccount(props.securityAccount, 'The security account');
    if (account === props.env.account) throw new Error('Deploy the guardrails from the management account: SCPs do not apply to the management account itself, so the security account must be another one.');

    const scp = securityAccountScp({ account, prefix });
    if (policySize(scp) > SCP_MAX_CHARS) throw new Error(`The security account SCP has ${policySize(scp)} characters; AWS Organizations accepts at most ${SCP_MAX_CHARS}. Shorten the name prefix.`);
    this.securityScp = new organizations.CfnPolicy(this, 'SecurityAccountScp', {
      name: `${prefix}-security-account-guardrails`,
      description: 'Custody: nobody in the security account deletes or alters the lake, destroys its keys, stops logging or creates long-lived credentials',
      type: 'SERVICE_CONTROL_POLICY',
      content: scp,
      targetIds: [account],
    });

    for (const t of props.workloadTargets ?? []) {
      if (!/^(\d{12}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$/.test(t)) throw new Error(`${JSON.stringify(t)} is not an account id, OU id (ou-…) or root id (r-…).`);
      if (t === account) throw new Error('The security account already has its own SCP; leave it out of workloadTargets.');
    }
    if ((props.workloadTargets ?? []).length > 0) {
      this.workloadScp = new organizations.CfnPolicy(this, 'WorkloadAccountScp', {
        name: `${prefix}-workload-account-guardrails`,
        description: 'Custody: nobody in a workload account stops or deletes the trail, flow logs, GuardDuty, Config or Macie',
        type: 'SERVICE_CONTROL_POLICY',
        content: workloadAccountScp(),
        targetIds: props.workloadTargets ?? [],
      });
    }
    new CfnOutput(this, 'SecurityAccountScpId', { value: this.securityScp.attrId, description: 'The SCP attached to the security account' });
  }
}
