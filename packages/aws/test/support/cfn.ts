/**
 * A small CloudFormation evaluator for tests: resolves the intrinsic functions of a synthesized
 * template (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::If and conditions,
 * pseudo parameters, AWS::NoValue) with given parameter values, and gives each resource the
 * physical name or ARN CloudFormation would — from its explicit name property where it has one.
 * This is what lets the permission-matrix test evaluate the policies exactly as deployed.
 */

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface CfnTemplate {
  Parameters?: Record<string, { Type: string; Default?: Json }>;
  Conditions?: Record<string, Json>;
  Resources: Record<string, { Type: string; Properties?: Record<string, Json>; Condition?: string; DependsOn?: Json }>;
  Outputs?: Record<string, { Value: Json }>;
}

export interface ResolveOptions {
  account: string;
  region: string;
  /** Parameter values (defaults are used for the others). */
  parameters?: Record<string, string | number>;
  /** Physical ids to use for given logical ids (e.g. a key id known to another stack). */
  physicalIds?: Record<string, string>;
}

const NO_VALUE = Symbol('AWS::NoValue');

export class ResolvedTemplate {
  readonly resources: Record<string, { Type: string; Properties: Record<string, Json> }> = {};
  private readonly conditions = new Map<string, boolean>();

  constructor(
    readonly template: CfnTemplate,
    readonly options: ResolveOptions,
  ) {
    for (const [id, r] of Object.entries(template.Resources)) {
      if (r.Condition && !this.condition(r.Condition)) continue;
      this.resources[id] = { Type: r.Type, Properties: (this.resolve(r.Properties ?? {}) as Record<string, Json>) ?? {} };
    }
  }

  /** All resolved resources of a type. */
  ofType(type: string): Array<{ id: string; Properties: Record<string, Json> }> {
    return Object.entries(this.resources)
      .filter(([, r]) => r.Type === type)
      .map(([id, r]) => ({ id, Properties: r.Properties }));
  }

  output(name: string): Json {
    const o = this.template.Outputs?.[name];
    if (!o) throw new Error(`No output ${name}`);
    return this.resolve(o.Value) as Json;
  }

  condition(name: string): boolean {
    const known = this.conditions.get(name);
    if (known !== undefined) return known;
    const expr = this.template.Conditions?.[name];
    if (expr === undefined) throw new Error(`Unknown condition ${name}`);
    const v = this.evalCondition(expr);
    this.conditions.set(name, v);
    return v;
  }

  private evalCondition(e: Json): boolean {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new Error(`Bad condition ${JSON.stringify(e)}`);
    const [fn, arg] = Object.entries(e)[0] as [string, Json];
    const args = arg as Json[];
    switch (fn) {
      case 'Fn::Equals':
        return JSON.stringify(this.resolve(args[0] as Json)) === JSON.stringify(this.resolve(args[1] as Json));
      case 'Fn::Not':
        return !this.evalCondition(args[0] as Json);
      case 'Fn::And':
        return args.every((x) => this.evalCondition(x));
      case 'Fn::Or':
        return args.some((x) => this.evalCondition(x));
      case 'Condition':
        return this.condition(arg as string);
      default:
        throw new Error(`Unsupported condition function ${fn}`);
    }
  }

  private parameter(name: string): Json {
    const given = this.options.parameters?.[name];
    if (given !== undefined) return String(given);
    const p = this.template.Parameters?.[name];
    if (!p) throw new Error(`Unknown parameter ${name}`);
    if (p.Default === undefined) throw new Error(`Parameter ${name} has no default: give it a value`);
    return String(p.Default);
  }

  /** The value Ref gives for a resource. */
  ref(id: string): string {
    const r = this.template.Resources[id];
    if (!r) throw new Error(`Unknown resource ${id}`);
    const fixed = this.options.physicalIds?.[id];
    if (fixed !== undefined) return fixed;
    const p = (r.Properties ?? {}) as Record<string, Json>;
    const name = (k: string) => (p[k] === undefined ? undefined : String(this.resolve(p[k] as Json)));
    const { account, region } = this.options;
    switch (r.Type) {
      case 'AWS::S3::Bucket':
        return name('BucketName') ?? id.toLowerCase();
      case 'AWS::IAM::Role':
        return name('RoleName') ?? id;
      case 'AWS::IAM::Group':
        return name('GroupName') ?? id;
      case 'AWS::IAM::ManagedPolicy':
        return `arn:aws:iam::${account}:policy${name('Path') ?? '/'}${name('ManagedPolicyName') ?? id}`;
      case 'AWS::KMS::Key':
        return `key-${id}`;
      case 'AWS::SNS::Topic':
        return `arn:aws:sns:${region}:${account}:${name('TopicName') ?? id}`;
      case 'AWS::Events::EventBus':
        return name('Name') ?? id;
      case 'AWS::Logs::LogGroup':
        return name('LogGroupName') ?? id;
      case 'AWS::Logs::LogStream':
        return name('LogStreamName') ?? id;
      case 'AWS::KinesisFirehose::DeliveryStream':
        return name('DeliveryStreamName') ?? id;
      default:
        return id;
    }
  }

  getAtt(id: string, attr: string): string {
    const r = this.template.Resources[id];
    if (!r) throw new Error(`Unknown resource ${id}`);
    const { account, region } = this.options;
    const ref = this.ref(id);
    const path = (r.Properties?.Path as string | undefined) ?? '/';
    switch (`${r.Type}.${attr}`) {
      case 'AWS::S3::Bucket.Arn':
        return `arn:aws:s3:::${ref}`;
      case 'AWS::IAM::Role.Arn':
        return `arn:aws:iam::${account}:role${path}${ref}`;
      case 'AWS::IAM::Group.Arn':
        return `arn:aws:iam::${account}:group${path}${ref}`;
      case 'AWS::KMS::Key.Arn':
        return `arn:aws:kms:${region}:${account}:key/${ref}`;
      case 'AWS::KMS::Key.KeyId':
        return ref;
      case 'AWS::SNS::Topic.TopicArn':
        return ref;
      case 'AWS::Events::EventBus.Arn':
        return `arn:aws:events:${region}:${account}:event-bus/${ref}`;
      case 'AWS::Logs::LogGroup.Arn':
        return `arn:aws:logs:${region}:${account}:log-group:${ref}:*`;
      case 'AWS::KinesisFirehose::DeliveryStream.Arn':
        return `arn:aws:firehose:${region}:${account}:deliverystream/${ref}`;
      case 'AWS::Organizations::Policy.Id':
        return `p-${id.toLowerCase().slice(0, 8)}`;
      default:
        return `${id}.${attr}`;
    }
  }

  resolve(v: Json): Json | typeof NO_VALUE {
    if (Array.isArray(v)) return v.map((x) => this.resolve(x)).filter((x): x is Json => x !== NO_VALUE);
    if (v === null || typeof v !== 'object') return v;
    const keys = Object.keys(v);
    if (keys.length === 1) {
      const k = keys[0] as string;
      const a = v[k] as Json;
      switch (k) {
        case 'Ref': {
          const name = a as string;
          if (name === 'AWS::NoValue') return NO_VALUE;
          if (name === 'AWS::AccountId') return this.options.account;
          if (name === 'AWS::Region') return this.options.region;
          if (name === 'AWS::Partition') return 'aws';
          if (name === 'AWS::URLSuffix') return 'amazonaws.com';
          if (name === 'AWS::StackName') return 'stack';
          if (this.template.Parameters?.[name]) return this.parameter(name);
          return this.ref(name);
        }
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(a) ? (a as string[]) : String(a).split('.');
          return this.getAtt(id as string, attr as string);
        }
        case 'Fn::Join': {
          const [sep, parts] = a as [string, Json[]];
          return (this.resolve(parts) as Json[]).map(String).join(sep);
        }
        case 'Fn::Select': {
          const [i, list] = a as [Json, Json];
          return (this.resolve(list) as Json[])[Number(this.resolve(i))] as Json;
        }
        case 'Fn::Split': {
          const [sep, s] = a as [string, Json];
          return String(this.resolve(s)).split(sep);
        }
        case 'Fn::Sub': {
          const [tpl, vars] = Array.isArray(a) ? (a as [string, Record<string, Json>]) : [a as string, {}];
          return tpl.replace(/\$\{([^}!]+)\}/g, (_m, name: string) => {
            if (name in vars) return String(this.resolve(vars[name] as Json));
            if (name.includes('.')) {
              const [id, attr] = name.split('.');
              return this.getAtt(id as string, attr as string);
            }
            return String(this.resolve({ Ref: name }));
          });
        }
        case 'Fn::If': {
          const [cond, yes, no] = a as [string, Json, Json];
          return this.resolve(this.condition(cond) ? yes : no);
        }
        case 'Fn::Base64':
          return Buffer.from(String(this.resolve(a))).toString('base64');
        default:
          if (k.startsWith('Fn::')) throw new Error(`Unsupported intrinsic ${k}`);
      }
    }
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) {
      const r = this.resolve(x);
      if (r !== NO_VALUE) out[k] = r;
    }
    return out;
  }
}
