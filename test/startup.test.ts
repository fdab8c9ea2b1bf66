// What each command loads before it does anything (issue 14: a CLI that starts at once). A
// probe kind's client (@kubernetes/client-node, the AWS SDK, pg, undici), the server
// (fastify, prom-client), the store and the logger load only for the commands and the
// checks that use them. Observed, not timed: every command runs under a loader hook
// (test/helpers/module-trace.mjs) that lists the modules the process loaded.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { runCli, startServe } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-startup-'));
const HOOK = resolve('test/helpers/module-trace.mjs');

/** Packages that no command may load unless a check (or the command) needs them. */
const HEAVY = ['@kubernetes/client-node', '@aws-sdk/client-s3', '@aws-sdk/client-sts', 'pg', 'undici', 'fastify', 'prom-client', 'better-sqlite3', 'pino'];

/** The package a loaded file belongs to (`@scope/name` or `name`), or `.` for this project's own files. */
function packageOf(path: string): string {
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
  return m ? m[1]! : '.';
}

interface Traced extends Loaded {
  code: number | null;
  stdout: string;
  stderr: string;
}

let n = 0;
/**
 * Packages any process spawned from this test loads before its own code (tap's coverage
 * hooks patch spawn): measured on `node -e 0` and left out of every command's list.
 */
let harness: Set<string> | undefined;

/** What a process loaded, bundled modules included. */
interface Loaded {
  /** Every package a module was loaded from. */
  packages: Set<string>;
  /** This project's own modules (dist/...). */
  own: string[];
  /** Every module, relative to the repository. */
  files: string[];
  /** Node's built-in modules (`internal/deps/undici/undici` is global fetch's client). */
  builtins: Set<string>;
  /** The files of dist/bundle/ the process loaded, sorted. */
  bundle: string[];
  /** The files the process loaded, as they are on disk (a bundle file stands for itself). */
  read: string[];
}

/**
 * Node's modules that --help, gate and validate have no use for, each a few ms to load: the
 * CommonJS files they run from require them on first use only (src/build/bundle.ts's
 * LAZY_BUILTINS). commander requires child_process for subcommands run as programs; validate's
 * modules import tls, dns, worker_threads, perf_hooks, ... for probes that validate never runs.
 */
const UNUSED_BUILTINS = ['child_process', 'tls', 'dns/promises', 'worker_threads', 'perf_hooks', 'timers/promises', 'os', 'readline'];

/**
 * Which of `names` the command loads, among Node's own modules. tap's spawn hooks load many of
 * them into every process it starts (child_process, crypto, net, ...), so the command runs
 * under `env`, which hands node the tracer's NODE_OPTIONS alone; whatever the tracer itself
 * loads (its hooks run on a worker thread) is measured on `node -e 0` and left out.
 */
function builtinsLoaded(args: string[], names: readonly string[]): string[] {
  const loaded = (nodeArgs: string[]) => {
    const file = join(dir, `builtins-${n++}.txt`);
    writeFileSync(file, '');
    const r = spawnSync('env', ['-i', `PATH=${process.env.PATH}`, `NODE_OPTIONS=--import=${HOOK}`, `MODULE_TRACE_FILE=${file}`, process.execPath, ...nodeArgs], { encoding: 'utf8', timeout: 120_000 });
    if (r.error) throw r.error;
    return new Set(readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('builtin:')).map((l) => l.slice('builtin:'.length)));
  };
  const baseline = loaded(['-e', '0']);
  const command = loaded(['bin/readiness.js', ...args]);
  return names.filter((b) => command.has(b) && !baseline.has(b));
}

t.test('help, gate and validate load none of Node\'s modules they do not use', async (t) => {
  t.same(builtinsLoaded(['--help'], [...UNUSED_BUILTINS, 'crypto']), [], '--help');
  t.same(builtinsLoaded(['validate', '--help'], [...UNUSED_BUILTINS, 'crypto']), [], 'validate --help');
  // Port 1 refuses at once.
  t.same(builtinsLoaded(['gate', '--url', 'http://127.0.0.1:1', '--timeout', '1s', '--interval', '200ms'], [...UNUSED_BUILTINS, 'crypto']), [], 'gate');
  // os it does use: a kubernetes check is configured by ~/.kube/config, found from the home directory.
  t.same(builtinsLoaded(['validate'], UNUSED_BUILTINS.filter((b) => b !== 'os')), [], 'validate of the shipped checklist');
  // The guard sees them when they load: a command that does use them.
  t.same(builtinsLoaded(['check', '-c', join(dir, 'missing.yaml')], ['child_process']), ['child_process'], 'the guard sees what main.js loads');
});

/** What Node compiles on a process's first fetch(): about a `node -e 0` of start-up on its own. */
const FETCH = 'internal/deps/undici/undici';

function traceEnv(): { env: NodeJS.ProcessEnv; read: () => Loaded } {
  if (!harness) {
    harness = new Set();
    const base = traceEnvFor(join(dir, 'trace-baseline.txt'));
    const r = spawnSync(process.execPath, ['-e', '0'], { env: { ...process.env, ...base.env } });
    if (r.status !== 0) throw new Error(`node -e 0 under the tracer failed: ${String(r.stderr)}`);
    harness = base.read().packages;
  }
  return traceEnvFor(join(dir, `trace-${n++}.txt`));
}

/**
 * The modules in each file of the bundle the command runs (dist/bundle/modules.json, written
 * by src/build/bundle.ts): a loaded chunk stands for every module esbuild put in it.
 */
let bundled: Map<string, string[]> | undefined;
function modulesOf(relPath: string): string[] {
  bundled ??= new Map(Object.entries(JSON.parse(readFileSync('dist/bundle/modules.json', 'utf8')) as Record<string, string[]>));
  return bundled.get(relPath) ?? [relPath];
}

function traceEnvFor(file: string): { env: NodeJS.ProcessEnv; read: () => Loaded } {
  writeFileSync(file, '');
  return {
    // Only our hook: tap's own NODE_OPTIONS (coverage) would add its modules to every process.
    env: { NODE_OPTIONS: `--import=${HOOK}`, MODULE_TRACE_FILE: file },
    read: () => {
      const root = resolve('.') + '/';
      const lines = [...new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean))];
      const builtins = new Set(lines.filter((l) => l.startsWith('builtin:')).map((l) => l.slice('builtin:'.length)));
      const loaded = lines.filter((l) => !l.startsWith('builtin:')).map((p) => p.replace(root, ''));
      const paths = [...new Set(loaded.flatMap(modulesOf))].map((p) => `/${p}`);
      return {
        packages: new Set(paths.map(packageOf).filter((p) => p !== '.' && !harness?.has(p))),
        own: paths.filter((p) => packageOf(p) === '.').map((p) => p.slice(1)),
        files: paths.map((p) => p.slice(1)),
        builtins,
        bundle: loaded.filter((p) => p.startsWith('dist/bundle/')).sort(),
        read: loaded,
      };
    },
  };
}

async function traced(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Traced> {
  const tr = traceEnv();
  const r = await runCli(args, { env: { ...env, ...tr.env } });
  return { ...r, ...tr.read() };
}

function tcpChecklist(kind: 'tcp' | 'http', port: number): string {
  const file = join(dir, `${kind}.yaml`);
  const probe = kind === 'tcp' ? `probe: tcp\n    with: { host: 127.0.0.1, port: ${port} }\n    expect: ["open == true"]` : `probe: http\n    with: { url: "http://127.0.0.1:${port}/" }`;
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: startup-test
checks:
  - id: one
    title: One check
    section: testing
    severity: critical
    phase: pre-deploy
    ${probe}
`,
  );
  return file;
}

function listening(): Promise<{ port: number; close: () => void }> {
  return new Promise((done) => {
    // Answers HTTP; a tcp probe that connects and leaves resets the socket, which is fine.
    const srv = createServer((s) => s.on('error', () => {}).end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'));
    srv.listen(0, '127.0.0.1', () => done({ port: (srv.address() as { port: number }).port, close: () => srv.close() }));
  });
}

t.test('the tracer sees what a command loads, lazily loaded clients included', async (t) => {
  // Precondition for every assertion below: a check of kind http does load undici.
  const { port, close } = await listening();
  t.teardown(close);
  const r = await traced(['check', '-c', tcpChecklist('http', port)]);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.ok(r.packages.has('undici'), 'an http check loads undici');
  t.ok(r.packages.has('commander'));
  t.ok(r.own.includes('dist/cli/check.js'));
  // And it sees Node's own modules: fetch() compiles its bundled client on first use.
  const tr = traceEnv();
  // Port 1 refuses at once (spawnSync blocks this process, so a listener here could not answer).
  const f = spawnSync(process.execPath, ['--input-type=module', '-e', "await fetch('http://127.0.0.1:1/').catch(() => {})"], { env: { ...process.env, ...tr.env }, timeout: 120_000 });
  t.equal(f.status, 0, String(f.stderr));
  t.ok(tr.read().builtins.has(FETCH), 'a process that calls fetch() loads Node\'s bundled undici');
});

t.test('--version loads nothing: bin/readiness.js answers it, as the CLI does', async (t) => {
  const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
  const cli = spawnSync(process.execPath, ['dist/bundle/main.js', '--version'], { encoding: 'utf8', timeout: 120_000 });
  t.equal(cli.status, 0, cli.stderr);
  t.equal(cli.stdout, `${version}\n`, 'the CLI itself (commander) prints the package version');
  for (const flag of ['--version', '-V']) {
    const r = await traced([flag]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, cli.stdout, `${flag}: the same output as the CLI's`);
    t.same([...r.packages], [], `${flag} loads no package`);
    t.same(r.files.filter((f) => f.startsWith('dist/')), [], `${flag} loads none of dist/`);
  }
  // Anything more goes to the CLI, which decides what it means.
  const more = await traced(['--version', 'serve']);
  t.ok(more.packages.has('commander'), '--version with more arguments is the CLI\'s');
});

t.test('--help loads commander and nothing else', async (t) => {
  for (const args of [['--help'], ['validate', '--help'], ['serve', '--help']]) {
    const r = await traced(args);
    t.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    t.same([...r.packages], ['commander'], `${args.join(' ')} loads only commander`);
    // --help and validate's: one CommonJS file, required synchronously, no ES module chunks
    // fetched one by one. bin/readiness.js routes by the first argument only, so serve's help
    // comes from main.js (as serve does).
    if (args[0] !== 'serve') t.same(r.bundle, ['dist/bundle/light.cjs'], `${args.join(' ')} runs from light.cjs alone`);
    else t.ok(r.bundle.includes('dist/bundle/main.js') && !r.bundle.includes('dist/bundle/light.cjs'), `serve --help runs from main.js: ${r.bundle.join(', ')}`);
    t.notOk(r.builtins.has(FETCH), `${args.join(' ')} does not load fetch's client`);
    t.notOk(r.own.some((f) => /^dist\/(config\/load|probes|store|http|scheduler|service)/.test(f)), `${args.join(' ')}: ${r.own.join(', ')}`);
  }
});

t.test('gate loads no checklist code, no client library and not fetch', async (t) => {
  const { port, close } = await listening();
  close();
  const r = await traced(['gate', '--url', `http://127.0.0.1:${port}`, '--timeout', '1s', '--interval', '200ms']);
  t.equal(r.code, 3, r.stderr);
  t.match(r.stderr, /ECONNREFUSED/, 'gate did try to reach the service');
  t.same([...r.packages], ['commander']);
  t.same(r.bundle, ['dist/bundle/light.cjs'], 'gate runs from light.cjs alone');
  t.notOk(r.builtins.has(FETCH), 'gate asks with node:http, not fetch (compiling fetch\'s client cost more than the rest of gate)');
  t.notOk(r.own.some((f) => /^dist\/(config\/load|probes|store|http|scheduler|service)/.test(f)), r.own.join(', '));
});

t.test('validate of the shipped checklist checks every param without loading a client', async (t) => {
  const r = await traced(['validate']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /offgridflow.yaml: ok, \d+ checks/);
  t.same(r.bundle, ['dist/bundle/light.cjs', 'dist/bundle/validate.cjs'], 'validate runs from light.cjs and its own validate.cjs');
  for (const p of HEAVY) t.notOk(r.packages.has(p), `validate does not load ${p}`);
  t.notOk(r.builtins.has(FETCH), 'validate does not load fetch\'s client');
  // The validators were compiled by the build: ajv's compiler is not loaded, only its runtime helpers.
  t.ok(r.files.includes('dist/config/validators.cjs'), 'the precompiled validators are used');
  t.same(r.files.filter((f) => f.startsWith('node_modules/ajv/') && !f.startsWith('node_modules/ajv/dist/runtime/')), [], 'ajv itself is not loaded');
  // Both they and re2js are bundled into validate.cjs, under its code cache: neither is read from its own file.
  t.ok(r.files.includes('node_modules/re2js/build/index.cjs'), 'the checklist\'s regexes were compiled');
  t.same(r.read.filter((f) => f.startsWith('node_modules/re2js/') || f.startsWith('node_modules/ajv/') || f.startsWith('dist/config/')), [], 'validate reads re2js and the validators from validate.cjs');
  t.notOk(r.own.some((f) => /^dist\/(store|http|scheduler|service|harness)/.test(f)), r.own.filter((f) => /store|http\/|scheduler|service|harness/.test(f)).join(', '));
  // Kubernetes params are still checked: a bad selector is an error without the client.
  const bad = join(dir, 'bad-kube.yaml');
  writeFileSync(
    bad,
    `apiVersion: readiness/v1
checklist: startup-test
checks:
  - id: pods
    title: Pods
    section: testing
    severity: high
    phase: pre-deploy
    probe: kubernetes
    with: { measure: pods, namespace: default, selector: "app in (" }
`,
  );
  const b = await traced(['validate', '-c', bad]);
  t.equal(b.code, 2, b.stdout);
  t.match(b.stderr, /bad-kube.yaml:\d+:\d+: .*selector/);
  t.notOk(b.packages.has('@kubernetes/client-node'), 'the kubernetes kind validates without its client');
});

t.test('check and serve of a tcp checklist load neither the other kinds\' clients nor pg', async (t) => {
  const { port, close } = await listening();
  t.teardown(close);
  const file = tcpChecklist('tcp', port);
  const c = await traced(['check', '-c', file]);
  t.equal(c.code, 0, c.stdout + c.stderr);
  for (const p of ['@kubernetes/client-node', '@aws-sdk/client-s3', '@aws-sdk/client-sts', 'pg', 'undici', 'fastify', 'prom-client', 'better-sqlite3']) {
    t.notOk(c.packages.has(p), `check of a tcp check does not load ${p}`);
  }

  const tr = traceEnv();
  const s = await startServe(t, ['-c', file, '--data-dir', join(dir, 'data')], tr.env);
  s.child.kill('SIGTERM');
  t.equal(await s.exited, 0, s.output());
  const served = tr.read();
  t.ok(served.packages.has('fastify') && served.packages.has('better-sqlite3'), 'serve loads its server and the embedded store');
  for (const p of ['@kubernetes/client-node', '@aws-sdk/client-s3', '@aws-sdk/client-sts', 'pg', 'undici']) {
    t.notOk(served.packages.has(p), `serve of a tcp check with the embedded store does not load ${p}`);
  }
});

t.test('lazy() imports once, shares the promise, and retries a failed import', async (t) => {
  const { lazy } = await import('../src/probes/lazy.js');
  let calls = 0;
  const ok = lazy(async () => ({ n: ++calls }));
  const [a, b] = await Promise.all([ok(), ok()]);
  t.equal(a, b);
  t.equal(calls, 1);
  let attempts = 0;
  const flaky = lazy(async () => {
    if (++attempts === 1) throw new Error('first import failed');
    return 'loaded';
  });
  await t.rejects(flaky(), /first import failed/);
  t.equal(await flaky(), 'loaded');
  t.equal(attempts, 2);
});

t.test('files the package reads at run time are found from its root, not from the running module', async (t) => {
  // The same modules run as src/, dist/ and dist/bundle/: a path relative to import.meta.url
  // would point elsewhere in each. src/paths.ts finds the package root once for everyone.
  const { readdirSync } = await import('node:fs');
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
  // src/build/ holds build steps, which run from dist/build/ only.
  const users = walk('src').filter((f) => f.endsWith('.ts') && !f.startsWith('src/build/') && readFileSync(f, 'utf8').includes('import.meta.url'));
  t.same(users, ['src/paths.ts']);
});
