/**
 * cdk-nag: the AWS Solutions and NIST 800-53 rev 5 packs, and the one way this package
 * acknowledges a finding — with the reason written next to the construct it concerns.
 */
import { Validations, type App, type Stage } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NIST80053R5Checks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/** Run both packs over every stack of the app at synthesis; any unacknowledged finding fails it. */
export function addNagPacks(app: App | Stage): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));
}

/**
 * Acknowledge findings on a construct: `{ 'AwsSolutions::AwsSolutions-S1': 'reason' }`.
 * A reason says why the rule does not fit here and what protects the resource instead.
 */
export function acknowledge(scope: IConstruct, findings: Record<string, string>): void {
  for (const [id, reason] of Object.entries(findings)) Validations.of(scope).acknowledge({ id, reason });
}
