// The one JUnit XML writer, with the one XML escaper. Two documents use it:
// - junit.xml of every run, for CI test tabs (GitLab artifacts:reports:junit, Jenkins, ...), written
//   by the runner from the same step records as summary.json, so it exists for every run that ran
//   steps: also when the run was interrupted, forced, or a scenario file failed to load, where a
//   Vitest reporter would not have finished. One <testsuite> per scenario file, one <testcase> per step.
// - readiness.junit.xml of the readiness audit (helpers/readiness/reporters.ts): a suite per section.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunSummary, StepRecord } from './summary.js';

export const JUNIT_FILE = 'junit.xml';

/** Terminal colour and cursor sequences (CSI and OSC), which step errors and tool output can carry. */
const ANSI = /[\u001b\u009b](?:\[[0-?]*[ -/]*[@-~]|\][^\u0007\u001b]*(?:\u0007|\u001b\\)|[@-Z\\-_])/g;

/** XML 1.0 text and attribute values: escape markup, drop ANSI sequences and characters XML cannot carry (NUL, other C0 controls). */
export function xmlText(s: string): string {
  return s
    .replace(ANSI, '')
    .replace(/[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

export type JunitOutcome =
  | { kind: 'passed'; systemOut?: string }
  | { kind: 'skipped'; message: string }
  | { kind: 'failure'; message: string; type: string; body: string }
  | { kind: 'error'; message: string; body: string };

export interface JunitCase {
  classname: string;
  name: string;
  file?: string;
  timeMs: number;
  outcome: JunitOutcome;
}

export interface JunitSuite {
  name: string;
  file?: string;
  cases: JunitCase[];
}

export interface JunitDocument {
  name: string;
  timestamp?: string;
  suites: JunitSuite[];
}

const secs = (ms: number) => (ms / 1000).toFixed(3);
const firstLine = (s: string) => s.split('\n')[0] ?? s;

function counts(cases: JunitCase[]) {
  const n = (kind: JunitOutcome['kind']) => cases.filter((c) => c.outcome.kind === kind).length;
  return { tests: cases.length, failures: n('failure'), errors: n('error'), skipped: n('skipped'), time: secs(cases.reduce((t, c) => t + c.timeMs, 0)) };
}

const attrs = (c: ReturnType<typeof counts>) => `tests="${c.tests}" failures="${c.failures}" errors="${c.errors}" skipped="${c.skipped}" time="${c.time}"`;

function renderCase(c: JunitCase): string[] {
  const open = `    <testcase classname="${xmlText(c.classname)}" name="${xmlText(c.name)}"${c.file ? ` file="${xmlText(c.file)}"` : ''} time="${secs(c.timeMs)}"`;
  const o = c.outcome;
  switch (o.kind) {
    case 'passed':
      return o.systemOut ? [`${open}>`, `      <system-out>${xmlText(o.systemOut)}</system-out>`, '    </testcase>'] : [`${open}/>`];
    case 'skipped':
      return [`${open}>`, `      <skipped message="${xmlText(o.message)}"/>`, '    </testcase>'];
    case 'failure':
      return [`${open}>`, `      <failure message="${xmlText(firstLine(o.message))}" type="${xmlText(o.type)}">${xmlText(o.body)}</failure>`, '    </testcase>'];
    case 'error':
      return [`${open}>`, `      <error message="${xmlText(firstLine(o.message))}">${xmlText(o.body)}</error>`, '    </testcase>'];
  }
}

export function renderJunitXml(doc: JunitDocument): string {
  const all = doc.suites.flatMap((s) => s.cases);
  const out = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(`<testsuites name="${xmlText(doc.name)}" ${attrs(counts(all))}${doc.timestamp ? ` timestamp="${xmlText(doc.timestamp)}"` : ''}>`);
  for (const s of doc.suites) {
    out.push(`  <testsuite name="${xmlText(s.name)}"${s.file ? ` file="${xmlText(s.file)}"` : ''} ${attrs(counts(s.cases))}>`);
    for (const c of s.cases) out.push(...renderCase(c));
    out.push('  </testsuite>');
  }
  out.push('</testsuites>', '');
  return out.join('\n');
}

/** A failed step's <failure> body: the message, where the runbook page says what to do, and the last evidence. */
function failureBody(st: StepRecord): string {
  const parts = [st.error ?? 'failed'];
  if (st.when_it_fails) parts.push(`When it fails: ${st.when_it_fails}`);
  if (st.evidence) parts.push(`Last evidence: ${st.evidence}`);
  return parts.join('\n\n');
}

function stepOutcome(st: StepRecord): JunitOutcome {
  if (st.status === 'passed') return { kind: 'passed' };
  if (st.status === 'skipped') return { kind: 'skipped', message: st.skip_reason ?? 'skipped' };
  return { kind: 'failure', message: st.error ?? 'failed', type: st.error_type ?? 'Error', body: failureBody(st) };
}

/** junit.xml of a run: one suite per scenario file, and the problems outside any step as errors. */
export function renderJunit(s: RunSummary): string {
  const suites = new Map<string, JunitSuite>();
  for (const st of s.steps) {
    const key = st.file || st.scenario;
    let suite = suites.get(key);
    if (!suite) suites.set(key, (suite = { name: st.scenario || st.file, file: key, cases: [] }));
    suite.cases.push({ classname: `${s.runbook}.${suite.name}`, name: st.name, file: key, timeMs: st.duration_ms, outcome: stepOutcome(st) });
  }
  const all = [...suites.values()];
  if (s.errors.length > 0) {
    // Problems outside any step (a scenario file that did not load) must fail the CI test tab too.
    all.push({
      name: 'errors outside steps',
      cases: s.errors.map((e, i) => ({ classname: `${s.runbook}.run`, name: `error ${i + 1}`, timeMs: 0, outcome: { kind: 'error', message: e, body: e } })),
    });
  }
  return renderJunitXml({ name: `runbook ${s.runbook} on ${s.target}`, timestamp: s.start, suites: all });
}

export async function writeJunit(runDir: string, s: RunSummary): Promise<string> {
  const path = join(runDir, JUNIT_FILE);
  await writeFile(path, renderJunit(s));
  return path;
}
