// Process entry for the `readiness` command: the whole CLI (bin/readiness.js loads its bundle,
// dist/bundle/main.js, for every command that dist/light.js does not answer).
import { run } from './run.js';

await run(process.argv);
