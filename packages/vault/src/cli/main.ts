/**
 * The `custody` command. Every command an auditor might script takes --json; errors print a
 * plain sentence (and its code) and exit non-zero.
 */
import { Command, Option, InvalidArgumentError } from 'commander';

import { CustodyError } from '../errors.js';
import { VerifyError } from '@custody/verify';
import { initVault, isInitialised, resolveDataDir } from '../vault.js';
import { ApiError } from './client.js';
import { serve, printInit } from './serve.js';
import * as cmd from './commands.js';

const program = new Command();
let jsonOutput = false;

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}.`);
    return n;
  };
}

const dataOpt = () => new Option('--data <dir>', 'data directory (default: $CUSTODY_DATA or ./custody-data)');
const urlOpt = () => new Option('--url <url>', 'Custody server URL (default: $CUSTODY_URL or http://127.0.0.1:8700)');
const tokenOpt = () => new Option('--token <token>', 'bearer token (default: $CUSTODY_TOKEN)');
const jsonOpt = () => new Option('--json', 'print machine-readable JSON');
const totpOpt = () => new Option('--totp <code>', 'the current code from your authenticator app (default: $CUSTODY_TOTP)');

program
  .name('custody')
  .description('Custody: a write-only, tamper-evident vault for security data.')
  .showHelpAfterError('(run custody --help for the commands)');

// ---- a protected keyring: its passphrase (or AWS KMS) for every command on a data directory (docs/ENCRYPTION.md) ----
// (the options are added to every command with --data, just before parsing: keys.ts addPassphraseOptions)
program.hook('preAction', async (_program, action) => {
  jsonOutput = !!action.opts<{ json?: boolean }>().json;
  if (action.name() === 'serve' && action.parent === program) (await import('./config.js')).applyServeConfig(action); // --config first: it can give --data and --passphrase-file
  await (await import('./keys.js')).prepareKeyring(action.opts(), action);
});

program
  .command('init')
  .description('create a new vault in a data directory (serve does this on its first start)')
  .addOption(dataOpt())
  .option('--prefix <prefix>', 'origin prefix of the logs, e.g. custody.example.org')
  .option('--regions <list>', 'comma-separated regions, one log each; a vault with a list refuses records for other regions (default: "local", and a region seen in a record gets its own log on first sight)')
  .option('--auto-regions', 'with --regions: still create a log for a new region on first sight')
  .option('--retention-days <n>', 'how long the logs keep their data (default 365); it can later be extended, never shortened', intArg('--retention-days', 1, 36500))
  .option('--kms-key <region=key>', "keep the keys in AWS KMS: a region's KMS key ARN or alias (repeatable, one per region; the regions default to these; docs/ENCRYPTION.md)", (v: string, prev: string[] = []) => [...prev, v])
  .option('--region-dir <region=dir>', "keep a region's log in this directory, e.g. a volume in that region (repeatable; docs/DESIGN.md, Regions)", (v: string, prev: string[] = []) => [...prev, v])
  .addOption(jsonOpt())
  .action(async (o: { data?: string; prefix?: string; regions?: string; autoRegions?: boolean; retentionDays?: number; kmsKey?: string[]; regionDir?: string[]; json?: boolean }) => {
    jsonOutput = !!o.json;
    process.umask(0o077);
    const dir = resolveDataDir(o.data);
    let regions = o.regions?.split(',').map((s) => s.trim()).filter(Boolean);
    let kms: { keyring: import('../crypto/keyring.js').Keyring } | undefined;
    if (o.kmsKey) {
      const k = await import('./keys.js');
      if (isInitialised(dir)) throw new CustodyError('CONFIG', `${dir} already holds a vault; it is never initialised twice.`);
      const made = await k.createKmsKeyring(dir, k.parseKmsKeys(o.kmsKey), regions, { ...o, autoRegions: o.autoRegions });
      regions = made.regions;
      kms = { keyring: made.keyring };
    }
    const regionDirs = (await import('../storage/region-dirs.js')).parseRegionDirs(o.regionDir);
    const r = initVault(dir, { prefix: o.prefix, regions, regionDirs, ...(o.autoRegions ? { regionMode: 'auto' as const } : {}), ...(kms ? { keyring: kms.keyring, regionMode: 'fixed' as const } : {}) });
    if (o.retentionDays !== undefined) {
      const { setInitialRetention } = await import('../lifecycle/index.js');
      setInitialRetention(dir, o.retentionDays, r.logs.map((l) => l.name));
    }
    if (o.json) cmd.print(true, { dataDir: dir, logs: r.logs, tokensFile: r.tokensFile }, () => '');
    else printInit(r, dir);
  });

const serveCmd = program
  .command('serve')
  .description('run the vault server (initialises the data directory on first start); settings may come from a config file (--config; docs/PRODUCTION.md)');
(await import('./config.js')).addServeOptions(serveCmd).action(async (o: import('./config.js').ServeFlags) => {
  await serve(await (await import('./config.js')).serveOptionsFrom(o));
});

// ---- witnesses (docs/WITNESS.md) ----
const witness = program.command('witness').description('run a witness: it cosigns checkpoints of the logs it follows only when they extend what it cosigned before (C2SP tlog-witness)');
witness
  .command('init')
  .description('create a witness (a new Ed25519 cosigning key) in a directory and print its verifier key')
  .requiredOption('--data <dir>', 'the witness directory')
  .requiredOption('--name <name>', 'its key name, e.g. witness.example.org')
  .addOption(jsonOpt())
  .action(async (o: { data: string; name: string; json?: boolean }) => {
    jsonOutput = !!o.json;
    (await import('../witness/cli.js')).witnessInit(o);
  });
witness
  .command('add-log')
  .description("witness a log: its origin and its verifier key (custody logs prints both)")
  .requiredOption('--data <dir>', 'the witness directory')
  .requiredOption('--origin <origin>', "the log's origin, e.g. custody-1a2b/local")
  .requiredOption('--vkey <vkey>', "the log's verifier key")
  .addOption(jsonOpt())
  .action(async (o: { data: string; origin: string; vkey: string; json?: boolean }) => {
    jsonOutput = !!o.json;
    (await import('../witness/cli.js')).witnessAddLog(o);
  });
witness
  .command('logs')
  .description('the logs a witness follows and the size it last cosigned for each')
  .requiredOption('--data <dir>', 'the witness directory')
  .addOption(jsonOpt())
  .action(async (o: { data: string; json?: boolean }) => {
    jsonOutput = !!o.json;
    (await import('../witness/cli.js')).witnessLogs(o);
  });
witness
  .command('serve')
  .description('serve POST /add-checkpoint (C2SP tlog-witness)')
  .requiredOption('--data <dir>', 'the witness directory')
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--port <n>', 'port to listen on', intArg('--port', 0, 65535), 8900)
  .option('--prefix <path>', 'URL path before /add-checkpoint, e.g. /witness')
  .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
  .option('--tls-key <file>', 'PEM private key for --tls-cert')
  .option('--log-level <level>', 'log level (fatal, error, warn, info, debug)')
  .action(async (o: { data: string; host: string; port: number; prefix?: string; tlsCert?: string; tlsKey?: string; logLevel?: string }) => {
    await (await import('../witness/cli.js')).witnessServe(o);
  });

const token = program.command('token').description('create, list and revoke principals (admin)');
token
  .command('create')
  .description('create a principal and print its token once')
  .requiredOption('--role <role>', 'writer, auditor or admin')
  .requiredOption('--name <name>', 'a unique name, e.g. vector-prod')
  .option('--logs <list>', 'writers only: comma-separated logs it may append to (default: every region log)')
  .option('--data <dir>', 'work offline on this data directory (bootstrap) instead of the API')
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    await cmd.tokenCreate(o);
  });
token
  .command('list')
  .description('list principals (never their tokens)')
  .option('--data <dir>', 'read this data directory instead of the API')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    await cmd.tokenList(o);
  });
token
  .command('revoke <id>')
  .description('revoke a principal by id or name; its token stops working at once')
  .option('--data <dir>', 'work offline on this data directory instead of the API')
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (id: string, o) => {
    jsonOutput = !!o.json;
    await cmd.tokenRevoke(id, o);
  });

// ---- admins: second factor and two-person approvals (docs/ADMIN.md) ----
const admin = program.command('admin').description("an admin's second factor (TOTP) and two-person approvals of dangerous actions");
const totp = admin.command('totp').description('enroll, confirm or reset your second factor');
totp
  .command('enroll')
  .description('start enrollment: prints a secret and otpauth URI for your authenticator app (re-enrolling needs --totp)')
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    await (await import('./admin.js')).totpEnroll(o);
  });
totp
  .command('confirm <code>')
  .description('activate the enrolled secret with the code your authenticator app shows')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (code: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./admin.js')).totpConfirm(code, o);
  });
totp
  .command('reset <name>')
  .description("offline, on the server: forget an admin's second factor (lost device); recorded in the audit log")
  .addOption(dataOpt().makeOptionMandatory())
  .addOption(jsonOpt())
  .action(async (name: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./admin.js')).totpReset(name, o);
  });
admin
  .command('me')
  .description('who you are and whether your second factor is enrolled')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    await (await import('./admin.js')).me(o);
  });
admin
  .command('request <action>')
  .description('ask for a dangerous action (admin.add, writers.revoke, rule.change, notifier.remove, retention.extend, purge, log.rotate-keys); a different admin approves it')
  .option('--param <key=value>', 'a parameter: key=value (a string) or key:=json (e.g. days:=400); repeatable', (v: string, prev: string[] = []) => [...prev, v])
  .option('--params-json <json>', 'all parameters as one JSON object')
  .option('--expires <minutes>', 'the request expires after this many minutes (default 1440, at most 10080)', intArg('--expires', 1, 10080))
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (action: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./admin.js')).request(action, o);
  });
admin
  .command('approvals')
  .description('list approval requests, newest first (admin, auditor)')
  .option('--status <status>', 'only pending, approved, denied, expired, failed or cancelled ones')
  .option('--limit <n>', 'at most this many', intArg('--limit', 1, 1000))
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    await (await import('./admin.js')).list(o);
  });
admin
  .command('approve <id>')
  .description("approve another admin's request with your own code: it takes effect now")
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (id: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./admin.js')).approve(id, o);
  });
admin
  .command('deny <id>')
  .description('deny a pending request (your own: cancel it)')
  .option('--reason <text>', 'why, recorded with the decision')
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (id: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./admin.js')).deny(id, o);
  });

program
  .command('logs')
  .description('list the logs: region, kind, entries, where each is stored, its key, its verifier key')
  .option('--data <dir>', 'read this data directory instead of the API')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    await cmd.logsList(o);
  });

program
  .command('append [files...]')
  .description('append records (one per line; files, .gz files, or stdin) as a writer; for whole delivered files use `custody import`')
  .option('--log <name>', 'log for records that name no region', 'local')
  .option('--source <type>', 'a label recorded in each entry (e.g. app.nginx), or a line-oriented parser: syslog, apache, nginx-error, vpcflow, guardduty, macie (see GET /v1/sources)')
  .option('--text', 'the lines are text, not JSON (sent as text/plain)')
  .option('--wait', 'wait for the signed checkpoint and keep the receipts')
  .option('--receipts <file>', 'with --wait: write the receipts (checkpoint + inclusion proofs) to this file')
  .option('--batch <n>', 'records per request', intArg('--batch', 1, 100000), 5000)
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (files: string[], o) => {
    jsonOutput = !!o.json;
    if (!(await cmd.append(files, o))) process.exitCode = 1;
  });

program
  .command('import <location>')
  .description('import delivered log files from a folder, a file or s3://bucket/prefix (CloudTrail, VPC Flow Logs, Config, GuardDuty, Macie, CloudWatch Logs exports, app logs) as a writer; resumable')
  .option('--source <name>', 'parser for every file, or auto to detect each file from its name and content', 'auto')
  .option('--log <name>', 'log for records that name no region (default: the writer\'s default log)')
  .option('--concurrency <n>', 'files in flight at once', intArg('--concurrency', 1, 64), 4)
  .option('--state <file>', 'resume state file (default: one per server, location and source in ~/.local/state/custody/)')
  .option('--restart', 'ignore what an earlier interrupted run finished and send every file again')
  .option('--exclude <pattern>', 'leave out matching paths or keys (* within a folder, ** across; repeatable)', (v: string, prev: string[] = []) => [...prev, v])
  .option('--endpoint <url>', 'S3 endpoint for s3:// locations (default: $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL)')
  .option('--report <file>', 'append one JSON line per imported file (its logs, indices and refused records) to this file')
  .option('--dry-run', 'list what would be imported, with the source judged by name, and send nothing')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (location: string, o) => {
    jsonOutput = !!o.json;
    const { importCommand } = await import('./import.js');
    process.exitCode = await importCommand(location, o);
  });

// ---- CloudTrail log file integrity (docs/CLOUDTRAIL-VALIDATE.md); exit 0 valid, 1 problems, 2 usage ----
const usageExit = (e: { exitCode: number }): never => process.exit(e.exitCode === 0 ? 0 : 2);
const cloudtrail = program.command('cloudtrail').description('AWS CloudTrail log file integrity: digest chains and log file hashes').exitOverride(usageExit);
cloudtrail
  .command('validate <location>')
  .description('validate CloudTrail digest chains and log file hashes in a folder copy of the bucket or in s3://bucket/prefix; names modified, deleted and moved log files and missing digests')
  .option('--public-keys <file>', 'CloudTrail public keys: the output of aws cloudtrail list-public-keys --output json (needed for a folder; for s3:// the default is to call ListPublicKeys)')
  .option('--bucket <name>', 'folder: the bucket the copy was made from (checked against the digests)')
  .option('--key-prefix <prefix>', 'folder: the S3 key prefix the folder holds (default: the folder is the bucket root)')
  .option('--from <time>', 'only digests ending at or after this time (2024-03-01 or 2024-03-01T12:00:00Z)')
  .option('--to <time>', 'only digests ending at or before this time (a date covers the whole day)')
  .option('--endpoint <url>', 'S3 endpoint for s3:// locations (default: $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL)')
  .option('--cloudtrail-endpoint <url>', 'CloudTrail endpoint for ListPublicKeys (default: the region\'s)')
  .option('--concurrency <n>', 'objects read at once', intArg('--concurrency', 1, 64), 8)
  .addOption(jsonOpt())
  .exitOverride(usageExit)
  .action(async (location: string, o) => {
    jsonOutput = !!o.json;
    const { cloudtrailValidateCommand } = await import('./cloudtrail.js');
    process.exitCode = await cloudtrailValidateCommand(location, o);
  });

program
  .command('verify')
  .description('verify logs end to end: signatures, every entry, every tile, and consistency with what you trusted before')
  .option('--log <name>', 'verify only this log (default: all)')
  .option('--data <dir>', 'read a data directory instead of a server')
  .option('--key <vkey>', 'pin the verifier key (name+hash+base64) instead of trusting the stored one')
  .option('--full', 'recompute from entry 0 even when the last trusted checkpoint allows resuming')
  .option('--hashes-only', 'read no entry bundle (archived ones need no restore): check signatures, tiles, root and consistency from the stored leaf hashes (docs/ARCHIVE.md)')
  .option('--witness <vkey>', 'a witness key you trust: report its cosignature on each checkpoint (repeatable; docs/WITNESS.md)', (v: string, prev: string[] = []) => [...prev, v])
  .option('--witness-policy <k>', 'fail unless k of the --witness keys cosigned each checkpoint (default: all given)', intArg('--witness-policy', 1, 100))
  .option('--trust-file <file>', 'where trusted checkpoints are kept (default: ~/.config/custody/trust.json or $CUSTODY_TRUST_FILE)')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    const ok = await cmd.verify(o);
    if (!ok) process.exitCode = 1;
  });

const proof = program.command('proof').description('inclusion and consistency proofs (C2SP tlog-proof files)');
proof
  .command('get <log> <index>')
  .description('fetch an entry and its inclusion proof, verify them, and write both to files')
  .option('--out <dir>', 'folder for <log>-<index>.entry and .tlog-proof', '.')
  .option('--key <vkey>', 'verifier key to check the checkpoint with')
  .option('--trust-file <file>', 'trust file (see verify)')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (log: string, index: string, o) => {
    jsonOutput = !!o.json;
    await cmd.proofGet(log, index, o);
  });
proof
  .command('verify <proof-file>')
  .description('check a tlog-proof file offline against the entry and the log key')
  .requiredOption('--entry <file>', 'the entry file written by `custody proof get`')
  .requiredOption('--key <vkey>', "the log's verifier key")
  .addOption(jsonOpt())
  .action(async (file: string, o) => {
    jsonOutput = !!o.json;
    await cmd.proofVerify(file, o);
  });
proof
  .command('consistency <log>')
  .description('prove the log at size --from is a prefix of the log at --to (default: now)')
  .requiredOption('--from <n>', 'older tree size')
  .option('--to <n>', 'newer tree size (default: the current checkpoint)')
  .option('--key <vkey>', 'verifier key')
  .option('--trust-file <file>', 'trust file (see verify)')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (log: string, o) => {
    jsonOutput = !!o.json;
    await cmd.proofConsistency(log, o);
  });

// ---- evidence bundles (docs/EVIDENCE.md) ----
const repeat = (v: string, prev: string[] = []): string[] => [...prev, v];
program
  .command('export')
  .description('export records with their proofs as an evidence bundle (zip) that anyone can verify offline (auditor)')
  .option('--query <query>', 'the entries a search query matches (docs/SEARCH.md)')
  .option('--from <time>', 'with --query: start of the time range')
  .option('--to <time>', 'with --query: end of the time range')
  .option('--limit <n>', 'refuse the export when more than n entries match (at most 100000)', intArg('--limit', 1, 100000))
  .option('--entry <log:index>', 'export this entry (repeatable), instead of --query', repeat)
  .option('--entries-file <file>', 'export the entries listed in a file, one "log:index" per line')
  .requiredOption('--out <file>', 'where to write the bundle, e.g. evidence.zip')
  .option('--no-verify', 'do not check the downloaded bundle')
  .option('--trust-file <file>', 'trusted keys for the check (see verify)')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    const { exportCommand } = await import('./export.js');
    process.exitCode = await exportCommand(o);
  });
program
  .command('verify-bundle <bundle>')
  .description('verify an evidence bundle (the zip, or the folder it was unzipped to) with no server and no network; exit 0 valid, 1 invalid')
  .option('--key <vkey>', "a log's verifier key you trust (repeatable); logs you trusted before (trust file) count too", repeat)
  .option('--witness <vkey>', 'a witness key you trust (repeatable)', repeat)
  .option('--quorum <n>', 'witness cosignatures every checkpoint needs', intArg('--quorum', 0, 100), 0)
  .option('--witness-policy <k>', 'the same as --quorum (the name custody verify and serve use)', intArg('--witness-policy', 0, 100))
  .option('--trust-file <file>', 'trusted keys (see verify)')
  .addOption(jsonOpt())
  .action(async (bundle: string, o) => {
    jsonOutput = !!o.json;
    const { verifyBundleCommand } = await import('./export.js');
    if (o.witnessPolicy !== undefined) o.quorum = Math.max(o.quorum ?? 0, o.witnessPolicy);
    process.exitCode = verifyBundleCommand(bundle, o);
  });

// ---- alarms (docs/ALARMS.md) ----
program
  .command('alarms')
  .description('list the vault\'s alarms, newest first (auditor or admin)')
  .option('--kind <kinds>', 'only these kinds, comma-separated (tamper, auth, silence, resumed, log-generation-off, integrity, trust, witness, content, admin)')
  .option('--since <time>', 'only alarms seen at or after this time (2026-12-01, 2026-12-01T12:00:00Z, now-1h)')
  .option('--until <time>', 'only alarms raised before this time')
  .option('--limit <n>', 'most alarms to show', intArg('--limit', 1, 100000), 50)
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    const { alarmsCommand } = await import('./alarms.js');
    process.exitCode = await alarmsCommand(o);
  });

// ---- alarm rules (docs/ALARMS.md) ----
const rules = program.command('rules').description('the alarm rules: list and show (auditor or admin), add or change (admin, with --totp)');
rules
  .command('list')
  .description('every rule: id, type, kind, severity, enabled')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    process.exitCode = await (await import('./rules.js')).rulesList(o);
  });
rules
  .command('show <id>')
  .description('one rule in full (a silence rule also shows what it watches and its thresholds)')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (id: string, o) => {
    jsonOutput = !!o.json;
    process.exitCode = await (await import('./rules.js')).rulesShow(id, o);
  });
rules
  .command('add <file>')
  .description('add a rule, or change one (the file holds the whole rule as it should be); tightening applies at once, loosening waits for another admin (exit 3)')
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (file: string, o) => {
    jsonOutput = !!o.json;
    process.exitCode = await (await import('./rules.js')).rulesAdd(file, o);
  });

// ---- notifiers (docs/NOTIFIERS.md) ----
const notifiers = program.command('notifiers').description('where alarms are sent: webhooks, Slack, e-mail, SNS (admin)');
notifiers
  .command('list')
  .description('list the notifiers with their delivery counts (secrets are shown as ***)')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    await (await import('./notifiers.js')).notifiersList(o);
  });
notifiers
  .command('add <file>')
  .description('add a notifier from a JSON file, e.g. {"type":"webhook","url":"https://…","secret":"…"} (needs --totp)')
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (file: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./notifiers.js')).notifiersAdd(file, o);
  });
notifiers
  .command('test <id>')
  .description('send a test message through a notifier now and show the outcome (needs --totp); exit 1 when it failed')
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (id: string, o) => {
    jsonOutput = !!o.json;
    if (!(await (await import('./notifiers.js')).notifiersTest(id, o))) process.exitCode = 1;
  });
notifiers
  .command('remove <id>')
  .description('ask for a notifier to be removed; a different admin must approve (custody admin approve <request> --totp <code>)')
  .addOption(totpOpt())
  .option('--expires <minutes>', 'the request expires after this many minutes', intArg('--expires', 1, 10080))
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (id: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./notifiers.js')).notifiersRemove(id, o);
  });

// ---- search (docs/SEARCH.md) ----
program
  .command('search <query>')
  .description('search the logs (auditor): field:value, words, "phrases", AND/OR/NOT, time:[… TO …] — docs/SEARCH.md')
  .option('--from <time>', 'only entries at or after this time (2024-01-31, 2024-01-31T12:00:00Z, now-1h)')
  .option('--to <time>', 'only entries at or before this time (a date covers the whole day)')
  .option('--limit <n>', 'most hits to show (pages of 1000 are followed)', intArg('--limit', 1, 100000), 50)
  .option('--order <order>', 'desc (newest first) or asc', 'desc')
  .option('--cursor <cursor>', 'continue after a previous page (its "next")')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (query: string, o) => {
    jsonOutput = !!o.json;
    const { searchCommand } = await import('./search.js');
    process.exitCode = await searchCommand(query, o);
  });
program
  .command('reindex')
  .description('rebuild the search index of a data directory from its logs (offline: stop the server first)')
  .addOption(dataOpt())
  .addOption(jsonOpt())
  .action(async (o: { data?: string; json?: boolean }) => {
    jsonOutput = !!o.json;
    const { reindexCommand } = await import('./search.js');
    process.exitCode = await reindexCommand({ data: resolveDataDir(o.data), json: o.json });
  });

// ---- retention, purges and key rotation (docs/RETENTION.md) ----
const retention = program.command('retention').description('how long each log keeps its data (extend only), and purging what is past it (two admins)');
retention
  .command('list')
  .description('each log: its retention, the oldest entry held, what a purge would remove now, and past purges (auditor, admin)')
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    await (await import('./retention.js')).retentionList(o);
  });
retention
  .command('extend <log> <days>')
  .description('ask to keep a log longer (never shorter); a different admin approves it')
  .option('--expires <minutes>', 'the request expires after this many minutes (default 1440)', intArg('--expires', 1, 10080))
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (log: string, days: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./retention.js')).retentionExtend(log, days, o);
  });
retention
  .command('purge <log>')
  .description('ask to crypto-shred the whole bundles of a log that are past its retention; a different admin approves it')
  .option('--expires <minutes>', 'the request expires after this many minutes (default 1440)', intArg('--expires', 1, 10080))
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (log: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./retention.js')).retentionPurge(log, o);
  });
const keys = program.command('keys').description("a log's encryption keys, and the keyring's passphrase");
keys
  .command('passphrase')
  .description('protect the keyring with a passphrase, or change it (offline: stop the server first); the current one comes from --passphrase-file, $CUSTODY_PASSPHRASE or the terminal')
  .addOption(dataOpt())
  .option('--new-passphrase-file <file>', 'file holding the new passphrase (default: $CUSTODY_NEW_PASSPHRASE, else asked twice on the terminal)')
  .addOption(jsonOpt())
  .action(async (o: { data?: string; newPassphraseFile?: string; json?: boolean }) => {
    jsonOutput = !!o.json;
    await (await import('./keys.js')).keysPassphrase(o);
  });
keys
  .command('rotate <log>')
  .description('ask to rotate the encryption key (KEK) of a log; the signing key stays; a different admin approves it')
  .option('--kms-key <key>', "a vault with AWS KMS keys: new bundles of the log use this KMS key of the log's region (ARN or alias); old bundles keep theirs")
  .option('--expires <minutes>', 'the request expires after this many minutes (default 1440)', intArg('--expires', 1, 10080))
  .addOption(totpOpt())
  .addOption(urlOpt())
  .addOption(tokenOpt())
  .addOption(jsonOpt())
  .action(async (log: string, o) => {
    jsonOutput = !!o.json;
    await (await import('./retention.js')).keysRotate(log, o);
  });

// ---- AWS: the archive bucket's lifecycle (docs/ARCHIVE.md) ----
const aws = program.command('aws').description('AWS helpers for the archive tier (docs/ARCHIVE.md)');
aws
  .command('lifecycle')
  .description("print (default, JSON) or apply an S3 lifecycle configuration that moves the archive's sealed bundles and blobs to a colder class after N days; tiles and checkpoints never move; nothing expires")
  .option('--bucket <name>', 'the archive bucket (or s3://bucket/prefix); needed with --apply')
  .option('--prefix <prefix>', 'the archive prefix (as in --archive s3://bucket/<prefix>)')
  .option('--logs <list>', 'comma-separated log names (default: the logs of --data)')
  .addOption(dataOpt())
  .option('--after-days <n>', 'days after which objects move (default 90)', intArg('--after-days', 0, 36500))
  .addOption(new Option('--storage-class <class>', 'the class to move to (default GLACIER_IR)').choices(['GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE', 'STANDARD_IA']))
  .option('--apply', 'put the configuration on the bucket (keeps its rules not named custody-*), then read it back')
  .option('--endpoint <url>', 'S3 endpoint URL (default: $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL)')
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !o.apply || !!o.json;
    await (await import('./aws.js')).awsLifecycleCommand(o);
  });

// ---- TLS certificates for trying it out (docs/TLS.md) ----
const tls = program.command('tls').description('certificates for HTTPS and syslog over TLS, and writers\' client certificates (for trying it out; docs/TLS.md)');
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
tls
  .command('self-signed')
  .description('write a server key (0600) and a self-signed certificate for custody serve --tls-cert/--tls-key')
  .option('--out <dir>', 'where to write custody.crt and custody.key', '.')
  .option('--host <name>', 'a DNS name or IP address the server is reached at (repeat it; default: localhost, 127.0.0.1, ::1 and this machine\'s name)', collect)
  .option('--days <n>', 'days the certificate is valid', intArg('--days', 1, 3650), 365)
  .option('--force', 'replace existing files')
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    (await import('./tls.js')).tlsSelfSigned(o);
  });
tls
  .command('client-ca')
  .description('write a CA (key 0600 and certificate) for writers\' client certificates, for custody serve --tls-client-ca')
  .option('--out <dir>', 'where to write client-ca.crt and client-ca.key', '.')
  .option('--name <cn>', 'the CA\'s common name', 'Custody writers CA')
  .option('--days <n>', 'days the CA is valid', intArg('--days', 1, 7300), 3650)
  .option('--force', 'replace existing files')
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    (await import('./tls.js')).tlsClientCa(o);
  });
tls
  .command('client-cert')
  .description('write a writer\'s key (0600) and client certificate, signed by the CA from custody tls client-ca')
  .requiredOption('--name <name>', 'the writer\'s name (the certificate\'s common name), e.g. vector-prod')
  .requiredOption('--ca <file>', 'the CA certificate (client-ca.crt)')
  .requiredOption('--ca-key <file>', 'the CA key (client-ca.key)')
  .option('--out <dir>', 'where to write <name>.crt and <name>.key', '.')
  .option('--days <n>', 'days the certificate is valid', intArg('--days', 1, 3650), 365)
  .option('--force', 'replace existing files')
  .addOption(jsonOpt())
  .action(async (o) => {
    jsonOutput = !!o.json;
    (await import('./tls.js')).tlsClientCert(o);
  });

function fail(code: string, message: string): void {
  if (jsonOutput) process.stdout.write(JSON.stringify({ error: { code, message } }, null, 2) + '\n');
  else process.stderr.write(`error: ${message} [${code}]\n`);
  process.exitCode = 2;
}

(await import('./keys.js')).addPassphraseOptions(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CustodyError) fail(e.code, e.message);
  else if (e instanceof ApiError) {
    const lines = (e.details as { lines?: Array<{ line: number; error: string }> } | undefined)?.lines;
    const where = lines?.length ? '\n' + lines.map((l) => `  line ${l.line} of the batch: ${l.error}`).join('\n') : '';
    fail(e.code, `${e.message} (HTTP ${e.status})${where}`);
  }
  else if (e instanceof VerifyError) fail(e.code, e.message);
  else {
    fail('INTERNAL', (e as Error)?.stack ?? String(e));
  }
}
