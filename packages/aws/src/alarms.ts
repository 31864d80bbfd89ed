/**
 * Alarms of the security account: an EventBridge rule for each group of "stop or delete log
 * generation" calls and one for delete, lock and policy calls on the log buckets, all to one
 * KMS-encrypted SNS topic with an e-mail subscription.
 *
 * Rules run twice: on the default bus (calls made in the security account itself) and on the
 * `<prefix>-security-events` bus, where each workload account's stack forwards the same events.
 */
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { lockedKey } from './lake.js';
import { lockedKeyStatements, workloadPrincipal, type Producers } from './lake-policies.js';
import { eventPattern, LOG_STOPPING_GROUPS, logBucketPattern } from './log-stopping-calls.js';
import { arn, type SecurityAccountNames } from './names.js';

export interface AlarmsProps {
  names: SecurityAccountNames;
  prefix: string;
  producers: Producers;
  /** Where alarms are e-mailed (a parameter's token). */
  email: string;
  /** The log buckets whose delete, lock and policy calls alarm. */
  logBuckets: string[];
}

/** What the e-mail says: which call, on which service, by whom, where and when. */
function alarmInput(what: string): events.CfnRule.InputTransformerProperty {
  return {
    inputPathsMap: {
      call: '$.detail.eventName',
      service: '$.detail.eventSource',
      who: '$.detail.userIdentity.arn',
      account: '$.account',
      region: '$.region',
      time: '$.time',
      error: '$.detail.errorCode',
    },
    inputTemplate: JSON.stringify(
      `Custody alarm: ${what}. <call> on <service> by <who> in account <account>, region <region>, at <time> (error code, empty when the call succeeded: <error>). Find the event in CloudTrail and in the lake, and confirm who made it.`,
    ),
  };
}

export class Alarms extends Construct {
  readonly key: kms.IKey;
  readonly topic: sns.Topic;
  readonly bus: events.CfnEventBus;
  readonly rules: events.CfnRule[] = [];

  constructor(scope: Construct, id: string, p: AlarmsProps) {
    super(scope, id);
    const n = p.names;
    const { key } = lockedKey(this, 'Key', n.alarmKeyAlias, 'Custody alarms: encrypts the alarm topic', [
      ...lockedKeyStatements({ securityAccount: n.account, securityAdminRoleArn: arn.role(n.account, n.securityAdminRole) }),
      {
        Sid: 'EventBridgePublishesToTheEncryptedTopic',
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Action: ['kms:GenerateDataKey*', 'kms:Decrypt'],
        Resource: '*',
        Condition: { StringEquals: { 'aws:SourceAccount': n.account } },
      },
    ]);
    this.key = key;

    this.topic = new sns.Topic(this, 'Topic', { topicName: n.alarmTopic, displayName: 'Custody security alarms', masterKey: key, enforceSSL: true });
    this.topic.addToResourcePolicy(
      iam.PolicyStatement.fromJson({
        Sid: 'EventBridgeRulesOfThisAccountPublish',
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Action: 'sns:Publish',
        Resource: this.topic.topicArn,
        Condition: { StringEquals: { 'aws:SourceAccount': n.account } },
      }),
    );
    new sns.CfnSubscription(this, 'Email', { topicArn: this.topic.topicArn, protocol: 'email', endpoint: p.email });

    const wp = workloadPrincipal(p.producers);
    this.bus = new events.CfnEventBus(this, 'Bus', {
      name: n.alarmBus,
      description: 'Custody: log-stopping calls forwarded from the workload accounts',
      policy: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'WorkloadAccountsForwardEvents',
            Effect: 'Allow',
            Principal: wp.Principal,
            Action: 'events:PutEvents',
            Resource: arn.eventBus(n.account, n.region, n.alarmBus),
            ...(Object.keys(wp.Condition).length ? { Condition: wp.Condition } : {}),
          },
        ],
      },
    });

    const target = (what: string): events.CfnRule.TargetProperty => ({ id: 'AlarmTopic', arn: this.topic.topicArn, inputTransformer: alarmInput(what) });
    for (const busName of ['default', n.alarmBus]) {
      for (const g of LOG_STOPPING_GROUPS) {
        const rule = new events.CfnRule(this, `${busName === 'default' ? 'Own' : 'Forwarded'}-${g.id}`, {
          name: `${p.prefix}-stop-${g.id}`,
          description: `Custody: ${g.description}`,
          eventBusName: busName,
          eventPattern: eventPattern(g),
          state: 'ENABLED',
          targets: [target(g.description)],
        });
        if (busName !== 'default') rule.addResourceDependency(this.bus);
        this.rules.push(rule);
      }
    }
    this.rules.push(
      new events.CfnRule(this, 'LogBucketTampering', {
        name: `${p.prefix}-lake-tampering`,
        description: 'Custody: delete, lock, policy or lifecycle call on a log bucket',
        eventBusName: 'default',
        eventPattern: logBucketPattern(p.logBuckets),
        state: 'ENABLED',
        targets: [target('delete, lock, policy or lifecycle call on a log bucket')],
      }),
    );
  }
}
