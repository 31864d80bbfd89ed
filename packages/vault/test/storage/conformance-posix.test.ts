/**
 * The log-store conformance suite (conformance.ts) against PosixLogStore in a temp folder,
 * with a real keyring.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Keyring } from '../../src/crypto/keyring.js';
import { PosixLogStore } from '../../src/storage/posix.js';
import { conformance } from './conformance.js';

conformance('posix', async (label) => {
  const dir = mkdtempSync(join(tmpdir(), `custody-conf-${label}-`));
  const keys = Keyring.create(join(dir, 'keyring.json'), { passphrase: null }).addLog('local');
  const origin = 'conformance.example/local';
  const logDir = join(dir, 'logs', 'local');
  const store = new PosixLogStore(logDir, origin, keys);
  return {
    store,
    keys,
    origin,
    tamperedReads: 'detected',
    lockedUntilRetention: false,
    async tamper(key, bytes) {
      const path = join(logDir, 'tree', key);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, bytes);
    },
    async close() {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
