/**
 * `custody cloudtrail validate <folder | s3://bucket/prefix>`: validates CloudTrail digest
 * chains and log file hashes (src/cloudtrail/, docs/CLOUDTRAIL-VALIDATE.md).
 *
 * Exit code: 0 when everything checks out, 1 when problems were found, 2 when the validation
 * could not run (a usage error, an unreadable source, no public keys).
 */
import { CustodyError } from '../errors.js';
import { FolderStore, readPublicKeysFile, listPublicKeys, validateCloudTrail, type Finding, type ObjectStore, type ValidationReport } from '../cloudtrail/index.js';
import { ProgressBar } from './progress.js';
import { print } from './commands.js';

export interface CloudTrailValidateFlags {
  publicKeys?: string;
  bucket?: string;
  keyPrefix?: string;
  endpoint?: string;
  cloudtrailEndpoint?: string;
  concurrency?: number;
  from?: string;
  to?: string;
  json?: boolean;
}

function timeFlag(name: string, v: string | undefined, endOfDay: boolean): number | undefined {
  if (v === undefined) return undefined;
  const day = /^\d{4}-\d{2}-\d{2}$/.test(v);
  const ms = day ? Date.parse(`${v}T00:00:00Z`) + (endOfDay ? 86_400_000 - 1 : 0) : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(ms)) throw new CustodyError('BAD_REQUEST', `${name} must be a date or a UTC time, for example 2024-03-01 or 2024-03-01T12:00:00Z; got ${JSON.stringify(v)}.`);
  return ms;
}

const LABELS: Record<string, string> = {
  'digest-unreadable': 'digest unreadable',
  'digest-signature-missing': 'digest signature missing',
  'digest-signature-invalid': 'digest modified (signature fails)',
  'digest-unknown-key': 'digest signed with an unknown key',
  'digest-moved': 'digest moved',
  'digest-chain-broken': 'digest chain broken',
  'digests-missing': 'digests missing',
  'log-modified': 'log file modified',
  'log-deleted': 'log file deleted',
  'log-moved': 'log file moved',
  'log-unreadable': 'log file unreadable',
  'chain-restarted': 'chain restarted',
  'digest-unlinked': 'digest outside the chain',
  'log-unlisted': 'log file no digest lists',
  'digests-missing-at-end': 'no recent digest',
  'other-bucket': 'not checked (other bucket)',
};

const SHOWN = 50;

function findings(title: string, list: Finding[]): string[] {
  if (list.length === 0) return [];
  const lines = [``, `${title} (${list.length}):`];
  for (const f of list.slice(0, SHOWN)) lines.push(`  ${LABELS[f.kind] ?? f.kind}: ${f.message}`);
  if (list.length > SHOWN) lines.push(`  … and ${list.length - SHOWN} more (--json lists every one).`);
  return lines;
}

export function formatReport(r: ValidationReport): string {
  const s = r.summary;
  const n = (x: number): string => x.toLocaleString('en-US');
  const lines = [
    `CloudTrail log file validation of ${r.source}`,
    `  ${n(s.chains)} digest chain${s.chains === 1 ? '' : 's'}: ${n(s.digests)} digest file${s.digests === 1 ? '' : 's'} (${n(s.digestsValid)} valid), ${n(s.logFiles)} log file${s.logFiles === 1 ? '' : 's'} (${n(s.logFilesValid)} valid${s.logFilesNotChecked ? `, ${n(s.logFilesNotChecked)} not checked because their digest failed` : ''}); ${n(s.objectsListed)} objects listed once, ${s.seconds} s.`,
  ];
  for (const c of r.chains) lines.push(`  ${c.id}: ${n(c.digests)} digest${c.digests === 1 ? '' : 's'}${c.from ? `, ${c.from} to ${c.to}` : ''}`);
  lines.push(...findings('Problems', r.problems), ...findings('Warnings', r.warnings), '');
  if (s.digests === 0) lines.push('NOT VALID: no digest file was found. Give the folder or prefix holding AWSLogs/…/CloudTrail-Digest/, and check that log file validation is on for the trail.');
  else if (r.valid) lines.push(`VALID: every digest signature, chain link and log file hash checks out${r.warnings.length ? ' (read the warnings above)' : ''}.`);
  else lines.push(`NOT VALID: ${n(r.problems.length)} problem${r.problems.length === 1 ? '' : 's'} found.`);
  return lines.join('\n');
}

export async function cloudtrailValidateCommand(source: string, o: CloudTrailValidateFlags): Promise<number> {
  const fromMs = timeFlag('--from', o.from, false);
  const toMs = timeFlag('--to', o.to, true);
  if (fromMs !== undefined && toMs !== undefined && fromMs > toMs) throw new CustodyError('BAD_REQUEST', '--from must not be after --to.');
  let store: ObjectStore;
  let keys: Parameters<typeof validateCloudTrail>[1]['keys'];
  if (/^s3:\/\//i.test(source)) {
    if (o.bucket !== undefined || o.keyPrefix !== undefined) throw new CustodyError('BAD_REQUEST', '--bucket and --key-prefix are for a folder copy; an s3:// location names its bucket and prefix itself.');
    // The AWS SDK is loaded only for S3 locations.
    const { parseS3Url } = await import('./s3.js');
    const { S3Store } = await import('../cloudtrail/s3-store.js');
    store = new S3Store(parseS3Url(source), { endpoint: o.endpoint });
    keys = o.publicKeys ? readPublicKeysFile(o.publicKeys) : (regions, start, end) => listPublicKeys(regions, start, end, { endpoint: o.cloudtrailEndpoint });
  } else {
    if (o.endpoint) throw new CustodyError('BAD_REQUEST', '--endpoint is for s3:// locations only.');
    if (!o.publicKeys) throw new CustodyError('BAD_REQUEST', 'A folder copy needs CloudTrail\'s public keys: --public-keys <file>, the output of aws cloudtrail list-public-keys --output json (one per region, one after another).');
    if (o.bucket !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9._-]{1,254}$/.test(o.bucket)) throw new CustodyError('BAD_REQUEST', `--bucket ${JSON.stringify(o.bucket)} is not a bucket name.`);
    let prefix = o.keyPrefix ?? '';
    if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
    if (prefix.startsWith('/')) throw new CustodyError('BAD_REQUEST', '--key-prefix is an S3 key prefix and does not start with /.');
    keys = readPublicKeysFile(o.publicKeys);
    store = new FolderStore(source, o.bucket ?? null, prefix);
  }
  const bar = new ProgressBar('validating', 0, !o.json);
  let report: ValidationReport;
  try {
    report = await validateCloudTrail(store, {
      keys,
      concurrency: o.concurrency,
      fromMs,
      toMs,
      onProgress: (done, total) => {
        bar.setTotal(total);
        bar.update(done);
      },
    });
  } finally {
    bar.done();
    store.close();
  }
  print(o.json, report, () => formatReport(report));
  return report.valid ? 0 : 1;
}
