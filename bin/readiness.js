#!/usr/bin/env node
// The `readiness` command: runs the bundled CLI from dist/bundle/ (built by `npm ci` through
// the `prepare` script, or by `npm run build`; see src/build/bundle.ts).
//
// `readiness --version` alone is answered here, from package.json, without loading the CLI:
// deploy scripts ask it often and it needs nothing else (the CLI answers it the same way,
// test/startup.test.ts compares the two).
import { readFileSync } from 'node:fs';
import { URL } from 'node:url';

const [, , first, ...rest] = process.argv;
if ((first === '--version' || first === '-V') && rest.length === 0) {
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
} else {
  await import('../dist/bundle/main.js');
}
