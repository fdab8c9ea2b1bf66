// No Docker engine runs here, so the Dockerfile is checked as the builder reads it (stages,
// pinned bases, labels, user, what the final stage contains, .dockerignore), and its final
// stage is laid out in a directory the way the builder would (test/helpers/image.ts) and run
// there with the image's entrypoint, environment and numeric user, in a network namespace of
// its own: the process answers /healthz and /readyz with only production node_modules present.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { dockerignore, fetchInside, finalStage, imageUser, isolatedPid, parseDockerfile, stageImage, startIsolated, writableFor } from './helpers/image.js';
import { logTail, serviceDir, waitFor } from './helpers/service.js';

// Laying out the image (npm ls, ~200 packages hard-linked) and starting the shipped checklist
// took up to 100 s of this file's 120 s default under a load average of 25 (measured): allow 300.
t.setTimeout(300_000);

const text = readFileSync('Dockerfile', 'utf8');
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string; license: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
const parsed = parseDockerfile(text);
const final = finalStage(text);

t.test('two stages, both bases pinned by digest, the same Node major, with how to bump them', async (t) => {
  t.equal(parsed.stages.length, 2);
  for (const s of parsed.stages) {
    t.match(s.from, /^node:(\d+)-[\w.-]+@sha256:[0-9a-f]{64}$/, `${s.from} is tag@digest`);
  }
  const majors = parsed.stages.map((s) => /^node:(\d+)/.exec(s.from)?.[1]);
  t.equal(new Set(majors).size, 1, `one Node major across stages (${majors.join(', ')})`);
  const enginesMajor = /(\d+)/.exec((JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } }).engines.node)?.[1];
  t.equal(majors[0], enginesMajor, 'the image runs the Node major package.json declares');
  // The bump instructions sit in the comment block above the first FROM.
  const fromComment = parsed.stages[0]!.instructions[0]!.comment;
  t.match(fromComment, /digest/i);
  t.match(fromComment, /bump/i);
  t.match(fromComment, /imagetools inspect node:20-bookworm-slim/);
});

t.test('final stage: OCI labels, package version, non-root numeric user, no HEALTHCHECK', async (t) => {
  t.equal(final.labels.get('org.opencontainers.image.version'), pkg.version, 'the version label defaults to package.json\'s version');
  t.equal(final.labels.get('org.opencontainers.image.licenses'), pkg.license);
  t.match(final.labels.get('org.opencontainers.image.source') ?? '', /^https:\/\//);
  t.ok(final.labels.get('org.opencontainers.image.title'));
  t.ok(final.user, 'USER is set');
  t.match(final.user!, /^[1-9]\d*(:\d+)?$/, 'a numeric, non-zero uid (runAsNonRoot can verify it)');
  t.equal(final.healthcheck, undefined, 'no HEALTHCHECK: it would start a second node process; Kubernetes uses the probes');
  t.notMatch(text, /^\s*HEALTHCHECK/m);
  t.same(final.entrypoint, ['node', 'dist/bundle/main.js'], 'the bundle, as bin/readiness.js runs it');
  t.same(final.cmd, ['serve']);
  t.equal(final.env.get('NODE_ENV'), 'production');
});

t.test('final stage holds only dist/, production node_modules, probes/, alerts/, dashboards/*.json, migrations/, ui/ (and package.json)', async (t) => {
  const got = final.copies.flatMap((c) => c.sources.map((s) => `${c.from ? `${c.from}:` : ''}${s.replace(/^\/app\//, '')}`)).sort();
  t.same(got, ['alerts', 'build:dist', 'build:node_modules', 'build:package.json', 'dashboards/*.json', 'migrations', 'probes', 'ui'].sort());
  const build = parsed.stages[0]!.instructions.map((i) => `${i.op} ${i.args}`).join('\n');
  t.match(build, /npm ci\b/);
  t.match(build, /npm prune --omit=dev/, 'dev dependencies are pruned before the runtime stage copies node_modules');
});

t.test('.dockerignore sends only what the Dockerfile copies', async (t) => {
  const ignored = dockerignore(readFileSync('.dockerignore', 'utf8'));
  for (const p of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src/cli.ts', 'probes/offgridflow.yaml', 'alerts/readiness.rules.yml', 'dashboards/readiness-overview.json', 'migrations/postgres', 'ui/app.js']) {
    t.notOk(ignored(p), `${p} is in the context`);
  }
  for (const p of ['node_modules/pg/package.json', 'dist/main.js', 'data/readiness.sqlite', '.git/HEAD', '.env', 'test/server.test.ts', 'dashboards/src/index.ts', 'deploy/base/rbac.yaml', 'README.md', 'coverage/index.html']) {
    t.ok(ignored(p), `${p} is not sent`);
  }
  // Garbage and edge cases of the matcher itself: the last match wins.
  const m = dockerignore('*\n!a/\na/secret\n');
  t.notOk(m('a/x'));
  t.ok(m('a/secret'));
  t.ok(m('b'));
});

t.test('the final stage, laid out as the builder would, runs as its user and answers the probes', async (t) => {
  const image = stageImage();
  t.ok(image.files.includes('dashboards/readiness-overview.json'), 'dashboards/*.json copied');
  t.notOk(image.files.some((f) => f.startsWith('dashboards/src/')), 'no dashboard sources');
  const user = imageUser(final.user);
  // Production dependencies only: the dev-only packages (tap, typescript, eslint, ...) are absent.
  const prodNames = new Set(image.prodPackages.map((p) => p.split('/node_modules/').at(-1)!));
  const devOnly = Object.keys(pkg.devDependencies).filter((d) => !prodNames.has(d));
  t.ok(devOnly.length >= 5 && devOnly.includes('tap') && devOnly.includes('typescript'), `dev-only: ${devOnly.join(', ')}`);
  for (const dev of devOnly) t.notOk(existsSync(join(image.app, 'node_modules', dev)), `dev dependency ${dev} is not in the image`);
  t.ok(readFileSync(join(image.app, 'node_modules', 'fastify', 'package.json')), 'runtime dependencies are');
  // The data volume: writable by the image's user; the rest of /app stays root-owned (read-only to it).
  writableFor(image.hostPath(final.env.get('READINESS_DATA_DIR')!), user);
  const env = Object.fromEntries([...final.env].map(([k, v]) => [k, k === 'READINESS_DATA_DIR' ? image.hostPath(v) : v]));
  const log = join(serviceDir('image-run'), 'serve.log');
  writeFileSync(log, '');
  const proc = startIsolated([...final.entrypoint, ...final.cmd], { cwd: image.app, env, ...(user && { user }), logFile: log });
  t.teardown(() => proc.stop(5_000));
  const pid = await waitFor('isolated process', async () => isolatedPid(proc), { timeoutMs: 10_000, abortIf: () => (proc.running() ? undefined : `exited:\n${logTail(log)}`) });
  const port = final.env.get('READINESS_PORT');
  t.equal(port, '9747');
  const answers = await fetchInside(pid, [`http://127.0.0.1:${port}/healthz`, `http://127.0.0.1:${port}/readyz`], { untilStatus: 200, timeoutMs: 90_000 });
  t.same(
    answers.map((a) => a.status),
    [200, 200],
    `healthz and readyz: ${JSON.stringify(answers.map((a) => a.error ?? a.status))}${answers.every((a) => a.status === 200) ? '' : `\n${logTail(log)}`}`,
  );
  t.match(JSON.parse(answers[1]!.body!), { status: 'ready', checklist: 'offgridflow-production' });
  t.match(JSON.parse(answers[0]!.body!), { status: 'ok', version: pkg.version });
  const logText = readFileSync(log, 'utf8');
  t.notMatch(logText, /EACCES|EROFS|Cannot find (module|package)/, 'nothing wrote outside the data volume, nothing missing from node_modules');
});
