// `pnpm runbook verify-bundle <archive>`: check a ticket bundle against its manifest.
// Exit 0 when intact, 1 with one line per problem (naming the file) otherwise.

import type { Command } from 'commander';
import { EXIT } from '../../helpers/errors.js';
import { verifyBundle } from '../../helpers/ticket/verify-bundle.js';

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
