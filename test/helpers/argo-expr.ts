// Argo Rollouts' condition evaluation (utils/evaluate/evaluate.go), for the tests that decide
// what Argo Rollouts would do with the exporter's answers. Conditions are expr-lang programs
// (github.com/expr-lang/expr, v1.17) compiled with `expr.Env(map{"result": value, ...})` and
// run; no npm package implements expr-lang, so this is the subset the shipped AnalysisTemplates
// use, with expr-lang's rules for it:
//   literals true false nil, numbers, "strings"; the name `result`; member access `result.a.b`;
//   == != < <= > >=; ! not; && and; || or; parentheses.
// Precedence (expr-lang's parser): or < and < comparisons < unary !/not.
// Type checking at compile time, as expr-lang's checker does with a map env: `result` has the
// nature of its concrete value (a JSON bool is bool, a number float64, an object a map whose
// members are unknown), so `result == true` with a number result is a compile error
// ("mismatched types float64 and bool"), which Argo reports as a measurement *error*. At run
// time == is false across kinds (runtime.Equal), numbers compare as numbers, a missing map key
// is nil (runtime.Fetch), and the program must produce a bool ("expected bool, but got %T").
// Anything outside the subset is rejected loudly rather than guessed.

type Nature = 'bool' | 'float64' | 'string' | 'nil' | 'map' | 'array' | 'unknown';
type Node =
  | { k: 'lit'; v: unknown; n: Nature }
  | { k: 'name'; name: string }
  | { k: 'member'; of: Node; prop: string }
  | { k: 'unary'; op: '!'; x: Node }
  | { k: 'binary'; op: string; l: Node; r: Node };

export class ExprError extends Error {}

function tokenize(src: string): string[] {
  const re = /\s*(?:(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|("(?:[^"\\]|\\.)*")|([A-Za-z_]\w*)|(==|!=|<=|>=|&&|\|\||[<>!().]))/y;
  const out: string[] = [];
  let i = 0;
  while (i < src.length) {
    if (/^\s*$/.test(src.slice(i))) break;
    re.lastIndex = i;
    const m = re.exec(src);
    if (!m) throw new ExprError(`unexpected token at ${i}: ${src.slice(i)}`);
    out.push((m[1] ?? m[2] ?? m[3] ?? m[4])!);
    i = re.lastIndex;
  }
  return out;
}

function parse(src: string): Node {
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const take = (t?: string) => {
    const x = toks[p++];
    if (x === undefined || (t !== undefined && x !== t)) throw new ExprError(`expected ${t ?? 'a token'}, got ${x ?? 'end'} in ${src}`);
    return x;
  };
  const primary = (): Node => {
    const t = take();
    let node: Node;
    if (t === '(') {
      node = or();
      take(')');
    } else if (/^\d/.test(t)) node = { k: 'lit', v: Number(t), n: 'float64' };
    else if (t.startsWith('"')) node = { k: 'lit', v: JSON.parse(t) as string, n: 'string' };
    else if (t === 'true' || t === 'false') node = { k: 'lit', v: t === 'true', n: 'bool' };
    else if (t === 'nil') node = { k: 'lit', v: null, n: 'nil' };
    else if (/^[A-Za-z_]/.test(t) && !['and', 'or', 'not', 'in', 'matches'].includes(t)) node = { k: 'name', name: t };
    else throw new ExprError(`unsupported token ${t} in ${src}`);
    while (peek() === '.') {
      take('.');
      node = { k: 'member', of: node, prop: take() };
    }
    return node;
  };
  const unary = (): Node => {
    if (peek() === '!' || peek() === 'not') {
      take();
      return { k: 'unary', op: '!', x: unary() };
    }
    return primary();
  };
  const cmp = (): Node => {
    const l = unary();
    const op = peek();
    if (op && ['==', '!=', '<', '<=', '>', '>='].includes(op)) {
      take();
      return { k: 'binary', op, l, r: unary() };
    }
    return l;
  };
  const and = (): Node => {
    let l = cmp();
    while (peek() === '&&' || peek() === 'and') {
      take();
      l = { k: 'binary', op: '&&', l, r: cmp() };
    }
    return l;
  };
  const or = (): Node => {
    let l = and();
    while (peek() === '||' || peek() === 'or') {
      take();
      l = { k: 'binary', op: '||', l, r: and() };
    }
    return l;
  };
  const tree = or();
  if (p !== toks.length) throw new ExprError(`unexpected ${toks[p]} in ${src}`);
  return tree;
}

/** The nature expr-lang gives a Go value decoded from JSON (encoding/json into `any`). */
export function natureOf(v: unknown): Nature {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return 'float64';
  if (typeof v === 'string') return 'string';
  if (Array.isArray(v)) return 'array';
  return 'map';
}

function check(n: Node, env: Record<string, unknown>): Nature {
  switch (n.k) {
    case 'lit':
      return n.n;
    case 'name':
      if (!(n.name in env)) throw new ExprError(`unknown name ${n.name}`);
      return natureOf(env[n.name]);
    case 'member': {
      const of = check(n.of, env);
      if (of === 'map' || of === 'unknown') return 'unknown';
      throw new ExprError(`type ${of} has no field ${n.prop}`);
    }
    case 'unary': {
      const x = check(n.x, env);
      if (x === 'bool' || x === 'unknown') return 'bool';
      throw new ExprError(`invalid operation: ! (mismatched type ${x})`);
    }
    case 'binary': {
      const l = check(n.l, env);
      const r = check(n.r, env);
      const unknown = l === 'unknown' || r === 'unknown';
      if (n.op === '==' || n.op === '!=') {
        if (unknown || l === 'nil' || r === 'nil' || l === r) return 'bool';
      } else if (n.op === '&&' || n.op === '||') {
        if ((l === 'bool' || l === 'unknown') && (r === 'bool' || r === 'unknown')) return 'bool';
      } else {
        const orderable = (x: Nature) => x === 'float64' || x === 'string' || x === 'unknown';
        if ((l === r && (l === 'float64' || l === 'string')) || (unknown && orderable(l) && orderable(r))) return 'bool';
      }
      throw new ExprError(`invalid operation: ${n.op} (mismatched types ${l} and ${r})`);
    }
  }
}

function equal(a: unknown, b: unknown): boolean {
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  if (typeof a !== typeof b || Array.isArray(a) !== Array.isArray(b)) return false;
  if (typeof a === 'object') return JSON.stringify(a) === JSON.stringify(b);
  return a === b;
}

function run(n: Node, env: Record<string, unknown>): unknown {
  switch (n.k) {
    case 'lit':
      return n.v;
    case 'name':
      return env[n.name];
    case 'member': {
      const of = run(n.of, env);
      if (of === null || typeof of !== 'object' || Array.isArray(of)) throw new ExprError(`cannot fetch ${n.prop} from ${natureOf(of)}`);
      return (of as Record<string, unknown>)[n.prop] ?? null;
    }
    case 'unary': {
      const x = run(n.x, env);
      if (typeof x !== 'boolean') throw new ExprError(`interface conversion: interface {} is ${natureOf(x)}, not bool`);
      return !x;
    }
    case 'binary': {
      if (n.op === '&&' || n.op === '||') {
        const l = run(n.l, env);
        if (typeof l !== 'boolean') throw new ExprError(`interface conversion: interface {} is ${natureOf(l)}, not bool`);
        if (n.op === '&&' ? !l : l) return l;
        const r = run(n.r, env);
        if (typeof r !== 'boolean') throw new ExprError(`interface conversion: interface {} is ${natureOf(r)}, not bool`);
        return r;
      }
      const l = run(n.l, env);
      const r = run(n.r, env);
      if (n.op === '==') return equal(l, r);
      if (n.op === '!=') return !equal(l, r);
      if (!((typeof l === 'number' && typeof r === 'number') || (typeof l === 'string' && typeof r === 'string'))) {
        throw new ExprError(`invalid operation: ${natureOf(l)} ${n.op} ${natureOf(r)}`);
      }
      return n.op === '<' ? l < r : n.op === '<=' ? l <= r : n.op === '>' ? l > r : l >= r;
    }
  }
}

/** evaluate.EvalCondition: compile against {result}, run, require a bool. */
export function evalCondition(result: unknown, condition: string): boolean {
  const env = { result: result ?? null };
  const tree = parse(condition);
  check(tree, env);
  const out = run(tree, env);
  if (typeof out !== 'boolean') throw new ExprError(`expected bool, but got ${natureOf(out)}`);
  return out;
}

export type Phase = 'Successful' | 'Failed' | 'Inconclusive' | 'Error';

/** evaluate.EvaluateResult: the measurement's phase from successCondition/failureCondition. */
export function evaluateResult(result: unknown, metric: { successCondition?: string; failureCondition?: string }): { phase: Phase; error?: string } {
  let success = false;
  let fail = false;
  try {
    if (metric.successCondition) success = evalCondition(result, metric.successCondition);
    if (metric.failureCondition) fail = evalCondition(result, metric.failureCondition);
  } catch (err) {
    return { phase: 'Error', error: (err as Error).message };
  }
  if (!metric.successCondition && !metric.failureCondition) return { phase: 'Successful' };
  if (metric.successCondition && !metric.failureCondition) fail = !success;
  if (!metric.successCondition && metric.failureCondition) success = !fail;
  if (fail) return { phase: 'Failed' };
  if (!success) return { phase: 'Inconclusive' };
  return { phase: 'Successful' };
}
