// `pnpm runbook attach <archive> --jira <issue>`: upload an existing bundle to a Jira issue
// (after verifying it). Connection settings come from JIRA_BASE_URL, JIRA_TOKEN and JIRA_USER.
// `bundle --jira` uses attachCommand too.

import type { Command } from 'commander';
import { BundleIntegrityError, EXIT } from '../../helpers/errors.js';
import { attachToJiraIssue, type JiraAttachment } from '../../helpers/ticket/jira.js';
import { verifyBundle } from '../../helpers/ticket/verify-bundle.js';

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
    .command('attach')
    .description('verify a bundle and attach it to a Jira issue (env JIRA_BASE_URL, JIRA_TOKEN, optional JIRA_USER)')
    .argument('<archive>', 'a .tar.gz made by `runbook bundle`')
    .requiredOption('--jira <issue>', 'Jira issue key, e.g. OPS-123')
    .option('--timeout <ms>', 'upload deadline in milliseconds', (v) => Number.parseInt(v, 10))
    .action(async (archive: string, opts: { jira: string; timeout?: number }) => {
      await attachCommand(archive, { issue: opts.jira, timeoutMs: opts.timeout });
      process.exitCode = EXIT.PASSED;
    });
}
