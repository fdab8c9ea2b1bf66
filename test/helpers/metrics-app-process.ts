// The stand-in app of test/helpers/metrics-app.ts in a process of its own, so a test can kill
// it as an outage kills an app (SIGKILL: no goodbye, connections refused from then on).
// Run as a script it starts the app with the traffic given as JSON in argv[2] and prints
// `listening <host:port>`; spawnMetricsApp() starts it under test/helpers/service.ts's wrapper.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { startMetricsApp, type Traffic } from './metrics-app.js';
import { logTail, removeDir, serviceDir, spawnService, waitFor, type Teardown } from './service.js';

const SELF = fileURLToPath(import.meta.url);

export interface AppProcess {
  /** host:port, for scrape configs. */
  address: string;
  /** SIGKILL, and waits until the process is gone. */
  kill(): Promise<void>;
  running(): boolean;
}

export async function spawnMetricsApp(t: Teardown, traffic: Traffic): Promise<AppProcess> {
  const dir = serviceDir('metrics-app');
  t.teardown(() => removeDir(dir));
  const logFile = join(dir, 'app.log');
  const proc = spawnService(process.execPath, ['--import', 'tsx', SELF, JSON.stringify(traffic)], { logFile });
  t.teardown(() => proc.stop());
  const address = await waitFor(
    'metrics app listening',
    async () => /^listening (\S+)$/m.exec(readFileSync(logFile, 'utf8'))?.[1],
    { timeoutMs: 30_000, everyMs: 100, abortIf: () => (proc.running() ? undefined : `exited:\n${logTail(logFile)}`) },
  );
  return {
    address,
    running: () => proc.running(),
    async kill() {
      const pid = proc.servicePid();
      if (pid === undefined) throw new Error('the metrics app is not running');
      process.kill(pid, 'SIGKILL');
      await proc.exited;
    },
  };
}

if (process.argv[1] === SELF) {
  const app = await startMetricsApp({ teardown: () => {} }, JSON.parse(process.argv[2] ?? '{}') as Traffic);
  process.stdout.write(`listening ${app.address}\n`);
}
