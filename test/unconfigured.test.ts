// A check that cannot run because this environment lacks configuration is `unconfigured`,
// never `error` (issue 11, item 6), decided by the loader from the environment: an unset
// variable, no Kubernetes configuration at all (no KUBECONFIG, no pod service account, no
// ~/.kube/config), or a dependency that is itself unconfigured. The real `readiness serve`
// logs one line per missing piece naming the checks it leaves unconfigured, and no stack
// traces; /readiness names per check the variables that would configure it. With KUBECONFIG
// pointing at a (fake) API server the same checks run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadChecklist } from '../src/config/load.js';
import { missingGroups } from '../src/config/missing.js';
import type { CheckDef } from '../src/config/types.js';
import type { ReadinessBody } from '../src/state.js';
import { runCli, startServe } from './helpers/cli.js';
import { FakeKubeApi, node } from './helpers/kube-api.js';
import { listenHttp } from './helpers/listeners.js';
import { waitFor } from './helpers/service.js';

const dir = mkdtempSync(join(process.env.READINESS_TEST_TMPDIR || tmpdir(), 'unconfigured-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
/** A home without ~/.kube/config, and no KUBECONFIG or pod service account. */
const NO_KUBE = { HOME: dir, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' };
const KUBE_CHECKS = ['k8s-nodes-ready', 'k8s-pdb', 'k8s-services-internal'];

function checklist(appUrl: string): string {
  const file = join(dir, 'checklist.yaml');
  const check = (id: string, probe: string, rest: string) => `  - id: ${id}
    title: ${id}
    section: testing
    severity: high
    phase: pre-deploy
    probe: ${probe}
${rest}`;
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: unconfigured-test
defaults: { interval: 1s, timeout: 900ms }
targets:
  kubernetes: { namespace: offgridflow }
  postgres: { url: "\${DATABASE_URL}" }
checks:
${check('k8s-nodes-ready', 'kubernetes', '    target: kubernetes\n    with: { measure: nodes }\n    expect: ["nodes_not_ready == 0"]')}
${check('k8s-pdb', 'kubernetes', '    target: kubernetes\n    with: { measure: pdb }\n    expect: ["deployments_without_pdb == 0"]')}
${check('k8s-services-internal', 'kubernetes', '    target: kubernetes\n    with: { measure: services_internal }\n    expect: ["services_exposed == 0"]')}
${check('postgres-reachable', 'postgres', '    target: postgres\n    with: { measure: ready }')}
${check('after-postgres', 'http', `    with: { url: "${appUrl}" }\n    dependsOn: [postgres-reachable]`)}
${check('app-up', 'http', `    with: { url: "${appUrl}" }\n    expect: ["status == 200"]`)}
`,
  );
  return file;
}

t.test('serve with no Kubernetes configuration and no DATABASE_URL: unconfigured, one log line per missing piece', async (t) => {
  const app = await listenHttp((_req, res) => res.end('ok'));
  t.teardown(() => app.close());
  const file = checklist(app.url);
  const serve = await startServe(t, ['-c', file, '--data-dir', join(dir, 'data-1')], { ...NO_KUBE, DATABASE_URL: '', READINESS_LOG_LEVEL: 'info' });

  const body = await waitFor(
    'app-up passing',
    async () => {
      const b = (await (await fetch(`${serve.url}/readiness?verbose=1`)).json()) as ReadinessBody;
      return b.checks?.find((c) => c.id === 'app-up')?.state === 'pass' ? b : undefined;
    },
    { timeoutMs: 30_000, everyMs: 200 },
  );
  const byId = new Map(body.checks!.map((c) => [c.id, c]));
  for (const id of KUBE_CHECKS) {
    t.match(byId.get(id), { state: 'unconfigured', reason: 'unconfigured', missing: ['KUBECONFIG'], message: /^no Kubernetes configuration: not running in a pod, KUBECONFIG is not set/ }, id);
  }
  t.match(byId.get('postgres-reachable'), { state: 'unconfigured', missing: ['DATABASE_URL'], message: 'environment variable DATABASE_URL is not set' });
  t.match(byId.get('after-postgres'), { state: 'unconfigured', missing: ['DATABASE_URL'], message: 'depends on postgres-reachable, which is unconfigured (DATABASE_URL)' }, 'a dependency that cannot run makes its dependants unconfigured, not dependency errors');
  t.equal(body.summary.error, 0, 'nothing is an error');
  t.equal(body.summary.unconfigured, 5);

  const metrics = await (await fetch(`${serve.url}/metrics`)).text();
  for (const id of KUBE_CHECKS) {
    t.match(metrics, `readiness_check_state{check="${id}",state="unconfigured"} 1`);
    t.match(metrics, `readiness_check_state{check="${id}",state="error"} 0`);
  }

  const lines = serve
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string; missing?: string; checks?: string[]; err?: unknown });
  const missingLines = lines.filter((l) => l.missing !== undefined);
  t.same(
    missingLines.map((l) => [l.missing, l.checks]),
    [
      ['KUBECONFIG', KUBE_CHECKS],
      ['DATABASE_URL', ['postgres-reachable', 'after-postgres']],
    ],
    'one line per missing piece, most checks first, naming the checks',
  );
  t.match(missingLines[0]!.msg, "KUBECONFIG (or a pod's service account, or ~/.kube/config) is not set, so 3 checks are unconfigured: k8s-nodes-ready, k8s-pdb, k8s-services-internal");
  t.notMatch(serve.output(), /"stack"|ProbeError|\n\s+at /, 'no stack traces');
  t.same(lines.filter((l) => l.level >= 40 && l.missing === undefined && !/READINESS_API_TOKEN/.test(l.msg)), [], 'no other warnings');
});

t.test('with KUBECONFIG set the same checks run against the cluster', async (t) => {
  const api = await FakeKubeApi.start();
  t.teardown(() => api.close());
  const kubeconfig = api.writeKubeconfig(dir);
  api.put('nodes', node('node-1'));
  api.put('services', { metadata: { name: 'api', namespace: 'offgridflow' }, spec: { type: 'ClusterIP' } });
  const app = await listenHttp((_req, res) => res.end('ok'));
  t.teardown(() => app.close());
  const file = checklist(app.url);

  const res = loadChecklist(await import('node:fs').then((fs) => fs.readFileSync(file, 'utf8')), file, { ...NO_KUBE, KUBECONFIG: kubeconfig, DATABASE_URL: 'postgres://u@127.0.0.1:1/db' });
  if (!res.ok) return t.fail(JSON.stringify(res.diagnostics));
  for (const id of KUBE_CHECKS) t.equal(res.checklist.byId.get(id)!.unconfigured, undefined, `${id} configured`);

  const serve = await startServe(t, ['-c', file, '--data-dir', join(dir, 'data-2')], { ...NO_KUBE, KUBECONFIG: kubeconfig, DATABASE_URL: '' });
  // The first runs may time out while the informers' first lists complete: wait for the answers.
  const measured = ['k8s-nodes-ready', 'k8s-services-internal'];
  let last: ReadinessBody | undefined;
  const body = await waitFor(
    'kubernetes checks passing',
    async () => {
      last = (await (await fetch(`${serve.url}/readiness?verbose=1`)).json()) as ReadinessBody;
      return measured.every((id) => last!.checks!.find((c) => c.id === id)!.state === 'pass') ? last : undefined;
    },
    { timeoutMs: 60_000, everyMs: 200 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(last?.checks?.map((c) => [c.id, c.state, c.message]))}`);
  });
  for (const id of measured) t.equal(body.checks!.find((c) => c.id === id)!.state, 'pass', `${id} measured the cluster`);
  t.match(body.checks!.find((c) => c.id === 'k8s-pdb'), { state: 'error', message: 'no Deployments with replicas in offgridflow' }, 'the cluster answered: an empty namespace');
  t.notMatch(serve.output(), /"missing":"KUBECONFIG"/);
});

t.test('validate prints each missing variable once with the checks it would configure, most first', async (t) => {
  const file = checklist('http://127.0.0.1:1');
  const r = await runCli(['validate', '-c', file], { env: { ...NO_KUBE, DATABASE_URL: '' } });
  t.equal(r.code, 0, r.stderr);
  t.equal(
    r.stdout,
    [
      `${file}: ok, 6 checks, 5 unconfigured in this environment`,
      'set these to configure them (each variable once, with the checks it would configure, most first):',
      "  KUBECONFIG (or a pod's service account, or ~/.kube/config): 3 checks: k8s-nodes-ready, k8s-pdb, k8s-services-internal",
      '  DATABASE_URL: 2 checks: postgres-reachable, after-postgres',
      '',
    ].join('\n'),
  );
});

t.test('missing variables with as many checks each are listed by name, in code-unit order (no locale)', async (t) => {
  const check = (id: string, ...variables: string[]) => ({ id, missing: variables.map((variable) => ({ variable, message: `environment variable ${variable} is not set` })) }) as unknown as CheckDef;
  const groups = missingGroups([check('a', 'PG_URL', 'api_token'), check('b', 'PGHOST'), check('c', 'API_TOKEN', 'PGHOST'), check('d', 'Z_TOKEN', 'PG_URL')]);
  // Two checks each first, then one each; within a count by code unit: "H" < "_", upper case before lower.
  t.same(
    groups.map((g) => [g.variable, g.checks.join(',')]),
    [
      ['PGHOST', 'b,c'],
      ['PG_URL', 'a,d'],
      ['API_TOKEN', 'c'],
      ['Z_TOKEN', 'd'],
      ['api_token', 'a'],
    ],
  );
});

t.test('decided by the loader for each kind that needs more than variables; at run time by the reason, not the message', async (t) => {
  const yaml = `apiVersion: readiness/v1
checklist: gcp
checks:
  - id: credential-gcp
    title: GCP
    section: configuration
    severity: high
    phase: pre-deploy
    probe: credential
    with: { provider: gcp }
`;
  const none = loadChecklist(yaml, 'gcp.yaml', {});
  if (!none.ok) return t.fail(JSON.stringify(none.diagnostics));
  t.match(none.checklist.checks[0], { unconfigured: 'no service-account key: set keyFile, keyEnv or GOOGLE_APPLICATION_CREDENTIALS', missing: [{ variable: 'GOOGLE_APPLICATION_CREDENTIALS' }] });
  const set = loadChecklist(yaml, 'gcp.yaml', { GOOGLE_APPLICATION_CREDENTIALS: '/etc/gcp/key.json' });
  t.equal(set.ok && set.checklist.checks[0]!.unconfigured, undefined);

  // A configuration that goes away after load: the run's reason decides the state.
  const { viewCheck } = await import('../src/state.js');
  const { makeDef } = await import('./helpers/checks.js');
  const def = makeDef(() => ({ fields: {} }));
  const run = { check: 'c1', message: 'x', startedAt: 1, finishedAt: 2, durationMs: 1, conditions: [] };
  const gone = viewCheck(def, { check: 'c1', state: 'error', reason: 'unconfigured', message: 'cannot read the service-account key file /k.json: ENOENT', last: { ...run, state: 'error' }, streak: 1, runs: {} }, 3, 0);
  t.match(gone, { state: 'unconfigured', reason: 'unconfigured' });
  const refused = viewCheck(def, { check: 'c1', state: 'error', reason: 'refused', message: 'unconfigured proxy refused', last: { ...run, state: 'error' }, streak: 1, runs: {} }, 3, 0);
  t.equal(refused.state, 'error', 'a message that mentions configuration changes nothing');
});
