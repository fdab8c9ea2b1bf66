// How the commands write their output: straight to file descriptors 1 and 2, synchronously.
// process.stdout and process.stderr are streams that Node creates on first use, loading its
// stream modules (and net's, for a pipe) with them: a few ms of every command's start-up, a
// tenth of `readiness gate` (bench/startup.ts). A line written here is written whole before the
// call returns, as a stream on a pipe or file writes it on Linux.
//
// Two cases go through the stream instead: a descriptor left non-blocking (by a parent sharing
// it, or because the stream exists and libuv set it so) whose pipe is full (EAGAIN), and every
// write after such a fallback, so that lines stay in order. A reader that went away (EPIPE:
// `readiness check | head`) ends the process with its exit code so far, as the streams' error
// handler does (src/run.ts).
import { writeSync } from 'node:fs';

const streamOf = { 1: () => process.stdout, 2: () => process.stderr } as const;
/** The descriptors that fell back to their stream. */
const viaStream = new Set<1 | 2>();

/** The exit of a process whose reader has gone: nothing more can be said, and it is no error. */
export function readerGone(): never {
  process.exit(process.exitCode ?? 0);
}

/** Writes `text` whole to descriptor `fd` (1 stdout, 2 stderr). */
export function writeFd(fd: 1 | 2, text: string): void {
  if (viaStream.has(fd)) {
    streamOf[fd]().write(text);
    return;
  }
  const buf = Buffer.from(text);
  let done = 0;
  while (done < buf.length) {
    try {
      done += writeSync(fd, buf, done, buf.length - done);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') readerGone();
      if (code !== 'EAGAIN') throw err;
      viaStream.add(fd);
      streamOf[fd]().write(buf.subarray(done));
      return;
    }
  }
}
