// The condition language of `expect:` and `warn:`: `FIELD OP LITERAL` or `len(FIELD) OP LITERAL`.
// Parsed once when the checklist loads into a small closure tree; nothing is ever eval'd.
// Operators: == != < <= > >= =~ !~. Literals: numbers, durations (30d, 500ms: converted
// to the field's unit), quoted strings, true/false.
// Regexes are RE2 (src/regex.ts): linear time whatever the pattern and the target's text.
import { parseDuration } from './config/duration.js';
import type { FieldSpec, FieldSpecs } from './probes/types.js';
import { RegexSyntaxError, SafeRegex } from './regex.js';

export type Op = '==' | '!=' | '<' | '<=' | '>' | '>=' | '=~' | '!~';
type Literal = number | string | boolean | SafeRegex;

export interface Condition {
  /** The condition as written. */
  source: string;
  field: string;
  len: boolean;
  op: Op;
  literal: Literal;
}

export interface ConditionResult {
  ok: boolean;
  /** The value the condition saw (undefined when the field is missing). */
  actual: unknown;
  /** `days_left >= 30 is false (days_left = 9.6)`: for messages. */
  text: string;
}

/** A parse error with the 0-based column inside the condition string. */
export class ConditionError extends Error {
  constructor(
    message: string,
    readonly column: number,
  ) {
    super(message);
  }
}

const UNIT_FROM_MS = { ms: 1, s: 1000, days: 86_400_000 } as const;
const OPS: readonly Op[] = ['==', '!=', '<=', '>=', '=~', '!~', '<', '>'];
const FIELD_RE = /[A-Za-z_][A-Za-z0-9_.*-]*/y;

/** Finds the declaration of a field: exact name, or the nearest `prefix.*` family. */
export function lookupField(fields: FieldSpecs, name: string): FieldSpec | undefined {
  const spec = fields[name];
  if (spec !== undefined) return typeof spec === 'string' ? { type: spec } : spec;
  const parts = name.split('.');
  for (let i = parts.length - 1; i > 0; i--) {
    const fam = fields[`${parts.slice(0, i).join('.')}.*`];
    if (fam !== undefined) return typeof fam === 'string' ? { type: fam } : fam;
  }
  return undefined;
}

/**
 * Parses one condition against the fields a probe declares. Throws ConditionError with the
 * column of the offending token; every message is one line.
 */
export function parseCondition(source: string, fields: FieldSpecs): Condition {
  let pos = 0;
  // charAt is '' past the end: the loop stops there.
  const skipWs = () => {
    while (/\s/.test(source.charAt(pos))) pos++;
  };
  skipWs();
  let len = false;
  if (source.startsWith('len(', pos)) {
    len = true;
    pos += 4;
    skipWs();
  }
  FIELD_RE.lastIndex = pos;
  const fm = FIELD_RE.exec(source);
  if (!fm) throw new ConditionError(`expected a field name at "${source.slice(pos) || '<end>'}"`, pos);
  const fieldCol = pos;
  const field = fm[0];
  pos = FIELD_RE.lastIndex;
  skipWs();
  if (len) {
    if (source[pos] !== ')') throw new ConditionError('expected ")" after len(FIELD', pos);
    pos++;
    skipWs();
  }
  const spec = lookupField(fields, field);
  if (!spec) {
    const known = Object.keys(fields).join(', ');
    throw new ConditionError(`unknown field "${field}" (this probe reports: ${known})`, fieldCol);
  }
  const opCol = pos;
  const op = OPS.find((o) => source.startsWith(o, pos));
  if (!op) throw new ConditionError(`expected an operator (${OPS.join(' ')}) after "${field}"`, pos);
  pos += op.length;
  skipWs();
  const litCol = pos;
  const raw = source.slice(pos).trimEnd();
  if (raw === '') throw new ConditionError(`expected a value after "${op}"`, pos);
  const literal = parseLiteral(raw, litCol, spec, len);

  const regexOp = op === '=~' || op === '!~';
  if (regexOp) {
    if (typeof literal !== 'string') throw new ConditionError(`${op} needs a quoted regular expression`, litCol);
    try {
      return { source, field, len, op, literal: SafeRegex.compile(literal) };
    } catch (err) {
      // Stryker disable next-line ConditionalExpression: SafeRegex.compile throws nothing but RegexSyntaxError for a pattern
      if (!(err instanceof RegexSyntaxError)) throw err;
      throw new ConditionError(`invalid regular expression: ${err.message}`, litCol);
    }
  }
  const ordering = op !== '==' && op !== '!=';
  if (ordering && typeof literal !== 'number') {
    throw new ConditionError(`${op} compares numbers, got ${JSON.stringify(literal)}`, litCol);
  }
  const effectiveType = len ? 'number' : spec.type;
  if (effectiveType === 'number' && typeof literal !== 'number') {
    throw new ConditionError(`"${field}" is a number, cannot compare it with ${JSON.stringify(literal)}`, litCol);
  }
  if (effectiveType === 'boolean' && typeof literal !== 'boolean') {
    throw new ConditionError(`"${field}" is true or false, cannot compare it with ${JSON.stringify(literal)}`, litCol);
  }
  if (effectiveType === 'string' && ordering) {
    throw new ConditionError(`"${field}" is a string: use == != =~ !~, or len(${field})`, opCol);
  }
  return { source, field, len, op, literal };
}

function parseLiteral(raw: string, col: number, spec: FieldSpec, len: boolean): Literal {
  const q = raw[0];
  if (q === '"' || q === "'") {
    if (raw.length < 2 || raw[raw.length - 1] !== q) throw new ConditionError(`unterminated string ${raw}`, col);
    // Backslash escapes are kept for regexes; only the quote itself is unescaped.
    return raw.slice(1, -1).replaceAll(`\\${q}`, q);
  }
  if (raw === 'true' || raw === 'false') return raw === 'true';
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(raw)) return Number(raw);
  const ms = parseDuration(raw);
  if (ms !== undefined) {
    if (len || !spec.unit) {
      throw new ConditionError(`duration ${raw} needs a field with a time unit; this field is a plain number`, col);
    }
    return ms / UNIT_FROM_MS[spec.unit];
  }
  throw new ConditionError(`cannot read value ${raw} (quote strings: "${raw}")`, col);
}

/** Reads a field from an observation's fields: an exact key first, then a walk into nested objects. */
export function resolveField(fields: Record<string, unknown>, name: string): unknown {
  const parts = name.split('.');
  // The longest key first: the whole name (i = parts.length), then shorter heads walked into.
  for (let i = parts.length; i > 0; i--) {
    const head = parts.slice(0, i).join('.');
    if (!Object.hasOwn(fields, head)) continue;
    let cur: unknown = fields[head];
    for (const p of parts.slice(i)) {
      if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, p)) return undefined;
      cur = (cur as Record<string, unknown>)[p];
    }
    return cur;
  }
  return undefined;
}

function show(v: unknown): string {
  if (typeof v === 'number') return String(Math.round(v * 1000) / 1000);
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v);
  return JSON.stringify(v) ?? 'undefined';
}

/** The value a condition compares: the field, or its length; undefined when missing. */
function actualOf(c: Condition, fields: Record<string, unknown>): unknown {
  const actual = resolveField(fields, c.field);
  if (actual === undefined || actual === null) return undefined;
  if (!c.len) return actual;
  // Object.keys gives a string's and an array's length too: the test only spares listing a long body's keys.
  // Stryker disable next-line ConditionalExpression,LogicalOperator,StringLiteral: equivalent, see above
  return typeof actual === 'string' || Array.isArray(actual) ? actual.length : Object.keys(actual as object).length;
}

const regexText = (actual: unknown) => (typeof actual === 'string' ? actual : (JSON.stringify(actual) ?? ''));

/**
 * Evaluates on the caller's thread. For a regex condition over a long text (a response
 * body) use evaluateConditionAsync, which matches long texts off the event loop.
 */
export function evaluateCondition(c: Condition, fields: Record<string, unknown>, matched?: boolean): ConditionResult {
  const actual = actualOf(c, fields);
  const label = c.len ? `len(${c.field})` : c.field;
  if (actual === undefined) {
    return { ok: false, actual: undefined, text: `${c.source} is false (${c.field} is missing)` };
  }
  const ok = compare(c.op, actual, c.literal, matched);
  return { ok, actual, text: `${c.source} is ${ok ? 'true' : 'false'} (${label} = ${show(actual)})` };
}

/** Like evaluateCondition; a regex over a long text is matched in the regex worker. */
export async function evaluateConditionAsync(c: Condition, fields: Record<string, unknown>): Promise<ConditionResult> {
  if (!(c.literal instanceof SafeRegex)) return evaluateCondition(c, fields);
  const actual = actualOf(c, fields);
  if (actual === undefined) return evaluateCondition(c, fields);
  return evaluateCondition(c, fields, await c.literal.test(regexText(actual)));
}

function compare(op: Op, actual: unknown, lit: Literal, precomputed?: boolean): boolean {
  if (lit instanceof SafeRegex) {
    const matched = precomputed ?? lit.testSync(regexText(actual));
    return op === '=~' ? matched : !matched;
  }
  if (typeof lit === 'number') {
    const n = typeof actual === 'number' ? actual : typeof actual === 'string' && actual.trim() !== '' ? Number(actual) : NaN;
    // Not a number (NaN): every comparison below is false but !=.
    switch (op) {
      case '==': return n === lit;
      case '!=': return n !== lit;
      case '<': return n < lit;
      case '<=': return n <= lit;
      case '>': return n > lit;
      case '>=': return n >= lit;
      // Stryker disable next-line ConditionalExpression,BooleanLiteral: unreachable, =~ and !~ returned above and the parser admits no other operator
      default: return false;
    }
  }
  // Equality is textual: 5 == "5", a boolean written as "false" is false.
  const eq = String(actual) === String(lit);
  return op === '==' ? eq : !eq;
}
