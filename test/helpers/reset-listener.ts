// A listener that completes the TCP handshake and then resets the connection (RST, as a
// socket closed with SO_LINGER {1,0} sends), in a process of its own so the reset races the
// client as it does in production. Each reset is recorded, synchronously, as one line in a
// file the test can read without yielding to its event loop, once the socket is closed.
// Run as a script: argv[2] = the record file, argv[3] = ms to wait after accept before the RST.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { logTail, removeDir, serviceDir, spawnService, waitFor, type Teardown } from './service.js';

const SELF = fileURLToPath(import.meta.url);

export interface ResetListener {
  port: number;
  /** Resets sent so far (read synchronously). */
  resets(): number;
}

export async function spawnResetListener(t: Teardown, opts: { delayMs?: number } = {}): Promise<ResetListener> {
  const dir = serviceDir('reset-listener');
  t.teardown(() => removeDir(dir));
  const record = join(dir, 'resets');
  const logFile = join(dir, 'listener.log');
  const proc = spawnService(process.execPath, ['--import', 'tsx', SELF, record, String(opts.delayMs ?? 0)], { logFile });
  t.teardown(() => proc.stop());
  const port = await waitFor(
    'reset listener listening',
    async () => {
      const m = /^listening (\d+)$/m.exec(existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
      return m ? Number(m[1]) : undefined;
    },
    { timeoutMs: 30_000, everyMs: 100, abortIf: () => (proc.running() ? undefined : `exited:\n${logTail(logFile)}`) },
  );
  return { port, resets: () => (existsSync(record) ? readFileSync(record, 'utf8').length : 0) };
}

if (process.argv[1] === SELF) {
  const [record, delay] = [process.argv[2]!, Number(process.argv[3] ?? 0)];
  writeFileSync(record, '');
  const server = net.createServer((socket) => {
    // Recorded once the socket is closed: the RST has been handed to the kernel by then.
    socket.once('close', () => appendFileSync(record, 'r'));
    const reset = () => socket.resetAndDestroy();
    if (delay > 0) setTimeout(reset, delay);
    else reset();
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`));
}
