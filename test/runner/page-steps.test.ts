// Each runbook page states its steps and their deadlines for the on-call reader; the scenario is
// what runs. This test collects the steps the way `--plan` does (cli/run/vitest-session.ts ›
// collectSteps: names and deadlines, resolved against a target) and compares them, in order, with
// the page: `## <n>. <step> (deadline <d>)` headings, or the rows of a `| # | Step | Deadline |`
// table. A renamed step, a changed deadline, a step missing on either side fails here.
// "reload wait" in a page deadline is the kernel reload wait (helpers/policy-bundles.ts ›
// kernelReloadWaitMs: two reload intervals + 5 s), checked for two reload intervals.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, loadCatalog, type Runbook } from '../../helpers/catalog.js';
import { kernelReloadWaitMs } from '../../helpers/policy-bundles.js';
import { impactSettings } from '../../helpers/policy-impact/settings.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { TEARDOWN_STEP } from '../../helpers/report/run-contract.js';
import { collectSteps, type CollectedStep } from '../../cli/run/vitest-session.js';

interface PageStep {
  name: string;
  deadline: string;
  line: number;
}

const HEADING = /^##\s+\d+\.\s+(.+?)\s+\(deadline ([^)]+)\)\s*$/;

/** The steps a page lists, in page order: numbered headings with a deadline, or step tables. */
function pageSteps(markdown: string): PageStep[] {
  const steps: PageStep[] = [];
  const lines = markdown.split('\n');
  let inTable = false;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const h = HEADING.exec(line);
    if (h) {
      steps.push({ name: h[1]!, deadline: h[2]!, line: i + 1 });
      return;
    }
    if (!line.startsWith('|')) {
      inTable = false;
      return;
    }
    const cells = line.slice(1, line.endsWith('|') ? -1 : undefined).split('|').map((c) => c.trim());
    if (cells[0] === '#' && cells[1] === 'Step' && cells[2] === 'Deadline') {
      inTable = true;
      return;
    }
    if (inTable && !/^-+$/.test(cells[0] ?? '') && cells.length >= 3) steps.push({ name: stripCode(cells[1]!), deadline: cells[2]!, line: i + 1 });
  });
  return steps;
}

/** Table cells may quote a step name as code; the name is what is between the backticks. */
function stripCode(cell: string): string {
  return cell.replace(/^`(.*)`$/, '$1');
}

/**
 * `10 s`, `1 min`, `5.5 min`, `reload wait + 20 s`, `1.5 × 1008 requests at the paced rate` → ms;
 * NaN for anything else. The paced rate is policy-impact's share of the gateway's rate limit for
 * the check profile (helpers/policy-impact/settings.ts).
 */
function deadlineMs(text: string, reloadIntervalMs: number): number {
  let total = 0;
  for (const term of text.split('+').map((t) => t.trim())) {
    const m = /^(\d+(?:\.\d+)?)\s*(s|min)$/.exec(term);
    const paced = /^(\d+(?:\.\d+)?)\s*×\s*(\d+) requests at the paced rate$/.exec(term);
    if (m) total += Number(m[1]) * (m[2] === 'min' ? 60_000 : 1_000);
    else if (paced) total += Math.ceil((Number(paced[2]) / impactSettings(checkProfile(reloadIntervalMs)).rps) * (Number(paced[1]) * 1000));
    else if (term === 'reload wait') total += kernelReloadWaitMs(reloadIntervalMs);
    else return Number.NaN;
  }
  return total;
}

/** The profile the steps are collected against: only what deadlines depend on. */
function checkProfile(reloadIntervalMs: number): TargetProfile {
  return { name: 'page-check', gateway: {}, policy: { reload_interval_ms: reloadIntervalMs } } as unknown as TargetProfile;
}

/** Every disagreement between a page and the collected steps, one line each. */
function disagreements(pageFile: string, page: PageStep[], collected: CollectedStep[], reloadIntervalMs: number): string[] {
  const steps = collected.filter((s) => s.name !== TEARDOWN_STEP);
  const problems: string[] = [];
  for (let i = 0; i < Math.max(page.length, steps.length); i++) {
    const p = page[i];
    const s = steps[i];
    if (!p) {
      problems.push(`${pageFile}: step ${i + 1} '${s!.name}' runs but the page does not list it`);
      continue;
    }
    if (!s) {
      problems.push(`${pageFile}:${p.line}: the page lists step ${i + 1} '${p.name}' but no scenario runs it`);
      continue;
    }
    if (p.name !== s.name) {
      problems.push(`${pageFile}:${p.line}: step ${i + 1} is '${p.name}' on the page but '${s.name}' in the scenario`);
      continue;
    }
    const want = deadlineMs(p.deadline, reloadIntervalMs);
    if (want !== s.deadlineMs) {
      problems.push(`${pageFile}:${p.line}: step '${p.name}': the page says deadline ${p.deadline} (${want} ms), the scenario ${s.deadlineMs ?? 'none'} ms (reload interval ${reloadIntervalMs} ms)`);
    }
  }
  return problems;
}

const RELOAD_INTERVALS_MS = [30_000, 1_000];
const catalog = loadCatalog();
const collected = new Map<number, Map<string, CollectedStep[]>>();
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'page-steps-'));
  const files = catalog.flatMap((r) => r.scenarios);
  for (const interval of RELOAD_INTERVALS_MS) {
    // Only the reload interval matters to deadlines; the DSL reads the profile the run contract names.
    const targetFile = join(dir, `target-${interval}.json`);
    writeFileSync(targetFile, JSON.stringify(checkProfile(interval)));
    const scenarios = await collectSteps(files, { targetFile });
    collected.set(interval, new Map(scenarios.map((s) => [s.file, s.steps])));
  }
}, 240_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function stepsOf(r: Runbook, interval: number): CollectedStep[] {
  return r.scenarios.flatMap((f) => collected.get(interval)!.get(f) ?? []);
}

describe('runbook pages and their scenarios name the same steps with the same deadlines', () => {
  it.each(catalog.map((r) => [r.name, r] as const))('%s', (_name, r) => {
    const pageFile = relative(REPO_ROOT, r.file);
    const page = pageSteps(readFileSync(r.file, 'utf8'));
    expect(page.length, `${pageFile} lists no steps (## <n>. <step> (deadline <d>) headings or a | # | Step | Deadline | table)`).toBeGreaterThan(0);
    const problems = RELOAD_INTERVALS_MS.flatMap((interval) => disagreements(pageFile, page, stepsOf(r, interval), interval));
    expect([...new Set(problems)]).toEqual([]);
  });
});

describe('the comparison', () => {
  const collectedSteps: CollectedStep[] = [
    { name: "Start the runbook's CAP worker", deadlineMs: 10_000 },
    { name: 'Inject: a job on an unmapped topic (no_pool_mapping)', deadlineMs: 16_000 },
    { name: 'Publish and wait', deadlineMs: 2 * 30_000 + 5_000 + 20_000 },
    { name: TEARDOWN_STEP, deadlineMs: 120_000 },
  ];
  const page = (step2: string, deadline3 = 'reload wait + 20 s', extra = '') =>
    pageSteps(
      [
        "## 1. Start the runbook's CAP worker (deadline 10 s)",
        `## 2. ${step2} (deadline 16 s)`,
        `## 3. Publish and wait (deadline ${deadline3})`,
        extra,
      ].join('\n'),
    );

  it('accepts a page that agrees (the teardown step is the DSL\'s, not the page\'s)', () => {
    expect(disagreements('p.md', page('Inject: a job on an unmapped topic (no_pool_mapping)'), collectedSteps, 30_000)).toEqual([]);
  });

  it('fails on a heading that differs from the step, a different deadline, and a step only one side has', () => {
    expect(disagreements('p.md', page('Inject: a job on an unmapped topic'), collectedSteps, 30_000)).toEqual([
      "p.md:2: step 2 is 'Inject: a job on an unmapped topic' on the page but 'Inject: a job on an unmapped topic (no_pool_mapping)' in the scenario",
    ]);
    expect(disagreements('p.md', page('Inject: a job on an unmapped topic (no_pool_mapping)', '85 s'), collectedSteps.map((s) => (s.name === 'Publish and wait' ? { ...s, deadlineMs: 27_000 } : s)), 1_000)).toEqual([
      "p.md:3: step 'Publish and wait': the page says deadline 85 s (85000 ms), the scenario 27000 ms (reload interval 1000 ms)",
    ]);
    expect(disagreements('p.md', page('Inject: a job on an unmapped topic (no_pool_mapping)', undefined, '## 4. Check again (deadline 5 s)'), collectedSteps, 30_000)).toEqual([
      "p.md:4: the page lists step 4 'Check again' but no scenario runs it",
    ]);
    expect(disagreements('p.md', page('Inject: a job on an unmapped topic (no_pool_mapping)'), [...collectedSteps, { name: 'Later', deadlineMs: 1_000 }], 30_000)).toEqual([
      "p.md: step 4 'Later' runs but the page does not list it",
    ]);
  });

  it('reads step tables and deadlines in s, min and reload waits', () => {
    const steps = pageSteps(['| # | Step | Deadline | What it does |', '|---|---|---|---|', '| 1 | `Preflight: a, b` | 1 min | x |', '| 2 | Smoke | 5.5 min | y |', '', 'prose'].join('\n'));
    expect(steps.map((s) => [s.name, deadlineMs(s.deadline, 30_000)])).toEqual([['Preflight: a, b', 60_000], ['Smoke', 330_000]]);
    expect(deadlineMs('reload wait + 20 s', 1_000)).toBe(27_000);
    expect(deadlineMs('soon', 1_000)).toBeNaN();
  });
});
