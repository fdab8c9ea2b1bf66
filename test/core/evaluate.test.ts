// How one observation becomes a state (harness.evaluate), and how runs fold into a status
// (nextStatus: failAfter/passAfter). Every combination of failing expect and warn conditions,
// the precedence of error, no data and probe failure, and the hysteresis at its thresholds.
import pino from 'pino';
import t from 'tap';
import { dependencyResult, evaluate, nextStatus, runCheck } from '../../src/harness.js';
import type { CheckStatus, RunResult, RunState } from '../../src/store/types.js';
import { makeDef } from '../helpers/checks.js';

const log = pino({ level: 'silent' });
const obs = (n: number, over: object = {}) => ({ value: n, fields: { n }, ...over });

t.test('expect and warn: a failing expect wins over a failing warn', async (t) => {
  const def = makeDef(() => obs(0), { expect: ['n >= 10'], warn: ['n >= 20'] });
  // n = 5 fails both: fail, with only the expect in the message.
  const both = evaluate(def, obs(5));
  t.equal(both.state, 'fail', 'both failing: fail, not warn');
  t.equal(both.reason, 'condition');
  t.equal(both.message, 'n >= 10 is false (n = 5)');
  t.same(both.conditions.map((c) => [c.source, c.ok]), [['n >= 10', false], ['n >= 20', false]], 'both outcomes are reported');
  t.equal(both.value, 5);

  const warn = evaluate(def, obs(15));
  t.equal(warn.state, 'warn');
  t.equal(warn.message, 'n >= 20 is false (n = 15)');
  t.equal(warn.reason, undefined, 'warn has no failure reason');

  const pass = evaluate(def, obs(25));
  t.equal(pass.state, 'pass');
  t.equal(pass.message, 'n >= 10 is true (n = 25)', 'a pass says what held');
  t.same(pass.conditions.map((c) => c.ok), [true, true]);
});

t.test('several failing conditions are all named; a probe message wins on pass', async (t) => {
  const def = makeDef(() => obs(0), { expect: ['n >= 10', 'n < 3'], warn: ['n >= 20', 'n != 5'] });
  t.equal(evaluate(def, obs(5)).message, 'n >= 10 is false (n = 5); n < 3 is false (n = 5)');
  const def2 = makeDef(() => obs(0), { expect: ['n >= 1'], warn: ['n >= 20', 'n != 5'] });
  t.equal(evaluate(def2, obs(5)).message, 'n >= 20 is false (n = 5); n != 5 is false (n = 5)');
  t.equal(evaluate(def2, obs(30, { message: 'from the probe' })).message, 'from the probe');
  t.equal(evaluate(makeDef(() => obs(0)), obs(1)).message, 'ok', 'no conditions and no probe message');
  t.equal(evaluate(makeDef(() => obs(0), { warn: ['n > 3'] }), obs(1)).state, 'warn', 'warn alone');
});

t.test('precedence: error, then no data, then probe failure, then conditions', async (t) => {
  const def = makeDef(() => obs(0), { expect: ['n >= 10'], warn: ['n >= 20'] });
  const error = evaluate(def, obs(50, { error: { reason: 'refused', message: 'connect ECONNREFUSED' }, noData: true, failure: { reason: 'tls', message: 'x' } }));
  t.same(error, { state: 'error', reason: 'refused', message: 'connect ECONNREFUSED', conditions: [], value: 50 });

  const nd = { fields: {}, noData: true };
  t.same(evaluate(def, nd), { state: 'error', reason: 'no-data', message: 'the query returned no data', conditions: [] });
  t.same(evaluate(makeDef(() => nd, { onNoData: 'fail' }), { ...nd, message: 'empty vector' }), { state: 'fail', reason: 'no-data', message: 'empty vector', conditions: [] });
  t.same(evaluate(makeDef(() => nd, { onNoData: 'pass' }), nd), { state: 'pass', message: 'the query returned no data', conditions: [] }, 'a pass has no reason');

  const failure = evaluate(def, obs(50, { failure: { reason: 'tls', message: 'chain does not verify' } }));
  t.match(failure, { state: 'fail', reason: 'tls', message: 'chain does not verify', value: 50 });
  t.equal(failure.conditions.length, 2, 'conditions are still evaluated and shown');
});

t.test('the value: valueField, booleans, numeric strings, and nothing made up', async (t) => {
  t.equal(evaluate(makeDef(() => obs(0), { valueField: 'n' }), { value: 1, fields: { n: 42 } }).value, 42, 'valueField wins over the probe value');
  t.equal(evaluate(makeDef(() => obs(0), { valueField: 'ok' }), { fields: { ok: true } }).value, 1);
  t.equal(evaluate(makeDef(() => obs(0), { valueField: 'ok' }), { fields: { ok: false } }).value, 0);
  t.equal(evaluate(makeDef(() => obs(0), { valueField: 's' }), { fields: { s: ' 2.5 ' } }).value, 2.5);
  t.equal(evaluate(makeDef(() => obs(0), { valueField: 's' }), { fields: { s: '   ' } }).value, undefined, 'a blank string is not 0');
  t.equal(evaluate(makeDef(() => obs(0), { valueField: 's' }), { fields: { s: 'abc' } }).value, undefined);
  t.equal(evaluate(makeDef(() => obs(0)), { value: Infinity, fields: {} }).value, undefined, 'not finite: no value');
  t.notOk('value' in evaluate(makeDef(() => obs(0)), { fields: {} }), 'no value key at all');
});

t.test('dependencyResult: an error naming the dependency and its state', async (t) => {
  const r = dependencyResult(makeDef(() => obs(0), { id: 'app' }), 'db', 'stale', 1234);
  t.same(r, { check: 'app', state: 'error', reason: 'dependency', message: 'not run: depends on db, which is stale', startedAt: 1234, finishedAt: 1234, durationMs: 0, conditions: [] });
});

const run = (state: RunState, at: number, over: Partial<RunResult> = {}): RunResult => ({ check: 'c1', state, message: `${state} at ${at}`, startedAt: at, finishedAt: at, durationMs: 1, conditions: [], ...over });

function fold(def: ReturnType<typeof makeDef>, states: RunState[], over: (i: number) => Partial<RunResult> = () => ({})): CheckStatus[] {
  const out: CheckStatus[] = [];
  let prev: CheckStatus | undefined;
  states.forEach((s, i) => {
    prev = nextStatus(def, prev, run(s, 1000 + i, over(i)));
    out.push(prev);
  });
  return out;
}

t.test('nextStatus: failAfter and passAfter at their thresholds', async (t) => {
  const def = makeDef(() => obs(0), { failAfter: 3, passAfter: 2 });
  const seq = fold(def, ['pass', 'fail', 'error', 'fail', 'warn', 'pass', 'fail']);
  t.same(seq.map((s) => s.state), ['pass', 'pass', 'pass', 'fail', 'fail', 'pass', 'pass']);
  t.same(seq.map((s) => s.streak), [1, 1, 2, 3, 1, 2, 1], 'fail and error count together; pass and warn count together');
  t.equal(seq[1]!.message, 'still pass: 1 of 3 consecutive runs needed to change; latest run fail: fail at 1001');
  t.equal(seq[4]!.message, 'still fail: 1 of 2 consecutive runs needed to change; latest run warn: warn at 1004');
  t.equal(seq[3]!.message, 'fail at 1003', 'adopted: the run\'s own message');
  t.same(seq[6]!.runs, { pass: 2, fail: 3, error: 1, warn: 1 });
  t.same(seq[3]!.last, run('fail', 1003), 'the latest run is kept even while held');
  t.equal(seq[0]!.lastPassAt, 1000);
  t.equal(seq[3]!.lastPassAt, 1000, 'no pass since');
  t.equal(seq[4]!.lastPassAt, 1004, 'a warn run is a pass for lastPassAt, even while held');

  // The very first run is adopted whatever failAfter says.
  t.equal(fold(def, ['fail'])[0]!.state, 'fail');
  // failAfter 1 flips at once.
  t.same(fold(makeDef(() => obs(0)), ['pass', 'fail', 'pass']).map((s) => s.state), ['pass', 'fail', 'pass']);
  // Within the same side, a run is always adopted (warn after pass, error after fail).
  t.same(fold(def, ['pass', 'warn']).map((s) => s.state), ['pass', 'warn']);
  t.same(fold(def, ['fail', 'error']).map((s) => s.state), ['fail', 'error']);
});

t.test('nextStatus: reason and value while held and when adopted', async (t) => {
  const def = makeDef(() => obs(0), { failAfter: 2 });
  const seq = fold(def, ['fail', 'pass', 'pass'], (i) => (i === 0 ? { reason: 'condition', value: 1 } : i === 1 ? {} : { value: 3 }));
  t.match(seq[0], { state: 'fail', reason: 'condition', value: 1 });
  // passAfter is 1: adopted at once, with the run's own (absent) reason and value.
  t.equal(seq[1]!.state, 'pass');
  t.notOk('reason' in seq[1]!, 'the pass has no reason');
  t.notOk('value' in seq[1]!, 'and no value of the earlier fail');
  t.equal(seq[2]!.value, 3);

  const held = fold(makeDef(() => obs(0), { passAfter: 2 }), ['fail', 'pass'], (i) => (i === 0 ? { reason: 'timeout', value: 9 } : {}));
  t.match(held[1], { state: 'fail', reason: 'timeout', value: 9 }, 'held: the earlier reason and value');
  const heldNew = fold(makeDef(() => obs(0), { passAfter: 2 }), ['fail', 'pass'], (i) => (i === 0 ? { value: 9 } : { value: 4 }));
  t.equal(heldNew[1]!.value, 4, 'held, but the latest run measured a value: shown');
});

t.test('runCheck: error message, reason and redaction of the result', async (t) => {
  const secret = 'hunter2-secret';
  const r = await runCheck(
    makeDef(() => obs(5, { failure: { reason: 'http', message: `401 for token ${secret}\n  retry  later` } }), { secrets: [secret], expect: ['n > 10'] }),
    { log },
  );
  t.equal(r.state, 'fail');
  t.equal(r.message, '401 for token *** retry later', 'one line, secret scrubbed');
  const thrown = await runCheck(makeDef(() => Promise.reject(new Error(''))), { log });
  t.match(thrown, { state: 'error', reason: 'error', message: 'error' }, 'an empty message falls back to the reason');
  const str = await runCheck(makeDef(() => Promise.reject('plain string')), { log });
  t.match(str, { state: 'error', message: 'plain string' });
});

t.test('a marksDeployment check reports the release it saw, timed when the probe knows when', async (t) => {
  const run = (fields: Record<string, unknown>, marks = true) => runCheck(makeDef(() => ({ fields }), { marksDeployment: marks }), { log });
  t.same((await run({ version: '1.4.2', rolled_out_at: 1_700_000_000 })).release, { version: '1.4.2', at: 1_700_000_000_000 }, 'seconds become ms');
  t.same((await run({ version: '1.4.2' })).release, { version: '1.4.2' }, 'no time: none made up');
  t.same((await run({ version: '1.4.2', rolled_out_at: Infinity })).release, { version: '1.4.2' });
  t.same((await run({ version: '1.4.2', rolled_out_at: '1700000000' })).release, { version: '1.4.2' }, 'a time must be a number');
  t.equal((await run({ version: '' })).release, undefined, 'an empty version is no release');
  t.equal((await run({ version: 7 })).release, undefined, 'nor is a number');
  t.equal((await run({ version: '1.4.2' }, false)).release, undefined, 'only marksDeployment checks report one');
});
