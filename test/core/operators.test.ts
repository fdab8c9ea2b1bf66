// The condition operators at their edges: every ordering operator below, AT and above its
// limit (`>=` is not `>`), equality across types, regexes on non-strings, len() of each
// shape, missing fields, and the parse errors' exact messages and columns.
import t from 'tap';
import { ConditionError, evaluateCondition, lookupField, parseCondition } from '../../src/conditions.js';
import type { FieldSpecs } from '../../src/probes/types.js';
import { SafeRegex } from '../../src/regex.js';

const fields: FieldSpecs = {
  n: 'number',
  ms: { type: 'number', unit: 'ms' },
  secs: { type: 'number', unit: 's' },
  days: { type: 'number', unit: 'days' },
  on: 'boolean',
  s: 'string',
  any: 'any',
  'json.*': 'any',
  'label.*': { type: 'number', unit: 's' },
};
const ok = (src: string, obs: Record<string, unknown>) => evaluateCondition(parseCondition(src, fields), obs).ok;

t.test('ordering operators below, at and above the limit', async (t) => {
  // [operator, below, at, above]
  const table: [string, boolean, boolean, boolean][] = [
    ['<', true, false, false],
    ['<=', true, true, false],
    ['>', false, false, true],
    ['>=', false, true, true],
    ['==', false, true, false],
    ['!=', true, false, true],
  ];
  for (const [op, below, at, above] of table) {
    t.equal(ok(`n ${op} 10`, { n: 9.999 }), below, `9.999 ${op} 10`);
    t.equal(ok(`n ${op} 10`, { n: 10 }), at, `10 ${op} 10`);
    t.equal(ok(`n ${op} 10`, { n: 10.001 }), above, `10.001 ${op} 10`);
    // The same at a negative and a fractional limit, and with the value as a numeric string.
    t.equal(ok(`n ${op} -0.5`, { n: -0.5 }), at, `-0.5 ${op} -0.5`);
    t.equal(ok(`n ${op} 10`, { n: '10' }), at, `"10" ${op} 10`);
    t.equal(ok(`n ${op} 10`, { n: ' 11 ' }), above, `" 11 " ${op} 10`);
  }
});

t.test('durations convert to the field\'s unit, then compare at the limit', async (t) => {
  t.equal(ok('ms >= 1.5s', { ms: 1500 }), true);
  t.equal(ok('ms > 1.5s', { ms: 1500 }), false);
  t.equal(ok('secs <= 2m', { secs: 120 }), true);
  t.equal(ok('secs < 2m', { secs: 120 }), false);
  t.equal(ok('days >= 30d', { days: 30 }), true);
  t.equal(ok('days >= 30d', { days: 29.99 }), false);
  t.equal(ok('label.x < 1h', { 'label.x': 3599 }), true, 'a family member has the family\'s unit');
  t.equal(parseCondition('days > 12h', fields).literal, 0.5);
});

t.test('not a number: only != holds', async (t) => {
  for (const v of ['many', '', '   ', {}, [], true]) {
    t.equal(ok('n != 1', { n: v }), true, `${JSON.stringify(v)} != 1`);
    for (const op of ['==', '<', '<=', '>', '>=']) t.equal(ok(`n ${op} 1`, { n: v }), false, `${JSON.stringify(v)} ${op} 1`);
  }
});

t.test('equality of booleans and strings', async (t) => {
  t.equal(ok('on == true', { on: true }), true);
  t.equal(ok('on == true', { on: false }), false);
  t.equal(ok('on != true', { on: false }), true);
  t.equal(ok('on == false', { on: 'false' }), true, 'a boolean written as a string');
  t.equal(ok('on == true', { on: 1 }), false, '1 is not true');
  t.equal(ok('s == "open"', { s: 'open' }), true);
  t.equal(ok('s == "open"', { s: 'Open' }), false, 'case matters');
  t.equal(ok('s != "open"', { s: 'closed' }), true);
  t.equal(ok('s != "open"', { s: 'open' }), false);
  t.equal(ok('any == "5"', { any: 5 }), true, 'a number compared with a string compares as text');
  t.equal(ok("s == 'it\\'s'", { s: "it's" }), true, 'an escaped quote is unescaped');
  t.equal(parseCondition('s == "a\\d"', fields).literal, 'a\\d', 'other backslashes are kept');
});

t.test('regexes: on strings, and on other values as JSON', async (t) => {
  t.equal(ok('s =~ "^v1\\."', { s: 'v1.4' }), true);
  t.equal(ok('s =~ "^v1\\."', { s: 'v2.4' }), false);
  t.equal(ok('s !~ "^v1\\."', { s: 'v2.4' }), true);
  t.equal(ok('s !~ "^v1\\."', { s: 'v1.4' }), false);
  t.equal(ok('any =~ "^[{].a.:1}$"', { any: { a: 1 } }), true, 'an object is matched as its JSON');
  t.equal(ok('any =~ "^42$"', { any: 42 }), true);
  t.type(parseCondition('s =~ "x"', fields).literal, SafeRegex, 'RE2 (src/regex.ts): linear time whatever the text');
});

t.test('len() of strings, arrays and objects', async (t) => {
  t.equal(ok('len(s) == 3', { s: 'abc' }), true);
  t.equal(ok('len(json.items) >= 2', { json: { items: [1, 2] } }), true);
  t.equal(ok('len(json.items) > 2', { json: { items: [1, 2] } }), false);
  t.equal(ok('len(json.map) == 2', { json: { map: { a: 1, b: 2 } } }), true);
  const r = evaluateCondition(parseCondition('len(s) < 2', fields), { s: 'abc' });
  t.same(r, { ok: false, actual: 3, text: 'len(s) < 2 is false (len(s) = 3)' });
  t.equal(parseCondition(' len( s ) == 1', fields).len, true, 'spaces inside len()');
  t.equal(parseCondition('len(s) == 1', fields).field, 's');
});

t.test('missing and null fields never satisfy a condition, != included', async (t) => {
  for (const obs of [{}, { n: null }]) {
    for (const op of ['==', '!=', '<', '>']) {
      const r = evaluateCondition(parseCondition(`n ${op} 1`, fields), obs);
      t.same(r, { ok: false, actual: undefined, text: `n ${op} 1 is false (n is missing)` }, `${JSON.stringify(obs)}: n ${op} 1`);
    }
  }
});

t.test('messages: the value seen, rounded and shortened', async (t) => {
  const text = (src: string, obs: Record<string, unknown>) => evaluateCondition(parseCondition(src, fields), obs).text;
  t.equal(text('n > 1', { n: 2 }), 'n > 1 is true (n = 2)');
  t.equal(text('n > 1', { n: 0.12345 }), 'n > 1 is false (n = 0.123)');
  t.equal(text('s == "x"', { s: 'y' }), 's == "x" is false (s = "y")');
  t.equal(text('s == "x"', { s: 'a'.repeat(81) }), `s == "x" is false (s = "${'a'.repeat(77)}...")`);
  t.equal(text('s == "x"', { s: 'a'.repeat(80) }), `s == "x" is false (s = "${'a'.repeat(80)}")`, '80 characters are shown whole');
  t.equal(text('on == true', { on: false }), 'on == true is false (on = false)');
  t.equal(text('any == "x"', { any: { a: [1] } }), 'any == "x" is false (any = {"a":[1]})');
});

t.test('literals: numbers in every spelling, booleans, and what is not a value', async (t) => {
  const lit = (src: string) => parseCondition(src, fields).literal;
  t.equal(lit('n == 1e3'), 1000);
  t.equal(lit('n == -2.5'), -2.5);
  t.equal(lit('n == +.5'), 0.5);
  t.equal(lit('n == 3.'), 3);
  t.equal(lit('n == 2E-2'), 0.02);
  t.equal(lit('on == true'), true);
  t.equal(lit('on == false'), false);
  t.equal(lit('s == ""'), '');
  t.equal(lit('n == 5   '), 5, 'trailing spaces are not part of the value');
  t.equal(parseCondition('  n   >=   5', fields).op, '>=');
  t.equal(parseCondition('n>=5', fields).op, '>=', 'no spaces needed');
  t.equal(parseCondition('n<=5', fields).op, '<=');
  t.equal(parseCondition('n!=5', fields).op, '!=');
  t.equal(parseCondition('s!~"x"', fields).op, '!~');
});

t.test('parse errors: exact message and column', async (t) => {
  const cases: [string, string, number][] = [
    ['', 'expected a field name at "<end>"', 0],
    ['  9n == 1', 'expected a field name at "9n == 1"', 2],
    ['len(n', 'expected ")" after len(FIELD', 5],
    ['x == 1', 'unknown field "x" (this probe reports: n, ms, secs, days, on, s, any, json.*, label.*)', 0],
    ['n ~= 1', 'expected an operator (== != <= >= =~ !~ < >) after "n"', 2],
    ['n >= ', 'expected a value after ">="', 5],
    ['s =~ "["', 'invalid regular expression: error parsing regexp: missing closing ]: `[`', 5],
    ['s =~ x', 'cannot read value x (quote strings: "x")', 5],
    ['n >= true', '>= compares numbers, got true', 5],
    ['n == "1"', '"n" is a number, cannot compare it with "1"', 5],
    ['on == 1', '"on" is true or false, cannot compare it with 1', 6],
    ['s > 1', '"s" is a string: use == != =~ !~, or len(s)', 2],
    ['n == 5m', 'duration 5m needs a field with a time unit; this field is a plain number', 5],
    ['len(ms) > 5m', 'duration 5m needs a field with a time unit; this field is a plain number', 10],
    ['s == "x', 'unterminated string "x', 5],
    ['s == "', 'unterminated string "', 5],
    ['n == 1 2', 'cannot read value 1 2 (quote strings: "1 2")', 5],
  ];
  for (const [src, msg, col] of cases) {
    try {
      parseCondition(src, fields);
      t.fail(`${src} should be rejected`);
    } catch (err) {
      t.type(err, ConditionError, src);
      t.equal((err as Error).message, msg, src);
      t.equal((err as ConditionError).column, col, `${src}: column`);
    }
  }
});

t.test('lookupField: exact names, then the nearest family', async (t) => {
  const f: FieldSpecs = { a: 'number', 'a.*': 'string', 'a.b.*': { type: 'number', unit: 'ms' } };
  t.same(lookupField(f, 'a'), { type: 'number' });
  t.same(lookupField(f, 'a.x'), { type: 'string' });
  t.same(lookupField(f, 'a.b.c'), { type: 'number', unit: 'ms' }, 'the nearest family wins');
  t.same(lookupField(f, 'a.x.y'), { type: 'string' });
  t.equal(lookupField(f, 'b'), undefined);
  t.equal(lookupField(f, 'b.c'), undefined);
  t.equal(lookupField({ '*': 'any' } as FieldSpecs, 'x'), undefined, 'no family at the top level');
});

t.test('survivors of the 1 Dec whole-file mutation run', async (t) => {
  // A number literal with several digits before its decimal point is one number.
  t.equal(parseCondition('n == 12.5', fields).literal, 12.5);
  t.equal(ok('n == 12.5', { n: 12.5 }), true);
  t.equal(parseCondition('n >= 100.25', fields).literal, 100.25);
  // len() is a number whatever the field's type: compared with a string it is rejected at load.
  t.throws(() => parseCondition('len(s) == "a"', fields), /is a number, cannot compare it with "a"/);
  t.throws(() => parseCondition('len(any) == "abc"', fields), /is a number, cannot compare it with "abc"/);
  // A field present as null reads as absent: no condition holds on it, not even `!= 1`.
  const nul = evaluateCondition(parseCondition('any != 1', fields), { any: null });
  const missing = evaluateCondition(parseCondition('any != 1', fields), {});
  t.same(nul, missing, 'null is read as a missing field');
});
