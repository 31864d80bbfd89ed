#!/usr/bin/env node
// Builds the auditor UI: type-checks src/ (and the unit tests), bundles src/main.ts with
// esbuild into dist/app.js (with @custody/verify and fflate inside: the page loads nothing
// else), and copies index.html, app.css and favicon.svg. The unit tests of the pure core
// (test/*.test.ts) are bundled into dist/test/, where scripts/run-tests.mjs finds them.
//
// The vault serves dist/ at `/` (packages/vault/src/server/web.ts, docs/WEB.md).
// Usage: node build.mjs [--no-check]
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const require = createRequire(import.meta.url);

if (!process.argv.includes('--no-check')) {
  const tsc = require.resolve('typescript/bin/tsc');
  for (const project of [here, join(here, 'test')]) {
    const r = spawnSync(process.execPath, [tsc, '-p', project, '--noEmit'], { stdio: 'inherit' });
    if (r.status !== 0) {
      console.error(`web: type errors in ${project} (tsc -p ${project} --noEmit)`);
      process.exit(r.status ?? 1);
    }
  }
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

await build({
  entryPoints: [join(here, 'src', 'main.ts')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
  // Not minified on purpose: an auditor can read exactly what checks their proofs.
  minify: false,
  legalComments: 'inline',
  charset: 'utf8',
  logLevel: 'warning',
});

for (const f of ['index.html', 'app.css', 'favicon.svg']) copyFileSync(join(here, 'src', f), join(dist, f));

const tests = readdirSync(join(here, 'test')).filter((f) => f.endsWith('.test.ts'));
if (tests.length > 0) {
  await build({
    entryPoints: tests.map((f) => join(here, 'test', f)),
    outdir: join(dist, 'test'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
  });
}
