/**
 * Mutual TLS for writers (docs/TLS.md): with `custody serve --tls-client-ca <file>`, a request
 * authenticated as a writer must also come over a TLS connection whose client certificate that
 * CA signed. The token says who may write; the certificate says the request comes from a
 * machine that was given one — a token copied elsewhere is not enough.
 *
 * The HTTPS server asks every client for a certificate but does not fail the handshake without
 * one (requestCert, rejectUnauthorized: false), so auditors and admins in a browser keep
 * working without one; the check is here, per request, for writer principals only. A refusal
 * is a 401 UNAUTHENTICATED that says what is missing, recorded in the audit log as
 * `auth.failed` with the reason.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CustodyError } from '../errors.js';
import type { Vault } from '../vault.js';
import { auditContext } from './auth.js';

export interface WriterCertificatePolicy {
  /** The CA's subject(s), named in refusals so the writer's operator knows which CA is meant. */
  caNames: string;
}

const policies = new WeakMap<FastifyInstance, WriterCertificatePolicy>();

/**
 * Reads --tls-client-ca: one or more PEM CA certificates. Gives the options to merge into the
 * HTTPS server's and the policy; a clear CONFIG error when the file is not that.
 */
export function loadWriterCa(caFile: string): { https: { ca: Buffer; requestCert: true; rejectUnauthorized: false }; policy: WriterCertificatePolicy } {
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot read --tls-client-ca: ${(e as Error).message}.`);
  }
  const blocks = ca.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new CustodyError('CONFIG', `--tls-client-ca ${caFile} holds no PEM certificate; pass the CA certificate that signs your writers' certificates (custody tls client-ca makes one).`);
  const names: string[] = [];
  for (const b of blocks) {
    let x: X509Certificate;
    try {
      x = new X509Certificate(b);
    } catch (e) {
      throw new CustodyError('CONFIG', `--tls-client-ca ${caFile} holds a certificate that cannot be read (${(e as Error).message}).`);
    }
    if (!x.ca) throw new CustodyError('CONFIG', `--tls-client-ca ${caFile}: ${x.subject.replace(/\n/g, ', ')} is not a CA certificate (basicConstraints CA:TRUE), so it cannot sign writers' certificates; pass the CA's certificate.`);
    names.push(x.subject.replace(/\n/g, ', '));
  }
  return { https: { ca, requestCert: true, rejectUnauthorized: false }, policy: { caNames: names.join('; ') } };
}

/** From now on, writers on this server must present a client certificate (serve.ts). */
export function requireWriterCertificates(app: FastifyInstance, policy: WriterCertificatePolicy): void {
  policies.set(app, policy);
}

/**
 * Called by the auth hook (auth.ts) once the principal is known: refuses a writer whose
 * connection carries no client certificate signed by the writer CA.
 */
export async function checkWriterCertificate(app: FastifyInstance, vault: Vault, req: FastifyRequest): Promise<void> {
  const policy = policies.get(app);
  if (!policy || req.principal?.role !== 'writer') return;
  const sock = req.raw.socket as Partial<TLSSocket>;
  if (sock.encrypted && sock.authorized === true) return;
  const peer = sock.encrypted && typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : undefined;
  const presented = peer !== undefined && Object.keys(peer).length > 0;
  const reason = !sock.encrypted ? 'no-tls' : presented ? 'client-certificate-untrusted' : 'client-certificate-missing';
  await vault.audit({ type: 'auth.failed', reason, tlsError: sock.authorizationError ? String(sock.authorizationError).slice(0, 100) : undefined, ...auditContext(req) }).catch(() => undefined);
  throw new CustodyError(
    'UNAUTHENTICATED',
    reason === 'client-certificate-untrusted'
      ? `This vault requires writers to present a client certificate signed by its writer CA (${policy.caNames}); the one presented is not (${String(sock.authorizationError ?? 'not trusted')}). Configure the writer with a certificate from that CA.`
      : `This vault requires writers to present a client certificate signed by its writer CA (${policy.caNames}) beside the token; configure the writer with its certificate and key (custody tls client-cert makes one for trying it out).`,
    { reason },
  );
}
