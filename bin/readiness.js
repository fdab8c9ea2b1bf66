#!/usr/bin/env node
// The `readiness` command (a CommonJS file: bin/package.json). It runs the CLI bundled into
// dist/bundle/ by `npm run build` (src/build/bundle.ts), in the cheapest way for the command:
//
// - `--version` alone is answered here, from package.json, loading nothing (the CLI answers it
//   the same way; test/startup.test.ts compares the two);
// - `--help` (or no command), `help`, `gate` and `validate` run dist/bundle/light.cjs: one
//   CommonJS file, read and compiled synchronously (src/light.ts says why);
// - every other command runs dist/bundle/main.js, the whole CLI as ES modules.
'use strict';
const [, , first, ...rest] = process.argv;
if ((first === '--version' || first === '-V') && rest.length === 0) {
  process.stdout.write(`${JSON.parse(require('node:fs').readFileSync(require('node:path').join(__dirname, '..', 'package.json'), 'utf8')).version}\n`);
} else if (first === undefined || first === '--help' || first === '-h' || first === 'help' || first === 'gate' || first === 'validate') {
  require('../dist/bundle/light.cjs');
} else {
  import('../dist/bundle/main.js');
}
