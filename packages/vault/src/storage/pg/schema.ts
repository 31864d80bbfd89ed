/**
 * The shared PostgreSQL schema, as numbered migrations (README.md in this folder explains the
 * tables). `migrate()` is safe to run from every node at start, at the same time: it takes a
 * session advisory lock first, so one node applies the missing migrations (each in its own
 * transaction, recorded in custody_schema_migrations in that same transaction) while the
 * others wait and then find nothing left to do.
 */
import type pg from 'pg';
import { CustodyError } from '../../errors.js';
import { pgStorageError, checkout, checkin } from './pool.js';

/** Advisory lock key namespaces (first int4 of the two-key form): "CUMG" and "CULD". */
export const MIGRATION_LOCK: readonly [number, number] = [0x43554d47, 0];
export const LEADER_LOCK_NAMESPACE = 0x43554c44;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'logs, sequencing heads, shared journal, log state, nodes',
    sql: `
CREATE TABLE custody_logs (
  name     text PRIMARY KEY,
  -- the leader election lock key of this log (pg_try_advisory_lock(namespace, id))
  id       integer GENERATED ALWAYS AS IDENTITY UNIQUE,
  origin   text NOT NULL UNIQUE,
  region   text,
  created  timestamptz NOT NULL DEFAULT now()
);
-- The sequencer's next index. Appenders take this row's lock with UPDATE ... RETURNING, so
-- appends to one log are serialised across nodes and commit in index order.
CREATE TABLE custody_log_heads (
  log        text PRIMARY KEY REFERENCES custody_logs(name),
  next_index bigint NOT NULL CHECK (next_index >= 0)
);
-- Acknowledged batches not yet covered by a published checkpoint. sealed is opaque here
-- (encrypted by the caller with the log's key).
CREATE TABLE custody_journal (
  log          text NOT NULL REFERENCES custody_logs(name),
  first_index  bigint NOT NULL CHECK (first_index >= 0),
  count        integer NOT NULL CHECK (count > 0),
  sealed       bytea NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  node         text NOT NULL,
  PRIMARY KEY (log, first_index)
);
-- What the integrator published. epoch is the fencing token: bumped by every node that wins
-- the log's leader lock; a write carrying an older epoch is refused.
CREATE TABLE custody_log_state (
  log         text PRIMARY KEY REFERENCES custody_logs(name),
  size        bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
  checkpoint  text,
  epoch       bigint NOT NULL DEFAULT 0,
  leader      text,
  updated     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE custody_nodes (
  id         text PRIMARY KEY,
  started    timestamptz NOT NULL,
  heartbeat  timestamptz NOT NULL,
  address    text
);
`,
  },
  // Versions 100-199: the vault's shared configuration, keyring and principals (storage/pg/vault-store.ts).
  {
    version: 100,
    name: 'vault configuration, sealed keyring, principals, log kinds',
    sql: `
ALTER TABLE custody_logs ADD COLUMN kind text NOT NULL DEFAULT 'region' CHECK (kind IN ('region','audit'));
-- One row: what vault.json holds on an embedded vault, and the keyring in its SEALED form only
-- (keyring format v2, passphrase or KMS; crypto/keyring.ts). The versions are bumped by every
-- change so nodes notice it with one cheap query (and a NOTIFY on custody_vault).
CREATE TABLE custody_vault (
  id                  smallint PRIMARY KEY CHECK (id = 1),
  config              jsonb NOT NULL,
  keyring             text NOT NULL,
  keyring_version     bigint NOT NULL DEFAULT 1,
  principals_version  bigint NOT NULL DEFAULT 1,
  created             timestamptz NOT NULL DEFAULT now()
);
-- Tokens are kept only as their SHA-256 (auth/tokens.ts).
CREATE TABLE custody_principals (
  id          text PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  role        text NOT NULL CHECK (role IN ('writer','auditor','admin')),
  logs        jsonb,
  token_hash  bytea NOT NULL UNIQUE,
  created_at  text NOT NULL,
  created_by  text NOT NULL,
  revoked_at  text,
  revoked_by  text
);
`,
  },
  // Versions 200-299: stores that must agree across nodes (approvals, admins' TOTP, alarms).
  {
    version: 200,
    name: 'approval requests (two-person rule)',
    sql: `
-- auth/approvals.ts; storage/pg/approvals.ts. Decisions are compare-and-set UPDATEs on status.
CREATE TABLE custody_approvals (
  id               text PRIMARY KEY,
  seq              bigint GENERATED ALWAYS AS IDENTITY,
  action           text NOT NULL,
  params           text NOT NULL,
  description      text NOT NULL,
  requested_by     text NOT NULL,
  requested_by_id  text NOT NULL,
  requested_at     timestamptz NOT NULL,
  expires_at       timestamptz NOT NULL,
  status           text NOT NULL CHECK (status IN ('pending','approved','denied','expired','failed','cancelled')),
  decided_by       text,
  decided_at       timestamptz,
  result           text
);
CREATE INDEX custody_approvals_status ON custody_approvals (status, expires_at);
CREATE INDEX custody_approvals_requested ON custody_approvals (requested_at DESC, seq DESC);
`,
  },
  {
    version: 201,
    name: 'admins second factor (sealed TOTP secrets, last used step, wrong-code counts)',
    sql: `
-- auth/totp.ts; storage/pg/totp.ts. secret/pending are sealed (AES-256-GCM, vault key totp-secrets).
CREATE TABLE custody_admin_totp (
  principal_id  text PRIMARY KEY,
  secret        bytea,
  enrolled_at   text,
  pending       bytea,
  pending_at    text,
  last_step     bigint
);
CREATE TABLE custody_admin_totp_failures (
  principal_id  text PRIMARY KEY,
  count         integer NOT NULL CHECK (count > 0),
  last_ms       bigint NOT NULL
);
`,
  },
  {
    version: 202,
    name: 'alarms',
    sql: `
-- alarms/store.ts; storage/pg/alarms.ts. Repeats of one group_key inside the window count on one row.
CREATE TABLE custody_alarms (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind       text NOT NULL,
  rule       text NOT NULL,
  severity   text NOT NULL,
  title      text NOT NULL,
  details    text NOT NULL,
  group_key  text,
  log        text,
  entry      bigint,
  first_at   timestamptz NOT NULL,
  last_at    timestamptz NOT NULL,
  count      integer NOT NULL DEFAULT 1
);
CREATE INDEX custody_alarms_last ON custody_alarms (last_at);
CREATE INDEX custody_alarms_group ON custody_alarms (group_key, last_at) WHERE group_key IS NOT NULL;
`,
  },
  // Versions 300-399: the search index of a shared vault (search/pg-store.ts, docs/SEARCH.md).
  {
    version: 300,
    name: 'search index (entries, full text, progress per log)',
    sql: `
-- Per log, how many of its entries are in the index. Moved in the same transaction as the rows.
CREATE TABLE custody_search_logs (
  log      text PRIMARY KEY,
  indexed  bigint NOT NULL DEFAULT 0 CHECK (indexed >= 0)
);
-- One row per entry. id orders by time as in search/store.ts (time_ms * 2^16 + slot).
-- Text fields are compared lower-cased; tsv holds the record's tokens (never its text).
CREATE TABLE custody_search_entries (
  id        bigint PRIMARY KEY,
  log       text NOT NULL,
  idx       bigint NOT NULL,
  time      bigint NOT NULL,
  received  bigint NOT NULL,
  source    text NOT NULL,
  region    text,
  account   text,
  actor     text,
  action    text,
  outcome   text,
  src_ip    text,
  dst_ip    text,
  severity  text,
  resource  text,
  ocsf      integer,
  tsv       tsvector NOT NULL,
  UNIQUE (log, idx)
);
CREATE INDEX custody_search_source ON custody_search_entries (lower(source) text_pattern_ops, id);
CREATE INDEX custody_search_region ON custody_search_entries (lower(region) text_pattern_ops, id) WHERE region IS NOT NULL;
CREATE INDEX custody_search_account ON custody_search_entries (lower(account) text_pattern_ops, id) WHERE account IS NOT NULL;
CREATE INDEX custody_search_actor ON custody_search_entries (lower(actor) text_pattern_ops, id) WHERE actor IS NOT NULL;
CREATE INDEX custody_search_action ON custody_search_entries (lower(action) text_pattern_ops, id) WHERE action IS NOT NULL;
CREATE INDEX custody_search_outcome ON custody_search_entries (lower(outcome) text_pattern_ops, id) WHERE outcome IS NOT NULL;
CREATE INDEX custody_search_src_ip ON custody_search_entries (lower(src_ip) text_pattern_ops, id) WHERE src_ip IS NOT NULL;
CREATE INDEX custody_search_dst_ip ON custody_search_entries (lower(dst_ip) text_pattern_ops, id) WHERE dst_ip IS NOT NULL;
CREATE INDEX custody_search_severity ON custody_search_entries (lower(severity) text_pattern_ops, id) WHERE severity IS NOT NULL;
CREATE INDEX custody_search_resource ON custody_search_entries (lower(resource) text_pattern_ops, id) WHERE resource IS NOT NULL;
CREATE INDEX custody_search_ocsf ON custody_search_entries (ocsf, id) WHERE ocsf IS NOT NULL;
CREATE INDEX custody_search_received ON custody_search_entries (log, received, source);
CREATE INDEX custody_search_tsv ON custody_search_entries USING gin (tsv);
`,
  },
  // Versions 400-499: dedupe, detector rules, notifiers, retention settings shared by the nodes.
  {
    version: 400,
    name: 'dedupe keys (claims before the append)',
    sql: `
-- storage/pg/dedupe.ts. key = HMAC of the pipeline's key hash (vault key sqlite-dedupe). A row with
-- idx NULL is a claim of a node appending the record now; stale claims are taken over.
CREATE TABLE custody_dedupe (
  key         bytea PRIMARY KEY CHECK (octet_length(key) = 16),
  log         text,
  idx         bigint CHECK (idx >= 0),
  claimed_by  text NOT NULL,
  claimed_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((log IS NULL) = (idx IS NULL))
);
`,
  },
  {
    version: 401,
    name: 'alarm detector rules',
    sql: `
-- alarms/detectors/store.ts; storage/pg/rules.ts. Every change takes a new rev; nodes poll max(rev).
CREATE SEQUENCE custody_detector_rules_rev;
CREATE TABLE custody_detector_rules (
  id          text PRIMARY KEY,
  body        text NOT NULL,
  origin      text NOT NULL CHECK (origin IN ('default','file','api')),
  created_at  text NOT NULL,
  updated_at  text NOT NULL,
  updated_by  text NOT NULL,
  rev         bigint NOT NULL DEFAULT nextval('custody_detector_rules_rev')
);
`,
  },
  {
    version: 402,
    name: 'retention settings (extend-only)',
    sql: `
-- lifecycle/store.ts; storage/pg/retention.ts. days only grows: the trigger refuses anything else.
CREATE TABLE custody_retention_settings (
  key    text PRIMARY KEY,
  value  text NOT NULL
);
CREATE TABLE custody_retention (
  log         text PRIMARY KEY,
  days        integer NOT NULL CHECK (days > 0 AND days <= 36500),
  updated_at  text NOT NULL,
  updated_by  text NOT NULL,
  approval    text
);
CREATE FUNCTION custody_retention_extend_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.days < OLD.days OR NEW.log <> OLD.log THEN
    RAISE EXCEPTION 'custody_retention: retention can only be extended' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER custody_retention_extend_only BEFORE UPDATE ON custody_retention
  FOR EACH ROW EXECUTE FUNCTION custody_retention_extend_only();
CREATE RULE custody_retention_no_delete AS ON DELETE TO custody_retention DO INSTEAD NOTHING;
`,
  },
  // Versions 600-699: notifier configurations (storage/pg/notifiers.ts).
  {
    version: 600,
    name: 'notifier configurations',
    sql: `
-- alarms/notify/store.ts; storage/pg/notifiers.ts. Secrets are sealed (alarms/notify/secrets.ts)
-- before they reach this table. Every write bumps the one-row revision; nodes poll it.
CREATE TABLE custody_notifier_configs (
  id           text PRIMARY KEY,
  type         text NOT NULL,
  source       text NOT NULL CHECK (source IN ('api','file')),
  config       text NOT NULL,
  secrets      text NOT NULL,
  fingerprint  text NOT NULL,
  created_at   text NOT NULL,
  created_by   text NOT NULL
);
CREATE TABLE custody_notifier_revision (
  one  boolean PRIMARY KEY DEFAULT true CHECK (one),
  rev  bigint NOT NULL
);
INSERT INTO custody_notifier_revision (one, rev) VALUES (true, 0);
`,
  },
];

const LEDGER = `CREATE TABLE IF NOT EXISTS custody_schema_migrations (
  version     integer PRIMARY KEY,
  name        text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
)`;

/**
 * Applies the migrations the database lacks; returns the versions applied by this call.
 * Refuses (CONFIG) a database migrated by a newer vault than this one.
 */
export async function migrate(pool: pg.Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  let client: pg.PoolClient;
  try {
    client = await checkout(pool);
  } catch (e) {
    throw pgStorageError(e, 'connect to the database to update its schema');
  }
  let broken: unknown;
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1, $2)', [MIGRATION_LOCK[0], MIGRATION_LOCK[1]]);
    try {
      await client.query(LEDGER);
      const done = new Set((await client.query<{ version: number }>('SELECT version FROM custody_schema_migrations')).rows.map((r) => r.version));
      const newest = Math.max(0, ...migrations.map((m) => m.version));
      const beyond = [...done].filter((v) => v > newest);
      if (beyond.length > 0) {
        throw new CustodyError('CONFIG', `The database schema is at version ${Math.max(...beyond)}, newer than this vault knows (${newest}). Upgrade this node to the version the other nodes run.`);
      }
      for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO custody_schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
        applied.push(m.version);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, $2)', [MIGRATION_LOCK[0], MIGRATION_LOCK[1]]).catch((e: unknown) => {
        broken = e; // the session is gone, and its lock with it
      });
    }
  } catch (e) {
    broken = e;
    throw pgStorageError(e, 'update the database schema');
  } finally {
    checkin(client, broken instanceof Error ? broken : undefined);
  }
  return applied;
}

/** The schema version the database is at (0: none). */
export async function schemaVersion(pool: pg.Pool): Promise<number> {
  try {
    const t = await pool.query<{ t: string | null }>(`SELECT to_regclass('custody_schema_migrations')::text AS t`);
    if (!t.rows[0]?.t) return 0;
    const r = await pool.query<{ v: number | null }>('SELECT max(version) AS v FROM custody_schema_migrations');
    return Number(r.rows[0]?.v ?? 0);
  } catch (e) {
    throw pgStorageError(e, 'read the database schema version', 'read');
  }
}
