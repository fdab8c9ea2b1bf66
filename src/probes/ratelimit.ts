// ratelimit: proves an endpoint is rate limited by sending a small, bounded burst and
// expecting HTTP 429 before the burst ends. The burst is capped three ways, in config (schema
// maxima) and again here in code, whatever the config says: at most 500 requests, at most
// 200 per second (requests start on a fixed schedule, never faster), at most 50 in flight.
// The burst stops at the first 429; requests already in flight finish, no new one starts.
// Run it rarely (an interval of an hour or more): it spends the endpoint's budget on purpose.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { reasonFromError, type Reason } from '../reasons.js';
import { commonjs, lazy } from './lazy.js';
import { agentConnect } from './lease.js';
import { defineProbe, ProbeError, type Observation } from './types.js';

const undici = lazy(() => import('undici').then(commonjs));

/** Hard limits, applied in code even to params that bypassed the schema. */
export const HARD_MAX = { requests: 500, ratePerSecond: 200, concurrency: 50 } as const;

const params = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'Absolute http(s) URL of the endpoint.' }),
    path: Type.Optional(Type.String({ description: 'Appended to the path of url.' })),
    method: Type.Union([Type.Literal('GET'), Type.Literal('HEAD'), Type.Literal('POST')], { default: 'GET', description: 'HTTP method.' }),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Request headers.' })),
    body: Type.Optional(Type.String({ description: 'Request body (POST).' })),
    bearerTokenEnv: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'Environment variable holding a bearer token.' })),
    requests: Type.Integer({ minimum: 1, maximum: HARD_MAX.requests, default: 100, description: `Most requests in the burst (hard maximum ${HARD_MAX.requests}).` }),
    ratePerSecond: Type.Number({ exclusiveMinimum: 0, maximum: HARD_MAX.ratePerSecond, default: 50, description: `Requests started per second (hard maximum ${HARD_MAX.ratePerSecond}).` }),
    concurrency: Type.Integer({ minimum: 1, maximum: HARD_MAX.concurrency, default: 10, description: `Most requests in flight (hard maximum ${HARD_MAX.concurrency}).` }),
    limitedStatus: Type.Array(Type.Integer({ minimum: 400, maximum: 599 }), { minItems: 1, default: [429], description: 'Statuses that mean "rate limited" (default 429).' }),
  },
  { additionalProperties: false },
);

function target(url: string, path: string | undefined): URL {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError('unsupported scheme');
  if (path) {
    const q = path.indexOf('?');
    u.pathname = u.pathname.replace(/\/+$/, '') + '/' + (q < 0 ? path : path.slice(0, q)).replace(/^\/+/, '');
    if (q >= 0) u.search = path.slice(q);
  }
  u.username = '';
  u.password = '';
  return u;
}

/** Retry-After as seconds: delta-seconds or an HTTP date. */
function retryAfterSeconds(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || s.trim() === '') return undefined;
  if (/^\d+$/.test(s.trim())) return Number(s.trim());
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.round((at - Date.now()) / 1000));
}

const clamp = (v: number, max: number) => Math.max(1, Math.min(Math.floor(v) || 1, max));

export default defineProbe({
  kind: 'ratelimit',
  description: 'Sends a small bounded burst to an endpoint and expects HTTP 429 (with Retry-After) before it ends.',
  params,
  intrusive: 'sends a burst of requests that spends the endpoint\'s rate-limit budget',
  secretParams: ['headers', 'body'],
  fields: {
    limited: { type: 'boolean', description: 'A rate-limited status came back.' },
    requests: { type: 'number', description: 'Requests sent.' },
    first_limited_at: { type: 'number', description: 'Which request (1-based) was the first refused; the value.' },
    retry_after_s: { type: 'number', unit: 's', description: 'Retry-After of the first refusal, in seconds (absent when not sent).' },
    ratelimit_limit: { type: 'number', description: 'RateLimit-Limit / X-RateLimit-Limit announced by the endpoint, when it does.' },
    responses_ok: { type: 'number', description: '2xx answers.' },
    responses_other: { type: 'number', description: 'Answers neither 2xx nor rate-limited (5xx, 403 from a WAF, ...).' },
    errors: { type: 'number', description: 'Requests that got no answer (refused, reset).' },
    duration_ms: { type: 'number', unit: 'ms', description: 'From the first request to the last answer.' },
  },

  requiredEnv: (p) => (p.bearerTokenEnv ? [p.bearerTokenEnv] : []),
  validate(p) {
    const problems: string[] = [];
    try {
      target(p.url, p.path);
    } catch {
      problems.push('url (with path) is not an absolute http:// or https:// URL');
    }
    if (p.body !== undefined && p.method !== 'POST') problems.push('body needs method POST');
    return problems;
  },

  load: undici,

  async run(p, ctx): Promise<Observation> {
    const { signal } = ctx;
    // The config's numbers, cut to the hard limits however they got here.
    const requests = clamp(p.requests, HARD_MAX.requests);
    const rate = Math.min(p.ratePerSecond > 0 ? p.ratePerSecond : 1, HARD_MAX.ratePerSecond);
    const concurrency = clamp(p.concurrency, HARD_MAX.concurrency);
    const url = target(p.url, p.path);
    const shown = `${p.method} ${url.origin}${url.pathname}`;
    const gapMs = 1000 / rate;
    const needMs = (requests - 1) * gapMs;
    if (needMs > ctx.timeoutMs * 0.9) {
      return {
        fields: {},
        error: { reason: 'error', message: `a burst of ${requests} requests at ${rate}/s takes ${(needMs / 1000).toFixed(1)} s, longer than the check timeout (${ctx.timeoutMs} ms): lower requests or raise timeout` },
      };
    }

    const headers: Record<string, string> = { 'user-agent': 'readiness-exporter' };
    for (const [k, v] of Object.entries(p.headers ?? {})) headers[k.toLowerCase()] = v;
    if (p.bearerTokenEnv) {
      const token = ctx.env[p.bearerTokenEnv];
      if (!token) return { fields: {}, error: { reason: 'unconfigured', message: `environment variable ${p.bearerTokenEnv} (bearerTokenEnv) is not set` } };
      headers.authorization = `Bearer ${token}`;
    }

    const backstop = ctx.timeoutMs * 2;
    const { Agent, request } = await undici();
    const agent = new Agent({ connections: concurrency, connect: await agentConnect({ timeout: backstop }, ctx), headersTimeout: backstop, bodyTimeout: backstop });
    let sent = 0;
    let ok = 0;
    let other = 0;
    let errors = 0;
    let firstError: (Error & { code?: string }) | undefined;
    let limitedAt: number | undefined;
    let retryAfter: number | undefined;
    let announced: number | undefined;
    const otherStatuses = new Set<number>();
    const inFlight = new Set<Promise<void>>();
    const started = performance.now();

    const fire = (n: number): Promise<void> =>
      (async () => {
        try {
          const res = await request(url, { method: p.method, headers, body: p.body, signal, dispatcher: agent });
          await res.body.dump();
          const limit = Number(res.headers['ratelimit-limit'] ?? res.headers['x-ratelimit-limit']);
          if (announced === undefined && Number.isFinite(limit)) announced = limit;
          if (p.limitedStatus.includes(res.statusCode)) {
            if (limitedAt === undefined || n < limitedAt) {
              limitedAt = n;
              retryAfter = retryAfterSeconds(res.headers['retry-after']);
            }
          } else if (res.statusCode >= 200 && res.statusCode < 300) ok++;
          else {
            other++;
            otherStatuses.add(res.statusCode);
          }
        } catch (err) {
          if (signal.aborted) return;
          errors++;
          firstError ??= err as Error;
        }
      })();

    try {
      let nextAt = started;
      for (let n = 1; n <= requests && limitedAt === undefined; n++) {
        // Spaced from the previous actual start, so a stall is never caught up with a burst;
        // and never above the concurrency cap.
        const wait = nextAt - performance.now();
        if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => {});
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
        if (signal.aborted || limitedAt !== undefined) break;
        nextAt = Math.max(nextAt, performance.now()) + gapMs;
        sent++;
        const pr = fire(n).finally(() => inFlight.delete(pr));
        inFlight.add(pr);
      }
      await Promise.all(inFlight);
    } finally {
      await agent.destroy();
    }
    if (signal.aborted) throw new ProbeError('timeout', `${shown}: the burst did not finish before the check timeout (${ctx.timeoutMs} ms), ${sent} requests sent`);

    const durationMs = performance.now() - started;
    const fields: Record<string, unknown> = { limited: limitedAt !== undefined, requests: sent, responses_ok: ok, responses_other: other, errors, duration_ms: durationMs };
    if (limitedAt !== undefined) fields.first_limited_at = limitedAt;
    if (retryAfter !== undefined) fields.retry_after_s = retryAfter;
    if (announced !== undefined) fields.ratelimit_limit = announced;
    const burst = `${sent} request${sent === 1 ? '' : 's'} at ${rate}/s in ${(durationMs / 1000).toFixed(1)} s`;

    if (limitedAt !== undefined) {
      const ra = retryAfter !== undefined ? `Retry-After ${retryAfter} s` : 'no Retry-After';
      return { value: limitedAt, fields, message: `${shown}: limited at request ${limitedAt} (${ra}); ${burst}` };
    }
    if (errors === sent && firstError) {
      const reason: Reason = reasonFromError(firstError);
      return { fields, error: { reason, message: `${shown}: no answer to any of ${sent} requests: ${firstError.message}` } };
    }
    const others = otherStatuses.size > 0 ? `; other statuses: ${[...otherStatuses].sort().join(', ')}` : '';
    const errs = errors > 0 ? `; ${errors} without an answer` : '';
    return {
      value: sent,
      fields,
      failure: {
        reason: 'http-status',
        message: `${shown}: no ${p.limitedStatus.join('/')} in a burst of ${burst} (${ok} answered 2xx${others}${errs}): the endpoint is not rate limited at this rate`,
      },
    };
  },
});
