#!/usr/bin/env node
// The `custody` command. The CLI itself is TypeScript compiled to dist/ by `npm run build`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('custody is not built yet: run `npm run build` in the repository root first.\n');
  process.exit(1);
}
await import(main.href);
