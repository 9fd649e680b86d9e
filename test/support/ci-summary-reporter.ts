// Prints one plain closing line, `tests: N passed, N failed, N skipped`, that CI systems (and the
// workplace's CI) read to tell a run with tests from one that ran none. Before it, one line per
// distinct reason tests were skipped for, when a test or suite names it as "… (skipped: <reason>)"
// (test/support/shared-reference.ts, test/contract/support.ts), so a skip is never silent.
import type { Reporter, TestCase, TestModule } from 'vitest/node';

const REASON = /\(skipped: (.*)\)$/;

/** The reason in the test's own name or in the nearest enclosing suite's name. */
function skipReason(test: TestCase): string | undefined {
  for (let node: TestCase | TestCase['parent'] = test; node.type !== 'module'; node = node.parent) {
    const m = REASON.exec(node.name);
    if (m) return m[1];
  }
  return undefined;
}

export default class CiSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const reasons = new Map<string, number>();
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else {
          skipped++;
          const reason = skipReason(test);
          if (reason) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        }
      }
      // A file that failed to load has no tests but is a failure.
      if (mod.state() === 'failed' && [...mod.children.allTests()].length === 0) failed++;
    }
    const lines = [...reasons].map(([reason, n]) => `skipped ${n} test${n === 1 ? '' : 's'}: ${reason}\n`);
    process.stdout.write(`\n${lines.join('')}tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
