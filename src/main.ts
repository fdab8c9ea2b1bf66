// Process entry for the `readiness` command (bin/readiness.js loads the compiled copy).
import { main } from './cli.js';

const code = await main(process.argv);
process.exitCode = code;
// `serve` resolves only after a graceful shutdown; other commands may leave sockets
// (keep-alive agents, pools) that would hold the process open for no reason.
if (process.argv[2] !== 'serve' || code !== 0) setTimeout(() => process.exit(code), 100).unref();
