// Process entry for the commands that start often and need little: `--help` (and no
// command), `help`, `gate` and `validate`. src/build/bundle.ts bundles it into one CommonJS
// file, dist/bundle/light.cjs, that Node reads and compiles synchronously in one go: no ES
// module loader, no chunk files fetched one by one through the thread pool. Its commands'
// modules are the same source as main's; the others (serve, check, attest, ...) are left out
// of it: bin/readiness.js sends them to main.js (it routes by the first argument).
import { run } from './run.js';

void run(process.argv);
