// The loader's two fast paths must change nothing but speed (issue 14):
// - js-yaml reads valid files (src/config/yaml.ts) exactly as `yaml`, the parser with
//   positions, would;
// - the validators precompiled by the build (src/config/validators.ts) accept and report
//   exactly what validators compiled at run time do, and a stale one is never used.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseDocument } from 'yaml';
import { ChecklistSchema } from '../src/config/schema.js';
import { compiler, fingerprint, PRECOMPILED, validatorFor, type Precompiled } from '../src/config/validators.js';
import { readYamlFast } from '../src/config/yaml.js';
import { probeKinds } from '../src/probes/index.js';

/** What `yaml` reads, or undefined for what it rejects (errors, or toJS refusing an alias bomb). */
const reference = (text: string): unknown => {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) return undefined;
  try {
    return doc.toJS();
  } catch {
    return undefined;
  }
};

const checklists = ['probes/offgridflow.yaml', ...readdirSync('test/fixtures').filter((f) => f.endsWith('.yaml')).map((f) => join('test/fixtures', f))];

t.test('the fast path reads every checklist in the repository as `yaml` does', async (t) => {
  let fast = 0;
  for (const f of checklists) {
    const text = readFileSync(f, 'utf8');
    const v = readYamlFast(text);
    const ref = reference(text);
    if (ref === undefined) {
      t.equal(v, undefined, `${f}: what \`yaml\` rejects, the fast path declines`);
      continue;
    }
    if (v !== undefined) fast++;
    t.same(v, ref, f);
  }
  t.ok(readYamlFast(readFileSync('probes/offgridflow.yaml', 'utf8')) !== undefined, 'the shipped checklist (anchors and aliases included) takes the fast path');
  t.ok(fast >= checklists.length - 3, `${fast} of ${checklists.length} files read by the fast path`);
});

t.test('plain scalars resolve as YAML 1.2 core does in `yaml`, not as js-yaml would', async (t) => {
  const scalars = [
    '1', '-1', '+1', '007', '0o17', '0x1F', '0b11', '1_000', '1_000.5', '1.5', '.5', '1.', '+.5', '1e3', '1.5E-3', '1e', 'e3', '0x', '0o8',
    '.inf', '-.Inf', '+.INF', '.NaN', '.nan', '~', 'null', 'Null', 'NULL', 'nULL', '', 'true', 'True', 'TRUE', 'tRUE', 'yes', 'no', 'on', 'off', 'y',
    '2024-01-01', '2024-01-01T00:00:00Z', '1:30', '12:00:00', '"1"', "'true'", '!!str 1', '!!int "7"', '!!float "1"', '[1, a, null]', '{a: 1, 2: b}',
    '>-\n  folded\n  text', '|\n  lit\n  text\n', '"\\u00e9\\t"', "'it''s'", '-', '- a', '? complex',
  ];
  for (const s of scalars) {
    const text = `v: ${s}\n`;
    const v = readYamlFast(text);
    const ref = reference(text);
    // Declining is always safe (the loader then reads the text with `yaml`); accepting must agree.
    if (v !== undefined) t.same(v, ref, JSON.stringify(s));
    else t.pass(`${JSON.stringify(s)}: declined, read by \`yaml\``);
  }
  // The differences that made js-yaml's own core schema unusable here.
  t.same(readYamlFast('a: 0b11\nb: 1_000\nc: 2024-01-01\n'), { a: '0b11', b: '1_000', c: '2024-01-01' });
});

t.test('duplicate keys, syntax errors and alias bombs go to the reference parser', async (t) => {
  t.equal(readYamlFast('a: 1\na: 2\n'), undefined, 'duplicate key');
  t.equal(readYamlFast('a: [1, 2\n'), undefined, 'unclosed flow sequence');
  t.equal(readYamlFast('a: 1\n  b: 2\n'), undefined, 'bad indentation');
  const laughs = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 9; i++) {
    const [prev, cur] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
    laughs.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(',')}]`);
  }
  const bomb = laughs.join('\n');
  t.equal(readYamlFast(bomb), undefined, 'a billion laughs is not expanded by the fast path');
  t.equal(reference(bomb), undefined, '`yaml` refuses it (excessive alias count)');
  t.same(readYamlFast('x: &x {a: 1}\ny: *x\n'), { x: { a: 1 }, y: { a: 1 } }, 'a small alias is fine');
  // The loader caps aliases as `yaml` does (an anchor used more than 100 times): js-yaml would
  // read this one, so the fast path must leave it to `yaml`, which refuses it.
  const many = `a: &a x\nb: [${Array(101).fill('*a').join(', ')}]\n`;
  t.equal(reference(many), undefined, '`yaml` refuses an anchor aliased 101 times');
  t.equal(readYamlFast(many), undefined, 'the fast path leaves a document with many aliases to `yaml`');
  t.notOk(readYamlFast('a: &a x\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n'), '13 aliases: left to `yaml`');
});

/** Runs a validator on a copy (params validators fill defaults and coerce in place). */
function outcome(v: (d: unknown) => boolean, data: unknown): { ok: boolean; data: unknown; errors: unknown } {
  const copy = structuredClone(data);
  const ok = v(copy);
  const errors = ((v as { errors?: { instancePath: string; keyword: string; params: unknown; message?: string }[] | null }).errors ?? []).map((e) => ({
    instancePath: e.instancePath,
    keyword: e.keyword,
    params: e.params,
    message: e.message,
  }));
  return { ok, data: copy, errors };
}

t.test('precompiled validators behave exactly like validators compiled at run time', async (t) => {
  const pre = (await import(PRECOMPILED)) as { default: Precompiled };
  t.ok(pre.default.validators.params.http, 'the build wrote dist/config/validators.cjs (npm run build)');
  const samples: unknown[] = [
    {},
    { url: 'http://x', port: '443', method: 'GET' },
    { host: 'h', port: 'not a port', extra: true },
    { measure: 'pods', namespace: 'default', selector: 'app=x', maxRestarts: '3' },
    { url: 'postgres://u:p@h/db', measure: 'ready' },
    { query: 'up', url: 'http://prom:9090', reduce: 'avg' },
    { provider: 'stripe', keyEnv: 5 },
    { source: 's3://b/k', format: 'istanbul' },
    { bucket: 'Bad_Bucket', windowDays: 0 },
  ];
  for (const kind of probeKinds.values()) {
    const runtime = compiler('params').compile(kind.params);
    const built = pre.default.validators.params[kind.kind]!;
    t.equal(pre.default.fingerprints.params[kind.kind], fingerprint(kind.params), `${kind.kind}: fingerprint is current`);
    for (const s of samples) t.same(outcome(built, s), outcome(runtime, s), `${kind.kind}: ${JSON.stringify(s)}`);
  }
  const doc = JSON.parse(JSON.stringify(reference(readFileSync('test/fixtures/invalid-many.yaml', 'utf8'))));
  t.same(outcome(pre.default.validators.document.checklist!, doc), outcome(compiler('document').compile(ChecklistSchema), doc), 'checklist document');
});

t.test('a validator whose schema changed since the build is compiled again, not used stale', async (t) => {
  const http = probeKinds.get('http')!;
  const changed = { ...http.params, properties: { ...(http.params as unknown as { properties: object }).properties }, required: ['url', 'mustExist'] };
  const v = validatorFor('params', 'http', changed as never);
  t.notOk(v({ url: 'http://x' }), 'the changed schema is the one applied');
  t.match(v.errors, [{ keyword: 'required', params: { missingProperty: 'mustExist' } }]);
});

t.test('a valid file is never parsed into yaml\'s node tree; one with a problem is, with positions', async (t) => {
  const { loadChecklist, yamlParses } = await import('../src/config/load.js');
  const shipped = readFileSync('probes/offgridflow.yaml', 'utf8');
  const before = yamlParses.count;
  const ok = loadChecklist(shipped, 'probes/offgridflow.yaml', {});
  t.ok(ok.ok, 'the shipped checklist loads');
  t.equal(yamlParses.count, before, 'the shipped checklist (titles with "#" quoted) needs no node tree');
  const bad = loadChecklist(shipped.replace(/^checklist: .*$/m, 'checklist: [not, a, name]'), 'probes/offgridflow.yaml', {});
  t.notOk(bad.ok);
  t.equal(yamlParses.count, before + 1, 'a file with a diagnostic is parsed once, for its positions');
  if (!bad.ok) t.match(bad.diagnostics[0], { line: Number, col: Number });
});

t.test('titles that may carry a comment are looked up in yaml\'s nodes; the rest need none', async (t) => {
  const { titlesMayCarryComments } = await import('../src/config/yaml.js');
  const doc = (title: string, next = '    section: x\n') => `checks:\n  - id: a\n    title: ${title}\n${next}`;
  t.ok(titlesMayCarryComments(doc('Slack #alerts')), 'a comment on the title\'s line');
  t.ok(titlesMayCarryComments(doc('Slack', '      continued #here\n    section: x\n')), 'a continuation line');
  t.ok(titlesMayCarryComments(doc('Slack', '    # a note\n    section: x\n')), 'a comment line after it');
  t.ok(titlesMayCarryComments(doc('', '      Slack #alerts\n')), 'a title on the next line');
  t.ok(titlesMayCarryComments('checks: [{id: a, title: Slack #x\n}]\n'), 'flow style with "#"');
  t.notOk(titlesMayCarryComments(doc('"Slack #alerts"')), 'quoted');
  t.notOk(titlesMayCarryComments(doc('C# and F#')), '"#" inside a word is no comment');
  t.notOk(titlesMayCarryComments(doc('Plain title')), 'plain, followed by the next key');
});
