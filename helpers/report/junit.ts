// junit.xml for CI test tabs (GitLab artifacts:reports:junit, Jenkins, ...), written by the runner
// from the same step records as summary.json, so it exists for every run that ran steps: also when
// the run was interrupted, forced, or a scenario file failed to load, where a Vitest reporter would
// not have finished. One <testsuite> per scenario file, one <testcase> per step.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunSummary, StepRecord } from './summary.js';

export const JUNIT_FILE = 'junit.xml';

/** XML 1.0 text: escape markup and drop characters XML cannot carry (ANSI escapes, NUL). */
export function xmlText(s: string): string {
  return s
    .replace(/\x1b\[[0-9;]*m/g, '')
    .replace(/[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

const secs = (ms: number) => (ms / 1000).toFixed(3);

export function renderJunit(s: RunSummary): string {
  const suites = new Map<string, { name: string; steps: StepRecord[] }>();
  for (const st of s.steps) {
    const key = st.file || st.scenario;
    if (!suites.has(key)) suites.set(key, { name: st.scenario || st.file, steps: [] });
    suites.get(key)!.steps.push(st);
  }
  const count = (steps: StepRecord[], status: string) => steps.filter((x) => x.status === status).length;
  const total = (steps: StepRecord[]) => steps.reduce((n, x) => n + x.duration_ms, 0);
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(
    `<testsuites name="${xmlText(`runbook ${s.runbook} on ${s.target}`)}" tests="${s.steps.length}" failures="${count(s.steps, 'failed')}" errors="${s.errors.length}" skipped="${count(s.steps, 'skipped')}" time="${secs(total(s.steps))}" timestamp="${xmlText(s.start)}">`,
  );
  for (const [file, suite] of suites) {
    out.push(
      `  <testsuite name="${xmlText(suite.name)}" file="${xmlText(file)}" tests="${suite.steps.length}" failures="${count(suite.steps, 'failed')}" errors="0" skipped="${count(suite.steps, 'skipped')}" time="${secs(total(suite.steps))}">`,
    );
    for (const st of suite.steps) {
      const open = `    <testcase classname="${xmlText(`${s.runbook}.${suite.name}`)}" name="${xmlText(st.name)}" file="${xmlText(file)}" time="${secs(st.duration_ms)}"`;
      if (st.status === 'passed') {
        out.push(`${open}/>`);
      } else if (st.status === 'skipped') {
        out.push(`${open}>`, `      <skipped message="${xmlText(st.skip_reason ?? 'skipped')}"/>`, '    </testcase>');
      } else {
        const msg = st.error ?? 'failed';
        out.push(
          `${open}>`,
          `      <failure message="${xmlText(msg.split('\n')[0] ?? msg)}" type="${xmlText(st.error_type ?? 'Error')}">${xmlText(msg)}</failure>`,
          '    </testcase>',
        );
      }
    }
    out.push('  </testsuite>');
  }
  if (s.errors.length > 0) {
    // Problems outside any step (a scenario file that did not load) must fail the CI test tab too.
    out.push(`  <testsuite name="errors outside steps" tests="${s.errors.length}" failures="0" errors="${s.errors.length}" skipped="0" time="0.000">`);
    s.errors.forEach((e, i) => {
      out.push(
        `    <testcase classname="${xmlText(`${s.runbook}.run`)}" name="${xmlText(`error ${i + 1}`)}" time="0.000">`,
        `      <error message="${xmlText(e.split('\n')[0] ?? e)}">${xmlText(e)}</error>`,
        '    </testcase>',
      );
    });
    out.push('  </testsuite>');
  }
  out.push('</testsuites>', '');
  return out.join('\n');
}

export async function writeJunit(runDir: string, s: RunSummary): Promise<string> {
  const path = join(runDir, JUNIT_FILE);
  await writeFile(path, renderJunit(s));
  return path;
}
