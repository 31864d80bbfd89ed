/**
 * A stand-in vault node for the leader election test (run as a real `node` process):
 *   node leader-child.js URL NODE LOG...
 * prints one JSON line per event on stdout: {"event":"connected"|"acquire"|"lose"|"error", "t": ms since epoch, ...}.
 * "standby" is printed once when the first attempt to lead found the lock taken.
 */
import { PgLeader } from '../../src/storage/pg/leader.js';

const [url, node, ...logs] = process.argv.slice(2);
if (!url || !node || logs.length === 0) {
  console.error('usage: leader-child.js URL NODE LOG...');
  process.exit(2);
}
const say = (o: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify({ ...o, node, t: Date.now() }) + '\n');
};
const leader = new PgLeader({
  connectionString: url,
  node,
  logs,
  pollMs: 250,
  onAcquire: (l) => say({ event: 'acquire', log: l.log, epoch: l.epoch }),
  onLose: (log, reason) => say({ event: 'lose', log, reason }),
  onError: (e) => say({ event: 'error', message: e.message }),
});
leader.start();
let said = false;
const t = setInterval(() => {
  if (!said && leader.leases.length === 0 && leader.connected) {
    said = true;
    say({ event: 'standby' });
  }
}, 100);
process.on('SIGTERM', () => {
  clearInterval(t);
  void leader.stop().then(() => process.exit(0));
});
