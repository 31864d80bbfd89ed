/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `npm run bench -- --cpu-prof DIR`):
 * where the main thread's time went, by function (self and inclusive) and by module.
 *
 *   node packages/vault/dist/bench/profile-summary.js FILE.cpuprofile [--top N] [--json]
 *
 * Self time: samples whose top frame is the function. Inclusive: samples with the function
 * anywhere on the stack (counted once per sample even when recursive). Times come from the
 * profile's own sample time deltas. "(idle)" is the event loop waiting (for fsync, network).
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    u = u.slice(nm + '/node_modules/'.length);
    const parts = u.split('/');
    const pkg = parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
    return `${pkg}:${u.slice(pkg.length + 1)}`;
  }
  const m = /packages\/(vault|verify)\/dist\/(.*)$/.exec(u);
  if (m) return `${m[1]}/${m[2]}`;
  return u;
}

/** A module-level bucket: our files individually, each npm package as one, node internals as one. */
function moduleOf(cf: CallFrame): string {
  const u = shortUrl(cf.url);
  if (!u) return cf.functionName.startsWith('(') ? cf.functionName : '(native / builtin)';
  if (u.startsWith('node:')) return 'node internals';
  if (u.includes(':') && !u.startsWith('/')) return `npm ${u.split(':')[0]}`;
  return u;
}

function keyOf(cf: CallFrame): string {
  const name = cf.functionName || '(anonymous)';
  const u = shortUrl(cf.url);
  return u ? `${name}  ${u}:${cf.lineNumber + 1}` : name;
}

/**
 * Custody's pipeline stages, matched against the whole stack of each sample, first rule wins.
 * [stage, function names (any frame), file fragments (any frame)]
 */
const CATEGORIES: Array<[string, string[], string[]]> = [
  ['parse records: JSON.parse per line (ingest/sources/generic.ts)', ['parseNdjson', 'parseJsonBody', 'checkJson', 'decodeBody'], []],
  ['journal: encode + AES-GCM + copies + write (storage/journal.ts)', [], ['storage/journal.js']],
  ['integration: leaf hashes (sequencer leafHash)', ['leafHash'], []],
  ['integration: bundle encode + seal (posix.ts bundleWrite)', ['bundleWrite', 'encodeBundle'], []],
  ['integration: tree tiles (log/tree.ts)', [], ['log/tree.js']],
  ['integration: tile/bundle/checkpoint files (atomic.ts, posix.ts, db.ts)', ['writeFileDurable', 'writeAll', 'fsyncDirs', 'fsyncDir', 'removePartials', 'writeCheckpointSync', 'setLogState', 'writeFileAtomicSync'], []],
  ['integration: proofs, signing, rest (log-sequencer.ts)', ['integrateRound', 'publish', 'integrate'], []],
  ['envelopes (log/entry.ts, vault.ts append)', ['buildEnvelopes', 'envelopePrefix'], ['src/vault.js']],
  ['sequencer queue (log-sequencer.ts add/flush)', [], ['sequencer/log-sequencer.js']],
  ['route handler + auth + metrics (server/*)', [], ['server/entries.js', 'server/auth.js', 'server/health.js', 'server/read.js', 'auth/tokens.js', 'prom-client']],
  ['HTTP + Fastify (parsing, body, reply)', [], ['fastify', 'find-my-way', 'light-my-request', 'node:_http', 'node:net', 'node:internal/streams', 'node:internal/stream_base_commons', 'avvio']],
];

function categoryOf(frames: CallFrame[]): string {
  const top = frames[0]!;
  if (top.functionName === '(idle)') return '(idle: waiting for disk or network)';
  if (top.functionName === '(garbage collector)') return '(garbage collector)';
  if (top.functionName === '(program)') return '(program: V8/native outside JS)';
  for (const [name, fns, files] of CATEGORIES) {
    for (const f of frames) {
      if (fns.includes(f.functionName)) return name;
      const u = f.url;
      if (u && files.some((x) => u.includes(x))) return name;
    }
  }
  return 'other';
}

export interface Summary {
  file: string;
  seconds: number;
  categories: Array<{ stage: string; ms: number; pct: number }>;
  self: Array<{ fn: string; ms: number; pct: number }>;
  inclusive: Array<{ fn: string; ms: number; pct: number }>;
  modules: Array<{ module: string; ms: number; pct: number }>;
}

export function summarise(file: string, top = 30): Summary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const mods = new Map<string, number>();
  const cats = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000; // ms attributed to this sample
    const id = p.samples[i]!;
    const n = byId.get(id);
    if (!n) continue;
    total += dt;
    const k = keyOf(n.callFrame);
    self.set(k, (self.get(k) ?? 0) + dt);
    const m = moduleOf(n.callFrame);
    mods.set(m, (mods.get(m) ?? 0) + dt);
    const seen = new Set<string>();
    const frames: CallFrame[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cn = byId.get(cur)!;
      frames.push(cn.callFrame);
      const ck = keyOf(cn.callFrame);
      if (ck === '(root)' || seen.has(ck)) continue;
      seen.add(ck);
      incl.set(ck, (incl.get(ck) ?? 0) + dt);
    }
    const cat = categoryOf(frames);
    cats.set(cat, (cats.get(cat) ?? 0) + dt);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, ms]) => ({ k, ms, pct: (100 * ms) / total }));
  return {
    file,
    seconds: total / 1000,
    categories: [...cats.entries()].sort((a, b) => b[1] - a[1]).map(([stage, ms]) => ({ stage, ms, pct: (100 * ms) / total })),
    self: rank(self).map(({ k, ms, pct }) => ({ fn: k, ms, pct })),
    inclusive: rank(incl).map(({ k, ms, pct }) => ({ fn: k, ms, pct })),
    modules: rank(mods).map(({ k, ms, pct }) => ({ module: k, ms, pct })),
  };
}

function print(s: Summary): string {
  const row = (pct: number, ms: number, label: string): string => `  ${pct.toFixed(1).padStart(5)}%  ${Math.round(ms).toLocaleString('en-US').padStart(8)} ms  ${label}`;
  return [
    `${s.file}: ${s.seconds.toFixed(1)} s of samples`,
    '',
    'by Custody stage (whole stack, first matching rule):',
    ...s.categories.map((c) => row(c.pct, c.ms, c.stage)),
    '',
    'by module (self time):',
    ...s.modules.map((m) => row(m.pct, m.ms, m.module)),
    '',
    'by function, self time:',
    ...s.self.map((f) => row(f.pct, f.ms, f.fn)),
    '',
    'by function, inclusive time:',
    ...s.inclusive.map((f) => row(f.pct, f.ms, f.fn)),
    '',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const ti0 = args.indexOf('--top');
  const file = args.find((a, i) => !a.startsWith('--') && !(ti0 >= 0 && i === ti0 + 1));
  if (!file) {
    process.stderr.write('usage: profile-summary.js FILE.cpuprofile [--top N] [--json]\n');
    process.exit(2);
  }
  const ti = args.indexOf('--top');
  const top = ti >= 0 ? Number(args[ti + 1]) : 30;
  const s = summarise(file, top);
  process.stdout.write(args.includes('--json') ? JSON.stringify(s, null, 2) + '\n' : print(s));
}
