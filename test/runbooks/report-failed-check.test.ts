// A failed check reads as a failure in the report, not as broken test code: a smoke run against a
// sandbox whose approvals are ignored (SANDBOX_FAULTS=approval-ignored), read back from the data the
// report is made of. allure-results/ (what allure-vitest wrote) and the single-file index.html
// (Allure 3's own data, embedded as base64) must both say "failed", the category must be the
// project's "Product defects", and the failed step must link to the page's "When it fails" text,
// also in the terminal. The identical poll answers of the failing wait are one attachment with a count.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getStatusFromError } from 'allure-js-commons/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckFailedError, PreconditionError, UnreachableError } from '../../helpers/errors.js';
import { GatewayError, UnexpectedBodyError } from '../../helpers/gateway.js';
import { RUN_TIMEOUT_MS, allAttachments, allureResults, attachmentText, cleanupRuns, runRunbook, type RunResult, type RunSummary } from '../support/run-runbook.js';

const ANCHOR = 'runbooks/smoke.md#3-workflow-round-trip-deadline-20-s';

let r: RunResult & { summary: RunSummary };
beforeAll(async () => {
  r = await runRunbook('smoke', { faults: 'approval-ignored' });
}, RUN_TIMEOUT_MS);
afterAll(cleanupRuns);

/** The data files Allure 3 embeds in the single-file report: d("name","base64"). */
function embeddedReportData(): Map<string, string> {
  const html = readFileSync(join(r.reportDir!, 'index.html'), 'utf8');
  const files = new Map<string, string>();
  for (const m of html.matchAll(/d\("((?:[^"\\]|\\.)*)","([A-Za-z0-9+/=]*)"\)/g)) {
    files.set(JSON.parse(`"${m[1]}"`) as string, Buffer.from(m[2]!, 'base64').toString('utf8'));
  }
  return files;
}

describe('a failed check in the report (approval-ignored smoke)', () => {
  it('fails the run on the step that checks it (exit 1)', () => {
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const failed = r.summary.steps.filter((s) => s.status === 'failed');
    expect(failed.map((s) => s.name)).toEqual(['Workflow round trip']);
    expect(failed[0]!.when_it_fails).toBe(ANCHOR);
  });

  it('allure-results: status "failed" and a link to the page\'s "When it fails" section', () => {
    const step = allureResults(r).find((x) => x.name === 'Workflow round trip')!;
    expect(step.status).toBe('failed');
    expect(step.statusDetails?.message).toMatch(/run stayed 'waiting' after approve/);
    const link = step.links?.find((l) => l.type === 'runbook');
    expect(link?.url).toMatch(new RegExp(`^file://.*/${ANCHOR.replace(/[.#]/g, '\\$&')}$`));
    expect(link?.name).toBe(`When it fails: ${ANCHOR}`);
  });

  it('the generated report: the step is "failed" in the category "Product defects"', () => {
    const data = embeddedReportData();
    const results = [...data.entries()].filter(([name]) => /test-results\/[^/]+\.json$/.test(name)).map(([, text]) => JSON.parse(text) as { name: string; status: string; categories?: { name: string }[]; links?: { url: string }[] });
    const step = results.find((x) => x.name === 'Workflow round trip');
    expect(step, [...data.keys()].join(', ')).toBeDefined();
    expect(step!.status).toBe('failed');
    expect(step!.categories?.map((c) => c.name)).toEqual(['Product defects']);
    expect(step!.links?.some((l) => l.url.endsWith(ANCHOR))).toBe(true);
    const categories = [...data.entries()].filter(([name]) => name.endsWith('categories.json')).map(([, text]) => text).join('\n');
    expect(categories).toContain('Product defects');
  });

  it('the terminal names the same section under the failed step', () => {
    expect(r.stdout).toMatch(new RegExp(`✗ Workflow round trip[^\\n]*\\n[^\\n]*run stayed 'waiting'[^\\n]*\\n\\s*when it fails: ${ANCHOR.replace(/[.#]/g, '\\$&')}`));
  });

  it('the poll that kept seeing "waiting" is one attachment: the last answer with a count', () => {
    const step = allureResults(r).find((x) => x.name === 'Workflow round trip')!;
    const attachments = allAttachments(step);
    const polls = attachments.filter((a) => /^HTTP GET \/api\/v1\/workflow-runs\/[^ ]+ → 200/.test(a.name));
    const collapsed = polls.filter((a) => /\(×\d+ identical, last shown\)$/.test(a.name));
    expect(collapsed.length, polls.map((a) => a.name).join('\n')).toBeGreaterThan(0);
    const text = attachmentText(r, collapsed[0]!);
    expect(text).toMatch(/^\d+ identical answers from \S+ to \S+; the last one:/);
    // junit.xml carries the failed step's last evidence too.
    expect(readFileSync(join(r.reportDir!, 'junit.xml'), 'utf8')).toMatch(/Last evidence: /);
  });
});

describe('failed or broken: what Allure decides from the error a step throws', () => {
  // Errors reach allure-vitest as serialized copies (prototype lost), so check both forms.
  const asSerialized = (e: Error) => ({ ...structuredClone({ name: e.name, message: e.message, stack: e.stack }), ...e });
  it('a failed check is "failed"; an unreachable target or an unmet precondition is "broken"', () => {
    for (const [err, want] of [
      [new CheckFailedError("expected 'succeeded'"), 'failed'],
      // The target answered, but not as documented: a failed check too.
      [new GatewayError('GET', '/api/v1/status', 500, 'boom', [200]), 'failed'],
      [new UnexpectedBodyError('GET', '/api/v1/status', 200, 'text/html', 'JSON', '<html>'), 'failed'],
      [new UnreachableError('gateway unreachable: ECONNREFUSED'), 'broken'],
      [new PreconditionError("step needs Redis, but target 'x' has no redis section"), 'broken'],
      [new TypeError("Cannot read properties of undefined (reading 'x')"), 'broken'],
    ] as const) {
      expect(getStatusFromError(err), err.message).toBe(want);
      expect(getStatusFromError(asSerialized(err)), err.message).toBe(want);
    }
  });
});
