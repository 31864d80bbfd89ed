/**
 * <data>/rules.json, merged at every start: new rules are added and tightenings applied; a
 * loosening is skipped and recorded (it needs two admins); a malformed file refuses the start
 * with RULE_INVALID naming the file and the field — for `custody serve` too. And the CLI:
 * `custody rules list|show|add` against a listening vault.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { CustodyError } from '../../src/errors.js';
import { initVault, Vault } from '../../src/vault.js';
import { startServices } from '../../src/services.js';
import { DEFAULT_PACK } from '../../src/alarms/detectors/index.js';
import { auditRecords, bearer, startInProc } from '../support/inproc.js';
import { makeTempDir, runCli } from '../support/server.js';
import { enrollTotp, useFakeClock } from '../support/totp.js';

const NEW_RULE = { id: 'content.root-activity', description: 'The root user did something.', enabled: true, type: 'match', kind: 'content', severity: 'high', on: 'record', when: [{ field: 'userIdentity.type', equals: 'Root' }], title: 'Root activity: {eventName} from {srcIp}' };
const pack = (id: string): Record<string, unknown> => ({ ...(DEFAULT_PACK.find((r) => r.id === id) as unknown as Record<string, unknown>) });

test('a malformed rules file refuses the start with RULE_INVALID naming the file and the field', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['not JSON', '[{"id": ', '(file)'],
    ['not an array', JSON.stringify(NEW_RULE), '(file)'],
    ['a bad member', JSON.stringify([NEW_RULE, { ...NEW_RULE, id: 'x.y', severity: 'extreme' }]), '[1].severity'],
    ['a bad regex', JSON.stringify([{ ...NEW_RULE, when: [{ field: 'actor', regex: '([a-z]*)*x' }] }]), '[0].when[0].regex'],
    ['an id twice', JSON.stringify([NEW_RULE, NEW_RULE]), '[1].id'],
  ];
  for (const [what, text, field] of cases) {
    const dir = join(makeTempDir('rules-bad'), 'vault');
    initVault(dir);
    writeFileSync(join(dir, 'rules.json'), text);
    const logger = pino({ level: 'silent' });
    const vault = await Vault.open(dir, { logger });
    t.after(() => vault.close());
    await assert.rejects(
      startServices(vault, { logger }),
      (e: unknown) => {
        assert.ok(e instanceof CustodyError, what);
        assert.equal(e.code, 'RULE_INVALID', what);
        assert.equal(e.details?.['field'], field, `${what}: ${e.message}`);
        assert.match(e.message, /rules\.json/, what);
        if (!field.startsWith('(')) assert.ok(e.message.includes(field), `${what}: ${e.message}`);
        return true;
      },
      what,
    );
  }
});

test('`custody serve` with a malformed rules.json exits with the file and field named', async () => {
  const dir = join(makeTempDir('rules-serve'), 'vault');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'rules.json'), JSON.stringify([{ ...NEW_RULE, when: [{ field: 'actor', regex: '(' }] }]));
  const r = await runCli(['serve', '--data', dir, '--port', '0', '--no-search'], {}, 60_000);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /rules\.json: \[0\]\.when\[0\]\.regex: is not a valid regular expression/);
  assert.match(r.stderr, /\[RULE_INVALID\]/);
});

test('rules.json adds rules and tightens; a loosening in it is skipped and recorded', async (t) => {
  const file = [
    NEW_RULE,
    { ...pack('log-off.events.DeleteRule'), severity: 'critical' },
    { ...pack('tamper.auditor-write'), enabled: false },
  ];
  const v = await startInProc({ beforeServices: (dir) => writeFileSync(join(dir, 'rules.json'), JSON.stringify(file)) });
  t.after(() => v.close());
  const get = async (id: string) => (await v.app.inject({ method: 'GET', url: `/v1/rules/${id}`, headers: bearer(v.tokens.auditor) })).json<{ rule: Record<string, unknown> }>().rule;
  const added = await get('content.root-activity');
  assert.equal(added['origin'], 'file');
  assert.equal(added['updatedBy'], 'rules.json');
  assert.equal((await get('log-off.events.DeleteRule'))['severity'], 'critical');
  assert.equal((await get('tamper.auditor-write'))['enabled'], true, 'the file could not disable it');
  const events = await auditRecords(v);
  const refused = events.filter((e) => e['type'] === 'rule.file.refused');
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!['id'], 'tamper.auditor-write');
  assert.ok(events.some((e) => e['type'] === 'rule.added' && e['id'] === 'content.root-activity' && e['by'] === 'rules.json'));
  assert.ok(events.some((e) => e['type'] === 'rule.changed' && e['id'] === 'log-off.events.DeleteRule'));
  // The auditor-write rule still fires.
  const w = await v.app.inject({ method: 'POST', url: '/v1/logs/local/entries', headers: { ...bearer(v.tokens.auditor), 'content-type': 'application/x-ndjson' }, payload: '{"x":1}\n' });
  assert.equal(w.statusCode, 403);
  await v.services.detectors!.idle();
  const alarms = (await v.app.inject({ method: 'GET', url: '/v1/alarms?kind=tamper', headers: bearer(v.tokens.auditor) })).json<{ alarms: Array<{ rule: string }> }>().alarms;
  assert.ok(alarms.some((a) => a.rule === 'tamper.auditor-write'));
});

test('the CLI: custody rules list, show and add (tighten at once, loosen waits: exit 3; a bad file is RULE_INVALID)', async (t) => {
  const v = await startInProc();
  t.after(() => v.close());
  const clock = useFakeClock(v.vault);
  const device = await enrollTotp(v.app, v.tokens.admin, clock);
  await v.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = v.app.server.address() as { port: number };
  const env = { CUSTODY_URL: `http://127.0.0.1:${addr.port}`, CUSTODY_TOKEN: v.tokens.auditor };

  const list = await runCli(['rules', 'list', '--json'], env);
  assert.equal(list.code, 0, list.stderr);
  const rules = (JSON.parse(list.stdout) as { rules: Array<{ id: string }> }).rules;
  assert.equal(rules.length, DEFAULT_PACK.length);
  const human = await runCli(['rules', 'list'], env);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /log-off\.cloudtrail\.StopLogging\s+match\s+log-generation-off\s+critical\s+yes/);

  const show = await runCli(['rules', 'show', 'silence.learned', '--json'], env);
  assert.equal(show.code, 0, show.stderr);
  assert.equal((JSON.parse(show.stdout) as { rule: { type: string } }).rule.type, 'silence');
  const missing = await runCli(['rules', 'show', 'nope'], env);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /RULE_NOT_FOUND/);

  const dir = makeTempDir('rules-cli');
  const admin = { ...env, CUSTODY_TOKEN: v.tokens.admin };
  const tighter = join(dir, 'tighter.json');
  writeFileSync(tighter, JSON.stringify({ ...pack('log-off.events.DisableRule'), severity: 'critical' }));
  const add = await runCli(['rules', 'add', tighter, '--totp', await device.next(), '--json'], admin);
  assert.equal(add.code, 0, add.stderr);
  assert.equal((JSON.parse(add.stdout) as { status: string }).status, 'tightened');

  const looser = join(dir, 'looser.json');
  writeFileSync(looser, JSON.stringify({ ...pack('log-off.events.DisableRule'), severity: 'critical', enabled: false }));
  const loose = await runCli(['rules', 'add', looser, '--totp', await device.next()], admin);
  assert.equal(loose.code, 3, loose.stderr);
  assert.match(loose.stdout, /takes effect only when a different admin approves request apr_/);
  const still = await runCli(['rules', 'show', 'log-off.events.DisableRule', '--json'], env);
  assert.equal((JSON.parse(still.stdout) as { rule: { enabled: boolean; severity: string } }).rule.enabled, true);

  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ ...NEW_RULE, on: 'everything' }));
  const b = await runCli(['rules', 'add', bad, '--totp', await device.next(), '--json'], admin);
  assert.equal(b.code, 2);
  const err = JSON.parse(b.stdout) as { error: { code: string; message: string } };
  assert.equal(err.error.code, 'RULE_INVALID');
  assert.match(err.error.message, /^on: /);
});
