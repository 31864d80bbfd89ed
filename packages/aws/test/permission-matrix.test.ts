/**
 * The permission matrix of issue 8: for each principal × action, the answer AWS would give,
 * computed offline by @cloud-copilot/iam-simulate from the synthesized identity, boundary,
 * bucket, key, trust and SCP policies — and asserted against the answer we mean.
 *
 * The expectations below are written by hand (what the blueprint promises); the simulation is
 * the check. The rendered tables are docs/AWS.md's "Permission matrix" section; run with
 * CUSTODY_UPDATE_DOCS=1 to rewrite that section after an intended change.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Stack } from 'aws-cdk-lib';
import { ResolvedTemplate } from './support/cfn.js';
import { ADMINISTRATOR_ACCESS, anonymousPrincipal, decide, DeployedPolicies, scpLevels, settleEncryptionContext, type Caller, type Decision, type Doc, type Request } from './support/matrix.js';
import { ADMIN, buildBlueprint, DEPLOY, MGMT, ORG, OTHER, REGION, SEC, synthTemplates, TEST_EXTERNAL_ID, WORKLOAD, type Mode } from './support/stacks.js';
import { securityAccountNames, workloadAccountNames } from '../src/names.js';

const n = securityAccountNames(SEC, REGION);
const wn = workloadAccountNames(REGION);
const KEY_ID = '00000000-0000-4000-8000-000000000001';
const LAKE_KEY = `arn:aws:kms:${REGION}:${SEC}:key/${KEY_ID}`;
const LAKE = `arn:aws:s3:::${n.lakeBucket}`;
const role = (account: string, name: string) => `arn:aws:iam::${account}:role/${name}`;
const session = (account: string, name: string, s = 'session') => `arn:aws:sts::${account}:assumed-role/${name}/${s}`;
const AUDITOR_BOUNDARY = `arn:aws:iam::${SEC}:policy/${n.auditorBoundary}`;
const SCP_NAME = 'custody-security-account-guardrails';
const WORKLOAD_SCP_NAME = 'custody-workload-account-guardrails';

interface World {
  mode: Mode;
  policies: DeployedPolicies;
  callers: Caller[];
  columns: Column[];
}

interface Column {
  key: string;
  label: string;
  request: (c: Caller) => Request;
}

async function buildWorld(mode: Mode): Promise<World> {
  const b = buildBlueprint({ mode, lakeKeyArn: LAKE_KEY });
  const keyLogicalId = Stack.of(b.security).getLogicalId(b.security.lake.keyResource);
  const templates = synthTemplates(b);
  const params = { WriterExternalId: TEST_EXTERNAL_ID, AlarmEmail: 'security@example.org' };
  const sec = new ResolvedTemplate(templates.Security!, { account: SEC, region: REGION, parameters: params, physicalIds: { [keyLogicalId]: KEY_ID } });
  const wl = new ResolvedTemplate(templates.Workload!, { account: WORKLOAD, region: REGION });
  const resolved = [sec, wl];
  if (templates.Guardrails) resolved.push(new ResolvedTemplate(templates.Guardrails, { account: MGMT, region: REGION }));
  const policies = new DeployedPolicies(...resolved);
  assert.equal(sec.output('LakeKeyArn'), LAKE_KEY, 'the workload stack is given the key the security stack creates');

  const secScps = mode === 'organization' ? scpLevels(SEC, [{ name: SCP_NAME, policy: policies.scp(SCP_NAME) }]) : [];
  const wlScps = mode === 'organization' ? scpLevels(WORKLOAD, [{ name: WORKLOAD_SCP_NAME, policy: policies.scp(WORKLOAD_SCP_NAME) }]) : [];
  const org: Record<string, string> = mode === 'organization' ? { 'aws:PrincipalOrgID': ORG } : {};
  const tls = { 'aws:SecureTransport': 'true' };
  const mfa = { 'aws:MultiFactorAuthPresent': 'true', 'aws:MultiFactorAuthAge': '300' };
  const asRole = (account: string, name: string, extra: Record<string, string> = {}) => ({
    ...tls,
    ...org,
    'aws:PrincipalArn': role(account, name),
    'aws:PrincipalAccount': account,
    'aws:PrincipalType': 'AssumedRole',
    ...extra,
  });
  const blueprintRole = (key: string, label: string, assumes: string, name: string, extra: Record<string, string> = {}): Caller => ({
    key,
    label,
    assumes,
    principal: session(SEC, name),
    identity: policies.roleIdentity(name),
    boundary: policies.roleBoundary(name),
    scps: secScps,
    context: asRole(SEC, name, extra),
  });
  const callers: Caller[] = [
    blueprintRole('writer', 'writer role', 'a producer session (assumed with the external id, no MFA)', n.writerRole),
    blueprintRole('auditor', 'auditor role', 'assumed with MFA', n.auditorRole, mfa),
    {
      key: 'auditor-user',
      label: 'auditor user (Auditor group)',
      assumes: 'an IAM user on the auditor path, in the Auditor group, with the auditor boundary, signed in with MFA',
      principal: `arn:aws:iam::${SEC}:user${n.auditorUserPath}alice`,
      identity: policies.groupIdentity(n.auditorGroup),
      boundary: [policies.managedPolicy(AUDITOR_BOUNDARY)],
      scps: secScps,
      context: { ...tls, ...org, ...mfa, 'aws:PrincipalArn': `arn:aws:iam::${SEC}:user${n.auditorUserPath}alice`, 'aws:PrincipalAccount': SEC, 'aws:PrincipalType': 'User', 'aws:username': 'alice' },
    },
    blueprintRole('security-admin', 'security admin', 'assumed from the admin account with MFA', n.securityAdminRole, mfa),
    blueprintRole('deployer', 'deployer', 'assumed from the deployment account (a pipeline, no MFA)', n.deployerRole),
    blueprintRole('service', 'Custody vault service', 'the ECS task role of the vault', n.serviceRole),
    {
      key: 'account-admin',
      label: 'any other admin in the security account',
      assumes: 'a role the blueprint did not create (e.g. OrganizationAccountAccessRole) with AdministratorAccess and MFA, no boundary',
      principal: session(SEC, 'OrganizationAccountAccessRole'),
      identity: [ADMINISTRATOR_ACCESS],
      boundary: [],
      scps: secScps,
      context: asRole(SEC, 'OrganizationAccountAccessRole', mfa),
    },
    {
      key: 'workload-admin',
      label: 'workload-account admin',
      assumes: 'AdministratorAccess in a workload account, with MFA, calling into the security account',
      principal: session(WORKLOAD, 'Admin'),
      identity: [ADMINISTRATOR_ACCESS],
      boundary: [],
      scps: wlScps,
      context: asRole(WORKLOAD, 'Admin', mfa),
    },
    { key: 'anonymous', label: 'anonymous caller', assumes: 'an unsigned request over TLS', principal: anonymousPrincipal, identity: [], boundary: [], scps: [], context: { ...tls } },
  ];

  const bucketPolicy = policies.bucketPolicy(n.lakeBucket);
  const keyPolicy = policies.keyPolicy(LAKE_KEY);
  const ownObject = (c: Caller) => `${LAKE}/${c.key === 'service' ? 'custody' : 'writer'}/2026/01/02/batch-0001.json.gz`;
  const object = `${LAKE}/writer/2026/01/02/batch-0001.json.gz`;
  const principalAccount = (c: Caller) => (typeof c.context['aws:PrincipalAccount'] === 'string' ? (c.context['aws:PrincipalAccount'] as string) : SEC);
  const viaS3 = (c: Caller) => ({ 'kms:ViaService': `s3.${REGION}.amazonaws.com`, 'kms:CallerAccount': principalAccount(c), 'kms:EncryptionContext:aws:s3:arn': LAKE });
  const s3 = (action: string, resource: string, context: Record<string, string> = {}): Request => ({ action, resource, account: SEC, resourcePolicy: bucketPolicy, context });
  const kms = (action: string, context: Record<string, string> = {}): Request => ({ action, resource: LAKE_KEY, account: SEC, resourcePolicy: keyPolicy, context });
  const auditorUser = `arn:aws:iam::${SEC}:user${n.auditorUserPath}new-auditor`;
  const columns: Column[] = [
    { key: 'put', label: 's3:PutObject', request: (c) => s3('s3:PutObject', ownObject(c)) },
    { key: 'get', label: 's3:GetObject', request: () => s3('s3:GetObject', object) },
    { key: 'list', label: 's3:ListBucket', request: () => s3('s3:ListBucket', LAKE) },
    { key: 'delete', label: 's3:DeleteObject', request: () => s3('s3:DeleteObject', object) },
    { key: 'delete-version', label: 's3:DeleteObjectVersion', request: () => s3('s3:DeleteObjectVersion', object) },
    { key: 'bucket-policy', label: 's3:PutBucketPolicy', request: () => s3('s3:PutBucketPolicy', LAKE) },
    {
      key: 'retention',
      label: 's3:PutObjectRetention',
      request: (c) => s3('s3:PutObjectRetention', ownObject(c), { 's3:object-lock-mode': 'COMPLIANCE', 's3:object-lock-remaining-retention-days': '400' }),
    },
    { key: 'bypass', label: 's3:BypassGovernanceRetention', request: () => s3('s3:BypassGovernanceRetention', object) },
    { key: 'lifecycle', label: 's3:PutLifecycleConfiguration', request: () => s3('s3:PutLifecycleConfiguration', LAKE) },
    { key: 'decrypt', label: 'kms:Decrypt (through S3)', request: (c) => kms('kms:Decrypt', viaS3(c)) },
    { key: 'encrypt', label: 'kms:Encrypt', request: (c) => kms('kms:Encrypt', { 'kms:CallerAccount': principalAccount(c) }) },
    { key: 'data-key', label: 'kms:GenerateDataKey (through S3)', request: (c) => kms('kms:GenerateDataKey', viaS3(c)) },
    { key: 'schedule-deletion', label: 'kms:ScheduleKeyDeletion', request: (c) => kms('kms:ScheduleKeyDeletion', { 'kms:CallerAccount': principalAccount(c) }) },
    { key: 'key-policy', label: 'kms:PutKeyPolicy', request: (c) => kms('kms:PutKeyPolicy', { 'kms:CallerAccount': principalAccount(c) }) },
    { key: 'create-user', label: 'iam:CreateUser', request: () => ({ action: 'iam:CreateUser', resource: auditorUser, account: SEC, context: { 'iam:PermissionsBoundary': AUDITOR_BOUNDARY } }) },
    { key: 'access-key', label: 'iam:CreateAccessKey', request: () => ({ action: 'iam:CreateAccessKey', resource: auditorUser, account: SEC }) },
    { key: 'stop-logging', label: 'cloudtrail:StopLogging', request: () => ({ action: 'cloudtrail:StopLogging', resource: `arn:aws:cloudtrail:${REGION}:${SEC}:trail/${n.trail}`, account: SEC }) },
  ];
  return { mode, policies, callers, columns };
}

/** What the blueprint promises: the cells that are allowed; every other cell is denied. */
const ALLOWED: Record<string, string[]> = {
  writer: ['put', 'data-key'],
  auditor: ['get', 'list', 'decrypt'],
  'auditor-user': ['get', 'list', 'decrypt'],
  'security-admin': ['get', 'list', 'decrypt', 'key-policy', 'create-user'],
  deployer: [],
  service: ['put', 'get', 'list', 'retention', 'decrypt', 'data-key'],
  // Reading is open to admins inside the account ("read-only for everyone inside it"); nothing that writes, deletes or alters is.
  'account-admin': ['get', 'list', 'decrypt', 'encrypt', 'data-key'],
  'workload-admin': [],
  anonymous: [],
};
/** Without an organization there is no SCP: only a role the blueprint did not create gains something — and nothing on the lake or its key. */
const ALLOWED_WITHOUT_ORGANIZATION: Record<string, string[]> = { ...ALLOWED, 'account-admin': [...(ALLOWED['account-admin'] ?? []), 'create-user', 'access-key', 'stop-logging'] };
/** The destructive columns: every principal must be denied these by the bucket or key policy itself, whatever its own policies say. */
const RESOURCE_POLICY_DENIES = ['delete', 'delete-version', 'bucket-policy', 'bypass', 'lifecycle', 'schedule-deletion'];

type Grid = Map<string, Map<string, Decision>>;

async function computeGrid(w: World): Promise<Grid> {
  const grid: Grid = new Map();
  for (const c of w.callers) {
    const row = new Map<string, Decision>();
    for (const col of w.columns) row.set(col.key, await decide(c, col.request(c)));
    grid.set(c.key, row);
  }
  return grid;
}

function mismatches(w: World, grid: Grid, allowed: Record<string, string[]>): string[] {
  const out: string[] = [];
  for (const c of w.callers) {
    for (const col of w.columns) {
      const want = (allowed[c.key] ?? []).includes(col.key) ? 'allowed' : 'denied';
      const got = grid.get(c.key)?.get(col.key);
      if (got?.outcome !== want) out.push(`${c.label} × ${col.label}: expected ${want}, simulated ${got?.raw} ${got?.explicitDenies.join(' ')}`);
    }
  }
  return out;
}

interface Check {
  who: string;
  what: string;
  expect: 'allowed' | 'denied';
  caller: Caller;
  request: Request;
}

function serviceCaller(service: string, sourceAccount: string, orgId: string | null): Caller {
  return {
    key: service,
    label: service,
    assumes: '',
    principal: service,
    identity: [],
    boundary: [],
    scps: [],
    context: { 'aws:SecureTransport': 'true', 'aws:PrincipalServiceName': service, 'aws:SourceAccount': sourceAccount, ...(orgId ? { 'aws:SourceOrgID': orgId } : {}) },
  };
}

function deliveryChecks(w: World): Check[] {
  const bp = w.policies.bucketPolicy(n.lakeBucket);
  const kp = w.policies.keyPolicy(LAKE_KEY);
  const put = (key: string, context: Record<string, string> = {}): Request => ({ action: 's3:PutObject', resource: `${LAKE}/${key}`, account: SEC, resourcePolicy: bp, context });
  const acl = { 's3:x-amz-acl': 'bucket-owner-full-control' };
  const kmsHeaders = { 's3:x-amz-server-side-encryption': 'aws:kms', 's3:x-amz-server-side-encryption-aws-kms-key-id': LAKE_KEY };
  const sse = { 's3:x-amz-server-side-encryption': 'AES256' };
  const org = w.mode === 'organization' ? ORG : null;
  const ct = serviceCaller('cloudtrail.amazonaws.com', WORKLOAD, org);
  const ctOutside = serviceCaller('cloudtrail.amazonaws.com', OTHER, org ? 'o-someoneelse1' : null);
  const trailPath = `cloudtrail/AWSLogs/${ORG}/${WORKLOAD}`;
  const fhRole = wn.firehoseRole;
  const firehose: Caller = {
    key: 'firehose',
    label: 'firehose',
    assumes: '',
    principal: session(WORKLOAD, fhRole),
    identity: w.policies.roleIdentity(fhRole),
    boundary: [],
    scps: [],
    context: { 'aws:SecureTransport': 'true', 'aws:PrincipalArn': role(WORKLOAD, fhRole), 'aws:PrincipalAccount': WORKLOAD, 'aws:PrincipalType': 'AssumedRole', ...(org ? { 'aws:PrincipalOrgID': org } : {}) },
  };
  const writerCaller = w.callers.find((c) => c.key === 'writer') as Caller;
  const writerPut = (key: string, context: Record<string, string>): Request => put(key, context);
  return [
    { who: 'CloudTrail', what: 'log file under cloudtrail/AWSLogs/, SSE-KMS with the lake key', expect: 'allowed', caller: ct, request: put(`${trailPath}/CloudTrail/${REGION}/2026/01/02/${WORKLOAD}_CloudTrail_${REGION}_20260102T0000Z_abc.json.gz`, { ...acl, ...kmsHeaders }) },
    { who: 'CloudTrail', what: 'digest file under …/CloudTrail-Digest/, SSE-S3 (as CloudTrail sends it)', expect: 'allowed', caller: ct, request: put(`${trailPath}/CloudTrail-Digest/${REGION}/2026/01/02/${WORKLOAD}_CloudTrail-Digest_${REGION}_t_${REGION}_20260102T000000Z.json.gz`, { ...acl, ...sse }) },
    { who: 'CloudTrail', what: 'log file (not a digest) with SSE-S3', expect: 'denied', caller: ct, request: put(`${trailPath}/CloudTrail/${REGION}/2026/01/02/x.json.gz`, { ...acl, ...sse }) },
    { who: 'CloudTrail', what: 'outside its prefix (writer/)', expect: 'denied', caller: ct, request: put('writer/x.json.gz', { ...acl, ...kmsHeaders }) },
    { who: 'CloudTrail', what: `for a trail outside the ${org ? 'organization' : 'listed accounts'}`, expect: 'denied', caller: ctOutside, request: put(`cloudtrail/AWSLogs/${OTHER}/CloudTrail/${REGION}/x.json.gz`, { ...acl, ...kmsHeaders }) },
    { who: 'AWS Config', what: 'under config/AWSLogs/', expect: 'allowed', caller: serviceCaller('config.amazonaws.com', WORKLOAD, org), request: put(`config/AWSLogs/${WORKLOAD}/Config/${REGION}/2026/1/2/ConfigHistory/x.json.gz`, { ...acl, ...kmsHeaders }) },
    { who: 'AWS Config', what: 'under cloudtrail/ (another service\'s prefix)', expect: 'denied', caller: serviceCaller('config.amazonaws.com', WORKLOAD, org), request: put(`cloudtrail/AWSLogs/${WORKLOAD}/x.json.gz`, acl) },
    { who: 'VPC Flow Logs (delivery.logs)', what: 'under vpcflowlogs/AWSLogs/', expect: 'allowed', caller: serviceCaller('delivery.logs.amazonaws.com', WORKLOAD, org), request: put(`vpcflowlogs/AWSLogs/${WORKLOAD}/vpcflowlogs/${REGION}/2026/01/02/x.log.gz`, acl) },
    { who: 'GuardDuty', what: 'under guardduty/', expect: 'allowed', caller: serviceCaller('guardduty.amazonaws.com', WORKLOAD, org), request: put(`guardduty/AWSLogs/${WORKLOAD}/GuardDuty/${REGION}/2026/01/02/x.jsonl.gz`, kmsHeaders) },
    { who: 'Macie', what: 'under macie/', expect: 'allowed', caller: serviceCaller('macie.amazonaws.com', WORKLOAD, org), request: put(`macie/AWSLogs/${WORKLOAD}/Macie/${REGION}/x.jsonl.gz`, kmsHeaders) },
    { who: 'Macie', what: 'under guardduty/', expect: 'denied', caller: serviceCaller('macie.amazonaws.com', WORKLOAD, org), request: put(`guardduty/x.jsonl.gz`, kmsHeaders) },
    { who: `Firehose role of ${WORKLOAD}`, what: `under firehose/${WORKLOAD}/`, expect: 'allowed', caller: firehose, request: put(`firehose/${WORKLOAD}/cwlogs/2026/01/02/x`, kmsHeaders) },
    { who: `Firehose role of ${WORKLOAD}`, what: `under firehose/${MGMT}/ (another account's prefix)`, expect: 'denied', caller: firehose, request: put(`firehose/${MGMT}/cwlogs/x`, kmsHeaders) },
    {
      who: `Firehose role of ${WORKLOAD}`,
      what: 'kms:GenerateDataKey on the lake key through S3',
      expect: 'allowed',
      caller: firehose,
      request: { action: 'kms:GenerateDataKey', resource: LAKE_KEY, account: SEC, resourcePolicy: kp, context: { 'kms:ViaService': `s3.${REGION}.amazonaws.com`, 'kms:CallerAccount': WORKLOAD, 'kms:EncryptionContext:aws:s3:arn': LAKE } },
    },
    {
      who: `Firehose role of ${WORKLOAD}`,
      what: 'kms:GenerateDataKey through S3 for another bucket',
      expect: 'denied',
      caller: firehose,
      request: { action: 'kms:GenerateDataKey', resource: LAKE_KEY, account: SEC, resourcePolicy: kp, context: { 'kms:ViaService': `s3.${REGION}.amazonaws.com`, 'kms:CallerAccount': WORKLOAD, 'kms:EncryptionContext:aws:s3:arn': `arn:aws:s3:::some-bucket-of-${WORKLOAD}` } },
    },
    { who: 'writer role', what: 'upload with SSE-S3 instead of the lake key', expect: 'denied', caller: writerCaller, request: writerPut('writer/x.json', sse) },
    { who: 'writer role', what: 'upload naming another KMS key', expect: 'denied', caller: writerCaller, request: writerPut('writer/x.json', { 's3:x-amz-server-side-encryption': 'aws:kms', 's3:x-amz-server-side-encryption-aws-kms-key-id': `arn:aws:kms:${REGION}:${OTHER}:key/other` }) },
    { who: 'writer role', what: 'upload with a GOVERNANCE lock', expect: 'denied', caller: writerCaller, request: writerPut('writer/x.json', { 's3:object-lock-mode': 'GOVERNANCE', 's3:object-lock-remaining-retention-days': '400' }) },
    { who: 'writer role', what: 'upload locked for 30 days (less than the retention)', expect: 'denied', caller: writerCaller, request: writerPut('writer/x.json', { 's3:object-lock-mode': 'COMPLIANCE', 's3:object-lock-remaining-retention-days': '30' }) },
    { who: 'writer role', what: 'upload without TLS', expect: 'denied', caller: { ...writerCaller, context: { ...writerCaller.context, 'aws:SecureTransport': 'false' } }, request: writerPut('writer/x.json', {}) },
    { who: 'writer role', what: 'upload under cloudtrail/', expect: 'denied', caller: writerCaller, request: writerPut(`cloudtrail/AWSLogs/${WORKLOAD}/x.json.gz`, {}) },
  ];
}

function trustChecks(w: World): Check[] {
  const org: Record<string, string> = w.mode === 'organization' ? { 'aws:PrincipalOrgID': ORG } : {};
  const assumeAny: Doc = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' }] };
  const outsider = (account: string, name: string, ctx: Record<string, string>, identity = [{ name: 'assume', policy: assumeAny }]): Caller => ({
    key: name,
    label: name,
    assumes: '',
    principal: session(account, name),
    identity,
    boundary: [],
    scps: [],
    context: { 'aws:SecureTransport': 'true', 'aws:PrincipalArn': role(account, name), 'aws:PrincipalAccount': account, 'aws:PrincipalType': 'AssumedRole', ...ctx },
  });
  const assume = (roleName: string, context: Record<string, string> = {}): Request => ({ action: 'sts:AssumeRole', resource: role(SEC, roleName), account: SEC, resourcePolicy: w.policies.trust(roleName), context });
  const ext = { 'sts:ExternalId': TEST_EXTERNAL_ID };
  const producer = outsider(WORKLOAD, wn.producerRole, org, w.policies.roleIdentity(wn.producerRole));
  const mfa = { 'aws:MultiFactorAuthPresent': 'true', 'aws:MultiFactorAuthAge': '300' };
  const auditorUser = w.callers.find((c) => c.key === 'auditor-user') as Caller;
  return [
    { who: `producer role of ${WORKLOAD}`, what: 'becomes the writer, with the external id', expect: 'allowed', caller: producer, request: assume(n.writerRole, ext) },
    { who: `producer role of ${WORKLOAD}`, what: 'becomes the writer, without the external id', expect: 'denied', caller: producer, request: assume(n.writerRole) },
    { who: `producer role of ${WORKLOAD}`, what: 'becomes the auditor', expect: 'denied', caller: producer, request: assume(n.auditorRole) },
    {
      who: `producer role of ${OTHER} (${w.mode === 'organization' ? 'outside the organization' : 'not a listed account'})`,
      what: 'becomes the writer, with the external id',
      expect: 'denied',
      caller: outsider(OTHER, wn.producerRole, w.mode === 'organization' ? { 'aws:PrincipalOrgID': 'o-someoneelse1' } : {}),
      request: assume(n.writerRole, ext),
    },
    { who: `admin of ${WORKLOAD}`, what: 'becomes the writer, with the external id', expect: 'denied', caller: outsider(WORKLOAD, 'Admin', { ...org, ...mfa }), request: assume(n.writerRole, ext) },
    { who: `admin account ${ADMIN}`, what: 'becomes security admin, with MFA', expect: 'allowed', caller: outsider(ADMIN, 'SecurityTeam', mfa), request: assume(n.securityAdminRole) },
    { who: `admin account ${ADMIN}`, what: 'becomes security admin, without MFA', expect: 'denied', caller: outsider(ADMIN, 'SecurityTeam', {}), request: assume(n.securityAdminRole) },
    { who: `admin account ${ADMIN}`, what: 'becomes security admin, MFA older than an hour', expect: 'denied', caller: outsider(ADMIN, 'SecurityTeam', { 'aws:MultiFactorAuthPresent': 'true', 'aws:MultiFactorAuthAge': '7200' }), request: assume(n.securityAdminRole) },
    { who: `deployment account ${DEPLOY}`, what: 'becomes security admin, with MFA', expect: 'denied', caller: outsider(DEPLOY, 'Pipeline', mfa), request: assume(n.securityAdminRole) },
    { who: `deployment account ${DEPLOY}`, what: 'becomes the deployer', expect: 'allowed', caller: outsider(DEPLOY, 'Pipeline', {}), request: assume(n.deployerRole) },
    { who: `admin account ${ADMIN}`, what: 'becomes the deployer', expect: 'denied', caller: outsider(ADMIN, 'SecurityTeam', mfa), request: assume(n.deployerRole) },
    { who: 'auditor user', what: 'becomes the auditor role, with MFA', expect: 'allowed', caller: auditorUser, request: assume(n.auditorRole) },
    { who: 'auditor user', what: 'becomes the auditor role, without MFA', expect: 'denied', caller: { ...auditorUser, context: { ...auditorUser.context, 'aws:MultiFactorAuthPresent': 'false' } }, request: assume(n.auditorRole) },
    { who: `auditor account ${OTHER}`, what: 'becomes the auditor role, with MFA', expect: 'allowed', caller: outsider(OTHER, 'Auditor', mfa), request: assume(n.auditorRole) },
    { who: `admin of ${WORKLOAD}`, what: 'becomes the auditor role, with MFA', expect: 'denied', caller: outsider(WORKLOAD, 'Admin', { ...org, ...mfa }), request: assume(n.auditorRole) },
    { who: `admin of ${WORKLOAD}`, what: 'becomes the Custody vault service role', expect: 'denied', caller: outsider(WORKLOAD, 'Admin', { ...org, ...mfa }), request: assume(n.serviceRole) },
  ];
}

async function runChecks(checks: Check[]): Promise<Array<Check & { got: Decision }>> {
  const out = [];
  for (const c of checks) out.push({ ...c, got: await decide(c.caller, c.request) });
  return out;
}

// ---------- rendering (docs/AWS.md) ----------

const LAYER_CODE: Record<string, string> = { 'resource policy': 'R', SCP: 'S', 'permissions boundary': 'B', 'identity policy': 'I' };

function cell(d: Decision): string {
  if (d.outcome === 'allowed') return '**yes**';
  const layers = [...new Set(d.explicitDenies.map((x) => LAYER_CODE[x.split(':')[0] as string] ?? '?'))].sort((a, b) => 'RSBI'.indexOf(a) - 'RSBI'.indexOf(b));
  return layers.length ? `no ${layers.join(' ')}` : 'no';
}

function renderMatrix(w: World, grid: Grid): string {
  const labels = w.columns.map((c) => (c.label.endsWith(' (through S3)') ? `\`${c.label.replace(' (through S3)', '')}\` via S3` : `\`${c.label}\``));
  const lines = [`| principal | ${labels.join(' | ')} |`, `|---|${w.columns.map(() => '---').join('|')}|`];
  for (const c of w.callers) lines.push(`| ${c.label} | ${w.columns.map((col) => cell(grid.get(c.key)?.get(col.key) as Decision)).join(' | ')} |`);
  return lines.join('\n');
}

function renderDeniedBy(w: World, grid: Grid): string {
  const lines: string[] = [];
  for (const col of w.columns) {
    const by = new Map<string, Set<string>>();
    for (const c of w.callers) {
      for (const d of grid.get(c.key)?.get(col.key)?.explicitDenies ?? []) {
        const [layer, sid] = d.split(':') as [string, string];
        if (!by.has(layer)) by.set(layer, new Set());
        by.get(layer)?.add(sid);
      }
    }
    if (by.size === 0) continue;
    const parts = [...by.entries()].sort(([a], [b]) => 'RSBI'.indexOf(LAYER_CODE[a] ?? '?') - 'RSBI'.indexOf(LAYER_CODE[b] ?? '?')).map(([layer, sids]) => `${layer}: ${[...sids].sort().map((s) => `\`${s}\``).join(', ')}`);
    lines.push(`- \`${col.label}\` — ${parts.join('; ')}`);
  }
  return lines.join('\n');
}

function renderChecks(rows: Array<Check & { got: Decision }>): string {
  return ['| who | what | answer |', '|---|---|---|', ...rows.map((r) => `| ${r.who} | ${r.what} | ${r.got.outcome === 'allowed' ? '**allowed**' : 'denied'} |`)].join('\n');
}

function renderAssumptions(w: World): string {
  return w.callers.map((c) => `- **${c.label}**: ${c.assumes}.`).join('\n');
}

const DOCS = fileURLToPath(new URL('../../../../docs/AWS.md', import.meta.url));
const START = '<!-- permission-matrix:start (generated by packages/aws/test/permission-matrix.test.ts; CUSTODY_UPDATE_DOCS=1 rewrites it) -->';
const END = '<!-- permission-matrix:end -->';

describe('permission matrix (iam-simulate over the synthesized policies)', { timeout: 120_000 }, () => {
  let org: World;
  let orgGrid: Grid;
  let accounts: World;
  let accountsGrid: Grid;
  let delivery: Array<Check & { got: Decision }>;
  let trust: Array<Check & { got: Decision }>;

  before(async () => {
    org = await buildWorld('organization');
    orgGrid = await computeGrid(org);
    accounts = await buildWorld('accounts');
    accountsGrid = await computeGrid(accounts);
    delivery = await runChecks(deliveryChecks(org));
    trust = await runChecks(trustChecks(org));
  });

  it('gives every principal × action the answer the blueprint promises (organization with SCPs)', () => {
    assert.deepEqual(mismatches(org, orgGrid, ALLOWED), []);
  });

  it('gives the same answers to every blueprint principal without an organization (the permissions boundary alone holds)', () => {
    assert.deepEqual(mismatches(accounts, accountsGrid, ALLOWED_WITHOUT_ORGANIZATION), []);
  });

  it('denies deletes, policy, lifecycle, bypass and key deletion in the bucket or key policy itself, for every principal', () => {
    for (const g of [orgGrid, accountsGrid]) {
      for (const [who, row] of g) {
        for (const col of RESOURCE_POLICY_DENIES) {
          const d = row.get(col) as Decision;
          if (who === 'anonymous' && d.outcome === 'denied') continue; // unsigned calls never get this far; still denied
          assert.ok(d.explicitDenies.some((x) => x.startsWith('resource policy:')), `${who} × ${col} must be denied by the resource policy, got ${d.raw} ${d.explicitDenies.join(' ')}`);
        }
      }
    }
  });

  it('lets each delivery service write only under its own prefix, with CloudTrail digests as SSE-S3 and everything else with the lake key', () => {
    const wrong = delivery.filter((r) => r.got.outcome !== r.expect).map((r) => `${r.who} ${r.what}: expected ${r.expect}, simulated ${r.got.raw} ${r.got.explicitDenies.join(' ')}`);
    assert.deepEqual(wrong, []);
  });

  it('lets each role be assumed only from where it should (external id, MFA, the admin and deployment accounts)', () => {
    const wrong = trust.filter((r) => r.got.outcome !== r.expect).map((r) => `${r.who} ${r.what}: expected ${r.expect}, simulated ${r.got.raw} ${r.got.explicitDenies.join(' ')}`);
    assert.deepEqual(wrong, []);
  });

  it('lets the vault PUT its partial tiles and bundles as `custody serve --partial-lock` sends them: none (default) and full allowed, short denied', async () => {
    // The headers S3LogStore.lockFor + S3ObjectStore.putImmutable send (packages/vault/src/storage/s3/):
    // no lock headers for `none` (the bucket's default retention, LakeRetentionDays, applies),
    // COMPLIANCE until the log's retention for `full` (custody serve --retention-days, at least
    // LakeRetentionDays), COMPLIANCE for 1 day for `short`. No SSE headers: the bucket default (the lake key).
    const service = org.callers.find((c) => c.key === 'service') as Caller;
    const put = (key: string, context: Record<string, string>): Request => ({ action: 's3:PutObject', resource: `${LAKE}/custody/local/${key}`, account: SEC, resourcePolicy: org.policies.bucketPolicy(n.lakeBucket), context });
    const full = { 's3:object-lock-mode': 'COMPLIANCE', 's3:object-lock-remaining-retention-days': '365' };
    const cases: Array<[string, Request, 'allowed' | 'denied']> = [
      ['partial tile, --partial-lock none', put('tile/0/000.p/7', {}), 'allowed'],
      ['partial bundle, --partial-lock none', put('tile/entries/000.p/7', {}), 'allowed'],
      ['partial bundle, --partial-lock full', put('tile/entries/000.p/7', full), 'allowed'],
      ['full tile (the log retention)', put('tile/0/000', full), 'allowed'],
      ['partial bundle, --partial-lock short (1 day)', put('tile/entries/000.p/7', { 's3:object-lock-mode': 'COMPLIANCE', 's3:object-lock-remaining-retention-days': '1' }), 'denied'],
      ['full tile with --retention-days 30 (shorter than LakeRetentionDays)', put('tile/0/000', { 's3:object-lock-mode': 'COMPLIANCE', 's3:object-lock-remaining-retention-days': '30' }), 'denied'],
    ];
    const wrong: string[] = [];
    for (const [what, req, want] of cases) {
      const d = await decide(service, req);
      if (d.outcome !== want) wrong.push(`${what}: expected ${want}, simulated ${d.raw} ${d.explicitDenies.join(' ')}`);
    }
    assert.deepEqual(wrong, []);
  });

  it('settles kms:EncryptionContext conditions (which iam-simulate ignores) without ever widening a policy', () => {
    const doc: Doc = {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'A', Effect: 'Allow', Action: 'kms:Decrypt', Resource: '*', Condition: { StringLike: { 'kms:EncryptionContext:aws:s3:arn': ['arn:aws:s3:::lake', 'arn:aws:s3:::lake/firehose/*'] }, StringEquals: { 'kms:ViaService': 's3.us-east-1.amazonaws.com' } } },
        { Sid: 'B', Effect: 'Allow', Action: 'kms:Decrypt', Resource: '*' },
      ],
    };
    const ok = settleEncryptionContext(doc, { 'kms:EncryptionContext:aws:s3:arn': 'arn:aws:s3:::lake/firehose/1/x' });
    assert.deepEqual(ok.Statement[0]?.Condition, { StringEquals: { 'kms:ViaService': 's3.us-east-1.amazonaws.com' } });
    assert.deepEqual(settleEncryptionContext(doc, { 'kms:EncryptionContext:aws:s3:arn': 'arn:aws:s3:::lakeX' }).Statement.map((x) => x.Sid), ['B']);
    assert.deepEqual(settleEncryptionContext(doc, {}).Statement.map((x) => x.Sid), ['B']);
    const deny: Doc = { Version: '2012-10-17', Statement: [{ Effect: 'Deny', Action: '*', Resource: '*', Condition: { StringNotLike: { 'kms:EncryptionContext:k': 'v' } } }] };
    assert.throws(() => settleEncryptionContext(deny, {}), /Allow statements only/);
  });

  it('is the matrix docs/AWS.md shows', () => {
    const diff = [...org.callers].flatMap((c) => accounts.columns.filter((col) => orgGrid.get(c.key)?.get(col.key)?.outcome !== accountsGrid.get(c.key)?.get(col.key)?.outcome).map((col) => `| ${c.label} | \`${col.label}\` | ${cell(orgGrid.get(c.key)?.get(col.key) as Decision)} | ${cell(accountsGrid.get(c.key)?.get(col.key) as Decision)} |`));
    const section = [
      START,
      '',
      '**Security account, organization mode (SCP attached).** Resource: the lake bucket, an object under `writer/` (the vault service: under `custody/`), the lake key, an auditor user `custody-auditors/new-auditor`, the account trail.',
      '',
      renderMatrix(org, orgGrid),
      '',
      '`yes` allowed; `no` denied — the letters say which layers deny it explicitly: **R** the bucket or key policy, **S** the SCP, **B** the permissions boundary, **I** the principal\'s own policy; `no` alone means nothing grants it. `via S3` is a KMS call S3 makes for the caller (`kms:ViaService`).',
      '',
      'Denied by (statement ids, across all principals):',
      '',
      renderDeniedBy(org, orgGrid),
      '',
      '**Without an organization** (account-list mode, no SCP) every blueprint principal gets the same answers; only a role the blueprint did not create gains these:',
      '',
      '| principal | action | organization | no organization |',
      '|---|---|---|---|',
      ...diff,
      '',
      '**Who writes where** (the lake bucket policy and key policy):',
      '',
      renderChecks(delivery),
      '',
      '**Who can become whom** (trust policies):',
      '',
      renderChecks(trust),
      '',
      'Each principal\'s requests carry the context AWS adds (`aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:PrincipalOrgID`, `aws:SecureTransport=true`), plus:',
      '',
      renderAssumptions(org),
      '',
      END,
    ].join('\n');
    const docs = readFileSync(DOCS, 'utf8');
    const a = docs.indexOf(START);
    const b = docs.indexOf(END);
    assert.ok(a >= 0 && b > a, `docs/AWS.md must hold the matrix between ${START} and ${END}`);
    const updated = docs.slice(0, a) + section + docs.slice(b + END.length);
    if (process.env.CUSTODY_UPDATE_DOCS === '1') {
      writeFileSync(DOCS, updated);
      return;
    }
    assert.equal(docs.slice(a, b + END.length), section, 'docs/AWS.md is out of date: run CUSTODY_UPDATE_DOCS=1 node scripts/run-tests.mjs permission-matrix');
  });
});
