// The fault suite's bookkeeping: each fault case is a tap subtest with its own time bound,
// and each file prints one figure line, `# faults(NAME): N cases, N held, N broken`, which
// scripts/test.sh adds up. A case "holds" when every assertion in it passed: the service
// kept its promise under that fault (docs/faults.md lists the promises).
import type { Test } from 'tap';

export interface FaultSuite {
  /** Registers one fault case, bounded by `timeoutMs` (tap fails it past that). */
  fault(name: string, timeoutMs: number, fn: (t: Test) => Promise<void>): void;
}

export function faultSuite(t: Test, name: string): FaultSuite {
  const tally = { cases: 0, held: 0, broken: 0, skipped: 0 };
  const pending: Promise<unknown>[] = [];
  // The file's own bound is the sum of its cases' (tap's default per file would cut a slow
  // machine's run short in the middle of a case that is still within its own bound).
  let budget = 30_000;
  t.teardown(() => {
    // Printed by tap as a comment; scripts/test.sh sums these lines over the files.
    const skipped = tally.skipped > 0 ? `, ${tally.skipped} skipped` : '';
    console.log(`# faults(${name}): ${tally.cases} cases, ${tally.held} held, ${tally.broken} broken${skipped}`);
  });
  return {
    fault(caseName, timeoutMs, fn) {
      tally.cases++;
      budget += timeoutMs;
      t.setTimeout(budget);
      const p = t.test(caseName, { timeout: timeoutMs }, fn).then((r) => {
        // A case filtered out (--grep) reports no results, or only a skip.
        if (!r || (r.count === 0 && r.skip > 0) || r.plan.skipAll) tally.skipped++;
        else if (r.ok) tally.held++;
        else tally.broken++;
      });
      pending.push(p);
    },
  };
}
