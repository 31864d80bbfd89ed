/**
 * A small local HTTP server that answers like S3 for the archive's calls (path-style):
 * PutObject, HeadBucket, HeadObject (x-amz-restore, x-amz-storage-class, stored SHA-256),
 * GetObject (403 InvalidObjectState for GLACIER / DEEP_ARCHIVE objects not restored),
 * RestoreObject (202; 409 RestoreAlreadyInProgress when told to), DeleteObject and
 * GetObjectLockConfiguration (none). Ceph RGW 16.2 has no GLACIER classes and no
 * RestoreObject, so the restore state machine is tested against this, with the real SDK.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';

export interface FakeObject {
  body: Buffer;
  storageClass: string;
  checksum: string | undefined;
  versionId: string;
  /** none: cold, never restored (or the restored copy expired); ongoing; restored. */
  restore: 'none' | 'ongoing' | 'restored';
  expiry?: Date;
}

export interface RestoreCall {
  key: string;
  body: string;
}

export class FakeS3 {
  readonly objects = new Map<string, FakeObject>();
  readonly restores: RestoreCall[] = [];
  readonly requests: string[] = [];
  /** Answer RestoreObject with 409 RestoreAlreadyInProgress (another client started it). */
  restoreConflict = false;
  private server!: Server;
  url = '';
  private v = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks)));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${a.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private error(res: ServerResponse, status: number, code: string, message: string, head = false): void {
    res.writeHead(status, { 'content-type': 'application/xml', 'x-amz-request-id': 'fake' });
    res.end(head ? undefined : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fake</RequestId></Error>`);
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const u = new URL(req.url!, 'http://x');
    const [, bucket, ...rest] = u.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const id = `${bucket}/${key}`;
    this.requests.push(`${req.method} ${u.pathname}${u.search}`);
    const o = this.objects.get(id);
    if (!key) {
      if (req.method === 'HEAD') return void res.writeHead(200).end();
      if (u.searchParams.has('object-lock')) return this.error(res, 404, 'ObjectLockConfigurationNotFoundError', 'Object Lock configuration does not exist for this bucket');
      return this.error(res, 400, 'NotImplemented', 'not in the fake');
    }
    if (req.method === 'PUT') {
      const cls = String(req.headers['x-amz-storage-class'] ?? 'STANDARD');
      const checksum = req.headers['x-amz-checksum-sha256'] as string | undefined;
      if (checksum && checksum !== createHash('sha256').update(body).digest('base64')) return this.error(res, 400, 'BadDigest', 'The SHA256 you specified did not match the calculated checksum.');
      const versionId = `v${++this.v}`;
      this.objects.set(id, { body, storageClass: cls, checksum, versionId, restore: 'none' });
      res.writeHead(200, { 'x-amz-version-id': versionId, ...(checksum ? { 'x-amz-checksum-sha256': checksum } : {}) });
      return void res.end();
    }
    if (!o) return this.error(res, 404, 'NoSuchKey', 'The specified key does not exist.', req.method === 'HEAD');
    this.expire(o);
    const cold = o.storageClass === 'GLACIER' || o.storageClass === 'DEEP_ARCHIVE';
    if (req.method === 'HEAD') {
      const h: Record<string, string> = { 'content-length': String(o.body.length), 'x-amz-version-id': o.versionId, etag: '"e"' };
      if (o.storageClass !== 'STANDARD') h['x-amz-storage-class'] = o.storageClass;
      if (o.restore === 'ongoing') h['x-amz-restore'] = 'ongoing-request="true"';
      if (o.restore === 'restored') h['x-amz-restore'] = `ongoing-request="false", expiry-date="${o.expiry!.toUTCString()}"`;
      if (req.headers['x-amz-checksum-mode'] === 'ENABLED' && o.checksum) h['x-amz-checksum-sha256'] = o.checksum;
      res.writeHead(200, h);
      return void res.end();
    }
    if (req.method === 'GET') {
      if (cold && o.restore !== 'restored') return this.error(res, 403, 'InvalidObjectState', 'The operation is not valid for the object\'s storage class');
      res.writeHead(200, { 'content-length': String(o.body.length), 'content-type': 'application/octet-stream', 'x-amz-version-id': o.versionId });
      return void res.end(o.body);
    }
    if (req.method === 'POST' && u.searchParams.has('restore')) {
      this.restores.push({ key: id, body: body.toString('utf8') });
      if (this.restoreConflict || o.restore === 'ongoing') return this.error(res, 409, 'RestoreAlreadyInProgress', 'Object restore is already in progress');
      if (o.restore === 'restored') return void res.writeHead(200).end();
      o.restore = 'ongoing';
      return void res.writeHead(202).end();
    }
    if (req.method === 'DELETE') {
      this.objects.delete(id);
      return void res.writeHead(204).end();
    }
    return this.error(res, 400, 'NotImplemented', 'not in the fake');
  }

  private expire(o: FakeObject): void {
    if (o.restore === 'restored' && o.expiry && o.expiry.getTime() <= Date.now()) {
      o.restore = 'none';
      delete o.expiry;
    }
  }

  /** Finishes every ongoing restore; the copies stay readable until `expiry`. */
  finishRestores(expiry = new Date(Date.now() + 7 * 86_400_000)): void {
    for (const o of this.objects.values()) {
      if (o.restore === 'ongoing') {
        o.restore = 'restored';
        o.expiry = expiry;
      }
    }
  }
}
