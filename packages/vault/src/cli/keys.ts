/**
 * The keyring's protection from the command line (docs/ENCRYPTION.md):
 * - the passphrase of a protected keyring, for every command that opens a data directory:
 *   --passphrase-file <file>, $CUSTODY_PASSPHRASE, or asked on the terminal (--passphrase, or
 *   any TTY when nothing else gives it);
 * - `custody init --kms-key <region>=<key>` (a keyring protected by AWS KMS);
 * - `custody keys passphrase`: add or change the passphrase (atomic rewrite; the server stopped).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { CustodyError } from '../errors.js';
import { Keyring } from '../crypto/keyring.js';
import { checkNewPassphrase } from '../crypto/passphrase.js';
import { checkKmsKey } from '../crypto/kms.js';
import { resolveDataDir } from '../vault.js';
import { takeLock } from './serve.js';
import { print } from './commands.js';

export interface PassphraseFlags {
  passphraseFile?: string;
  passphrase?: boolean;
}

/** Gives every command that opens a data directory (--data) the passphrase options. */
export function addPassphraseOptions(cmd: Command): void {
  for (const c of cmd.commands) {
    if (c.options.some((o) => o.long === '--data') && !c.options.some((o) => o.long === '--passphrase-file')) {
      c.option('--passphrase-file <file>', 'file holding the keyring passphrase (default: $CUSTODY_PASSPHRASE; asked for on a terminal)');
      c.option('--passphrase', c.name() === 'init' || c.name() === 'serve' ? 'ask for the keyring passphrase on the terminal (a new keyring: protect it with one)' : 'ask for the keyring passphrase on the terminal');
    }
    addPassphraseOptions(c);
  }
}

/** A passphrase file's content: the first line, without its line ending. */
export function readPassphraseFile(file: string, what = 'passphrase'): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CustodyError('CONFIG', `Cannot read the ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
  const line = text.replace(/\r?\n$/, '');
  if (line.length === 0 || line.includes('\n')) throw new CustodyError('CONFIG', `The ${what} file ${file} must hold the ${what} on one line.`);
  return line;
}

/** Asks on the terminal without echoing. */
export async function promptHidden(question: string): Promise<string> {
  if (!process.stdin.isTTY) {
    throw new CustodyError('KEYRING_LOCKED', 'A passphrase is needed but there is no terminal to ask on: give it with --passphrase-file <file> or $CUSTODY_PASSPHRASE.');
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  process.stderr.write(question);
  (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => undefined;
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

async function askNew(what: string): Promise<string> {
  const a = await promptHidden(`${what}: `);
  checkNewPassphrase(a);
  const b = await promptHidden('The same again: ');
  if (a !== b) throw new CustodyError('BAD_REQUEST', 'The two passphrases differ; nothing was changed.');
  return a;
}

const envPassphrase = (): string | undefined => (process.env['CUSTODY_PASSPHRASE'] ? process.env['CUSTODY_PASSPHRASE'] : undefined);

/**
 * Runs before every command: sets the process's passphrase from the flags, and unlocks the
 * keyring of the command's data directory (if it has one) — asking KMS or for the passphrase —
 * so the command's own code opens it as usual. A wrong passphrase stops here (KEYRING_LOCKED).
 */
export async function prepareKeyring(g: PassphraseFlags, action: Command): Promise<void> {
  const fromFile = g.passphraseFile !== undefined ? readPassphraseFile(g.passphraseFile) : undefined;
  if (fromFile !== undefined) Keyring.usePassphrase(fromFile);
  const dataOpt = action.options.find((o) => o.long === '--data');
  if (!dataOpt) return;
  const o = action.opts<{ data?: string }>();
  const dir = o.data !== undefined ? resolveDataDir(o.data) : dataOpt.description.includes('$CUSTODY_DATA') ? resolveDataDir() : undefined;
  if (dir === undefined) return; // the command works through the API
  const path = join(dir, 'keyring.json');
  const have = fromFile ?? envPassphrase();
  if (!existsSync(path)) {
    // init, or serve's first start: --passphrase asks for the passphrase of the new keyring.
    if (action.name() !== 'init' && action.name() !== 'serve') return;
    if (g.passphrase && have === undefined) Keyring.usePassphrase(await askNew(`Passphrase for the new keyring ${path}`));
    else if (have !== undefined) checkNewPassphrase(have);
    return;
  }
  if (have === undefined && (g.passphrase || process.stdin.isTTY) && Keyring.protectionOf(path) === 'passphrase') {
    Keyring.usePassphrase(await promptHidden(`Passphrase of the keyring ${path}: `));
  }
  await Keyring.unlock(path);
}

/** `--kms-key <region>=<key>` values → region → key; each checked (format, the ARN's region). */
export function parseKmsKeys(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new CustodyError('CONFIG', `--kms-key takes <region>=<key ARN or alias>, e.g. eu-west-1=arn:aws:kms:eu-west-1:111122223333:key/…; got "${v.slice(0, 100)}".`);
    const region = v.slice(0, eq);
    const key = v.slice(eq + 1);
    checkKmsKey(region, key);
    if (Object.hasOwn(out, region)) throw new CustodyError('CONFIG', `--kms-key names region ${region} twice; give one key per region.`);
    out[region] = key;
  }
  return out;
}

/**
 * The keyring of `custody init --kms-key …`: created (AWS KMS encrypts each region's section
 * key) before the vault, so the vault's logs are keyed from the start. Returns the regions.
 */
export async function createKmsKeyring(dataDir: string, kmsKeys: Record<string, string>, regions: string[] | undefined, g: PassphraseFlags & { autoRegions?: boolean }): Promise<{ keyring: Keyring; regions: string[] }> {
  if (g.passphraseFile !== undefined || g.passphrase || envPassphrase() !== undefined) {
    throw new CustodyError('CONFIG', 'Choose one protection for the keyring: --kms-key (AWS KMS) or a passphrase (--passphrase-file, $CUSTODY_PASSPHRASE, --passphrase), not both.');
  }
  if (g.autoRegions) throw new CustodyError('CONFIG', '--auto-regions cannot be used with --kms-key: a region gets a log only with a KMS key of its own region; list them with --kms-key.');
  const list = regions && regions.length > 0 ? regions : Object.keys(kmsKeys);
  for (const r of list) {
    if (!Object.hasOwn(kmsKeys, r)) throw new CustodyError('CONFIG', `Region ${r} has no --kms-key: give ${r}=<a KMS key ARN of ${r}>; its logs never use another region's key.`);
  }
  const path = join(dataDir, 'keyring.json');
  if (existsSync(path)) throw new CustodyError('CONFIG', `${path} already exists: a KMS keyring is made only for a new data directory.`);
  const used = Object.fromEntries(list.map((r) => [r, kmsKeys[r]!]));
  const keyring = await Keyring.createKms(path, { regions: used, vaultRegion: list[0]! });
  return { keyring, regions: list };
}

/** `custody keys passphrase`: protects the keyring with a new passphrase (or changes it). */
export async function keysPassphrase(o: { data?: string; newPassphraseFile?: string; json?: boolean }): Promise<void> {
  const dir = resolveDataDir(o.data);
  const path = join(dir, 'keyring.json');
  if (!existsSync(path)) throw new CustodyError('CONFIG', `${dir} has no keyring.json: it is not a Custody data directory.`);
  const fresh =
    o.newPassphraseFile !== undefined
      ? readPassphraseFile(o.newPassphraseFile, 'new passphrase')
      : process.env['CUSTODY_NEW_PASSPHRASE']
        ? process.env['CUSTODY_NEW_PASSPHRASE']
        : await askNew(`New passphrase for the keyring ${path}`);
  checkNewPassphrase(fresh);
  // The running server holds the keyring in memory and would write its old form back.
  const release = takeLock(dir);
  try {
    const keyring = Keyring.load(path); // opens with the current passphrase (or none): a wrong one changes nothing
    const before = keyring.protection;
    keyring.setPassphrase(fresh);
    Keyring.usePassphrase(fresh);
    print(o.json, { keyring: path, protection: 'passphrase', changed: before === 'passphrase' ? 'passphrase changed' : 'passphrase added' }, () =>
      [
        `The keyring ${path} is now protected by the new passphrase (${before === 'passphrase' ? 'it replaced the old one' : 'it was stored in the clear before'}).`,
        'Give it to `custody serve` and every command on this data directory with --passphrase-file, $CUSTODY_PASSPHRASE or --passphrase.',
        'Keep it safe and apart from your backups of the data directory: without it the keyring cannot be opened.',
      ].join('\n'),
    );
  } finally {
    release();
  }
}
