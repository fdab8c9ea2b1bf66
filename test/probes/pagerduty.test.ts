// pagerduty probe against a local server speaking PagerDuty's REST API v2.
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import pagerdutyProbe from '../../src/probes/pagerduty.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { answer, fakePagerDuty, HOUR, runShipped, type FakePagerDuty } from '../helpers/fake-apis.js';
import { closedPort } from '../helpers/listeners.js';

const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false }).compile(pagerdutyProbe.params);
type Params = Static<typeof pagerdutyProbe.params>;
function params(input: Record<string, unknown>): Params {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Params;
}

const TOKEN = 'u+PdT0kenValue-must-not-leak';
const servers: FakePagerDuty[] = [];
t.teardown(() => Promise.all(servers.map((s) => s.close())));
async function pd(): Promise<FakePagerDuty> {
  const s = await fakePagerDuty(TOKEN);
  servers.push(s);
  s.schedules.PPRIMRY = {
    name: 'Platform Primary',
    shifts: [
      { user: 'PUSER01', name: 'Ada Lovelace', startMsAgo: 2 * HOUR, endsInMs: 6 * HOUR },
      { user: 'PUSER02', name: 'Grace Hopper', startMsAgo: HOUR, endsInMs: 3 * HOUR, level: 2 },
      { user: 'PUSER03', name: 'Past Person', startMsAgo: 30 * HOUR, endsInMs: -6 * HOUR },
    ],
  };
  s.schedules.PEMPTY1 = { name: 'Weekend Secondary', shifts: [] };
  s.schedules.PFOREVR = { name: 'Founders', shifts: [{ user: 'PUSER09', name: 'Founder', startMsAgo: HOUR, endsInMs: null }] };
  return s;
}

const ctx = (timeoutMs = 5000) => makeCtx({ env: { PAGERDUTY_TOKEN: TOKEN }, timeoutMs });
const run = (s: FakePagerDuty, p: Record<string, unknown>, c = ctx()) => pagerdutyProbe.run(params({ baseUrl: s.url, ...p }), c);

t.test('someone on call: pass, with names and the end of the shift', async (t) => {
  const s = await pd();
  const obs = await run(s, { schedule: 'PPRIMRY' });
  t.equal(obs.failure, undefined);
  t.equal(obs.error, undefined);
  t.equal(obs.value, 2);
  t.match(obs.fields, { oncall: 2, users: 'Ada Lovelace, Grace Hopper', schedule_name: 'Platform Primary' });
  t.ok(Math.abs((obs.fields.ends_in_seconds as number) - 3 * 3600) < 60, 'the first shift to end');
  t.equal(obs.message, 'PagerDuty schedule Platform Primary (PPRIMRY): Ada Lovelace, Grace Hopper on call now, shift ends in 3.0 h');
  const req = new URL(s.seen[0]!.url, 'http://x');
  t.equal(req.pathname, '/oncalls');
  t.same(req.searchParams.getAll('schedule_ids[]'), ['PPRIMRY']);
  t.equal(s.seen[0]!.headers.authorization, `Token token=${TOKEN}`);
  t.equal(s.seen.length, 1, 'one request when someone is on call');

  const forever = await run(s, { schedule: 'PFOREVR' });
  t.equal(forever.fields.oncall, 1);
  t.equal(forever.fields.ends_in_seconds, undefined, 'a shift without an end');
});

t.test('nobody on call fails; fewer than minOnCall fails', async (t) => {
  const s = await pd();
  const empty = await run(s, { schedule: 'PEMPTY1' });
  t.same(empty.failure, { reason: 'condition', message: 'PagerDuty schedule Weekend Secondary (PEMPTY1): nobody is on call now' });
  t.match(empty.fields, { oncall: 0, users: '', schedule_name: 'Weekend Secondary' });
  t.equal(empty.value, 0);
  const three = await run(s, { schedule: 'PPRIMRY', minOnCall: 3 });
  t.equal(three.failure?.message, 'PagerDuty schedule Platform Primary (PPRIMRY): only Ada Lovelace, Grace Hopper on call, 3 required now');
});

t.test('a schedule that does not exist is an error, not "nobody on call"', async (t) => {
  const s = await pd();
  const obs = await run(s, { schedule: 'PNOPE00' });
  t.same(obs.error, { reason: 'http-status', message: 'PagerDuty schedule PNOPE00 does not exist (404)' });
});

t.test('credentials: unset, rejected, never shown', async (t) => {
  const s = await pd();
  t.same((await run(s, { schedule: 'PPRIMRY' }, makeCtx({ env: {} }))).error, { reason: 'unconfigured', message: 'environment variable PAGERDUTY_TOKEN (tokenEnv) is not set' });
  t.equal(s.seen.length, 0);
  const bad = await run(s, { schedule: 'PPRIMRY', tokenEnv: 'PD' }, makeCtx({ env: { PD: 'wrong-token-value' } }));
  t.same(bad.error, { reason: 'auth', message: 'PagerDuty rejected the API key (401 Authentication failed)' });
  s.queue(answer.json(403, { error: { message: 'Access Denied', code: 2010 } }));
  t.same((await run(s, { schedule: 'PPRIMRY' })).error, { reason: 'auth', message: `PagerDuty GET ${s.url}/oncalls: 403 Access Denied (the API key cannot read this)` });
  s.queue(answer.json(400, { error: { message: 'Invalid Input Provided', code: 2001, errors: ['Schedule ids is invalid.'] } }));
  t.same((await run(s, { schedule: 'PPRIMRY' })).error, { reason: 'http-status', message: `PagerDuty GET ${s.url}/oncalls: 400 Invalid Input Provided: Schedule ids is invalid.` });
  t.notOk(JSON.stringify(s.seen.map((x) => x.url)).includes(TOKEN), 'the token is never in a URL');
});

t.test('429: rate-limited until the reset, no request meanwhile', async (t) => {
  const s = await pd();
  s.queue(answer.json(429, { error: { message: 'Rate Limit Exceeded', code: 2020 } }, { 'ratelimit-limit': 960, 'ratelimit-remaining': 0, 'ratelimit-reset': 42 }));
  const first = await run(s, { schedule: 'PPRIMRY' });
  t.equal(first.error?.reason, 'rate-limited');
  t.match(first.error?.message, /^PagerDuty rate limit: no requests until \d{4}-/);
  const until = Date.parse(first.error!.message.replace('PagerDuty rate limit: no requests until ', ''));
  t.ok(Math.abs(until - Date.now() - 42_000) < 2000, 'until ratelimit-reset seconds from now');
  const second = await run(s, { schedule: 'PPRIMRY' });
  t.equal(second.error?.reason, 'rate-limited');
  t.equal(s.seen.length, 1, 'the next run sends nothing');
});

t.test('5xx, garbage, refused, timeout', async (t) => {
  const s = await pd();
  s.queue(answer.status(503, 'upstream unavailable'));
  t.same((await run(s, { schedule: 'PPRIMRY' })).error, { reason: 'http-status', message: `PagerDuty GET ${s.url}/oncalls answered 503` });
  s.queue(answer.garbage());
  t.same((await run(s, { schedule: 'PPRIMRY' })).error, { reason: 'protocol', message: `PagerDuty GET ${s.url}/oncalls answered 200 with something that is not a JSON object` });
  s.queue(answer.json(200, { limit: 25 }));
  t.same((await run(s, { schedule: 'PPRIMRY' })).error, { reason: 'protocol', message: 'PagerDuty answered without an oncalls list' });
  const refused = await pagerdutyProbe.run(params({ schedule: 'PPRIMRY', baseUrl: `http://127.0.0.1:${await closedPort()}` }), ctx());
  t.equal(refused.error?.reason, 'refused');
  s.queue(answer.hang());
  const started = Date.now();
  const err = await run(s, { schedule: 'PPRIMRY' }, ctx(300)).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProbeError && err.reason === 'timeout');
  t.match((err as Error).message, /^PagerDuty GET \S+\/oncalls: no answer before the check timeout \(300 ms\)$/);
  t.ok(Date.now() - started < 3000);
});

t.test('the shipped oncall-published row', async (t) => {
  const s = await pd();
  for (const [schedule, state] of [['PPRIMRY', 'pass'], ['PEMPTY1', 'fail']] as const) {
    const [view] = await runShipped({ PAGERDUTY_TOKEN: TOKEN, PAGERDUTY_API_URL: s.url, PAGERDUTY_SCHEDULE_ID: schedule }, ['oncall-published']);
    t.equal(view!.state, state, view!.message);
  }
  const [unset] = await runShipped({ PAGERDUTY_TOKEN: TOKEN }, ['oncall-published']);
  t.equal(unset!.state, 'unconfigured');
});

t.test('validate', async (t) => {
  t.same(pagerdutyProbe.validate?.(params({ schedule: 'P1AB2CD' })), []);
  t.same(pagerdutyProbe.validate?.(params({ schedule: 'P1AB2CD', baseUrl: 'nope' })), ['baseUrl is not a valid URL']);
  t.throws(() => params({ schedule: 'primary rotation' }), /pattern/);
  t.same(params({ schedule: 'P1AB2CD' }), { schedule: 'P1AB2CD', minOnCall: 1, baseUrl: 'https://api.pagerduty.com', tokenEnv: 'PAGERDUTY_TOKEN' });
});
