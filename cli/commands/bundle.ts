// `pnpm runbook bundle <report dir> [--ticket ID] [--out PATH] [--jira ISSUE]`: pack a run's report
// for a change ticket, and with --jira attach it (through the attach command's function).
// Output is one line per result; exit codes come from RunbookErrors (main() maps them).

import type { Command } from 'commander';
import { EXIT } from '../../helpers/errors.js';
import { createBundle } from '../../helpers/ticket/bundle.js';
import { MANIFEST_NAME } from '../../helpers/ticket/manifest.js';
import { attachCommand } from './attach.js';

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
  // Counted as verify-bundle counts them: the files the manifest lists, the manifest itself apart.
  const listed = result.files.filter((f) => !f.endsWith(`/${MANIFEST_NAME}`)).length;
  log(`bundle: ${result.archive} (${listed} files and their ${MANIFEST_NAME}, verified)`);
  if (result.absent.length) log(`bundle: note: the run has no ${result.absent.join(', ')}; bundled without`);
  if (opts.jira) await attachCommand(result.archive, { issue: opts.jira, log });
  return { archive: result.archive };
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
