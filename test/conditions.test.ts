// The condition language: parsing against declared fields, literals, units, and evaluation.
import t from 'tap';
import { ConditionError, evaluateCondition, parseCondition, resolveField } from '../src/conditions.js';
import { formatDuration, parseDuration } from '../src/config/duration.js';
import type { FieldSpecs } from '../src/probes/types.js';

const fields: FieldSpecs = {
  status: 'number',
  duration_ms: { type: 'number', unit: 'ms' },
  age: { type: 'number', unit: 's' },
  days_left: { type: 'number', unit: 'days' },
  open: 'boolean',
  body: 'string',
  'json.*': 'any',
  'header.*': 'string',
};

t.test('durations', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('1h30m'), 5_400_000);
  t.equal(parseDuration('30d'), 30 * 86_400_000);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('5 minutes'), undefined);
  t.equal(parseDuration('10'), undefined, 'a bare number is not a duration');
  t.equal(parseDuration(''), undefined);
  t.equal(formatDuration(90_000), '1m30s');
  t.equal(formatDuration(250), '250ms');
});

t.test('evaluates every operator on real values', async (t) => {
  const obs = { status: 200, duration_ms: 420, age: 7200, days_left: 29.5, open: false, body: 'http_requests_total 5', json: { info: { version: '1.4.2' }, items: [1, 2, 3] }, 'header.cache-control': 'public, max-age=3600' };
  const table: [string, boolean][] = [
    ['status == 200', true],
    ['status != 200', false],
    ['duration_ms < 500ms', true],
    ['duration_ms < 0.4s', false],
    ['age <= 2h', true],
    ['age > 1h', true],
    ['days_left >= 30', false],
    ['days_left >= 29d', true],
    ['open == false', true],
    ['open == true', false],
    ['body =~ "http_requests_total"', true],
    ['body !~ "http_requests_total"', false],
    ['json.info.version == "1.4.2"', true],
    ["json.info.version == '1.4.3'", false],
    ['len(json.items) == 3', true],
    ['len(body) > 100', false],
    ['header.cache-control =~ "max-age=\\d+"', true],
    ['json.info.missing == "x"', false],
  ];
  for (const [src, want] of table) {
    const c = parseCondition(src, fields);
    t.equal(evaluateCondition(c, obs).ok, want, src);
  }
});

t.test('messages name the condition and the value seen', async (t) => {
  const c = parseCondition('days_left >= 30', fields);
  t.equal(evaluateCondition(c, { days_left: 9.61234 }).text, 'days_left >= 30 is false (days_left = 9.612)');
  const m = parseCondition('json.version == "2"', fields);
  t.equal(evaluateCondition(m, { json: {} }).text, 'json.version == "2" is false (json.version is missing)');
});

t.test('rejections carry the column of the offending token', async (t) => {
  const cases: [string, RegExp, number][] = [
    ['nope == 1', /unknown field "nope"/, 0],
    ['status = 200', /expected an operator/, 7],
    ['status == "ok"', /"status" is a number/, 10],
    ['status < "a"', /< compares numbers/, 9],
    ['body > 3', /"body" is a string: use == != =~ !~, or len\(body\)/, 5],
    ['status == 5m', /duration 5m needs a field with a time unit/, 10],
    ['body =~ 3', /=~ needs a quoted regular expression/, 8],
    ['body =~ "("', /invalid regular expression/, 8],
    ['status ==', /expected a value after "=="/, 9],
    ['open == maybe', /cannot read value maybe/, 8],
    ['body == "unterminated', /unterminated string/, 8],
    ['len(body == 3', /expected "\)"/, 9],
    ['== 3', /expected a field name/, 0],
  ];
  for (const [src, re, col] of cases) {
    try {
      parseCondition(src, fields);
      t.fail(`${src} should be rejected`);
    } catch (err) {
      t.type(err, ConditionError, src);
      t.match((err as Error).message, re, src);
      t.equal((err as ConditionError).column, col, `${src}: column`);
    }
  }
});

t.test('field resolution prefers exact keys, then walks objects', async (t) => {
  t.equal(resolveField({ 'a.b': 1, a: { b: 2 } }, 'a.b'), 1);
  t.equal(resolveField({ a: { b: { c: 'x' } } }, 'a.b.c'), 'x');
  t.equal(resolveField({ a: { b: 1 } }, 'a.b.c'), undefined);
  t.equal(resolveField({}, 'x'), undefined);
});

t.test('numbers given as strings compare as numbers; NaN only satisfies !=', async (t) => {
  const gt = parseCondition('json.count > 5', fields);
  t.equal(evaluateCondition(gt, { json: { count: '7' } }).ok, true);
  t.equal(evaluateCondition(gt, { json: { count: 'many' } }).ok, false);
  const ne = parseCondition('json.count != 5', fields);
  t.equal(evaluateCondition(ne, { json: { count: 'many' } }).ok, true);
});
