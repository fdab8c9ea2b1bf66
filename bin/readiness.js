#!/usr/bin/env node
// The `readiness` command: runs the compiled CLI from dist/ (built by `npm ci` through the
// `prepare` script, or by `npm run build`).
import '../dist/main.js';
