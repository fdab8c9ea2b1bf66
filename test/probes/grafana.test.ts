// The grafana probe kind against a local server speaking Grafana's search API
// (test/helpers/obs-apis.ts: GET /api/search with query, dashboardUIDs, type, limit; service
// account tokens; X-Grafana-Org-Id), since Grafana is not packaged for Debian 12. The server
// also misbehaves on demand: 401, 403, 404, 429, 500, a proxy's 502 page, slow answers,
// malformed JSON, the wrong shape, reset connections. Checks go through the real loader and
// harness, including the shipped checklist's four dashboard rows.
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import YAML from 'yaml';
import { loadChecklist, loadChecklistFile } from '../../src/config/load.js';
import { formatDiagnostic, type CheckDef } from '../../src/config/types.js';
import { runCheck } from '../../src/harness.js';
import grafana from '../../src/probes/grafana.js';
import type { Observation } from '../../src/probes/types.js';
import type { RunResult } from '../../src/store/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { loadDocExamples, undocumented } from '../helpers/probe-docs.js';
import { closedPort } from '../helpers/listeners.js';
import { fakeGrafana, type Fault } from '../helpers/obs-apis.js';
import { ROOT } from '../helpers/prometheus.js';

const log = pino({ level: 'silent' });
const TOKEN = 'glsa_test0123456789abcdef_0a1b2c3d';

const server = await fakeGrafana(t, {
  token: TOKEN,
  orgs: [1, 2],
  dashboards: [
    { uid: 'api-overview', title: 'API Overview', folder: 'Production' },
    { uid: 'api-overview-old', title: 'API Overview (old)', folder: 'Archive' },
    { uid: 'db-perf', title: 'Database Performance', folder: 'Production' },
    { uid: 'k8s-cluster', title: 'Kubernetes Cluster' },
    { uid: 'business', title: 'Business Metrics', orgId: 2 },
  ],
});
const ENV = { GRAFANA_URL: server.url, GRAFANA_TOKEN: TOKEN };

interface Spec {
  with: Record<string, unknown>;
  expect?: string[];
  timeout?: string;
}

function load(spec: Spec, env: NodeJS.ProcessEnv = ENV): CheckDef {
  const text = YAML.stringify({
    apiVersion: 'readiness/v1',
    checklist: 'grafana-test',
    targets: { grafana: { url: '${GRAFANA_URL}', tokenEnv: 'GRAFANA_TOKEN' } },
    checks: [
      {
        id: 'grafana-check',
        title: 'Grafana test check',
        section: 'observability',
        severity: 'medium',
        phase: 'pre-deploy',
        probe: 'grafana',
        target: 'grafana',
        with: spec.with,
        ...(spec.expect && { expect: spec.expect }),
        ...(spec.timeout && { timeout: spec.timeout }),
      },
    ],
  });
  const r = loadChecklist(text, 'grafana-test.yaml', env);
  if (!r.ok) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.checklist.checks[0]!;
}

const check = (spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<RunResult> => runCheck(load(spec, env), { log, env });

async function observe(spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<Observation> {
  const def = load(spec, env);
  return grafana.run(def.params as never, makeCtx({ env, timeoutMs: def.timeoutMs }));
}


t.test('docs/probes/grafana.md documents every parameter and field, and its examples load', async (t) => {
  t.same(undocumented(grafana), []);
  t.same(loadDocExamples('grafana'), { diagnostics: [], checks: 2 });
});

t.test('params are validated at load', async (t) => {
  t.throws(() => load({ with: {} }), /set "titles" and\/or "uids": the dashboards that must exist/);
  t.throws(() => load({ with: { titles: [] } }), /"titles" needs at least 1 item/);
  t.throws(() => load({ with: { uids: ['x'], url: 'https://admin:secret@grafana.example' } }), /url carries user:password/);
  t.throws(() => load({ with: { uids: ['x'], orgId: 0 } }), /orgId/);
});

t.test('dashboards found by exact title and by uid pass; the value is how many', async (t) => {
  const obs = await observe({ with: { titles: ['API Overview', 'database performance'], uids: ['k8s-cluster'] } });
  t.match(obs, {
    value: 3,
    fields: {
      found: 3,
      missing: 0,
      missing_dashboards: [],
      dashboards: ['"Kubernetes Cluster" (k8s-cluster) in General', '"API Overview" (api-overview) in Production', '"Database Performance" (db-perf) in Production'],
    },
  });
  const r = await check({ with: { titles: ['API Overview'], folder: 'Production' }, expect: ['missing == 0'] });
  t.equal(r.state, 'pass', r.message);
  // The requests Grafana saw: the token, dashboards only, the uid filter.
  const last = server.requests.at(-1)!;
  t.equal(last.headers.authorization, `Bearer ${TOKEN}`);
  t.equal(last.query.get('type'), 'dash-db');
  t.ok(server.requests.some((q) => q.query.getAll('dashboardUIDs').includes('k8s-cluster')));
});

t.test('a missing dashboard fails, named, with what the search found instead', async (t) => {
  const r = await check({ with: { titles: ['API Overview', 'Kubernetes', 'Capacity Planning'], uids: ['no-such-uid'] } });
  t.equal(r.state, 'fail');
  t.equal(r.reason, 'condition');
  t.equal(r.message, 'dashboards not found: uid no-such-uid, "Kubernetes", "Capacity Planning" (searching "Kubernetes" found "Kubernetes Cluster" (k8s-cluster) in General)');
  t.equal(r.value, 1);
  // Exact titles: the old copy of a dashboard does not stand in for it.
  const folder = await check({ with: { titles: ['API Overview'], folder: 'Archive' } });
  t.equal(folder.state, 'fail');
  t.equal(folder.message, 'dashboard not found in folder Archive: "API Overview" (searching "API Overview" found "API Overview" (api-overview) in Production)');
  const uidFolder = await check({ with: { uids: ['api-overview'], folder: 'Archive' } });
  t.match(uidFolder.message, '"API Overview" (api-overview) in Production is not in folder Archive');
});

t.test('orgId selects the organisation', async (t) => {
  t.equal((await check({ with: { titles: ['Business Metrics'] } })).state, 'fail');
  const org2 = await check({ with: { titles: ['Business Metrics'], orgId: 2 } });
  t.equal(org2.state, 'pass', org2.message);
  t.equal(server.requests.at(-1)!.headers['x-grafana-org-id'], '2');
  const org3 = await check({ with: { titles: ['Business Metrics'], orgId: 3 } });
  t.equal(org3.state, 'error');
  t.equal(org3.reason, 'auth');
  t.match(org3.message, 'HTTP 401: user is not a member of this organization (the token in GRAFANA_TOKEN was rejected)');
});

t.test('credentials: a rejected or unset token, never shown', async (t) => {
  const wrong = await check({ with: { uids: ['api-overview'] } }, { ...ENV, GRAFANA_TOKEN: 'glsa_wrong_token_value' });
  t.equal(wrong.state, 'error');
  t.equal(wrong.reason, 'auth');
  t.match(wrong.message, /^Grafana http:\/\/127\.0\.0\.1:\d+\/api\/search: HTTP 401: invalid API key \(the token in GRAFANA_TOKEN was rejected\)$/);
  t.notMatch(wrong.message, 'glsa_wrong');
  const unset = await check({ with: { uids: ['api-overview'] } }, { GRAFANA_URL: server.url });
  t.equal(unset.state, 'error');
  t.equal(unset.reason, 'unconfigured');
  t.equal(unset.message, 'environment variable GRAFANA_TOKEN (tokenEnv) is not set');
});

t.test('Grafana under a sub-path, and a URL missing it', async (t) => {
  const sub = await fakeGrafana(t, { token: TOKEN, prefix: '/grafana', dashboards: [{ uid: 'api-overview', title: 'API Overview' }] });
  const ok = await check({ with: { uids: ['api-overview'] } }, { ...ENV, GRAFANA_URL: sub.url });
  t.equal(ok.state, 'pass', ok.message);
  const wrong = await check({ with: { uids: ['api-overview'] } }, { ...ENV, GRAFANA_URL: sub.url.replace(/\/grafana$/, '') });
  t.equal(wrong.state, 'error');
  t.equal(wrong.reason, 'http-status');
  t.match(wrong.message, 'HTTP 404: Not found (is url the Grafana base URL, with its sub-path?)');
});

t.test('every way Grafana can answer badly is an error with its reason', async (t) => {
  const cases: [Fault, string, RegExp][] = [
    ['forbidden', 'auth', /HTTP 403: Permission denied \(the token in GRAFANA_TOKEN was rejected\)/],
    ['rate-limited', 'rate-limited', /HTTP 429: Too many requests \(Retry-After: 30\)/],
    ['server-error', 'http-status', /HTTP 500: internal error: storage unavailable/],
    ['bad-gateway-html', 'http-status', /HTTP 502: 502 Bad Gateway 502 Bad Gateway nginx/],
    ['malformed', 'protocol', /HTTP 200 with a body that is not JSON: "\{\\"status\\":\\"success\\",\\"data\\":\[\{\\"uid\\":"/],
    ['wrong-shape', 'protocol', /the answer is not a dashboard search result \(\/: Expected array\)/],
    ['reset', 'refused', /\/api\/search: (other side closed|socket hang up)/],
    ['slow', 'timeout', /no complete answer within the check timeout \(300 ms\)/],
  ];
  t.teardown(() => {
    server.fault = undefined;
  });
  for (const [fault, reason, message] of cases) {
    server.fault = fault;
    const r = await check({ with: { uids: ['api-overview'] }, timeout: '300ms' });
    t.equal(r.state, 'error', fault);
    t.equal(r.reason, reason, `${fault}: ${r.message}`);
    t.match(r.message, message, fault);
  }
  server.fault = undefined;
  const refused = await check({ with: { uids: ['api-overview'] } }, { ...ENV, GRAFANA_URL: `http://127.0.0.1:${await closedPort()}` });
  t.equal(refused.reason, 'refused');
});

t.test('the shipped checklist dashboard rows pass when the dashboards exist and fail when one is gone', async (t) => {
  const ids = ['grafana-dashboard-api-overview', 'grafana-dashboard-database-performance', 'grafana-dashboard-kubernetes-cluster', 'grafana-dashboard-business-metrics'];
  const shipped = await loadChecklistFile(join(ROOT, 'probes/offgridflow.yaml'), ENV);
  if (!shipped.ok) throw new Error(shipped.diagnostics.map(formatDiagnostic).join('\n'));
  server.dashboards.push({ uid: 'biz', title: 'Business Metrics', folder: 'Product' });
  for (const id of ids) {
    const def = shipped.checklist.byId.get(id)!;
    t.equal(def.kind, 'grafana');
    const r = await runCheck(def, { log, env: ENV });
    t.equal(r.state, 'pass', `${id}: ${r.message}`);
  }
  server.dashboards.splice(server.dashboards.findIndex((d) => d.uid === 'db-perf'), 1);
  const gone = await runCheck(shipped.checklist.byId.get('grafana-dashboard-database-performance')!, { log, env: ENV });
  t.equal(gone.state, 'fail');
  t.equal(gone.message, 'dashboard not found: "Database Performance"');
});
