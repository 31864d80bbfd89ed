/**
 * Where a region's log lives on disk (issue 6: "every log, its key and its storage location
 * belong to one region"). By default a log's directory is <data>/logs/<log>. With
 * `--region-dir <region>=<dir>` (custody init / serve) the region log's directory is
 * <dir>/<log> — e.g. a volume in that region — and <data>/logs/<log> is a symbolic link to it,
 * so every reader of the data directory (server, `custody verify --data`, reindex) finds it
 * unchanged. The placement is kept in vault.json (`regionDirs`, absolute paths); at every start
 * the directory must be there: a missing volume stops the vault with an error saying which,
 * instead of a new empty log being started somewhere else.
 *
 * Only region logs are placed; the vault's own audit log stays in the data directory.
 */
import { existsSync, lstatSync, mkdirSync, readlinkSync, realpathSync, statSync, symlinkSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { CustodyError } from '../errors.js';
import { fsyncDirSync } from './atomic.js';

const REGION_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Parses repeatable `<region>=<dir>` flags into region → absolute directory. */
export function parseRegionDirs(flags: string[] | undefined, flag = '--region-dir'): Record<string, string> | undefined {
  if (!flags || flags.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const f of flags) {
    const at = f.indexOf('=');
    const region = at > 0 ? f.slice(0, at).trim() : '';
    const dir = at > 0 ? f.slice(at + 1).trim() : '';
    if (!REGION_RE.test(region) || dir === '') throw new CustodyError('CONFIG', `${flag} ${JSON.stringify(f.slice(0, 200))}: give <region>=<directory>, e.g. ${flag} eu-west-1=/mnt/eu-west-1.`);
    if (out[region] !== undefined && out[region] !== resolve(dir)) throw new CustodyError('CONFIG', `${flag} names two directories for region ${region}.`);
    out[region] = resolve(dir);
  }
  return out;
}

/** Refuses a placement directory that is not there (or not a directory). */
export function requireDir(region: string, dir: string): void {
  let ok = false;
  try {
    ok = statSync(dir).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new CustodyError('CONFIG', `The directory ${dir} that holds the log of region ${region} is missing or not a directory. Mount the region's volume (or restore the directory) and start again; the vault does not start without it.`, { region, dir });
  }
}

/**
 * Checks placements for a data directory: each directory exists, and a region whose log already
 * exists is not moved by a flag (its data stays where it is; moving it is the operator's job).
 * Returns the merged placements when they changed (for vault.json), else undefined.
 */
export function mergeRegionDirs(dataDir: string, have: Record<string, string> | undefined, add: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!add) return undefined;
  const merged = { ...(have ?? {}) };
  let changed = false;
  for (const [region, dir] of Object.entries(add)) {
    if (!isAbsolute(dir)) throw new CustodyError('CONFIG', `--region-dir ${region}=${dir}: the directory must be an absolute path.`);
    requireDir(region, dir);
    if (merged[region] === dir) continue;
    const link = join(dataDir, 'logs', region);
    if (existsSync(link) || lstatExists(link)) {
      throw new CustodyError('CONFIG', `The log of region ${region} already exists in ${merged[region] ?? link}; --region-dir does not move it. Stop the vault, move the directory and its link yourself, or leave the flag out.`, { region });
    }
    merged[region] = dir;
    changed = true;
  }
  return changed ? merged : undefined;
}

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes a placed region log's directory (<dir>/<log>) and the link to it from <data>/logs/<log>.
 * Idempotent; refuses when the link points elsewhere. No-op for a log that is not placed.
 */
export function placeLogDir(dataDir: string, regionDirs: Record<string, string> | undefined, log: { name: string; region: string; kind: string }): void {
  const base = log.kind === 'region' ? regionDirs?.[log.region] : undefined;
  if (!base) return;
  requireDir(log.region, base);
  const target = join(base, log.name);
  const link = join(dataDir, 'logs', log.name);
  mkdirSync(target, { recursive: true, mode: 0o700 });
  mkdirSync(join(dataDir, 'logs'), { recursive: true, mode: 0o700 });
  if (!lstatExists(link)) {
    symlinkSync(target, link, 'dir');
    fsyncDirSync(join(dataDir, 'logs'));
    fsyncDirSync(base);
    return;
  }
  checkLogDir(dataDir, regionDirs, log);
}

/**
 * At start: a placed log's directory must be there and <data>/logs/<log> must lead to it.
 * A missing volume is refused (CONFIG) rather than a new, empty log started in its place.
 */
export function checkLogDir(dataDir: string, regionDirs: Record<string, string> | undefined, log: { name: string; region: string; kind: string }): void {
  const base = log.kind === 'region' ? regionDirs?.[log.region] : undefined;
  if (!base) return;
  requireDir(log.region, base);
  const target = join(base, log.name);
  const link = join(dataDir, 'logs', log.name);
  if (!existsSync(target)) {
    throw new CustodyError('CONFIG', `The log of region ${log.region} should be in ${target}, which is missing: mount or restore it and start again (a new empty log is not started in its place).`, { region: log.region, dir: target });
  }
  if (!lstatExists(link)) {
    // A data directory restored without its link: the placement in vault.json says where the log is.
    symlinkSync(target, link, 'dir');
    fsyncDirSync(join(dataDir, 'logs'));
    return;
  }
  const st = lstatSync(link);
  const points = st.isSymbolicLink() ? resolve(join(dataDir, 'logs'), readlinkSync(link)) : link;
  if (realpathSync(points) !== realpathSync(target)) {
    throw new CustodyError('CONFIG', `${link} is not a link to ${target}, where vault.json places the log of region ${log.region}. Put the log's directory there (or fix the link) and start again.`, { region: log.region, dir: target });
  }
}
