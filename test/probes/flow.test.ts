// flow probe against a local web app: log in (token and session cookie), create an activity,
// generate a report, poll it, view the dashboard.
import { randomBytes } from 'node:crypto';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import flowProbe from '../../src/probes/flow.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { fakeApi, runShipped, sendJson, type FakeApi } from '../helpers/fake-apis.js';
import { closedPort } from '../helpers/listeners.js';

const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(flowProbe.params);
type Params = Static<typeof flowProbe.params>;
function params(input: Record<string, unknown>): Params {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Params;
}

const PASSWORD = 'c0rrect-h0rse-battery';
const tokens = new Set<string>();
const sessions = new Set<string>();
let reportState = 'ready';

const app = await fakeApi((s, res) => {
  const url = new URL(s.url, 'http://x');
  const bearer = (s.headers.authorization ?? '').replace(/^Bearer /, '');
  const authed = tokens.has(bearer);
  const body = (() => {
    try {
      return JSON.parse(s.body) as Record<string, unknown>;
    } catch {
      return {};
    }
  })();
  switch (`${s.method} ${url.pathname}`) {
    case 'POST /api/v1/auth/login': {
      if (body.email !== 'smoke@offgridflow.com' || body.password !== PASSWORD) return sendJson(res, 401, { error: 'invalid credentials' });
      const token = randomBytes(24).toString('hex');
      const session = randomBytes(16).toString('hex');
      tokens.add(token);
      sessions.add(session);
      return sendJson(res, 200, { token, user: { id: 7, email: body.email } }, { 'set-cookie': `ogf_session=${session}; Path=/; HttpOnly; Secure`, 'x-echo-token': token } as never);
    }
    case 'POST /api/v1/activities':
      if (!authed) return sendJson(res, 401, { error: 'unauthorized' });
      return sendJson(res, 201, { id: 42, name: body.name, scope: body.scope });
    case 'POST /api/v1/reports':
      if (!authed) return sendJson(res, 401, { error: 'unauthorized' });
      if (typeof body.activityId !== 'number') return sendJson(res, 400, { error: 'activityId must be a number' });
      return sendJson(res, 202, { report: { id: 'rep-9' } }, { location: '/api/v1/reports/rep-9' });
    case 'GET /api/v1/reports/rep-9':
      if (!authed) return sendJson(res, 401, { error: 'unauthorized' });
      return sendJson(res, 200, { id: 'rep-9', status: reportState });
    case 'GET /dashboard': {
      const cookie = /ogf_session=([0-9a-f]+)/.exec(s.headers.cookie ?? '')?.[1];
      if (!cookie || !sessions.has(cookie)) {
        res.writeHead(302, { location: '/login' });
        return void res.end();
      }
      res.writeHead(200, { 'content-type': 'text/html' });
      return void res.end('<html><h1>Emissions dashboard</h1></html>');
    }
    case 'GET /api/v1/whoami':
      return sendJson(res, authed ? 200 : 401, { id: 7 }, { 'x-echo-token': bearer });
    case 'POST /api/v1/broken':
      return sendJson(res, 500, { error: 'internal' });
    case 'GET /api/v1/slow':
      return; // never answers
    default:
      return sendJson(res, 404, { error: 'not found' });
  }
});
t.teardown(() => app.close());

const LOGIN = { name: 'login', method: 'POST', path: '/api/v1/auth/login', json: { email: '{{email}}', password: '{{password}}' }, capture: { token: 'json.token', userId: 'json.user.id' } };
const AUTH = { Authorization: 'Bearer {{token}}' };
const FLOW = {
  url: `${app.url}/`,
  vars: { email: 'smoke@offgridflow.com' },
  secrets: { password: PASSWORD },
  steps: [
    LOGIN,
    { name: 'create-activity', method: 'POST', path: '/api/v1/activities', headers: AUTH, json: { name: 'Diesel generator', scope: 1, owner: '{{userId}}' }, expectStatus: [201], capture: { activityId: 'json.id' }, expect: ['json.name == "Diesel generator"'] },
    { name: 'generate-report', method: 'POST', path: '/api/v1/reports', headers: AUTH, json: { activityId: '{{activityId}}' }, expectStatus: [202], capture: { reportUrl: 'header.location' } },
    // A captured path goes into `url`: filled into `path`, {{vars}} are URL-encoded.
    { name: 'report-ready', url: `${app.url}{{reportUrl}}`, headers: AUTH, expect: ['json.status == "ready"', 'duration_ms < 2s'] },
    { name: 'view-dashboard', path: '/dashboard', expect: ['body =~ "Emissions dashboard"'] },
  ],
};

const run = (p: Record<string, unknown>, timeoutMs = 5000) => flowProbe.run(params(p), makeCtx({ timeoutMs }));

t.test('a whole flow passes: captures, {{vars}}, cookies', async (t) => {
  const before = app.seen.length;
  const obs = await run(FLOW);
  t.equal(obs.failure, undefined, 'passes');
  t.equal(obs.error, undefined);
  t.match(obs.fields, { steps: 5, steps_passed: 5, failed_step: '' });
  t.equal(obs.value, obs.fields.duration_ms);
  const steps = obs.fields.step as Record<string, { status: number; duration_ms: number }>;
  t.same(Object.keys(steps), ['login', 'create-activity', 'generate-report', 'report-ready', 'view-dashboard']);
  t.equal(steps['create-activity']!.status, 201);
  t.match(obs.message, /^5 steps passed in \d+ ms: login 200 \(\d+ ms\), create-activity 201 \(\d+ ms\), generate-report 202 \(\d+ ms\), report-ready 200 \(\d+ ms\), view-dashboard 200 \(\d+ ms\)$/);

  const sent = app.seen.slice(before);
  t.same(JSON.parse(sent[0]!.body), { email: 'smoke@offgridflow.com', password: PASSWORD }, 'secrets and vars filled in');
  t.equal(sent[0]!.headers['content-type'], 'application/json');
  t.match(sent[1]!.headers.authorization, /^Bearer [0-9a-f]{48}$/, 'the captured token is used');
  t.same(JSON.parse(sent[1]!.body), { name: 'Diesel generator', scope: 1, owner: 7 }, '"{{userId}}" alone keeps its number type');
  t.same(JSON.parse(sent[2]!.body), { activityId: 42 });
  t.equal(sent[3]!.url, '/api/v1/reports/rep-9', 'a captured header used in a URL');
  t.match(sent[4]!.headers.cookie, /^ogf_session=[0-9a-f]{32}$/, 'the session cookie is sent back');
});

t.test('the failing step is named, and the rest do not run', async (t) => {
  const table: { name: string; flow: Record<string, unknown>; reason: string; step: string; ran: number; message: RegExp }[] = [
    {
      name: 'wrong password',
      flow: { ...FLOW, secrets: { password: 'wr0ng-passw0rd' } },
      reason: 'auth',
      step: 'login',
      ran: 1,
      message: /^step login \(1\/5\): POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/auth\/login: expected a 2xx status, got 401$/,
    },
    {
      name: 'a step condition is false',
      flow: FLOW,
      reason: 'condition',
      step: 'report-ready',
      ran: 4,
      message: /^step report-ready \(4\/5\): GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/reports\/rep-9: json\.status == "ready" is false \(json\.status = "pending"\)$/,
    },
    {
      name: 'a capture is missing from the answer',
      flow: { ...FLOW, steps: [{ ...LOGIN, capture: { token: 'json.access_token' } }] },
      reason: 'protocol',
      step: 'login',
      ran: 1,
      message: /^step login \(1\/1\): POST \S+: answered 200 without json\.access_token \(capture token\)$/,
    },
    {
      name: 'a 500',
      flow: { ...FLOW, steps: [LOGIN, { name: 'broken', method: 'POST', path: '/api/v1/broken' }] },
      reason: 'http-status',
      step: 'broken',
      ran: 2,
      message: /^step broken \(2\/2\): POST \S+\/api\/v1\/broken: expected a 2xx status, got 500$/,
    },
    {
      name: 'no cookies: the dashboard redirects to the login page',
      flow: { ...FLOW, cookies: false },
      reason: 'http-status',
      step: 'view-dashboard',
      ran: 5,
      message: /^step view-dashboard \(5\/5\): GET \S+\/dashboard: expected a 2xx status, got 302$/,
    },
  ];
  for (const row of table) {
    reportState = row.name === 'a step condition is false' ? 'pending' : 'ready';
    const before = app.seen.length;
    const obs = await run(row.flow);
    t.equal(obs.failure?.reason, row.reason, `${row.name}: reason`);
    t.match(obs.failure?.message, row.message, `${row.name}: message`);
    t.equal(obs.fields.failed_step, row.step, `${row.name}: failed_step`);
    t.equal(obs.fields.steps, row.ran, `${row.name}: steps`);
    t.equal(obs.fields.steps_passed, row.ran - 1, `${row.name}: steps_passed`);
    t.equal(app.seen.length - before, row.ran, `${row.name}: no request after the failing step`);
  }
  reportState = 'ready';
});

t.test('secrets and captured values never appear in messages', async (t) => {
  const leaky = {
    ...FLOW,
    steps: [
      { ...LOGIN, capture: { token: 'json.token' } },
      // A condition on a header that echoes the token: its value is quoted by the message.
      { name: 'echo', path: '/api/v1/whoami', headers: AUTH, expect: ['header.x-echo-token == "{{token}}-nope"'] },
    ],
  };
  const obs = await run(leaky);
  t.equal(obs.failure?.reason, 'condition');
  t.match(obs.failure?.message, /^step echo \(2\/2\): GET \S+\/api\/v1\/whoami: header\.x-echo-token == "\{\{token\}\}-nope" is false \(header\.x-echo-token = "\*\*\*"\)$/);
  const text = JSON.stringify(obs);
  t.notOk(text.includes(PASSWORD));
  for (const token of tokens) t.notOk(text.includes(token), 'no token');
  t.same(flowProbe.secretParams, ['secrets', 'headers']);
});

t.test('could not measure: refused, timeout', async (t) => {
  const refused = await run({ url: `http://127.0.0.1:${await closedPort()}`, steps: [{ name: 'home' }] });
  t.equal(refused.error?.reason, 'refused');
  t.match(refused.error?.message, /^step home \(1\/1\): GET http:\/\/127\.0\.0\.1:\d+\/: connect ECONNREFUSED/);
  t.equal(refused.fields.failed_step, 'home');

  const started = Date.now();
  const err = await run({ ...FLOW, steps: [LOGIN, { name: 'slow', path: '/api/v1/slow' }] }, 400).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProbeError && err.reason === 'timeout');
  t.match((err as Error).message, /^step slow \(2\/2\): GET \S+\/api\/v1\/slow: no complete response before the check timeout \(400 ms\)$/);
  t.ok(Date.now() - started < 3000);
});

/** The OffGridFlow API as the shipped flow rows use it (and the compliance and changelog rows). */
async function offgridflow(broken: boolean): Promise<FakeApi> {
  const token = randomBytes(16).toString('hex');
  const activities = new Map<number, Record<string, unknown>>();
  return fakeApi((s, res) => {
    const url = new URL(s.url, 'http://x');
    const authed = s.headers.authorization === `Bearer ${token}`;
    const body = s.body ? (JSON.parse(s.body) as Record<string, unknown>) : {};
    const route = `${s.method} ${url.pathname.replace(/\/\d+$/, '/:id')}`;
    if (route === 'POST /api/v1/auth/login') {
      return body.email === 'smoke@offgridflow.com' && body.password === PASSWORD ? sendJson(res, 200, { token, expires_in: 3600 }) : sendJson(res, 401, { error: 'invalid credentials' });
    }
    if (route === 'GET /changelog') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return void res.end(`<h1>Changelog</h1><h2>${broken ? '1.3.9' : '1.4.0'}</h2><h2>1.3.8</h2>`);
    }
    if (route === 'GET /api/v1/compliance/frameworks') {
      if (s.headers.authorization !== 'Bearer smoke-api-token-value') return sendJson(res, 401, { error: 'unauthorized' });
      return sendJson(res, 200, { frameworks: broken ? [{ id: 'CSRD' }] : [{ id: 'CSRD' }, { id: 'SEC' }, { id: 'CBAM' }] });
    }
    if (!authed) return sendJson(res, 401, { error: 'unauthorized' });
    const id = Number(url.pathname.split('/').at(-1));
    switch (route) {
      case 'GET /api/v1/auth/me':
        return broken ? sendJson(res, 500, { error: 'session store down' }) : sendJson(res, 200, { email: 'smoke@offgridflow.com' });
      case 'POST /api/v1/activities': {
        if (broken) return sendJson(res, 503, { error: 'database read-only' });
        const n = activities.size + 1;
        activities.set(n, { id: n, ...body });
        return sendJson(res, 201, activities.get(n));
      }
      case 'GET /api/v1/activities/:id':
        return activities.has(id) ? sendJson(res, 200, activities.get(id)) : sendJson(res, 404, { error: 'not found' });
      case 'DELETE /api/v1/activities/:id':
        activities.delete(id);
        res.writeHead(204);
        return void res.end();
      case 'POST /api/v1/reports':
        return sendJson(res, 202, { id: 77, status: 'queued' });
      case 'GET /api/v1/reports/:id':
        return sendJson(res, 200, { id, status: broken ? 'failed' : 'processing' });
      case 'GET /api/v1/dashboard':
        return broken ? sendJson(res, 503, { error: 'cache cold' }) : sendJson(res, 200, { emissions: { scope1: 12.5 } });
      default:
        return sendJson(res, 404, { error: 'not found' });
    }
  });
}

t.test('the shipped checklist: flows, compliance frameworks and changelog against the OffGridFlow API', async (t) => {
  const ROWS = ['flow-login', 'flow-create-activity', 'flow-generate-report', 'flow-view-dashboard', 'compliance-frameworks', 'changelog-published'];
  for (const broken of [false, true]) {
    const api = await offgridflow(broken);
    t.teardown(() => api.close());
    const env = { API_URL: api.url, WWW_URL: api.url, SMOKE_USER_EMAIL: 'smoke@offgridflow.com', SMOKE_USER_PASSWORD: PASSWORD, SMOKE_API_TOKEN: 'smoke-api-token-value', RELEASE_VERSION: '1.4.0' };
    const views = await runShipped(env, ROWS);
    t.same(views.map((v) => v.def.id).sort(), [...ROWS].sort());
    for (const v of views) t.equal(v.state, broken ? 'fail' : 'pass', `${broken ? 'broken' : 'healthy'} ${v.def.id}: ${v.message}`);
    t.notOk(JSON.stringify(views.map((v) => v.message)).includes(PASSWORD), 'the password is in no message');
  }
});

t.test('validate: references, names and conditions checked at load', async (t) => {
  const v = (p: Record<string, unknown>) => flowProbe.validate?.(params(p));
  t.same(v(FLOW), []);
  t.same(
    v({
      url: 'https://app.example.com',
      steps: [
        { name: 'a', path: '/x/{{id}}', url: 'https://elsewhere/' },
        { name: 'a', body: 'x', json: { y: 1 }, headers: { Authorization: 'Bearer {{token}}' }, expect: ['nope == 1', 'status >= 200'] },
      ],
    }),
    [
      'steps[0] (a): set either path or url, not both',
      'steps[0] (a): {{id}} is not a var, a secret or captured by an earlier step',
      'steps[1] (a): duplicate step name',
      'steps[1] (a): set either body or json, not both',
      'steps[1] (a): {{token}} is not a var, a secret or captured by an earlier step',
      'steps[1] (a): bad condition "nope == 1": unknown field "nope" (this probe reports: status, duration_ms, body, json.*, header.*)',
    ],
  );
  t.same(v({ url: 'https://x', steps: [{ name: 'a', path: '/{{later}}' }, { name: 'b', capture: { later: 'json.id' } }] }), [
    'steps[0] (a): {{later}} is not a var, a secret or captured by an earlier step',
  ]);
  t.same(v({ url: 'ftp://x', steps: [{ name: 'a' }] }), ['url must be an http(s) URL']);
  t.throws(() => params({ url: 'https://x', steps: [{ name: 'a', capture: { t: 'cookie.x' } }] }), /pattern/);
  t.throws(() => params({ url: 'https://x', steps: [] }), /minItems/);
  t.throws(() => params({ url: 'https://x', steps: Array.from({ length: 21 }, (_, i) => ({ name: `s${i}` })) }), /maxItems/);
});
