/** `custody witness init | add-log | logs | serve` (docs/WITNESS.md). */
import { resolve } from 'node:path';
import { pino } from 'pino';
import { CustodyError } from '../errors.js';
import { print } from '../cli/commands.js';
import { loadTls, takeLock } from '../cli/serve.js';
import { WitnessStore } from './store.js';
import { Witness, startWitnessServer } from './server.js';

export function witnessInit(o: { data: string; name: string; json?: boolean }): void {
  process.umask(0o077);
  const dir = resolve(o.data);
  const s = WitnessStore.init(dir, o.name);
  print(o.json, { dataDir: dir, name: s.name, vkey: s.verifierKey }, () =>
    [
      `A new witness "${s.name}" was created in ${dir}.`,
      '',
      'Its verifier key (give it to the vault operator for --witness, and to auditors for --witness on verify):',
      `  ${s.verifierKey}`,
      '',
      `Next: custody witness add-log --data ${dir} --origin <origin> --vkey <log key>   (one per log; custody logs lists them)`,
      `Then: custody witness serve --data ${dir} --port 8900`,
    ].join('\n'),
  );
}

export function witnessAddLog(o: { data: string; origin: string; vkey: string; json?: boolean }): void {
  const s = WitnessStore.open(resolve(o.data));
  s.addLog(o.origin, o.vkey);
  print(o.json, { origin: o.origin, vkey: o.vkey, logs: Object.keys(s.logs()).length }, () => `The witness now witnesses ${o.origin} (a running witness picks it up at once).`);
}

export function witnessLogs(o: { data: string; json?: boolean }): void {
  const s = WitnessStore.open(resolve(o.data));
  const logs = Object.entries(s.logs()).map(([origin, vkey]) => {
    const st = s.state(origin);
    return { origin, vkey, size: st?.size ?? 0, root: st?.root ?? null, cosignedAt: st ? new Date(st.cosignedAt * 1000).toISOString() : null };
  });
  print(o.json, { name: s.name, vkey: s.verifierKey, logs }, () =>
    [`witness ${s.name}  ${s.verifierKey}`, ...logs.map((l) => `  ${l.origin}  cosigned size ${l.size}${l.cosignedAt ? ` at ${l.cosignedAt}` : ''}`)].join('\n'),
  );
}

export async function witnessServe(o: { data: string; host: string; port: number; prefix?: string; tlsCert?: string; tlsKey?: string; logLevel?: string }): Promise<void> {
  process.umask(0o077);
  const dir = resolve(o.data);
  const store = WitnessStore.open(dir);
  const tls = o.tlsCert || o.tlsKey ? loadTls(o.tlsCert, o.tlsKey) : undefined;
  const release = takeLock(dir);
  const logger = pino({ level: o.logLevel ?? process.env.CUSTODY_LOG_LEVEL ?? 'info' });
  let srv;
  try {
    srv = await startWitnessServer(new Witness(store, logger), { host: o.host, port: o.port, prefix: o.prefix, tls, logger });
  } catch (e) {
    release();
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CustodyError('CONFIG', `Port ${o.port} on ${o.host} is already in use; pass another --port.`);
    throw e;
  }
  process.stdout.write(`Witness ${store.name} is listening on ${srv.url}/add-checkpoint (key ${store.verifierKey}; ${Object.keys(store.logs()).length} logs)\n`);
  const stop = async (): Promise<void> => {
    await srv.close();
    release();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}
