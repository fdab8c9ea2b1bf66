// No Docker engine runs here, so the Dockerfile is checked as text: every path it copies
// from the build context exists, it is multi-stage, runs as non-root, and has a HEALTHCHECK
// on /healthz. The compiled entry point it runs is built and started for real below.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';

const text = readFileSync('Dockerfile', 'utf8');
const lines = text.split('\n').filter((l) => !l.trim().startsWith('#'));

t.test('every COPY source from the build context exists', async (t) => {
  const copies = lines.filter((l) => /^COPY\s/.test(l) && !/--from=/.test(l));
  t.ok(copies.length >= 6, `${copies.length} COPY lines`);
  for (const l of copies) {
    const parts = l.replace(/^COPY\s+/, '').split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) t.ok(existsSync(src), `${src} exists (${l.trim()})`);
  }
  for (const shipped of ['probes', 'alerts', 'dashboards', 'migrations', 'ui']) t.match(text, new RegExp(`COPY ${shipped} `), `${shipped}/ is in the image`);
});

t.test('multi-stage, production dependencies, non-root, health-checked', async (t) => {
  t.equal(lines.filter((l) => /^FROM\s/.test(l)).length, 2);
  t.match(text, /npm prune --omit=dev/, 'dev dependencies are pruned');
  t.match(text, /COPY --from=build \/app\/node_modules/, 'the runtime stage gets only the pruned node_modules');
  const user = lines.filter((l) => /^USER\s/.test(l)).pop();
  t.ok(user && !/root|\b0\b/.test(user), `runs as ${user}`);
  t.match(text, /HEALTHCHECK[\s\S]*\/healthz/);
  t.match(text, /ENTRYPOINT \["node", "bin\/readiness.js"\]/);
});

t.test('the compiled entry point the image runs works', async (t) => {
  const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { encoding: 'utf8' });
  t.equal(build.status, 0, build.stdout + build.stderr);
  const r = spawnSync(process.execPath, ['bin/readiness.js', 'validate'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /probes\/offgridflow.yaml: ok/);
});
