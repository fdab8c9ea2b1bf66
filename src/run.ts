// What the `readiness` process does, shared by its two entries: dist/main.js (an ES module,
// the whole CLI, bundled into dist/bundle/main.js) and dist/light.js (the commands that start
// often and need little, bundled into one CommonJS file, dist/bundle/light.cjs; see
// src/build/bundle.ts and bin/readiness.js).
import { main } from './cli.js';
import { serveStarting } from './startup-flags.js';

export async function run(argv: string[]): Promise<void> {
  // Before the service's code loads (src/startup-flags.ts says why).
  if (argv[2] === 'serve') serveStarting();

  // `readiness check | head` closes the pipe early: that is not an error worth a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }

  const code = await main(argv);
  process.exitCode = code;
  // `serve` resolves only after a graceful shutdown; other commands may leave sockets
  // (keep-alive agents, pools) that would hold the process open for no reason.
  if (argv[2] !== 'serve' || code !== 0) setTimeout(() => process.exit(code), 100).unref();
}
