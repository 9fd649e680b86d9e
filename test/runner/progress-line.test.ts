// The live progress line on a terminal: cut to its width, never at a width the terminal did not report.
// In CI or piped, a step that runs long still says so every 2 s.
import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { ProgressReporter, fitLine } from '../../cli/progress-reporter.js';

const LINE = '  … Workflow round trip (1.2 s)';

describe('live progress line', () => {
  it('a terminal that reports 0 columns (or none) gets the whole line, last character included', () => {
    expect(fitLine(LINE, 0)).toBe(LINE);
    expect(fitLine(LINE, undefined)).toBe(LINE);
    expect(fitLine(LINE, 1)).toBe(LINE);
    expect(fitLine(LINE, Number.NaN)).toBe(LINE);
  });

  it('a narrow terminal gets the line cut one column short of its width, so it never wraps', () => {
    expect(fitLine(LINE, 10)).toBe(LINE.slice(0, 9));
    expect(fitLine(LINE, LINE.length)).toBe(LINE.slice(0, -1));
    expect(fitLine(LINE, LINE.length + 1)).toBe(LINE);
    // Characters, not UTF-16 units: an emoji in a step name is not split in half.
    expect(fitLine('ab😀cd', 4)).toBe('ab😀');
  });

  it('drawn on a 0-column TTY, the running step shows in full', () => {
    const out = Object.assign(new PassThrough(), { isTTY: true, columns: 0 }) as unknown as NodeJS.WriteStream;
    let written = '';
    (out as unknown as PassThrough).on('data', (d) => (written += d));
    const prev = process.env.CI;
    delete process.env.CI;
    try {
      const reporter = new ProgressReporter({ out });
      const tc = { name: 'Workflow round trip', parent: { type: 'suite', name: 'Smoke' }, module: { moduleId: 'x' } };
      reporter.onTestCaseReady(tc as never);
      reporter.onTestRunEnd();
    } finally {
      if (prev !== undefined) process.env.CI = prev;
    }
    expect(written).toMatch(/\r\x1b\[K {2}… Workflow round trip \(0\.0 s\)/);
  });
});

describe('plain progress (CI, piped)', () => {
  it('a step still running after 2 s gets a line every 2 s until its result; a quick step gets none', () => {
    vi.useFakeTimers();
    const out = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream;
    let written = '';
    (out as unknown as PassThrough).on('data', (d) => (written += d));
    try {
      const reporter = new ProgressReporter({ out, plain: true, verbosity: 'normal' });
      const step = (name: string) => ({
        name,
        parent: { type: 'suite', name: 'Backup and restore' },
        module: { moduleId: 'x' },
        result: () => ({ state: 'passed', errors: [] }),
        diagnostic: () => ({ duration: 0 }),
      });
      const quick = step('Preflight');
      reporter.onTestCaseReady(quick as never);
      vi.advanceTimersByTime(1_900);
      reporter.onTestCaseResult(quick as never);
      const slow = step('Back up Redis');
      reporter.onTestCaseReady(slow as never);
      vi.advanceTimersByTime(5_000);
      reporter.onTestCaseResult(slow as never);
      vi.advanceTimersByTime(10_000);
      reporter.onTestRunEnd();
    } finally {
      vi.useRealTimers();
    }
    const lines = written.trimEnd().split('\n');
    expect(lines).toEqual([
      'Backup and restore',
      '  ✓ Preflight (0 ms)',
      '  … Back up Redis (2.0 s)',
      '  … Back up Redis (4.0 s)',
      '  ✓ Back up Redis (0 ms)',
    ]);
    expect(written).not.toContain('\x1b');
  });
});
