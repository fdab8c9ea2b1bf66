#!/usr/bin/env node
// The `readiness` command: runs the bundled CLI from dist/bundle/ (built by `npm ci` through
// the `prepare` script, or by `npm run build`; see src/build/bundle.ts).
import '../dist/bundle/main.js';
