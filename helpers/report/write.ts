// Everything in reports/<run-id>/ after the steps ran: summary.json/.md, the single-file Allure
// HTML, the secret scrub and the checksum manifest (always last, so it covers every other file).
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { errorMessage } from '../errors.js';
import { generateHtml } from './allure.js';
import { writeManifest } from './manifest.js';
import { RUN_FILES } from './run-contract.js';
import { scrubSecrets } from './secrets.js';
import { countSteps, readFindings, writeSummaries, type RunSummary } from './summary.js';

export interface WriteReportArgs {
  runDir: string;
  resultsDir: string;
  summary: RunSummary;
  /** History is kept per target: reports/.history/<target>.jsonl. */
  historyTarget: string;
  journal?: string;
}

/** Write the report and return the path of index.html (or summary.md if the HTML failed). */
export async function writeReport(a: WriteReportArgs): Promise<string> {
  const s = a.summary;
  s.counts = countSteps(s.steps);
  s.findings = readFindings(a.runDir, RUN_FILES.findings);
  const journal = a.journal ?? '';
  if (journal && existsSync(journal)) copyFileSync(journal, join(a.runDir, 'teardown-journal.jsonl'));
  else {
    const done = journal.replace(/\.jsonl$/, '.done.jsonl');
    if (done && existsSync(done)) copyFileSync(done, join(a.runDir, 'teardown-journal.jsonl'));
  }
  await writeSummaries(a.runDir, s);
  // Scrub before Allure reads the results, so a secret in an error message never reaches the HTML.
  scrubSecrets(a.runDir);

  let index = join(a.runDir, 'index.html');
  const staging = mkdtempSync(join(tmpdir(), 'runbook-allure-'));
  try {
    await generateHtml({
      resultsDir: a.resultsDir,
      outputDir: a.runDir,
      stagingDir: staging,
      reportName: `${s.runbook} on ${s.target} (${s.status})`,
      historyPath: join(dirname(a.runDir), '.history', `${safeName(a.historyTarget)}.jsonl`),
    });
  } catch (err) {
    s.errors.push(`report HTML could not be generated: ${errorMessage(err)}`);
    await writeSummaries(a.runDir, s);
    index = join(a.runDir, 'summary.md');
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  scrubSecrets(a.runDir);
  await writeManifest(a.runDir);
  return index;
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_');
}
