/**
 * The archive options of `custody serve` (flags → options, refusals with a clear reason) and
 * the mover started by startServices as a background service: it archives on its own, and
 * stops with the services.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { archiveOptions } from '../../src/cli/aws.js';
import { CustodyError } from '../../src/errors.js';
import { Vault } from '../../src/vault.js';
import { startServices } from '../../src/services.js';
import { runCli, waitFor } from '../support/server.js';
import { filledHarness, tempDir, DAY } from './support.js';

const refused = (f: () => unknown, re: RegExp): void => {
  assert.throws(f, (e: CustodyError) => {
    assert.equal(e.code, 'CONFIG');
    assert.match(e.message, re);
    return true;
  });
};

test('serve flags become archive options; inconsistent flags are refused with the reason', () => {
  assert.deepEqual(archiveOptions({}), {});
  assert.deepEqual(archiveOptions({ archiveDir: '/mnt/archive/', archiveAfter: 90 }), { archive: { location: 'file:///mnt/archive', afterDays: 90 } });
  assert.deepEqual(archiveOptions({ archive: 's3://bucket/some/prefix/', archiveAfter: 0, archiveStorageClass: 'GLACIER_IR', archiveRestoreDays: 3 }), {
    archive: { location: 's3://bucket/some/prefix', afterDays: 0, storageClass: 'GLACIER_IR', restoreDays: 3 },
  });
  refused(() => archiveOptions({ archiveDir: '/a', archive: 's3://b/p', archiveAfter: 1 }), /either --archive-dir .* or --archive/);
  refused(() => archiveOptions({ archiveDir: '/a' }), /needs --archive-after/);
  refused(() => archiveOptions({ archiveAfter: 3 }), /need --archive-dir or --archive/);
  refused(() => archiveOptions({ archiveDir: '/a', archiveAfter: 1, archiveStorageClass: 'GLACIER' }), /S3 archive .* only/);
  refused(() => archiveOptions({ archive: '/not/s3', archiveAfter: 1 }), /takes s3:\/\/bucket\/prefix/);
  refused(() => archiveOptions({ archive: 's3://Bad_Bucket!/x', archiveAfter: 1 }), /not an S3 archive location/);
  refused(() => archiveOptions({ archive: 's3://bucket/a/../b', archiveAfter: 1 }), /must not contain/);
});

test('custody serve refuses --archive-dir without --archive-after before it starts', async () => {
  const dir = tempDir('serve');
  const r = await runCli(['serve', '--data', join(dir, 'd'), '--port', '0', '--archive-dir', '/tmp']);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /needs --archive-after/);
});

test('startServices runs the mover in the background and stops it on close', async () => {
  const f = await filledHarness();
  const dataDir = f.h.dataDir;
  await f.h.stop();
  const arch = tempDir('services');
  mkdirSync(arch, { recursive: true });
  const logger = pino({ level: 'silent' });
  const vault = await Vault.open(dataDir, { logger, checkpointIntervalMs: 20 });
  const services = await startServices(vault, {
    logger,
    archive: { location: arch, afterDays: 30 },
    timing: { selfAuditIntervalMs: 3_600_000, archiveIntervalMs: 50, archiveClockOffsetMs: 400 * DAY },
  });
  try {
    assert.ok(services.archive, 'the mover is a service');
    await waitFor('bundles archived by the background mover', () => existsSync(join(arch, 'local', 'tile', 'entries', '002')), 20_000);
    assert.equal(existsSync(join(dataDir, 'logs', 'local', 'tree', 'tile', 'entries', '000')), false);
  } finally {
    await services.close();
    await vault.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(arch, { recursive: true, force: true });
  }
});
