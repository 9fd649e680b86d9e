// `pnpm sandbox [--fault <name>]... [--state fresh|lived-in] [--redis-url u] [--nats-url u]`: run the
// local Cordum stand-in in the foreground, print its profile, and stop everything on Ctrl-C / SIGTERM
// (exit 0). SANDBOX_FAULTS (comma separated) adds faults as well; SANDBOX_STATE sets the state.
import { Command } from 'commander';
import { stringify } from 'yaml';
import { EXIT, errorMessage } from '../helpers/errors.js';
import { parseFaults } from '../sandbox/faults.js';
import { parseSandboxState } from '../sandbox/lived-in.js';

async function main(): Promise<void> {
  const program = new Command('sandbox')
    .description('Run a local Cordum stand-in on real redis-server + nats-server')
    .option('--fault <name>', 'inject a fault (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--redis-url <url>', 'use this Redis instead of spawning redis-server')
    .option('--nats-url <url>', 'use this NATS instead of spawning nats-server')
    .option('--state <state>', 'fresh (a new install, the default) or lived-in (history, bundles, DLQ entries, streams with gaps; also SANDBOX_STATE)')
    .option('--tls', 'serve TLS on the gateway, NATS and Redis with a test CA (also SANDBOX_TLS=1)')
    .option('--verbose', 'print component logs')
    .exitOverride();
  try {
    program.parse(process.argv);
  } catch (err) {
    process.exit((err as { exitCode?: number }).exitCode === 0 ? 0 : EXIT.USAGE);
  }
  const o = program.opts<{ fault: string[]; redisUrl?: string; natsUrl?: string; verbose?: boolean; tls?: boolean; state?: string }>();
  const requested = [...o.fault, ...(process.env.SANDBOX_FAULTS ?? '').split(',')].map((s) => s.trim()).filter(Boolean);
  let faults;
  let state;
  try {
    faults = parseFaults(requested).list();
    state = parseSandboxState(o.state ?? process.env.SANDBOX_STATE);
  } catch (err) {
    console.error(`sandbox: ${errorMessage(err)}`);
    process.exit(EXIT.USAGE);
  }

  // Signals during start-up are remembered and honoured once the sandbox is up (so nothing leaks).
  let pendingSignal: string | undefined;
  let onSignal = (signal: string) => {
    pendingSignal ??= signal;
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  // Imported after argument parsing (no start-up work before usage errors).
  const { startSandbox, SANDBOX_API_KEY_ENV } = await import('../sandbox/index.js');
  let sandbox: Awaited<ReturnType<typeof startSandbox>>;
  try {
    const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => typeof e[1] === 'string'));
    sandbox = await startSandbox({
      faults,
      redisUrl: o.redisUrl,
      natsUrl: o.natsUrl,
      apiKey: process.env[SANDBOX_API_KEY_ENV] || undefined,
      env,
      log: o.verbose ? (line) => console.error(line) : undefined,
      tls: o.tls || process.env.SANDBOX_TLS === '1',
      state,
    });
  } catch (err) {
    console.error(`sandbox: failed to start: ${errorMessage(err)}`);
    process.exit(EXIT.UNREACHABLE);
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`sandbox: ${signal}, stopping`);
    sandbox.stop().then(
      () => process.exit(EXIT.PASSED),
      (err) => {
        console.error(`sandbox: stop failed: ${errorMessage(err)}`);
        process.exit(1);
      },
    );
  };
  onSignal = shutdown;
  if (pendingSignal) return shutdown(pendingSignal);

  // Printed to be saved and used as `--target <file>`: `source` is not a profile field (the loader
  // sets it to the file the profile came from), so it is left out.
  const { source: _source, ...printable } = sandbox.profile;
  console.log('# Cordum sandbox profile (save it to a file and run a runbook with --target <file>)');
  console.log(stringify(printable).trimEnd());
  console.log('');
  console.log(`# ports: gateway ${sandbox.ports.gateway}, gateway metrics ${sandbox.ports.gatewayMetrics}, scheduler metrics ${sandbox.ports.schedulerMetrics}, workflow health ${sandbox.ports.workflowHealth}`);
  console.log(`# faults: ${sandbox.faults.length ? sandbox.faults.join(', ') : 'none'}`);
  console.log(`# state: ${sandbox.state}${sandbox.livedIn ? ` (${sandbox.livedIn.historicalJobs + sandbox.livedIn.platformJobs} earlier jobs, deleted stream messages ${JSON.stringify(sandbox.livedIn.deletedStreamMessages)})` : ''}`);
  console.log(`# export the API key in the shell that runs runbooks:`);
  console.log(`export ${SANDBOX_API_KEY_ENV}='${sandbox.apiKey}'`);
  console.log('# Ctrl-C stops the sandbox.');
}

main().catch((err) => {
  console.error(`sandbox: ${errorMessage(err)}`);
  process.exit(1);
});
