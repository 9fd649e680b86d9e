// `pnpm sandbox`: starts the compiled sandbox command (dist/<build>/cli/sandbox.js) on plain Node,
// building first when the sources changed. See bin/build.mjs.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { currentBuild, enableCompileCache } from './build.mjs';

enableCompileCache();

const { dir } = await currentBuild({
  onBuild: (where) => process.stderr.write(`sandbox: the sources changed since the last build; building ${where} first\n`),
}).catch((e) => {
  process.stderr.write(`sandbox: the build failed: ${String(e?.message ?? e).split('\n').slice(0, 3).join(' ')}\n`);
  process.exit(1);
});
await import(pathToFileURL(join(dir, 'cli/sandbox.js')).href);
