/**
 * The permission matrix: who (principal) can do what (action) in the security account, decided
 * offline by @cloud-copilot/iam-simulate from the synthesized policies — identity policies,
 * permissions boundaries, bucket and key policies, trust policies and SCPs, exactly as the
 * templates would deploy them (resolved by ./cfn.ts).
 *
 * iam-simulate does not fill in request context itself, so each caller states the context AWS
 * would add to its requests (aws:PrincipalArn, aws:PrincipalOrgID, MFA, TLS …); docs/AWS.md
 * prints these assumptions beside the matrix.
 */
import { anonymousPrincipal, getDenialReasons, runSimulation, type Simulation, type SimulationIdentityPolicy, type SimulationOrgPolicies } from '@cloud-copilot/iam-simulate';
import type { Json, ResolvedTemplate } from './cfn.js';

export type Doc = { Version: string; Statement: Array<Record<string, Json>> };

const FULL_ACCESS: Doc = { Version: '2012-10-17', Statement: [{ Sid: 'FullAWSAccess', Effect: 'Allow', Action: '*', Resource: '*' }] };

/** The policies one synthesized stack deploys, looked up by name. */
export class DeployedPolicies {
  private readonly managed = new Map<string, { name: string; doc: Doc; roles: string[]; groups: string[] }>();
  private readonly roles = new Map<string, { trust: Doc; managedArns: string[]; boundaryArn?: string; inline: Doc[] }>();
  private readonly groups = new Map<string, { managedArns: string[] }>();
  private readonly buckets = new Map<string, Doc>();
  private readonly keys = new Map<string, Doc>();
  private readonly scps = new Map<string, Doc>();

  constructor(...templates: ResolvedTemplate[]) {
    for (const t of templates) {
      for (const m of t.ofType('AWS::IAM::ManagedPolicy')) {
        const p = m.Properties;
        this.managed.set(t.ref(m.id), { name: String(p.ManagedPolicyName ?? m.id), doc: p.PolicyDocument as Doc, roles: (p.Roles as string[]) ?? [], groups: (p.Groups as string[]) ?? [] });
      }
      for (const r of t.ofType('AWS::IAM::Role')) {
        const p = r.Properties;
        const inline = ((p.Policies as Array<{ PolicyDocument: Doc }>) ?? []).map((x) => x.PolicyDocument);
        this.roles.set(String(p.RoleName ?? r.id), {
          trust: p.AssumeRolePolicyDocument as Doc,
          managedArns: (p.ManagedPolicyArns as string[]) ?? [],
          ...(p.PermissionsBoundary ? { boundaryArn: String(p.PermissionsBoundary) } : {}),
          inline,
        });
      }
      for (const pol of t.ofType('AWS::IAM::Policy')) {
        for (const role of (pol.Properties.Roles as string[]) ?? []) this.roles.get(role)?.inline.push(pol.Properties.PolicyDocument as Doc);
      }
      for (const g of t.ofType('AWS::IAM::Group')) this.groups.set(String(g.Properties.GroupName), { managedArns: (g.Properties.ManagedPolicyArns as string[]) ?? [] });
      for (const b of t.ofType('AWS::S3::BucketPolicy')) this.buckets.set(String(b.Properties.Bucket), b.Properties.PolicyDocument as Doc);
      for (const k of t.ofType('AWS::KMS::Key')) this.keys.set(t.getAtt(k.id, 'Arn'), k.Properties.KeyPolicy as Doc);
      for (const s of t.ofType('AWS::Organizations::Policy')) this.scps.set(String(s.Properties.Name), s.Properties.Content as Doc);
    }
  }

  private need<T>(m: Map<string, T>, k: string, what: string): T {
    const v = m.get(k);
    if (v === undefined) throw new Error(`No ${what} ${k} in the synthesized templates (have: ${[...m.keys()].join(', ')})`);
    return v;
  }

  managedPolicy(arn: string): { name: string; policy: Doc } {
    const m = this.need(this.managed, arn, 'managed policy');
    return { name: m.name, policy: m.doc };
  }

  /** Identity policies of a role: its managed policies (by ARN and by the policies' Roles), and inline ones. */
  roleIdentity(roleName: string): SimulationIdentityPolicy[] {
    const r = this.need(this.roles, roleName, 'role');
    const arns = new Set(r.managedArns);
    for (const [arn, m] of this.managed) if (m.roles.includes(roleName)) arns.add(arn);
    return [...[...arns].map((a) => this.managedPolicy(a)), ...r.inline.map((policy, i) => ({ name: `${roleName}-inline-${i}`, policy }))];
  }

  roleBoundary(roleName: string): Array<{ name: string; policy: Doc }> {
    const r = this.need(this.roles, roleName, 'role');
    return r.boundaryArn ? [this.managedPolicy(r.boundaryArn)] : [];
  }

  trust(roleName: string): Doc {
    return this.need(this.roles, roleName, 'role').trust;
  }

  groupIdentity(groupName: string): SimulationIdentityPolicy[] {
    const g = this.need(this.groups, groupName, 'group');
    const arns = new Set(g.managedArns);
    for (const [arn, m] of this.managed) if (m.groups.includes(groupName)) arns.add(arn);
    return [...arns].map((a) => this.managedPolicy(a));
  }

  bucketPolicy(bucket: string): Doc {
    return this.need(this.buckets, bucket, 'bucket policy');
  }

  keyPolicy(keyArn: string): Doc {
    return this.need(this.keys, keyArn, 'key policy');
  }

  scp(name: string): Doc {
    return this.need(this.scps, name, 'SCP');
  }

  roleNames(): string[] {
    return [...this.roles.keys()];
  }
}

/** The SCP levels of an account: the root with FullAWSAccess, then the account with FullAWSAccess and its own SCPs. */
export function scpLevels(account: string, scps: Array<{ name: string; policy: Doc }>): SimulationOrgPolicies[] {
  return [
    { orgIdentifier: 'r-root', policies: [{ name: 'FullAWSAccess', policy: FULL_ACCESS }] },
    { orgIdentifier: account, policies: [{ name: 'FullAWSAccess', policy: FULL_ACCESS }, ...scps] },
  ];
}

export const ADMINISTRATOR_ACCESS: SimulationIdentityPolicy = { name: 'AdministratorAccess', policy: FULL_ACCESS };

export interface Caller {
  key: string;
  label: string;
  /** What the row says about who this is and what context its requests carry. */
  assumes: string;
  principal: string | typeof anonymousPrincipal;
  identity: SimulationIdentityPolicy[];
  boundary: Array<{ name: string; policy: Doc }>;
  scps: SimulationOrgPolicies[];
  context: Record<string, string | string[]>;
}

export interface Request {
  action: string;
  resource: string;
  account: string;
  resourcePolicy?: Doc;
  context?: Record<string, string | string[]>;
}

export type Outcome = 'allowed' | 'denied';

export interface Decision {
  outcome: Outcome;
  /** Explicit denies: "<policy type>:<policy or statement>" (e.g. resource:DenyDeletesAndConfigurationChanges). */
  explicitDenies: string[];
  raw: string;
}

const LAYER: Record<string, string> = { resource: 'resource policy', scp: 'SCP', pb: 'permissions boundary', identity: 'identity policy', rcp: 'RCP', vpce: 'endpoint policy', 's3-bpa': 'Block Public Access' };

const ENCRYPTION_CONTEXT = /^kms:encryptioncontext:/i;

/**
 * iam-simulate 0.1.x ignores `kms:EncryptionContext:<key>` condition keys: its variable-key
 * matching only knows keys that continue after a `/` (like `aws:PrincipalTag/x`), and these
 * continue after a `:`. So a condition on them never matches there. This shim evaluates exactly
 * those keys itself — StringEquals / StringLike in Allow statements, the only forms the
 * blueprint writes — against the request's encryption context, and hands the simulator the
 * policy with that key settled: dropped when it holds, the statement removed when it does not.
 * Anything else on these keys throws, so the shim cannot silently widen a policy.
 */
export function settleEncryptionContext(doc: Doc, context: Record<string, string | string[]>): Doc {
  const ctx = new Map(Object.entries(context).filter(([k]) => ENCRYPTION_CONTEXT.test(k)).map(([k, v]) => [k.toLowerCase(), [v].flat()]));
  const like = (pattern: string, value: string) => new RegExp(`^${pattern.split('*').map((x) => x.split('?').map((y) => y.replace(/[.+^${}()|[\]\\]/g, '\\$&')).join('.')).join('.*')}$`).test(value);
  const statements: Array<Record<string, Json>> = [];
  for (const st of doc.Statement) {
    const cond = st.Condition as Record<string, Record<string, Json>> | undefined;
    if (!cond) {
      statements.push(st);
      continue;
    }
    let holds = true;
    const rest: Record<string, Record<string, Json>> = {};
    for (const [op, kv] of Object.entries(cond)) {
      for (const [key, want] of Object.entries(kv)) {
        if (!ENCRYPTION_CONTEXT.test(key)) {
          rest[op] = { ...(rest[op] ?? {}), [key]: want };
          continue;
        }
        if (st.Effect !== 'Allow' || (op !== 'StringEquals' && op !== 'StringLike')) throw new Error(`settleEncryptionContext handles StringEquals/StringLike in Allow statements only, not ${String(st.Effect)} ${op} ${key}`);
        const values = ctx.get(key.toLowerCase()) ?? [];
        const patterns = [want].flat().map(String);
        if (!values.some((v) => patterns.some((p) => (op === 'StringLike' ? like(p, v) : p === v)))) holds = false;
      }
    }
    if (!holds) continue;
    const next: Record<string, Json> = { ...st };
    if (Object.keys(rest).length) next.Condition = rest;
    else delete next.Condition;
    statements.push(next);
  }
  return { ...doc, Statement: statements };
}

export async function decide(c: Caller, r: Request): Promise<Decision> {
  const anonymous = typeof c.principal !== 'string';
  const context = { ...c.context, ...(r.context ?? {}) };
  const settle = (d: Doc) => settleEncryptionContext(d, context);
  const settleAll = <T extends { policy: Doc }>(list: T[]): T[] => list.map((x) => ({ ...x, policy: settle(x.policy) }));
  const sim: Simulation = {
    request: {
      principal: c.principal,
      action: r.action,
      resource: { resource: r.resource, accountId: r.account },
      contextVariables: Object.fromEntries(Object.entries(context).filter(([k]) => !ENCRYPTION_CONTEXT.test(k))),
    },
    identityPolicies: anonymous ? [] : settleAll(c.identity as Array<{ name: string; policy: Doc }>),
    serviceControlPolicies: anonymous ? [] : c.scps.map((l) => ({ ...l, policies: settleAll(l.policies as Array<{ name: string; policy: Doc }>) })),
    resourceControlPolicies: [],
    ...(r.resourcePolicy ? { resourcePolicy: settle(r.resourcePolicy) } : {}),
    ...(!anonymous && c.boundary.length ? { permissionBoundaryPolicies: settleAll(c.boundary) } : {}),
    additionalSettings: { s3: { blockPublicAccess: true } },
  };
  const res = await runSimulation(sim, {});
  if (res.resultType === 'error') throw new Error(`iam-simulate refused ${c.key} ${r.action} ${r.resource}: ${JSON.stringify(res.errors)}`);
  const analysis = res.resultType === 'single' ? res.result.analysis : res.results[0]?.analysis;
  const denies = analysis
    ? getDenialReasons(analysis)
        .filter((d) => d.denialType === 'Explicit')
        .map((d) => `${LAYER[d.policyType] ?? d.policyType}:${'statementId' in d && d.statementId ? d.statementId : `#${'statementIndex' in d ? d.statementIndex : '?'}`}`)
    : [];
  return { outcome: res.overallResult === 'Allowed' ? 'allowed' : 'denied', explicitDenies: [...new Set(denies)].sort(), raw: res.overallResult };
}

export { anonymousPrincipal };
