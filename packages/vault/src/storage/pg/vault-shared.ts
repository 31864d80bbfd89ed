/**
 * The shared PostgreSQL of a vault served by several nodes: `vault.shared` (set by the vault in
 * shared mode, see vault.ts). Stores that must agree across nodes (approvals, admins' TOTP,
 * alarms) pick their PostgreSQL implementation when it is there, custody.db otherwise.
 */
import type pg from 'pg';

export interface SharedDb {
  pool: pg.Pool;
  nodeId: string;
}

/** The vault's shared database, or undefined on a single node (typed structurally). */
export function sharedOf(vault: object): SharedDb | undefined {
  return (vault as { shared?: SharedDb }).shared;
}
