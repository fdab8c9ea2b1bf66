// The harness: states from observations, timeouts, exceptions, secrets, hysteresis.
import pino from 'pino';
import t from 'tap';
import { nextStatus, runCheck } from '../src/harness.js';
import { ProbeError } from '../src/probes/types.js';
import type { CheckStatus } from '../src/store/types.js';
import { makeDef } from './helpers/checks.js';

const log = pino({ level: 'silent' });

t.test('pass, warn and fail from conditions, with the value', async (t) => {
  const def = makeDef(() => ({ value: 12, fields: { n: 12 } }), { expect: ['n > 10'], warn: ['n > 20'] });
  const r = await runCheck(def, { log });
  t.equal(r.state, 'warn');
  t.equal(r.value, 12);
  t.equal(r.message, 'n > 20 is false (n = 12)');
  const f = await runCheck(makeDef(() => ({ value: 3, fields: { n: 3 } }), { expect: ['n > 10'] }), { log });
  t.equal(f.state, 'fail');
  t.equal(f.reason, 'condition');
  t.equal(f.message, 'n > 10 is false (n = 3)');
  t.same(f.conditions, [{ source: 'n > 10', ok: false, text: 'n > 10 is false (n = 3)' }]);
  const p = await runCheck(makeDef(() => ({ fields: { n: 30 } }), { expect: ['n > 10'], warn: ['n > 20'] }), { log });
  t.equal(p.state, 'pass');
  t.equal(p.message, 'n > 10 is true (n = 30)');
});

t.test('a probe failure or error wins over conditions', async (t) => {
  const f = await runCheck(makeDef(() => ({ fields: { n: 30 }, failure: { reason: 'tls', message: 'chain does not verify' } }), { expect: ['n > 10'] }), { log });
  t.equal(f.state, 'fail');
  t.equal(f.reason, 'tls');
  const e = await runCheck(makeDef(() => ({ fields: {}, error: { reason: 'refused', message: 'connect ECONNREFUSED' } })), { log });
  t.equal(e.state, 'error');
  t.equal(e.reason, 'refused');
});

t.test('onNoData decides an empty answer; the default is error', async (t) => {
  const empty = () => ({ fields: {}, noData: true });
  t.equal((await runCheck(makeDef(empty), { log })).state, 'error');
  t.equal((await runCheck(makeDef(empty), { log })).reason, 'no-data');
  t.equal((await runCheck(makeDef(empty, { onNoData: 'fail' }), { log })).state, 'fail');
  t.equal((await runCheck(makeDef(empty, { onNoData: 'pass' }), { log })).state, 'pass');
});

t.test('a probe that ignores its signal still times out at the check timeout', async (t) => {
  const def = makeDef(() => new Promise(() => {}), { timeoutMs: 100 });
  const r = await runCheck(def, { log });
  t.equal(r.state, 'error');
  t.equal(r.reason, 'timeout');
  t.match(r.message, /timed out after 100 ms/);
  t.ok(r.durationMs >= 90 && r.durationMs < 2000, `duration ${r.durationMs}`);
});

t.test('the signal handed to the probe aborts at the timeout', async (t) => {
  let aborted = false;
  const def = makeDef(
    (ctx) =>
      new Promise((_, reject) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = true;
          reject(ctx.signal.reason);
        });
      }),
    { timeoutMs: 50 },
  );
  const r = await runCheck(def, { log });
  t.equal(r.reason, 'timeout');
  t.ok(aborted);
});

t.test('exceptions become error with a reason', async (t) => {
  const cases: [() => never, string][] = [
    [() => { throw new ProbeError('auth', 'password authentication failed'); }, 'auth'],
    [() => { throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }); }, 'refused'],
    [() => { throw Object.assign(new Error('fetch failed'), { cause: { code: 'ENOTFOUND' } }); }, 'dns'],
    [() => { throw new TypeError('x is not a function'); }, 'error'],
  ];
  for (const [fn, reason] of cases) {
    const r = await runCheck(makeDef(fn), { log });
    t.equal(r.state, 'error');
    t.equal(r.reason, reason);
  }
});

t.test('secrets are scrubbed from messages and condition texts', async (t) => {
  const def = makeDef(() => ({ fields: { s: 'token=s3cr3t-value' }, error: { reason: 'auth', message: 'rejected s3cr3t-value for user' } }), { secrets: ['s3cr3t-value'] });
  const r = await runCheck(def, { log });
  t.equal(r.message, 'rejected *** for user');
  const c = makeDef(() => ({ fields: { s: 'got s3cr3t-value' } }), { secrets: ['s3cr3t-value'], expect: ['s == "x"'] });
  const r2 = await runCheck(c, { log });
  t.notMatch(JSON.stringify(r2), /s3cr3t/);
});

t.test('failAfter and passAfter hold the state until enough runs agree', async (t) => {
  const def = makeDef(() => ({ fields: {} }), { failAfter: 3, passAfter: 2 });
  const res = (state: 'pass' | 'fail', at: number) => ({ check: 'c1', state, message: state, startedAt: at, finishedAt: at, durationMs: 1, conditions: [], ...(state === 'fail' && { reason: 'condition' as const }) });
  let s: CheckStatus | undefined;
  s = nextStatus(def, s, res('pass', 1));
  t.equal(s.state, 'pass', 'first result is taken as is');
  s = nextStatus(def, s, res('fail', 2));
  t.equal(s.state, 'pass', '1 of 3 failures');
  t.match(s.message, /still pass: 1 of 3 consecutive runs needed to change; latest run fail/);
  s = nextStatus(def, s, res('fail', 3));
  t.equal(s.state, 'pass', '2 of 3');
  s = nextStatus(def, s, res('fail', 4));
  t.equal(s.state, 'fail', '3 of 3 flips');
  t.equal(s.reason, 'condition');
  s = nextStatus(def, s, res('pass', 5));
  t.equal(s.state, 'fail', '1 of 2 passes');
  s = nextStatus(def, s, res('fail', 6));
  s = nextStatus(def, s, res('pass', 7));
  t.equal(s.state, 'fail', 'the streak restarted');
  s = nextStatus(def, s, res('pass', 8));
  t.equal(s.state, 'pass');
  t.equal(s.reason, undefined);
  t.equal(s.lastPassAt, 8);
  t.same(s.runs, { pass: 4, fail: 4 });
});

t.test("a kind's client loads before the clock starts; a failed load is an error result", async (t) => {
  // The import of a client library (undici, pg, the AWS SDK) is not the target's time.
  const slow = makeDef(() => ({ fields: { n: 1 } }), { timeoutMs: 100 });
  let loads = 0;
  const probe = { ...slow.probe, load: () => new Promise((r) => setTimeout(r, 300)).then(() => loads++) };
  const r = await runCheck({ ...slow, probe }, { log });
  t.equal(loads, 1, 'load ran');
  t.equal(r.state, 'pass', 'a load longer than the timeout does not time the run out');
  t.ok(r.durationMs < 250, `duration ${r.durationMs} ms excludes the load`);

  const broken = { ...slow.probe, load: () => Promise.reject(new Error("Cannot find package 'undici'")) };
  const e = await runCheck({ ...slow, probe: broken }, { log });
  t.equal(e.state, 'error');
  t.equal(e.reason, 'error');
  t.match(e.message, "Cannot find package 'undici'");
  t.equal(slow.runs(), 1, 'the probe did not run without its client');
});
