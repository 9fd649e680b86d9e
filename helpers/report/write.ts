// Everything in reports/<run-id>/ after the steps ran: summary.json/.md, junit.xml, the single-file
// Allure HTML, the secret scrub and the checksum manifest (always last, so it covers every other
// file). Then the run is appended to the target's run history (one file per target).
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import { redact } from '../redact.js';
import { allureHistory, appendRunHistory, type Summary } from '../history.js';
import { TREND_POINTS, generateHtml } from './allure.js';
import { writeJunit } from './junit.js';
import { writeManifest } from './manifest.js';
import { RUN_FILES } from './run-contract.js';
import { recordClean, scrubSecrets, type ScrubbedFiles } from './secrets.js';
import { countSteps, readFindings, readJsonl, writeSummaries, type RunSummary, type StepTeardownRecord, type SummarySection } from './summary.js';

export interface WriteReportArgs {
  runDir: string;
  resultsDir: string;
  summary: RunSummary;
  /** reports/: the run history is reports/.history/<target>.runs.jsonl. */
  reportsDir: string;
  journal?: string;
}

export interface WrittenReport {
  /** index.html, or summary.md if the HTML failed. */
  index: string;
  /** Allure's trend point for this run (stored with the run in the history). */
  historyPoint?: unknown;
}

const scrubs = new WeakMap<WriteReportArgs, ScrubbedFiles>();

/** The files this report's scrubs have seen clean, so the second scrub reads only what changed. */
function scrubbed(a: WriteReportArgs): ScrubbedFiles {
  let seen = scrubs.get(a);
  if (!seen) scrubs.set(a, (seen = new Map()));
  return seen;
}

/** Write the report: the summary files first, then the HTML and the manifest. */
export async function writeReport(a: WriteReportArgs): Promise<WrittenReport> {
  await writeSummaryFiles(a);
  return finishReport(a);
}

/**
 * The part of the report the verdict needs: summary.json/.md and junit.xml, scrubbed. The summary
 * gets its counts, findings, sections and step teardown from the run dir. Quick (no Allure), so the
 * runner prints the verdict right after it.
 */
export async function writeSummaryFiles(a: WriteReportArgs): Promise<void> {
  const s = a.summary;
  s.counts = countSteps(s.steps);
  s.findings = readFindings(a.runDir, RUN_FILES.findings);
  s.sections = readJsonl<SummarySection>(a.runDir, RUN_FILES.sections);
  s.teardown.removed_by_steps = readJsonl<StepTeardownRecord>(a.runDir, RUN_FILES.teardown);
  const journal = a.journal ?? '';
  if (journal && existsSync(journal)) copyFileSync(journal, join(a.runDir, 'teardown-journal.jsonl'));
  else {
    const done = journal.replace(/\.jsonl$/, '.done.jsonl');
    if (done && existsSync(done)) copyFileSync(done, join(a.runDir, 'teardown-journal.jsonl'));
  }
  await writeSummaries(a.runDir, s);
  await writeJunit(a.runDir, s);
  // Scrub before Allure reads the results, so a secret in an error message never reaches the HTML.
  scrubSecrets(a.runDir, scrubbed(a));
}

/**
 * The rest, after writeSummaryFiles: the single-file Allure HTML (the slow part), a second scrub and
 * the checksum manifest, last, so it covers every other file. If the HTML fails, the summaries say
 * so and summary.md is the report's index.
 */
export async function finishReport(a: WriteReportArgs): Promise<WrittenReport> {
  const s = a.summary;
  let index = join(a.runDir, 'index.html');
  let historyPoint: unknown;
  const written = new Map<string, string>();
  const staging = mkdtempSync(join(tmpdir(), 'runbook-allure-'));
  try {
    const html = await generateHtml({
      resultsDir: a.resultsDir,
      outputDir: a.runDir,
      stagingDir: staging,
      reportName: `${s.runbook} on ${s.target} (${s.status})`,
      clean: redact,
      history: await allureHistory(a.reportsDir, s.target, TREND_POINTS).catch(() => []),
    });
    historyPoint = html.historyPoint;
    // Written already scrubbed, and its digest taken from what was written: 4 MB not read back twice.
    recordClean(html.index, scrubbed(a));
    written.set(html.index, html.digest);
  } catch (err) {
    s.errors.push(`report HTML could not be generated: ${errorMessage(err)}`);
    await writeSummaries(a.runDir, s);
    await writeJunit(a.runDir, s);
    index = join(a.runDir, 'summary.md');
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  scrubSecrets(a.runDir, scrubbed(a));
  await writeManifest(a.runDir, written);
  return { index, historyPoint };
}

/**
 * Append the run (summary.json as written, so already redacted) and its Allure trend point to the
 * target's run history. Returns the history file.
 */
export async function recordHistory(reportsDir: string, runDir: string, historyPoint?: unknown): Promise<string> {
  const summary = JSON.parse(await readFile(join(runDir, 'summary.json'), 'utf8')) as Summary;
  const point = historyPoint === undefined ? undefined : (JSON.parse(redact(JSON.stringify(historyPoint))) as unknown);
  return appendRunHistory(reportsDir, point === undefined ? summary : { ...summary, allure_history: point });
}
