// bin/readiness.js runs `--help`, `help`, `gate` and `validate` from dist/bundle/light.cjs (one
// CommonJS file, src/light.ts) and every other command from dist/bundle/main.js (the ES module
// bundle the Docker image runs). Both are built from the same src/cli.ts: pinned here, they
// answer those commands alike, byte for byte, exit codes included, on the pass and fail paths.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli, type Ran } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-light-'));

/** The same command run by the ES module bundle directly, not through bin/readiness.js. */
const viaMain = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> => runCli(args, { env, entry: 'dist/bundle/main.js' });

t.test('light.cjs and main.js answer the light commands alike', async (t) => {
  const ready = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ready: true, status: 'ready', failing: [] }));
  });
  await new Promise<void>((r) => ready.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => ready.close());
  const readyUrl = `http://127.0.0.1:${(ready.address() as { port: number }).port}`;
  // A port nothing listens on: gate's unreachable path.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  const closedUrl = `http://127.0.0.1:${(closed.address() as { port: number }).port}`;
  await new Promise((r) => closed.close(r));

  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'apiVersion: readiness/v1\nchecklist: light\nchecks:\n  - id: one\n    title: One\n    section: s\n    severity: loud\n    phase: pre-deploy\n    probe: tcp\n    with: { host: 127.0.0.1, port: 0 }\n');

  const cases: [string[], number][] = [
    [[], 0],
    [['--help'], 0],
    [['-h'], 0],
    [['help'], 0],
    [['help', 'gate'], 0],
    [['gate', '--help'], 0],
    [['validate', '--help'], 0],
    [['validate'], 0],
    [['validate', '-c', bad], 2],
    [['validate', '-c', join(dir, 'missing.yaml')], 2],
    [['validate', '--bogus'], 2],
    [['gate'], 2],
    [['gate', '--url', 'not a url'], 2],
    [['gate', '--url', readyUrl, '--severity', 'loud'], 2],
    [['gate', '--url', readyUrl, '--timeout', '10s'], 0],
    [['gate', '--url', closedUrl, '--timeout', '1s', '--interval', '200ms'], 3],
  ];
  for (const [args, expected] of cases) {
    const light = await runCli(args);
    const main = await viaMain(args);
    const name = args.join(' ') || '(no arguments)';
    t.equal(light.code, expected, `${name}: exit ${expected} (${light.stderr})`);
    t.same({ code: light.code, stdout: light.stdout, stderr: light.stderr }, { code: main.code, stdout: main.stdout, stderr: main.stderr }, `${name}: light.cjs answers as main.js does`);
  }
});

t.test('a command light.cjs leaves out fails loudly there instead of doing something else', async (t) => {
  // bin/readiness.js never sends these to light.cjs; if that changed, the stub says so.
  const r = await runCli(['check', '-c', join(dir, 'missing.yaml')], { entry: 'dist/bundle/light.cjs' });
  t.equal(r.code, 2);
  t.match(r.stderr, /internal: \.\/cli\/check\.js is not part of dist\/bundle\/light\.cjs/);
  // And through bin/readiness.js the same command runs for real (main.js): its own error.
  const real = await runCli(['check', '-c', join(dir, 'missing.yaml')]);
  t.equal(real.code, 2);
  t.notMatch(real.stderr, /internal:/);
  t.match(real.stderr, /missing\.yaml/);
});
