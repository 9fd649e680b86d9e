// `pnpm runbook verify-bundle <archive>`: check a ticket bundle against its manifest.
// Exit 0 when intact, 1 with one line per problem (naming the file) otherwise.

import type { Command } from 'commander';
import { EXIT } from '../../helpers/errors.js';
import { verifyBundleCommand } from './bundle.js';

export { verifyBundleCommand };

export function register(program: Command): void {
  program
    .command('verify-bundle')
    .description('check that every file in a bundle matches its manifest.sha256 and nothing was added or removed')
    .argument('<archive>', 'a .tar.gz made by `runbook bundle`')
    .action(async (archive: string) => {
      const { ok } = await verifyBundleCommand(archive);
      process.exitCode = ok ? EXIT.PASSED : EXIT.CHECK_FAILED;
    });
}
