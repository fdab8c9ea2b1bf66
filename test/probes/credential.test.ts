// credential probe against local servers speaking Stripe, OpenAI, AWS STS (SigV4 verified
// with the SDK's signer), Azure AD and Google's token endpoint.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import pino from 'pino';
import t from 'tap';
import credentialProbe from '../../src/probes/credential.js';
import { ProbeError, type Observation } from '../../src/probes/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { answer, fakeAzureAd, fakeGoogleToken, fakeOpenAI, fakeStripe, fakeSts, stsError, type FakeApi } from '../helpers/fake-apis.js';
import { closedPort } from '../helpers/listeners.js';

const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(credentialProbe.params);
type Params = Static<typeof credentialProbe.params>;
function params(input: Record<string, unknown>): Params {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Params;
}

// Every secret of this file: none may appear in an observation or a log line.
const STRIPE_LIVE = 'sk_live_51OffGridLiveKeyValue0000000000abcd';
const STRIPE_TEST = 'sk_test_51OffGridTestKeyValue0000000000efgh';
const STRIPE_RESTRICTED = 'rk_live_51OffGridRestrictedKey00000000ijkl';
const STRIPE_WRONG = 'sk_live_51OffGridRevokedKeyValue000000mnop';
const OPENAI_KEY = 'sk-proj-OffGridOpenAIKeyValue00000000qrst';
const OPENAI_BROKE = 'sk-proj-OffGridNoQuotaKeyValue0000000uvwx';
const AWS_ID = 'AKIAOFFGRIDEXAMPLE01';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYOFFGRIDKEY';
const AZURE_SECRET = 'Azu~reClientSecretValue.0000000000yz';
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
const other = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
const SECRETS = [STRIPE_LIVE, STRIPE_TEST, STRIPE_RESTRICTED, STRIPE_WRONG, OPENAI_KEY, OPENAI_BROKE, AWS_SECRET, AZURE_SECRET, privateKey.split('\n')[5]!];

const servers: FakeApi[] = [];
t.teardown(() => Promise.all(servers.map((s) => s.close())));
const track = async (s: Promise<FakeApi>) => {
  const api = await s;
  servers.push(api);
  return api;
};

const stripe = await track(fakeStripe({ [STRIPE_LIVE]: 'acct_1OffGridLive', [STRIPE_TEST]: 'acct_1OffGridLive', [STRIPE_RESTRICTED]: 'forbidden' }));
const openai = await track(fakeOpenAI({ [OPENAI_KEY]: 'ok', [OPENAI_BROKE]: 'no-quota' }));
const sts = await track(fakeSts({ [AWS_ID]: { secretAccessKey: AWS_SECRET, account: '123456789012', arn: 'arn:aws:iam::123456789012:user/offgridflow-app', userId: 'AIDAOFFGRIDEXAMPLE' } }));
const azure = await track(
  fakeAzureAd([
    { tenant: 'offgridflow.onmicrosoft.com', clientId: '11111111-2222-3333-4444-555555555555', secret: AZURE_SECRET },
    { tenant: 'offgridflow.onmicrosoft.com', clientId: 'expired-app', secret: AZURE_SECRET, expired: true },
  ]),
);
const google = await track(
  fakeGoogleToken({ 'readiness@offgridflow.iam.gserviceaccount.com': { publicKey }, 'disabled@offgridflow.iam.gserviceaccount.com': { publicKey, disabled: true } }),
);

const dir = mkdtempSync(join(tmpdir(), 'credential-probe-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
function gcpKey(email: string, key = privateKey): string {
  return JSON.stringify({
    type: 'service_account',
    project_id: 'offgridflow-prod',
    private_key_id: '8f1d2c3b4a5e6f708192a3b4c5d6e7f8091a2b3c',
    private_key: key,
    client_email: email,
    client_id: '109876543210987654321',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: `${google.url}/token`,
    auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
    universe_domain: 'googleapis.com',
  });
}
const keyFile = join(dir, 'sa.json');
writeFileSync(keyFile, gcpKey('readiness@offgridflow.iam.gserviceaccount.com'));

const ENV = {
  STRIPE_SECRET_KEY: STRIPE_LIVE,
  STRIPE_TEST_KEY: STRIPE_TEST,
  STRIPE_RESTRICTED_KEY: STRIPE_RESTRICTED,
  STRIPE_OLD_KEY: STRIPE_WRONG,
  OPENAI_API_KEY: OPENAI_KEY,
  OPENAI_BROKE_KEY: OPENAI_BROKE,
  AWS_ACCESS_KEY_ID: AWS_ID,
  AWS_SECRET_ACCESS_KEY: AWS_SECRET,
  AWS_WRONG_SECRET: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY00',
  UNKNOWN_AWS_ID: 'AKIAUNKNOWNEXAMPLE00',
  AZURE_CLIENT_SECRET: AZURE_SECRET,
  AZURE_WRONG_SECRET: 'Wrong~SecretValue.000000000000000000',
  GOOGLE_APPLICATION_CREDENTIALS: keyFile,
  GCP_KEY_JSON: gcpKey('readiness@offgridflow.iam.gserviceaccount.com'),
  GCP_ROTATED_KEY: gcpKey('readiness@offgridflow.iam.gserviceaccount.com', other.privateKey),
  GCP_DISABLED_KEY: gcpKey('disabled@offgridflow.iam.gserviceaccount.com'),
  GCP_GARBAGE_KEY: '{"type": "authorized_user", "refresh_token": "1//0gOffGridRefreshTokenValue"}',
};

/** Everything logged at any level during the file's runs. */
const logged: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    logged.push(chunk.toString());
    cb();
  },
});
const observations: Observation[] = [];

async function run(p: Record<string, unknown>, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Observation> {
  const ctx = { ...makeCtx({ env: opts.env ?? ENV, timeoutMs: opts.timeoutMs ?? 5000 }), log: pino({ level: 'trace' }, sink) };
  const obs = await credentialProbe.run(params(p), ctx);
  observations.push(obs);
  return obs;
}

const AZURE = { provider: 'azure', tenantId: 'offgridflow.onmicrosoft.com', clientId: '11111111-2222-3333-4444-555555555555' };

t.test('valid credentials pass, one per provider', async (t) => {
  const table: [string, Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    ['stripe', { provider: 'stripe', baseUrl: stripe.url }, { valid: true, live_mode: true, account: 'acct_1OffGridLive', charges_enabled: true }, /^Stripe account acct_1OffGridLive, live mode, charges enabled$/],
    ['openai', { provider: 'openai', baseUrl: openai.url, project: 'proj_offgrid' }, { valid: true, models: 3 }, /^OpenAI key lists 3 models$/],
    ['aws', { provider: 'aws', baseUrl: sts.url }, { valid: true, account: '123456789012', arn: 'arn:aws:iam::123456789012:user/offgridflow-app' }, /^AWS credentials of arn:aws:iam::123456789012:user\/offgridflow-app$/],
    ['azure', { ...AZURE, baseUrl: azure.url }, { valid: true, expires_in: 3599 }, /^Azure AD issued a token for client 11111111-2222-3333-4444-555555555555 in tenant offgridflow\.onmicrosoft\.com$/],
    ['gcp, key file from GOOGLE_APPLICATION_CREDENTIALS', { provider: 'gcp' }, { valid: true, client_email: 'readiness@offgridflow.iam.gserviceaccount.com', expires_in: 3599 }, /^Google issued a token for readiness@/],
    ['gcp, key JSON from keyEnv', { provider: 'gcp', keyEnv: 'GCP_KEY_JSON' }, { valid: true, expires_in: 3599 }, /^Google issued a token/],
  ];
  for (const [name, p, fields, message] of table) {
    const obs = await run(p);
    t.equal(obs.error, undefined, `${name}: measured`);
    t.equal(obs.failure, undefined, `${name}: passes`);
    t.equal(obs.value, 1, `${name}: value`);
    t.match(obs.fields, { ...fields, status: 200 }, `${name}: fields`);
    t.type(obs.fields.duration_ms, 'number');
    t.match(obs.message, message, `${name}: message`);
  }
  t.equal(openai.seen.at(-1)!.headers['openai-project'], 'proj_offgrid');
  t.match(sts.seen.at(-1)!.headers.authorization, /^AWS4-HMAC-SHA256 Credential=AKIAOFFGRIDEXAMPLE01\/\d{8}\/us-east-1\/sts\/aws4_request/, 'signed by the SDK, verified by the server');
});

t.test('rejected credentials fail with reason auth', async (t) => {
  const table: [string, Record<string, unknown>, NodeJS.ProcessEnv | undefined, number, RegExp][] = [
    ['stripe revoked key', { provider: 'stripe', baseUrl: stripe.url, keyEnv: 'STRIPE_OLD_KEY' }, undefined, 401, /^Stripe rejected the key \(401 invalid_request_error\)$/],
    ['stripe restricted key without account access', { provider: 'stripe', baseUrl: stripe.url, keyEnv: 'STRIPE_RESTRICTED_KEY' }, undefined, 403, /^Stripe accepted the key but refused the call \(403 invalid_request_error\): the key lacks a permission$/],
    ['openai wrong key', { provider: 'openai', baseUrl: openai.url }, { OPENAI_API_KEY: 'sk-proj-notAKeyThatExists0000000Zq9w' }, 401, /^OpenAI rejected the key \(401 invalid_api_key\)$/],
    ['aws unknown access key', { provider: 'aws', baseUrl: sts.url, accessKeyIdEnv: 'UNKNOWN_AWS_ID' }, undefined, 403, /^AWS rejected the credentials: InvalidClientTokenId \(403\): The security token included in the request is invalid\.$/],
    ['aws wrong secret (signature)', { provider: 'aws', baseUrl: sts.url, secretAccessKeyEnv: 'AWS_WRONG_SECRET' }, undefined, 403, /^AWS rejected the credentials: SignatureDoesNotMatch \(403\): The request signature we calculated does not match/],
    ['azure wrong secret', { ...AZURE, baseUrl: azure.url, keyEnv: 'AZURE_WRONG_SECRET' }, undefined, 401, /^Azure AD refused the client credentials \(401 invalid_client\): AADSTS7000215: Invalid client secret provided\. Ensure/],
    ['azure expired secret', { ...AZURE, clientId: 'expired-app', baseUrl: azure.url }, undefined, 401, /AADSTS7000222: The provided client secret keys for app 'expired-app' are expired\.$/],
    ['azure unknown tenant', { ...AZURE, tenantId: 'nope.onmicrosoft.com', baseUrl: azure.url }, undefined, 400, /\(400 invalid_request\): AADSTS90002: Tenant 'nope\.onmicrosoft\.com' not found\./],
    ['azure unknown app', { ...AZURE, clientId: 'no-such-app', baseUrl: azure.url }, undefined, 400, /\(400 unauthorized_client\): AADSTS700016: Application with identifier 'no-such-app' was not found/],
    ['gcp rotated key (bad signature)', { provider: 'gcp', keyEnv: 'GCP_ROTATED_KEY' }, undefined, 400, /^Google refused the service-account key of readiness@offgridflow\.iam\.gserviceaccount\.com \(400 invalid_grant\): Invalid JWT Signature\.$/],
    ['gcp disabled account', { provider: 'gcp', keyEnv: 'GCP_DISABLED_KEY' }, undefined, 400, /\(400 invalid_grant\): Invalid grant: account disabled$/],
  ];
  for (const [name, p, env, status, message] of table) {
    const obs = await run(p, { env: env ?? ENV });
    t.equal(obs.error, undefined, `${name}: measured`);
    t.equal(obs.failure?.reason, 'auth', `${name}: reason`);
    t.match(obs.failure?.message, message, `${name}: message`);
    t.equal(obs.fields.valid, false, `${name}: valid false`);
    t.equal(obs.fields.status, status, `${name}: status`);
    t.equal(obs.value, 0, `${name}: value 0`);
  }
  t.equal(stripe.seen.filter((s) => s.headers.authorization === `Bearer ${STRIPE_WRONG}`).length, 1, 'one request per run, no retries');
});

t.test('stripe: a working test-mode key is not a production key', async (t) => {
  const obs = await run({ provider: 'stripe', baseUrl: stripe.url, keyEnv: 'STRIPE_TEST_KEY' });
  t.equal(obs.failure?.reason, 'auth');
  t.equal(obs.failure?.message, 'Stripe accepted the key for acct_1OffGridLive, but it is a test-mode secret key (sk_test_...): production needs a live-mode key');
  t.match(obs.fields, { valid: true, live_mode: false, account: 'acct_1OffGridLive' });
  const allowed = await run({ provider: 'stripe', baseUrl: stripe.url, keyEnv: 'STRIPE_TEST_KEY', requireLiveMode: false });
  t.equal(allowed.failure, undefined, 'requireLiveMode: false accepts it');
  t.match(allowed.message, /test mode/);
});

t.test('openai: a valid key without quota', async (t) => {
  const obs = await run({ provider: 'openai', baseUrl: openai.url, keyEnv: 'OPENAI_BROKE_KEY' });
  t.same(obs.failure, { reason: 'rate-limited', message: 'OpenAI accepted the key but its quota is exhausted (429 insufficient_quota)' });
});

t.test('gcp: unusable keys fail without a request', async (t) => {
  const before = google.seen.length;
  const notSa = await run({ provider: 'gcp', keyEnv: 'GCP_GARBAGE_KEY' });
  t.same(notSa.failure, { reason: 'auth', message: 'the key in environment variable GCP_GARBAGE_KEY is not a service-account key (type service_account with client_email and private_key)' });
  const notJson = await run({ provider: 'gcp', keyEnv: 'GCP_KEY_JSON' }, { env: { GCP_KEY_JSON: 'not json at all, a secret-looking string' } });
  t.equal(notJson.failure?.message, 'the service-account key in environment variable GCP_KEY_JSON is not JSON');
  const badPem = await run({ provider: 'gcp', keyEnv: 'K' }, { env: { K: JSON.stringify({ type: 'service_account', client_email: 'x@y.iam.gserviceaccount.com', private_key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', token_uri: `${google.url}/token` }) } });
  t.equal(badPem.failure?.message, 'the private key of x@y.iam.gserviceaccount.com is not a usable RSA key');
  t.equal(google.seen.length, before);
});

t.test('missing configuration: unconfigured, nothing sent', async (t) => {
  const table: [Record<string, unknown>, NodeJS.ProcessEnv, string][] = [
    [{ provider: 'stripe', baseUrl: stripe.url }, {}, 'environment variable STRIPE_SECRET_KEY (keyEnv) is not set'],
    [{ provider: 'openai', baseUrl: openai.url, keyEnv: 'OPENAI_PROD_KEY' }, { OPENAI_PROD_KEY: '' }, 'environment variable OPENAI_PROD_KEY (keyEnv) is not set'],
    [{ provider: 'aws', baseUrl: sts.url }, { AWS_ACCESS_KEY_ID: AWS_ID }, 'environment variable AWS_SECRET_ACCESS_KEY (secretAccessKeyEnv) is not set'],
    [{ ...AZURE, baseUrl: azure.url }, {}, 'environment variable AZURE_CLIENT_SECRET (keyEnv) is not set'],
    [{ provider: 'gcp' }, {}, 'no service-account key: set keyFile, keyEnv or GOOGLE_APPLICATION_CREDENTIALS'],
    [{ provider: 'gcp', keyFile: join(dir, 'missing.json') }, {}, `cannot read the service-account key file ${join(dir, 'missing.json')}: ENOENT`],
  ];
  const before = servers.map((s) => s.seen.length);
  for (const [p, env, message] of table) t.same((await run(p, { env })).error, { reason: 'unconfigured', message });
  t.same(servers.map((s) => s.seen.length), before, 'no request went out');
});

t.test('could not measure: 5xx, 429, garbage, refused, timeout', async (t) => {
  stripe.queue(answer.json(500, { error: { type: 'api_error', message: 'An unknown error occurred' } }));
  t.same((await run({ provider: 'stripe', baseUrl: stripe.url })).error, { reason: 'http-status', message: `GET ${stripe.url}/v1/account answered 500` });
  stripe.queue(answer.json(429, { error: { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests' } }, { 'retry-after': 1 }));
  t.same((await run({ provider: 'stripe', baseUrl: stripe.url })).error, { reason: 'rate-limited', message: 'Stripe answered 429 (rate_limit): try a longer interval' });
  openai.queue(answer.garbage());
  t.same((await run({ provider: 'openai', baseUrl: openai.url })).error, { reason: 'protocol', message: `GET ${openai.url}/v1/models answered 200 with something that is not a JSON object` });
  openai.queue(answer.json(200, { object: 'list' }));
  t.same((await run({ provider: 'openai', baseUrl: openai.url })).error, { reason: 'protocol', message: 'OpenAI GET /v1/models answered without a data list' });
  stripe.queue(answer.json(200, { object: 'balance' }));
  t.equal((await run({ provider: 'stripe', baseUrl: stripe.url })).error?.reason, 'protocol');
  azure.queue(answer.json(503, { error: 'temporarily_unavailable' }));
  t.same((await run({ ...AZURE, baseUrl: azure.url })).error, { reason: 'http-status', message: `POST ${azure.url}/offgridflow.onmicrosoft.com/oauth2/v2.0/token answered 503` });
  azure.queue(answer.json(200, { token_type: 'Bearer' }));
  t.same((await run({ ...AZURE, baseUrl: azure.url })).error, { reason: 'protocol', message: 'Azure AD answered 200 without an access_token' });
  google.queue(answer.json(429, { error: 'rate_limit_exceeded' }));
  t.equal((await run({ provider: 'gcp' })).error?.reason, 'rate-limited');
  sts.queue(stsError(500, 'InternalFailure', 'The request processing has failed because of an unknown error.'));
  t.same((await run({ provider: 'aws', baseUrl: sts.url })).error, { reason: 'http-status', message: `STS GetCallerIdentity (${sts.url}) answered 500 (InternalFailure)` });
  sts.queue(stsError(400, 'Throttling', 'Rate exceeded'));
  t.same((await run({ provider: 'aws', baseUrl: sts.url })).error, { reason: 'rate-limited', message: `STS GetCallerIdentity (${sts.url}): throttled (Throttling)` });
  sts.queue(answer.garbage());
  t.equal((await run({ provider: 'aws', baseUrl: sts.url })).error?.reason, 'protocol', 'STS garbage');

  const port = await closedPort();
  for (const p of [{ provider: 'stripe' }, { provider: 'openai' }, { provider: 'aws' }, AZURE, { provider: 'gcp', keyEnv: 'GCP_KEY_JSON' }]) {
    const obs = await run({ ...p, baseUrl: `http://127.0.0.1:${port}${p.provider === 'gcp' ? '/token' : ''}` });
    t.equal(obs.error?.reason, 'refused', `${p.provider}: unreachable is an error, not a failure`);
    t.equal(obs.fields.valid, undefined, `${p.provider}: validity unknown`);
  }

  for (const [name, api, p] of [
    ['stripe', stripe, { provider: 'stripe', baseUrl: stripe.url }],
    ['aws', sts, { provider: 'aws', baseUrl: sts.url }],
    ['gcp', google, { provider: 'gcp' }],
  ] as const) {
    api.queue(answer.hang());
    const started = Date.now();
    const err = await run(p, { timeoutMs: 300 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof ProbeError && err.reason === 'timeout', `${name}: timeout`);
    t.match((err as Error).message, /no answer before the check timeout \(300 ms\)$/, `${name}: message`);
    t.ok(Date.now() - started < 3000, `${name}: settles promptly`);
  }
});

t.test('no secret appears in any observation or log line', async (t) => {
  const text = JSON.stringify(observations) + logged.join('');
  t.ok(observations.length > 40, `${observations.length} observations checked`);
  for (const s of SECRETS) t.notOk(text.includes(s), `secret ${s.slice(0, 6)}... absent`);
  for (const s of [STRIPE_WRONG, STRIPE_RESTRICTED, 'sk-proj-notAKeyThatExists0000000Zq9w']) t.notOk(text.includes(s.slice(-4)), 'not even the masked tail providers quote');
  t.same(credentialProbe.secretParams, [], 'no secret params: secrets are only read from the environment');
});

t.test('validate: problems caught at load', async (t) => {
  const v = (p: Record<string, unknown>) => credentialProbe.validate?.(params(p));
  t.same(v({ provider: 'stripe' }), []);
  t.same(v(AZURE), []);
  t.same(v({ provider: 'azure' }), ['provider azure needs tenantId', 'provider azure needs clientId']);
  t.same(v({ provider: 'stripe', tenantId: 't', keyFile: 'k' }), ['tenantId applies to provider azure only', 'keyFile applies to provider gcp only']);
  t.same(v({ provider: 'aws', keyEnv: 'X' }), ['provider aws takes accessKeyIdEnv and secretAccessKeyEnv, not keyEnv']);
  t.same(v({ provider: 'gcp', keyEnv: 'X', keyFile: 'f' }), ['set either keyEnv or keyFile, not both']);
  t.same(v({ provider: 'openai', baseUrl: 'ftp://x' }), ['baseUrl must be an http(s) URL']);
  t.throws(() => params({ provider: 'heroku' }), /enum/);
  t.throws(() => params({ provider: 'stripe', keyEnv: 'not-a-name' }), /pattern/);
});
