/**
 * Go reference tools (../shared/tools/<name>) built on demand. Tests that need them FAIL when
 * they cannot be built: they are the independent check of this package, never optional.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type GoToolName = 'tloggen' | 'tlogcheck';

/** The workspace root: the nearest ancestor of this file whose package.json has "workspaces". */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      const json = JSON.parse(readFileSync(pj, 'utf8')) as { workspaces?: unknown };
      if (json.workspaces !== undefined) return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`go-tools: no workspace root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Path of the built tool, building it with <repo>/../shared/tools/<name>/build.sh when missing. */
export function goTool(name: GoToolName): string {
  const dir = process.env.CUSTODY_GO_TOOLS ?? join(tmpdir(), 'custody-go-tools');
  const out = join(dir, name);
  if (isExecutable(out)) return out;
  const script = resolve(repoRoot(), '..', 'shared', 'tools', name, 'build.sh');
  if (!existsSync(script)) throw new Error(`go-tools: cannot build ${name}: ${script} does not exist`);
  mkdirSync(dir, { recursive: true });
  // Build next to the target and rename: atomic, so parallel test files never see half a binary.
  const tmp = `${out}.build-${process.pid}`;
  try {
    execFileSync('bash', [script, tmp], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    rmSync(tmp, { force: true });
    throw new Error(`go-tools: building ${name} with ${script} failed: ${err.stderr?.toString() || err.message}`);
  }
  if (!isExecutable(tmp)) throw new Error(`go-tools: ${script} did not produce ${tmp}`);
  renameSync(tmp, out);
  return out;
}
