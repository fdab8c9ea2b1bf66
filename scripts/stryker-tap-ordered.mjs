// Stryker's tap runner, with the test files of a mutant run in TEST_FILES order (test/core/
// first: small pure tests that kill most mutants in a second). The stock runner keeps the
// order the dry run found them in (a directory walk), so a mutant often waited for a
// server-starting file before the one-second test that kills it; with forceBail the first
// failing file ends the run, so the order is most of the cost.
import { commonTokens, declareFactoryPlugin, PluginKind, tokens } from '@stryker-mutator/api/plugin';
import { INSTRUMENTER_CONSTANTS } from '@stryker-mutator/api/core';
import { TapTestRunner } from '@stryker-mutator/tap-runner';
import { TEST_FILES } from '../stryker.config.mjs';

/** Rank of a compiled test file by the first TEST_FILES entry that names it. */
export function rank(file) {
  const ts = file.replace(/^.*?\.stryker-build\//, '').replace(/\.js$/, '.ts');
  const i = TEST_FILES.findIndex((p) => (p.endsWith('/*.test.ts') ? ts.startsWith(p.slice(0, -'*.test.ts'.length)) && ts.endsWith('.test.ts') : ts === p));
  return i < 0 ? TEST_FILES.length : i;
}

export const byRank = (a, b) => rank(a) - rank(b) || a.localeCompare(b);

class OrderedTapTestRunner extends TapTestRunner {
  static inject = TapTestRunner.inject;
  mutantRun(options) {
    return super.mutantRun(options.testFilter ? { ...options, testFilter: [...options.testFilter].sort(byRank) } : options);
  }
}

function createOrderedTapTestRunner(injector) {
  return injector.provideValue('globalNamespace', INSTRUMENTER_CONSTANTS.NAMESPACE).injectClass(OrderedTapTestRunner);
}
createOrderedTapTestRunner.inject = tokens(commonTokens.injector);

export const strykerPlugins = [declareFactoryPlugin(PluginKind.TestRunner, 'tap-ordered', createOrderedTapTestRunner)];
