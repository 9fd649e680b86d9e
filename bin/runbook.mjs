// `pnpm runbook`: starts the compiled CLI (dist/<build>/cli/runbook.js) on plain Node. When the
// sources changed since the last build, or there is none yet (a clean clone whose `pnpm install`
// skipped scripts), it builds first and says so on stderr; an engineer who edits a helper gets the
// edit on the next run, never a stale build. See bin/build.mjs.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { currentBuild, enableCompileCache } from './build.mjs';

enableCompileCache();

const { dir } = await currentBuild({
  onBuild: (where) => process.stderr.write(`runbook: the sources changed since the last build; building ${where} first\n`),
}).catch((e) => {
  process.stderr.write(`runbook: the build failed: ${String(e?.message ?? e).split('\n').slice(0, 3).join(' ')}\n`);
  process.exit(1);
});
const cli = await import(pathToFileURL(join(dir, 'cli/runbook.js')).href);
cli.runAsProgram();
