// ratelimit probe against a local server that starts answering 429 after N requests, with
// proof that the burst never exceeds its caps (count, rate, concurrency), even with params
// that bypass the schema.
import type { ServerResponse } from 'node:http';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import { loadChecklist } from '../../src/config/load.js';
import ratelimitProbe, { HARD_MAX } from '../../src/probes/ratelimit.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { runShipped } from '../helpers/fake-apis.js';
import { closedPort, listenHttp, type HttpListener } from '../helpers/listeners.js';

const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(ratelimitProbe.params);
type Params = Static<typeof ratelimitProbe.params>;
function params(input: Record<string, unknown>): Params {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Params;
}

interface Limiter extends HttpListener {
  count: number;
  maxInFlight: number;
  startTimes: number[];
  authorization: (string | undefined)[];
}

/** Answers 200 for the first `allow` requests, then `refuse(res)`; each answer takes `delayMs`. */
async function limiter(allow: number, refuse: (res: ServerResponse) => void, delayMs = 0): Promise<Limiter> {
  let inFlight = 0;
  const state = { count: 0, maxInFlight: 0, startTimes: [] as number[], authorization: [] as (string | undefined)[] };
  const l = await listenHttp((req, res) => {
    state.count++;
    state.startTimes.push(performance.now());
    state.authorization.push(req.headers.authorization);
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    const n = state.count;
    setTimeout(() => {
      inFlight--;
      if (n <= allow) {
        res.writeHead(200, { 'content-type': 'application/json', 'ratelimit-limit': '100', 'ratelimit-remaining': String(allow - n) });
        res.end('{"status":"ok"}');
      } else refuse(res);
    }, delayMs);
  });
  const out = Object.assign(l, state);
  // Keep the counters live on the returned object.
  Object.defineProperties(out, {
    count: { get: () => state.count },
    maxInFlight: { get: () => state.maxInFlight },
  });
  return out as Limiter;
}

const tooMany = (headers: Record<string, string> = { 'retry-after': '30' }) => (res: ServerResponse) => {
  res.writeHead(429, { 'content-type': 'application/json', ...headers });
  res.end('{"error":"too many requests"}');
};

const servers: HttpListener[] = [];
t.teardown(() => Promise.all(servers.map((s) => s.close())));
async function track(l: Promise<Limiter>): Promise<Limiter> {
  const s = await l;
  servers.push(s);
  return s;
}

const run = (p: Record<string, unknown>, timeoutMs = 10_000, env: NodeJS.ProcessEnv = {}) => ratelimitProbe.run(params(p), makeCtx({ timeoutMs, env }));

t.test('a limited endpoint passes: the first 429, its Retry-After, and the burst stops', async (t) => {
  const s = await track(limiter(20, tooMany()));
  const obs = await run({ url: s.url, path: '/health', requests: 100, ratePerSecond: 200, concurrency: 1 });
  t.equal(obs.failure, undefined);
  t.match(obs.fields, { limited: true, requests: 21, first_limited_at: 21, retry_after_s: 30, ratelimit_limit: 100, responses_ok: 20, responses_other: 0, errors: 0 });
  t.equal(obs.value, 21);
  t.equal(s.count, 21, 'not one request after the 429 (concurrency 1)');
  t.match(obs.message, /^GET http:\/\/127\.0\.0\.1:\d+\/health: limited at request 21 \(Retry-After 30 s\); 21 requests at 200\/s in [\d.]+ s$/);
});

t.test('with concurrency, only requests already in flight finish after the 429', async (t) => {
  const s = await track(limiter(30, tooMany(), 20));
  const obs = await run({ url: s.url, requests: 200, ratePerSecond: 200, concurrency: 5 });
  t.equal(obs.fields.limited, true);
  t.ok(s.count <= 31 + 5, `${s.count} requests: at most the in-flight ones past the first 429`);
  t.ok(s.maxInFlight <= 5, `at most 5 in flight (saw ${s.maxInFlight})`);
  t.equal(obs.fields.requests, s.count);
});

t.test('Retry-After as an HTTP date; a 429 without one', async (t) => {
  const at = new Date(Date.now() + 120_000).toUTCString();
  const dated = await track(limiter(2, tooMany({ 'retry-after': at })));
  const obs = await run({ url: dated.url, requests: 10, ratePerSecond: 100, concurrency: 1 });
  t.ok(Math.abs((obs.fields.retry_after_s as number) - 120) <= 2, 'seconds until the date');
  const bare = await track(limiter(2, tooMany({})));
  const none = await run({ url: bare.url, requests: 10, ratePerSecond: 100, concurrency: 1 });
  t.equal(none.fields.limited, true);
  t.equal(none.fields.retry_after_s, undefined, 'absent: a condition on it fails');
  t.match(none.message, /\(no Retry-After\)/);
});

t.test('an endpoint that never answers 429 fails', async (t) => {
  const s = await track(limiter(Infinity, tooMany()));
  const obs = await run({ url: s.url, path: '/health', requests: 40, ratePerSecond: 200, concurrency: 4 });
  t.equal(obs.failure?.reason, 'http-status');
  t.match(obs.failure?.message, /^GET http:\/\/127\.0\.0\.1:\d+\/health: no 429 in a burst of 40 requests at 200\/s in [\d.]+ s \(40 answered 2xx\): the endpoint is not rate limited at this rate$/);
  t.match(obs.fields, { limited: false, requests: 40, responses_ok: 40 });
  t.equal(s.count, 40, 'exactly the configured count');
  const waf = await track(limiter(5, (res) => res.writeHead(403).end('blocked')));
  const blocked = await run({ url: waf.url, requests: 10, ratePerSecond: 200, concurrency: 1 });
  t.match(blocked.failure?.message, /\(5 answered 2xx; other statuses: 403\)/, 'a WAF 403 is not a rate limit');
  const as403 = await run({ url: waf.url, requests: 10, ratePerSecond: 200, concurrency: 1, limitedStatus: [403, 429] });
  t.equal(as403.fields.limited, true, 'unless limitedStatus says so');
});

t.test('the caps hold in code, even for params that bypass the schema', async (t) => {
  const s = await track(limiter(Infinity, tooMany(), 5));
  const started = performance.now();
  const unchecked = { url: s.url, method: 'GET', requests: 100_000, ratePerSecond: 100_000, concurrency: 10_000, limitedStatus: [429] } as unknown as Params;
  const obs = await ratelimitProbe.run(unchecked, makeCtx({ timeoutMs: 15_000 }));
  const elapsed = performance.now() - started;
  t.equal(s.count, HARD_MAX.requests, `exactly ${HARD_MAX.requests} requests`);
  t.ok(s.maxInFlight <= HARD_MAX.concurrency, `at most ${HARD_MAX.concurrency} in flight (saw ${s.maxInFlight})`);
  const minMs = ((HARD_MAX.requests - 1) * 1000) / HARD_MAX.ratePerSecond;
  t.ok(elapsed >= minMs - 50, `at most ${HARD_MAX.ratePerSecond}/s: ${Math.round(elapsed)} ms >= ${minMs} ms`);
  // No request arrived before its slot: request k starts at least (k - 1) gaps after the run began.
  const gap = 1000 / HARD_MAX.ratePerSecond;
  const early = s.startTimes.filter((at, k) => at - started < k * gap - 1).length;
  t.equal(early, 0, 'no request ahead of the schedule');
  t.equal(obs.fields.requests, HARD_MAX.requests);
  t.throws(() => params({ url: s.url, requests: 501 }), /maximum/, 'the schema rejects more than the hard maximum');
  t.throws(() => params({ url: s.url, ratePerSecond: 500 }), /maximum/);
  t.throws(() => params({ url: s.url, concurrency: 51 }), /maximum/);
});

t.test('a burst that cannot fit in the timeout is not started', async (t) => {
  const s = await track(limiter(Infinity, tooMany()));
  const obs = await run({ url: s.url, requests: 100, ratePerSecond: 10 }, 5000);
  t.same(obs.error, { reason: 'error', message: 'a burst of 100 requests at 10/s takes 9.9 s, longer than the check timeout (5000 ms): lower requests or raise timeout' });
  t.equal(s.count, 0);
});

t.test('token, unreachable, timeout', async (t) => {
  const s = await track(limiter(1, tooMany()));
  const obs = await run({ url: s.url, requests: 5, ratePerSecond: 100, concurrency: 1, bearerTokenEnv: 'PROBE_TOKEN' }, 5000, { PROBE_TOKEN: 'rl-t0ken-value' });
  t.same(s.authorization, ['Bearer rl-t0ken-value', 'Bearer rl-t0ken-value']);
  t.notOk(JSON.stringify(obs).includes('rl-t0ken-value'));
  t.same((await run({ url: s.url, bearerTokenEnv: 'PROBE_TOKEN' })).error, { reason: 'unconfigured', message: 'environment variable PROBE_TOKEN (bearerTokenEnv) is not set' });

  const refused = await run({ url: `http://127.0.0.1:${await closedPort()}/`, requests: 5, ratePerSecond: 100 });
  t.equal(refused.error?.reason, 'refused');
  t.match(refused.error?.message, /no answer to any of 5 requests: connect ECONNREFUSED/);

  const slow = await track(limiter(Infinity, tooMany(), 5000));
  const started = Date.now();
  const err = await run({ url: slow.url, requests: 5, ratePerSecond: 100 }, 400).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProbeError && err.reason === 'timeout');
  t.match((err as Error).message, /the burst did not finish before the check timeout \(400 ms\), 5 requests sent$/);
  t.ok(Date.now() - started < 3000);
});

t.test('the shipped api-rate-limited row: passes on a limited API, fails on an unlimited one, within its cap', async (t) => {
  for (const limited of [true, false]) {
    const s = await track(limiter(limited ? 60 : Infinity, tooMany()));
    const [view] = await runShipped({ API_URL: s.url, READINESS_ALLOW_INTRUSIVE: 'api-rate-limited' }, ['api-rate-limited']);
    t.equal(view!.state, limited ? 'pass' : 'fail', `${limited ? 'limited' : 'unlimited'}: ${view!.message}`);
    t.ok(s.count <= 300, `${s.count} requests, within the row's 300`);
  }
});

t.test('a ratelimit check is intrusive: without the operator\'s opt-in it is unconfigured and sends nothing', async (t) => {
  const s = await track(limiter(60, tooMany()));
  for (const optIn of [undefined, '', 'false', 'waf-blocks-attack']) {
    const env = { API_URL: s.url, ...(optIn !== undefined && { READINESS_ALLOW_INTRUSIVE: optIn }) };
    const [view] = await runShipped(env, ['api-rate-limited']);
    t.match(view, { state: 'unconfigured', def: { intrusive: /burst/, missing: [{ variable: 'READINESS_ALLOW_INTRUSIVE', alternative: '--allow-intrusive' }] } }, `READINESS_ALLOW_INTRUSIVE=${String(optIn)}`);
    t.match(view!.message, /intrusive \(sends a burst of requests.*\): runs only where the operator opts in: set READINESS_ALLOW_INTRUSIVE=api-rate-limited \(or true for every intrusive check\), or pass --allow-intrusive/);
  }
  t.equal(s.count, 0, 'not one request reached the API');
  // A checklist of its own that says `intrusive: false` cannot make the kind harmless.
  const file = `apiVersion: readiness/v1
checklist: x
checks:
  - { id: burst, title: burst, section: s, severity: low, phase: pre-deploy, probe: ratelimit, with: { url: "${s.url}" }, intrusive: false }
`;
  const res = loadChecklist(file, 'x.yaml', {});
  t.match(res, { ok: false, diagnostics: [{ line: 4, message: /probe ratelimit is always intrusive .*"intrusive: false" does not apply/ }] });
  for (const optIn of ['true', '1', 'all', 'api-rate-limited', ' waf-blocks-attack , api-rate-limited ']) {
    const [view] = await runShipped({ API_URL: s.url, READINESS_ALLOW_INTRUSIVE: optIn }, ['api-rate-limited']);
    t.equal(view!.state, 'pass', `READINESS_ALLOW_INTRUSIVE=${optIn}: runs (${view!.message})`);
  }
});

t.test('validate', async (t) => {
  const v = (p: Record<string, unknown>) => ratelimitProbe.validate?.(params(p));
  t.same(v({ url: 'https://api.example.com', path: '/health' }), []);
  t.same(v({ url: 'ftp://x' }), ['url (with path) is not an absolute http:// or https:// URL']);
  t.same(v({ url: 'https://x', body: '{}' }), ['body needs method POST']);
  t.same(params({ url: 'https://x' }), { url: 'https://x', method: 'GET', requests: 100, ratePerSecond: 50, concurrency: 10, limitedStatus: [429] });
});
