// Placeholder build: replaced by the web UI's esbuild script.
import { mkdirSync } from 'node:fs';
mkdirSync(new URL('./dist', import.meta.url), { recursive: true });
