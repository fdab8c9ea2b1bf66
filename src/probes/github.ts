// github: facts about a repository read from the GitHub REST API: the latest run of a
// workflow on a branch, the branch's required approvals, open Dependabot and code-scanning
// alerts by severity, and the age of each scanner's latest code-scanning analysis.
//
// GitHub's rate limits are honoured across runs: once an answer says the budget is spent
// (x-ratelimit-remaining: 0 until x-ratelimit-reset, or retry-after on a secondary limit), no
// request with that token goes out before that time. A run waits for the limit only when it
// ends well within the check's timeout; otherwise the check is `error` with reason
// `rate-limited`, and the next runs stay quiet until the reset. Nothing is retried in a loop.
import { performance } from 'node:perf_hooks';
import { Type, type Static } from '@sinclair/typebox';
import type { Agent, Dispatcher } from 'undici';
import { reasonFromError } from '../reasons.js';
import { gatedConnector } from './lease.js';
import { defineProbe, ProbeError, type Observation, type ProbeContext } from './types.js';
import { commonjs, lazy } from './lazy.js';
import { httpUrlProblem } from './shared.js';

const undici = lazy(() => import('undici').then(commonjs));

export const MEASURES = ['workflow_run', 'branch_protection', 'alerts', 'code_scanning'] as const;
type Measure = (typeof MEASURES)[number];
const SOURCES = ['dependabot', 'code_scanning'] as const;

const params = Type.Object(
  {
    measure: Type.Unsafe<Measure>({ type: 'string', enum: [...MEASURES], description: `What to read: ${MEASURES.join(' | ')}.` }),
    repo: Type.String({ pattern: '^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$', 'x-hint': 'owner/name, e.g. offgridflow/api', description: 'Repository as owner/name.' }),
    baseUrl: Type.String({ default: 'https://api.github.com', description: 'API root (GitHub Enterprise Server: https://HOST/api/v3).' }),
    tokenEnv: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', default: 'GITHUB_TOKEN', description: 'Environment variable holding the token (unset: unconfigured).' }),
    workflow: Type.Optional(
      Type.String({ pattern: '^([0-9]+|[A-Za-z0-9_.-]+\\.ya?ml)$', 'x-hint': 'a workflow file name (ci.yml) or id', description: 'workflow_run: the workflow file name (backend.yml) or id.' }),
    ),
    branch: Type.Optional(Type.String({ minLength: 1, description: 'workflow_run, branch_protection: the branch; code_scanning: analyses of this branch only.' })),
    event: Type.Optional(Type.String({ minLength: 1, description: 'workflow_run: only runs triggered by this event (push, schedule, ...).' })),
    headSha: Type.Optional(Type.String({ pattern: '^[0-9a-f]{7,40}$', description: 'workflow_run: only runs of this commit (the release being deployed).' })),
    completedOnly: Type.Boolean({ default: true, description: 'workflow_run: skip runs still queued or in progress.' }),
    sources: Type.Array(Type.Unsafe<(typeof SOURCES)[number]>({ type: 'string', enum: [...SOURCES] }), {
      default: [...SOURCES],
      minItems: 1,
      description: 'alerts: dependabot and/or code_scanning.',
    }),
    tools: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'code_scanning: tool names as GitHub shows them (CodeQL, Trivy, gosec); alerts: code-scanning alerts of these tools only.' })),
    maxPages: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'alerts: most pages of 100 alerts read per source.' }),
  },
  { additionalProperties: false },
);
type Params = Static<typeof params>;

const NEEDS: Record<Measure, (keyof Params)[]> = {
  workflow_run: ['workflow', 'branch'],
  branch_protection: ['branch'],
  alerts: [],
  code_scanning: ['tools'],
};
const ONLY: Partial<Record<keyof Params, Measure[]>> = {
  workflow: ['workflow_run'],
  event: ['workflow_run'],
  headSha: ['workflow_run'],
};

/** The longest a run waits for a rate limit to reset, however long its timeout. */
const MAX_WAIT_MS = 10_000;
/** A secondary rate limit without retry-after: GitHub asks for at least a minute. */
const SECONDARY_WAIT_MS = 60_000;

/** Per API root and token: no request before this time (ms since epoch). */
const blockedUntil = new Map<string, number>();

class RateLimited extends ProbeError {
  constructor(readonly until: number) {
    super('rate-limited', `GitHub rate limit: no requests until ${new Date(until).toISOString()}`);
  }
}

interface Answer {
  json: unknown;
  link: string | undefined;
}

/** One API client per run: its own connection pool, the run's deadline and the shared limits. */
class GitHub {
  private readonly agent: Agent;
  private readonly key: string;
  private readonly deadline: number;
  private readonly origin: string;
  requests = 0;

  constructor(
    private readonly root: string,
    private readonly token: string,
    tokenEnv: string,
    private readonly ctx: ProbeContext,
    private readonly client: typeof import('undici'),
  ) {
    this.origin = new URL(root).origin;
    this.key = `${this.origin}|${tokenEnv}`;
    this.deadline = performance.now() + ctx.timeoutMs;
    const backstop = ctx.timeoutMs * 2;
    const { stillOwner } = ctx;
    const connect = { timeout: backstop };
    this.agent = new client.Agent({ connect: stillOwner ? gatedConnector(client.buildConnector, connect, () => stillOwner) : connect, headersTimeout: backstop, bodyTimeout: backstop });
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }

  /** Waits out a known limit when that fits in the run, else throws RateLimited. */
  private async respectLimit(): Promise<void> {
    const until = blockedUntil.get(this.key) ?? 0;
    const wait = until - Date.now();
    if (wait <= 0) return;
    if (wait > MAX_WAIT_MS || performance.now() + wait + 1000 > this.deadline) throw new RateLimited(until);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }

  /** Records what the answer says about the limit; true when this answer was refused for it. */
  private noteLimit(status: number, headers: Dispatcher.ResponseData['headers'], body: unknown): boolean {
    const h = (n: string) => {
      const v = headers[n];
      return typeof v === 'string' ? v : undefined;
    };
    const retryAfter = Number(h('retry-after'));
    const remaining = h('x-ratelimit-remaining');
    const reset = Number(h('x-ratelimit-reset'));
    let until = 0;
    if (Number.isFinite(retryAfter) && h('retry-after') !== undefined) until = Date.now() + retryAfter * 1000;
    else if (remaining === '0' && Number.isFinite(reset)) until = reset * 1000;
    const refused = (status === 403 || status === 429) && (until > 0 || status === 429 || /rate limit/i.test(messageOf(body)));
    if (refused && until === 0) until = Date.now() + SECONDARY_WAIT_MS;
    if (until > Date.now()) blockedUntil.set(this.key, Math.max(until, blockedUntil.get(this.key) ?? 0));
    return refused;
  }

  /** GET a path (or a same-origin absolute URL from a Link header); maps every API error to a ProbeError. */
  async get(pathOrUrl: string, allow404 = false): Promise<Answer | undefined> {
    const url = pathOrUrl.startsWith('http') ? new URL(pathOrUrl) : new URL(this.root.replace(/\/+$/, '') + pathOrUrl);
    // A Link header pointing elsewhere must not receive the token.
    if (url.origin !== this.origin) throw new ProbeError('protocol', `GitHub answered with a next page on another origin (${url.origin})`);
    const shown = url.pathname + url.search;
    for (let attempt = 0; ; attempt++) {
      await this.respectLimit();
      this.requests++;
      let res: Dispatcher.ResponseData;
      let text: string;
      try {
        res = await this.client.request(url, {
          headers: {
            accept: 'application/vnd.github+json',
            authorization: `Bearer ${this.token}`,
            'user-agent': 'readiness-exporter',
            'x-github-api-version': '2022-11-28',
          },
          signal: this.ctx.signal,
          dispatcher: this.agent,
        });
        text = await res.body.text();
      } catch (err) {
        if (this.ctx.signal.aborted) throw new ProbeError('timeout', `GitHub GET ${shown}: no answer before the check timeout (${this.ctx.timeoutMs} ms)`);
        const e = err as Error & { code?: string };
        throw new ProbeError(reasonFromError(e), `GitHub GET ${shown}: ${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}`);
      }
      let json: unknown;
      try {
        json = text === '' ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      if (this.noteLimit(res.statusCode, res.headers, json)) {
        if (attempt === 0) continue; // respectLimit waits, or throws when the wait does not fit
        throw new RateLimited(blockedUntil.get(this.key) ?? Date.now());
      }
      const said = messageOf(json);
      if (res.statusCode === 401) throw new ProbeError('auth', `GitHub rejected the token (401${said ? ` ${said}` : ''})`);
      if (res.statusCode === 403) throw new ProbeError('auth', `GitHub GET ${shown}: 403${said ? ` ${said}` : ''} (the token lacks a permission)`);
      if (res.statusCode === 404 && allow404) return undefined;
      if (res.statusCode === 404) {
        throw new ProbeError('http-status', `GitHub GET ${shown}: 404${said ? ` ${said}` : ''} (wrong name, or the token cannot see it)`);
      }
      if (res.statusCode < 200 || res.statusCode >= 300) throw new ProbeError('http-status', `GitHub GET ${shown}: ${res.statusCode}${said ? ` ${said}` : ''}`);
      if (json === undefined || typeof json !== 'object') {
        throw new ProbeError('protocol', `GitHub GET ${shown}: the answer is not JSON (${JSON.stringify(text.slice(0, 60))})`);
      }
      const link = res.headers.link;
      return { json, link: typeof link === 'string' ? link : undefined };
    }
  }

  /** Every item of a paginated list, following Link rel="next", at most maxPages pages. */
  async list(path: string, maxPages: number, pick: (json: unknown) => unknown[] = (j) => j as unknown[]): Promise<{ items: unknown[]; complete: boolean }> {
    const items: unknown[] = [];
    let next: string | undefined = path;
    for (let page = 0; next && page < maxPages; page++) {
      const a: Answer = (await this.get(next))!;
      const got = pick(a.json);
      if (!Array.isArray(got)) throw new ProbeError('protocol', `GitHub GET ${path}: expected a list`);
      items.push(...got);
      next = /<([^>]+)>;\s*rel="next"/.exec(a.link ?? '')?.[1];
    }
    return { items, complete: next === undefined };
  }
}

function messageOf(body: unknown): string {
  return body !== null && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string' ? (body as { message: string }).message : '';
}

const obj = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function ageSeconds(iso: unknown): number | undefined {
  const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? undefined : Math.max(0, (Date.now() - t) / 1000);
}

function ago(seconds: number): string {
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h ago`;
  return `${(seconds / 86400).toFixed(1)} days ago`;
}

const enc = encodeURIComponent;

async function workflowRun(gh: GitHub, p: Params): Promise<Observation> {
  const q = new URLSearchParams({ branch: p.branch!, per_page: '1' });
  if (p.completedOnly) q.set('status', 'completed');
  if (p.event) q.set('event', p.event);
  if (p.headSha) q.set('head_sha', p.headSha);
  const a = (await gh.get(`/repos/${p.repo}/actions/workflows/${enc(p.workflow!)}/runs?${q}`))!;
  const runs = obj(a.json).workflow_runs;
  if (!Array.isArray(runs)) throw new ProbeError('protocol', 'GitHub answered without workflow_runs');
  const what = `${p.workflow} on ${p.branch}${p.headSha ? ` at ${p.headSha.slice(0, 7)}` : ''}`;
  const run = runs[0];
  if (run === undefined) {
    return { fields: {}, noData: true, message: `no ${p.completedOnly ? 'completed ' : ''}run of ${what} in ${p.repo}` };
  }
  const r = obj(run);
  const conclusion = str(r.conclusion) ?? '';
  const fields: Record<string, unknown> = {
    conclusion,
    status: str(r.status) ?? '',
    run_number: r.run_number,
    head_sha: str(r.head_sha) ?? '',
    event: str(r.event) ?? '',
    url: str(r.html_url) ?? '',
  };
  const age = ageSeconds(r.updated_at ?? r.run_started_at ?? r.created_at);
  if (age !== undefined) fields.age_seconds = age;
  const outcome = conclusion || str(r.status) || 'unknown';
  return {
    value: conclusion === 'success' ? 1 : 0,
    fields,
    message: `${p.repo} ${what}: run #${String(r.run_number)} ${outcome}${age !== undefined ? `, ${ago(age)}` : ''} (${fields.url})`,
  };
}

async function branchProtection(gh: GitHub, p: Params): Promise<Observation> {
  const branch = enc(p.branch!);
  // Classic protection needs admin read; a 404 means "Branch not protected". Rulesets that
  // apply to the branch are readable with plain read access; the strictest of both counts.
  const classic = await gh.get(`/repos/${p.repo}/branches/${branch}/protection`, true);
  const rules = await gh.get(`/repos/${p.repo}/rules/branches/${branch}`, true);
  const c = obj(classic?.json);
  const reviews = obj(c.required_pull_request_reviews);
  const fromClassic = typeof reviews.required_approving_review_count === 'number' ? reviews.required_approving_review_count : 0;
  let fromRules = 0;
  let codeOwners = reviews.require_code_owner_reviews === true;
  let dismissStale = reviews.dismiss_stale_reviews === true;
  let rulesetCount = 0;
  for (const rule of Array.isArray(rules?.json) ? rules.json : []) {
    const r = obj(rule);
    if (r.type !== 'pull_request') continue;
    rulesetCount++;
    const rp = obj(r.parameters);
    if (typeof rp.required_approving_review_count === 'number') fromRules = Math.max(fromRules, rp.required_approving_review_count);
    codeOwners ||= rp.require_code_owner_review === true;
    dismissStale ||= rp.dismiss_stale_reviews_on_push === true;
  }
  const count = Math.max(fromClassic, fromRules);
  const protectedBranch = classic !== undefined || (Array.isArray(rules?.json) && rules.json.length > 0);
  const fields = {
    required_approving_review_count: count,
    protected: protectedBranch,
    enforce_admins: obj(c.enforce_admins).enabled === true,
    require_code_owner_reviews: codeOwners,
    dismiss_stale_reviews: dismissStale,
  };
  const via = [classic ? `branch protection ${fromClassic}` : '', rulesetCount > 0 ? `rulesets ${fromRules}` : ''].filter(Boolean).join(', ');
  return {
    value: count,
    fields,
    message: `${p.repo} ${p.branch}: ${protectedBranch ? `${count} approving review${count === 1 ? '' : 's'} required (${via || 'no review rule'})` : 'branch not protected'}`,
  };
}

type Sev = 'critical' | 'high' | 'medium' | 'low' | 'other';

function sevOf(v: unknown): Sev {
  const s = typeof v === 'string' ? v.toLowerCase() : '';
  return s === 'critical' || s === 'high' || s === 'medium' || s === 'low' ? s : s === 'moderate' ? 'medium' : 'other';
}

function severityFields(counts: Record<Sev, number>): Record<string, number> {
  const total = counts.critical + counts.high + counts.medium + counts.low + counts.other;
  return { ...counts, total, critical_high: counts.critical + counts.high };
}

const zero = (): Record<Sev, number> => ({ critical: 0, high: 0, medium: 0, low: 0, other: 0 });

/** Open code-scanning alerts (of some tools), counted by security severity. */
async function codeScanningAlerts(gh: GitHub, p: Params, counts: Record<Sev, number>): Promise<{ n: number; complete: boolean }> {
  const tools = p.tools ?? [undefined];
  let n = 0;
  let complete = true;
  for (const tool of tools) {
    const q = new URLSearchParams({ state: 'open', per_page: '100' });
    if (tool) q.set('tool_name', tool);
    if (p.branch) q.set('ref', `refs/heads/${p.branch}`);
    const got = await gh.list(`/repos/${p.repo}/code-scanning/alerts?${q}`, p.maxPages);
    complete &&= got.complete;
    for (const a of got.items) {
      // security_severity_level exists for security rules; other rules (error/warning/note)
      // are not vulnerabilities and count as `other`.
      counts[sevOf(obj(obj(a).rule).security_severity_level)]++;
      n++;
    }
  }
  return { n, complete };
}

async function alerts(gh: GitHub, p: Params): Promise<Observation> {
  const counts = zero();
  const fields: Record<string, unknown> = {};
  let complete = true;
  const parts: string[] = [];
  if (p.sources.includes('dependabot')) {
    const got = await gh.list(`/repos/${p.repo}/dependabot/alerts?state=open&per_page=100`, p.maxPages);
    complete &&= got.complete;
    for (const a of got.items) {
      const x = obj(a);
      counts[sevOf(obj(x.security_advisory).severity ?? obj(x.security_vulnerability).severity)]++;
    }
    fields.dependabot = got.items.length;
    parts.push(`${got.items.length} Dependabot`);
  }
  if (p.sources.includes('code_scanning')) {
    const got = await codeScanningAlerts(gh, p, counts);
    complete &&= got.complete;
    fields.code_scanning = got.n;
    parts.push(`${got.n} code scanning`);
  }
  Object.assign(fields, severityFields(counts));
  const more = complete ? '' : ` (more than ${p.maxPages} pages: counts are a lower bound)`;
  return {
    value: fields.critical_high as number,
    fields,
    message: `${p.repo}: ${counts.critical} critical, ${counts.high} high, ${counts.medium} medium, ${counts.low} low open alerts (${parts.join(', ')})${more}`,
  };
}

async function codeScanning(gh: GitHub, p: Params): Promise<Observation> {
  const ages: number[] = [];
  const missing: string[] = [];
  const failing: string[] = [];
  for (const tool of p.tools!) {
    const q = new URLSearchParams({ tool_name: tool, per_page: '1', sort: 'created', direction: 'desc' });
    if (p.branch) q.set('ref', `refs/heads/${p.branch}`);
    // 404 "no analysis found": the tool never uploaded to this repository (or ref).
    const a = await gh.get(`/repos/${p.repo}/code-scanning/analyses?${q}`, true);
    const newest = Array.isArray(a?.json) ? obj(a.json[0]) : {};
    const age = ageSeconds(newest.created_at);
    if (age === undefined) {
      missing.push(tool);
      continue;
    }
    ages.push(age);
    if (typeof newest.error === 'string' && newest.error !== '') failing.push(`${tool}: ${newest.error}`);
  }
  const counts = zero();
  const { n, complete } = await codeScanningAlerts(gh, p, counts);
  const fields: Record<string, unknown> = { ...severityFields(counts), tools_missing: missing.length, analysis_errors: failing.length };
  // The stalest tool decides: every scanner must have run recently. With one missing, the
  // age is unknown and an age condition fails.
  if (missing.length === 0 && ages.length > 0) fields.analysis_age_seconds = Math.max(...ages);
  const parts = [
    missing.length === 0 ? `oldest latest analysis ${ago(Math.max(...ages))}` : `no analysis from ${missing.join(', ')}`,
    `${counts.critical} critical, ${counts.high} high open alerts of ${n}${complete ? '' : ' (lower bound)'}`,
    ...failing.map((f) => `analysis error ${f}`),
  ];
  return { value: fields.critical_high as number, fields, message: `${p.repo} ${p.tools!.join(', ')}: ${parts.join('; ')}` };
}

export default defineProbe({
  kind: 'github',
  description: 'GitHub repository facts: latest workflow run, required approvals, open alerts by severity, code-scanning analysis age.',
  params,
  fields: {
    conclusion: { type: 'string', description: 'workflow_run: conclusion of the latest run (success, failure, cancelled, ...; empty while running).' },
    status: { type: 'string', description: 'workflow_run: completed, in_progress, queued, ...' },
    run_number: { type: 'number', description: 'workflow_run: the run number.' },
    head_sha: { type: 'string', description: 'workflow_run: the commit the run tested.' },
    event: { type: 'string', description: 'workflow_run: what triggered it.' },
    url: { type: 'string', description: 'workflow_run: the run page.' },
    age_seconds: { type: 'number', unit: 's', description: 'workflow_run: time since the run last changed (finished).' },
    required_approving_review_count: { type: 'number', description: 'branch_protection: approvals required (the stricter of branch protection and rulesets; 0 when none).' },
    protected: { type: 'boolean', description: 'branch_protection: branch protection or a ruleset applies.' },
    enforce_admins: { type: 'boolean', description: 'branch_protection: admins are not exempt (classic protection).' },
    require_code_owner_reviews: { type: 'boolean', description: 'branch_protection: a code owner must approve.' },
    dismiss_stale_reviews: { type: 'boolean', description: 'branch_protection: new pushes dismiss approvals.' },
    critical: { type: 'number', description: 'alerts, code_scanning: open alerts of severity critical.' },
    high: { type: 'number', description: 'alerts, code_scanning: open alerts of severity high.' },
    medium: { type: 'number', description: 'alerts, code_scanning: medium (Dependabot moderate).' },
    low: { type: 'number', description: 'alerts, code_scanning: low.' },
    other: { type: 'number', description: 'alerts, code_scanning: alerts without a security severity (code-quality rules).' },
    total: { type: 'number', description: 'alerts, code_scanning: all open alerts counted.' },
    critical_high: { type: 'number', description: 'alerts, code_scanning: critical + high (the value).' },
    dependabot: { type: 'number', description: 'alerts: open Dependabot alerts.' },
    code_scanning: { type: 'number', description: 'alerts: open code-scanning alerts.' },
    analysis_age_seconds: { type: 'number', unit: 's', description: "code_scanning: age of the stalest tool's latest analysis; absent when a tool has none." },
    tools_missing: { type: 'number', description: 'code_scanning: tools with no analysis at all.' },
    analysis_errors: { type: 'number', description: 'code_scanning: tools whose latest analysis reported an error.' },
  },

  requiredEnv: (p) => [p.tokenEnv],
  validate(p) {
    const problems: string[] = [];
    for (const k of NEEDS[p.measure]) if (p[k] === undefined) problems.push(`measure ${p.measure} needs ${k}`);
    for (const [k, measures] of Object.entries(ONLY)) {
      if (p[k as keyof Params] !== undefined && !measures.includes(p.measure)) problems.push(`${k} applies to measure ${measures.join(', ')} only`);
    }
    const bad = httpUrlProblem('baseUrl', p.baseUrl);
    if (bad) problems.push(bad);
    return problems;
  },

  load: undici,

  async run(p, ctx): Promise<Observation> {
    const token = ctx.env[p.tokenEnv];
    if (!token) return { fields: {}, error: { reason: 'unconfigured', message: `environment variable ${p.tokenEnv} (tokenEnv) is not set` } };
    const gh = new GitHub(p.baseUrl, token, p.tokenEnv, ctx, await undici());
    try {
      switch (p.measure) {
        case 'workflow_run':
          return await workflowRun(gh, p);
        case 'branch_protection':
          return await branchProtection(gh, p);
        case 'alerts':
          return await alerts(gh, p);
        case 'code_scanning':
          return await codeScanning(gh, p);
      }
    } catch (err) {
      if (err instanceof ProbeError && err.reason !== 'timeout') return { fields: {}, error: { reason: err.reason, message: err.message } };
      throw err;
    } finally {
      await gh.close();
    }
  },
});
