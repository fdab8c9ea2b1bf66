// prometheus-blackbox-exporter (Debian's package) for tests: started on a free 127.0.0.1 port
// with a temp config holding a tcp_connect module, so a probe kind's verdict can be compared
// with blackbox's probe_success on the same target.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { freePort, logTail, removeDir, serviceDir, spawnService, waitFor, type Teardown } from './service.js';

export const BLACKBOX_BIN = process.env.BLACKBOX_BIN ?? '/usr/bin/prometheus-blackbox-exporter';

export interface Blackbox {
  url: string;
  /** GET /probe?module=..&target=..: probe_success as a boolean, with the raw exposition. */
  probe(module: string, target: string): Promise<{ success: boolean; text: string }>;
}

export async function startBlackbox(t: Teardown, modules: Record<string, unknown> = { tcp_connect: { prober: 'tcp', timeout: '5s' } }): Promise<Blackbox> {
  const dir = serviceDir('blackbox');
  t.teardown(() => removeDir(dir));
  const config = join(dir, 'blackbox.yml');
  const logFile = join(dir, 'blackbox.log');
  writeFileSync(config, YAML.stringify({ modules }));
  const port = await freePort();
  const proc = spawnService(BLACKBOX_BIN, [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${port}`], { logFile });
  t.teardown(() => proc.stop());
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'blackbox exporter ready',
    async () => {
      try {
        return (await fetch(`${url}/-/healthy`, { signal: AbortSignal.timeout(1000) })).ok ? true : undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000, everyMs: 100, abortIf: () => (proc.running() ? undefined : `exited:\n${logTail(logFile)}`) },
  );
  return {
    url,
    async probe(module, target) {
      const res = await fetch(`${url}/probe?${new URLSearchParams({ module, target }).toString()}`, { signal: AbortSignal.timeout(15_000) });
      const text = await res.text();
      const m = /^probe_success (\S+)$/m.exec(text);
      if (!m) throw new Error(`blackbox answered ${res.status} without probe_success:\n${text}`);
      return { success: m[1] === '1', text };
    },
  };
}
