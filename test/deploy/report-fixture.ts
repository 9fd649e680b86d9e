// Builds a report folder shaped like the runner's output (reports/<run-id>/) for the ticket tests.

import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatManifest, sha256 } from '../../helpers/ticket/manifest.js';
import type { Summary } from '../../helpers/history.js';

export function makeSummary(overrides: Partial<Summary> = {}): Summary {
  return {
    runbook: 'smoke',
    target: 'staging',
    ticket: null,
    status: 'passed',
    start: '2025-03-01T02:15:00.000Z',
    end: '2025-03-01T02:16:30.000Z',
    duration_ms: 90_000,
    steps: [
      { name: 'gateway is healthy', status: 'passed', duration_ms: 120, error: null },
      { name: 'submit a job', status: 'passed', duration_ms: 800, error: null },
    ],
    counts: { passed: 2, failed: 0 },
    findings: [],
    ...overrides,
  };
}

export async function makeReport(
  opts: { runId?: string; summary?: Summary; sarif?: boolean; parent?: string } = {},
): Promise<{ parent: string; dir: string; runId: string }> {
  const parent = opts.parent ?? (await mkdtemp(join(tmpdir(), 'runbook-reports-')));
  const runId = opts.runId ?? '20250301T021500Z-smoke-staging';
  const dir = join(parent, runId);
  await mkdir(join(dir, 'allure-results'), { recursive: true });
  const files: Record<string, string> = {
    'index.html': '<!doctype html><title>report</title><p>single-file report</p>',
    'summary.json': JSON.stringify(opts.summary ?? makeSummary(), null, 2),
    'summary.md': '# smoke on staging: passed\n',
    'junit.xml': '<?xml version="1.0"?><testsuites tests="2" failures="0"></testsuites>\n',
    'allure-results/abc-result.json': '{"name":"gateway is healthy","status":"passed"}',
  };
  if (opts.sarif) files['readiness.sarif'] = '{"version":"2.1.0","runs":[]}';
  for (const [path, content] of Object.entries(files)) await writeFile(join(dir, path), content);
  const manifest = formatManifest(Object.entries(files).map(([path, content]) => ({ path, sha256: sha256(content) })));
  await writeFile(join(dir, 'manifest.sha256'), manifest);
  return { parent, dir, runId };
}
