/**
 * `custody aws lifecycle` and the archive options of `custody serve` (docs/ARCHIVE.md).
 *
 * The lifecycle configuration moves the vault's archived objects — sealed entry bundles and
 * blobs — to a colder storage class after N days. It assumes the archive layout
 * (storage/archive.ts):
 *
 *   <prefix>/<log>/tile/entries/…   sealed entry bundles       → transitioned
 *   <prefix>/<log>/blobs/…          sealed large records       → transitioned
 *
 * one rule per log and kind (S3 prefix filters have no wildcards), and NO expiration rule:
 * lifecycle never deletes vault data (Object Lock would refuse it anyway). Hash tiles and
 * checkpoints are never written to the archive bucket, and the rules could not match them if
 * they were: they lie outside both prefixes. `--apply` keeps every rule of the bucket whose ID
 * does not start with "custody-" (PutBucketLifecycleConfiguration replaces the whole set).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
// Types only here: `custody serve` imports this module for its flags, and must not load the SDK.
import type { LifecycleRule, TransitionStorageClass } from '@aws-sdk/client-s3';
import { CustodyError } from '../errors.js';
import { resolveDataDir } from '../vault.js';
import { ARCHIVE_STORAGE_CLASSES, normaliseLocation, type ArchiveStorageClass } from '../storage/archive.js';
import type { ArchiveOptions } from '../lifecycle/archive.js';
import { print } from './commands.js';

export interface ArchiveFlags {
  archiveDir?: string;
  archive?: string;
  archiveAfter?: number;
  archiveStorageClass?: ArchiveStorageClass;
  archiveRestoreDays?: number;
}

/** The serve flags → the archive options (absent: the archive tier is off). */
export function archiveOptions(o: ArchiveFlags): { archive?: ArchiveOptions } {
  const where = o.archiveDir ?? o.archive;
  if (o.archiveDir && o.archive) throw new CustodyError('CONFIG', 'Give either --archive-dir (a directory) or --archive (s3://bucket/prefix), not both.');
  if (where === undefined) {
    if (o.archiveAfter !== undefined || o.archiveStorageClass || o.archiveRestoreDays !== undefined) {
      throw new CustodyError('CONFIG', '--archive-after, --archive-storage-class and --archive-restore-days need --archive-dir or --archive.');
    }
    return {};
  }
  if (o.archiveAfter === undefined) throw new CustodyError('CONFIG', '--archive-dir/--archive needs --archive-after <days>: how old entries must be before they move.');
  if (o.archive !== undefined && !o.archive.startsWith('s3://')) throw new CustodyError('CONFIG', '--archive takes s3://bucket/prefix; for a directory use --archive-dir.');
  if (o.archiveDir !== undefined && o.archiveDir.startsWith('s3://')) throw new CustodyError('CONFIG', '--archive-dir takes a directory; for S3 use --archive s3://bucket/prefix.');
  if (o.archiveStorageClass && !o.archive) throw new CustodyError('CONFIG', '--archive-storage-class applies to an S3 archive (--archive s3://…) only.');
  const location = normaliseLocation(where);
  return { archive: { location, afterDays: o.archiveAfter, ...(o.archiveStorageClass ? { storageClass: o.archiveStorageClass } : {}), ...(o.archiveRestoreDays !== undefined ? { restoreDays: o.archiveRestoreDays } : {}) } };
}

/** Lifecycle transitions cannot target STANDARD (it is where objects start). */
export const TRANSITION_CLASSES = ARCHIVE_STORAGE_CLASSES.filter((c) => c !== 'STANDARD');
const LOG_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;

export interface LifecycleInput {
  prefix: string;
  logs: string[];
  afterDays: number;
  storageClass: Exclude<ArchiveStorageClass, 'STANDARD'>;
}

/** The rules (one per log and kind), as the S3 API takes them. */
export function lifecycleRules(i: LifecycleInput): LifecycleRule[] {
  if (!(TRANSITION_CLASSES as readonly string[]).includes(i.storageClass)) {
    throw new CustodyError('BAD_REQUEST', `--storage-class must be one of ${TRANSITION_CLASSES.join(', ')}.`);
  }
  if (!Number.isSafeInteger(i.afterDays) || i.afterDays < 0) throw new CustodyError('BAD_REQUEST', '--after-days must be a whole number of days (0 or more).');
  // S3 refuses transitions to STANDARD_IA before 30 days (S3 User Guide, "Transitioning objects").
  if (i.storageClass === 'STANDARD_IA' && i.afterDays < 30) throw new CustodyError('BAD_REQUEST', 'S3 moves objects to STANDARD_IA after 30 days at the earliest; give --after-days 30 or more.');
  if (i.logs.length === 0) throw new CustodyError('BAD_REQUEST', 'No logs: give --logs a,b or --data <dir> of the vault.');
  if (i.logs.length > 500) throw new CustodyError('BAD_REQUEST', 'S3 allows 1,000 lifecycle rules per bucket: at most 500 logs (two rules each).');
  const bad = i.logs.find((l) => !LOG_RE.test(l));
  if (bad !== undefined) throw new CustodyError('BAD_REQUEST', `${JSON.stringify(bad.slice(0, 70))} is not a log name.`);
  const base = i.prefix.replace(/^\/+|\/+$/g, '');
  const rules: LifecycleRule[] = [];
  for (const log of [...new Set(i.logs)].sort()) {
    for (const [kind, sub] of [['bundles', 'tile/entries/'], ['blobs', 'blobs/']] as const) {
      rules.push({
        ID: `custody-${log}-${kind}`.slice(0, 255),
        Status: 'Enabled',
        Filter: { Prefix: `${base ? base + '/' : ''}${log}/${sub}` },
        Transitions: [{ Days: i.afterDays, StorageClass: i.storageClass as TransitionStorageClass }],
        // Versions replaced by a rerun of the mover (Object Lock buckets are versioned).
        NoncurrentVersionTransitions: [{ NoncurrentDays: i.afterDays, StorageClass: i.storageClass as TransitionStorageClass }],
      });
    }
  }
  return rules;
}

function logsOf(o: { logs?: string; data?: string }): string[] {
  if (o.logs) return o.logs.split(',').map((s) => s.trim()).filter(Boolean);
  const dir = join(resolveDataDir(o.data), 'logs');
  try {
    return readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory());
  } catch {
    throw new CustodyError('CONFIG', `Cannot list the logs in ${dir}: give --logs a,b (the names GET /v1/logs lists) or --data <dir> of the vault.`);
  }
}

export interface LifecycleFlags {
  bucket?: string;
  prefix?: string;
  logs?: string;
  data?: string;
  afterDays?: number;
  storageClass?: string;
  apply?: boolean;
  json?: boolean;
  endpoint?: string;
}

export async function awsLifecycleCommand(o: LifecycleFlags): Promise<void> {
  let prefix = o.prefix ?? '';
  let bucket = o.bucket;
  if (bucket?.startsWith('s3://')) {
    const loc = normaliseLocation(bucket);
    const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(loc)!;
    bucket = m[1]!;
    if (m[2] && !o.prefix) prefix = m[2];
  }
  if (o.apply && !bucket) throw new CustodyError('BAD_REQUEST', '--apply needs --bucket <name> (the archive bucket of `custody serve --archive s3://bucket/prefix`).');
  const storageClass = (o.storageClass ?? 'GLACIER_IR') as LifecycleInput['storageClass'];
  const rules = lifecycleRules({ prefix, logs: logsOf(o), afterDays: o.afterDays ?? 90, storageClass });
  const configuration = { Rules: rules };
  const out: Record<string, unknown> = {
    bucket: bucket ?? null,
    prefix,
    layout: { bundles: `${prefix ? prefix + '/' : ''}<log>/tile/entries/…`, blobs: `${prefix ? prefix + '/' : ''}<log>/blobs/…`, neverTransitioned: 'hash tiles and checkpoints (they stay hot in the vault and are never in the archive bucket)' },
    expiration: 'none: no rule deletes anything',
    applied: false,
    lifecycleConfiguration: configuration,
  };
  if (o.apply) {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const { S3Client, GetBucketLifecycleConfigurationCommand, PutBucketLifecycleConfigurationCommand } = await import('@aws-sdk/client-s3');
    const endpoint = o.endpoint ?? (process.env.AWS_ENDPOINT_URL_S3 || undefined) ?? (process.env.AWS_ENDPOINT_URL || undefined);
    const client = new S3Client({
      region: process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1',
      ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
      followRegionRedirects: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    try {
      let kept: LifecycleRule[] = [];
      try {
        const cur = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket! }));
        kept = (cur.Rules ?? []).filter((r) => !(r.ID ?? '').startsWith('custody-'));
      } catch (e) {
        if ((e as { name?: string }).name !== 'NoSuchLifecycleConfiguration') throw e;
      }
      await client.send(new PutBucketLifecycleConfigurationCommand({ Bucket: bucket!, LifecycleConfiguration: { Rules: [...kept, ...rules] } }));
      const now = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket! }));
      const mine = (now.Rules ?? []).filter((r) => (r.ID ?? '').startsWith('custody-'));
      out['applied'] = true;
      out['keptRules'] = kept.map((r) => r.ID);
      out['bucketRules'] = now.Rules ?? [];
      if (mine.length !== rules.length) throw new CustodyError('INTERNAL', `The bucket now has ${mine.length} custody rules, not the ${rules.length} applied; check it with aws s3api get-bucket-lifecycle-configuration.`);
    } catch (e) {
      if (e instanceof CustodyError) throw e;
      const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      throw new CustodyError('ARCHIVE_UNAVAILABLE', `Cannot set the lifecycle of bucket ${bucket}: S3 answered ${err.name ?? 'an error'}${err.$metadata?.httpStatusCode ? ` (HTTP ${err.$metadata.httpStatusCode})` : ''}${err.message ? `: ${err.message.slice(0, 200)}` : ''}. The credentials need s3:GetLifecycleConfiguration and s3:PutLifecycleConfiguration.`);
    } finally {
      client.destroy();
    }
  }
  // JSON is the default output: it is what S3 and `aws s3api put-bucket-lifecycle-configuration` take.
  if (!o.apply || o.json) {
    print(true, o.apply ? out : o.json ? out : configuration, () => '');
    return;
  }
  print(false, out, () => `Applied ${rules.length} lifecycle rules to bucket ${bucket} (${rules.length / 2} logs): bundles and blobs under ${prefix || '(bucket root)'}/<log>/ move to ${storageClass} after ${o.afterDays ?? 90} days; nothing expires.${(out['keptRules'] as string[]).length ? ` Kept the bucket's other rules: ${(out['keptRules'] as string[]).join(', ')}.` : ''}`);
}
