/**
 * CloudTrail-like records for the ingest benchmark: ~1.1 KB of JSON each, with the field names
 * and shapes AWS CloudTrail writes (management and data events from sts, s3, ec2, iam, kms,
 * signin, lambda, dynamodb). Generated once from a seeded PRNG, so every run (and every
 * baseline) sends the same bytes.
 *
 * A batch is pre-built as one NDJSON body. Every record's eventID ends in 12 hex digits that
 * the sender overwrites in place before each request (`stampBatch`), so every record ever sent
 * has a unique eventID while building a request costs ~1,000 twelve-byte writes.
 */

export interface BatchTemplate {
  /** The NDJSON body: one record per line, each line ending in "\n". */
  body: Buffer;
  /** Byte offset in `body` of each record's 12-hex-digit eventID suffix. */
  idOffsets: number[];
  /** The same records as strings (for PostgreSQL), and the offset of the suffix in each. */
  lines: string[];
  lineIdOffset: number[];
}

/** mulberry32: a small, fast, seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;

const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const hex = (r: Rand, n: number): string => {
  let s = '';
  for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(r() * 16)];
  return s;
};
const upperAlnum = (r: Rand, n: number): string => {
  let s = '';
  for (let i = 0; i < n; i++) s += 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[Math.floor(r() * 32)];
  return s;
};
const uuid = (r: Rand): string => `${hex(r, 8)}-${hex(r, 4)}-4${hex(r, 3)}-${pick(r, ['8', '9', 'a', 'b'])}${hex(r, 3)}-${hex(r, 12)}`;

const ACCOUNTS = ['123456789012', '210987654321', '555566667777', '444433332222'];
const REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-southeast-2'];
const ROLES = ['OrganizationAccountAccessRole', 'ci-deploy', 'AWSReservedSSO_Admin_5f1e2d3c', 'eks-node-group-role', 'lambda-exec-orders'];
const USERS = ['alice', 'bob', 'carol', 'deploy-bot', 'terraform', 'backup-agent'];
const AGENTS = [
  'aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023',
  'aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 api/sts#1.28.1',
  'Boto3/1.34.62 Python/3.12.2 Linux/5.10.210 Botocore/1.34.62',
  'console.amazonaws.com',
  'AWS Internal',
  'terraform-provider-aws/5.41.0 HashiCorp-terraform-exec/0.20.0',
];
const CIPHERS = ['TLS_AES_128_GCM_SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'TLS_AES_256_GCM_SHA384'];

function iso(r: Rand): string {
  const t = Date.UTC(2025, 2, 14, 0, 0, 0) + Math.floor(r() * 86_400_000);
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function identity(r: Rand, account: string): Record<string, unknown> {
  if (r() < 0.8) {
    const user = pick(r, USERS);
    return {
      type: 'IAMUser',
      principalId: `AIDA${upperAlnum(r, 17)}`,
      arn: `arn:aws:iam::${account}:user/${user}`,
      accountId: account,
      accessKeyId: `AKIA${upperAlnum(r, 16)}`,
      userName: user,
    };
  }
  const role = pick(r, ROLES);
  const roleId = `AROA${upperAlnum(r, 17)}`;
  const session = `${pick(r, USERS)}-${hex(r, 8)}`;
  return {
    type: 'AssumedRole',
    principalId: `${roleId}:${session}`,
    arn: `arn:aws:sts::${account}:assumed-role/${role}/${session}`,
    accountId: account,
    accessKeyId: `ASIA${upperAlnum(r, 16)}`,
    sessionContext: {
      sessionIssuer: { type: 'Role', principalId: roleId, arn: `arn:aws:iam::${account}:role/${role}`, accountId: account, userName: role },
      webIdFederationData: {},
      attributes: { creationDate: iso(r), mfaAuthenticated: r() < 0.3 ? 'true' : 'false' },
    },
  };
}

interface Kind {
  source: string;
  name: string;
  readOnly: boolean;
  data?: boolean;
  params: (r: Rand, account: string, region: string) => unknown;
  response?: (r: Rand, account: string, region: string) => unknown;
  extra?: (r: Rand, account: string, region: string) => Record<string, unknown>;
}

const KINDS: Kind[] = [
  {
    source: 'sts.amazonaws.com',
    name: 'AssumeRole',
    readOnly: true,
    params: (r, a) => ({ roleArn: `arn:aws:iam::${a}:role/${pick(r, ROLES)}`, roleSessionName: `${pick(r, USERS)}-${hex(r, 8)}`, durationSeconds: 3600 }),
    response: (r, a) => ({
      credentials: { accessKeyId: `ASIA${upperAlnum(r, 16)}`, sessionToken: `IQoJb3JpZ2luX2VjE${upperAlnum(r, 16)}`, expiration: 'Mar 14, 2025, 1:00:00 PM' },
      assumedRoleUser: { assumedRoleId: `AROA${upperAlnum(r, 17)}:${pick(r, USERS)}`, arn: `arn:aws:sts::${a}:assumed-role/${pick(r, ROLES)}/${pick(r, USERS)}` },
    }),
  },
  {
    source: 's3.amazonaws.com',
    name: 'GetObject',
    readOnly: true,
    data: true,
    params: (r) => ({ bucketName: `acme-${pick(r, ['logs', 'data', 'backups'])}-${hex(r, 6)}`, Host: 'acme-data.s3.us-east-1.amazonaws.com', key: `2025/03/14/part-${hex(r, 8)}.parquet` }),
    extra: (r, a) => ({
      additionalEventData: { SignatureVersion: 'SigV4', CipherSuite: pick(r, CIPHERS), bytesTransferredIn: 0, AuthenticationMethod: 'AuthHeader', 'x-amz-id-2': upperAlnum(r, 24), bytesTransferredOut: Math.floor(r() * 9_000_000) },
      resources: [{ accountId: a, type: 'AWS::S3::Bucket', ARN: 'arn:aws:s3:::acme-data' }],
    }),
  },
  {
    source: 's3.amazonaws.com',
    name: 'PutObject',
    readOnly: false,
    data: true,
    params: (r) => ({ bucketName: 'acme-uploads', Host: 'acme-uploads.s3.eu-west-1.amazonaws.com', key: `incoming/${hex(r, 16)}.json.gz`, 'x-amz-server-side-encryption': 'aws:kms' }),
    response: (r) => ({ 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': `arn:aws:kms:eu-west-1:123456789012:key/${uuid(r)}` }),
  },
  {
    source: 'ec2.amazonaws.com',
    name: 'DescribeInstances',
    readOnly: true,
    params: (r) => ({ instancesSet: {}, filterSet: { items: [{ name: 'tag:team', valueSet: { items: [{ value: pick(r, ['payments', 'search', 'platform']) }] } }, { name: 'instance-state-name', valueSet: { items: [{ value: 'running' }] } }] } }),
  },
  {
    source: 'ec2.amazonaws.com',
    name: 'RunInstances',
    readOnly: false,
    params: (r) => ({ instancesSet: { items: [{ imageId: `ami-${hex(r, 17)}`, minCount: 1, maxCount: 1 }] }, instanceType: pick(r, ['m7i.large', 'c7g.xlarge', 't3.micro']), subnetId: `subnet-${hex(r, 17)}`, monitoring: { enabled: false } }),
    response: (r) => ({ requestId: uuid(r), reservationId: `r-${hex(r, 17)}`, instancesSet: { items: [{ instanceId: `i-${hex(r, 17)}`, currentState: { code: 0, name: 'pending' } }] } }),
  },
  {
    source: 'iam.amazonaws.com',
    name: 'AttachRolePolicy',
    readOnly: false,
    params: (r, a) => ({ roleName: pick(r, ROLES), policyArn: `arn:aws:iam::${a}:policy/${pick(r, ['ReadOnlyS3', 'DeployerBoundary', 'KmsDecryptOrders'])}` }),
  },
  {
    source: 'kms.amazonaws.com',
    name: 'Decrypt',
    readOnly: true,
    params: (r) => ({ encryptionContext: { 'aws:lambda:FunctionArn': `arn:aws:lambda:us-east-1:123456789012:function:orders-${hex(r, 6)}` }, encryptionAlgorithm: 'SYMMETRIC_DEFAULT' }),
    extra: (r, a, g) => ({ resources: [{ accountId: a, type: 'AWS::KMS::Key', ARN: `arn:aws:kms:${g}:${a}:key/${uuid(r)}` }] }),
  },
  {
    source: 'signin.amazonaws.com',
    name: 'ConsoleLogin',
    readOnly: false,
    params: () => null,
    response: () => ({ ConsoleLogin: 'Success' }),
    extra: (r) => ({ additionalEventData: { LoginTo: 'https://console.aws.amazon.com/console/home', MobileVersion: 'No', MFAUsed: r() < 0.8 ? 'Yes' : 'No' } }),
  },
  {
    source: 'lambda.amazonaws.com',
    name: 'Invoke',
    readOnly: false,
    data: true,
    params: (r, a, g) => ({ functionName: `arn:aws:lambda:${g}:${a}:function:orders-${hex(r, 6)}`, invocationType: 'RequestResponse', logType: 'None' }),
    extra: (r, a, g) => ({ resources: [{ accountId: a, type: 'AWS::Lambda::Function', ARN: `arn:aws:lambda:${g}:${a}:function:orders-${hex(r, 6)}` }] }),
  },
  {
    source: 'dynamodb.amazonaws.com',
    name: 'GetItem',
    readOnly: true,
    data: true,
    params: (r) => ({ tableName: 'orders', key: { pk: `ORDER#${hex(r, 12)}`, sk: 'META' }, consistentRead: false, projectionExpression: 'pk, sk, #s, total' }),
  },
];

/** One record as a JSON string (ASCII only, so string offsets are byte offsets). */
export function makeRecord(r: Rand, opts: { region?: string } = {}): string {
  const kind = pick(r, KINDS);
  const account = pick(r, ACCOUNTS);
  const picked = pick(r, REGIONS);
  const region = opts.region ?? picked;
  const ip = r() < 0.15 ? `${kind.source}` : `${10 + Math.floor(r() * 200)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}`;
  const rec: Record<string, unknown> = {
    eventVersion: '1.09',
    userIdentity: identity(r, account),
    eventTime: iso(r),
    eventSource: kind.source,
    eventName: kind.name,
    awsRegion: region,
    sourceIPAddress: ip,
    userAgent: pick(r, AGENTS),
    requestParameters: kind.params(r, account, region),
    responseElements: kind.response ? kind.response(r, account, region) : null,
    requestID: r() < 0.5 ? uuid(r) : upperAlnum(r, 16),
    eventID: uuid(r),
    readOnly: kind.readOnly,
    ...(kind.extra ? kind.extra(r, account, region) : {}),
    eventType: 'AwsApiCall',
    managementEvent: !kind.data,
    recipientAccountId: account,
    eventCategory: kind.data ? 'Data' : 'Management',
    tlsDetails: { tlsVersion: pick(r, ['TLSv1.3', 'TLSv1.2']), cipherSuite: pick(r, CIPHERS), clientProvidedHostHeader: `${kind.source.split('.')[0]}.${region}.amazonaws.com` },
  };
  return JSON.stringify(rec);
}

/** Where the 12 stamped hex digits of a record's eventID start, within the line. */
function idSuffixOffset(line: string): number {
  const at = line.indexOf('"eventID":"');
  if (at < 0) throw new Error('record without eventID');
  return at + '"eventID":"'.length + 24; // skip "xxxxxxxx-xxxx-4xxx-yxxx-"
}

/** A batch of `size` records (seeded), laid out for in-place stamping. */
export function makeBatch(seed: number, size: number, opts: { region?: string } = {}): BatchTemplate {
  const r = prng(seed);
  const lines: string[] = [];
  const lineIdOffset: number[] = [];
  const idOffsets: number[] = [];
  let at = 0;
  for (let i = 0; i < size; i++) {
    const line = makeRecord(r, opts);
    if (Buffer.byteLength(line) !== line.length) throw new Error('records must be ASCII');
    const off = idSuffixOffset(line);
    lines.push(line);
    lineIdOffset.push(off);
    idOffsets.push(at + off);
    at += line.length + 1;
  }
  return { body: Buffer.from(lines.join('\n') + '\n', 'latin1'), idOffsets, lines, lineIdOffset };
}

/** 12 lower-case hex digits of `n` (n < 2^48). */
export function hex12(n: number): string {
  const s = n.toString(16);
  return s.length >= 12 ? s.slice(-12) : '000000000000'.slice(s.length) + s;
}

/**
 * Gives every record of the body a fresh unique eventID: writer w, sequence numbers
 * seq, seq+1, … Returns the next sequence number.
 */
export function stampBatch(t: BatchTemplate, writer: number, seq: number): number {
  const base = writer * 2 ** 36;
  for (const off of t.idOffsets) t.body.write(hex12(base + seq++), off, 12, 'latin1');
  return seq;
}

/** The same stamping for the string form (PostgreSQL parameters): returns fresh strings. */
export function stampLines(t: BatchTemplate, writer: number, seq: number): { values: string[]; next: number } {
  const base = writer * 2 ** 36;
  const values = new Array<string>(t.lines.length);
  for (let i = 0; i < t.lines.length; i++) {
    const line = t.lines[i]!;
    const off = t.lineIdOffset[i]!;
    values[i] = line.slice(0, off) + hex12(base + seq++) + line.slice(off + 12);
  }
  return { values, next: seq };
}
