/**
 * A small local server speaking the AWS KMS JSON protocol (X-Amz-Target
 * TrentService.GenerateDataKey / Decrypt / Encrypt, application/x-amz-json-1.1), for unit tests
 * of the requests Custody's KMS provider (src/crypto/kms.ts) sends through the real AWS SDK
 * (pointed here with AWS_ENDPOINT_URL_KMS). No real KMS is reachable from the tests.
 *
 * It holds a secret per key and really encrypts: a ciphertext blob is AES-256-GCM under the
 * key's secret with the encryption context as additional data, so Decrypt with another
 * context fails (InvalidCiphertextException) as it does in AWS. A key exists in one region:
 * a request signed for another region (the SigV4 credential scope `…/<region>/kms/aws4_request`)
 * does not find it (NotFoundException). Every request is recorded with the region it was signed
 * for, and faults can be switched on (AccessDenied, Disabled, HTTP 500).
 */
import { createServer, type Server } from 'node:http';
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';

export interface KmsRequest {
  op: string;
  /** The region of the SigV4 credential scope. */
  region: string;
  authorization: string;
  body: Record<string, unknown>;
  /** What the fake answered: 200, or the error type. */
  outcome: string;
}

interface FakeKey {
  arn: string;
  region: string;
  secret: Buffer;
  enabled: boolean;
}

export type Fault = 'AccessDeniedException' | 'DisabledException' | 'NotFoundException' | 'KMSInvalidStateException' | 'http500';

export class FakeKms {
  readonly requests: KmsRequest[] = [];
  private readonly keys = new Map<string, FakeKey>();
  private readonly aliases = new Map<string, string>();
  /** Fault to answer with, per operation ('*' = every one). */
  faults = new Map<string, Fault>();
  private server!: Server;
  url = '';

  /** Creates a key in `region`; returns its ARN. */
  createKey(region: string, alias?: string): string {
    const arn = `arn:aws:kms:${region}:111122223333:key/${randomUUID()}`;
    this.keys.set(arn, { arn, region, secret: randomBytes(32), enabled: true });
    if (alias) this.aliases.set(`${region}|alias/${alias}`, arn);
    return arn;
  }

  setEnabled(arn: string, enabled: boolean): void {
    this.keys.get(arn)!.enabled = enabled;
  }

  /** The requests of an operation. */
  of(op: string): KmsRequest[] {
    return this.requests.filter((r) => r.op === op);
  }

  /** The region a key ARN lives in. */
  regionOf(arn: string): string | undefined {
    return this.keys.get(arn)?.region;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const target = String(req.headers['x-amz-target'] ?? '');
        const op = target.replace(/^TrentService\./, '');
        const auth = String(req.headers['authorization'] ?? '');
        const m = /Credential=[^/]+\/[0-9]{8}\/([^/]+)\/kms\/aws4_request/.exec(auth);
        const region = m ? m[1]! : '';
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
        } catch {
          /* answered as a bad request below */
        }
        const rec: KmsRequest = { op, region, authorization: auth, body, outcome: '200' };
        this.requests.push(rec);
        const send = (status: number, json: unknown): void => {
          res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
          res.end(JSON.stringify(json));
        };
        const fail = (type: string, message: string, status = 400): void => {
          rec.outcome = type;
          send(status, { __type: type, message });
        };
        const fault = this.faults.get(op) ?? this.faults.get('*');
        if (fault === 'http500') return fail('KMSInternalException', 'internal failure (injected)', 500);
        if (fault) return fail(fault, `injected ${fault}`);
        if (!m) return fail('InvalidSignatureException', 'no SigV4 credential scope for kms');
        try {
          const out = this.handle(op, region, body, fail);
          if (out) send(200, out);
        } catch (e) {
          fail('ValidationException', (e as Error).message);
        }
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address();
    this.url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Environment for the SDK (in this process or a child): endpoint and static credentials. */
  env(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_KMS: this.url,
      AWS_ACCESS_KEY_ID: 'AKIDTESTFAKEKMS00001',
      AWS_SECRET_ACCESS_KEY: 'fake-secret-for-the-local-kms-test-server',
      AWS_REGION: 'ap-south-1', // never used: every client is made for its log's region
      AWS_EC2_METADATA_DISABLED: 'true',
    };
  }

  private resolve(region: string, keyId: string): FakeKey | undefined {
    const arn = keyId.startsWith('alias/') ? this.aliases.get(`${region}|${keyId}`) : keyId.startsWith('arn:') ? keyId : [...this.keys.keys()].find((k) => k.endsWith(`/${keyId}`));
    const k = arn ? this.keys.get(arn) : undefined;
    return k && k.region === region ? k : undefined;
  }

  private static aad(ctx: unknown): Buffer {
    const c = (ctx ?? {}) as Record<string, string>;
    return Buffer.from(JSON.stringify(Object.entries(c).sort(([a], [b]) => (a < b ? -1 : 1))));
  }

  private seal(k: FakeKey, plaintext: Buffer, ctx: unknown): Buffer {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', k.secret, iv);
    c.setAAD(FakeKms.aad(ctx));
    const ct = Buffer.concat([c.update(plaintext), c.final()]);
    const arn = Buffer.from(k.arn);
    const head = Buffer.alloc(6);
    head.write('FKMS', 0);
    head.writeUInt16BE(arn.length, 4);
    return Buffer.concat([head, arn, iv, ct, c.getAuthTag()]);
  }

  private handle(op: string, region: string, body: Record<string, unknown>, fail: (type: string, message: string) => void): Record<string, unknown> | undefined {
    if (op === 'GenerateDataKey' || op === 'Encrypt') {
      const k = this.resolve(region, String(body['KeyId'] ?? ''));
      if (!k) return void fail('NotFoundException', `Key '${String(body['KeyId'])}' does not exist in ${region}`);
      if (!k.enabled) return void fail('DisabledException', `${k.arn} is disabled.`);
      if (op === 'GenerateDataKey' && body['KeySpec'] !== 'AES_256') return void fail('ValidationException', 'KeySpec must be AES_256 here');
      const plaintext = op === 'Encrypt' ? Buffer.from(String(body['Plaintext']), 'base64') : randomBytes(32);
      const blob = this.seal(k, plaintext, body['EncryptionContext']);
      return op === 'Encrypt'
        ? { CiphertextBlob: blob.toString('base64'), KeyId: k.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' }
        : { CiphertextBlob: blob.toString('base64'), Plaintext: plaintext.toString('base64'), KeyId: k.arn };
    }
    if (op === 'Decrypt') {
      const blob = Buffer.from(String(body['CiphertextBlob'] ?? ''), 'base64');
      if (blob.length < 6 + 12 + 16 || blob.subarray(0, 4).toString() !== 'FKMS') return void fail('InvalidCiphertextException', 'not a ciphertext blob');
      const n = blob.readUInt16BE(4);
      const arn = blob.subarray(6, 6 + n).toString();
      const k = this.keys.get(arn);
      if (!k || k.region !== region) return void fail('InvalidCiphertextException', 'the key of this ciphertext is not in this region');
      if (body['KeyId'] !== undefined && this.resolve(region, String(body['KeyId']))?.arn !== arn) return void fail('IncorrectKeyException', 'the KeyId does not match the ciphertext');
      if (!k.enabled) return void fail('DisabledException', `${k.arn} is disabled.`);
      const iv = blob.subarray(6 + n, 18 + n);
      try {
        const d = createDecipheriv('aes-256-gcm', k.secret, iv);
        d.setAAD(FakeKms.aad(body['EncryptionContext']));
        d.setAuthTag(blob.subarray(blob.length - 16));
        const pt = Buffer.concat([d.update(blob.subarray(18 + n, blob.length - 16)), d.final()]);
        return { Plaintext: pt.toString('base64'), KeyId: arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      } catch {
        return void fail('InvalidCiphertextException', 'the ciphertext or its encryption context is not the one encrypted');
      }
    }
    fail('UnknownOperationException', `${op} is not implemented by the fake`);
    return undefined;
  }
}
