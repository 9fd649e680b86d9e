// The report writers a reader meets first: the link from a failed step to its runbook page's
// "When it fails" text, junit.xml (one writer, one escaper, evidence on failures) and summary.md.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, findRunbook } from '../../helpers/catalog.js';
import { clearSecrets, redact, registerSecret } from '../../helpers/redact.js';
import { CATEGORIES, generateHtml, pagePieces, preloadAllure } from '../../helpers/report/allure.js';
import { renderJunit, renderJunitXml, xmlText } from '../../helpers/report/junit.js';
import { slug, whenItFailsAnchor, whenItFailsLink } from '../../helpers/report/runbook-links.js';
import { recordClean, scrubSecrets, type ScrubbedFiles } from '../../helpers/report/secrets.js';
import { renderMarkdown, type RunSummary } from '../../helpers/report/summary.js';

const page = (name: string) => readFileSync(join(REPO_ROOT, 'runbooks', `${name}.md`), 'utf8');

describe('link from a failed step to its runbook page', () => {
  it('slugs headings the way GitHub does', () => {
    expect(slug('3. Workflow round trip (deadline 20 s)')).toBe('3-workflow-round-trip-deadline-20-s');
    expect(slug('When a step fails')).toBe('when-a-step-fails');
  });

  it("points at the step's own section, whose text says what to do when it fails", () => {
    const md = page('smoke');
    const anchor = whenItFailsAnchor(md, 'Workflow round trip');
    expect(anchor).toBe('3-workflow-round-trip-deadline-20-s');
    // The section the anchor names holds the page's "When it fails" text for that step.
    const section = md.split(/^## /m).find((s) => slug(s.split('\n')[0]!) === anchor)!;
    expect(section).toMatch(/When it fails:[\s\S]*run stayed 'waiting' after approve/);
  });

  it('matches a step whose name adds detail in parentheses, and falls back to the page\'s "When … fails" section', () => {
    expect(whenItFailsAnchor(page('dlq-retry'), 'Inject: a job on an unmapped topic (no_pool_mapping)')).toBe('2-inject-a-job-on-an-unmapped-topic-no_pool_mapping-deadline-16-s');
    expect(whenItFailsAnchor(page('smoke'), 'Jobs (a detail the page does not name)')).toBe('4-jobs-deadline-10-s');
    expect(whenItFailsAnchor(page('backup-restore'), 'Verify the restored data, including the markers')).toBe('when-a-step-fails');
  });

  it('every step of every shipped runbook page gets an anchor that exists on its page', () => {
    for (const [name, steps] of Object.entries({
      smoke: ['Liveness and readiness', 'Auth is enforced', 'Jobs', 'Locks and artifacts round trip', 'Everything it created is gone'],
      policy: ['Load the policy cases', 'Publish the draft and wait for the kernel to load it'],
      'audit-trail': ['Write the audit evidence file'],
    })) {
      const md = page(name);
      for (const step of steps) {
        const anchor = whenItFailsAnchor(md, step);
        expect(anchor, `${name} › ${step}`).toBeDefined();
        expect(md.split('\n').some((l) => /^#+ /.test(l) && slug(l.replace(/^#+ /, '')) === anchor), `${name} › ${step}`).toBe(true);
      }
    }
  });

  it('gives a readable path for the terminal and a URL for the report (RUNBOOK_DOCS_URL or a file URL)', () => {
    const file = findRunbook('smoke').file;
    const local = whenItFailsLink(file, 'Jobs', {})!;
    expect(local.display).toMatch(/runbooks\/smoke\.md#4-jobs-deadline-10-s$/);
    expect(local.url).toMatch(/^file:\/\/.*\/runbooks\/smoke\.md#4-jobs-deadline-10-s$/);
    const web = whenItFailsLink(file, 'Jobs', { RUNBOOK_DOCS_URL: 'https://git.example.com/cordum-runbooks/blob/main' })!;
    expect(web.url).toBe('https://git.example.com/cordum-runbooks/blob/main/runbooks/smoke.md#4-jobs-deadline-10-s');
  });
});

function summary(over: Partial<RunSummary> = {}): RunSummary {
  return {
    run_id: '20260101-000000-abcd', runbook: 'smoke', title: 'Smoke', target: 'staging', target_source: 'targets/staging.yaml',
    gateway: 'https://cordum.example.com', ticket: 'CHG-1', status: 'failed', exit_code: 1,
    start: '2026-01-01T00:00:00.000Z', end: '2026-01-01T00:00:10.000Z', duration_ms: 10_000,
    counts: { total: 2, passed: 1, failed: 1, skipped: 0 },
    steps: [
      { scenario: 'Smoke', file: 'scenarios/smoke/smoke.test.ts', name: 'Liveness and readiness', status: 'passed', duration_ms: 10, exit_code: 0 },
      {
        scenario: 'Smoke', file: 'scenarios/smoke/smoke.test.ts', name: 'Workflow round trip', status: 'failed', duration_ms: 5000, exit_code: 1,
        error: "run stayed 'waiting' after approve (204)", error_type: 'AssertionError',
        when_it_fails: 'runbooks/smoke.md#3-workflow-round-trip-deadline-20-s',
        evidence: 'HTTP GET /api/v1/workflow-runs/r1 → 200 (×19 identical, last shown)\n< 200 (3 ms)\n<\n< {"status": "waiting"}\x1b[0m',
      },
    ],
    findings: [],
    teardown: { removed_by_steps: [], removed_by_runner: [], left_behind: [], earlier_runs: [] },
    errors: [],
    environment: { target: 'staging', target_gateway: 'https://cordum.example.com', platform_version: 'v0.9.1', suite_git_sha: '0123456789ab', operator: 'ann@host', runbook: 'smoke', ticket: 'CHG-1' },
    options: {},
    sections: [],
    ...over,
  };
}

describe('junit.xml', () => {
  it("a failure carries the page's advice and the step's last evidence, without ANSI codes", () => {
    const xml = renderJunit(summary());
    const failure = /<failure message="([^"]*)" type="AssertionError">([^<]*)<\/failure>/.exec(xml);
    expect(failure?.[1]).toBe("run stayed 'waiting' after approve (204)");
    expect(failure?.[2]).toContain('When it fails: runbooks/smoke.md#3-workflow-round-trip-deadline-20-s');
    expect(failure?.[2]).toContain('Last evidence: HTTP GET /api/v1/workflow-runs/r1 → 200 (×19 identical, last shown)');
    expect(failure?.[2]).toContain('{&quot;status&quot;: &quot;waiting&quot;}');
    expect(xml).not.toMatch(/\x1b/);
  });

  it('one escaper: colour, cursor and OSC sequences and control characters go; markup is escaped', () => {
    expect(xmlText('\x1b[31mred\x1b[0m \x1b[?25lhidden\x1b[?25h \x1b]8;;https://x\x07link\x1b]8;;\x07 a\x00b <&>"')).toBe('red hidden link ab &lt;&amp;&gt;&quot;');
  });

  it('the readiness report and the run report come out of the same writer', () => {
    const xml = renderJunitXml({ name: 'n', suites: [{ name: 's', cases: [{ classname: 'c', name: 'x', timeMs: 0, outcome: { kind: 'passed', systemOut: 'WARN: \x1b[33mslow\x1b[0m' } }] }] });
    expect(xml).toContain('<system-out>WARN: slow</system-out>');
    const reporters = readFileSync(join(REPO_ROOT, 'helpers/readiness/reporters.ts'), 'utf8');
    expect(reporters).toContain("from '../report/junit.js'");
    expect(reporters).not.toMatch(/&amp;/);
  });
});

describe('summary.md', () => {
  it('has a header row and shows each field once', () => {
    const md = renderMarkdown(summary());
    const table = md.split('\n').filter((l) => l.startsWith('| '));
    expect(table[0]).toBe('| Field | Value |');
    expect(md).not.toMatch(/^\| \| \|$/m);
    expect(md.match(/staging/g)).toHaveLength(1);
    expect(md.match(/CHG-1/g)).toHaveLength(1);
    expect(md).not.toMatch(/\| (target|target_gateway|runbook|ticket) \|/);
    expect(md).toContain('| Cordum version | v0.9.1 |');
    expect(md).toContain('| Runbooks version | 0123456789ab |');
    expect(md).toContain('(see runbooks/smoke.md#3-workflow-round-trip-deadline-20-s)');
  });
});

describe('report categories', () => {
  // Allure 3 matches the first category whose statuses include the result's and whose regex (a
  // JavaScript RegExp, tested against the message) matches; the same patterns go to categories.json.
  const categoryOf = (status: string, message: string) =>
    CATEGORIES.find((c) => (c.matchedStatuses ?? []).includes(status as never) && (!c.messageRegex || new RegExp(c.messageRegex).test(message)))?.name;

  it('every pattern is a valid JavaScript regex (Allure 3 compiles them; Java-only syntax such as (?s) is not)', () => {
    for (const c of CATEGORIES) if (c.messageRegex) expect(() => new RegExp(c.messageRegex!), c.name).not.toThrow();
  });

  it('a failed check is a product defect; an unreachable target, a precondition or an interrupt is not', () => {
    expect(categoryOf('failed', "run stayed 'waiting' after approve (204): expected 'succeeded'\nwithin 5000 ms")).toBe('Product defects');
    expect(categoryOf('broken', 'gateway unreachable: GET http://127.0.0.1:9/health failed (ECONNREFUSED)')).toBe('Environment problems');
    expect(categoryOf('broken', "step 'Jobs' needs Redis, but target 'x' has no redis section")).toBe('Environment problems');
    expect(categoryOf('broken', 'interrupted: SIGTERM')).toBe('Interrupted runs');
    expect(categoryOf('broken', "Cannot read properties of undefined (reading 'id')")).toBe('Broken tests');
  });
});

describe('the second secret scrub', () => {
  it('skips what the first saw clean and has not changed; a file written or changed since is still redacted', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scrub-'));
    const secret = 'sk-second-scrub-0123456789';
    registerSecret(secret);
    try {
      writeFileSync(join(dir, 'summary.json'), '{"ok":true}');
      writeFileSync(join(dir, 'leaky.txt'), `token ${secret}`);
      const seen: ScrubbedFiles = new Map();
      expect(scrubSecrets(dir, seen)).toEqual(['leaky.txt']);
      expect([...seen.keys()].sort()).toEqual([join(dir, 'leaky.txt'), join(dir, 'summary.json')]);

      // The HTML comes later; an earlier file is rewritten (a failed HTML rewrites the summaries).
      writeFileSync(join(dir, 'index.html'), `<p>${Buffer.from(secret).toString('base64')}</p>`);
      writeFileSync(join(dir, 'summary.json'), JSON.stringify({ error: `401 for ${secret}` }));
      expect(scrubSecrets(dir, seen).sort()).toEqual(['index.html', 'summary.json']);
      const reads = ['index.html', 'summary.json', 'leaky.txt'].map((f) => readFileSync(join(dir, f), 'utf8'));
      expect(reads.join('\n')).not.toContain(secret);
      expect(reads[0]).not.toContain(Buffer.from(secret).toString('base64'));
      // Nothing changed since: a third scrub has nothing to read.
      expect(scrubSecrets(dir, seen)).toEqual([]);

      // A file its writer scrubbed itself (the HTML report) and recorded is not read again; changed since, it is.
      const page = join(dir, 'page.html');
      writeFileSync(page, redact(`<p>${secret}</p>`));
      recordClean(page, seen);
      expect(readFileSync(page, 'utf8')).toBe('<p>***</p>');
      expect(scrubSecrets(dir, seen)).toEqual([]);
      writeFileSync(page, `<p>${secret}!</p>`);
      expect(scrubSecrets(dir, seen)).toEqual(['page.html']);
    } finally {
      clearSecrets();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the HTML report as written', () => {
  it('has no secret in its markup, in a data: URI (base64 or not) or in a page holding a NUL; the rest is byte for byte Allure’s', () => {
    const secret = 'sk-html-page-0123456789abc';
    registerSecret(secret);
    try {
      const b64 = (t: string) => Buffer.from(t).toString('base64');
      const app = b64(`console.log("app");`.repeat(50));
      const data = b64(JSON.stringify({ message: `401 for ${secret}` }));
      const html = Buffer.from(
        `<html><head><link rel="icon" href="data:image/svg+xml,%3Csvg id='${secret}'%3E"></head><body>` +
          `<script src="data:text/javascript;base64,${app}"></script>` +
          `<script src="data:text/plain;base64,${b64(`key=${secret}`)}"></script>` +
          `<script>d("data/test-results/1.json","${data}")</script><p>plain ${secret}</p></body></html>`,
      );
      const pieces = pagePieces(html, redact);
      const page = Buffer.concat(pieces).toString();
      expect(page).not.toContain(secret);
      for (const b of page.matchAll(/[A-Za-z0-9+/]{16,}={0,2}/g)) expect(Buffer.from(b[0], 'base64').toString('latin1')).not.toContain(secret);
      // The app's URI, which holds no secret, is the very buffer Allure wrote: not copied, not re-encoded.
      const appUri = `"data:text/javascript;base64,${app}"`;
      expect(pieces.some((p) => p.toString() === appUri && p.buffer === html.buffer)).toBe(true);
      expect(page).toContain('<p>plain ***</p>');

      const withNul = Buffer.from(`<p>a\u0000b</p><img src="data:image/png;base64,${b64(secret)}">`);
      const clean = Buffer.concat(pagePieces(withNul, redact)).toString();
      expect(clean).not.toContain(b64(secret));
      expect(clean).toContain('a\u0000b');
    } finally {
      clearSecrets();
    }
  });

  it('skips the scrub of the report app only while the secrets are those it was found clean for', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'html-fixed-'));
    try {
      const results = join(dir, 'results');
      mkdirSync(results);
      writeFileSync(
        join(results, '6f1d2c3b-0000-4000-8000-000000000001-result.json'),
        JSON.stringify({ uuid: '6f1d2c3b-0000-4000-8000-000000000001', name: 'a step', fullName: 'f#a step', status: 'passed', stage: 'finished', start: 1, stop: 2, steps: [], attachments: [], labels: [], links: [], parameters: [], historyId: 'h1', testCaseId: 't1' }),
      );
      registerSecret('sk-known-before-the-run-0123');
      await preloadAllure();
      const page = async (n: number) => {
        const out = await generateHtml({ resultsDir: results, outputDir: join(dir, `out${n}`), stagingDir: join(dir, `stage${n}`), reportName: 'r', clean: redact, history: [] });
        return readFileSync(out.index, 'latin1');
      };
      const appOf = (html: string) => /"data:text\/javascript;base64,([A-Za-z0-9+/=*]+)"/.exec(html)?.[1] ?? '';
      const first = await page(1);
      const app = appOf(first);
      expect(app.length).toBeGreaterThan(1_000_000);
      expect(appOf(await page(2))).toBe(app);
      // A secret registered after the app was found clean, which the app's text happens to hold:
      // the app is scanned again, and the secret does not reach the page.
      const inTheApp = app.slice(500_000, 500_032);
      registerSecret(inTheApp);
      const third = await page(3);
      expect(third).not.toContain(inTheApp);
      expect(appOf(third)).toContain('***');
    } finally {
      clearSecrets();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
