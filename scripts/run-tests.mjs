#!/usr/bin/env node
// Runs every compiled test file (packages/*/dist/test/**/*.test.js) with node's test runner.
// Usage: node scripts/run-tests.mjs [substring filter...]
// Test files run one at a time (2-core machines; several tests start servers and Go tools).
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
}
for (const pkg of readdirSync(join(root, 'packages'))) {
  const d = join(root, 'packages', pkg, 'dist', 'test');
  if (existsSync(d)) walk(d);
}
const selected = files.filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (selected.length === 0) {
  console.error('No test files found: run `npm run build` first.');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=1', ...selected], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
