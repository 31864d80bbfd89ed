/**
 * Evidence bundles: the export of 100,000 entries with their proofs (target ≤ 30 s) and the
 * throughput of `custody verify-bundle`, each beside a same-run baseline.
 *
 * - Corpus: N CloudTrail-like records (bench/records.ts, ~1 KB each, every eventID unique)
 *   appended to the log "local" of a fresh `custody serve`.
 * - Export: the real CLI, `custody export --entries-file <all N> --out bundle.zip --no-verify`,
 *   timed from spawn to exit (the server reads, proves and zips; the CLI writes the file).
 *   Baseline: what an auditor does without bundles — GET /v1/logs/local/entries/<i> (the
 *   record, its envelope and inclusion proof as JSON) one by one over 4 keep-alive
 *   connections, for at most --evidence-baseline-seconds; entries/s.
 * - verify-bundle: `custody verify-bundle bundle.zip --key <vkey> --json`, spawn to exit, no
 *   server needed. Baseline: the same bundle checked by Go's reference code (bench/evidence-go.ts:
 *   archive/zip, SHA-256 of every file, note.Open, tlog.CheckRecord per entry).
 */
import http from 'node:http';
import { writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeBatch, stampBatch } from './records.js';
import { startServer, goTlogcheck, type ServerHandle } from './custody.js';
import { evidenceCheckTool } from './evidence-go.js';
import { tempDir, dropTempDir, httpRequest, procMemory, procCpuSeconds, run, sleep, syncDisks, int, fixed } from './util.js';

export interface EvidenceBenchOptions {
  bin: string;
  repoRoot: string;
  entries: number;
  baselineMaxS: number;
  serverNodeArgs: string[];
}

export interface EvidenceBenchResult {
  entries: number;
  avgRecordBytes: number;
  export: { ok: boolean; seconds: number; entriesPerSec: number; bundleMB: number; serverCpuCores: number; serverRssGrowthMB: number; detail: string };
  exportBaseline: { entries: number; seconds: number; entriesPerSec: number };
  /** export entries/s ÷ baseline entries/s */
  exportRatio: number;
  verify: { ok: boolean; seconds: number; entriesPerSec: number; detail: string };
  verifyGo: { ok: boolean; seconds: number; entriesPerSec: number; detail: string } | { skipped: string };
  /** custody verify-bundle entries/s ÷ Go entries/s */
  verifyRatio: number;
}

async function fill(srv: ServerHandle, n: number, log: (s: string) => void): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const batch = 1000;
  const templates = Array.from({ length: 4 }, (_, w) => makeBatch(9000 + w, batch));
  let next = 0;
  let bytes = 0;
  let seq = 0;
  const worker = async (w: number): Promise<void> => {
    const t = templates[w]!;
    while (next < n) {
      const count = Math.min(batch, n - next);
      next += count;
      seq = stampBatch(t, 40 + w, seq);
      const body = count === batch ? t.body : Buffer.from(t.lines.slice(0, count).join('\n') + '\n');
      const r = await httpRequest(agent, srv.port, 'POST', '/v1/logs/local/entries', { authorization: `Bearer ${srv.writerToken}`, 'content-type': 'application/x-ndjson' }, body);
      if (r.status !== 200) throw new Error(`append: ${r.status} ${r.body.toString().slice(0, 300)}`);
      bytes += body.length;
    }
  };
  await Promise.all(templates.map((_, w) => worker(w)));
  // Every appended entry in a signed checkpoint.
  for (;;) {
    const r = await httpRequest(agent, srv.port, 'GET', '/v1/logs', { authorization: `Bearer ${srv.auditorToken}` });
    const local = (JSON.parse(r.body.toString()) as { logs: Array<{ name: string; size: number }> }).logs.find((l) => l.name === 'local')!;
    if (local.size >= n) break;
    await sleep(100);
  }
  agent.destroy();
  log(`evidence: ${int(n)} records appended (${fixed(bytes / n, 0)} B each on average)`);
  return bytes / n - 1;
}

/** GET /v1/logs/local/entries/<i> one by one over `conns` keep-alive connections. */
async function baseline(srv: ServerHandle, n: number, maxS: number, conns = 4): Promise<{ entries: number; seconds: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const t0 = performance.now();
  const until = t0 + maxS * 1000;
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < n && performance.now() < until) {
      const i = next++;
      const r = await httpRequest(agent, srv.port, 'GET', `/v1/logs/local/entries/${i}`, { authorization: `Bearer ${srv.auditorToken}` });
      if (r.status !== 200) throw new Error(`GET entry ${i}: ${r.status}`);
      done++;
    }
  };
  await Promise.all(Array.from({ length: conns }, worker));
  agent.destroy();
  return { entries: done, seconds: (performance.now() - t0) / 1000 };
}

export async function evidenceBench(o: EvidenceBenchOptions, log: (s: string) => void): Promise<EvidenceBenchResult> {
  const dir = tempDir('custody-bench-evidence-');
  let srv: ServerHandle | null = null;
  try {
    srv = await startServer({ bin: o.bin, dataDir: join(dir, 'data'), logFile: join(dir, 'server.log'), nodeArgs: o.serverNodeArgs });
    const server = srv;
    const avg = await fill(server, o.entries, log);
    syncDisks();
    const list = join(dir, 'entries.txt');
    writeFileSync(list, Array.from({ length: o.entries }, (_, i) => `local:${i}`).join('\n') + '\n');
    const zip = join(dir, 'bundle.zip');

    log(`evidence: custody export of ${int(o.entries)} entries with proofs`);
    const cpu0 = procCpuSeconds(server.pid);
    const rss0 = procMemory(server.pid).rss;
    let rssPeak = rss0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          rssPeak = Math.max(rssPeak, procMemory(server.pid).rss);
        } catch {
          /* gone */
        }
        await sleep(50);
      }
    })();
    const ex = await run(process.execPath, [o.bin, 'export', '--entries-file', list, '--out', zip, '--no-verify', '--json', '--url', `http://127.0.0.1:${server.port}`, '--token', server.auditorToken], { timeoutMs: 600_000 });
    sampling = false;
    await sampler;
    const exCpu = procCpuSeconds(server.pid) - cpu0;
    let exOk = ex.code === 0;
    let exDetail = `exit ${ex.code}`;
    try {
      const s = JSON.parse(ex.stdout) as { entries: number; bytes: number };
      exOk &&= s.entries === o.entries;
      exDetail += `, ${int(s.entries)} entries, ${fixed(s.bytes / 1e6)} MB`;
    } catch {
      exOk = false;
      exDetail += `: ${(ex.stderr || ex.stdout).slice(-300)}`;
    }
    const bundleMB = exOk ? statSync(zip).size / 1e6 : NaN;
    log(`evidence: export ${fixed(ex.seconds, 1)} s (${int(o.entries / ex.seconds)} entries/s), ${fixed(bundleMB)} MB; server ${fixed(exCpu / ex.seconds, 2)} cores, RSS +${int((rssPeak - rss0) / 2 ** 20)} MiB`);

    log(`evidence: baseline GET /v1/logs/local/entries/<i> one by one (4 connections, at most ${o.baselineMaxS} s)`);
    const b = await baseline(server, o.entries, o.baselineMaxS);
    log(`evidence: baseline ${int(b.entries / b.seconds)} entries/s (${int(b.entries)} in ${fixed(b.seconds, 1)} s)`);
    await server.stop();
    srv = null;
    syncDisks();

    log('evidence: custody verify-bundle (no server)');
    const vf = await run(process.execPath, [o.bin, 'verify-bundle', zip, '--key', server.verifierKey, '--json'], { timeoutMs: 600_000 });
    let vOk = vf.code === 0;
    let vDetail = `exit ${vf.code}`;
    try {
      const r = JSON.parse(vf.stdout) as { ok: boolean; verified: number; problems: unknown[] };
      vOk &&= r.ok && r.verified === o.entries;
      vDetail += `, ${int(r.verified)} entries verified, ${r.problems.length} problems`;
    } catch {
      vOk = false;
      vDetail += `: ${(vf.stderr || vf.stdout).slice(-300)}`;
    }
    log(`evidence: verify-bundle ${vOk ? 'OK' : 'FAILED'} ${int(o.entries / vf.seconds)} entries/s (${fixed(vf.seconds, 1)} s)`);

    let verifyGo: EvidenceBenchResult['verifyGo'];
    const tc = await goTlogcheck(o.repoRoot, log); // installs Go and x/mod when missing
    if (!tc) verifyGo = { skipped: 'Go and golang.org/x/mod are not available' };
    else {
      const tool = evidenceCheckTool();
      const g = await run(tool, [zip, server.verifierKey], { timeoutMs: 600_000 });
      const ok = g.code === 0 && new RegExp(`^OK items=${o.entries} `).test(g.stdout);
      verifyGo = { ok, seconds: g.seconds, entriesPerSec: o.entries / g.seconds, detail: (g.stdout || g.stderr).trim().slice(-300) };
      log(`evidence: Go reference ${ok ? 'OK' : 'FAILED'} ${int(o.entries / g.seconds)} entries/s (${fixed(g.seconds, 1)} s)`);
    }
    const exportEps = o.entries / ex.seconds;
    const baseEps = b.entries / b.seconds;
    const vEps = o.entries / vf.seconds;
    return {
      entries: o.entries,
      avgRecordBytes: avg,
      export: { ok: exOk, seconds: ex.seconds, entriesPerSec: exportEps, bundleMB, serverCpuCores: exCpu / ex.seconds, serverRssGrowthMB: (rssPeak - rss0) / 2 ** 20, detail: exDetail },
      exportBaseline: { entries: b.entries, seconds: b.seconds, entriesPerSec: baseEps },
      exportRatio: exportEps / baseEps,
      verify: { ok: vOk, seconds: vf.seconds, entriesPerSec: vEps, detail: vDetail },
      verifyGo,
      verifyRatio: 'entriesPerSec' in verifyGo ? vEps / verifyGo.entriesPerSec : NaN,
    };
  } finally {
    if (srv) await srv.stop();
    dropTempDir(dir);
    syncDisks();
  }
}
