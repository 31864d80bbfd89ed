/**
 * `cdk synth` with the real AWS CDK CLI, as CI runs it: no AWS account, no credentials, no
 * network. The app (bin/app.ts) runs both cdk-nag packs, so a finding fails the synth. Also the
 * configuration file's checks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { addBlueprint, allStacks } from '../src/app.js';
import { parseBlueprintConfig } from '../src/config.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const exampleFile = join(root, 'packages', 'aws', 'config', 'example.json');
const example = JSON.parse(readFileSync(exampleFile, 'utf8')) as Record<string, unknown>;
const tmp = mkdtempSync(join(tmpdir(), 'custody-synth-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Run the CDK CLI with nothing that could reach AWS: no credentials, no profile, no instance metadata. */
function cdkSynth(outdir: string, extra: string[] = []) {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('AWS_') && !k.startsWith('CDK_')) env[k] = v;
  Object.assign(env, {
    HOME: tmp, // the CLI's caches and notices stay in the temp dir
    CI: 'true',
    CDK_DISABLE_VERSION_CHECK: '1',
    CDK_DISABLE_CLI_TELEMETRY: 'true',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(tmp, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(tmp, 'no-aws-credentials'),
  });
  return spawnSync(join(root, 'node_modules', '.bin', 'cdk'), ['synth', '--app', 'node packages/aws/dist/bin/app.js', '--output', outdir, '--no-notices', '--quiet', '-c', '@aws-cdk/core:validateAgainstDefaultRules=true', ...extra], {
    cwd: root,
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

describe('cdk synth (real CLI, offline)', { timeout: 150_000 }, () => {
  it('synthesizes every stack of the example configuration with both cdk-nag packs and zero findings', () => {
    const out = join(tmp, 'cdk.out');
    const r = cdkSynth(out);
    assert.equal(r.status, 0, `cdk synth failed:\n${r.stdout}\n${r.stderr}`);
    const expected = ['CustodySecurity-us-east-1', 'CustodySecurity-eu-west-1', 'CustodyGuardrails', 'CustodyWorkload-555555555555-us-east-1', 'CustodyWorkload-222222222222-us-east-1'];
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { artifacts: Record<string, { type: string; environment?: string }> };
    const stacks = Object.entries(manifest.artifacts).filter(([, a]) => a.type === 'aws:cloudformation:stack');
    assert.deepEqual(stacks.map(([id]) => id).sort(), [...expected].sort());
    assert.equal(manifest.artifacts['CustodySecurity-eu-west-1']?.environment, 'aws://111111111111/eu-west-1');
    for (const id of expected) {
      const template = JSON.parse(readFileSync(join(out, `${id}.template.json`), 'utf8')) as { Resources: Record<string, unknown>; Parameters?: Record<string, unknown> };
      assert.ok(Object.keys(template.Resources).length > 0, `${id} has resources`);
      // Deployed with the caller's own credentials: no bootstrap roles, no bootstrap-version lookup.
      assert.ok(!JSON.stringify(template).includes('cdk-hnb659fds-cfn-exec-role'), `${id} does not use the bootstrap admin role`);
      assert.equal(template.Parameters?.BootstrapVersion, undefined);
    }
    const report = JSON.parse(readFileSync(join(out, 'validation-report.json'), 'utf8')) as { pluginReports: Array<{ pluginName: string; violations: unknown[]; suppressedViolations?: unknown[] }> };
    for (const pack of ['AwsSolutions', 'NIST.800.53.R5']) {
      const p = report.pluginReports.find((x) => x.pluginName === pack);
      assert.ok(p, `${pack} ran`);
      assert.deepEqual(p.violations, []);
    }
    assert.ok(existsSync(join(out, 'CustodySecurity-eu-west-1.template.json')));
    const service = readFileSync(join(out, 'CustodySecurity-eu-west-1.template.json'), 'utf8');
    assert.ok(service.includes('"AWS::ECS::Service"'), 'the example runs the vault service in eu-west-1');
  });

  it('fails with the offending field named when the configuration is wrong', () => {
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...example, organizationId: undefined, workloadAccounts: [] }));
    const r = cdkSynth(join(tmp, 'bad.out'), ['-c', `custodyConfig=${bad}`]);
    assert.notEqual(r.status, 0);
    assert.match(`${r.stdout}${r.stderr}`, /Give config\.organizationId .* or config\.workloadAccounts/);
  });
});

describe('blueprint configuration file', () => {
  const c = (patch: Record<string, unknown>) => () => parseBlueprintConfig({ ...example, ...patch });
  it('accepts the example and builds its five stacks', () => {
    const parsed = parseBlueprintConfig(example);
    assert.deepEqual(parsed.regions, ['us-east-1', 'eu-west-1']);
    assert.equal(parsed.workloads[1]?.macie, true);
    const stacks = allStacks(addBlueprint(new App(), parsed, { nag: false }));
    assert.equal(stacks.length, 5);
  });
  it('names the field that is wrong', () => {
    assert.throws(c({ regions: [] }), /config\.regions must name at least one region/);
    assert.throws(c({ workloadAccounts: ['222222222222'] }), /not both/);
    assert.throws(c({ securityAccount: 5 }), /config\.securityAccount must be a non-empty string/);
    assert.throws(c({ evidenceBucket: 'yes' }), /config\.evidenceBucket must be true or false/);
    assert.throws(c({ bucketName: 'x' }), /config\.bucketName is not a setting/);
    assert.throws(c({ workloads: [{ account: '222222222222', region: 'us-east-1', lakeKeyArn: 'arn', trail: 'all' }] }), /config\.workloads\[0\]\.trail/);
    assert.throws(c({ custodyService: { ...(example.custodyService as object), storage: 'nfs' } }), /storage must be "s3" or "data-dir"/);
    assert.throws(() => parseBlueprintConfig([]), /config must be a JSON object/);
  });
  it('refuses a workload in a region without a lake, and SCPs without an organization', () => {
    assert.throws(() => addBlueprint(new App(), parseBlueprintConfig({ ...example, regions: ['eu-west-1'] }), { nag: false }), /no lake there/);
    const noOrg = parseBlueprintConfig({ ...example, organizationId: undefined, workloadAccounts: ['222222222222'] });
    assert.throws(() => addBlueprint(new App(), noOrg, { nag: false }), /SCPs exist only in an organization/);
  });
});
