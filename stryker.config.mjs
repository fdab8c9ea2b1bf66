// Mutation testing of the decision core (`npm run mutate`, README "Mutation testing"): StrykerJS
// plants one small bug at a time in the code that decides what is true (states, conditions,
// dependencies, staleness, readiness, rollback, auth, filters, env substitution) and runs the
// fast unit tests that cover it; a bug no test notices is a surviving mutant.
//
// The core is named here once (CORE). Parts of a file are named by declaration and resolved to
// line ranges when the config loads, so edits elsewhere in the file do not move them.
// test/mutation-config.test.ts (in CI) checks that this config loads, validates against
// Stryker's schemas and still covers every file and declaration below.
import { readFileSync } from 'node:fs';
import ts from 'typescript';

/** The files (or named declarations of a file) whose mutation score the project keeps >= 90%. */
export const CORE = [
  { file: 'src/state.ts' },
  { file: 'src/harness.ts' },
  { file: 'src/conditions.ts' },
  { file: 'src/service.ts' },
  { file: 'src/scheduler.ts' },
  { file: 'src/store/cached.ts' },
  { file: 'src/config/env.ts' },
  // The one definition of "passing" (pass or warn) that readiness, metrics and the CLI share.
  { file: 'src/store/types.ts', parts: ['isPassing'] },
  // Auth: the bearer check every write route runs.
  { file: 'src/http/server.ts', parts: ['makeAuth'] },
  // Filters, the readiness body and the rollback block of /readiness.
  { file: 'src/http/answers.ts', parts: ['readinessBody'] },
  // The rollback verdict's status code and message (/rollback).
  { file: 'src/http/rollout.ts', parts: ['handler', 'verdictMessage'] },
];

/**
 * The fast unit test files of the core: in-process, no spawned servers. Each mutant runs only
 * the files that reached it (coverage per file); e2e, HA, browser and database tests are
 * `npm test`'s job. test/scheduler.test.ts is not here: its timer assertions (gaps between
 * runs, runs within a sleep) fail on a loaded machine, and a failing dry run aborts the whole
 * mutation run; the scheduler's decisions are pinned by test/core/scheduler-core.test.ts and
 * test/core/dependencies.test.ts instead.
 */
export const TEST_FILES = [
  'test/core/*.test.ts',
  'test/harness.test.ts',
  'test/conditions.test.ts',
  'test/rollback.test.ts',
  'test/rollout-api.test.ts',
  'test/server.test.ts',
  'test/records.test.ts',
  'test/config.test.ts',
];

/** `file:startLine-endLine` of each named declaration (function, const, class or method). */
export function declarationRanges(file, names, root = process.cwd()) {
  const text = readFileSync(new URL(file, `file://${root}/`), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found = new Map();
  const visit = (node) => {
    const name = node.name && ts.isIdentifier(node.name) ? node.name.text : undefined;
    const isDecl = ts.isFunctionDeclaration(node) || ts.isVariableDeclaration(node) || ts.isClassDeclaration(node) || ts.isMethodDeclaration(node);
    if (isDecl && name && names.includes(name) && !found.has(name)) {
      // A variable's range starts at its statement (`const x = ...`), so the whole line counts.
      const outer = ts.isVariableDeclaration(node) ? node.parent.parent : node;
      const start = sf.getLineAndCharacterOfPosition(outer.getStart(sf)).line + 1;
      const end = sf.getLineAndCharacterOfPosition(outer.getEnd()).line + 1;
      found.set(name, `${file}:${start}-${end}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  const lost = names.filter((n) => !found.has(n));
  if (lost.length) throw new Error(`stryker.config.mjs: ${file} no longer declares ${lost.join(', ')}: update CORE`);
  return names.map((n) => found.get(n));
}

export const mutate = CORE.flatMap(({ file, parts }) => (parts ? declarationRanges(file, parts) : [file]));

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  $schema: './node_modules/@stryker-mutator/core/schema/stryker-schema.json',
  packageManager: 'npm',
  mutate,
  // The tap runner, running a mutant's test files in TEST_FILES order (core tests first).
  testRunner: 'tap-ordered',
  // Once per run, in the sandbox: the instrumented sources and the tests to plain JavaScript
  // under .stryker-build/ (a bare `node test.js` costs a third of one under tsx).
  buildCommand: 'node scripts/stryker-build.mjs',
  tap: {
    testFiles: TEST_FILES.map((f) => `.stryker-build/${f.replace(/\.ts$/, '.js')}`),
    nodeArgs: [],
    forceBail: true,
  },
  coverageAnalysis: 'perTest',
  checkers: ['typescript'],
  // src/ only: a mutant that does not compile is not a test gap.
  tsconfigFile: 'tsconfig.build.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  plugins: ['@stryker-mutator/tap-runner', '@stryker-mutator/typescript-checker', './scripts/stryker-tap-ordered.mjs', './scripts/stryker-ignore-logging.mjs'],
  // Log calls say what happened, they decide nothing: their arguments are not mutated.
  ignorers: ['logging'],
  // Two shared cores: one or two test processes at a time (override with --concurrency).
  concurrency: 2,
  // Generous: a loaded machine must not turn a slow test into a "timeout" kill.
  timeoutMS: 20_000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 15,
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  reporters: ['clear-text', 'html', 'progress'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: true, reportScoreTable: true },
  thresholds: { high: 90, low: 80, break: null },
  tempDirName: '.stryker-tmp',
  ignorePatterns: ['dist', '.stryker-build', 'reports', 'coverage', '.tap', 'scratch', 'data', '.test-services', 'bench', 'ui-shots'],
};
