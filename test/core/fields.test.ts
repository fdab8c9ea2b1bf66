// How a condition finds its field and reads its literal, at the edges the operator tests do not
// reach: which family declares a dotted name, which key an observation's value is read from
// (exact keys, walks into objects, null, inherited and empty keys), number spellings that are
// and are not numbers, and values with no JSON form.
import t from 'tap';
import { ConditionError, evaluateCondition, lookupField, parseCondition, resolveField } from '../../src/conditions.js';
import type { FieldSpecs } from '../../src/probes/types.js';

t.test('lookupField: a family is named by a prefix; a name is not its own family', async (t) => {
  const f: FieldSpecs = { 'a.*': 'string', 'a.b.*': { type: 'number', unit: 'ms' } };
  t.same(lookupField(f, 'a.b'), { type: 'string' }, '"a.b" is a member of a.*, not of a.b.*');
  t.same(lookupField(f, 'a.b.c'), { type: 'number', unit: 'ms' });
  t.equal(lookupField({ '.*': 'any' } as FieldSpecs, 'x'), undefined, 'an empty prefix is no family');
  t.same(lookupField({ '.*': 'any' } as FieldSpecs, '.x'), { type: 'any' }, 'but is one for a name with an empty first part');
});

t.test('resolveField: the longest own key, then a walk through own properties', async (t) => {
  t.equal(resolveField({ n: 5 }, 'n'), 5);
  t.equal(resolveField({ n: 0 }, 'n'), 0, 'a falsy value is a value');
  t.equal(resolveField({ 'a.b': 1, a: { b: 2 } }, 'a.b'), 1, 'the exact key wins');
  t.equal(resolveField({ 'a.b': { c: 3 }, a: { b: { c: 4 } } }, 'a.b.c'), 3, 'the longest key first');
  t.equal(resolveField({ 'a.b': undefined, a: { b: 2 } }, 'a.b'), undefined, 'an exact key holding nothing is missing, not a walk');
  t.equal(resolveField({ a: { b: [10, 20] } }, 'a.b.1'), 20, 'array elements by index');
  t.equal(resolveField({ a: null }, 'a.b'), undefined, 'null has no fields');
  t.equal(resolveField({ a: 'text' }, 'a.length'), undefined, 'a string has no fields');
  t.equal(resolveField({ a: Object.create({ b: 1 }) as object }, 'a.b'), undefined, 'inherited properties are not fields');
  t.equal(resolveField({}, 'toString'), undefined, 'nor are the prototype\'s');
  t.equal(resolveField({ '': { x: 1 } }, 'x'), undefined, 'an empty key is not a parent');
  t.equal(resolveField({ '': { x: 1 } }, '.x'), 1, 'but is a key when the name says so');
});

t.test('number literals: what is a number and what is not', async (t) => {
  const fields: FieldSpecs = { n: 'number' };
  const lit = (src: string) => parseCondition(src, fields).literal;
  t.equal(lit('n == .55'), 0.55);
  t.equal(lit('n == 10'), 10);
  t.equal(lit('n == 25e10'), 25e10);
  t.equal(lit('n == 1.5e+10'), 1.5e10);
  t.equal(lit('n == 1e-10'), 1e-10);
  t.equal(lit('n == -.5e2'), -50);
  for (const bad of ['v2', '5x', '1e', '1e+', '--1', '+-1', '1.2.3', 'e5', '.', '-', '0x10', '1_000']) {
    try {
      const got = lit(`n == ${bad}`);
      t.fail(`${bad} is not a number, read as ${String(got)}`);
    } catch (err) {
      t.type(err, ConditionError, bad);
      t.equal((err as Error).message, `cannot read value ${bad} (quote strings: "${bad}")`, bad);
    }
  }
});

t.test('values with no JSON form: shown as undefined, matched as empty text', async (t) => {
  const fields: FieldSpecs = { any: 'any' };
  const fn = () => 1;
  const eq = evaluateCondition(parseCondition('any == "x"', fields), { any: fn });
  t.same(eq, { ok: false, actual: fn, text: 'any == "x" is false (any = undefined)' });
  t.equal(evaluateCondition(parseCondition('any =~ "^$"', fields), { any: fn }).ok, true);
  t.equal(evaluateCondition(parseCondition('any =~ "."', fields), { any: fn }).ok, false);
});

t.test('equality is textual for every literal type', async (t) => {
  const fields: FieldSpecs = { any: 'any', on: 'boolean' };
  const ok = (src: string, v: unknown) => evaluateCondition(parseCondition(src, fields), { any: v, on: v }).ok;
  t.equal(ok('on == true', 'true'), true, 'a boolean written as a string');
  t.equal(ok('on != true', 'true'), false);
  t.equal(ok('on == false', 0), false, '0 is not false');
  t.equal(ok('on == false', ''), false, 'nor is the empty string');
  t.equal(ok('any == "true"', true), true, 'a boolean compared with a string compares as text');
  t.equal(ok('any == "null"', 'null'), true);
});
