// `pnpm runbook bundle <report dir> [--ticket ID] [--out PATH] [--jira ISSUE]`: pack a run's report
// for a change ticket. This module also holds the verify and Jira-attach functions that
// verify-bundle.ts and attach.ts register (cli/runbook.ts loads one module per command name).
// Output is one line per result; exit codes come from RunbookErrors (main() maps them).

import type { Command } from 'commander';
import { EXIT } from '../../helpers/errors.js';
import { BundleIntegrityError, createBundle } from '../../helpers/ticket/bundle.js';
import { attachToJiraIssue, type JiraAttachment } from '../../helpers/ticket/jira.js';
import { verifyBundle } from '../../helpers/ticket/verify-bundle.js';

export { notifyCommand } from './notify.js';

export interface BundleCommandOptions {
  /** Output folder or full .tar.gz path; default next to the report folder. */
  out?: string;
  /** Change ticket id; default the ticket recorded in summary.json. */
  ticket?: string;
  /** Also attach the bundle to this Jira issue (JIRA_BASE_URL / JIRA_TOKEN [/ JIRA_USER] from the env). */
  jira?: string;
  log?: (line: string) => void;
}

export async function bundleCommand(reportDir: string, opts: BundleCommandOptions = {}): Promise<{ archive: string }> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const result = await createBundle(reportDir, { out: opts.out, ticket: opts.ticket });
  log(`bundle: ${result.archive} (${result.files.length} files, manifest verified)`);
  if (result.absent.length) log(`bundle: note: the run has no ${result.absent.join(', ')}; bundled without`);
  if (opts.jira) await attachCommand(result.archive, { issue: opts.jira, log });
  return { archive: result.archive };
}

export async function verifyBundleCommand(
  archive: string,
  opts: { log?: (line: string) => void } = {},
): Promise<{ ok: boolean; problems: string[] }> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const { ok, problems, files } = await verifyBundle(archive);
  if (ok) log(`verify-bundle: OK, ${files.length} files match ${archive}'s manifest`);
  else for (const problem of problems) log(`verify-bundle: ${problem}`);
  return { ok, problems };
}

export async function attachCommand(
  archive: string,
  opts: { issue: string; timeoutMs?: number; log?: (line: string) => void },
): Promise<{ attachments: JiraAttachment[] }> {
  const log = opts.log ?? ((line: string) => console.log(line));
  // Never upload something that does not verify: the ticket is the audit record.
  const check = await verifyBundle(archive);
  if (!check.ok) {
    throw new BundleIntegrityError(`not uploading ${archive}: ${check.problems[0]}`, check.problems);
  }
  const attachments = await attachToJiraIssue({ issueKey: opts.issue, archive, timeoutMs: opts.timeoutMs });
  log(`jira: attached ${attachments.map((a) => a.filename || a.id).join(', ') || archive} to ${opts.issue}`);
  return { attachments };
}

export function register(program: Command): void {
  program
    .command('bundle')
    .description('pack a report (index.html, summaries, JUnit, SARIF, manifest) into <ticket>-<run-id>.tar.gz')
    .argument('<report dir>', 'a run folder, e.g. reports/<run-id>')
    .option('--ticket <id>', 'change ticket id for the archive name (default: the ticket recorded in the run)')
    .option('--out <path>', 'output folder or .tar.gz path (default: next to the report folder)')
    .option('--jira <issue>', 'also attach the bundle to this Jira issue (JIRA_BASE_URL, JIRA_TOKEN, [JIRA_USER])')
    .action(async (reportDir: string, opts: { ticket?: string; out?: string; jira?: string }) => {
      // The root command enables positional options, so this --ticket is the bundle's own.
      await bundleCommand(reportDir, { ticket: opts.ticket, out: opts.out, jira: opts.jira });
      process.exitCode = EXIT.PASSED;
    });
}
