// The CLI as deploy scripts use it: exit codes of validate, check and gate, and --help.
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-cli-'));

/** A checklist of one tcp check against `port`: open passes, closed fails. */
function checklist(name: string, port: number, extra = ''): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: cli-test
checks:
  - id: port-open
    title: Port answers
    section: testing
    severity: critical
    phase: pre-deploy
    probe: tcp
    with: { host: 127.0.0.1, port: ${port} }
    expect: ["open == true"]
${extra}`,
  );
  return file;
}

function listen(handler: Parameters<typeof createServer>[1] = (_q, r) => r.end()): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

async function closedPort(): Promise<number> {
  const { server, port } = await listen();
  await new Promise((r) => server.close(r));
  return port;
}

t.test('validate: 0 for the shipped checklist, 2 with every error listed', async (t) => {
  const ok = await runCli(['validate']);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /offgridflow.yaml: ok, \d+ checks/);
  const bad = await runCli(['validate', '-c', 'test/fixtures/invalid-many.yaml']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, 'test/fixtures/invalid-many.yaml:1:13: "apiVersion" must be one of readiness/v1');
  t.match(bad.stderr, 'test/fixtures/invalid-many.yaml:17:14: bad duration "soon"');
  t.match(bad.stderr, /4 errors in test\/fixtures\/invalid-many.yaml/);
  const env = await runCli(['validate'], { env: { READINESS_CONFIG: 'test/fixtures/invalid-yaml.yaml' } });
  t.equal(env.code, 2, 'READINESS_CONFIG is honoured');
});

t.test('check: 0 when ready, 1 when not, 2 on config or usage errors', async (t) => {
  const { server, port } = await listen();
  t.teardown(() => server.close());
  const ready = await runCli(['check', '-c', checklist('ready', port)]);
  t.equal(ready.code, 0, ready.stderr);
  t.match(ready.stdout, /PASS\s+port-open\s+critical\s+pre-deploy\s+1\s+\S/);
  t.match(ready.stdout, 'READY: 1 of 1 checks passing');

  const down = await closedPort();
  const notReady = await runCli(['check', '-c', checklist('down', down), '--format', 'json']);
  t.equal(notReady.code, 1);
  const body = JSON.parse(notReady.stdout);
  t.equal(body.ready, false);
  t.equal(body.failing[0].id, 'port-open');
  t.equal(body.failing[0].state, 'fail');
  t.equal(body.failing[0].message, 'open == true is false (open = false)');

  t.equal((await runCli(['check', '-c', 'test/fixtures/invalid-cron.yaml'])).code, 2);
  const usage = await runCli(['check', '--format', 'xml']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /argument 'xml' is invalid/);
  const only = await runCli(['check', '-c', checklist('only', port), '--only', 'nope']);
  t.equal(only.code, 2);
  t.match(only.stderr, 'error: --only: unknown check nope');
  const sev = await runCli(['check', '--severity', 'urgent']);
  t.equal(sev.code, 2);
  t.match(sev.stderr, 'unknown severity urgent');
});

t.test('gate: 0 ready, 1 not ready at timeout, 3 unreachable, 2 rejected filter', async (t) => {
  let ready = false;
  let seenQuery = '';
  const { server, port } = await listen((req, res) => {
    seenQuery = req.url ?? '';
    if (req.url?.includes('section=bogus')) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'RDY_BAD_FILTER', message: 'bad filter: unknown section "bogus"' }));
      return;
    }
    res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ready, failing: ready ? [] : [{ id: 'db-up', state: 'fail', message: 'connections 95% of max' }] }));
  });
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${port}`;

  const notReady = await runCli(['gate', '--url', url, '--timeout', '1s', '--interval', '200ms', '--phase', 'pre-deploy', '--severity', 'critical,high']);
  t.equal(notReady.code, 1);
  t.match(notReady.stdout, /still failing:\n\s+FAIL\s+db-up: connections 95% of max/);
  t.match(seenQuery, '/readiness?severity=critical%2Chigh&phase=pre-deploy');

  ready = true;
  const ok = await runCli(['gate', '--url', `${url}/readiness`, '--timeout', '5s']);
  t.equal(ok.code, 0);
  t.match(ok.stdout, 'ready:');

  const unreachable = await runCli(['gate', '--url', `http://127.0.0.1:${await closedPort()}`, '--timeout', '1s', '--interval', '300ms']);
  t.equal(unreachable.code, 3);
  t.match(unreachable.stderr, /never reachable \(cannot reach http:\/\/127.0.0.1:\d+: ECONNREFUSED\)/);

  const rejected = await runCli(['gate', '--url', url, '--section', 'bogus', '--timeout', '1s']);
  t.equal(rejected.code, 2);
  t.match(rejected.stderr, 'bad filter: unknown section "bogus"');

  t.equal((await runCli(['gate', '--timeout', '1s'])).code, 2, '--url is required');
  t.equal((await runCli(['gate', '--url', 'not a url'])).code, 2);
});

t.test('--help on every command exits 0 and says what it does', async (t) => {
  const top = await runCli(['--help']);
  t.equal(top.code, 0);
  t.match(top.stdout, /serve.*\n.*check.*\n.*gate.*\n.*validate/s);
  t.match(top.stdout, 'READINESS_API_TOKEN');
  for (const cmd of ['serve', 'check', 'gate', 'validate']) {
    const h = await runCli([cmd, '--help']);
    t.equal(h.code, 0, cmd);
    t.match(h.stdout, `Usage: readiness ${cmd}`, cmd);
  }
  t.equal((await runCli(['frobnicate'])).code, 2, 'unknown command is a usage error');
});
