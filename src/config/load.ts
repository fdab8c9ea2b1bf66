// Loads a checklist file: YAML with source positions, ${ENV} substitution, schema validation,
// then the checks' own rules (ids, kinds, durations, cron, conditions, params, dependencies).
// Every problem is collected with file:line:col; nothing starts while any remains.
//
// No input makes the loader throw (start, SIGHUP reload, validate and check all call it):
// the file is read bounded (MAX_CHECKLIST_BYTES, regular files only, UTF-8 text), YAML
// aliases are capped (a "billion laughs" document is a diagnostic), and anything unforeseen
// becomes a diagnostic too. test/faults/loader.test.ts feeds it hostile documents.
import { constants } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { open } from 'node:fs/promises';
import type { ErrorObject } from 'ajv';
import { Cron } from 'croner';
import { isMap, isScalar, LineCounter, parseAllDocuments, visit, type Document, type Node as YamlNode } from 'yaml';
import { ConditionError, lookupField, parseCondition, type Condition } from '../conditions.js';
import { defaultNotify, notifyProblem } from '../notify.js';
import { getProbeKind, probeKinds } from '../probes/index.js';
import type { MissingConfig, ProbeKind } from '../probes/types.js';
import { intrusiveAllowed, intrusiveMissing, mergeMissing, missingVariables, propagateUnconfigured, unconfiguredMessage } from './missing.js';
import { basicPairsFromEnv, basicPairsFromUrls, envParamNames, secretForms } from '../secrets.js';
import { parseDuration } from './duration.js';
import { substituteEnv, type Substituted } from './env.js';
import { readYamlFast, titlesMayCarryComments } from './yaml.js';
import { CheckSchema, ChecklistSchema, DefaultsSchema, type RawCheck, type RawChecklist } from './schema.js';
import type { CheckDef, Checklist, Diagnostic } from './types.js';
import { lazyValidator, validatorFor, type Validator } from './validators.js';

const DEFAULT_INTERVAL_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MONITOR_WINDOW_MS = 2 * 3_600_000;

export type LoadResult = { ok: true; checklist: Checklist } | { ok: false; diagnostics: Diagnostic[] };

/**
 * Largest checklist file read, in bytes (8 MiB: the shipped 131-check checklist is 51 KiB,
 * 10 000 checks of its kind are about 4 MiB). Larger files are refused before parsing, so a
 * huge or endless file (a device, a FIFO) cannot exhaust memory. docs/config.md states it.
 */
export const MAX_CHECKLIST_BYTES = 8 * 1024 * 1024;
/** Most checks in one checklist (docs/config.md). */
export const MAX_CHECKS = 10_000;
/** YAML alias expansions allowed (yaml's resource-exhaustion guard): a "billion laughs" document stops here. */
export const MAX_ALIAS_COUNT = 100;

// Precompiled by the build (src/config/validators.ts); none is compiled or loaded before use.
const validateChecklist = lazyValidator<RawChecklist>('document', 'checklist', ChecklistSchema);

function paramValidator(kind: ProbeKind) {
  return validatorFor('params', kind.kind, kind.params);
}

export async function loadChecklistFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  try {
    const read = await readChecklistText(file);
    if (typeof read !== 'string') return { ok: false, diagnostics: [read] };
    return loadChecklist(read, file, env);
  } catch (err) {
    return { ok: false, diagnostics: [unexpected(file, err)] };
  }
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(n < 1024 * 1024 ? 2 : 1)} MiB`;

/**
 * Reads the file as UTF-8 text, or says why not: missing, a directory, not a regular file
 * (opened non-blocking, so a FIFO cannot hang the reload), over the size limit, binary, or
 * not UTF-8 (with the position of the first bad byte).
 */
async function readChecklistText(file: string): Promise<string | Diagnostic> {
  const at = (message: string, line = 1, col = 1): Diagnostic => ({ file, line, col, message });
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return at(`cannot read checklist: ${(err as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) return at('cannot read checklist: it is a directory, not a file');
    if (!st.isFile()) return at('cannot read checklist: not a regular file (a device, FIFO or socket)');
    if (st.size > MAX_CHECKLIST_BYTES) return at(`the checklist is ${mib(st.size)}: larger than the supported ${mib(MAX_CHECKLIST_BYTES)} (docs/config.md)`);
    // Read at most one byte past the limit: a file growing while it is read is caught too.
    const buf = Buffer.alloc(Math.min(MAX_CHECKLIST_BYTES, st.size || 65_536) + 1);
    let chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await fh.read(buf, 0, buf.length, null));
      } catch (err) {
        return at(`cannot read checklist: ${(err as Error).message}`);
      }
      if (bytesRead === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, bytesRead)));
      size += bytesRead;
      if (size > MAX_CHECKLIST_BYTES) return at(`the checklist is larger than the supported ${mib(MAX_CHECKLIST_BYTES)} (docs/config.md)`);
    }
    const bytes = Buffer.concat(chunks, size);
    chunks = [];
    const nul = bytes.indexOf(0);
    if (nul >= 0) {
      const { line, col } = bytePosition(bytes, nul);
      return at(`not a text file: a NUL byte at line ${line}, column ${col} (a checklist is YAML text)`, line, col);
    }
    if (!isUtf8(bytes)) {
      const bad = firstInvalidUtf8(bytes);
      const { line, col } = bytePosition(bytes, bad);
      return at(`not valid UTF-8: byte 0x${bytes[bad]!.toString(16).padStart(2, '0')} at line ${line}, column ${col} (save the checklist as UTF-8)`, line, col);
    }
    return bytes.toString('utf8').replace(/^\uFEFF/, '');
  } finally {
    await fh.close();
  }
}

/** Line and column (1-based, column in bytes) of a byte offset. */
function bytePosition(bytes: Buffer, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = bytes.indexOf(10); i >= 0 && i < offset; i = bytes.indexOf(10, i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, col: offset - lineStart + 1 };
}

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence. */
function firstInvalidUtf8(b: Buffer): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0) return i;
    if (n > 0 && !isUtf8(b.subarray(i, i + n + 1))) return i;
    i += n + 1;
  }
  return b.length;
}

/** The last line of defence: an exception anywhere in loading becomes a diagnostic. */
function unexpected(file: string, err: unknown): Diagnostic {
  const e = err instanceof Error ? err : new Error(String(err));
  const why = e instanceof RangeError && /call stack/i.test(e.message) ? 'the document is nested too deeply' : `${e.name}: ${e.message}`;
  return { file, line: 1, col: 1, message: `cannot load the checklist: ${why.replace(/\s+/g, ' ').slice(0, 300)}` };
}

/** How many documents were parsed with `yaml`'s node tree: a valid file needs none (test/load-fast.test.ts). */
export const yamlParses = { count: 0 };

/**
 * Parses with `yaml`, which keeps every node's position for the diagnostics. Every document:
 * a second one is an error, not silently dropped.
 */
function parseWithPositions(text: string): { docs: Document[]; lines: LineCounter } {
  yamlParses.count++;
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: 'silent' });
  return { docs: Array.isArray(docs) ? docs : [], lines };
}

/** Collects diagnostics against positions in one parsed document. */
class Reporter {
  readonly diagnostics: Diagnostic[] = [];
  /** False when no title can carry a YAML comment: the check then needs no node tree. */
  titleComments = true;
  #parsed: { docs: Document[]; lines: LineCounter } | undefined;
  constructor(
    readonly file: string,
    private readonly parse: () => { docs: Document[]; lines: LineCounter },
  ) {}

  /** The document with positions, parsed on the first diagnostic: valid files never need it. */
  get parsed(): { docs: Document[]; lines: LineCounter } {
    return (this.#parsed ??= this.parse());
  }
  get doc(): Document {
    return this.parsed.docs[0]!;
  }
  get lines(): LineCounter {
    return this.parsed.lines;
  }

  /** `yaml`'s syntax errors, and unknown tags (!!js/function, !custom), which would quietly become strings. */
  yamlProblems(): Diagnostic[] {
    const doc = this.parsed.docs[0];
    if (!doc) return [];
    return [...doc.errors, ...doc.warnings.filter((w) => w.code === 'TAG_RESOLVE_FAILED')].map((e) => {
      const { line, col } = this.lines.linePos(e.pos[0]);
      const msg = /call stack/i.test(e.message) ? 'the document is nested too deeply' : e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      return { file: this.file, line, col, message: `YAML: ${msg}` };
    });
  }

  /** Reports at the node at `path` (or its nearest existing parent); `key` points at the key instead of the value. */
  at(path: readonly (string | number)[], message: string, opts: { key?: boolean; offset?: number } = {}): void {
    const { line, col } = this.pos(path, opts);
    this.diagnostics.push({ file: this.file, line, col, message });
  }

  /** The line and column of the node at `path`, as at() reports it. */
  pos(path: readonly (string | number)[], opts: { key?: boolean; offset?: number } = {}): { line: number; col: number } {
    let node: YamlNode | undefined;
    let p = [...path];
    for (; ; p = p.slice(0, -1)) {
      node = (p.length === 0 ? this.doc.contents : this.doc.getIn(p, true)) as YamlNode | undefined;
      if (node || p.length === 0) break;
    }
    let offset = node?.range?.[0] ?? 0;
    if (opts.key && p.length > 0) {
      const parent = p.length === 1 ? this.doc.contents : this.doc.getIn(p.slice(0, -1), true);
      if (isMap(parent)) {
        const pair = parent.items.find((it) => isScalar(it.key) && it.key.value === p[p.length - 1]);
        if (pair && isScalar(pair.key) && pair.key.range) offset = pair.key.range[0];
      }
    }
    if (opts.offset !== undefined && node && isScalar(node)) {
      // Inside a quoted scalar, column 0 of its text is one past the quote.
      const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE';
      offset += opts.offset + (quoted ? 1 : 0);
    }
    return this.lines.linePos(offset);
  }
}

export function loadChecklist(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  try {
    return loadText(text, file, env);
  } catch (err) {
    return { ok: false, diagnostics: [unexpected(file, err)] };
  }
}

function loadText(text: string, file: string, env: NodeJS.ProcessEnv): LoadResult {
  if (text.length > MAX_CHECKLIST_BYTES) {
    return { ok: false, diagnostics: [{ file, line: 1, col: 1, message: `the checklist is larger than the supported ${mib(MAX_CHECKLIST_BYTES)} (docs/config.md)` }] };
  }
  // A valid file, the common case, needs no positions: read it fast (src/config/yaml.ts), and
  // parse it with `yaml` only when there is something to report.
  let raw = readYamlFast(text);
  const r = new Reporter(file, () => parseWithPositions(text));
  // Whether a title's comment must be looked for in `yaml`'s nodes (src/config/yaml.ts).
  r.titleComments = raw === undefined || titlesMayCarryComments(text);
  if (raw === undefined) {
    const { docs, lines } = r.parsed;
    if (docs.length !== 1) {
      // parseDocument would silently drop everything after a second `---`.
      const { line, col } = lines.linePos(docs[1]?.range?.[0] ?? 0);
      const message = docs.length === 0 ? 'the file holds no YAML document: expected a checklist (apiVersion: readiness/v1, ...)' : 'a second YAML document starts here: a checklist is one document';
      return { ok: false, diagnostics: [{ file, line, col, message }] };
    }
    const problems = r.yamlProblems();
    if (problems.length > 0) return { ok: false, diagnostics: sorted(problems) };
    try {
      raw = r.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      if (!(err instanceof ReferenceError)) throw err;
      // yaml refuses an alias that expands to too many nodes: point at the first alias.
      let offset = 0;
      visit(r.doc, {
        Alias(_key, node) {
          offset = node.range?.[0] ?? 0;
          return visit.BREAK;
        },
      });
      const { line, col } = lines.linePos(offset);
      return { ok: false, diagnostics: [{ file, line, col, message: `YAML aliases expand too much (over ${MAX_ALIAS_COUNT} nodes for one alias): refusing a "billion laughs" document` }] };
    }
  }
  if (isObject(raw) && Array.isArray(raw.checks) && raw.checks.length > MAX_CHECKS) {
    r.at(['checks'], `${raw.checks.length} checks: at most ${MAX_CHECKS} are supported in one checklist (docs/config.md)`, { key: true });
    return { ok: false, diagnostics: r.diagnostics };
  }
  let parts: Parts;
  if (validateChecklist(raw)) {
    parts = { name: raw.checklist, defaults: raw.defaults ?? {}, targets: raw.targets ?? {}, checks: raw.checks.map((c, i) => [i, c]) };
  } else {
    reportSchemaErrors(r, validateChecklist.errors ?? []);
    // Keep checking what is well-formed, so one run lists every problem in the file.
    parts = salvage(raw);
  }
  const checklist = buildChecklist(parts, r, env);
  // Should `yaml` (the reference) see a problem the fast path did not, its verdict stands.
  if (r.diagnostics.length > 0 && r.yamlProblems().length > 0) return { ok: false, diagnostics: sorted(r.yamlProblems()) };
  if (r.diagnostics.length > 0) return { ok: false, diagnostics: sorted(r.diagnostics) };
  return { ok: true, checklist: checklist! };
}

function sorted(ds: Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) => a.line - b.line || a.col - b.col);
}

function pointerPath(instancePath: string): (string | number)[] {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function closest(word: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) [best, bestD] = [o, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** Turns ajv's errors into one line each, at the offending key or value. */
function reportSchemaErrors(r: Reporter, errors: ErrorObject[], base: (string | number)[] = [], what = ''): void {
  const seen = new Set<string>();
  // A union of literals (Type.Union([Type.Literal('GET'), ...])) fails as one `const` error per
  // branch plus an `anyOf`: say it once, as "must be one of".
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const constsAt = (path: string) => errors.filter((e) => e.keyword === 'const' && e.instancePath === path).map((e) => e.params.allowedValue as unknown);
  for (const e of errors) {
    const path = [...base, ...pointerPath(e.instancePath)];
    const name = what || String(path[path.length - 1] ?? 'checklist');
    let message: string;
    let key = false;
    let at = path;
    switch (e.keyword) {
      case 'additionalProperties': {
        const extra = String(e.params.additionalProperty);
        const allowed = Object.keys((e.parentSchema as { properties?: object }).properties ?? {});
        const hint = closest(extra, allowed);
        message = `unknown key "${extra}"${hint ? ` (did you mean "${hint}"?)` : ''}; allowed: ${allowed.join(', ')}`;
        at = [...path, extra];
        key = true;
        break;
      }
      case 'required':
        message = `missing required key "${String(e.params.missingProperty)}"`;
        break;
      case 'enum':
        message = `"${name}" must be one of ${(e.params.allowedValues as unknown[]).join(', ')}, got ${JSON.stringify(e.data)}`;
        break;
      case 'type':
        message = `"${name}" must be ${String(e.params.type)}, got ${JSON.stringify(e.data)}`;
        break;
      case 'pattern': {
        const hint = (e.parentSchema as Record<string, string | undefined>)['x-hint'];
        message = `"${name}" is ${JSON.stringify(e.data)}: expected ${hint ?? `a value matching ${String(e.params.pattern)}`}`;
        if (e.propertyName !== undefined) key = true;
        break;
      }
      case 'propertyNames':
        continue; // reported by the nested 'pattern' error with the key itself
      case 'const':
        if (anyOfPaths.has(e.instancePath)) continue; // said by the anyOf error below
        message = `"${name}" must be ${JSON.stringify(e.params.allowedValue)}, got ${JSON.stringify(e.data)}`;
        break;
      case 'anyOf': {
        const values = constsAt(e.instancePath);
        message = values.length > 0 ? `"${name}" must be one of ${values.join(', ')}, got ${JSON.stringify(e.data)}` : `"${name}" ${e.message ?? 'is invalid'}`;
        break;
      }
      case 'format':
        message = `"${name}" must be a valid ${String(e.params.format)}, got ${JSON.stringify(e.data)}`;
        break;
      case 'minItems':
        message = `"${name}" needs at least ${String(e.params.limit)} item(s)`;
        break;
      default:
        message = `"${name}" ${e.message ?? 'is invalid'}`;
    }
    if (e.propertyName !== undefined && e.keyword === 'pattern') {
      at = [...path, e.propertyName];
      message = `name "${e.propertyName}" is not allowed: ${(e.parentSchema as Record<string, string>)['x-hint'] ?? `use letters, digits, _ and -`}`;
    }
    const dedupe = `${at.join('/')}|${message}`;
    if (seen.has(dedupe)) continue;
    seen.add(dedupe);
    r.at(at, message, { key });
  }
}

function durationAt(r: Reporter, path: (string | number)[], text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    r.at(path, `bad duration ${JSON.stringify(text)}: use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 30d`);
    return fallback;
  }
  return ms;
}

/** The interval a cron expression implies: the gap between its next two firings. */
function cronInterval(expr: string): number {
  const cron = new Cron(expr, { paused: true, mode: '5-or-6-parts' });
  const [a, b] = cron.nextRuns(2);
  cron.stop();
  return a && b ? b.getTime() - a.getTime() : DEFAULT_INTERVAL_MS;
}

/** The parts of a checklist that passed the schema, each check with its index in the file. */
interface Parts {
  name: string;
  defaults: NonNullable<RawChecklist['defaults']>;
  targets: Record<string, Record<string, unknown>>;
  checks: [number, RawCheck][];
  /** Per check index: keys salvage() removed or stood in for (already reported; not checked again). */
  broken?: Map<number, Set<string>>;
}

const validateCheck = lazyValidator<RawCheck>('document', 'check', CheckSchema);
const validateDefaults = lazyValidator<NonNullable<RawChecklist['defaults']>>('document', 'defaults', DefaultsSchema);
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Stand-ins for required check keys that are missing or malformed: they let the rest of the check be checked. */
const STAND_IN: Record<string, unknown> = { id: '', title: '-', section: 'invalid', severity: 'low', phase: 'pre-deploy', probe: '' };

/**
 * Keeps what is well-formed of an object that failed its schema: each key with a schema error
 * is dropped (or, when required, stood in for) and the rest checked as usual, so one run lists
 * every problem in the file. Returns the object and the keys dropped, or undefined if it is
 * not an object at all.
 */
function salvageObject<T>(v: unknown, validate: Validator<T>, standIn: Record<string, unknown> = {}): { value: T; dropped: Set<string> } | undefined {
  if (!isObject(v)) return undefined;
  const copy: Record<string, unknown> = { ...v };
  const dropped = new Set<string>();
  // Each pass removes the keys ajv named; a stand-in can only fail once more.
  for (let pass = 0; pass < 3 && !validate(copy); pass++) {
    for (const e of validate.errors ?? []) {
      if (e.keyword === 'required') {
        const k = String(e.params.missingProperty);
        if (!(k in standIn)) return undefined;
        copy[k] = standIn[k];
        dropped.add(k);
        continue;
      }
      const k = e.keyword === 'additionalProperties' && e.instancePath === '' ? String(e.params.additionalProperty) : String(pointerPath(e.instancePath)[0] ?? '');
      if (k === '') return undefined;
      delete copy[k];
      dropped.add(k);
    }
  }
  return validate(copy) ? { value: copy as T, dropped } : undefined;
}

function salvage(raw: unknown): Parts {
  const o = isObject(raw) ? raw : {};
  const targets = isObject(o.targets) ? Object.fromEntries(Object.entries(o.targets).filter(([, t]) => isObject(t))) : {};
  const checks: [number, RawCheck][] = [];
  const broken = new Map<number, Set<string>>();
  if (Array.isArray(o.checks)) {
    o.checks.forEach((c, i) => {
      const s = salvageObject(c, validateCheck, STAND_IN);
      if (!s) return;
      checks.push([i, s.value]);
      if (s.dropped.size > 0) broken.set(i, s.dropped);
    });
  }
  return {
    name: typeof o.checklist === 'string' ? o.checklist : 'invalid',
    defaults: salvageObject(o.defaults, validateDefaults)?.value ?? {},
    targets: targets as Parts['targets'],
    checks,
    broken,
  };
}

function buildChecklist(raw: Parts, r: Reporter, env: NodeJS.ProcessEnv): Checklist | undefined {
  const d = raw.defaults;
  const defInterval = durationAt(r, ['defaults', 'interval'], d.interval, DEFAULT_INTERVAL_MS);
  const defTimeout = durationAt(r, ['defaults', 'timeout'], d.timeout, DEFAULT_TIMEOUT_MS);
  const monitorWindowMs = durationAt(r, ['defaults', 'monitorWindow'], d.monitorWindow, DEFAULT_MONITOR_WINDOW_MS);
  const targets = raw.targets;

  const broken = (i: number) => raw.broken?.get(i) ?? new Set<string>();
  const ids = new Map<string, number>();
  for (const [i, c] of raw.checks) {
    if (broken(i).has('id')) continue;
    const first = ids.get(c.id);
    if (first !== undefined) {
      const { line, col } = r.pos(['checks', first, 'id']);
      r.at(['checks', i, 'id'], `duplicate check id "${c.id}" (first defined at line ${line}, column ${col})`);
    } else ids.set(c.id, i);
  }

  const checks: CheckDef[] = [];
  for (const [i, c] of raw.checks) {
    try {
      const def = buildCheck(c, i, r, env, targets, { defInterval, defTimeout, d }, ids, broken(i));
      if (def && !raw.broken?.has(i)) checks.push(def);
    } catch (err) {
      // A kind's own validation (or anything else) failing on odd params is this check's problem.
      r.at(['checks', i], `cannot check "${c.id}": ${unexpected(r.file, err).message.replace(/^cannot load the checklist: /, '')}`);
    }
  }
  reportCycles(raw.checks, r);
  if (r.diagnostics.length > 0) return undefined;
  propagateUnconfigured(checks);
  const byId = new Map(checks.map((c) => [c.id, Object.freeze(c)]));
  return Object.freeze({ name: raw.name, file: r.file, checks: Object.freeze(checks), byId, monitorWindowMs });
}

function buildCheck(
  c: RawCheck,
  i: number,
  r: Reporter,
  env: NodeJS.ProcessEnv,
  targets: Record<string, Record<string, unknown>>,
  defs: { defInterval: number; defTimeout: number; d: NonNullable<RawChecklist['defaults']> },
  ids: Map<string, number>,
  /** Keys salvage() dropped or stood in for: reported already, so not checked again. */
  broken: ReadonlySet<string> = new Set(),
): CheckDef | undefined {
  const at = (...p: (string | number)[]) => ['checks', i, ...p];
  // `title: Slack #alerts channel` is the title "Slack": an unquoted " #" starts a YAML
  // comment. A title is the checklist line as a person reads it, never silently cut.
  const titleNode = r.titleComments ? r.doc.getIn(at('title'), true) : undefined;
  if (isScalar(titleNode) && titleNode.type === 'PLAIN' && titleNode.comment !== undefined && !broken.has('title')) {
    r.at(at('title'), `title is cut at " #": YAML reads the rest of the line as a comment; quote the title: "${String(titleNode.value)} #${titleNode.comment}"`);
  }
  const kind = getProbeKind(c.probe);
  if (!kind && !broken.has('probe')) {
    const known = [...probeKinds.keys()];
    const hint = closest(c.probe, known);
    r.at(at('probe'), `unknown probe kind "${c.probe}"${hint ? ` (did you mean "${hint}"?)` : ''}; known kinds: ${known.join(', ')}`);
  }

  let intervalMs = durationAt(r, at('interval'), c.interval, defs.defInterval);
  if (c.schedule !== undefined) {
    if (c.interval !== undefined) r.at(at('schedule'), 'set either "interval" or "schedule", not both');
    try {
      intervalMs = cronInterval(c.schedule);
    } catch (err) {
      r.at(at('schedule'), `bad cron expression ${JSON.stringify(c.schedule)}: ${(err as Error).message}`);
    }
  }
  const timeoutMs = durationAt(r, at('timeout'), c.timeout, defs.defTimeout);
  if (timeoutMs > intervalMs) {
    r.at(at(c.timeout !== undefined ? 'timeout' : 'id'), `timeout ${c.timeout ?? 'default'} (${timeoutMs} ms) is longer than the interval (${intervalMs} ms): runs would pile up`);
  }

  for (const [j, dep] of (c.dependsOn ?? []).entries()) {
    if (!ids.has(dep)) r.at(at('dependsOn', j), `dependsOn names unknown check "${dep}"`);
    else if (dep === c.id) r.at(at('dependsOn', j), 'a check cannot depend on itself');
  }

  // Target fields first, then `with:` over them; ${ENV} substituted in both.
  let target: Record<string, unknown> = {};
  let targetSub: Substituted | undefined;
  if (c.target !== undefined) {
    const t = targets[c.target];
    if (!t) r.at(at('target'), `unknown target "${c.target}"; defined targets: ${Object.keys(targets).join(', ') || '(none)'}`);
    else {
      targetSub = substituteEnv(t, env);
      target = targetSub.value as Record<string, unknown>;
    }
  }
  const withSub = substituteEnv(c.with ?? {}, env);
  for (const bad of [...(targetSub?.malformed ?? []), ...withSub.malformed]) {
    r.at(c.target && targetSub?.malformed.includes(bad) ? ['targets', c.target] : at('with'), `malformed \${...} reference in ${JSON.stringify(bad)}: use \${NAME} or \${NAME:-default}`);
  }
  const params: Record<string, unknown> = { ...target, ...(withSub.value as Record<string, unknown>) };
  // Conditions may compare with the environment too (`json.info.version == "${RELEASE_VERSION}"`).
  const condSub = substituteEnv({ expect: c.expect ?? [], warn: c.warn ?? [] }, env);
  const condText = condSub.value as { expect: string[]; warn: string[] };
  const missing = [...new Set([...(targetSub?.missing ?? []), ...withSub.missing, ...condSub.missing])];
  const missingKeys = new Set([...(targetSub?.missingKeys ?? []), ...withSub.missingKeys]);
  const lacks: MissingConfig[] = [];

  const conds = (key: 'expect' | 'warn'): Condition[] => {
    const out: Condition[] = [];
    for (const [j, src] of condText[key].entries()) {
      if (!kind) continue;
      const written = c[key]![j]!;
      try {
        out.push({ ...parseCondition(src, kind.fields), source: written });
      } catch (err) {
        if (!(err instanceof ConditionError)) throw err;
        // The column is exact unless ${...} substitution changed the text's length before it.
        r.at(at(key, j), `bad condition ${JSON.stringify(written)}: ${err.message}`, { offset: src === written ? err.column : 0 });
      }
    }
    return out;
  };
  const expect = conds('expect');
  const warn = conds('warn');

  if (kind && c.value !== undefined) {
    const spec = lookupField(kind.fields, c.value);
    if (!spec) r.at(at('value'), `unknown field "${c.value}" for probe ${kind.kind}; it reports: ${Object.keys(kind.fields).join(', ')}`);
    else if (spec.type !== 'number' && spec.type !== 'any' && spec.type !== 'boolean') r.at(at('value'), `field "${c.value}" is a ${spec.type}, not a number`);
  }

  if (kind && c.marksDeployment && lookupField(kind.fields, 'version')?.type !== 'string') {
    r.at(at('marksDeployment'), `probe ${kind.kind} reports no "version" field, so it cannot mark deployments (the kubernetes rollout measurement does)`);
  }
  const targetMissing = c.target !== undefined && !targets[c.target];
  // Params that were dropped (with: not a map) or came from a dropped target would only repeat that error.
  if (kind && !targetMissing && !broken.has('with') && !broken.has('target')) {
    const validate = paramValidator(kind);
    if (!validate(params)) {
      // Errors in params that hold an unset ${VAR} are expected: the check is unconfigured, not invalid.
      const errs = (validate.errors ?? []).filter((e) => {
        const top = pointerPath(e.instancePath)[0];
        return !(top !== undefined && missingKeys.has(String(top)));
      });
      const inWith = (e: ErrorObject) => {
        const top = e.keyword === 'additionalProperties' ? String(e.params.additionalProperty) : String(pointerPath(e.instancePath)[0] ?? '');
        return top === '' || Object.hasOwn(c.with ?? {}, top) || !c.target || !targets[c.target];
      };
      reportSchemaErrors(r, errs.filter(inWith), at('with'));
      if (c.target) reportSchemaErrors(r, errs.filter((e) => !inWith(e)), ['targets', c.target]);
      // Invalid only where a variable is unset: name what else it lacks too, so a new user
      // sees every variable at once (GRAFANA_TOKEN along with GRAFANA_URL).
      if (errs.length === 0) lacking(kind, params, env, missing, lacks);
    } else {
      if (missing.length === 0 && kind.validate) {
        for (const msg of kind.validate(params as never)) {
          // "query: PromQL syntax error ..." points at the query itself when it is in `with:`.
          const param = /^([A-Za-z_]\w*)(?:\[\d+\])?:/.exec(msg)?.[1];
          r.at(param !== undefined && Object.hasOwn(c.with ?? {}, param) ? at('with', param) : at('with'), msg);
        }
      }
      lacking(kind, params, env, missing, lacks);
    }
  }
  // Intrusive checks (the check says so, or its kind always is) run only on the operator's opt-in.
  const intrusive = kind?.intrusive ?? (c.intrusive ? 'marked intrusive in the checklist' : undefined);
  if (kind?.intrusive && c.intrusive === false) r.at(at('intrusive'), `probe ${kind.kind} is always intrusive (it ${kind.intrusive}): "intrusive: false" does not apply`);
  if (intrusive && !intrusiveAllowed(c.id, env)) lacks.push(intrusiveMissing(c.id, intrusive));
  const missingConfig = mergeMissing(missingVariables(missing), lacks);

  const gate = c.gate ?? true;
  const subject = { phase: c.phase, severity: c.severity, kind: kind?.kind ?? c.probe, gate };
  const notify = c.notify ?? defaultNotify(subject);
  const notifyWhy = c.notify !== undefined ? notifyProblem(c.notify, subject) : undefined;
  if (notifyWhy) r.at(at('notify'), notifyWhy);

  if (!kind) return undefined;
  // Secret params, the variables the params name (any *Env) and the kind's required ones, in
  // every encoding a probe sends them (src/secrets.ts).
  // Plus what the kind says it sends that the params do not show (a kubeconfig's token).
  const envNames = new Set([...envParamNames(params), ...(kind.requiredEnv?.(params as never) ?? [])]);
  const envValues = [...envNames].map((n) => env[n]).filter((v): v is string => typeof v === 'string' && v !== '');
  const secrets = secretForms(
    [...(kind.secretParams ?? []).flatMap((k) => secretValues(params[k])), ...envValues, ...kindSecrets(kind, params, env)],
    [...basicPairsFromUrls(params), ...basicPairsFromEnv(params, env)],
  );
  return {
    id: c.id,
    title: c.title,
    ...(c.description !== undefined && { description: c.description }),
    section: c.section,
    severity: c.severity,
    phase: c.phase,
    kind: kind.kind,
    probe: kind,
    params,
    expect,
    warn,
    intervalMs,
    ...(c.schedule !== undefined && { schedule: c.schedule }),
    timeoutMs,
    ...((c.runbook !== undefined || defs.d.runbookBase !== undefined) && { runbook: c.runbook ?? `${defs.d.runbookBase!.replace(/\/$/, '')}/checks/${c.id}` }),
    failAfter: c.failAfter ?? defs.d.failAfter ?? 1,
    passAfter: c.passAfter ?? defs.d.passAfter ?? 1,
    onNoData: c.onNoData ?? defs.d.onNoData ?? 'error',
    dependsOn: c.dependsOn ?? [],
    gate,
    notify,
    marksDeployment: c.marksDeployment ?? false,
    ...(intrusive !== undefined && { intrusive }),
    ...(c.value !== undefined && { valueField: c.value }),
    ...(missingConfig.length > 0 && { unconfigured: unconfiguredMessage(missingConfig), missing: missingConfig }),
    secrets,
  };
}

/**
 * What a check's params say it needs from the environment beyond its ${VAR}s: variables they
 * name (tokenEnv: GRAFANA_TOKEN), which count like unset ${VAR}s, and what else the
 * environment lacks (no Kubernetes configuration). Adds to `missing` and `lacks`.
 */
function lacking(kind: ProbeKind, params: Record<string, unknown>, env: NodeJS.ProcessEnv, missing: string[], lacks: MissingConfig[]): void {
  for (const name of kind.requiredEnv?.(params as never) ?? []) if (name && !env[name] && !missing.includes(name)) missing.push(name);
  lacks.push(...(kind.missingConfig?.(params as never, env) ?? []));
}

/** A dependency cycle would leave every check in it waiting on another: reject it at load. */
function reportCycles(checks: [number, RawCheck][], r: Reporter): void {
  const deps = new Map(checks.map(([, c]) => [c.id, c.dependsOn ?? []]));
  const index = new Map(checks.map(([i, c]) => [c.id, i]));
  const state = new Map<string, 'visiting' | 'done'>();
  const reported = new Set<string>();
  const visit = (id: string, stack: string[]): void => {
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'visiting') {
      const cycle = [...stack.slice(stack.indexOf(id)), id];
      const key = [...cycle].sort().join(',');
      if (!reported.has(key)) {
        reported.add(key);
        r.at(['checks', index.get(id)!, 'dependsOn'], `dependency cycle: ${cycle.join(' -> ')}`);
      }
      return;
    }
    state.set(id, 'visiting');
    for (const d of deps.get(id) ?? []) if (deps.has(d)) visit(d, [...stack, id]);
    state.set(id, 'done');
  };
  for (const [, c] of checks) visit(c.id, []);
}

/** ProbeKind.secrets, which must not throw out of the loader (a broken kubeconfig is the probe's to report). */
function kindSecrets(kind: ProbeKind, params: Record<string, unknown>, env: NodeJS.ProcessEnv): string[] {
  try {
    return (kind.secrets?.(params as never, env) ?? []).filter((v): v is string => typeof v === 'string' && v !== '');
  } catch {
    return [];
  }
}

/**
 * The strings to scrub for a secret param. A URL is secret only in its password (the host
 * and path stay readable in messages); other strings whole; objects by their string leaves.
 */
export function secretValues(v: unknown): string[] {
  if (typeof v === 'string') {
    if (v === '') return [];
    const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(v) ? tryUrl(v) : null;
    if (url) return url.password ? [...new Set([url.password, decodeURIComponent(url.password)])] : [];
    return [v];
  }
  if (Array.isArray(v)) return v.flatMap(secretValues);
  if (v !== null && typeof v === 'object') return Object.values(v).flatMap(secretValues);
  return [];
}

/** A secret param as /checks shows it: URLs without their credentials, anything else as ***. */
export function displaySecret(v: unknown): unknown {
  if (typeof v === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(v)) {
    const url = tryUrl(v);
    if (url) {
      url.username = '';
      url.password = '';
      return url.toString();
    }
  }
  return v === undefined ? undefined : '***';
}

function tryUrl(v: string): URL | null {
  try {
    return new URL(v);
  } catch {
    return null;
  }
}
