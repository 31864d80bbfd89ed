/**
 * `custody tls …` (docs/TLS.md): certificates for trying Custody over TLS without openssl.
 *
 *   self-signed   a server key and a self-signed certificate for `custody serve --tls-cert/
 *                 --tls-key` (HTTPS and the syslog TLS listener)
 *   client-ca     a small CA for writers' client certificates (`custody serve --tls-client-ca`)
 *   client-cert   a writer's key and certificate, signed by that CA
 *
 * Keys are ECDSA P-256 from node:crypto, written 0600. The X.509 v3 certificates (RFC 5280) are
 * encoded here in DER: a fixed, small shape — version 3, a random 128-bit serial, CN-only names,
 * validity, the key, and the extensions basicConstraints, keyUsage, extKeyUsage,
 * subjectAltName, subject/authority key identifiers — signed with ecdsa-with-SHA256. Only
 * encoding, never parsing: node:crypto's X509Certificate reads each one back and checks its
 * signature before anything is written. For production, use certificates from your own CA.
 */
import { generateKeyPairSync, createHash, randomBytes, sign, X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { CustodyError } from '../errors.js';
import { print } from './commands.js';

// ---- DER (X.690) --------------------------------------------------------------------------

function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const explicit = (n: number, b: Buffer): Buffer => tlv(0xa0 + n, b);

/** A non-negative INTEGER from big-endian bytes (minimal: no extra leading zeros). */
function uint(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && b[i + 1]! < 0x80) i++;
  const v = b.subarray(i);
  return tlv(0x02, v[0]! >= 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [40 * arcs[0]! + arcs[1]!];
  for (const a of arcs.slice(2)) {
    const groups: number[] = [a & 0x7f];
    for (let v = Math.floor(a / 128); v > 0; v = Math.floor(v / 128)) groups.unshift(0x80 | (v & 0x7f));
    out.push(...groups);
  }
  return tlv(0x06, Buffer.from(out));
}

/** A BIT STRING of whole bytes (keys, signatures). */
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, "Z". */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // 2026-01-02T03:04:05.678Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z'; // 20260102030405Z
  const year = d.getUTCFullYear();
  return year < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii')) : tlv(0x18, Buffer.from(digits, 'ascii'));
}

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

const name = (cn: string): Buffer => seq(set(seq(oid(OID.organization), utf8('Custody'))), set(seq(oid(OID.commonName), utf8(cn))));

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
}

/** keyUsage bits (RFC 5280 §4.2.1.3): digitalSignature(0), keyCertSign(5), cRLSign(6). */
function keyUsage(usages: Array<'digitalSignature' | 'keyCertSign' | 'cRLSign'>): Buffer {
  const bit = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 };
  let byte = 0;
  let last = 0;
  for (const u of usages) {
    byte |= 0x80 >> bit[u];
    last = Math.max(last, bit[u]);
  }
  return tlv(0x03, Buffer.from([7 - last, byte]));
}

function subjectAltName(hosts: string[]): Buffer {
  return seq(
    ...hosts.map((h) => {
      if (isIP(h) === 4) return tlv(0x87, Buffer.from(h.split('.').map(Number)));
      if (isIP(h) === 6) return tlv(0x87, ipv6Bytes(h));
      return tlv(0x82, Buffer.from(h.toLowerCase(), 'ascii'));
    }),
  );
}

function ipv6Bytes(h: string): Buffer {
  const [head, tail] = h.includes('::') ? h.split('::') : [h, undefined];
  const words = (s: string | undefined): number[] => (s ? s.split(':').map((x) => parseInt(x, 16)) : []);
  const a = words(head);
  const b = words(tail);
  const all = tail === undefined ? a : [...a, ...Array(8 - a.length - b.length).fill(0), ...b];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

const keyId = (spki: Buffer): Buffer => createHash('sha1').update(spki).digest().subarray(0, 20);

export interface CertificateSpec {
  cn: string;
  days: number;
  publicKey: KeyObject;
  /** The issuer's key and certificate; absent: self-signed with `signingKey`. */
  issuer?: { key: KeyObject; cert: X509Certificate };
  signingKey: KeyObject;
  kind: 'server' | 'ca' | 'client';
  hosts?: string[];
  now?: Date;
}

/** A DER X.509 v3 certificate (RFC 5280) for the spec, signed ecdsa-with-SHA256. */
export function makeCertificate(s: CertificateSpec): Buffer {
  const now = s.now ?? new Date();
  const spki = s.publicKey.export({ type: 'spki', format: 'der' });
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  serial[0]! |= 0x40; // positive, and 16 bytes long
  const issuerName = s.issuer ? Buffer.from(s.issuer.cert.raw).subarray(...issuerSubjectRange(s.issuer.cert.raw)) : name(s.cn);
  const issuerSpki = s.issuer ? s.issuer.cert.publicKey.export({ type: 'spki', format: 'der' }) : spki;
  const exts: Buffer[] = [
    extension(OID.basicConstraints, true, s.kind === 'ca' ? seq(bool(true), tlv(0x02, Buffer.from([0]))) : seq()),
    extension(OID.keyUsage, true, keyUsage(s.kind === 'ca' ? ['digitalSignature', 'keyCertSign', 'cRLSign'] : ['digitalSignature'])),
  ];
  if (s.kind !== 'ca') exts.push(extension(OID.extKeyUsage, false, seq(oid(s.kind === 'server' ? OID.serverAuth : OID.clientAuth))));
  if (s.hosts && s.hosts.length > 0) exts.push(extension(OID.subjectAltName, false, subjectAltName(s.hosts)));
  exts.push(extension(OID.subjectKeyId, false, octets(keyId(spkiKeyBits(spki)))));
  if (s.issuer) exts.push(extension(OID.authorityKeyId, false, seq(tlv(0x80, keyId(spkiKeyBits(issuerSpki))))));
  const alg = seq(oid(OID.ecdsaWithSha256));
  const tbs = seq(
    explicit(0, uint(Buffer.from([2]))),
    uint(serial),
    alg,
    issuerName,
    seq(time(new Date(now.getTime() - 5 * 60_000)), time(new Date(now.getTime() + s.days * 86_400_000))),
    name(s.cn),
    spki,
    explicit(3, seq(...exts)),
  );
  const sig = sign('sha256', tbs, s.signingKey); // DER ECDSA-Sig-Value for an EC key
  return seq(tbs, alg, bits(sig));
}

// Minimal DER walking to lift the issuer's subject Name and the SPKI's key bits (our own output
// or a CA certificate that node:crypto has already parsed and checked).
function header(b: Uint8Array, at: number): { tag: number; start: number; end: number } {
  const tag = b[at]!;
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  return { tag, start, end: start + len };
}

/** [start, end) of the subject Name inside a DER certificate. */
function issuerSubjectRange(der: Uint8Array): [number, number] {
  const cert = header(der, 0);
  const tbs = header(der, cert.start);
  let at = tbs.start;
  const fields: Array<{ start: number; end: number; tag: number; at: number }> = [];
  while (at < tbs.end && fields.length < 6) {
    const h = header(der, at);
    fields.push({ ...h, at });
    at = h.end;
  }
  // [0] version, serial, signature algorithm, issuer, validity, subject
  const subject = fields[0]?.tag === 0xa0 ? fields[5] : fields[4];
  if (!subject) throw new CustodyError('CONFIG', 'The CA certificate cannot be read.');
  return [subject.at, subject.end];
}

/** The subjectPublicKey bits of an SPKI (RFC 5280 §4.2.1.2 method 1 hashes these). */
function spkiKeyBits(spki: Buffer): Buffer {
  const outer = header(spki, 0);
  const alg = header(spki, outer.start);
  const key = header(spki, alg.end);
  return spki.subarray(key.start + 1, key.end);
}

const pem = (label: string, der: Buffer): string => `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;

// ---- the commands -------------------------------------------------------------------------

interface Common {
  out?: string;
  days?: number;
  force?: boolean;
  json?: boolean;
}

const HOST_RE = /^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function checkHosts(hosts: string[]): string[] {
  for (const h of hosts) {
    if (isIP(h) === 0 && (!HOST_RE.test(h) || h.length > 253)) {
      throw new CustodyError('CONFIG', `--host ${JSON.stringify(h)} is neither a DNS name nor an IP address; for example --host vault.example.org --host 10.0.0.5.`);
    }
  }
  return [...new Set(hosts.map((h) => (isIP(h) ? h : h.toLowerCase())))];
}

function newKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

/** Writes the files, refusing to overwrite without --force (a key may be in use). */
function writeFiles(o: Common, files: Array<{ name: string; text: string; mode: number }>): string[] {
  const dir = resolve(o.out ?? '.');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const paths = files.map((f) => join(dir, f.name));
  if (!o.force) {
    const there = paths.filter((p) => existsSync(p));
    if (there.length) throw new CustodyError('CONFIG', `${there.join(' and ')} already exist${there.length === 1 ? 's' : ''}; pass --force to replace ${there.length === 1 ? 'it' : 'them'}, or choose another --out directory.`);
  }
  files.forEach((f, i) => writeFileSync(paths[i]!, f.text, { mode: f.mode, flag: o.force ? 'w' : 'wx' }));
  return paths;
}

function describe(der: Buffer): { subject: string; notAfter: string; sha256: string; hosts: string[] } {
  const x = new X509Certificate(der);
  return {
    subject: x.subject.replace(/\n/g, ', '),
    notAfter: new Date(x.validTo).toISOString(),
    sha256: x.fingerprint256,
    hosts: (x.subjectAltName ?? '').split(', ').filter(Boolean).map((s) => s.replace(/^(DNS|IP Address):/, '')),
  };
}

/** Reads the certificate back with node:crypto and checks its signature before it is written. */
function checked(der: Buffer, signer: KeyObject, key: KeyObject): Buffer {
  const x = new X509Certificate(der);
  if (!x.verify(signer) || !x.checkPrivateKey(key)) throw new CustodyError('INTERNAL', 'The certificate made does not verify; please report this.');
  return der;
}

export function tlsSelfSigned(o: Common & { host?: string[] }): void {
  const days = o.days ?? 365;
  const hosts = checkHosts(o.host && o.host.length ? o.host : ['localhost', '127.0.0.1', '::1', hostname()].filter((h) => isIP(h) || HOST_RE.test(h)));
  const { privateKey, publicKey } = newKey();
  const der = checked(makeCertificate({ cn: hosts[0]!, days, publicKey, signingKey: privateKey, kind: 'server', hosts }), publicKey, privateKey);
  const [cert, key] = writeFiles(o, [
    { name: 'custody.crt', text: pem('CERTIFICATE', der), mode: 0o644 },
    { name: 'custody.key', text: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, mode: 0o600 },
  ]);
  const d = describe(der);
  print(o.json, { certificate: cert, key, ...d }, () =>
    [
      `Wrote a self-signed certificate and its key (for trying Custody over TLS; use your own CA's certificates in production):`,
      `  certificate  ${cert}`,
      `  key          ${key}   (readable only by you)`,
      `  names        ${d.hosts.join(', ')}`,
      `  valid until  ${d.notAfter}`,
      `  SHA-256      ${d.sha256}`,
      '',
      'Serve HTTPS (and syslog over TLS with --syslog-tls-port 6514) with:',
      `  custody serve --tls-cert ${cert} --tls-key ${key}`,
      'Clients must trust this certificate, e.g.:',
      `  NODE_EXTRA_CA_CERTS=${cert} custody logs --url https://${hosts[0]}:8700`,
      `  curl --cacert ${cert} https://${hosts[0]}:8700/healthz`,
    ].join('\n'),
  );
}

export function tlsClientCa(o: Common & { name?: string }): void {
  const cn = o.name ?? 'Custody writers CA';
  const days = o.days ?? 3650;
  const { privateKey, publicKey } = newKey();
  const der = checked(makeCertificate({ cn, days, publicKey, signingKey: privateKey, kind: 'ca' }), publicKey, privateKey);
  const [cert, key] = writeFiles(o, [
    { name: 'client-ca.crt', text: pem('CERTIFICATE', der), mode: 0o644 },
    { name: 'client-ca.key', text: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, mode: 0o600 },
  ]);
  const d = describe(der);
  print(o.json, { certificate: cert, key, ...d }, () =>
    [
      'Wrote a CA for writers\' client certificates:',
      `  certificate  ${cert}`,
      `  key          ${key}   (readable only by you; keep it offline once the writers have their certificates)`,
      `  valid until  ${d.notAfter}`,
      '',
      'Require writers to present a certificate it signed:',
      `  custody serve --tls-cert … --tls-key … --tls-client-ca ${cert}`,
      'Give each writer its own certificate:',
      `  custody tls client-cert --ca ${cert} --ca-key ${key} --name vector-prod --out <dir>`,
    ].join('\n'),
  );
}

export function tlsClientCert(o: Common & { name: string; ca: string; caKey: string }): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(o.name)) throw new CustodyError('CONFIG', '--name must be 1–64 letters, digits, ".", "_" or "-", e.g. vector-prod.');
  let caCert: X509Certificate;
  let caKey: KeyObject;
  try {
    caCert = new X509Certificate(readFileSync(o.ca));
    caKey = createPrivateKey(readFileSync(o.caKey));
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot read the CA (${(e as Error).message}); pass the certificate and key written by custody tls client-ca.`);
  }
  if (!caCert.ca) throw new CustodyError('CONFIG', `${o.ca} is not a CA certificate; pass the one written by custody tls client-ca.`);
  if (!caCert.checkPrivateKey(caKey)) throw new CustodyError('CONFIG', `${o.caKey} is not the key of ${o.ca}; pass the pair written by custody tls client-ca.`);
  const { privateKey, publicKey } = newKey();
  const der = checked(makeCertificate({ cn: o.name, days: o.days ?? 365, publicKey, signingKey: caKey, issuer: { key: caKey, cert: caCert }, kind: 'client' }), caCert.publicKey, privateKey);
  const [cert, key] = writeFiles(o, [
    { name: `${o.name}.crt`, text: pem('CERTIFICATE', der), mode: 0o644 },
    { name: `${o.name}.key`, text: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, mode: 0o600 },
  ]);
  const d = describe(der);
  print(o.json, { certificate: cert, key, ...d, issuer: caCert.subject.replace(/\n/g, ', ') }, () =>
    [
      `Wrote a client certificate for writer "${o.name}", signed by ${caCert.subject.replace(/\n/g, ', ')}:`,
      `  certificate  ${cert}`,
      `  key          ${key}   (readable only by you; install it on the writer only)`,
      `  valid until  ${d.notAfter}`,
      '',
      'The writer sends it with each HTTPS connection, beside its token, e.g.:',
      `  curl --cacert <server cert> --cert ${cert} --key ${key} -H "Authorization: Bearer $TOKEN" …`,
    ].join('\n'),
  );
}
