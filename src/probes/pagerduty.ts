// pagerduty: is someone on call right now for a schedule? Reads PagerDuty's REST API
// (GET /oncalls?schedule_ids[]=...). When nobody is, a second call (GET /schedules/ID) tells
// "an empty rotation" (fail) from "no such schedule" (error). A 429 makes the probe stay
// quiet until PagerDuty's reset time: later runs report rate-limited without a request.
import { Type } from '@sinclair/typebox';
import type { Agent, Dispatcher } from 'undici';
import { reasonFromError } from '../reasons.js';
import { agentConnect } from './lease.js';
import { defineProbe, ProbeError, type Observation, type ProbeContext } from './types.js';
import { commonjs, lazy } from './lazy.js';
import { httpUrlProblem } from './shared.js';

const undici = lazy(() => import('undici').then(commonjs));

const params = Type.Object(
  {
    schedule: Type.String({ pattern: '^[A-Z0-9]{5,20}$', 'x-hint': 'a PagerDuty schedule id, e.g. P1AB2CD', description: 'Schedule id (from its URL: /schedules/P1AB2CD).' }),
    minOnCall: Type.Integer({ minimum: 1, default: 1, description: 'Fewest people on call for the check to pass.' }),
    baseUrl: Type.String({ default: 'https://api.pagerduty.com', description: 'API root (https://api.eu.pagerduty.com for the EU service region).' }),
    tokenEnv: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', default: 'PAGERDUTY_TOKEN', description: 'Environment variable holding a REST API key (read-only is enough).' }),
  },
  { additionalProperties: false },
);

/** Per API root and token: no request before this time (ms since epoch). */
const blockedUntil = new Map<string, number>();
const DEFAULT_BACKOFF_S = 60;

const o = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

async function get(ctx: ProbeContext, agent: Agent, url: string, token: string, key: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const shown = `GET ${url.replace(/\?.*$/, '')}`;
  let res: Dispatcher.ResponseData;
  let text: string;
  try {
    const { request } = await undici();
    res = await request(url, {
      headers: { authorization: `Token token=${token}`, accept: 'application/vnd.pagerduty+json;version=2', 'user-agent': 'readiness-exporter' },
      signal: ctx.signal,
      dispatcher: agent,
    });
    text = await res.body.text();
  } catch (err) {
    if (ctx.signal.aborted) throw new ProbeError('timeout', `PagerDuty ${shown}: no answer before the check timeout (${ctx.timeoutMs} ms)`);
    const e = err as Error & { code?: string };
    throw new ProbeError(reasonFromError(e), `PagerDuty ${shown}: ${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const err = o(o(json).error);
  const said = typeof err.message === 'string' ? ` ${err.message}${Array.isArray(err.errors) && err.errors.length > 0 ? `: ${err.errors.join('; ')}` : ''}` : '';
  if (res.statusCode === 429) {
    const h = (n: string) => Number(Array.isArray(res.headers[n]) ? res.headers[n][0] : res.headers[n]);
    const wait = [h('ratelimit-reset'), h('retry-after')].find((n) => Number.isFinite(n) && n > 0) ?? DEFAULT_BACKOFF_S;
    const until = Date.now() + wait * 1000;
    blockedUntil.set(key, until);
    throw new ProbeError('rate-limited', `PagerDuty rate limit: no requests until ${new Date(until).toISOString()}`);
  }
  if (res.statusCode === 401) throw new ProbeError('auth', `PagerDuty rejected the API key (401${said})`);
  if (res.statusCode === 403) throw new ProbeError('auth', `PagerDuty ${shown}: 403${said} (the API key cannot read this)`);
  if (res.statusCode >= 500) throw new ProbeError('http-status', `PagerDuty ${shown} answered ${res.statusCode}`);
  if (json === undefined || typeof json !== 'object' || Array.isArray(json)) {
    throw new ProbeError('protocol', `PagerDuty ${shown} answered ${res.statusCode} with something that is not a JSON object`);
  }
  if (res.statusCode !== 200 && res.statusCode !== 404) throw new ProbeError('http-status', `PagerDuty ${shown}: ${res.statusCode}${said}`);
  return { status: res.statusCode, json: json as Record<string, unknown> };
}

export default defineProbe({
  kind: 'pagerduty',
  description: 'Whether someone is on call now for a PagerDuty schedule.',
  params,
  fields: {
    oncall: { type: 'number', description: 'People on call now for the schedule (the value).' },
    users: { type: 'string', description: 'Their names, comma-separated.' },
    schedule_name: { type: 'string', description: 'The schedule.' },
    ends_in_seconds: { type: 'number', unit: 's', description: 'Until the first current shift ends (absent when none has an end).' },
  },

  requiredEnv: (p) => [p.tokenEnv],
  validate(p) {
    const bad = httpUrlProblem('baseUrl', p.baseUrl);
    return bad ? [bad] : [];
  },

  load: undici,

  async run(p, ctx): Promise<Observation> {
    const token = ctx.env[p.tokenEnv];
    if (!token) return { fields: {}, error: { reason: 'unconfigured', message: `environment variable ${p.tokenEnv} (tokenEnv) is not set` } };
    const root = p.baseUrl.replace(/\/+$/, '');
    const key = `${root}|${p.tokenEnv}`;
    const until = blockedUntil.get(key) ?? 0;
    if (until > Date.now()) return { fields: {}, error: { reason: 'rate-limited', message: `PagerDuty rate limit: no requests until ${new Date(until).toISOString()}` } };

    const backstop = ctx.timeoutMs * 2;
    const { Agent } = await undici();
    const agent = new Agent({ connect: await agentConnect({ timeout: backstop }, ctx), headersTimeout: backstop, bodyTimeout: backstop });
    try {
      const q = new URLSearchParams({ 'schedule_ids[]': p.schedule, limit: '100' });
      const r = await get(ctx, agent, `${root}/oncalls?${q}`, token, key);
      if (r.status !== 200) throw new ProbeError('http-status', `PagerDuty GET ${root}/oncalls: ${r.status}`);
      const list = r.json.oncalls;
      if (!Array.isArray(list)) throw new ProbeError('protocol', 'PagerDuty answered without an oncalls list');
      const now = Date.now();
      const current = list.map(o).filter((e) => {
        // A shift reported for the schedule that is not running now does not count.
        const start = typeof e.start === 'string' ? Date.parse(e.start) : -Infinity;
        const end = typeof e.end === 'string' ? Date.parse(e.end) : Infinity;
        return o(e.schedule).id === p.schedule && start <= now && end > now;
      });
      const users = [...new Map(current.map((e) => [String(o(e.user).id), String(o(e.user).summary ?? o(e.user).id)])).values()];
      let name = current.map((e) => o(e.schedule).summary).find((s): s is string => typeof s === 'string');
      if (current.length === 0) {
        // Nobody: an empty rotation, or a schedule id that does not exist?
        const s = await get(ctx, agent, `${root}/schedules/${encodeURIComponent(p.schedule)}`, token, key);
        if (s.status === 404) throw new ProbeError('http-status', `PagerDuty schedule ${p.schedule} does not exist (404)`);
        const sch = o(s.json.schedule);
        name = typeof sch.name === 'string' ? sch.name : typeof sch.summary === 'string' ? sch.summary : undefined;
      }
      const fields: Record<string, unknown> = { oncall: users.length, users: users.join(', '), schedule_name: name ?? p.schedule };
      const ends = current.map((e) => (typeof e.end === 'string' ? Date.parse(e.end) : NaN)).filter((t) => !Number.isNaN(t));
      if (ends.length > 0) fields.ends_in_seconds = Math.max(0, (Math.min(...ends) - now) / 1000);
      const label = `${name ?? p.schedule} (${p.schedule})`;
      if (users.length < p.minOnCall) {
        const who = users.length === 0 ? 'nobody is on call' : `only ${users.join(', ')} on call, ${p.minOnCall} required`;
        return { value: users.length, fields, failure: { reason: 'condition', message: `PagerDuty schedule ${label}: ${who} now` } };
      }
      const until = typeof fields.ends_in_seconds === 'number' ? `, shift ends in ${(fields.ends_in_seconds / 3600).toFixed(1)} h` : '';
      return { value: users.length, fields, message: `PagerDuty schedule ${label}: ${users.join(', ')} on call now${until}` };
    } catch (err) {
      if (err instanceof ProbeError && err.reason !== 'timeout') return { fields: {}, error: { reason: err.reason, message: err.message } };
      throw err;
    } finally {
      await agent.destroy();
    }
  },
});
