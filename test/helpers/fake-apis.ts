// Local servers that speak the APIs the probe kinds call, with the providers' real request
// and response shapes, including their error answers: GitHub REST, Stripe, OpenAI, AWS STS
// (query protocol, XML, SigV4 verified), Azure AD and Google OAuth token endpoints, and
// PagerDuty. Each records the requests it saw; `queue` makes the next answers special (a 429
// with reset headers, a 502, a hang, garbage) before the normal behaviour resumes.
import { createHash, createHmac, createVerify } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import pino from 'pino';
import { loadChecklistFile } from '../../src/config/load.js';
import { runOnce } from '../../src/scheduler.js';
import type { CheckView } from '../../src/state.js';
import { MemoryStore } from '../../src/store/memory.js';
import { listenHttp, type HttpListener } from './listeners.js';

export interface Seen {
  method: string;
  /** Path with query, as sent. */
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** An answer that replaces the normal behaviour for one request. */
export type Special = (seen: Seen, res: ServerResponse) => void;

export interface FakeApi extends HttpListener {
  /** Every request, in order. */
  seen: Seen[];
  /** Answers the next requests with these, in order, then behaves normally again. */
  queue(...answers: Special[]): void;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | number> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

/** Canned special answers. */
export const answer = {
  json: (status: number, body: unknown, headers: Record<string, string | number> = {}): Special => (_s, res) => sendJson(res, status, body, headers),
  /** Headers and then nothing: the check timeout has to end it. */
  hang: (): Special => () => {},
  /** 200 with an HTML body where JSON was expected. */
  garbage: (): Special => (_s, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html><body>Service Unavailable</body></html>');
  },
  status: (status: number, text = ''): Special => (_s, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(text);
  },
};

/** A server whose normal behaviour is `handler`. */
export async function fakeApi(handler: (seen: Seen, res: ServerResponse) => void): Promise<FakeApi> {
  const seen: Seen[] = [];
  const specials: Special[] = [];
  const listener = await listenHttp((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      seen.push(s);
      const special = specials.shift();
      try {
        (special ?? handler)(s, res);
      } catch (err) {
        sendJson(res, 500, { error: String(err) });
      }
    });
  });
  return { ...listener, seen, queue: (...a) => specials.push(...a) };
}

const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().replace(/\.\d{3}Z$/, 'Z');
export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

// -------------------------------------------------------------------------------------------
// GitHub REST API
// -------------------------------------------------------------------------------------------

export interface GitHubRepo {
  runs: Record<string, unknown>[];
  protection: Record<string, Record<string, unknown>>;
  rules: Record<string, Record<string, unknown>[]>;
  dependabot: Record<string, unknown>[];
  codeScanning: Record<string, unknown>[];
  analyses: Record<string, unknown>[];
}

export interface FakeGitHub extends FakeApi {
  repos: Record<string, GitHubRepo>;
  /** Rate-limit headers on every normal answer. */
  rateLimit: { limit: number; remaining: number; reset: number };
}

export const github = {
  run(o: { id: number; workflow: string; branch: string; conclusion: string | null; status?: string; sha?: string; event?: string; agoMs?: number }): Record<string, unknown> {
    const at = iso(o.agoMs ?? HOUR);
    return {
      id: o.id,
      name: o.workflow.replace(/\.ya?ml$/, ''),
      node_id: `WFR_${o.id}`,
      head_branch: o.branch,
      head_sha: o.sha ?? createHash('sha1').update(String(o.id)).digest('hex'),
      path: `.github/workflows/${o.workflow}`,
      display_title: 'Merge pull request #42 from offgridflow/feature',
      run_number: o.id,
      event: o.event ?? 'push',
      status: o.status ?? 'completed',
      conclusion: o.conclusion,
      workflow_id: 161335,
      url: `https://api.github.com/repos/offgridflow/api/actions/runs/${o.id}`,
      html_url: `https://github.com/offgridflow/api/actions/runs/${o.id}`,
      created_at: at,
      updated_at: at,
      run_attempt: 1,
      run_started_at: at,
      _workflow: o.workflow,
    };
  },
  dependabot(n: number, severity: string): Record<string, unknown> {
    return {
      number: n,
      state: 'open',
      dependency: { package: { ecosystem: 'npm', name: `pkg-${n}` }, manifest_path: 'web/package-lock.json', scope: 'runtime' },
      security_advisory: { ghsa_id: `GHSA-${n}`, cve_id: `CVE-2024-${n}`, summary: 'Prototype pollution', severity },
      security_vulnerability: { package: { ecosystem: 'npm', name: `pkg-${n}` }, severity, vulnerable_version_range: '< 1.2.3', first_patched_version: { identifier: '1.2.3' } },
      url: `https://api.github.com/repos/offgridflow/api/dependabot/alerts/${n}`,
      html_url: `https://github.com/offgridflow/api/security/dependabot/${n}`,
      created_at: iso(DAY),
    };
  },
  codeScanning(n: number, tool: string, securitySeverity: string | null, ref = 'refs/heads/main'): Record<string, unknown> {
    return {
      number: n,
      created_at: iso(DAY),
      url: `https://api.github.com/repos/offgridflow/api/code-scanning/alerts/${n}`,
      html_url: `https://github.com/offgridflow/api/security/code-scanning/${n}`,
      state: 'open',
      rule: { id: `rule-${n}`, severity: securitySeverity ? 'error' : 'warning', description: 'A rule', name: `rule-${n}`, tags: ['security'], security_severity_level: securitySeverity },
      tool: { name: tool, guid: null, version: '1.0.0' },
      most_recent_instance: { ref, analysis_key: '.github/workflows/scan.yml:scan', state: 'open', commit_sha: 'abc123' },
    };
  },
  analysis(id: number, tool: string, agoMs: number, o: { ref?: string; error?: string } = {}): Record<string, unknown> {
    return {
      ref: o.ref ?? 'refs/heads/main',
      commit_sha: 'd99612c3e1f2970085cfbaeadf8f010ef69bad83',
      analysis_key: '.github/workflows/scan.yml:scan',
      environment: '{}',
      error: o.error ?? '',
      category: `.github/workflows/scan.yml:scan/${tool}`,
      created_at: iso(agoMs),
      results_count: 3,
      rules_count: 67,
      id,
      url: `https://api.github.com/repos/offgridflow/api/code-scanning/analyses/${id}`,
      sarif_id: `6c81cd8e-b078-4ac3-a3be-1dad7dbd0b53-${id}`,
      tool: { name: tool, guid: null, version: '2.9.4' },
      deletable: true,
      warning: '',
    };
  },
};

export function emptyRepo(): GitHubRepo {
  return { runs: [], protection: {}, rules: {}, dependabot: [], codeScanning: [], analyses: [] };
}

/** GitHub's REST API for the endpoints the github probe reads, with bearer-token auth. */
export async function fakeGitHub(token: string): Promise<FakeGitHub> {
  const repos: Record<string, GitHubRepo> = {};
  const rateLimit = { limit: 5000, remaining: 4999, reset: Math.floor(Date.now() / 1000) + 3600 };
  const api = await fakeApi((s, res) => {
    const limitHeaders = {
      'x-ratelimit-limit': rateLimit.limit,
      'x-ratelimit-remaining': rateLimit.remaining,
      'x-ratelimit-reset': rateLimit.reset,
      'x-ratelimit-used': rateLimit.limit - rateLimit.remaining,
      'x-ratelimit-resource': 'core',
      'x-github-api-version-selected': '2022-11-28',
    };
    const reply = (status: number, body: unknown, extra: Record<string, string> = {}) => sendJson(res, status, body, { ...limitHeaders, ...extra });
    const notFound = (message = 'Not Found') => reply(404, { message, documentation_url: 'https://docs.github.com/rest', status: '404' });
    if (s.headers.authorization !== `Bearer ${token}`) {
      return reply(401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' });
    }
    if (s.headers['x-github-api-version'] !== '2022-11-28' || !s.headers['user-agent']) {
      return reply(400, { message: 'missing API version or user agent' });
    }
    const url = new URL(s.url, 'http://x');
    const q = url.searchParams;
    const m = /^\/repos\/([^/]+\/[^/]+)\/(.*)$/.exec(url.pathname);
    const repo = m ? repos[m[1]!] : undefined;
    if (!m || !repo) return notFound();
    const rest = m[2]!;
    const perPage = Number(q.get('per_page') ?? 30);
    const page = Number(q.get('page') ?? 1);
    const paginate = (items: unknown[]) => {
      const slice = items.slice((page - 1) * perPage, page * perPage);
      const extra: Record<string, string> = {};
      if (page * perPage < items.length) {
        const next = new URL(url.href);
        next.searchParams.set('page', String(page + 1));
        extra.link = `<http://127.0.0.1:${api.port}${next.pathname}${next.search}>; rel="next", <http://127.0.0.1:${api.port}${url.pathname}?page=1>; rel="first"`;
      }
      reply(200, slice, extra);
    };

    let wf: RegExpExecArray | null;
    if ((wf = /^actions\/workflows\/([^/]+)\/runs$/.exec(rest))) {
      const workflow = decodeURIComponent(wf[1]!);
      const all = repo.runs.filter((r) => r._workflow === workflow);
      if (all.length === 0 && !repo.runs.some((r) => r._workflow === workflow)) return notFound();
      const runs = all
        .filter((r) => !q.get('branch') || r.head_branch === q.get('branch'))
        .filter((r) => !q.get('status') || r.status === q.get('status'))
        .filter((r) => !q.get('event') || r.event === q.get('event'))
        .filter((r) => !q.get('head_sha') || r.head_sha === q.get('head_sha'))
        .sort((a, b) => Date.parse(String(b.created_at)) - Date.parse(String(a.created_at)) || Number(b.id) - Number(a.id));
      return reply(200, { total_count: runs.length, workflow_runs: runs.slice(0, perPage).map(({ _workflow, ...r }) => (void _workflow, r)) });
    }
    let br: RegExpExecArray | null;
    if ((br = /^branches\/([^/]+)\/protection$/.exec(rest))) {
      const p = repo.protection[decodeURIComponent(br[1]!)];
      return p ? reply(200, p) : notFound('Branch not protected');
    }
    if ((br = /^rules\/branches\/([^/]+)$/.exec(rest))) return reply(200, repo.rules[decodeURIComponent(br[1]!)] ?? []);
    if (rest === 'dependabot/alerts') {
      return paginate(repo.dependabot.filter((a) => !q.get('state') || a.state === q.get('state')));
    }
    if (rest === 'code-scanning/alerts') {
      if (repo.analyses.length === 0) return notFound('no analysis found');
      return paginate(
        repo.codeScanning
          .filter((a) => !q.get('state') || a.state === q.get('state'))
          .filter((a) => !q.get('tool_name') || (a.tool as { name: string }).name === q.get('tool_name'))
          .filter((a) => !q.get('ref') || (a.most_recent_instance as { ref: string }).ref === q.get('ref')),
      );
    }
    if (rest === 'code-scanning/analyses') {
      const list = repo.analyses
        .filter((a) => !q.get('tool_name') || (a.tool as { name: string }).name === q.get('tool_name'))
        .filter((a) => !q.get('ref') || a.ref === q.get('ref'))
        .sort((a, b) => (q.get('direction') === 'asc' ? 1 : -1) * (Date.parse(String(a.created_at)) - Date.parse(String(b.created_at))));
      if (list.length === 0) return notFound('no analysis found');
      return paginate(list);
    }
    return notFound();
  });
  return Object.assign(api, { repos, rateLimit });
}

// -------------------------------------------------------------------------------------------
// AWS Signature Version 4, verified with the AWS SDK's own signer (@smithy/signature-v4)
// -------------------------------------------------------------------------------------------

type SourceData = string | ArrayBuffer | ArrayBufferView;
const toBuffer = (d: SourceData): Buffer =>
  typeof d === 'string' ? Buffer.from(d) : ArrayBuffer.isView(d) ? Buffer.from(d.buffer, d.byteOffset, d.byteLength) : Buffer.from(d);

/** SHA-256 / HMAC-SHA-256 in the shape the signer wants, from node:crypto. */
class Sha256 {
  private h;
  constructor(secret?: SourceData) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: SourceData): void {
    this.h.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {}
}

export type SigV4Check = { ok: true; accessKeyId: string } | { ok: false; code: 'MissingAuthenticationToken' | 'InvalidClientTokenId' | 'SignatureDoesNotMatch'; accessKeyId?: string };

/**
 * Recomputes a request's SigV4 signature from the secret of its access key id, over exactly
 * the headers it says it signed, at the time it says it signed, and compares.
 */
export async function verifySigV4(seen: Seen, secrets: Record<string, string>, opts: { uriEscapePath: boolean }): Promise<SigV4Check> {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(seen.headers.authorization ?? '');
  if (!m) return { ok: false, code: 'MissingAuthenticationToken' };
  const [, accessKeyId, , region, service, signedHeaders, signature] = m as unknown as string[];
  const secretAccessKey = secrets[accessKeyId!];
  if (secretAccessKey === undefined) return { ok: false, code: 'InvalidClientTokenId', accessKeyId: accessKeyId! };
  const headers: Record<string, string> = {};
  for (const h of signedHeaders!.split(';')) headers[h] = String(seen.headers[h] ?? '');
  const url = new URL(seen.url, 'http://placeholder');
  const query: Record<string, string | string[]> = {};
  for (const k of new Set(url.searchParams.keys())) {
    const all = url.searchParams.getAll(k);
    query[k] = all.length > 1 ? all : all[0]!;
  }
  const amzDate = headers['x-amz-date'] ?? '';
  const signingDate = new Date(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
  const sessionToken = headers['x-amz-security-token'];
  const signer = new SignatureV4({
    credentials: { accessKeyId: accessKeyId!, secretAccessKey, ...(sessionToken && { sessionToken }) },
    region: region!,
    service: service!,
    sha256: Sha256,
    uriEscapePath: opts.uriEscapePath,
  });
  const [hostname, port] = (headers.host ?? '').split(':');
  const signed = await signer.sign(
    { method: seen.method, protocol: 'http:', hostname: hostname!, port: port ? Number(port) : undefined, path: url.pathname, query, headers, body: seen.body },
    { signingDate },
  );
  const expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization))?.[1];
  return expected === signature ? { ok: true, accessKeyId: accessKeyId! } : { ok: false, code: 'SignatureDoesNotMatch', accessKeyId: accessKeyId! };
}

// -------------------------------------------------------------------------------------------
// AWS STS (query protocol: form-encoded POST, XML answers)
// -------------------------------------------------------------------------------------------

export interface StsIdentity {
  secretAccessKey: string;
  account: string;
  arn: string;
  userId: string;
}

const STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/';

export function stsError(status: number, code: string, message: string): Special {
  return (_s, res) => {
    res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': '5f6a7b8c-0000-4000-8000-000000000001' });
    res.end(
      `<ErrorResponse xmlns="${STS_NS}">\n  <Error>\n    <Type>${status >= 500 ? 'Receiver' : 'Sender'}</Type>\n    <Code>${code}</Code>\n    <Message>${message}</Message>\n  </Error>\n  <RequestId>5f6a7b8c-0000-4000-8000-000000000001</RequestId>\n</ErrorResponse>\n`,
    );
  };
}

/** STS GetCallerIdentity with SigV4 verification against known access keys. */
export async function fakeSts(identities: Record<string, StsIdentity>): Promise<FakeApi> {
  const secrets = () => Object.fromEntries(Object.entries(identities).map(([k, v]) => [k, v.secretAccessKey]));
  const api = await fakeApi((s, res) => {
    void (async () => {
      const form = new URLSearchParams(s.body);
      if (s.method !== 'POST' || form.get('Action') !== 'GetCallerIdentity' || form.get('Version') !== '2011-06-15') {
        return stsError(400, 'InvalidAction', `Could not find operation ${form.get('Action')} for version ${form.get('Version')}`)(s, res);
      }
      const check = await verifySigV4(s, secrets(), { uriEscapePath: true });
      if (!check.ok) {
        if (check.code === 'MissingAuthenticationToken') return stsError(403, check.code, 'Request is missing Authentication Token')(s, res);
        if (check.code === 'InvalidClientTokenId') return stsError(403, check.code, 'The security token included in the request is invalid.')(s, res);
        return stsError(403, check.code, 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.')(s, res);
      }
      const id = identities[check.accessKeyId]!;
      res.writeHead(200, { 'content-type': 'text/xml', 'x-amzn-requestid': '01234567-89ab-cdef-0123-456789abcdef' });
      res.end(
        `<GetCallerIdentityResponse xmlns="${STS_NS}">\n  <GetCallerIdentityResult>\n    <Arn>${id.arn}</Arn>\n    <UserId>${id.userId}</UserId>\n    <Account>${id.account}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n`,
      );
    })();
  });
  return api;
}

// -------------------------------------------------------------------------------------------
// Stripe and OpenAI
// -------------------------------------------------------------------------------------------

const mask = (key: string) => `${key.slice(0, key.indexOf('_', 3) + 1)}${'*'.repeat(20)}${key.slice(-4)}`;

export function stripeAccount(id: string): Record<string, unknown> {
  return {
    id,
    object: 'account',
    business_profile: { mcc: '7372', name: 'OffGridFlow', url: 'https://offgridflow.com' },
    business_type: 'company',
    capabilities: { card_payments: 'active', transfers: 'active' },
    charges_enabled: true,
    country: 'US',
    created: 1690000000,
    default_currency: 'usd',
    details_submitted: true,
    email: 'billing@offgridflow.com',
    payouts_enabled: true,
    settings: { dashboard: { display_name: 'OffGridFlow', timezone: 'Etc/UTC' } },
    type: 'standard',
  };
}

/** Stripe GET /v1/account: `keys` maps a key to its account id, or to 'forbidden' for a restricted key without account access. */
export async function fakeStripe(keys: Record<string, string>): Promise<FakeApi> {
  return fakeApi((s, res) => {
    const auth = s.headers.authorization ?? '';
    const key = auth.startsWith('Bearer ') ? auth.slice(7) : auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString().replace(/:$/, '') : '';
    const requestId = { 'request-id': 'req_8PZm3n4k2Lq1', 'stripe-version': '2024-06-20' };
    if (s.url !== '/v1/account' || s.method !== 'GET') {
      return sendJson(res, 404, { error: { message: `Unrecognized request URL (${s.method}: ${s.url}).`, type: 'invalid_request_error' } }, requestId);
    }
    const acct = keys[key];
    if (acct === undefined) {
      return sendJson(res, 401, { error: { message: `Invalid API Key provided: ${mask(key || 'sk_live_none')}`, type: 'invalid_request_error' } }, { ...requestId, 'www-authenticate': 'Basic realm="Stripe"' });
    }
    if (acct === 'forbidden') {
      return sendJson(res, 403, {
        error: {
          message: `The provided key '${mask(key)}' does not have the required permissions for this endpoint on account 'acct_1OffGrid'. Having the 'rak_accounts_kyc_basic_read' permission would allow this request to continue.`,
          type: 'invalid_request_error',
        },
      }, requestId);
    }
    sendJson(res, 200, stripeAccount(acct), requestId);
  });
}

/** OpenAI GET /v1/models: `keys` maps a key to 'ok' or 'no-quota'. */
export async function fakeOpenAI(keys: Record<string, 'ok' | 'no-quota'>): Promise<FakeApi> {
  return fakeApi((s, res) => {
    const key = (s.headers.authorization ?? '').replace(/^Bearer /, '');
    if (s.url !== '/v1/models') return sendJson(res, 404, { error: { message: 'Invalid URL (GET /v1/x)', type: 'invalid_request_error', param: null, code: null } });
    const state = keys[key];
    if (state === undefined) {
      return sendJson(res, 401, {
        error: { message: `Incorrect API key provided: ${mask(key || 'sk-none')}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
      });
    }
    if (state === 'no-quota') {
      return sendJson(res, 429, {
        error: { message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' },
      });
    }
    sendJson(res, 200, {
      object: 'list',
      data: ['gpt-4o', 'gpt-4o-mini', 'text-embedding-3-small'].map((id, i) => ({ id, object: 'model', created: 1715367049 + i, owned_by: 'system' })),
    }, { 'openai-organization': 'user-offgridflow', 'openai-processing-ms': '31', 'x-request-id': 'req_7c1f0b' });
  });
}

// -------------------------------------------------------------------------------------------
// Azure AD (Microsoft identity platform v2.0 token endpoint)
// -------------------------------------------------------------------------------------------

export interface AzureApp {
  tenant: string;
  clientId: string;
  secret: string;
  expired?: boolean;
}

function aadError(status: number, error: string, code: number, description: string): Special {
  return (_s, res) =>
    sendJson(res, status, {
      error,
      error_description: `AADSTS${code}: ${description}\r\nTrace ID: 0d5e5f0a-1b2c-4d3e-9f40-5a6b7c8d9e00\r\nCorrelation ID: 6f7a8b9c-0d1e-4f20-8a3b-4c5d6e7f8091\r\nTimestamp: 2026-11-27 04:00:00Z`,
      error_codes: [code],
      timestamp: '2026-11-27 04:00:00Z',
      trace_id: '0d5e5f0a-1b2c-4d3e-9f40-5a6b7c8d9e00',
      correlation_id: '6f7a8b9c-0d1e-4f20-8a3b-4c5d6e7f8091',
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    });
}

export async function fakeAzureAd(apps: AzureApp[]): Promise<FakeApi> {
  return fakeApi((s, res) => {
    const m = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(s.url);
    if (!m || s.method !== 'POST') return answer.status(404)(s, res);
    const tenant = decodeURIComponent(m[1]!);
    const form = new URLSearchParams(s.body);
    if (form.get('grant_type') !== 'client_credentials' || !form.get('scope')) {
      return aadError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.")(s, res);
    }
    if (!apps.some((a) => a.tenant === tenant)) {
      return aadError(400, 'invalid_request', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`)(s, res);
    }
    const app = apps.find((a) => a.tenant === tenant && a.clientId === form.get('client_id'));
    if (!app) {
      return aadError(400, 'unauthorized_client', 700016, `Application with identifier '${form.get('client_id')}' was not found in the directory '${tenant}'.`)(s, res);
    }
    if (app.secret !== form.get('client_secret')) {
      return aadError(401, 'invalid_client', 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`)(s, res);
    }
    if (app.expired) return aadError(401, 'invalid_client', 7000222, `The provided client secret keys for app '${app.clientId}' are expired.`)(s, res);
    sendJson(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIn0.c2lnbmF0dXJl' });
  });
}

// -------------------------------------------------------------------------------------------
// Google OAuth 2.0 token endpoint (service-account JWT bearer grant)
// -------------------------------------------------------------------------------------------

/** Verifies the RS256 JWT assertion against each service account's public key. */
export async function fakeGoogleToken(accounts: Record<string, { publicKey: string; disabled?: boolean }>): Promise<FakeApi> {
  const api: FakeApi = await fakeApi((s, res) => {
    const bad = (error: string, description: string, status = 400) => sendJson(res, status, { error, error_description: description });
    if (s.method !== 'POST' || s.url !== '/token') return answer.status(404)(s, res);
    const form = new URLSearchParams(s.body);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return bad('unsupported_grant_type', 'Invalid grant_type: ' + form.get('grant_type'));
    const parts = (form.get('assertion') ?? '').split('.');
    if (parts.length !== 3) return bad('invalid_request', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.');
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString()) as Record<string, unknown>;
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as Record<string, unknown>;
    } catch {
      return bad('invalid_request', 'Invalid JWT: malformed.');
    }
    const account = accounts[String(claims.iss)];
    if (header.alg !== 'RS256') return bad('invalid_request', 'Invalid JWT: unsupported algorithm.');
    if (!account) return bad('invalid_grant', 'Invalid grant: account not found');
    const now = Date.now() / 1000;
    if (claims.aud !== `${api.url}/token` || typeof claims.scope !== 'string') return bad('invalid_grant', 'Invalid JWT: audience or scope.');
    if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || Math.abs(claims.iat - now) > 300 || claims.exp - claims.iat > 3600) {
      return bad('invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.');
    }
    const verified = createVerify('RSA-SHA256').update(`${parts[0]}.${parts[1]}`).verify(account.publicKey, Buffer.from(parts[2]!, 'base64url'));
    if (!verified) return bad('invalid_grant', 'Invalid JWT Signature.');
    if (account.disabled) return bad('invalid_grant', 'Invalid grant: account disabled');
    sendJson(res, 200, { access_token: 'ya29.c.b0AXv0zTPexampleexampleexample', expires_in: 3599, token_type: 'Bearer' });
  });
  return api;
}

// -------------------------------------------------------------------------------------------
// PagerDuty REST API v2
// -------------------------------------------------------------------------------------------

export interface PdShift {
  user: string;
  name: string;
  startMsAgo: number;
  /** Ms from now until the shift ends; null: no end. */
  endsInMs: number | null;
  level?: number;
}

export interface FakePagerDuty extends FakeApi {
  schedules: Record<string, { name: string; shifts: PdShift[] }>;
}

const pdRef = (type: string, id: string, summary: string) => ({
  id,
  type: `${type}_reference`,
  summary,
  self: `https://api.pagerduty.com/${type}s/${id}`,
  html_url: `https://offgridflow.pagerduty.com/${type}s/${id}`,
});

/** GET /oncalls and GET /schedules/:id with `Authorization: Token token=...`. */
export async function fakePagerDuty(token: string): Promise<FakePagerDuty> {
  const schedules: FakePagerDuty['schedules'] = {};
  const api = await fakeApi((s, res) => {
    const error = (status: number, message: string, code: number, errors?: string[]) => sendJson(res, status, { error: { message, code, ...(errors && { errors }) } });
    if (s.headers.authorization !== `Token token=${token}`) return error(401, 'Authentication failed', 2006);
    if (s.headers.accept !== 'application/vnd.pagerduty+json;version=2') return error(400, 'Invalid Input Provided', 2001, ['Accept header is invalid.']);
    const url = new URL(s.url, 'http://x');
    if (url.pathname === '/oncalls') {
      const ids = url.searchParams.getAll('schedule_ids[]');
      if (ids.some((id) => !/^[A-Z0-9]+$/.test(id))) return error(400, 'Invalid Input Provided', 2001, ['Schedule ids is invalid.']);
      const oncalls = ids.flatMap((id) =>
        (schedules[id]?.shifts ?? []).map((sh) => ({
          escalation_policy: pdRef('escalation_policy', 'PT20YPA', 'Engineering Escalation'),
          escalation_level: sh.level ?? 1,
          schedule: pdRef('schedule', id, schedules[id]!.name),
          user: pdRef('user', sh.user, sh.name),
          start: new Date(Date.now() - sh.startMsAgo).toISOString(),
          end: sh.endsInMs === null ? null : new Date(Date.now() + sh.endsInMs).toISOString(),
        })),
      );
      return sendJson(res, 200, { oncalls, limit: Number(url.searchParams.get('limit') ?? 25), offset: 0, more: false, total: null });
    }
    const m = /^\/schedules\/([^/]+)$/.exec(url.pathname);
    if (m) {
      const sch = schedules[m[1]!];
      if (!sch) return error(404, 'Not Found', 2100);
      return sendJson(res, 200, { schedule: { id: m[1], type: 'schedule', summary: sch.name, name: sch.name, time_zone: 'Europe/Berlin', html_url: `https://offgridflow.pagerduty.com/schedules/${m[1]}` } });
    }
    error(404, 'Not Found', 2100);
  });
  return Object.assign(api, { schedules });
}

// -------------------------------------------------------------------------------------------
// S3: s3rver (a real S3-compatible server) behind a proxy that verifies SigV4
// -------------------------------------------------------------------------------------------

export interface FakeS3 extends FakeApi {
  /** s3rver's own endpoint (no signature check): for seeding objects in tests. */
  direct: string;
  /** The directory s3rver stores objects in: `${dir}/${bucket}/${key}._S3rver_object`. */
  dir: string;
}

/** The access key s3rver itself knows; the proxy re-labels verified requests with it. */
export const S3RVER_KEY = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

function s3ErrorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>offgridflow-test</HostId></Error>`;
}

/**
 * s3rver with the given buckets, behind a proxy that checks each request's SigV4 signature
 * against `keys` (accessKeyId -> secret) with the SDK's own signer, then forwards it. s3rver
 * checks only that the access key exists, not the V4 signature: the proxy makes the
 * signature count.
 *
 * s3rver runs in a child process with --openssl-legacy-provider: it encrypts ListObjectsV2
 * continuation tokens with DES, which Node 20's OpenSSL 3 refuses otherwise (every truncated
 * listing would be a 500).
 */
export async function fakeS3(buckets: string[], keys: Record<string, string>, dir: string): Promise<FakeS3> {
  const { createRequire } = await import('node:module');
  const { request: httpRequest } = await import('node:http');
  const { spawn } = await import('node:child_process');
  const main = createRequire(import.meta.url).resolve('s3rver');
  const script = `
    const S3rver = require(${JSON.stringify(main)});
    const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: ${JSON.stringify(dir)},
      configureBuckets: ${JSON.stringify(buckets.map((name) => ({ name })))} });
    server.run().then(({ port }) => process.stdout.write(port + '\\n'));
    // The parent closing stdin (or dying) ends the server.
    process.stdin.on('end', () => server.close().finally(() => process.exit(0)));
    process.stdin.resume();`;
  // A bare environment: the test runner's NODE_OPTIONS hooks have no business in the child.
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'], env: { PATH: process.env.PATH } });
  const s3Port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}`)));
    child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  child.removeAllListeners('exit');
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  };
  const api = await fakeApi((s, res) => {
    void (async () => {
      const check = await verifySigV4(s, keys, { uriEscapePath: false });
      if (!check.ok) {
        const [code, message] =
          check.code === 'InvalidClientTokenId'
            ? ['InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.']
            : check.code === 'MissingAuthenticationToken'
              ? ['AccessDenied', 'Access Denied']
              : ['SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'];
        res.writeHead(403, { 'content-type': 'application/xml' });
        return void res.end(s3ErrorXml(code, message));
      }
      const headers = { ...s.headers, authorization: s.headers.authorization!.replace(/Credential=[^/]+\//, `Credential=${S3RVER_KEY.accessKeyId}/`) };
      const fwd = httpRequest({ host: '127.0.0.1', port: s3Port, method: s.method, path: s.url, headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      fwd.on('error', () => res.writeHead(502).end());
      fwd.end(s.body);
    })();
  });
  return {
    ...api,
    direct: `http://127.0.0.1:${s3Port}`,
    dir,
    close: async () => {
      await api.close();
      await stop();
    },
  };
}

// -------------------------------------------------------------------------------------------
// The shipped checklist
// -------------------------------------------------------------------------------------------

/** Loads probes/offgridflow.yaml with `env` and runs the checks `ids` once, as `readiness check` does. */
export async function runShipped(env: NodeJS.ProcessEnv, ids: readonly string[]): Promise<CheckView[]> {
  const loaded = await loadChecklistFile('probes/offgridflow.yaml', env);
  if (!loaded.ok) throw new Error(loaded.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`).join('\n'));
  const views = await runOnce(loaded.checklist, { store: new MemoryStore(), log: pino({ level: 'silent' }), env, only: ids, maxJitterMs: 0 });
  return views.filter((v) => ids.includes(v.def.id));
}
