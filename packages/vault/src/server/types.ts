import type { PrincipalRow, Role } from '../storage/db.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: PrincipalRow | null;
  }
  interface FastifyContextConfig {
    /** Roles allowed on this route. Absent on a non-public route = nobody. */
    roles?: Role[];
    /** Served without a token (health, readiness, metrics). */
    public?: boolean;
    /** Token forms accepted (server/auth.ts); default ["bearer"]. */
    credentials?: ReadonlyArray<'bearer' | 'basic' | 'splunk' | 'firehose' | 'apikey'>;
    /** A write to log data: always refused with 405 and recorded as a tamper attempt. */
    tamper?: boolean;
    /**
     * A sensitive admin action: the admin must have enrolled a second factor and send a current
     * TOTP code in X-Custody-TOTP (checked in server/auth.ts; TOTP_REQUIRED / TOTP_INVALID).
     */
    totp?: boolean;
  }
}

export {};
