// Where the package's own files are (package.json, the shipped checklist, migrations, the
// precompiled validators), found from the package root rather than relative to the running
// module: the same code runs as src/ (tests), dist/ (tsc) and dist/bundle/ (the command, one
// bundle: src/build/bundle.ts), each at a different depth. Every file read at run time is
// located through here (test/startup.test.ts checks that no other module uses import.meta.url).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function packageRoot(from: string): string {
  for (let dir = dirname(from); ; ) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${from}`);
    dir = up;
  }
}

/** The directory holding package.json, probes/, migrations/ and dist/. */
export const ROOT = packageRoot(fileURLToPath(import.meta.url));

/** A path under the package root: `packagePath('probes', 'offgridflow.yaml')`. */
export function packagePath(...parts: string[]): string {
  return join(ROOT, ...parts);
}
