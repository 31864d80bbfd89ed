/**
 * cdk-nag, AWS Solutions and NIST 800-53 rev 5 packs, over every stack of the blueprint (both
 * producer modes): zero unacknowledged findings; every acknowledgment is used by a finding (none
 * is stale), sits on the construct it concerns, and gives a reason a reviewer can check.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Validations } from 'aws-cdk-lib';
import { buildBlueprint, type Mode } from './support/stacks.js';

interface Report {
  pluginReports: Array<{
    pluginName: string;
    conclusion: string;
    violations: Array<{ ruleName: string; severity: string; violatingConstructs: Array<{ constructPath: string }> }>;
    suppressedViolations?: Array<{ ruleName: string; acknowledgedId: string; acknowledgedAt: string; reason: string; violatingConstructs: Array<{ constructPath: string }> }>;
  }>;
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function synthWithNag(mode: Mode): { report: Report; acknowledgments: Array<{ path: string; id: string; reason: string }>; warnings: string[] } {
  const outdir = mkdtempSync(join(tmpdir(), 'custody-nag-'));
  dirs.push(outdir);
  const b = buildBlueprint({ mode, nag: true, outdir });
  try {
    b.app.synth();
  } catch (e) {
    // The message names the report; show the findings themselves.
    let detail = '';
    try {
      const r = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as Report;
      detail = r.pluginReports.flatMap((p) => p.violations.flatMap((v) => v.violatingConstructs.map((c) => `${p.pluginName}::${v.ruleName} at ${c.constructPath}`))).join('\n');
    } catch {
      /* no report */
    }
    assert.fail(`cdk-nag (${mode}) found unacknowledged findings:\n${detail || (e as Error).message}`);
  }
  const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as Report;
  const acknowledgments: Array<{ path: string; id: string; reason: string }> = [];
  const warnings: string[] = [];
  for (const c of b.app.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type === 'aws:cdk:warning') warnings.push(`${c.node.path}: ${String(m.data)}`);
      if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(m.data as Record<string, string>)) acknowledgments.push({ path: c.node.path, id, reason });
    }
  }
  return { report, acknowledgments, warnings };
}

for (const mode of ['organization', 'accounts'] as const) {
  describe(`cdk-nag AwsSolutions + NIST 800-53 rev 5 (${mode} mode)`, { timeout: 90_000 }, () => {
    const { report, acknowledgments, warnings } = synthWithNag(mode);
    const suppressed = report.pluginReports.flatMap((p) => p.suppressedViolations ?? []);

    it('runs both packs and reports no unacknowledged finding, error or warning', () => {
      const names = report.pluginReports.map((p) => p.pluginName);
      assert.ok(names.includes('AwsSolutions') && names.includes('NIST.800.53.R5'), `packs that ran: ${names.join(', ')}`);
      const open = report.pluginReports.flatMap((p) => p.violations.map((v) => `${p.pluginName}::${v.ruleName} (${v.severity}) at ${v.violatingConstructs.map((c) => c.constructPath).join(', ')}`));
      assert.deepEqual(open, []);
      assert.deepEqual(warnings, [], 'CDK construct warnings');
      assert.ok(suppressed.length > 0, 'the report lists the acknowledged findings');
    });

    it('uses every acknowledgment (none is stale) on the construct it was written on', () => {
      const used = new Set(suppressed.map((s) => `${s.acknowledgedAt} ${s.acknowledgedId}`));
      const stale = acknowledgments.filter((a) => !used.has(`${a.path} ${a.id}`)).map((a) => `${a.id} at ${a.path}`);
      assert.deepEqual(stale, []);
      for (const s of suppressed) {
        assert.ok(
          s.violatingConstructs.every((c) => c.constructPath === s.acknowledgedAt || c.constructPath.startsWith(`${s.acknowledgedAt}/`)),
          `${s.acknowledgedId} acknowledged at ${s.acknowledgedAt} covers ${s.violatingConstructs.map((c) => c.constructPath).join(', ')}`,
        );
      }
    });

    it('gives every acknowledgment a specific reason (why the rule does not fit, what protects the resource instead)', () => {
      for (const a of acknowledgments) {
        assert.ok(a.reason.length >= 100, `${a.id} at ${a.path}: the reason is too short to review: ${JSON.stringify(a.reason)}`);
        assert.doesNotMatch(a.reason, /\b(TODO|FIXME|not needed|false positive|N\/A)\b/i, `${a.id} at ${a.path}: say why, not just that`);
      }
      // No rule is acknowledged for a whole stack, only on the resources it concerns —
      // except the validator warning about the conditional Firehose parameters, which is reported on the stack itself.
      const stackLevel = acknowledgments.filter((a) => !a.path.includes('/')).map((a) => a.id);
      assert.deepEqual([...new Set(stackLevel)], stackLevel.length ? ['CloudFormation-Validate::W1030'] : []);
    });

    it('acknowledges no finding of the rules that matter most for a log archive', () => {
      const neverAcknowledged = ['S10', 'S2', 'S3BucketSSLRequestsOnly', 'S3BucketPublicReadProhibited', 'S3BucketPublicWriteProhibited', 'S3BucketVersioningEnabled', 'KMS5', 'KMSBackingKeyRotationEnabled', 'SNS2', 'SNS3', 'CloudTrailEncryptionEnabled', 'CloudTrailLogFileValidationEnabled', 'S3BucketLoggingEnabled', 'S1'];
      const bad = acknowledgments.filter((a) => neverAcknowledged.some((r) => a.id.endsWith(`-${r}`) || a.id.includes(`-${r}[`)));
      assert.deepEqual(bad.map((a) => `${a.id} at ${a.path}`), []);
    });
  });
}
