/**
 * AWS Config: configuration history and snapshot files (`{"fileVersion", "configSnapshotId"?,
 * "configurationItems":[…]}`, one record per item), a single configuration item or a JSON
 * array / NDJSON of them, EventBridge events from aws.config ("Config Configuration Item
 * Change", "Config Rules Compliance Change", …) and custom-rule Lambda invocation events
 * (whose `invokingEvent` is a JSON string). Records are byte-exact; EventBridge and invocation
 * events are stored whole.
 *
 * Key layout and item fields: shared/reference/aws-sources.md ("AWS Config"). Samples spell
 * the account and ARN both ways (`awsAccountId`/`accountId`, `ARN`/`arn`); both are read.
 */
import type { CommonFields, ParseContext, ParseResult, SourceParser } from '../types.js';
import { topLevelValueRange } from './generic.js';
import {
  OCSF,
  arnRegion,
  collectUnits,
  elementUnits,
  eventBridgeDetail,
  isoTime,
  lineUnits,
  makeRecord,
  obj,
  ocsfClass,
  readJsonInput,
  safeFields,
  str,
  truncate,
  wholeUnit,
  extraTerms,
  type JsonUnit,
  type Units,
} from './aws-common.js';

export const CONFIG_SOURCE = 'aws.config';

export function isConfigurationItem(v: unknown): boolean {
  const o = obj(v);
  if (!o) return false;
  return typeof o.configurationItemCaptureTime === 'string' || (typeof o.resourceType === 'string' && typeof o.configurationItemStatus === 'string');
}

function isRuleInvocation(o: Record<string, unknown>): boolean {
  return typeof o.invokingEvent === 'string' && typeof o.configRuleName === 'string';
}

/**
 * The region a record is stored under. Global resources (IAM) say "global", which is no
 * region's log: they go to the region of the Config delivery (the `/Config/<region>/` key),
 * or of the EventBridge event, or else to the request's default log.
 */
function storeRegion(region: string | undefined, ctx: ParseContext, delivered?: string): string | undefined {
  if (region !== 'global') return region;
  return delivered ?? ((ctx.name && /\/Config\/([a-z0-9-]+)\//.exec(ctx.name)?.[1]) || undefined);
}

/** The fields of one configuration item. */
export function configItemFields(v: unknown): CommonFields {
  const ci = obj(v);
  if (!ci) return {};
  const arn = str(ci.ARN) ?? str(ci.arn);
  const status = str(ci.configurationItemStatus);
  return {
    time: isoTime(ci.configurationItemCaptureTime),
    account: str(ci.awsAccountId) ?? str(ci.accountId),
    region: str(ci.awsRegion),
    action: status ? `config:${status}` : undefined,
    resource: truncate(arn ?? str(ci.resourceId), 1024),
    ...ocsfClass(OCSF.INVENTORY_INFO),
    extra: extraTerms({
      resourceType: truncate(str(ci.resourceType), 128),
      resourceId: arn ? truncate(str(ci.resourceId), 256) : undefined,
      resourceName: truncate(str(ci.resourceName), 256),
    }),
  };
}

/** `aws.config:<resourceType>:<resourceId>:<configurationStateId | capture time>`: one key per item state. */
function itemKey(ci: Record<string, unknown>): string | undefined {
  const type = str(ci.resourceType);
  const id = str(ci.resourceId);
  const state = str(ci.configurationStateId) ?? str(ci.configurationItemCaptureTime);
  return type && id && state ? `aws.config:${type}:${id}:${state}` : undefined;
}

/** The item a notification carries (full, or the summary of an oversized one). */
function itemOf(notification: Record<string, unknown>): Record<string, unknown> | undefined {
  return obj(notification.configurationItem) ?? obj(notification.configurationItemSummary);
}

/** Fields of a rule-evaluation notification (EventBridge compliance change). */
function complianceFields(d: Record<string, unknown>): CommonFields {
  const next = obj(d.newEvaluationResult) ?? {};
  const qualifier = obj(obj(next.evaluationResultIdentifier)?.evaluationResultQualifier) ?? {};
  const rule = str(d.configRuleName) ?? str(qualifier.configRuleName);
  const compliance = str(next.complianceType);
  return {
    time: isoTime(next.resultRecordedTime) ?? isoTime(d.notificationCreationTime),
    account: str(d.awsAccountId),
    region: str(d.awsRegion),
    action: rule ? `config:${rule}` : 'config:ComplianceChange',
    outcome: compliance,
    resource: truncate(str(d.resourceId) ?? str(qualifier.resourceId), 1024),
    ...ocsfClass(OCSF.COMPLIANCE_FINDING),
    extra: extraTerms({
      configRuleName: truncate(rule, 128),
      resourceType: truncate(str(d.resourceType) ?? str(qualifier.resourceType), 128),
      complianceType: truncate(compliance, 32),
    }),
  };
}

function addUnit(u: JsonUnit, out: ParseResult, ctx: ParseContext, anyObject: boolean): boolean {
  const o = obj(u.value);
  if (!o) return false;

  // A custom-rule Lambda invocation: invokingEvent is a JSON string.
  if (isRuleInvocation(o)) {
    let invoking: Record<string, unknown> = {};
    try {
      invoking = obj(JSON.parse(o.invokingEvent as string)) ?? {};
    } catch {
      // The event is stored anyway; only its fields are unknown.
    }
    const ci = itemOf(invoking);
    const fields = safeFields(() => {
      const messageType = str(invoking.messageType);
      const itemFields = ci ? configItemFields(ci) : {};
      return {
        time: itemFields.time ?? isoTime(invoking.notificationCreationTime),
        account: str(o.accountId) ?? itemFields.account ?? str(invoking.awsAccountId),
        region: itemFields.region ?? arnRegion(o.configRuleArn),
        action: `config:${messageType ?? 'RuleInvocation'}`,
        resource: itemFields.resource ?? truncate(str(o.configRuleArn), 1024),
        ...ocsfClass(OCSF.COMPLIANCE_FINDING),
        extra: extraTerms({ configRuleName: truncate(str(o.configRuleName), 128), resourceType: itemFields.extra?.resourceType, messageType: truncate(messageType, 64) }),
      };
    });
    const token = str(o.resultToken);
    out.records.push(makeRecord(u.bytes, u.position, CONFIG_SOURCE, fields, {
      region: storeRegion(fields.region, ctx),
      dedupeKey: token ? `aws.config:invocation:${str(o.configRuleName)}:${token}` : undefined,
    }));
    return true;
  }

  // An EventBridge event from AWS Config.
  const eb = eventBridgeDetail(o);
  if (eb && (eb.source === 'aws.config' || eb.detailType.startsWith('Config '))) {
    const d = eb.detail;
    const ci = itemOf(d);
    const fields = safeFields(() => {
      let f: CommonFields;
      if (ci) f = configItemFields(ci);
      else if (d.newEvaluationResult !== undefined || str(d.messageType) === 'ComplianceChangeNotification') f = complianceFields(d);
      else f = { action: `config:${str(d.messageType) ?? eb.detailType}`, ...ocsfClass(OCSF.BASE_EVENT) };
      f.time ??= isoTime(eb.time);
      f.account ??= eb.account;
      f.region ??= eb.region;
      return f;
    });
    out.records.push(makeRecord(u.bytes, u.position, CONFIG_SOURCE, fields, {
      region: storeRegion(fields.region, ctx, eb.region),
      dedupeKey: eb.id ? `aws.events:${eb.id}` : undefined,
    }));
    return true;
  }

  if (!anyObject && !isConfigurationItem(o)) return false;
  const fields = safeFields(() => configItemFields(o));
  out.records.push(makeRecord(u.bytes, u.position, CONFIG_SOURCE, fields, { region: storeRegion(fields.region, ctx), dedupeKey: itemKey(o) }));
  return true;
}

const KIND = {
  code: 'NOT_CONFIG',
  what: 'an AWS Config configuration item or event',
  hint: 'send Config history/snapshot files ({"configurationItems":[…]}), configuration items, Config EventBridge events or rule invocation events; choose another source for other data.',
};

function parseConfig(body: Buffer, ctx: ParseContext): ParseResult {
  const input = readJsonInput(body, 'AWS Config');
  if (input.kind === 'empty') return { records: [], errors: [], ignored: 0 };
  if (input.kind === 'bad') return { records: [], errors: [input.error], ignored: 0 };
  if (input.kind === 'lines') return collectUnits(lineUnits(body), (u, out) => addUnit(u, out, ctx, false), KIND);
  const { bytes, value } = input;
  if (Array.isArray(value)) return collectUnits(elementUnits(bytes) ?? unsplittable(), (u, out) => addUnit(u, out, ctx, false), KIND);
  const o = obj(value);
  if (o && Array.isArray(o.configurationItems)) {
    const range = topLevelValueRange(bytes, 'configurationItems');
    const units = (range && elementUnits(bytes, range.start, range.end)) || unsplittable();
    if (units.units.length > 0 && !units.units.some((u) => isConfigurationItem(u.value))) return collectUnits(units, () => false, KIND);
    // Inside a delivered file every object is kept, even if its shape is new to us.
    return collectUnits(units, (u, out) => addUnit(u, out, ctx, true), KIND);
  }
  return collectUnits(wholeUnit(bytes, value), (u, out) => addUnit(u, out, ctx, false), KIND);
}

function unsplittable(): Units {
  return { units: [], errors: [{ position: 1, code: 'BAD_JSON', error: 'The configurationItems array could not be split into records; send the file as AWS Config delivered it.' }], ignored: 0 };
}

function detectConfig(head: Buffer, ctx: ParseContext): number {
  const name = ctx.name ?? '';
  if (/\/Config\//.test(name) && /Config(History|Snapshot)/.test(name)) return 95;
  if (/\d{12}_Config_[a-z0-9-]+_Config(History|Snapshot)_/.test(name)) return 95;
  const text = head.toString('utf8');
  if (/"configurationItems"\s*:\s*\[/.test(text)) return 90;
  if (/"detail-type"\s*:\s*"Config /.test(text) && /"source"\s*:\s*"aws\.config"/.test(text)) return 85;
  if (/"invokingEvent"\s*:\s*"/.test(text) && /"configRuleName"\s*:/.test(text)) return 85;
  if (/"configurationItemCaptureTime"\s*:/.test(text) && /"resourceType"\s*:/.test(text)) return 85;
  return 0;
}

export const configParser: SourceParser = {
  name: 'config',
  description: 'AWS Config: history/snapshot files, configuration items, Config EventBridge and rule invocation events',
  detect: detectConfig,
  parse: parseConfig,
};
