// The rendered Deployments of deploy/overlays/single and ha as real processes: the container's command,
// args and environment as the kubelet composes them from the image (the Dockerfile's final
// stage, laid out by test/helpers/image.ts) and the manifest, Secret references resolved with
// test values, the checklist read from the rendered ConfigMap, volumes as directories, the
// Pod's user, in a loopback-only network namespace; its startup, liveness and readiness probes
// answered, its store on the PVC, and SIGTERM drained within the grace period; the ha overlay's
// replicas sharing a real PostgreSQL 15 and splitting the checks.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { fetchInside, isolatedPid, stageImage, startIsolated, writableFor } from './helpers/image.js';
import type { K8sObject } from './helpers/k8s-schemas.js';
import { one, render } from './helpers/kustomize.js';
import { startPostgres } from './helpers/postgres.js';
import { logTail, serviceDir, waitFor } from './helpers/service.js';

// Laying out the image (npm ls, ~200 packages hard-linked) and starting the shipped checklist
// took up to 100 s of this file's 120 s default under a load average of 25 (measured): allow 300.
t.setTimeout(300_000);

/** The container's process as the kubelet composes it, with volumes and Secrets as directories and values. */
function composeContainer(objs: K8sObject[], image: ReturnType<typeof stageImage>, secret: Record<string, string>) {
  const dep = one(objs, 'Deployment', 'readiness-exporter');
  const pod = dep.spec.template.spec;
  const c = pod.containers[0];
  // Kubernetes: `command` replaces ENTRYPOINT (and drops CMD); `args` replaces CMD.
  const argv = [...(c.command ?? image.entrypoint), ...(c.args ?? (c.command ? [] : image.cmd))];
  const user = process.getuid?.() === 0 ? { uid: pod.securityContext.runAsUser as number, gid: pod.securityContext.runAsGroup as number } : undefined;
  // Volumes: a directory each; configMap volumes filled from the rendered ConfigMap.
  const root = serviceDir('pod');
  // The kubelet's volume directories are traversable by the Pod's user; mkdtemp made this 0700.
  chmodSync(root, 0o755);
  const mounts: [string, string][] = [];
  for (const m of c.volumeMounts as { name: string; mountPath: string }[]) {
    const v = pod.volumes.find((x: { name: string }) => x.name === m.name);
    const dir = join(root, m.name);
    mkdirSync(dir, { recursive: true });
    if (v.configMap) {
      const cm = one(objs, 'ConfigMap', v.configMap.name);
      for (const [k, text] of Object.entries(cm.data as Record<string, string>)) writeFileSync(join(dir, k), text);
    } else writableFor(dir, user);
    mounts.push([m.mountPath, dir]);
  }
  mounts.sort((a, b) => b[0].length - a[0].length);
  // Paths inside the container, as they exist here: mounts first, then the image's files.
  const hostPath = (v: string) => {
    const m = mounts.find(([p]) => v === p || v.startsWith(`${p}/`));
    return m ? m[1] + v.slice(m[0].length) : v.startsWith('/app/') ? image.hostPath(v) : v;
  };
  const env: Record<string, string> = Object.fromEntries(image.env);
  const fromSecret = (name: string, key: string, optional?: boolean) => {
    if (name !== 'readiness-exporter') throw new Error(`unknown Secret ${name}`);
    if (!(key in secret) && !optional) throw new Error(`CreateContainerConfigError: Secret ${name} has no key ${key}`);
    return secret[key];
  };
  for (const ef of c.envFrom ?? []) {
    if (ef.configMapRef) Object.assign(env, one(objs, 'ConfigMap', ef.configMapRef.name).data);
    if (ef.secretRef) {
      if (ef.secretRef.name !== 'readiness-exporter') throw new Error(`unknown Secret ${ef.secretRef.name}`);
      Object.assign(env, secret);
    }
  }
  for (const e of c.env ?? []) {
    const v = e.value ?? (e.valueFrom?.secretKeyRef ? fromSecret(e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key, e.valueFrom.secretKeyRef.optional) : undefined);
    if (e.valueFrom && !e.valueFrom.secretKeyRef) throw new Error(`unhandled valueFrom in ${e.name}`);
    if (v !== undefined) env[e.name] = v;
  }
  for (const [k, v] of Object.entries(env)) if (v.startsWith('/')) env[k] = hostPath(v);
  if (mounts.some(([p]) => p === '/tmp')) env.TMPDIR = hostPath('/tmp');
  return { argv, env, user, container: c, pod, hostPath, terminationGraceSeconds: pod.terminationGracePeriodSeconds as number };
}

t.test('overlay single, run: the rendered Deployment starts and answers its probes', async (t) => {
  const objs = render('deploy/overlays/single');
  const image = stageImage();
  const token = randomBytes(16).toString('hex');
  const c = composeContainer(objs, image, { READINESS_API_TOKEN: token });
  t.same(c.argv, ['node', 'dist/bundle/main.js', 'serve'], 'the image entrypoint with the manifest\'s args');
  t.equal(c.env.READINESS_API_TOKEN, token, 'the token from the Secret reference');
  t.ok(existsSync(c.env.READINESS_CONFIG!), `the checklist file from the ConfigMap: ${c.env.READINESS_CONFIG}`);
  const log = join(serviceDir('pod-log'), 'exporter.log');
  writeFileSync(log, '');
  const proc = startIsolated(c.argv, { cwd: image.app, env: c.env, ...(c.user && { user: c.user }), logFile: log });
  t.teardown(() => proc.stop(5_000));
  const pid = await waitFor('the pod process', async () => isolatedPid(proc), { timeoutMs: 10_000, abortIf: () => (proc.running() ? undefined : `exited:\n${logTail(log)}`) });
  const port = (name: string) => c.container.ports.find((p: { name: string }) => p.name === name).containerPort as number;
  const probeUrl = (p: { httpGet: { path: string; port: string } }) => `http://127.0.0.1:${port(p.httpGet.port)}${p.httpGet.path}`;
  // The kubelet's budget: the startupProbe's periodSeconds x failureThreshold.
  const budgetMs = c.container.startupProbe.periodSeconds * c.container.startupProbe.failureThreshold * 1000;
  const [startup, liveness, readiness] = await fetchInside(pid, [probeUrl(c.container.startupProbe), probeUrl(c.container.livenessProbe), probeUrl(c.container.readinessProbe)], { untilStatus: 200, timeoutMs: budgetMs });
  t.equal(startup!.status, 200, `startupProbe ${startup!.url}${startup!.status === 200 ? '' : `: ${startup!.error ?? startup!.body}\n${logTail(log)}`}`);
  t.equal(liveness!.status, 200, `livenessProbe ${liveness!.url}`);
  t.equal(readiness!.status, 200, `readinessProbe ${readiness!.url}: ${readiness!.body}`);
  // Now that it answers (it is node, past the wrapper's exec), its environment is exactly the composed one (image ENV, envFrom, env), plus PATH.
  const environ = new Map(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const),
  );
  for (const [k, v] of Object.entries(c.env)) t.equal(environ.get(k), v, `env ${k}`);
  t.same([...environ.keys()].filter((k) => !(k in c.env)).sort(), ['PATH', ...(process.env.READINESS_TEST_RUN ? ['READINESS_TEST_RUN'] : [])].sort(), 'nothing else');
  t.equal(environ.get('NODE_OPTIONS'), '--max-old-space-size=384');
  t.match(JSON.parse(readiness!.body!), { status: 'ready', checklist: 'offgridflow-production' });
  // The store is on the data volume, and the token from the Secret authorizes a write.
  t.ok(existsSync(join(c.hostPath('/app/data'), 'readiness.sqlite')), 'the embedded store lives on the PVC');
  const [gate] = await fetchInside(pid, [`http://127.0.0.1:${port('http')}/readiness?phase=pre-deploy`]);
  t.ok(gate!.status === 200 || gate!.status === 503, `/readiness answers (${gate!.status})`);
  t.equal(JSON.parse(gate!.body!).checklist, 'offgridflow-production');
  // SIGTERM (what the kubelet sends) drains and exits 0 within terminationGracePeriodSeconds.
  const started = Date.now();
  process.kill(pid, 'SIGTERM');
  const code = await Promise.race([proc.exited, new Promise((r) => setTimeout(() => r('still running'), c.terminationGraceSeconds * 1000))]);
  t.equal(code, 0, `exited ${String(code)} after ${Date.now() - started} ms${code === 0 ? '' : `\n${logTail(log)}`}`);
  t.notMatch(readFileSync(log, 'utf8'), /EACCES|EROFS|Cannot find (module|package)/);
});

t.test('overlay ha, run: two replicas of the rendered Deployment share PostgreSQL and split the checks', async (t) => {
  const objs = render('deploy/overlays/ha');
  const pg = await startPostgres(t);
  // The replicas live in network namespaces of their own; PostgreSQL's unix socket (a file, not
  // a network address) is the way in. Its directory trusts local users (test/helpers/postgres.ts).
  const socketDir = dirname(pg.dataDir);
  chmodSync(socketDir, 0o711);
  const databaseUrl = `postgres://postgres@localhost/postgres?host=${encodeURIComponent(socketDir)}&port=${pg.port}`;
  const image = stageImage();
  const replicas: { c: ReturnType<typeof composeContainer>; pid: number; log: string }[] = [];
  for (const n of [1, 2]) {
    const c = composeContainer(objs, image, { READINESS_API_TOKEN: 'ha-token', READINESS_DATABASE_URL: databaseUrl });
    t.equal(c.env.READINESS_DATABASE_URL, databaseUrl, `replica ${n}: the store URL from the Secret reference`);
    const log = join(serviceDir(`ha-${n}`), 'exporter.log');
    writeFileSync(log, '');
    const proc = startIsolated(c.argv, { cwd: image.app, env: c.env, ...(c.user && { user: c.user }), logFile: log });
    t.teardown(() => proc.stop(5_000));
    const pid = await waitFor(`replica ${n}`, async () => isolatedPid(proc), { timeoutMs: 10_000, abortIf: () => (proc.running() ? undefined : `exited:\n${logTail(log)}`) });
    replicas.push({ c, pid, log });
  }
  // Without the Secret key the Pod would not start (the kubelet's CreateContainerConfigError).
  t.throws(() => composeContainer(objs, image, { READINESS_API_TOKEN: 'ha-token' }), /has no key READINESS_DATABASE_URL/);
  const total = one(objs, 'ConfigMap', one(objs, 'Deployment').spec.template.spec.volumes[0].configMap.name).data['checklist.yaml'].match(/^ {2}- id: /gm).length as number;
  const budgetMs = replicas[0]!.c.container.startupProbe.periodSeconds * replicas[0]!.c.container.startupProbe.failureThreshold * 1000;
  for (const [i, r] of replicas.entries()) {
    const [ready] = await fetchInside(r.pid, ['http://127.0.0.1:9747/readyz'], { untilStatus: 200, timeoutMs: budgetMs });
    t.equal(ready!.status, 200, `replica ${i + 1} ready${ready!.status === 200 ? '' : `: ${ready!.error ?? ready!.body}\n${logTail(r.log)}`}`);
  }
  // Each check runs on exactly one replica: the owned sets partition the checklist.
  const owned = await waitFor(
    'the replicas to split the checks',
    async () => {
      const runs = await Promise.all(replicas.map(async (r) => JSON.parse((await fetchInside(r.pid, ['http://127.0.0.1:9747/healthz']))[0]!.body!) as { store: { ok: boolean }; replica?: { id: string; runs: string[] } }));
      const all = runs.flatMap((h) => h.replica?.runs ?? []);
      return runs.every((h) => h.store.ok && (h.replica?.runs.length ?? 0) > 0) && all.length === total ? runs : undefined;
    },
    { timeoutMs: 60_000, everyMs: 1_000 },
  );
  t.not(owned[0]!.replica!.id, owned[1]!.replica!.id);
  t.equal(new Set([...owned[0]!.replica!.runs, ...owned[1]!.replica!.runs]).size, total, `${total} checks, each owned once`);
});
