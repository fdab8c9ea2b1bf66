// tap runs the .ts test files through ts-node (its @tapjs/typescript plugin, type checks off).
// ts-node's own transpile-only mode still compiles every test file and every src/ module it
// imports with TypeScript's transpileModule, in every test process: 3-5 s of CPU per test file
// that imports the service, about a third of the suite's CPU on a 2-core CI machine. This
// ts-node transpiler (tsconfig.json, "ts-node": { "transpiler" }) hands the same files to
// esbuild instead, as tsx does for `npm run bench`: same ES2022 output, no type checks (those
// are `npm run typecheck`'s job, run by scripts/test.sh).
// ts-node's transpiler interface: https://typestrong.org/ts-node/api/interfaces/TranspilerModule.html
'use strict';
const esbuild = require('esbuild');

exports.create = function create({ nodeModuleEmitKind }) {
  return {
    transpile(input, { fileName }) {
      const out = esbuild.transformSync(input, {
        loader: /\.[cm]?tsx$|\.jsx$/.test(fileName) ? 'tsx' : 'ts',
        // "type": "module": every .ts file is ESM; a .cts file would be CommonJS.
        format: nodeModuleEmitKind === 'nodecjs' ? 'cjs' : 'esm',
        target: 'es2022',
        sourcemap: 'external',
        sourcefile: fileName,
        // What tsconfig.json's target ES2022 implies for class fields (define semantics).
        tsconfigRaw: { compilerOptions: { useDefineForClassFields: true } },
      });
      return { outputText: out.code, sourceMapText: out.map };
    },
  };
};
