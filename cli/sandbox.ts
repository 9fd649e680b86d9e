// `pnpm sandbox [--fault <name>]... [--redis-url u] [--nats-url u]`: run the local Cordum stand-in in
// the foreground, print its profile, and stop everything on Ctrl-C / SIGTERM (exit 0).
// SANDBOX_FAULTS (comma separated) adds faults as well.
import { Command } from 'commander';
import { stringify } from 'yaml';
import { EXIT, errorMessage } from '../helpers/errors.js';
import { parseFaults } from '../sandbox/faults.js';

async function main(): Promise<void> {
  const program = new Command('sandbox')
    .description('Run a local Cordum stand-in on real redis-server + nats-server')
    .option('--fault <name>', 'inject a fault (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--redis-url <url>', 'use this Redis instead of spawning redis-server')
    .option('--nats-url <url>', 'use this NATS instead of spawning nats-server')
    .option('--tls', 'serve TLS on the gateway, NATS and Redis with a test CA (also SANDBOX_TLS=1)')
    .option('--verbose', 'print component logs')
    .exitOverride();
  try {
    program.parse(process.argv);
  } catch (err) {
    process.exit((err as { exitCode?: number }).exitCode === 0 ? 0 : EXIT.USAGE);
  }
  const o = program.opts<{ fault: string[]; redisUrl?: string; natsUrl?: string; verbose?: boolean; tls?: boolean }>();
  const requested = [...o.fault, ...(process.env.SANDBOX_FAULTS ?? '').split(',')].map((s) => s.trim()).filter(Boolean);
  let faults;
  try {
    faults = parseFaults(requested).list();
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

  console.log('# Cordum sandbox profile');
  console.log(stringify(sandbox.profile).trimEnd());
  console.log('');
  console.log(`# ports: gateway ${sandbox.ports.gateway}, gateway metrics ${sandbox.ports.gatewayMetrics}, scheduler metrics ${sandbox.ports.schedulerMetrics}, workflow health ${sandbox.ports.workflowHealth}`);
  console.log(`# faults: ${sandbox.faults.length ? sandbox.faults.join(', ') : 'none'}`);
  console.log(`# export the API key in the shell that runs runbooks:`);
  console.log(`export ${SANDBOX_API_KEY_ENV}='${sandbox.apiKey}'`);
  console.log('# Ctrl-C stops the sandbox.');
}

main().catch((err) => {
  console.error(`sandbox: ${errorMessage(err)}`);
  process.exit(1);
});
