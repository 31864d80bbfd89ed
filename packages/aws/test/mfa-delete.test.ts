/**
 * MFA delete: the check that reads GetBucketVersioning output (function and CLI), and the
 * root-user runbook script. Only the root user with a real MFA device can turn MFA delete on,
 * so the script is exercised here against a stand-in `aws` command that records its calls and
 * answers as S3/STS would; the call it makes is asserted argument by argument.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkMfaDelete, MfaDeleteInputError } from '../src/mfa-delete.js';

const pkg = fileURLToPath(new URL('../../', import.meta.url));
const script = join(pkg, 'scripts', 'enable-mfa-delete.sh');
const cli = join(pkg, 'dist', 'bin', 'check-mfa-delete.js');
const BUCKET = 'custody-evidence-111111111111-eu-west-1';
const SERIAL = 'arn:aws:iam::111111111111:mfa/root-account-mfa-device';

describe('checkMfaDelete (GetBucketVersioning output)', () => {
  it('is on only when versioning and MFA delete are both Enabled', () => {
    const on = checkMfaDelete('{"Status": "Enabled", "MFADelete": "Enabled"}', BUCKET);
    assert.equal(on.ok, true);
    assert.match(on.message, /MFA delete is on for custody-evidence/);
    const off = checkMfaDelete({ Status: 'Enabled', MFADelete: 'Disabled' }, BUCKET);
    assert.deepEqual([off.ok, off.versioning, off.mfaDelete], [false, 'Enabled', 'Disabled']);
    assert.match(off.message, /enable-mfa-delete\.sh custody-evidence-111111111111-eu-west-1/);
    const plainVersioned = checkMfaDelete('{"Status": "Enabled"}');
    assert.deepEqual([plainVersioned.ok, plainVersioned.mfaDelete], [false, 'Disabled']);
  });

  it('reads a never-versioned bucket (empty answer) and a suspended one as off, and says why', () => {
    for (const input of ['', '{}', '  \n']) {
      const r = checkMfaDelete(input, BUCKET);
      assert.deepEqual([r.ok, r.versioning], [false, 'NeverEnabled']);
    }
    const s = checkMfaDelete('{"Status":"Suspended","MFADelete":"Disabled"}');
    assert.equal(s.versioning, 'Suspended');
    assert.match(s.message, /suspended/);
  });

  it('refuses what is not a GetBucketVersioning answer, with a message that says what to give', () => {
    for (const bad of ['not json', '[1]', '"Enabled"', '{"Status":"enabled"}', '{"MFADelete":"Yes"}', '{"Status":"Enabled","Rules":[]}', 'null']) {
      assert.throws(() => checkMfaDelete(bad), (e: unknown) => e instanceof MfaDeleteInputError && e.code === 'MFA_DELETE_INPUT' && /get-bucket-versioning|S3 answers|GetBucketVersioning|JSON object/.test(e.message), bad);
    }
  });
});

describe('check-mfa-delete CLI', () => {
  const run = (input: string, args: string[]) => spawnSync(process.execPath, [cli, ...args], { input, encoding: 'utf8' });
  it('exits 0 when on, 1 when off, 2 on unreadable input; --json prints the report', () => {
    const on = run('{"Status":"Enabled","MFADelete":"Enabled"}', ['--bucket', BUCKET]);
    assert.equal(on.status, 0);
    assert.match(on.stdout, /MFA delete is on/);
    const off = run('{"Status":"Enabled","MFADelete":"Disabled"}', ['--bucket', BUCKET, '--json']);
    assert.equal(off.status, 1);
    assert.deepEqual(JSON.parse(off.stdout), { bucket: BUCKET, versioning: 'Enabled', mfaDelete: 'Disabled', ok: false, message: checkMfaDelete('{"Status":"Enabled","MFADelete":"Disabled"}', BUCKET).message });
    const bad = run('<html>', ['--json']);
    assert.equal(bad.status, 2);
    assert.equal(JSON.parse(bad.stdout).error, 'MFA_DELETE_INPUT');
    assert.equal(run('{}', ['--bucket', 'Not_A_Bucket']).status, 2);
    assert.equal(run('{}', ['--frobnicate']).status, 2);
  });
});

describe('enable-mfa-delete.sh (root runbook)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-mfa-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'calls.log');
  // A stand-in for the AWS CLI: records each call and answers like STS / S3 would.
  writeFileSync(
    join(dir, 'aws'),
    `#!/usr/bin/env bash
printf '%s\\n' "$*" >> "${log}"
case "$1 $2" in
  "sts get-caller-identity") echo "$STUB_CALLER" ;;
  "s3api put-bucket-versioning") exit 0 ;;
  "s3api get-bucket-versioning")
    case "$*" in *"--query Status"*) echo "$STUB_STATUS" ;; *"--query MFADelete"*) echo "$STUB_MFA" ;; esac ;;
  *) echo "unexpected aws call: $*" >&2; exit 9 ;;
esac
`,
  );
  chmodSync(join(dir, 'aws'), 0o755);
  const run = (args: string[], env: Record<string, string>) => {
    writeFileSync(log, '');
    const r = spawnSync('bash', [script, ...args], { encoding: 'utf8', env: { PATH: `${dir}:${process.env.PATH ?? ''}`, ...env } });
    return { ...r, calls: readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) };
  };
  const root = { STUB_CALLER: 'arn:aws:iam::111111111111:root', STUB_STATUS: 'Enabled', STUB_MFA: 'Enabled' };

  it('is executable', () => {
    assert.ok(statSync(script).mode & 0o100);
  });

  it('as root: enables versioning with MFA delete using the device and code, then checks it is on', () => {
    const r = run([BUCKET, SERIAL, '123456'], root);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.calls, [
      'sts get-caller-identity --query Arn --output text',
      `s3api put-bucket-versioning --bucket ${BUCKET} --versioning-configuration Status=Enabled,MFADelete=Enabled --mfa ${SERIAL} 123456`,
      `s3api get-bucket-versioning --bucket ${BUCKET} --query Status --output text`,
      `s3api get-bucket-versioning --bucket ${BUCKET} --query MFADelete --output text`,
    ]);
    assert.match(r.stdout, /MFA delete is on for custody-evidence/);
  });

  it('reports failure when S3 still says MFA delete is off', () => {
    const r = run([BUCKET, SERIAL, '123456'], { ...root, STUB_MFA: 'Disabled' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /still off/);
  });

  it('refuses anyone but the root user, before changing anything', () => {
    const r = run([BUCKET, SERIAL, '123456'], { ...root, STUB_CALLER: 'arn:aws:sts::111111111111:assumed-role/custody-security-admin-eu-west-1/alice' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /not the root user/);
    assert.ok(!r.calls.some((c) => c.includes('put-bucket-versioning')));
  });

  it('refuses a device of another account, a bad code, a bad bucket name or missing arguments, without calling S3', () => {
    for (const [args, msg] of [
      [[BUCKET, 'arn:aws:iam::222222222222:mfa/root-account-mfa-device', '123456'], /another account/],
      [[BUCKET, SERIAL, '12345'], /6 digits/],
      [[BUCKET, 'GAHT12345678', '123456'], /not an MFA device ARN/],
      [['Bad_Bucket', SERIAL, '123456'], /not an S3 bucket name/],
      [[BUCKET, SERIAL], /Usage/],
    ] as const) {
      const r = run([...args], root);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.ok(!r.calls.some((c) => c.startsWith('s3api')), 'no S3 call');
    }
  });

  it('--dry-run prints the call and makes none', () => {
    const r = run([BUCKET, SERIAL, '123456', '--dry-run'], root);
    assert.equal(r.status, 0, r.stderr);
    // Shell-quoted (printf %q), so the line can be pasted as it is.
    assert.ok(r.stdout.includes(`would run: aws s3api put-bucket-versioning --bucket ${BUCKET} --versioning-configuration Status=Enabled\\,MFADelete=Enabled --mfa ${SERIAL}\\ 123456\n`), r.stdout);
    assert.deepEqual(r.calls, ['sts get-caller-identity --query Arn --output text']);
  });
});
