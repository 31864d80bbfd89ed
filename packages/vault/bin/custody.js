#!/usr/bin/env -S node --max-semi-space-size=8
// The `custody` command. The CLI itself is TypeScript compiled to dist/ by `npm run build`.
// --max-semi-space-size=8: ingest makes short-lived garbage (request bodies, parsed JSON) at a
// high rate; a smaller young generation collects it sooner and keeps the server's peak memory
// down (npm run bench: ~440 MiB with node's default 16 MB, ~370 MiB with 8 MB, same throughput
// within noise). `npm start` passes the same flag.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('custody is not built yet: run `npm run build` in the repository root first.\n');
  process.exit(1);
}
await import(main.href);
