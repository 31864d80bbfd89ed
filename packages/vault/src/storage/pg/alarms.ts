/**
 * Alarms in the shared PostgreSQL (table custody_alarms, migration 202): alarms raised on any
 * node are listed on every node, newest first by one id sequence, and a repeat with a group key
 * counts on the open alarm of that key whichever node sees it.
 *
 * Grouping is one transaction per repeat: a transaction-level advisory lock on the group key
 * (namespace "CUAL", the key's hashtext) orders the nodes, then the open alarm of that key (last
 * seen inside the window) gets `count = count + 1`, or a new row is inserted. A unique index
 * on group_key alone cannot express this: after the window a new alarm of the same key starts,
 * and the old one stays in the list.
 */
import type pg from 'pg';
import type { AlarmStoreApi } from '../../alarms/store.js';
import type { Alarm, AlarmInput, AlarmKind, AlarmQuery, Severity } from '../../alarms/types.js';
import { checkin, checkout, pgStorageError } from './pool.js';

/** Advisory lock namespace of alarm group keys (first int4 of the two-key form): "CUAL". */
export const ALARM_GROUP_LOCK_NAMESPACE = 0x4355414c;

interface Row {
  id: string;
  kind: string;
  rule: string;
  severity: string;
  title: string;
  details: string;
  group_key: string | null;
  log: string | null;
  entry: string | null;
  first_at: Date;
  last_at: Date;
  count: number;
}

function toAlarm(r: Row): Alarm {
  const a: Alarm = {
    id: Number(r.id),
    kind: r.kind as AlarmKind,
    rule: r.rule,
    severity: r.severity as Severity,
    title: r.title,
    details: JSON.parse(r.details) as Record<string, unknown>,
    time: r.first_at.toISOString(),
    lastTime: r.last_at.toISOString(),
    count: r.count,
  };
  if (r.group_key !== null) a.groupKey = r.group_key;
  if (r.log !== null) a.log = r.log;
  if (r.entry !== null) a.entry = Number(r.entry);
  return a;
}

const COLUMNS = 'id, kind, rule, severity, title, details, group_key, log, entry, first_at, last_at, count';

export class PgAlarmStore implements AlarmStoreApi {
  constructor(private readonly pool: pg.Pool) {}

  async record(a: AlarmInput, now: string, groupSince: string | null): Promise<{ alarm: Alarm; isNew: boolean }> {
    let client: pg.PoolClient;
    try {
      client = await checkout(this.pool);
    } catch (e) {
      throw pgStorageError(e, 'store the alarm');
    }
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      try {
        if (a.groupKey !== undefined && groupSince !== null) {
          await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [ALARM_GROUP_LOCK_NAMESPACE, a.groupKey]);
          const open = await client.query<Row>(
            `UPDATE custody_alarms SET count = count + 1, last_at = $2
              WHERE id = (SELECT id FROM custody_alarms WHERE group_key = $1 AND last_at >= $3 ORDER BY id DESC LIMIT 1)
              RETURNING ${COLUMNS}`,
            [a.groupKey, now, groupSince],
          );
          if (open.rows[0]) {
            await client.query('COMMIT');
            return { alarm: toAlarm(open.rows[0]), isNew: false };
          }
        }
        const ins = await client.query<Row>(
          `INSERT INTO custody_alarms (kind, rule, severity, title, details, group_key, log, entry, first_at, last_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING ${COLUMNS}`,
          [a.kind, a.rule, a.severity, a.title, JSON.stringify(a.details), a.groupKey ?? null, a.log ?? null, a.entry ?? null, now],
        );
        await client.query('COMMIT');
        return { alarm: toAlarm(ins.rows[0]!), isNew: true };
      } catch (e) {
        await client.query('ROLLBACK').catch((re: unknown) => {
          broken = re as Error;
        });
        throw e;
      }
    } catch (e) {
      broken ??= e as Error;
      throw pgStorageError(e, 'store the alarm');
    } finally {
      checkin(client, broken);
    }
  }

  async get(id: number): Promise<Alarm | undefined> {
    try {
      const r = await this.pool.query<Row>(`SELECT ${COLUMNS} FROM custody_alarms WHERE id = $1`, [id]);
      return r.rows[0] && toAlarm(r.rows[0]);
    } catch (e) {
      throw pgStorageError(e, 'read the alarm', 'read');
    }
  }

  async list(q: AlarmQuery): Promise<Alarm[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (v: unknown): string => {
      args.push(v);
      return `$${args.length}`;
    };
    if (q.kinds && q.kinds.length > 0) where.push(`kind = ANY(${arg(q.kinds)}::text[])`);
    if (q.since) where.push(`last_at >= ${arg(q.since)}`);
    if (q.until) where.push(`first_at < ${arg(q.until)}`);
    if (q.before !== undefined) where.push(`id < ${arg(q.before)}`);
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 500);
    const sql = `SELECT ${COLUMNS} FROM custody_alarms ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ${arg(limit)}`;
    try {
      return (await this.pool.query<Row>(sql, args)).rows.map(toAlarm);
    } catch (e) {
      throw pgStorageError(e, 'list alarms', 'read');
    }
  }

  async count(): Promise<number> {
    try {
      const r = await this.pool.query<{ n: string }>('SELECT count(*) AS n FROM custody_alarms');
      return Number(r.rows[0]!.n);
    } catch (e) {
      throw pgStorageError(e, 'count alarms', 'read');
    }
  }
}
