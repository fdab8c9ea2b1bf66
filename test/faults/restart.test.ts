// A restart never makes /readiness greener than it was before the stop: a result restored
// from the store that is older than its staleness bound (three intervals) is served as
// `pending` (not passing; not `stale` either, which would page a rollback because the exporter
// was down) until its first run since the restart, never as the pass it once was. Real
// processes, a real stop and start.
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { ReadinessBody } from '../../src/state.js';
import { startServe } from '../helpers/cli.js';
import { freePort, waitFor } from '../helpers/service.js';
import { faultSuite } from '../helpers/faults.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-faults-restart-'));
const suite = faultSuite(t, 'restart');

suite.fault('stop, target down, wait past three intervals, start: the stored pass is pending, never 200', 180_000, async (t) => {
  const port = await freePort();
  // The target: healthy at first; later a listener that accepts and never answers, so the
  // first run after the restart takes its whole timeout and the restored state is what
  // /readiness serves meanwhile.
  let healthy: Server | undefined = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => healthy!.listen(port, '127.0.0.1', r));
  const file = join(dir, 'checklist.yaml');
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: restart
checks:
  - id: app
    title: App answers
    section: verify
    severity: critical
    phase: verify
    probe: http
    with: { url: "http://127.0.0.1:${port}/" }
    expect: ["status == 200"]
    interval: 2s
    timeout: 1900ms
`,
  );
  const env = { READINESS_DATA_DIR: join(dir, 'data') };
  const first = await startServe(t, ['-c', file], env);
  await waitFor('ready before the stop', async () => ((await fetch(`${first.url}/readiness`)).status === 200 ? true : undefined), { timeoutMs: 60_000, everyMs: 100 });
  first.child.kill('SIGTERM');
  t.equal(await first.exited, 0, 'stopped cleanly, ready at the stop');

  await new Promise<void>((r) => healthy!.close(() => r()));
  healthy = undefined;
  const sockets = new Set<Socket>();
  const hung = createTcpServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => hung.listen(port, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    hung.close();
  });
  // More than three intervals (6 s) pass before the service is back.
  await new Promise((r) => setTimeout(r, 7_000));

  const second = await startServe(t, ['-c', file], env);
  const seen: { status: number; state: string | undefined }[] = [];
  // Poll until the first run after the restart has completed (the target hangs: it fails).
  for (let i = 0; i < 600; i++) {
    const res = await fetch(`${second.url}/readiness?verbose=1`);
    const body = (await res.json()) as ReadinessBody;
    const app = body.checks?.find((c) => c.id === 'app');
    seen.push({ status: res.status, state: app?.state });
    if (app && app.state !== 'pending' && app.state !== 'pass') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(seen.length > 1, `${seen.length} answers from the restart until the first run ended`);
  t.same(
    seen.filter((s) => s.status === 200),
    [],
    'no 200 from a pass that is older than its staleness bound',
  );
  t.equal(seen[0]?.state, 'pending', 'the restored result is served as pending');
  t.same(seen.filter((s) => s.state === 'stale'), [], 'and never as stale: the exporter was down, not the check');
  t.match(seen.at(-1), { status: 503, state: 'error' }, 'then the fresh result: the target does not answer');
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);
});

suite.fault('a restored pass within its staleness bound still passes after a restart', 180_000, async (t) => {
  const app = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => app.close());
  const port = (app.address() as { port: number }).port;
  const file = join(dir, 'checklist-long.yaml');
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: restart-long
checks:
  - id: app
    title: App answers
    section: verify
    severity: critical
    phase: verify
    probe: http
    with: { url: "http://127.0.0.1:${port}/" }
    expect: ["status == 200"]
    interval: 1h
`,
  );
  const env = { READINESS_DATA_DIR: join(dir, 'data-long') };
  const first = await startServe(t, ['-c', file], env);
  const before = await waitFor(
    'ready before the stop',
    async () => {
      const r = await fetch(`${first.url}/readiness?verbose=1`);
      return r.status === 200 ? ((await r.json()) as ReadinessBody) : undefined;
    },
    { timeoutMs: 60_000, everyMs: 100 },
  );
  first.child.kill('SIGTERM');
  await first.exited;
  const second = await startServe(t, ['-c', file], env);
  const r = await fetch(`${second.url}/readiness?verbose=1`);
  const after = (await r.json()) as ReadinessBody;
  t.equal(r.status, 200, 'a one-hour check that passed a moment ago still passes');
  t.equal(after.checks?.[0]?.state, 'pass');
  t.ok(Date.parse(after.checks![0]!.lastRun!) >= Date.parse(before.checks![0]!.lastRun!), 'from the stored run or a newer one');
  second.child.kill('SIGTERM');
  await second.exited;
});
