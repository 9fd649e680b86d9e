// `pnpm runbook verify-bundle <archive>`: check a ticket bundle against its manifest.
// Exit 0 when intact (one line on stdout), 1 with one line per problem (naming the file) on stderr otherwise.

import type { Command } from 'commander';
import { EXIT } from '../../helpers/errors.js';
import { verifyBundle } from '../../helpers/ticket/verify-bundle.js';

export async function verifyBundleCommand(
  archive: string,
  opts: { log?: (line: string) => void; problem?: (line: string) => void } = {},
): Promise<{ ok: boolean; problems: string[] }> {
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  // Problems are errors: stderr, so `verify-bundle x > result.txt` still shows them and stdout stays the verdict.
  const problem = opts.problem ?? (opts.log ? opts.log : (line: string) => process.stderr.write(`${line}\n`));
  const { ok, problems, files } = await verifyBundle(archive);
  if (ok) log(`verify-bundle: OK, ${files.length} files match ${archive}'s manifest`);
  else for (const p of problems) problem(`verify-bundle: ${p}`);
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
