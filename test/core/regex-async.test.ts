// The path every run takes: runCheck evaluates conditions with evaluateConditionAsync, which
// matches regexes over long texts (a response body) off the event loop. The answers must be
// the ones evaluateCondition gives on the caller's thread, for short and long texts, =~ and
// !~, strings and other values, and missing fields; and a regex expect or warn must decide the
// run's state like any other condition.
import pino from 'pino';
import t from 'tap';
import { evaluateCondition, evaluateConditionAsync, parseCondition } from '../../src/conditions.js';
import { runCheck } from '../../src/harness.js';
import type { FieldSpecs } from '../../src/probes/types.js';
import { INLINE_MAX_CHARS, SafeRegex } from '../../src/regex.js';
import { makeDef } from '../helpers/checks.js';

const log = pino({ level: 'silent' });
const fields: FieldSpecs = { n: 'number', s: 'string', any: 'any' };
// Longer than the inline limit: matched in the regex worker.
const long = (tail: string) => `${'x'.repeat(INLINE_MAX_CHARS + 10)}${tail}`;

t.test('evaluateConditionAsync answers as evaluateCondition does', async (t) => {
  t.ok(long('').length > INLINE_MAX_CHARS, 'precondition: the long text goes to the worker');
  const cases: [string, Record<string, unknown>, boolean][] = [
    ['s =~ "ready$"', { s: 'state: ready' }, true],
    ['s =~ "ready$"', { s: 'state: down' }, false],
    ['s !~ "ready$"', { s: 'state: ready' }, false],
    ['s !~ "ready$"', { s: 'state: down' }, true],
    ['s =~ "ready$"', { s: long('ready') }, true],
    ['s =~ "ready$"', { s: long('down') }, false],
    ['s !~ "ready$"', { s: long('ready') }, false],
    ['s !~ "ready$"', { s: long('down') }, true],
    ['any =~ "^[{].a.:1}$"', { any: { a: 1 } }, true],
    ['any =~ "^42$"', { any: 42 }, true],
    ['any !~ "^42$"', { any: 42 }, false],
    ['s =~ ".*"', {}, false],
    ['s !~ "x"', { s: null }, false],
    ['n >= 10', { n: 10 }, true],
    ['n >= 10', { n: 9 }, false],
    ['s == "a"', { s: 'a' }, true],
  ];
  for (const [src, obs, want] of cases) {
    const c = parseCondition(src, fields);
    const got = await evaluateConditionAsync(c, obs);
    t.equal(got.ok, want, `${src} on ${JSON.stringify(obs).slice(0, 40)}`);
    t.same(got, evaluateCondition(c, obs), `${src}: the same result, text and actual included`);
  }
  const missing = await evaluateConditionAsync(parseCondition('s =~ ".*"', fields), {});
  t.same(missing, { ok: false, actual: undefined, text: 's =~ ".*" is false (s is missing)' }, 'a missing field matches nothing, not even .*');
});

t.test('runCheck: regex expect and warn decide the state, on short and long bodies', async (t) => {
  const check = (s: string) => runCheck(makeDef(() => ({ fields: { s } }), { expect: ['s =~ "^x"'], warn: ['s !~ "deprecated"'] }), { log });
  const pass = await check(long('fine'));
  t.equal(pass.state, 'pass');
  t.same(pass.conditions.map((c) => [c.source, c.ok]), [['s =~ "^x"', true], ['s !~ "deprecated"', true]]);
  const warn = await check(long('deprecated'));
  t.equal(warn.state, 'warn', 'the warn regex matched in the worker');
  t.match(warn.message, /^s !~ "deprecated" is false \(s = "x{77}\.\.\."\)$/);
  const fail = await check(`y${long('deprecated')}`);
  t.equal(fail.state, 'fail', 'the failing expect wins over the failing warn');
  t.equal(fail.reason, 'condition');
  t.same(fail.conditions.map((c) => c.ok), [false, false], 'each condition gets its own answer');
  const short = await check('x deprecated');
  t.equal(short.state, 'warn', 'the same on a short body');
  t.same(short.conditions.map((c) => c.ok), [true, false]);
});

t.test('the async path matches a present value with SafeRegex.test (long texts off the event loop), nothing else', async (t) => {
  const calls: string[] = [];
  const original = SafeRegex.prototype.test;
  SafeRegex.prototype.test = function (this: SafeRegex, text: string) {
    calls.push(text);
    return original.call(this, text);
  };
  t.teardown(() => {
    SafeRegex.prototype.test = original;
  });
  const body = long('ready');
  t.equal((await evaluateConditionAsync(parseCondition('s =~ "ready$"', fields), { s: body })).ok, true);
  t.same(calls, [body], 'the regex went through SafeRegex.test with the text');
  calls.length = 0;
  t.equal((await evaluateConditionAsync(parseCondition('any =~ "^42$"', fields), { any: 42 })).ok, true);
  t.same(calls, ['42'], 'a non-string as its JSON');
  calls.length = 0;
  t.equal((await evaluateConditionAsync(parseCondition('s =~ ".*"', fields), {})).ok, false);
  t.equal((await evaluateConditionAsync(parseCondition('n >= 1', fields), { n: 2 })).ok, true);
  t.same(calls, [], 'a missing field and a non-regex condition are not matched at all');
});
