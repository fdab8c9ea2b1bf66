// credential: is an API credential the application uses still accepted? Each provider's
// cheapest authenticated call: Stripe GET /v1/account (and the key must be live-mode), OpenAI
// GET /v1/models, AWS STS GetCallerIdentity (signed by the AWS SDK), Azure AD
// client-credentials token, Google service-account JWT exchanged for a token.
//
// Three outcomes stay apart: valid (pass), rejected by the provider (fail, reason `auth`),
// and not measured (error: unreachable, timeout, 5xx, garbage). Keys come from environment
// variables named in the params and never reach a field, a message or a log: providers'
// own error texts, which quote masked key fragments, are not repeated.
import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Type, type Static } from '@sinclair/typebox';
import type { Agent } from 'undici';
import { reasonFromError, type Reason } from '../reasons.js';
import { agentConnect } from './lease.js';
import { defineProbe, ProbeError, type Observation, type ProbeContext } from './types.js';
import { commonjs, lazy } from './lazy.js';
import { httpUrlProblem, scrubSecrets } from './shared.js';

const undici = lazy(() => import('undici').then(commonjs));
const sts = lazy(() => import('@aws-sdk/client-sts').then(commonjs));

export const PROVIDERS = ['stripe', 'openai', 'aws', 'azure', 'gcp'] as const;
type Provider = (typeof PROVIDERS)[number];

const ENV_NAME = { pattern: '^[A-Za-z_][A-Za-z0-9_]*$', 'x-hint': 'an environment variable name' };

const params = Type.Object(
  {
    provider: Type.Unsafe<Provider>({ type: 'string', enum: [...PROVIDERS], description: `Whose credential: ${PROVIDERS.join(' | ')}.` }),
    keyEnv: Type.Optional(
      Type.String({
        ...ENV_NAME,
        description:
          'Environment variable holding the secret: the Stripe or OpenAI key, the Azure client secret, the GCP service-account key JSON (defaults: STRIPE_SECRET_KEY, OPENAI_API_KEY, AZURE_CLIENT_SECRET; gcp: see keyFile).',
      }),
    ),
    baseUrl: Type.Optional(
      Type.String({
        description:
          "Provider endpoint override: API root (Stripe, OpenAI), STS endpoint (AWS), authority (Azure), token URL (GCP). Empty (an unset \"${STRIPE_API_URL:-}\"): the provider's own.",
      }),
    ),
    requireLiveMode: Type.Boolean({ default: true, description: 'stripe: a test-mode key (sk_test_, rk_test_) fails.' }),
    organization: Type.Optional(Type.String({ minLength: 1, description: 'openai: OpenAI-Organization header.' })),
    project: Type.Optional(Type.String({ minLength: 1, description: 'openai: OpenAI-Project header.' })),
    region: Type.String({ default: 'us-east-1', description: 'aws: STS region.' }),
    accessKeyIdEnv: Type.String({ ...ENV_NAME, default: 'AWS_ACCESS_KEY_ID', description: 'aws: variable holding the access key id.' }),
    secretAccessKeyEnv: Type.String({ ...ENV_NAME, default: 'AWS_SECRET_ACCESS_KEY', description: 'aws: variable holding the secret access key.' }),
    sessionTokenEnv: Type.String({ ...ENV_NAME, default: 'AWS_SESSION_TOKEN', description: 'aws: variable holding a session token (used when set).' }),
    tenantId: Type.Optional(Type.String({ minLength: 1, description: 'azure: directory (tenant) id, e.g. "${AZURE_TENANT_ID}".' })),
    clientId: Type.Optional(Type.String({ minLength: 1, description: 'azure: application (client) id, e.g. "${AZURE_CLIENT_ID}".' })),
    scope: Type.Optional(Type.String({ minLength: 1, description: 'azure, gcp: scope requested (defaults: https://management.azure.com/.default, https://www.googleapis.com/auth/cloud-platform).' })),
    keyFile: Type.Optional(Type.String({ minLength: 1, description: 'gcp: path of the service-account key JSON (default: $GOOGLE_APPLICATION_CREDENTIALS).' })),
  },
  { additionalProperties: false },
);
type Params = Static<typeof params>;

const DEFAULT_KEY_ENV: Partial<Record<Provider, string>> = { stripe: 'STRIPE_SECRET_KEY', openai: 'OPENAI_API_KEY', azure: 'AZURE_CLIENT_SECRET' };
const DEFAULT_BASE: Record<Provider, string | undefined> = {
  stripe: 'https://api.stripe.com',
  openai: 'https://api.openai.com',
  aws: undefined,
  azure: 'https://login.microsoftonline.com',
  gcp: 'https://oauth2.googleapis.com/token',
};
const ONLY: Partial<Record<keyof Params, Provider[]>> = {
  organization: ['openai'],
  project: ['openai'],
  tenantId: ['azure'],
  clientId: ['azure'],
  scope: ['azure', 'gcp'],
  keyFile: ['gcp'],
};

/** A credential problem found before asking anyone: the check is unconfigured. */
class Unconfigured extends ProbeError {
  constructor(message: string) {
    super('unconfigured', message);
  }
}

/** The provider refused the credential: a failure with reason auth (or rate-limited for quota). */
class Rejected extends Error {
  constructor(
    readonly reason: Reason,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

interface Valid {
  fields: Record<string, unknown>;
  summary: string;
}

function secret(ctx: ProbeContext, name: string, param: string): string {
  const v = ctx.env[name];
  if (!v) throw new Unconfigured(`environment variable ${name} (${param}) is not set`);
  return v;
}

interface Http {
  status: number;
  json: Record<string, unknown> | undefined;
}

/** One request; transport failures become ProbeErrors that name the endpoint, never the body. */
async function call(
  ctx: ProbeContext,
  agent: Agent,
  method: 'GET' | 'POST',
  url: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Http> {
  const shown = `${method} ${url.replace(/\?.*$/, '')}`;
  let status: number;
  let text: string;
  try {
    const { request } = await undici();
    const res = await request(url, { method, headers: { 'user-agent': 'readiness-exporter', ...headers }, body, signal: ctx.signal, dispatcher: agent });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    if (ctx.signal.aborted) throw new ProbeError('timeout', `${shown}: no answer before the check timeout (${ctx.timeoutMs} ms)`);
    const e = err as Error & { code?: string };
    throw new ProbeError(reasonFromError(e), `${shown}: ${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const obj = json !== null && typeof json === 'object' && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  if (status >= 500) throw new ProbeError('http-status', `${shown} answered ${status}`);
  if (obj === undefined) throw new ProbeError('protocol', `${shown} answered ${status} with something that is not a JSON object`);
  return { status, json: obj };
}

const o = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const s = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Stripe's and OpenAI's error object: `{error: {type, code}}`; its message quotes the key, so only type/code are kept. */
function apiError(name: string, r: Http): never {
  const e = o(r.json?.error);
  const kind = s(e.code) ?? s(e.type) ?? 'error';
  if (r.status === 401) throw new Rejected('auth', `${name} rejected the key (401 ${kind})`, r.status);
  if (r.status === 403) throw new Rejected('auth', `${name} accepted the key but refused the call (403 ${kind}): the key lacks a permission`, r.status);
  if (r.status === 429 && (kind === 'insufficient_quota' || kind === 'billing_hard_limit_reached')) {
    throw new Rejected('rate-limited', `${name} accepted the key but its quota is exhausted (429 ${kind})`, r.status);
  }
  if (r.status === 429) throw new ProbeError('rate-limited', `${name} answered 429 (${kind}): try a longer interval`);
  throw new ProbeError('http-status', `${name} answered ${r.status} (${kind})`);
}

async function stripe(p: Params, ctx: ProbeContext, agent: Agent, key: string): Promise<Valid> {
  const mode = /^(sk|rk)_(live|test)_/.exec(key);
  const r = await call(ctx, agent, 'GET', `${base(p)}/v1/account`, { authorization: `Bearer ${key}` });
  if (r.status !== 200) apiError('Stripe', r);
  const acct = r.json!;
  if (acct.object !== 'account' || typeof acct.id !== 'string') throw new ProbeError('protocol', 'Stripe GET /v1/account answered without an account object');
  const live = mode?.[2] === 'live';
  const fields = { valid: true, live_mode: live, account: acct.id, charges_enabled: acct.charges_enabled === true, payouts_enabled: acct.payouts_enabled === true };
  if (p.requireLiveMode && !live) {
    const kind = mode ? `a test-mode ${mode[1] === 'rk' ? 'restricted' : 'secret'} key (${mode[1]}_test_...)` : 'not a Stripe secret or restricted key (sk_live_/rk_live_)';
    throw Object.assign(new Rejected('auth', `Stripe accepted the key for ${acct.id}, but it is ${kind}: production needs a live-mode key`, 200), { fields });
  }
  return { fields, summary: `Stripe account ${acct.id}, ${live ? 'live' : 'test'} mode, charges ${fields.charges_enabled ? 'enabled' : 'disabled'}` };
}

async function openai(p: Params, ctx: ProbeContext, agent: Agent, key: string): Promise<Valid> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (p.organization) headers['openai-organization'] = p.organization;
  if (p.project) headers['openai-project'] = p.project;
  const r = await call(ctx, agent, 'GET', `${base(p)}/v1/models`, headers);
  if (r.status !== 200) apiError('OpenAI', r);
  const data = r.json!.data;
  if (!Array.isArray(data)) throw new ProbeError('protocol', 'OpenAI GET /v1/models answered without a data list');
  return { fields: { models: data.length }, summary: `OpenAI key lists ${data.length} models` };
}

async function aws(p: Params, ctx: ProbeContext): Promise<Valid> {
  const accessKeyId = secret(ctx, p.accessKeyIdEnv, 'accessKeyIdEnv');
  const secretAccessKey = secret(ctx, p.secretAccessKeyEnv, 'secretAccessKeyEnv');
  const sessionToken = ctx.env[p.sessionTokenEnv] || undefined;
  const { GetCallerIdentityCommand, STSClient } = await sts();
  const client = new STSClient({
    region: p.region,
    ...(p.baseUrl && { endpoint: p.baseUrl }),
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken && { sessionToken }) },
    // One attempt: the scheduler's next run is the retry, and a rejected key must not be hammered.
    maxAttempts: 1,
  });
  const where = `STS GetCallerIdentity (${p.baseUrl || p.region})`;
  try {
    const out = await client.send(new GetCallerIdentityCommand({}), { abortSignal: ctx.signal });
    if (!out.Account || !out.Arn) throw new ProbeError('protocol', `${where} answered without Account and Arn`);
    return { fields: { account: out.Account, arn: out.Arn }, summary: `AWS credentials of ${out.Arn}` };
  } catch (err) {
    if (err instanceof ProbeError) throw err;
    if (ctx.signal.aborted) throw new ProbeError('timeout', `${where}: no answer before the check timeout (${ctx.timeoutMs} ms)`);
    const e = err as Error & { $metadata?: { httpStatusCode?: number }; $fault?: string; code?: string; Code?: string };
    const status = e.$metadata?.httpStatusCode;
    // The SDK names a service error by its code (InvalidClientTokenId, SignatureDoesNotMatch,
    // ExpiredToken, AccessDenied); its message never contains the key.
    if (status === 401 || status === 403) throw new Rejected('auth', `AWS rejected the credentials: ${e.name} (${status}): ${e.message}`, status);
    if (status === 400 && /ExpiredToken|InvalidClientTokenId|SignatureDoesNotMatch|IncompleteSignature/.test(e.name)) {
      throw new Rejected('auth', `AWS rejected the credentials: ${e.name} (400): ${e.message}`, status);
    }
    if (status === 429 || e.name === 'Throttling') throw new ProbeError('rate-limited', `${where}: throttled (${e.name})`);
    if (status !== undefined && status >= 500) throw new ProbeError('http-status', `${where} answered ${status} (${e.name})`);
    if (status !== undefined) throw new ProbeError('protocol', `${where} answered ${status}: ${e.name}: ${e.message.slice(0, 200)}`);
    const reason = reasonFromError(e);
    throw new ProbeError(reason === 'error' ? 'protocol' : reason, `${where}: ${e.message.slice(0, 200)}${e.code ? ` (${e.code})` : ''}`);
  } finally {
    client.destroy();
  }
}

/** The first line of an OAuth error_description: AADSTS descriptions append trace ids and timestamps. */
function firstLine(v: unknown): string {
  return (s(v) ?? '').split(/\r?\n/)[0]!.trim().slice(0, 200);
}

async function azure(p: Params, ctx: ProbeContext, agent: Agent, clientSecret: string): Promise<Valid> {
  const tenant = encodeURIComponent(p.tenantId!);
  const url = `${base(p)}/${tenant}/oauth2/v2.0/token`;
  const form = new URLSearchParams({ client_id: p.clientId!, scope: p.scope ?? 'https://management.azure.com/.default', client_secret: clientSecret, grant_type: 'client_credentials' });
  const r = await call(ctx, agent, 'POST', url, { 'content-type': 'application/x-www-form-urlencoded' }, form.toString());
  if (r.status === 200) {
    if (typeof r.json!.access_token !== 'string') throw new ProbeError('protocol', 'Azure AD answered 200 without an access_token');
    const expires = Number(r.json!.expires_in);
    return { fields: { expires_in: expires }, summary: `Azure AD issued a token for client ${p.clientId} in tenant ${p.tenantId}` };
  }
  if ((r.status === 400 || r.status === 401) && typeof r.json!.error === 'string') {
    throw new Rejected('auth', `Azure AD refused the client credentials (${r.status} ${r.json!.error}): ${firstLine(r.json!.error_description)}`, r.status);
  }
  if (r.status === 429) throw new ProbeError('rate-limited', 'Azure AD answered 429: try a longer interval');
  throw new ProbeError('http-status', `Azure AD token endpoint answered ${r.status}`);
}

interface ServiceAccountKey {
  client_email: string;
  private_key: string;
  private_key_id?: string;
  token_uri?: string;
}

async function gcpKey(p: Params, ctx: ProbeContext): Promise<ServiceAccountKey> {
  let text: string;
  let from: string;
  if (p.keyEnv) {
    text = secret(ctx, p.keyEnv, 'keyEnv');
    from = `environment variable ${p.keyEnv}`;
  } else {
    const file = p.keyFile ?? ctx.env.GOOGLE_APPLICATION_CREDENTIALS;
    if (!file) throw new Unconfigured('no service-account key: set keyFile, keyEnv or GOOGLE_APPLICATION_CREDENTIALS');
    from = `key file ${file}`;
    try {
      text = await readFile(file, { encoding: 'utf8', signal: ctx.signal });
    } catch (err) {
      throw new Unconfigured(`cannot read the service-account ${from}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  let key: unknown;
  try {
    key = JSON.parse(text);
  } catch {
    throw new Rejected('auth', `the service-account key in ${from} is not JSON`);
  }
  const k = o(key);
  if (k.type !== 'service_account' || typeof k.client_email !== 'string' || typeof k.private_key !== 'string') {
    throw new Rejected('auth', `the key in ${from} is not a service-account key (type service_account with client_email and private_key)`);
  }
  return k as unknown as ServiceAccountKey;
}

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');

async function gcp(p: Params, ctx: ProbeContext, agent: Agent): Promise<Valid> {
  const key = await gcpKey(p, ctx);
  const tokenUri = key.token_uri ?? DEFAULT_BASE.gcp!;
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', typ: 'JWT', ...(key.private_key_id && { kid: key.private_key_id }) };
  const claims = { iss: key.client_email, scope: p.scope ?? 'https://www.googleapis.com/auth/cloud-platform', aud: tokenUri, iat: now, exp: now + 3600 };
  const unsigned = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  let signature: string;
  try {
    signature = createSign('RSA-SHA256').update(unsigned).sign(key.private_key, 'base64url');
  } catch {
    throw new Rejected('auth', `the private key of ${key.client_email} is not a usable RSA key`);
  }
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: `${unsigned}.${signature}` });
  const r = await call(ctx, agent, 'POST', p.baseUrl || tokenUri, { 'content-type': 'application/x-www-form-urlencoded' }, form.toString());
  const fields = { client_email: key.client_email };
  if (r.status === 200) {
    if (typeof r.json!.access_token !== 'string') throw new ProbeError('protocol', 'Google answered 200 without an access_token');
    return { fields: { ...fields, expires_in: Number(r.json!.expires_in) }, summary: `Google issued a token for ${key.client_email}` };
  }
  if ((r.status === 400 || r.status === 401 || r.status === 403) && typeof r.json!.error === 'string') {
    throw Object.assign(new Rejected('auth', `Google refused the service-account key of ${key.client_email} (${r.status} ${r.json!.error}): ${firstLine(r.json!.error_description)}`, r.status), { fields });
  }
  if (r.status === 429) throw new ProbeError('rate-limited', 'Google token endpoint answered 429: try a longer interval');
  throw new ProbeError('http-status', `Google token endpoint answered ${r.status}`);
}

function base(p: Params): string {
  return (p.baseUrl || DEFAULT_BASE[p.provider]!).replace(/\/+$/, '');
}

/** Every secret a run handled, longest first, to scrub from anything it returns. */
function secretsOf(p: Params, ctx: ProbeContext): string[] {
  const names = [p.keyEnv ?? DEFAULT_KEY_ENV[p.provider], ...(p.provider === 'aws' ? [p.secretAccessKeyEnv, p.sessionTokenEnv] : [])];
  return names
    .map((n) => (n ? ctx.env[n] : undefined))
    .filter((v): v is string => typeof v === 'string' && v.length >= 8)
    .sort((a, b) => b.length - a.length);
}

export default defineProbe({
  kind: 'credential',
  description: "Whether an API credential is accepted: the provider's cheapest authenticated call (Stripe, OpenAI, AWS STS, Azure AD, Google).",
  params,
  secretParams: [],
  fields: {
    valid: { type: 'boolean', description: 'The provider accepted the credential (false: rejected; absent: not measured).' },
    status: { type: 'number', description: "HTTP status of the provider's answer." },
    duration_ms: { type: 'number', unit: 'ms', description: 'Time of the call.' },
    live_mode: { type: 'boolean', description: 'stripe: the key is a live-mode key (sk_live_, rk_live_).' },
    account: { type: 'string', description: 'stripe: account id (acct_...); aws: the 12-digit account.' },
    charges_enabled: { type: 'boolean', description: 'stripe: the account can take charges.' },
    payouts_enabled: { type: 'boolean', description: 'stripe: the account can pay out.' },
    models: { type: 'number', description: 'openai: models the key can list.' },
    arn: { type: 'string', description: 'aws: the caller identity ARN.' },
    expires_in: { type: 'number', description: 'azure, gcp: lifetime of the issued token in seconds.' },
    client_email: { type: 'string', description: 'gcp: the service account.' },
  },

  missingConfig(p, env) {
    if (p.provider !== 'gcp' || p.keyEnv || p.keyFile || env.GOOGLE_APPLICATION_CREDENTIALS) return [];
    return [{ variable: 'GOOGLE_APPLICATION_CREDENTIALS', alternative: 'the keyFile or keyEnv param', message: 'no service-account key: set keyFile, keyEnv or GOOGLE_APPLICATION_CREDENTIALS' }];
  },
  // A GCP key signs the token request, never sent itself; its private key is still masked
  // wherever it might be quoted (the key JSON in keyEnv is masked whole as a variable's value).
  secrets(p, env) {
    if (p.provider !== 'gcp') return [];
    const file = p.keyFile ?? env.GOOGLE_APPLICATION_CREDENTIALS;
    const text = p.keyEnv ? (env[p.keyEnv] ?? '') : file ? readFileSync(file, 'utf8') : '';
    const key = JSON.parse(text) as { private_key?: unknown; private_key_id?: unknown };
    return [key.private_key, key.private_key_id].filter((v): v is string => typeof v === 'string');
  },
  requiredEnv(p) {
    if (p.provider === 'aws') return [p.accessKeyIdEnv, p.secretAccessKeyEnv];
    // gcp may also read keyFile or GOOGLE_APPLICATION_CREDENTIALS: only an explicit keyEnv is required.
    const name = p.keyEnv ?? DEFAULT_KEY_ENV[p.provider];
    return name ? [name] : [];
  },
  validate(p) {
    const problems: string[] = [];
    for (const [k, providers] of Object.entries(ONLY)) {
      if (p[k as keyof Params] !== undefined && !providers.includes(p.provider)) problems.push(`${k} applies to provider ${providers.join(', ')} only`);
    }
    if (p.provider === 'azure') for (const k of ['tenantId', 'clientId'] as const) if (!p[k]) problems.push(`provider azure needs ${k}`);
    if (p.provider === 'aws' && p.keyEnv) problems.push('provider aws takes accessKeyIdEnv and secretAccessKeyEnv, not keyEnv');
    if (p.provider === 'gcp' && p.keyEnv && p.keyFile) problems.push('set either keyEnv or keyFile, not both');
    const bad = p.baseUrl ? httpUrlProblem('baseUrl', p.baseUrl) : undefined;
    if (bad) problems.push(bad);
    return problems;
  },

  load: (p) => (p.provider === 'aws' ? sts() : undici()),

  async run(p, ctx): Promise<Observation> {
    const secrets = secretsOf(p, ctx);
    const started = performance.now();
    const backstop = ctx.timeoutMs * 2;
    const { Agent } = await undici();
    const agent = new Agent({ connect: await agentConnect({ timeout: backstop }, ctx), headersTimeout: backstop, bodyTimeout: backstop });
    const took = () => ({ duration_ms: performance.now() - started });
    try {
      let v: Valid;
      const keyEnv = p.keyEnv ?? DEFAULT_KEY_ENV[p.provider];
      switch (p.provider) {
        case 'stripe':
          v = await stripe(p, ctx, agent, secret(ctx, keyEnv!, 'keyEnv'));
          break;
        case 'openai':
          v = await openai(p, ctx, agent, secret(ctx, keyEnv!, 'keyEnv'));
          break;
        case 'aws':
          v = await aws(p, ctx);
          break;
        case 'azure':
          v = await azure(p, ctx, agent, secret(ctx, keyEnv!, 'keyEnv'));
          break;
        case 'gcp':
          v = await gcp(p, ctx, agent);
          break;
      }
      return { value: 1, fields: { valid: true, status: 200, ...v.fields, ...took() }, message: scrubSecrets(v.summary, secrets) };
    } catch (err) {
      if (err instanceof Rejected) {
        const extra = (err as Rejected & { fields?: Record<string, unknown> }).fields ?? {};
        const fields = { valid: false, ...(err.status !== undefined && { status: err.status }), ...extra, ...took() };
        return { value: 0, fields, failure: { reason: err.reason, message: scrubSecrets(err.message, secrets) } };
      }
      if (err instanceof ProbeError) {
        const scrubbed = scrubSecrets(err.message, secrets);
        if (err.reason === 'timeout') throw new ProbeError('timeout', scrubbed);
        return { fields: {}, error: { reason: err.reason, message: scrubbed } };
      }
      // Not ours: never let an unknown error carry a key into a log.
      throw new ProbeError('error', scrubSecrets(err instanceof Error ? err.message : String(err), secrets));
    } finally {
      await agent.destroy();
    }
  },
});
