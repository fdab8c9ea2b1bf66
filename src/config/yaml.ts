// Reading a checklist's YAML. The `yaml` library keeps every node's position, which each
// diagnostic needs (file:line:col), but builds a node tree first: for the shipped checklist
// that was more than half of `readiness validate`. Most files are valid, so the loader reads
// them with js-yaml (several times faster, no positions) and parses with `yaml` only when it
// has something to report, or when the fast path declines the text.
//
// The fast path must read every document it accepts exactly as `yaml` would: it resolves
// plain scalars with the YAML 1.2 core schema as `yaml` 2 implements it (the regular
// expressions below are that library's), so `0o17`, `1e3`, `.inf`, `~` and `True` mean the
// same on both paths. It declines anything js-yaml rejects (syntax errors, duplicate keys) and
// documents with many aliases, or whose aliases expand to much more than they hold (`yaml`
// refuses those as a resource exhaustion attack; js-yaml shares the node, and the loader would
// copy it).
// test/load-fast.test.ts checks that both paths agree on every checklist in the repository,
// on a table of scalars and on hostile documents.
import jsyaml from 'js-yaml';

const nullType = new jsyaml.Type('tag:yaml.org,2002:null', {
  kind: 'scalar',
  resolve: (s: string | null) => s === null || /^(?:~|[Nn]ull|NULL)?$/.test(s),
  construct: () => null,
  predicate: (v: unknown) => v === null,
});

const boolType = new jsyaml.Type('tag:yaml.org,2002:bool', {
  kind: 'scalar',
  resolve: (s: string | null) => s !== null && /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/.test(s),
  construct: (s: string) => s[0] === 't' || s[0] === 'T',
  predicate: (v: unknown) => typeof v === 'boolean',
});

const intType = new jsyaml.Type('tag:yaml.org,2002:int', {
  kind: 'scalar',
  resolve: (s: string | null) => s !== null && (/^[-+]?[0-9]+$/.test(s) || /^0o[0-7]+$/.test(s) || /^0x[0-9a-fA-F]+$/.test(s)),
  construct: (s: string) => (s.startsWith('0o') ? parseInt(s.slice(2), 8) : s.startsWith('0x') ? parseInt(s.slice(2), 16) : parseInt(s, 10)),
  predicate: (v: unknown) => Number.isInteger(v),
});

const NAN_INF = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
const floatType = new jsyaml.Type('tag:yaml.org,2002:float', {
  kind: 'scalar',
  resolve: (s: string | null) =>
    s !== null && (NAN_INF.test(s) || /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(s) || /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(s)),
  construct: (s: string) => (NAN_INF.test(s) ? (s.slice(-3).toLowerCase() === 'nan' ? NaN : s.startsWith('-') ? -Infinity : Infinity) : parseFloat(s)),
  predicate: (v: unknown) => typeof v === 'number',
});

// js-yaml's own core schema differs (its int and float accept 0b and _ separators).
const CORE = jsyaml.FAILSAFE_SCHEMA.extend({ implicit: [nullType, boolType, intType, floatType] });

/** Every `*x` that may be an alias (or sits in a string or comment: counting those too only errs on the safe side). */
const MAYBE_ALIAS = /\*[^\s,[\]{}]/g;
/**
 * Aliases the fast path accepts. The loader has `yaml` refuse an anchor used so often (times
 * the aliases nested in it) that the product passes MAX_ALIAS_COUNT (100, src/config/load.ts);
 * js-yaml has no such limit. With at most 12 aliases in a document no such product can pass
 * 100 (the largest product of counts summing to 12 is 3^4 = 81), so both readers agree; a
 * document with more is left to `yaml`.
 */
const MAX_FAST_ALIASES = 12;
/** Nodes that aliases may add to a document before the fast path leaves it to `yaml`. */
const MAX_ALIASED_NODES = 10_000;

/** Nodes of the value counted once (`unique`) and at every place an alias repeats them (`expanded`). */
function nodeCounts(root: unknown): { unique: number; expanded: number } {
  const memo = new Map<object, number>();
  let unique = 0;
  const expand = (v: unknown): number => {
    if (v === null || typeof v !== 'object') return 1;
    const known = memo.get(v);
    if (known !== undefined) return known;
    let n = 1;
    unique++;
    for (const c of Object.values(v)) {
      if (c === null || typeof c !== 'object') unique++;
      n += expand(c);
    }
    memo.set(v, n);
    return n;
  };
  const expanded = expand(root);
  return { unique: Math.max(unique, 1), expanded };
}

/** The document as plain data, or undefined when the fast path declines it (parse it with `yaml`). */
export function readYamlFast(text: string): unknown {
  let value: unknown;
  try {
    value = jsyaml.load(text, { schema: CORE });
  } catch {
    return undefined;
  }
  const aliases = text.match(MAYBE_ALIAS)?.length ?? 0;
  if (aliases > MAX_FAST_ALIASES) return undefined;
  if (aliases > 0) {
    const { unique, expanded } = nodeCounts(value);
    if (expanded - unique > MAX_ALIASED_NODES) return undefined;
  }
  return value;
}

const TITLE_KEY = /^([ \t]*(?:-[ \t]+)?)title[ \t]*:(.*)$/;

/**
 * Whether a check's `title` may have a YAML comment attached, which the loader reports (an
 * unquoted " #" cuts the title). Only `yaml`'s node tree says so for certain; this looks at the
 * text, errs on the side of "may", and lets a file without such a title skip that parse: a
 * plain title with " #" on its line, a title whose value starts on a later line, or one followed
 * by a more indented line or a comment line; and any title in flow style on a line with "#".
 */
export function titlesMayCarryComments(text: string): boolean {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.includes('title')) continue;
    const m = TITLE_KEY.exec(line);
    if (!m) {
      if (/\btitle[ \t]*:/.test(line) && line.includes('#')) return true;
      continue;
    }
    const v = m[2]!.trim();
    if (v === '' || v.startsWith('#')) return true;
    if (v.startsWith('"') || v.startsWith("'") || v.startsWith('|') || v.startsWith('>')) continue;
    if (/[ \t]#/.test(v)) return true;
    const keyCol = m[1]!.length;
    // The next non-blank line, found in place: a copy of the rest per title made a 10,000-check
    // file cost seconds (quadratic).
    let next: string | undefined;
    for (let j = i + 1; j < lines.length; j++) {
      if (lines[j]!.trim() !== '') {
        next = lines[j];
        break;
      }
    }
    if (next !== undefined && (next.trimStart().startsWith('#') || next.length - next.trimStart().length > keyCol)) return true;
  }
  return false;
}
