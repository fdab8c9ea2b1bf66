// github probe against a local server speaking GitHub's REST API (test/helpers/fake-apis.ts).
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import githubProbe from '../../src/probes/github.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { answer, DAY, emptyRepo, fakeGitHub, github, HOUR, runShipped, type FakeGitHub } from '../helpers/fake-apis.js';
import { closedPort } from '../helpers/listeners.js';

const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(githubProbe.params);
type Params = Static<typeof githubProbe.params>;
function params(input: Record<string, unknown>): Params {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Params;
}

const TOKEN = 'ghp_t0kenValueThatMustNeverLeak0000';
const servers: FakeGitHub[] = [];
t.teardown(() => Promise.all(servers.map((s) => s.close())));

/** A fresh GitHub per test: rate-limit state is kept per API root and token. */
async function gh(): Promise<FakeGitHub> {
  const s = await fakeGitHub(TOKEN);
  servers.push(s);
  const repo = emptyRepo();
  repo.runs.push(
    github.run({ id: 101, workflow: 'backend.yml', branch: 'main', conclusion: 'failure', agoMs: 5 * HOUR }),
    github.run({ id: 102, workflow: 'backend.yml', branch: 'main', conclusion: 'success', agoMs: 2 * HOUR, sha: 'aaaaaaa1111111111111111111111111111111aa' }),
    github.run({ id: 103, workflow: 'backend.yml', branch: 'main', conclusion: null, status: 'in_progress', agoMs: 0.1 * HOUR }),
    github.run({ id: 104, workflow: 'backend.yml', branch: 'feature', conclusion: 'failure' }),
    github.run({ id: 105, workflow: 'frontend.yml', branch: 'main', conclusion: 'failure', agoMs: HOUR }),
    github.run({ id: 106, workflow: 'frontend.yml', branch: 'main', conclusion: 'success', event: 'schedule', agoMs: 30 * HOUR }),
    github.run({ id: 107, workflow: 'integration.yml', branch: 'other', conclusion: 'success' }),
  );
  repo.protection.main = {
    url: 'https://api.github.com/repos/offgridflow/api/branches/main/protection',
    required_status_checks: { strict: true, contexts: ['backend'] },
    required_pull_request_reviews: { dismiss_stale_reviews: true, require_code_owner_reviews: false, required_approving_review_count: 1 },
    enforce_admins: { url: 'https://api.github.com/repos/offgridflow/api/branches/main/protection/enforce_admins', enabled: true },
  };
  repo.rules.main = [
    { type: 'deletion', ruleset_source_type: 'Repository', ruleset_source: 'offgridflow/api', ruleset_id: 1 },
    {
      type: 'pull_request',
      ruleset_source_type: 'Organization',
      ruleset_source: 'offgridflow',
      ruleset_id: 2,
      parameters: { required_approving_review_count: 2, dismiss_stale_reviews_on_push: false, require_code_owner_review: true, require_last_push_approval: false, required_review_thread_resolution: false },
    },
  ];
  repo.rules.legacy = [];
  repo.protection.legacy = { required_pull_request_reviews: { required_approving_review_count: 1 }, enforce_admins: { enabled: false } };
  for (let i = 1; i <= 150; i++) repo.dependabot.push(github.dependabot(i, i === 1 ? 'critical' : i <= 3 ? 'high' : i <= 100 ? 'medium' : 'low'));
  repo.dependabot.push({ ...github.dependabot(999, 'critical'), state: 'fixed' });
  repo.codeScanning.push(
    github.codeScanning(1, 'CodeQL', 'high'),
    github.codeScanning(2, 'CodeQL', null),
    github.codeScanning(3, 'Trivy', 'critical'),
    github.codeScanning(4, 'gosec', 'medium'),
    github.codeScanning(5, 'Trivy', 'high', 'refs/heads/feature'),
    { ...github.codeScanning(6, 'Trivy', 'critical'), state: 'dismissed' },
  );
  repo.analyses.push(
    github.analysis(1, 'CodeQL', 10 * DAY),
    github.analysis(2, 'CodeQL', 2 * DAY),
    github.analysis(3, 'Trivy', 3 * HOUR),
    github.analysis(4, 'gosec', 1 * DAY, { error: 'SARIF upload truncated: 5000 results' }),
    github.analysis(5, 'Trivy', 20 * DAY, { ref: 'refs/heads/feature' }),
  );
  s.repos['offgridflow/api'] = repo;
  s.repos['offgridflow/unscanned'] = emptyRepo();
  return s;
}

const ctx = (timeoutMs = 5000) => makeCtx({ env: { GITHUB_TOKEN: TOKEN }, timeoutMs });
const run = (s: FakeGitHub, p: Record<string, unknown>, c = ctx()) => githubProbe.run(params({ repo: 'offgridflow/api', baseUrl: s.url, ...p }), c);

t.test('workflow_run: the latest completed run on the branch', async (t) => {
  const s = await gh();
  const obs = await run(s, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main' });
  t.equal(obs.error, undefined);
  t.equal(obs.value, 1);
  t.match(obs.fields, { conclusion: 'success', status: 'completed', run_number: 102, head_sha: 'aaaaaaa1111111111111111111111111111111aa', event: 'push', url: 'https://github.com/offgridflow/api/actions/runs/102' });
  t.ok(Math.abs((obs.fields.age_seconds as number) - 7200) < 60);
  t.equal(obs.message, 'offgridflow/api backend.yml on main: run #102 success, 2.0 h ago (https://github.com/offgridflow/api/actions/runs/102)');
  const seen = new URL(s.seen[0]!.url, 'http://x');
  t.equal(seen.pathname, '/repos/offgridflow/api/actions/workflows/backend.yml/runs');
  t.same(Object.fromEntries(seen.searchParams), { branch: 'main', per_page: '1', status: 'completed' });
  t.equal(s.seen[0]!.headers.accept, 'application/vnd.github+json');

  const failed = await run(s, { measure: 'workflow_run', workflow: 'frontend.yml', branch: 'main' });
  t.equal(failed.fields.conclusion, 'failure', 'a failed latest run is reported, conditions decide');
  t.equal(failed.value, 0);
  const inProgress = await run(s, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main', completedOnly: false });
  t.match(inProgress.fields, { conclusion: '', status: 'in_progress', run_number: 103 });
  t.match(inProgress.message, /run #103 in_progress/);
  const scheduled = await run(s, { measure: 'workflow_run', workflow: 'frontend.yml', branch: 'main', event: 'schedule' });
  t.equal(scheduled.fields.run_number, 106);
  const bySha = await run(s, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main', headSha: 'aaaaaaa1111111111111111111111111111111aa' });
  t.equal(bySha.fields.run_number, 102);
  t.match(bySha.message, /backend\.yml on main at aaaaaaa: run #102/);
});

t.test('workflow_run: no run is no-data; an unknown workflow is an error', async (t) => {
  const s = await gh();
  const none = await run(s, { measure: 'workflow_run', workflow: 'integration.yml', branch: 'main' });
  t.same(none, { fields: {}, noData: true, message: 'no completed run of integration.yml on main in offgridflow/api' });
  const unknown = await run(s, { measure: 'workflow_run', workflow: 'nope.yml', branch: 'main' });
  t.same(unknown.error, { reason: 'http-status', message: 'GitHub GET /repos/offgridflow/api/actions/workflows/nope.yml/runs?branch=main&per_page=1&status=completed: 404 Not Found (wrong name, or the token cannot see it)' });
});

t.test('branch_protection: the stricter of classic protection and rulesets', async (t) => {
  const s = await gh();
  const main = await run(s, { measure: 'branch_protection', branch: 'main' });
  t.equal(main.value, 2);
  t.same(main.fields, { required_approving_review_count: 2, protected: true, enforce_admins: true, require_code_owner_reviews: true, dismiss_stale_reviews: true });
  t.equal(main.message, 'offgridflow/api main: 2 approving reviews required (branch protection 1, rulesets 2)');
  const legacy = await run(s, { measure: 'branch_protection', branch: 'legacy' });
  t.equal(legacy.fields.required_approving_review_count, 1);
  t.equal(legacy.message, 'offgridflow/api legacy: 1 approving review required (branch protection 1)');
  const open = await run(s, { measure: 'branch_protection', branch: 'wild-west' });
  t.same(open.fields, { required_approving_review_count: 0, protected: false, enforce_admins: false, require_code_owner_reviews: false, dismiss_stale_reviews: false });
  t.equal(open.message, 'offgridflow/api wild-west: branch not protected');
});

t.test('alerts: open Dependabot and code-scanning alerts by severity, across pages', async (t) => {
  const s = await gh();
  const obs = await run(s, { measure: 'alerts', branch: 'main' });
  t.equal(obs.error, undefined);
  // Dependabot: 1 critical, 2 high, 97 medium, 50 low; code scanning on main: 1 high, 1 critical, 1 medium, 1 other.
  t.same(obs.fields, { dependabot: 150, code_scanning: 4, critical: 2, high: 3, medium: 98, low: 50, other: 1, total: 154, critical_high: 5 });
  t.equal(obs.value, 5);
  t.equal(obs.message, 'offgridflow/api: 2 critical, 3 high, 98 medium, 50 low open alerts (150 Dependabot, 4 code scanning)');
  t.equal(s.seen.filter((x) => x.url.includes('dependabot')).length, 2, 'followed the Link header to page 2');

  const capped = await run(s, { measure: 'alerts', sources: ['dependabot'], maxPages: 1 });
  t.equal(capped.fields.dependabot, 100);
  t.match(capped.message, /\(more than 1 pages: counts are a lower bound\)$/);

  const trivy = await run(s, { measure: 'alerts', sources: ['code_scanning'], tools: ['Trivy'] });
  t.same(trivy.fields, { code_scanning: 2, critical: 1, high: 1, medium: 0, low: 0, other: 0, total: 2, critical_high: 2 }, 'all refs without a branch');

  const unscanned = await run(s, { repo: 'offgridflow/unscanned', measure: 'alerts', sources: ['code_scanning'] });
  t.same(unscanned.error, { reason: 'http-status', message: 'GitHub GET /repos/offgridflow/unscanned/code-scanning/alerts?state=open&per_page=100: 404 no analysis found (wrong name, or the token cannot see it)' });
});

t.test('code_scanning: age of each tool\'s latest analysis and its open alerts', async (t) => {
  const s = await gh();
  const obs = await run(s, { measure: 'code_scanning', tools: ['CodeQL', 'Trivy'], branch: 'main' });
  t.equal(obs.error, undefined);
  t.ok(Math.abs((obs.fields.analysis_age_seconds as number) - 2 * 86400) < 60, 'the stalest tool decides (CodeQL, 2 days)');
  t.match(obs.fields, { critical: 1, high: 1, other: 1, critical_high: 2, tools_missing: 0, analysis_errors: 0 });
  t.equal(obs.message, 'offgridflow/api CodeQL, Trivy: oldest latest analysis 2.0 days ago; 1 critical, 1 high open alerts of 3');
  const analysisQuery = new URL(s.seen[0]!.url, 'http://x').searchParams;
  t.same(Object.fromEntries(analysisQuery), { tool_name: 'CodeQL', per_page: '1', sort: 'created', direction: 'desc', ref: 'refs/heads/main' });

  const gosec = await run(s, { measure: 'code_scanning', tools: ['gosec'] });
  t.equal(gosec.fields.analysis_errors, 1);
  t.match(gosec.message, /analysis error gosec: SARIF upload truncated: 5000 results$/);

  const missing = await run(s, { measure: 'code_scanning', tools: ['Trivy', 'Semgrep'], branch: 'main' });
  t.equal(missing.fields.tools_missing, 1);
  t.equal(missing.fields.analysis_age_seconds, undefined, 'unknown age: an age condition fails');
  t.match(missing.message, /: no analysis from Semgrep; /);
});

t.test('credentials: missing, rejected, never shown', async (t) => {
  const s = await gh();
  const unset = await run(s, { measure: 'alerts' }, makeCtx({ env: {} }));
  t.same(unset, { fields: {}, error: { reason: 'unconfigured', message: 'environment variable GITHUB_TOKEN (tokenEnv) is not set' } });
  t.equal(s.seen.length, 0, 'nothing sent without a token');
  const bad = await run(s, { measure: 'alerts', tokenEnv: 'CI_TOKEN' }, makeCtx({ env: { CI_TOKEN: 'ghp_wrong' } }));
  t.same(bad.error, { reason: 'auth', message: 'GitHub rejected the token (401 Bad credentials)' });
  s.queue(answer.json(403, { message: 'Resource not accessible by integration', documentation_url: 'https://docs.github.com/rest/dependabot/alerts' }));
  const forbidden = await run(s, { measure: 'alerts', sources: ['dependabot'] });
  t.same(forbidden.error, { reason: 'auth', message: 'GitHub GET /repos/offgridflow/api/dependabot/alerts?state=open&per_page=100: 403 Resource not accessible by integration (the token lacks a permission)' });
  const everything = JSON.stringify([unset, bad, forbidden, await run(s, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main' })]);
  t.notOk(everything.includes(TOKEN), 'the token appears nowhere');
});

t.test('rate limits: a spent budget stops requests until the reset', async (t) => {
  const s = await gh();
  const reset = Math.floor(Date.now() / 1000) + 1800;
  s.queue(
    answer.json(403, { message: 'API rate limit exceeded for user ID 1.', documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api' }, {
      'x-ratelimit-limit': 5000,
      'x-ratelimit-remaining': 0,
      'x-ratelimit-reset': reset,
      'x-ratelimit-resource': 'core',
    }),
  );
  const first = await run(s, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main' });
  t.same(first.error, { reason: 'rate-limited', message: `GitHub rate limit: no requests until ${new Date(reset * 1000).toISOString()}` });
  t.equal(s.seen.length, 1, 'one request, no retry loop');
  const second = await run(s, { measure: 'branch_protection', branch: 'main' });
  t.equal(second.error?.reason, 'rate-limited');
  t.equal(s.seen.length, 1, 'the next run sends nothing before the reset');
  const otherToken = await run(s, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main', tokenEnv: 'OTHER' }, makeCtx({ env: { OTHER: TOKEN } }));
  t.equal(otherToken.fields.conclusion, 'success', 'limits are per token');
});

t.test('rate limits: the last request of the budget blocks the following ones', async (t) => {
  const s = await gh();
  s.rateLimit.remaining = 0;
  s.rateLimit.reset = Math.floor(Date.now() / 1000) + 600;
  const obs = await run(s, { measure: 'branch_protection', branch: 'main' });
  t.equal(obs.error?.reason, 'rate-limited', 'the second request of the run is not sent');
  t.equal(s.seen.length, 1);
});

t.test('rate limits: a short retry-after (secondary limit, 429) is waited out once', async (t) => {
  const s = await gh();
  s.queue(answer.json(429, { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' }, { 'retry-after': 1 }));
  const started = Date.now();
  const obs = await run(s, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main' });
  t.equal(obs.fields.conclusion, 'success');
  t.ok(Date.now() - started >= 950, 'waited for retry-after');
  t.equal(s.seen.length, 2);

  const s2 = await gh();
  s2.queue(answer.json(429, { message: 'secondary rate limit' }, { 'retry-after': 1 }), answer.json(429, { message: 'secondary rate limit' }, { 'retry-after': 1 }));
  const twice = await run(s2, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main' });
  t.equal(twice.error?.reason, 'rate-limited', 'gives up after the second refusal');
  t.equal(s2.seen.length, 2);

  const s3 = await gh();
  s3.queue(answer.json(403, { message: 'You have exceeded a secondary rate limit.' }));
  const noHeader = await run(s3, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main' });
  t.equal(noHeader.error?.reason, 'rate-limited', 'a secondary limit without retry-after backs off a minute');
  t.equal(s3.seen.length, 1);

  const s4 = await gh();
  s4.queue(answer.json(429, { message: 'secondary rate limit' }, { 'retry-after': 3 }));
  const tooLong = await run(s4, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main' }, ctx(2000));
  t.equal(tooLong.error?.reason, 'rate-limited', 'a wait that would not fit in the timeout is not attempted');
  t.equal(s4.seen.length, 1);
});

t.test('server errors, garbage, timeouts, refused', async (t) => {
  const s = await gh();
  s.queue(answer.status(502, 'Bad Gateway'));
  t.same((await run(s, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main' })).error, {
    reason: 'http-status',
    message: 'GitHub GET /repos/offgridflow/api/actions/workflows/backend.yml/runs?branch=main&per_page=1&status=completed: 502',
  });
  s.queue(answer.garbage());
  const garbage = await run(s, { measure: 'branch_protection', branch: 'main' });
  t.equal(garbage.error?.reason, 'protocol');
  t.match(garbage.error?.message, /the answer is not JSON \("<html>/);
  s.queue(answer.json(200, { total_count: 1 }));
  t.same((await run(s, { measure: 'workflow_run', workflow: 'backend.yml', branch: 'main' })).error, { reason: 'protocol', message: 'GitHub answered without workflow_runs' });

  s.queue(answer.hang());
  const started = Date.now();
  const err = await run(s, { measure: 'alerts' }, ctx(300)).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProbeError && err.reason === 'timeout');
  t.match((err as Error).message, /^GitHub GET \/repos\/offgridflow\/api\/dependabot\/alerts\?state=open&per_page=100: no answer before the check timeout \(300 ms\)$/);
  t.ok(Date.now() - started < 3000);

  const refused = await githubProbe.run(params({ measure: 'alerts', repo: 'offgridflow/api', baseUrl: `http://127.0.0.1:${await closedPort()}` }), ctx());
  t.equal(refused.error?.reason, 'refused');
});

t.test('a next-page link to another origin is not followed', async (t) => {
  const s = await gh();
  s.queue(answer.json(200, [github.dependabot(1, 'high')], { link: '<https://evil.example.com/steal?page=2>; rel="next"' }));
  const obs = await run(s, { measure: 'alerts', sources: ['dependabot'] });
  t.same(obs.error, { reason: 'protocol', message: 'GitHub answered with a next page on another origin (https://evil.example.com)' });
});

t.test('the shipped checklist: every github row passes on a healthy repo and fails on a broken one', async (t) => {
  const ROWS = ['ci-backend-tests', 'ci-frontend-tests', 'ci-integration-tests', 'ci-security-scans', 'vulnerabilities-critical-high', 'code-review-approvals', 'scan-images', 'scan-static', 'scan-dependencies'];
  for (const broken of [false, true]) {
    const s = await fakeGitHub(TOKEN);
    servers.push(s);
    const repo = emptyRepo();
    ['backend.yml', 'frontend.yml', 'integration.yml', 'security.yml'].forEach((workflow, i) =>
      repo.runs.push(github.run({ id: 200 + i, workflow, branch: 'main', conclusion: broken && i % 2 === 0 ? 'failure' : broken ? 'cancelled' : 'success' })),
    );
    repo.protection.main = { required_pull_request_reviews: { required_approving_review_count: broken ? 1 : 2 }, enforce_admins: { enabled: true } };
    repo.dependabot.push(github.dependabot(1, broken ? 'high' : 'low'));
    repo.codeScanning.push(github.codeScanning(1, 'Trivy', broken ? 'critical' : 'medium'), github.codeScanning(2, 'gosec', broken ? 'high' : 'low'), github.codeScanning(3, 'CodeQL', null));
    for (const [i, tool] of ['Trivy', 'gosec', 'CodeQL'].entries()) repo.analyses.push(github.analysis(i + 1, tool, broken ? 9 * DAY : 5 * HOUR));
    s.repos['offgridflow/offgridflow'] = repo;
    const views = await runShipped({ GITHUB_TOKEN: TOKEN, GITHUB_API_URL: s.url, GITHUB_REPO: 'offgridflow/offgridflow' }, ROWS);
    t.same(views.map((v) => v.def.id).sort(), [...ROWS].sort(), 'the shipped github rows');
    for (const v of views) t.equal(v.state, broken ? 'fail' : 'pass', `${broken ? 'broken' : 'healthy'} ${v.def.id}: ${v.message}`);
  }
});

t.test('validate: what each measure needs', async (t) => {
  const v = (p: Record<string, unknown>) => githubProbe.validate?.(params({ repo: 'o/r', ...p }));
  t.same(v({ measure: 'workflow_run', workflow: 'ci.yml', branch: 'main' }), []);
  t.same(v({ measure: 'workflow_run' }), ['measure workflow_run needs workflow', 'measure workflow_run needs branch']);
  t.same(v({ measure: 'branch_protection' }), ['measure branch_protection needs branch']);
  t.same(v({ measure: 'code_scanning' }), ['measure code_scanning needs tools']);
  t.same(v({ measure: 'alerts', workflow: 'ci.yml', headSha: 'abcdef1' }), ['workflow applies to measure workflow_run only', 'headSha applies to measure workflow_run only']);
  t.same(v({ measure: 'alerts', baseUrl: 'not a url' }), ['baseUrl is not a valid URL']);
  t.throws(() => params({ repo: 'just-a-name', measure: 'alerts' }), /pattern/);
  t.throws(() => params({ repo: 'o/r', measure: 'workflow_run', workflow: 'Backend CI' }), /pattern/);
  t.same(params({ repo: 'o/r', measure: 'alerts' }), { repo: 'o/r', measure: 'alerts', baseUrl: 'https://api.github.com', tokenEnv: 'GITHUB_TOKEN', completedOnly: true, sources: ['dependabot', 'code_scanning'], maxPages: 10 });
});
