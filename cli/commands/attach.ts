// `pnpm runbook attach <archive> --jira <issue>`: upload an existing bundle to a Jira issue
// (after verifying it). Connection settings come from JIRA_BASE_URL, JIRA_TOKEN and JIRA_USER.

import type { Command } from 'commander';
import { EXIT } from '../../helpers/errors.js';
import { attachCommand } from './bundle.js';

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
