// Stryker's buildCommand (stryker.config.mjs): compiles the sandbox's instrumented sources and
// the tests to plain JavaScript under .stryker-build/, once per run, so that each mutant's test
// process is a bare `node file.js` instead of paying for tsx's loader (about half the CPU of a
// small test file). Transpile only, no type check: the TypeScript checker already rejects
// mutants that do not compile, and the instrumented files carry @ts-nocheck.
import { copyFileSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';

export const OUT = '.stryker-build';

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'fixtures' && e.name !== 'node_modules') yield* walk(p);
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield p;
  }
}

export function build(root = '.') {
  rmSync(join(root, OUT), { recursive: true, force: true });
  const options = { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false };
  let n = 0;
  for (const dir of ['src', 'test']) {
    for (const file of walk(join(root, dir))) {
      const out = join(root, OUT, relative(root, file).replace(/\.ts$/, '.js'));
      const { outputText } = ts.transpileModule(ts.sys.readFile(file), { compilerOptions: options, fileName: file });
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, outputText);
      n++;
    }
  }
  // What the sources read next to themselves (`new URL('../package.json', import.meta.url)`).
  copyFileSync(join(root, 'package.json'), join(root, OUT, 'package.json'));
  for (const d of ['ui', 'probes', 'migrations']) symlinkSync(join('..', d), join(root, OUT, d));
  symlinkSync(join('..', 'node_modules'), join(root, OUT, 'node_modules'));
  return n;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = build();
  console.log(`stryker-build: ${n} files transpiled to ${OUT}/`);
}
