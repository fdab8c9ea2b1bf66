// Process entry for the `readiness` command (bin/readiness.js loads the compiled copy).
import { main } from './cli.js';
import { serveStarting } from './startup-flags.js';

// Before the service's code loads (src/startup-flags.ts says why).
if (process.argv[2] === 'serve') serveStarting();

// `readiness check | head` closes the pipe early: that is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const code = await main(process.argv);
process.exitCode = code;
// `serve` resolves only after a graceful shutdown; other commands may leave sockets
// (keep-alive agents, pools) that would hold the process open for no reason.
if (process.argv[2] !== 'serve' || code !== 0) setTimeout(() => process.exit(code), 100).unref();
