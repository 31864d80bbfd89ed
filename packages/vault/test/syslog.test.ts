/**
 * The syslog listener (docs/SYSLOG.md): RFC 5424 / RFC 3164 over TCP with octet counting and
 * LF framing, over TLS, from raw sockets and from real clients (rsyslogd, util-linux logger);
 * hostile streams; back-pressure; the writer token's revocation.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:https';
import fc from 'fast-check';
import { pino } from 'pino';
import { SyslogFramer, SyslogFramingError, syslogPri, startSyslog, type FrameEvent, type SyslogOptions, type SyslogServer } from '../src/ingest/protocols/syslog.js';
import { CustodyError } from '../src/errors.js';
import { startInProc, auditRecords, type InProcVault } from './support/inproc.js';
import { makeTempDir, freePort, prng, readTokens, runCli, sleep, waitFor } from './support/server.js';
import { octet, sendParts, openSyslog, endAndWait, closedByPeer, cutRandomly, storedRecords, makePki, realClientsInstalled, runLogger, startRsyslog, runServe } from './support/syslog.js';

const silent = pino({ level: 'silent' });

// ---- framing ----------------------------------------------------------------------------------

function frames(framer: SyslogFramer, chunks: Buffer[]): FrameEvent[] {
  const out: FrameEvent[] = [];
  for (const c of chunks) framer.push(c, (e) => out.push(e));
  return out;
}

function framingError(framer: SyslogFramer, chunks: Buffer[]): string {
  try {
    frames(framer, chunks);
  } catch (e) {
    assert.ok(e instanceof SyslogFramingError);
    return e.reason;
  }
  return 'none';
}

describe('syslog framing', () => {
  test('any messages, in any mix of framings, cut into chunks anywhere, come out byte for byte', () => {
    const msg = fc
      .record({ pri: fc.integer({ min: 0, max: 191 }), body: fc.uint8Array({ maxLength: 300 }), framing: fc.constantFrom('octet', 'octet+lf', 'lf', 'crlf', 'nul'), gap: fc.constantFrom('', '', '\n', '\r\n') })
      .map(({ pri, body, framing, gap }) => {
        let b = Buffer.from(body);
        if (!framing.startsWith('octet')) b = Buffer.from(b.filter((x) => x !== 0x0a && x !== 0x00));
        // A message never ends in CR/LF: those belong to the framing and are dropped.
        while (b.length > 0 && (b[b.length - 1] === 0x0a || b[b.length - 1] === 0x0d)) b = b.subarray(0, b.length - 1);
        const m = Buffer.concat([Buffer.from(`<${pri}>`), b]);
        const wire =
          framing === 'octet' ? octet(m)
          : framing === 'octet+lf' ? octet(Buffer.concat([m, Buffer.from('\n')])) // rsyslog counts its LF
          : framing === 'lf' ? Buffer.concat([m, Buffer.from('\n')])
          : framing === 'crlf' ? Buffer.concat([m, Buffer.from('\r\n')])
          : Buffer.concat([m, Buffer.from([0])]);
        return { m, wire: Buffer.concat([wire, Buffer.from(gap)]) };
      });
    fc.assert(
      fc.property(fc.array(msg, { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (msgs, cuts) => {
        const stream = Buffer.concat(msgs.map((x) => x.wire));
        const chunks: Buffer[] = [];
        for (let i = 0, k = 0; i < stream.length; k++) {
          const n = cuts[k % cuts.length]!;
          chunks.push(stream.subarray(i, i + n));
          i += n;
        }
        const f = new SyslogFramer(1024);
        const out = frames(f, chunks);
        assert.deepEqual(
          out.map((e) => (e.kind === 'message' ? e.bytes.toString('hex') : 'oversize')),
          msgs.map((x) => x.m.toString('hex')),
        );
        assert.equal(f.inFrame, false);
        assert.equal(f.buffered, 0);
      }),
      { numRuns: 300 },
    );
  });

  test('hostile streams are refused with a reason, and never make the framer hold more than one frame', () => {
    assert.equal(framingError(new SyslogFramer(1024), [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]), 'not-syslog');
    assert.equal(framingError(new SyslogFramer(1024), [Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])]), 'not-syslog'); // a TLS ClientHello on the TCP port
    assert.equal(framingError(new SyslogFramer(1024), [Buffer.from('99999999999 <13>hello')]), 'frame-too-large');
    assert.equal(framingError(new SyslogFramer(1024), [Buffer.from('12x<13>hello')]), 'bad-frame-length');
    assert.equal(framingError(new SyslogFramer(1024), [Buffer.from('<13>ok\n'), Buffer.from('\x00\x01binary')]), 'not-syslog');
    // A line that never ends: skipped up to 16 frames' worth without being held, then refused.
    const endless = new SyslogFramer(1024);
    let reason = 'none';
    try {
      endless.push(Buffer.from('<13>'), () => undefined);
      for (let i = 0; i < 100 && reason === 'none'; i++) {
        endless.push(Buffer.alloc(1000, 0x41), () => undefined);
        assert.ok(endless.buffered <= 1024, `holds ${endless.buffered} bytes`);
      }
    } catch (e) {
      reason = (e as SyslogFramingError).reason;
    }
    assert.equal(reason, 'line-too-long');
    // Property: random bytes never make it hold more than maxFrameBytes nor throw anything else.
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 3000 }), { maxLength: 10 }), (chunks) => {
        const f = new SyslogFramer(1024);
        try {
          for (const c of chunks) {
            f.push(Buffer.from(c), () => undefined);
            assert.ok(f.buffered <= 1025);
          }
        } catch (e) {
          assert.ok(e instanceof SyslogFramingError, String(e));
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a frame larger than the limit is skipped (counted, not held) and the stream goes on', () => {
    const big = Buffer.concat([Buffer.from('<13>1 - h a - - - '), Buffer.alloc(5000, 0x42)]);
    const f = new SyslogFramer(1024);
    const out = frames(f, [octet(big).subarray(0, 3000), octet(big).subarray(3000), octet('<13>after'), Buffer.concat([big, Buffer.from('\n<14>next\n')])]);
    assert.deepEqual(
      out.map((e) => (e.kind === 'message' ? e.bytes.toString() : `oversize ${e.size}`)),
      [`oversize ${big.length}`, '<13>after', `oversize ${big.length}`, '<14>next'],
    );
  });

  test('at the end of the stream, a last line without LF counts; a counted frame cut short is reported', () => {
    const f = new SyslogFramer(1024);
    const out: FrameEvent[] = [];
    f.push(Buffer.from('<13>one\n<13>two without LF\r'), (e) => out.push(e));
    assert.deepEqual(f.end((e) => out.push(e)), { truncated: false });
    assert.deepEqual(out.map((e) => (e.kind === 'message' ? e.bytes.toString() : e.kind)), ['<13>one', '<13>two without LF']);
    const g = new SyslogFramer(1024);
    g.push(octet('<13>complete'), () => undefined);
    g.push(octet('<13>cut short').subarray(0, 8), () => undefined);
    assert.deepEqual(g.end(() => assert.fail('nothing to deliver')), { truncated: true });
    assert.equal(g.buffered, 0);
    assert.equal(g.inFrame, false);
  });

  test('PRI is "<" 1–3 digits ">" with a value up to 191 (RFC 5424 §6.2.1, RFC 3164 §4.1.1)', () => {
    assert.equal(syslogPri(Buffer.from('<0>1 -')), 0);
    assert.equal(syslogPri(Buffer.from('<191>Oct 11 22:14:15 host app: x')), 191);
    assert.equal(syslogPri(Buffer.from('<34>1 2003-10-11T22:14:15.003Z')), 34);
    for (const bad of ['<192>x', '<1234>x', '<>x', '<13', 'hello', '<1a>x', '13>x']) assert.equal(syslogPri(Buffer.from(bad)), null, bad);
  });
});

// ---- the listener -----------------------------------------------------------------------------

async function setup(t: { after(fn: () => Promise<void> | void): void }, listener: Partial<SyslogOptions> = {}, vault: Parameters<typeof startInProc>[0] = {}): Promise<{ v: InProcVault; s: SyslogServer }> {
  const v = await startInProc({ checkpointIntervalMs: 20, ...vault });
  let s: SyslogServer;
  try {
    s = await startSyslog({ vault: v.vault, port: 0, token: v.tokens.writer, logger: silent, ...listener });
  } catch (e) {
    await v.close();
    throw e;
  }
  t.after(async () => {
    await s.close();
    await v.close();
  });
  return { v, s };
}

const until = (what: string, fn: () => boolean, ms = 10_000): Promise<boolean> => waitFor(what, () => fn(), ms, 10);

// RFC 5424 §6.5 examples 1 and 3, RFC 3164 §5.4 example 1, and some that are not UTF-8.
const BOM = '\uFEFF';
const samples: Buffer[] = [
  Buffer.from(`<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - ${BOM}'su root' failed for lonvick on /dev/pts/8`),
  Buffer.from(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] ${BOM}An application event log entry...`),
  Buffer.from("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"),
  Buffer.from('<86>Dec  4 21:54:59 bastion sshd[812]: Failed password for invalid user admin from 203.0.113.9 port 52814 ssh2'),
  Buffer.concat([Buffer.from('<13>1 - host app - - - latin-1 caf'), Buffer.from([0xe9, 0xff, 0xfe, 0x80, 0x09]), Buffer.from(' tab\tend  ')]),
  Buffer.from('<13>1 2024-02-29T12:00:00Z host app 4242 - [a@1 x="y\\"z"] ünïcödé 雪 🚀'),
];

function many(n: number, rnd: () => number): Buffer[] {
  return Array.from({ length: n }, (_, i) => Buffer.from(`<${Math.floor(rnd() * 192)}>1 2026-12-04T10:00:${String(i % 60).padStart(2, '0')}.000Z web-${i % 7} app${i % 3} ${1000 + i} ID${i} - message ${i} ${'x'.repeat(Math.floor(rnd() * 600))}`));
}

describe('syslog listener', () => {
  test('RFC 5424 and RFC 3164 over TCP, octet counting and LF framing, cut anywhere: each message stored byte for byte', async (t) => {
    const { v, s } = await setup(t);
    const rnd = prng(7);
    const msgs = [...samples, ...many(300, rnd)];
    // Octet counting: all frames in one stream, cut into 1–40 byte writes.
    const stream = Buffer.concat(msgs.map(octet));
    await sendParts(s.port, cutRandomly(stream, rnd, 40));
    await until('octet-counted messages stored', () => s.stats.stored === msgs.length);
    // LF framing (LF, CRLF, NUL trailers): one frame of 40 KiB written in 5 parts, then the rest in random cuts.
    const big = Buffer.concat([Buffer.from('<13>1 2026-12-04T10:00:00Z host app - - - '), Buffer.alloc(40_000, 'y')]);
    const trailers = ['\n', '\r\n', '\0'];
    const lfMsgs = msgs.filter((m) => !m.includes(0x0a) && !m.includes(0x00));
    const lfStream = Buffer.concat(lfMsgs.map((m, i) => Buffer.concat([m, Buffer.from(trailers[i % 3]!)])));
    const part = Math.ceil(big.length / 5);
    const bigParts = [0, 1, 2, 3, 4].map((i) => big.subarray(i * part, (i + 1) * part));
    await sendParts(s.port, [...bigParts, Buffer.from('\n'), ...cutRandomly(lfStream, rnd, 40)], { delayMs: 0 });
    await until('LF-framed messages stored', () => s.stats.stored === msgs.length + 1 + lfMsgs.length);

    const stored = await storedRecords(v);
    assert.equal(stored.length, msgs.length + 1 + lfMsgs.length);
    const expected = [...msgs, big, ...lfMsgs];
    stored.forEach((r, i) => assert.ok(r.bytes.equals(expected[i]!), `record ${i} differs: ${r.bytes.length} bytes, expected ${expected[i]!.length}`));
    for (const r of stored) {
      assert.equal(r.source, 'syslog');
      assert.equal(r.producer, 'initial-writer');
      assert.deepEqual(r.attrs, { peer: '127.0.0.1', transport: 'syslog-tcp' });
    }
    assert.equal(s.stats.received, expected.length);
    assert.deepEqual(s.stats.rejected, {});
  });

  test('TLS (RFC 5425) with octet counting; with a CA, only clients holding its certificates get in, and their CN is recorded', async (t) => {
    const pki = makePki();
    const key = readFileSync(pki.serverKey);
    const cert = readFileSync(pki.serverCert);
    const ca = readFileSync(pki.caCert);
    const { v, s } = await setup(t, { tls: { key, cert } });
    const mutual = await startSyslog({ vault: v.vault, port: 0, token: v.tokens.writer, logger: silent, tls: { key, cert, ca, requestCert: true }, frameTimeoutMs: 2_000 });
    t.after(() => mutual.close());

    await sendParts(s.port, cutRandomly(Buffer.concat(samples.map(octet)), prng(3), 30), { tls: { ca } });
    await until('TLS messages stored', () => s.stats.stored === samples.length);
    await sendParts(mutual.port, [octet(samples[0]!), Buffer.from(`${samples[2]!.toString()}\n`)], { tls: { ca, cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) } });
    await until('mutual TLS messages stored', () => mutual.stats.stored === 2);

    // Without a certificate, or with one from another CA: refused, nothing stored.
    for (const client of [{ ca }, { ca, cert: readFileSync(pki.strangerCert), key: readFileSync(pki.strangerKey) }]) {
      try {
        const sock = await openSyslog(mutual.port, { tls: client });
        sock.on('error', () => undefined);
        sock.write(octet('<13>1 - intruder app - - - let me in'));
        assert.ok(await closedByPeer(sock), 'the server closes the connection');
      } catch {
        /* the handshake itself failed: refused as well */
      }
    }
    await sleep(200);
    assert.equal(mutual.stats.stored, 2);
    assert.equal(mutual.stats.refused['tls-handshake-failed'], 2);

    const stored = await storedRecords(v);
    assert.equal(stored.length, samples.length + 2);
    stored.slice(0, samples.length).forEach((r, i) => {
      assert.ok(r.bytes.equals(samples[i]!));
      assert.deepEqual(r.attrs, { peer: '127.0.0.1', transport: 'syslog-tls' });
    });
    assert.ok(stored[samples.length]!.bytes.equals(samples[0]!));
    assert.ok(stored[samples.length + 1]!.bytes.equals(samples[2]!));
    assert.deepEqual(stored[samples.length]!.attrs, { peer: '127.0.0.1', tlsPeer: 'web-01.example.org', transport: 'syslog-tls' });
  });

  test('hostile clients are cut off with an audit event; bad messages are skipped; the listener stays up for good clients', async (t) => {
    const { v, s } = await setup(t, { maxFrameBytes: 1024, frameTimeoutMs: 400, maxConnections: 20 }, { auditFloodLimit: 100 });
    const good = Buffer.from('<13>1 2026-12-04T10:00:00Z host app - - - still fine');

    const probe = async (parts: Buffer[], delayMs = 0): Promise<boolean> => {
      const sock = await openSyslog(s.port);
      sock.on('error', () => undefined);
      const closed = closedByPeer(sock, 5_000);
      for (const p of parts) {
        if (sock.destroyed) break;
        sock.write(p);
        if (delayMs) await sleep(delayMs);
      }
      return closed;
    };
    assert.ok(await probe([Buffer.from('GET / HTTP/1.1\r\nHost: vault\r\n\r\n')]), 'an HTTP request is cut off');
    assert.ok(await probe([Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03])]), 'binary is cut off');
    assert.ok(await probe([Buffer.from('99999999999 <13>1 - - - - - x')]), 'a huge declared length is cut off');
    assert.ok(await probe([Buffer.from('<13>1 - h a - - - '), ...Array.from({ length: 40 }, () => Buffer.alloc(1000, 0x41))]), 'an endless line is cut off');
    const t0 = Date.now();
    assert.ok(await probe(Array.from({ length: 40 }, (_, i) => Buffer.from('<13>1 slow'[i % 10]!)), 100), 'a slowloris is cut off');
    assert.ok(Date.now() - t0 < 2_500, 'within about the frame timeout');

    // Too large / not syslog: that message is skipped, the connection goes on.
    await sendParts(s.port, [octet(Buffer.alloc(3000, '<')), octet('hello, not syslog'), octet(good), Buffer.concat([Buffer.from('<13>'), Buffer.alloc(2000, 'z'), Buffer.from('\n')]), octet(good)]);
    await until('good messages of the mixed connection stored', () => s.stats.stored === 2);
    assert.deepEqual(s.stats.rejected, { TOO_LARGE: 2, NOT_SYSLOG: 1 });

    // More connections than allowed: the extra ones are closed at once, the others still work.
    const socks = await Promise.all(Array.from({ length: 25 }, () => openSyslog(s.port).then((x) => (x.on('error', () => undefined), x))));
    const closed = await Promise.all(socks.map((x) => closedByPeer(x, 1_000)));
    assert.equal(closed.filter(Boolean).length, 5, 'max+5 connections: 5 refused');
    await until('refusals counted', () => s.stats.refused['too-many-connections'] === 5);
    const open = socks.filter((_, i) => !closed[i]);
    open[0]!.write(octet(good));
    await until('an admitted connection still stores', () => s.stats.stored === 3);
    await Promise.all(socks.map((x) => endAndWait(x)));

    // A good client afterwards gets through; one that closes after a line without LF too. A
    // counted frame cut short by the close is reported, not stored.
    await sendParts(s.port, [octet(good), Buffer.from(`${good.toString()}\n`)]);
    await sendParts(s.port, [good]);
    await sendParts(s.port, [octet(good).subarray(0, 20)]);
    await until('the good clients stored', () => s.stats.stored === 6);
    await until('the cut frame counted', () => s.stats.rejected['TRUNCATED'] === 1);
    assert.equal(s.stats.state, 'listening');
    const stored = await storedRecords(v);
    assert.equal(stored.length, 6);
    assert.ok(stored.every((r) => r.bytes.equals(good)));

    await sleep(1_100); // the sweep reports rejections once a second
    const audit = await auditRecords(v);
    const refused = audit.filter((a) => a.type === 'syslog.refused');
    const reasons = refused.map((a) => a.reason);
    for (const r of ['not-syslog', 'frame-too-large', 'line-too-long', 'frame-timeout', 'too-many-connections']) assert.ok(reasons.includes(r), `audit has a ${r} refusal: ${reasons.join(', ')}`);
    assert.ok(refused.every((a) => a.address === '127.0.0.1' && a.transport === 'tcp' && a.port === s.port));
    const rejected = audit.filter((a) => a.type === 'syslog.rejected');
    assert.equal(rejected.reduce((n, a) => n + Number(a.count), 0), 4);
    assert.ok(!JSON.stringify(rejected).includes('not syslog'), 'no message content in the audit log');
  });

  test('1,001 connections at once: the one over the limit is refused, the 1,000 others each store a message', async (t) => {
    const { v, s } = await setup(t);
    const socks = await Promise.all(
      Array.from({ length: 1001 }, (_, i) =>
        openSyslog(s.port).then((x) => {
          x.on('error', () => undefined);
          x.write(`<13>1 - host app - - - connection ${i}\n`);
          return x;
        }),
      ),
    );
    await until('a message from each admitted connection stored', () => s.stats.stored === 1000, 20_000);
    await sleep(100);
    assert.equal(s.stats.stored, 1000);
    assert.equal(s.stats.refused['too-many-connections'], 1);
    assert.equal(s.stats.connections, 1000);
    await Promise.all(socks.map((x) => endAndWait(x)));
    await until('no connections left', () => s.stats.connections === 0);
    const texts = new Set((await storedRecords(v)).map((r) => r.bytes.toString()));
    assert.equal(texts.size, 1000);
    assert.ok([...texts].every((x) => /^<13>1 - host app - - - connection \d+$/.test(x)));
  });

  test('a quiet connection is closed after the idle timeout; a talking one is not', async (t) => {
    const { s } = await setup(t, { idleTimeoutMs: 600 });
    const quiet = await openSyslog(s.port);
    const talking = await openSyslog(s.port);
    quiet.write('<13>1 - host app - - - once\n');
    const quietClosed = closedByPeer(quiet, 3_000);
    let talkingClosed = false;
    talking.once('close', () => (talkingClosed = true));
    for (let i = 0; i < 12; i++) {
      talking.write(`<13>1 - host app - - - tick ${i}\n`);
      await sleep(100);
    }
    assert.ok(await quietClosed, 'the quiet connection was closed');
    assert.equal(talkingClosed, false);
    await endAndWait(talking);
    assert.equal(s.stats.stored, 13);
  });

  test('the vault pushing back pauses reading instead of buffering; every message is stored, in order', async (t) => {
    const { v, s } = await setup(t, { maxFrameBytes: 512, maxQueuedBytes: 4096, batchMessages: 100, retryDelayMs: 100 }, { checkpointIntervalMs: 300, maxPendingEntries: 300, admissionTimeoutMs: 50 });
    const msgs = Array.from({ length: 800 }, (_, i) => Buffer.from(`<14>1 2026-12-04T10:00:00Z host app - - - message ${i} ${'p'.repeat(60)}`));
    let sawPause = false;
    const watch = setInterval(() => (sawPause ||= s.stats.paused), 5);
    try {
      await sendParts(s.port, [Buffer.concat(msgs.map(octet))]);
      await until('all stored', () => s.stats.stored === msgs.length, 30_000);
    } finally {
      clearInterval(watch);
    }
    assert.ok(sawPause, 'reading paused while the vault was behind');
    assert.ok(s.stats.pushbacks > 0, 'the vault pushed back at least once (and the batch was retried)');
    assert.ok(s.stats.queuedBytes === 0 && !s.stats.paused);
    const stored = await storedRecords(v);
    assert.equal(stored.length, msgs.length);
    stored.forEach((r, i) => assert.ok(r.bytes.equals(msgs[i]!), `record ${i}`));
  });

  test('revoking the writer token stops the listener: connections closed, nothing more stored, audited', async (t) => {
    const { v, s } = await setup(t);
    const sock = await openSyslog(s.port);
    sock.on('error', () => undefined);
    sock.write(octet('<13>1 - host app - - - before'));
    await until('first message stored', () => s.stats.stored === 1);
    const writer = v.vault.auth.authenticate(v.tokens.writer)!;
    await v.vault.revokePrincipal(writer.id, 'test');
    const closed = closedByPeer(sock, 3_000);
    sock.write(octet('<13>1 - host app - - - after'));
    assert.ok(await closed, 'the open connection is closed');
    await until('listener stopped', () => s.stats.state === 'revoked');
    await assert.rejects(openSyslog(s.port), /ECONNREFUSED/);
    await sleep(200);
    assert.equal(s.stats.stored, 1);
    assert.equal((await storedRecords(v)).length, 1);
    const stopped = (await auditRecords(v)).filter((a) => a.type === 'syslog.stopped');
    assert.equal(stopped.length, 1);
    assert.equal((stopped[0]!.principal as { name: string }).name, 'initial-writer');
  });

  test('the listener does not start without a valid writer token, or on a port in use', async (t) => {
    const v = await startInProc();
    t.after(() => v.close());
    const start = (token: string, port = 0) => startSyslog({ vault: v.vault, port, token, logger: silent });
    const refused = async (token: string, re: RegExp, port = 0): Promise<void> => {
      await assert.rejects(start(token, port), (e: unknown) => e instanceof CustodyError && e.code === 'CONFIG' && re.test(e.message));
    };
    await refused('', /needs a writer token/);
    await refused('cst_' + 'A'.repeat(43), /not valid/);
    await refused(v.tokens.auditor, /a auditor|auditor; the listener needs a writer/);
    const { principal, token } = await v.vault.createPrincipal({ name: 'old-syslog', role: 'writer', createdBy: 'test' });
    await v.vault.revokePrincipal(principal.id, 'test');
    await refused(token, /revoked/);
    const s = await start(v.tokens.writer);
    await refused(v.tokens.writer, /already in use/, s.port);
    await s.close();
    assert.equal(s.stats.state, 'closed');
  });
});

// ---- real clients: util-linux logger and rsyslogd, through `custody serve` ------------------------

function httpsJson<T>(port: number, path: string, token: string, ca: Buffer): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as T) : reject(new Error(`${res.statusCode} ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('syslog from real clients through custody serve', () => {
  const installed = realClientsInstalled();

  test('custody serve refuses --syslog-port without a writer token, saying how to give one', async () => {
    const dir = makeTempDir('syslog-cli');
    const r = await runServe(['--data', join(dir, 'vault'), '--port', String(await freePort()), '--syslog-port', String(await freePort())], { CUSTODY_SYSLOG_TOKEN: '' });
    assert.equal(await r.stop(), 2);
    assert.match(r.output(), /needs a writer token.*--syslog-token-file/s);
    assert.match(r.output(), /\[CONFIG\]/);
  });

  test('util-linux logger and rsyslogd (omfwd: octet-counted, LF, and TLS with a client certificate) deliver into the vault', async (t) => {
    assert.ok(installed.logger, 'util-linux logger is installed');
    assert.ok(installed.rsyslogd && installed.gtls, 'rsyslog and rsyslog-gnutls are installed (apt-get install rsyslog rsyslog-gnutls)');
    const pki = makePki();
    const ca = readFileSync(pki.caCert);
    const dir = makeTempDir('syslog-serve');
    const data = join(dir, 'vault');
    const init = await runCli(['init', '--data', data]);
    assert.equal(init.code, 0, init.stderr);
    const tokens = readTokens(data);
    const tokenFile = join(dir, 'syslog.token');
    writeFileSync(tokenFile, `SYSLOG_TOKEN=${tokens.writer}\n`, { mode: 0o600 });
    const [httpPort, tcpPort, tlsPort, inPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const server = await runServe(['--data', data, '--port', String(httpPort), '--checkpoint-interval', '20', '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--syslog-port', String(tcpPort), '--syslog-tls-port', String(tlsPort), '--syslog-tls-ca', pki.caCert, '--syslog-token-file', tokenFile]);
    t.after(() => server.stop());
    assert.match(server.output(), new RegExp(`Syslog is listening on tcp://127.0.0.1:${tcpPort} \\(stored as writer "initial-writer"\\)`));
    assert.match(server.output(), new RegExp(`Syslog is listening on tls://127.0.0.1:${tlsPort}`));

    const rsyslog = await startRsyslog(
      `global(DefaultNetstreamDriverCAFile="${pki.caCert}" DefaultNetstreamDriverCertFile="${pki.clientCert}" DefaultNetstreamDriverKeyFile="${pki.clientKey}")
module(load="imtcp")
input(type="imtcp" port="${inPort}" address="127.0.0.1" ruleset="toCustody")
ruleset(name="toCustody") {
  action(type="omfwd" target="127.0.0.1" port="${tcpPort}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="${tcpPort}" protocol="tcp" TCP_Framing="traditional" template="RSYSLOG_TraditionalForwardFormat")
  action(type="omfwd" target="127.0.0.1" port="${tlsPort}" protocol="tcp" StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}`,
      inPort,
    );
    t.after(() => rsyslog.stop());

    const run = `r${Date.now().toString(36)}`;
    // Straight from logger to Custody: octet counting and LF framing, RFC 5424 and RFC 3164.
    await runLogger(tcpPort, ['--rfc5424', '--octet-count', '-t', 'direct', `${run} direct octet 5424 über`]);
    await runLogger(tcpPort, ['--rfc3164', '-t', 'direct', `${run} direct lf 3164`]);
    // Through rsyslogd: each message is forwarded by the three actions.
    await runLogger(inPort, ['--rfc5424', '-t', 'relayed', `${run} relayed one`]);
    await runLogger(inPort, ['--rfc3164', '-t', 'relayed', `${run} relayed two ✓`]);

    type Entry = { record: string; recordEncoding: string; envelope: { source: string; producer: string; attrs?: Record<string, string> } };
    const entries = await waitFor(
      'eight syslog records',
      async () => {
        const logs = await httpsJson<{ logs: Array<{ name: string; size: number }> }>(httpPort, '/v1/logs', tokens.auditor, ca);
        const size = logs.logs.find((l) => l.name === 'local')!.size;
        if (size < 8) return false;
        const out: Entry[] = [];
        for (let i = 0; i < size; i++) out.push(await httpsJson<Entry>(httpPort, `/v1/logs/local/entries/${i}`, tokens.auditor, ca));
        return out;
      },
      20_000,
      100,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n--- custody ---\n${server.output()}\n--- rsyslogd ---\n${rsyslog.stderr()}`);
    });
    assert.equal(entries.length, 8);
    const texts = entries.map((e) => Buffer.from(e.record, e.recordEncoding as BufferEncoding).toString('utf8'));
    for (const e of entries) {
      assert.equal(e.envelope.source, 'syslog');
      assert.equal(e.envelope.producer, 'initial-writer');
    }
    const find = (re: RegExp): number[] => texts.flatMap((x, i) => (re.test(x) ? [i] : []));
    // logger's own frames: RFC 5424 header, RFC 3164 header; no framing bytes kept.
    assert.equal(find(new RegExp(`^<13>1 \\S+ \\S+ direct \\S+ - \\[timeQuality[^\\]]*\\] ${run} direct octet 5424 über$`)).length, 1, texts.join('\n'));
    assert.equal(find(new RegExp(`^<13>[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d \\S+ direct(\\[\\d+\\])?: ${run} direct lf 3164$`)).length, 1, texts.join('\n'));
    // rsyslog's: octet-counted RFC 5424 over TCP and TLS, LF-framed traditional format.
    for (const what of ['relayed one', 'relayed two ✓']) {
      const five = find(new RegExp(`^<13>1 \\S+ \\S+ relayed .*${run} ${what}$`));
      const three = find(new RegExp(`^<13>[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d \\S+ relayed(\\[\\d+\\])?:? ${run} ${what}$`));
      assert.equal(five.length, 2, `"${what}" arrives as RFC 5424 over TCP and over TLS:\n${texts.join('\n')}`);
      assert.equal(three.length, 1, `"${what}" arrives LF-framed:\n${texts.join('\n')}`);
      const viaTls = five.filter((i) => entries[i]!.envelope.attrs?.transport === 'syslog-tls');
      assert.equal(viaTls.length, 1);
      assert.equal(entries[viaTls[0]!]!.envelope.attrs?.tlsPeer, 'web-01.example.org');
    }
    assert.equal(await server.stop(), 0);
  });
});
