// What the `readiness` process does, shared by its two entries: dist/main.js (an ES module,
// the whole CLI, bundled into dist/bundle/main.js) and dist/light.js (the commands that start
// often and need little, bundled into one CommonJS file, dist/bundle/light.cjs; see
// src/build/bundle.ts and bin/readiness.js).
import { main } from './cli.js';
import { readerGone } from './cli/output.js';
import { serveStarting } from './startup-flags.js';

export async function run(argv: string[]): Promise<void> {
  // Before the service's code loads (src/startup-flags.ts says why).
  if (argv[2] === 'serve') serveStarting();

  // `readiness check | head` closes the pipe early: that is not an error worth a stack trace.
  // The commands write to the descriptors (src/cli/output.ts), which say so themselves; the
  // streams, should anything use them, get the handler when first used, not created for it.
  for (const name of ['stdout', 'stderr'] as const) {
    onFirstUse(name, (stream) =>
      stream.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') readerGone();
        throw err;
      }),
    );
  }

  const code = await main(argv);
  process.exitCode = code;
  // `serve` resolves only after a graceful shutdown; other commands may leave sockets
  // (keep-alive agents, pools) that would hold the process open for no reason.
  if (argv[2] !== 'serve' || code !== 0) setTimeout(() => process.exit(code), 100).unref();
}

/**
 * Calls `install` with process[name] when something first reads it. Node defines the two as
 * getters that create the stream on first use; this one does the same, then hands back Node's.
 */
function onFirstUse(name: 'stdout' | 'stderr', install: (stream: NodeJS.WriteStream) => void): void {
  const own = Object.getOwnPropertyDescriptor(process, name);
  if (!own?.get || !own.configurable) {
    install(process[name]);
    return;
  }
  const get = own.get;
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: own.enumerable,
    get() {
      Object.defineProperty(process, name, own);
      const stream = get.call(process) as NodeJS.WriteStream;
      install(stream);
      return stream;
    },
  });
}
