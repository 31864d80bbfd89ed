/**
 * Notifier configurations in the shared PostgreSQL (table custody_notifier_configs, migration
 * 600): the notifiers every node of a shared vault delivers to. The row holds the configuration
 * without its secrets in plain JSON and the secrets sealed exactly as in custody.db
 * (alarms/notify/secrets.ts, vault key 'notifier-secrets', bound to the notifier id), so the
 * database never holds a secret in the clear. Every write bumps custody_notifier_revision in
 * the same transaction; each node's hub polls it and reloads its notifiers when it moved.
 *
 * Delivery state (queue, backoff, the last alarm handed on) stays per node in custody.db.
 */
import type pg from 'pg';
import type { SecretBox } from '../../alarms/notify/secrets.js';
import type { Notifier, NotifierConfig } from '../../alarms/notify/types.js';
import { splitSecrets } from '../../alarms/notify/config.js';
import { canonicalJson, notifierOfRow, type NotifierRow, type NotifierStoreApi } from '../../alarms/notify/store.js';
import { checkin, checkout, pgStorageError } from './pool.js';

const BUMP = 'UPDATE custody_notifier_revision SET rev = rev + 1 WHERE one';

export class PgNotifierStore implements NotifierStoreApi {
  constructor(
    private readonly pool: pg.Pool,
    private readonly box: SecretBox,
  ) {}

  async list(): Promise<Array<Notifier & { broken?: string }>> {
    try {
      const r = await this.pool.query<NotifierRow>('SELECT * FROM custody_notifier_configs ORDER BY created_at, id');
      return r.rows.map((row) => notifierOfRow(this.box, row));
    } catch (e) {
      throw pgStorageError(e, 'read the notifiers', 'read');
    }
  }

  async sourceOf(id: string): Promise<Notifier['source'] | undefined> {
    try {
      const r = await this.pool.query<{ source: Notifier['source'] }>('SELECT source FROM custody_notifier_configs WHERE id = $1', [id]);
      return r.rows[0]?.source;
    } catch (e) {
      throw pgStorageError(e, 'read a notifier', 'read');
    }
  }

  async fileState(): Promise<Map<string, string>> {
    try {
      const r = await this.pool.query<{ id: string; fingerprint: string }>("SELECT id, fingerprint FROM custody_notifier_configs WHERE source = 'file'");
      return new Map(r.rows.map((x) => [x.id, x.fingerprint]));
    } catch (e) {
      throw pgStorageError(e, 'read the notifiers', 'read');
    }
  }

  async revision(): Promise<string> {
    try {
      const r = await this.pool.query<{ rev: string }>('SELECT rev::text AS rev FROM custody_notifier_revision');
      return r.rows[0]?.rev ?? '0';
    } catch (e) {
      throw pgStorageError(e, 'read the notifiers revision', 'read');
    }
  }

  fingerprint(c: NotifierConfig): string {
    return this.box.fingerprint(canonicalJson(c));
  }

  private insertArgs(n: Notifier): unknown[] {
    const { plain, secrets } = splitSecrets(n.config);
    return [n.id, n.config.type, n.source, JSON.stringify(plain), this.box.seal(n.id, secrets), this.fingerprint(n.config), n.createdAt, n.createdBy];
  }

  private async tx<T>(what: string, f: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await checkout(this.pool);
    } catch (e) {
      throw pgStorageError(e, what);
    }
    let failed: Error | undefined;
    try {
      await client.query('BEGIN');
      const out = await f(client);
      await client.query(BUMP);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      await client.query('ROLLBACK').catch((err: unknown) => {
        failed = err as Error;
      });
      throw pgStorageError(e, what);
    } finally {
      checkin(client, failed);
    }
  }

  async add(n: Notifier): Promise<void> {
    await this.tx('store a notifier', async (c) => {
      await c.query('INSERT INTO custody_notifier_configs (id, type, source, config, secrets, fingerprint, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', this.insertArgs(n));
    });
  }

  async remove(id: string): Promise<boolean> {
    return this.tx('remove a notifier', async (c) => ((await c.query('DELETE FROM custody_notifier_configs WHERE id = $1', [id])).rowCount ?? 0) > 0);
  }

  /** Replaces every file notifier with these (one transaction). */
  async replaceFile(list: Notifier[]): Promise<void> {
    await this.tx('store the notifiers of notifiers.json', async (c) => {
      await c.query("DELETE FROM custody_notifier_configs WHERE source = 'file'");
      for (const n of list) {
        await c.query('INSERT INTO custody_notifier_configs (id, type, source, config, secrets, fingerprint, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', this.insertArgs(n));
      }
    });
  }
}
