#!/usr/bin/env node
/**
 * `cdk synth` / `cdk deploy` entry point. The configuration file is, in order: the context value
 * `custodyConfig` (`cdk synth -c custodyConfig=./my-config.json`), $CUSTODY_AWS_CONFIG, or the
 * example (config/example.json, placeholder accounts: it synthesizes anywhere, offline).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { addBlueprint } from '../src/app.js';
import { parseBlueprintConfig } from '../src/config.js';

const app = new App();
const example = fileURLToPath(new URL('../../config/example.json', import.meta.url));
const path = resolve((app.node.tryGetContext('custodyConfig') as string | undefined) ?? process.env.CUSTODY_AWS_CONFIG ?? example);
let raw: unknown;
try {
  raw = JSON.parse(readFileSync(path, 'utf8'));
} catch (e) {
  console.error(`Cannot read the blueprint configuration ${path}: ${(e as Error).message}. Copy packages/aws/config/example.json and fill in your accounts.`);
  process.exit(2);
}
try {
  addBlueprint(app, parseBlueprintConfig(raw));
} catch (e) {
  console.error(`${path}: ${(e as Error).message}`);
  process.exit(2);
}
app.synth();
