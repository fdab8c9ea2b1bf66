#!/usr/bin/env node
// The `readiness` command: runs the compiled CLI from dist/ (built by `npm ci` through the
// `prepare` script, or `npm run build`).
import { main } from '../dist/cli.js';

main(process.argv).then((code) => {
  if (typeof code === 'number') process.exitCode = code;
});
