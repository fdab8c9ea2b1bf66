// The CI guard of mutation testing (issue 17): the full `npm run mutate` is too slow for every
// change, so CI checks only that stryker.config.mjs loads, is valid for Stryker's schema, still
// covers the decision core (every file and declaration below still exists), and runs only
// the fast in-process test files. Cheap: no mutant is run.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import t from 'tap';

/** The files a TEST_FILES entry names: a path, or `dir/*.test.ts`. */
function expand(pattern: string): string[] {
  const star = pattern.lastIndexOf('/*');
  if (star < 0) return existsSync(pattern) ? [pattern] : [];
  const dir = pattern.slice(0, star);
  const suffix = pattern.slice(star + 2);
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(suffix)).map((f) => `${dir}/${f}`) : [];
}

interface CoreEntry {
  file: string;
  parts?: string[];
}
interface StrykerConfigModule {
  default: Record<string, unknown> & { buildCommand: string; mutate: string[]; tap: { testFiles: string[] }; plugins: string[]; ignorers: string[] };
  CORE: CoreEntry[];
  TEST_FILES: string[];
}

/** What issue 17 names as the decision core: these must stay mutated. */
const REQUIRED: Record<string, string[] | 'whole'> = {
  'src/state.ts': 'whole',
  'src/harness.ts': 'whole',
  'src/conditions.ts': 'whole',
  'src/service.ts': 'whole',
  'src/scheduler.ts': 'whole',
  'src/store/cached.ts': 'whole',
  'src/config/env.ts': 'whole',
  'src/store/types.ts': ['isPassing'],
  'src/http/server.ts': ['makeAuth'],
  'src/http/answers.ts': ['readinessBody'],
  'src/http/rollout.ts': ['handler', 'verdictMessage'],
};

/** Test files that start servers, browsers or clusters: never run per mutant. */
const SLOW = /\/(e2e|ha|outage|durability|startup|serve|serving|store|store-scale|deploy|deploy-run|deploy-tools|ui-browser|dockerfile|unconfigured|alerts|dashboards)\.test\.ts$/;

// Plain JavaScript modules: imported by a computed path (no declaration files to type them).
const CONFIG = '../stryker.config.mjs';
const IGNORER = '../scripts/stryker-ignore-logging.mjs';
const ORDERED = '../scripts/stryker-tap-ordered.mjs';
const load = async () => (await import(CONFIG)) as StrykerConfigModule;

t.test('the config loads and is valid for Stryker', async (t) => {
  const mod = await load();
  const config = mod.default;
  const schema = JSON.parse(readFileSync('node_modules/@stryker-mutator/core/schema/stryker-schema.json', 'utf8'));
  const ajv = new Ajv({ strict: false, allErrors: true });
  const validate = ajv.compile(schema);
  t.ok(validate(config), `valid: ${ajv.errorsText(validate.errors)}`);
  // The schema allows unknown keys (plugins add theirs); a typo must still fail here.
  const unknown = Object.keys(config).filter((k) => k !== '$schema' && !(k in schema.properties));
  t.same(unknown, [], 'every key is a Stryker option');
  t.equal(config.testRunner, 'tap-ordered', 'the tap runner, core tests first (scripts/stryker-tap-ordered.mjs)');
  t.equal(config.coverageAnalysis, 'perTest', 'each mutant runs only the test files that reach it');
  t.ok((config.concurrency as number) <= 2, 'at most two test processes on a shared machine');
  t.equal(config.incremental, true);
  t.match(config.htmlReporter, { fileName: /^reports\// });
  t.match(readFileSync('.gitignore', 'utf8'), /^reports\/$/m, 'the report folder is git-ignored');
  t.match(readFileSync('.gitignore', 'utf8'), /^\.stryker-tmp\/$/m, 'the sandboxes are git-ignored');
  const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
  t.equal(pkg.scripts.mutate, 'stryker run');
  for (const dep of ['@stryker-mutator/core', '@stryker-mutator/tap-runner', '@stryker-mutator/typescript-checker', '@stryker-mutator/api']) {
    t.ok(pkg.devDependencies[dep], `${dep} is a devDependency`);
  }
});

t.test('the plugins it names load; the logging ignorer is declared', async (t) => {
  const mod = await load();
  for (const p of mod.default.plugins) {
    const m = await import(p.startsWith('./') ? `../${p.slice(2)}` : p);
    t.ok(Array.isArray(m.strykerPlugins) && m.strykerPlugins.length > 0, `${p} exports strykerPlugins`);
  }
  const ignorer = (await import(IGNORER)) as { strykerPlugins: unknown[]; isLogCall: (node: object) => boolean };
  t.same(mod.default.ignorers, ['logging']);
  t.match(ignorer.strykerPlugins, [{ kind: 'Ignore', name: 'logging' }]);
  const call = (object: object, level: string) => ({ type: 'CallExpression', callee: { type: 'MemberExpression', computed: false, object, property: { type: 'Identifier', name: level } }, arguments: [] });
  const thisLog = { type: 'MemberExpression', computed: false, object: { type: 'ThisExpression' }, property: { type: 'Identifier', name: 'log' } };
  t.ok(ignorer.isLogCall(call({ type: 'Identifier', name: 'log' }, 'warn')), 'log.warn(...)');
  t.ok(ignorer.isLogCall(call(thisLog, 'error')), 'this.log.error(...)');
  t.notOk(ignorer.isLogCall(call({ type: 'Identifier', name: 'store' }, 'error')), 'store.error(...) is not logging');
  t.notOk(ignorer.isLogCall(call(thisLog, 'child')), 'log.child(...) is not a log line');
});

t.test('it covers every file and declaration of the decision core', async (t) => {
  const { CORE, default: config } = await load();
  for (const [file, want] of Object.entries(REQUIRED)) {
    const entry = CORE.find((c) => c.file === file);
    if (!entry) {
      t.fail(`${file} is not in CORE`);
      continue;
    }
    if (want === 'whole') t.equal(entry.parts, undefined, `${file} is mutated whole`);
    else t.ok(want.every((p) => entry.parts?.includes(p)), `${file}: ${want.join(', ')}`);
  }
  for (const m of config.mutate) {
    const [, file, start, end] = /^([^:]+)(?::(\d+)-(\d+))?$/.exec(m) ?? [];
    t.ok(file && existsSync(file), `${m}: the file exists`);
    if (start === undefined) continue;
    const lines = readFileSync(file!, 'utf8').split('\n').length;
    t.ok(Number(start) >= 1 && Number(start) <= Number(end) && Number(end) <= lines, `${m}: a range inside the file`);
  }
  // The ranges wrap the declarations they name, wherever the file moved them.
  const text = readFileSync('src/http/server.ts', 'utf8').split('\n');
  const auth = config.mutate.find((m) => m.startsWith('src/http/server.ts:'))!;
  const [s, e] = auth.split(':')[1]!.split('-').map(Number);
  t.match(text[s! - 1], /function makeAuth/, 'the server.ts range starts at makeAuth');
  t.match(text.slice(s! - 1, e).join('\n'), /timingSafeEqual/, 'and holds the comparison');
});

t.test('each mutant runs only fast in-process test files, the core tests included', async (t) => {
  const { TEST_FILES, default: config } = await load();
  // Stryker runs them compiled (scripts/stryker-build.mjs): the same files, as .js.
  t.same(config.tap.testFiles, TEST_FILES.map((f) => `.stryker-build/${f.replace(/\.ts$/, '.js')}`));
  t.equal(config.buildCommand, 'node scripts/stryker-build.mjs');
  const files = TEST_FILES.flatMap(expand).sort();
  t.ok(files.length >= 10, `${files.length} test files`);
  for (const f of files) t.notMatch(f, SLOW, `${f} is a fast test`);
  for (const f of readdirSync('test/core').filter((f) => f.endsWith('.test.ts'))) {
    t.ok(files.includes(`test/core/${f}`), `test/core/${f} is run per mutant`);
  }
  for (const g of TEST_FILES) t.ok(expand(g).length > 0, `${g} matches a file`);
  // A mutant's files run core tests first, then in TEST_FILES order.
  const ordered = (await import(ORDERED)) as { byRank: (a: string, b: string) => number };
  const compiled = config.tap.testFiles.flatMap((g) => expand(g.replace(/^\.stryker-build\//, '').replace(/\.js$/, '.ts'))).map((f) => `.stryker-build/${f.replace(/\.ts$/, '.js')}`);
  const sorted = [...compiled].reverse().sort(ordered.byRank);
  t.ok(sorted.slice(0, readdirSync('test/core').filter((f) => f.endsWith('.test.ts')).length).every((f) => f.includes('/test/core/')), 'test/core first');
  t.equal(sorted.at(-1), '.stryker-build/test/config.test.js', 'the last TEST_FILES entry last');
});

t.test('every disabled mutant in the core says why', async (t) => {
  const { CORE } = await load();
  const comments: string[] = [];
  for (const { file } of CORE) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        const m = /Stryker (disable|restore)\b(.*)$/.exec(line);
        if (m) comments.push(`${file}:${i + 1}: ${m[0]}`);
      });
  }
  for (const c of comments.filter((c) => c.includes('Stryker disable'))) {
    t.match(c, /Stryker disable (next-line|all)? ?[\w,]+: \S.{10,}/, `${c}: names the mutator and a reason`);
  }
  t.ok(comments.length <= 20, `a short list (${comments.length})`);
});
