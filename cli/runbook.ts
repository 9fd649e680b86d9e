// `pnpm runbook`: the on-call entry point. This file parses the command line and maps errors to
// exit codes; the work is elsewhere:
//   pnpm runbook list [-o json]
//   pnpm runbook <name> [--target <profile>] [--plan [-o json]] [--ticket <id>] [--only-failed <report dir>] [--fail-on-new]
//                       [--quiet | --verbose] [--<option> [value] ...]   (the options runbooks/<name>.md declares)
//   pnpm runbook --version
//   pnpm runbook completion bash|zsh
// runs a runbook: cli/run.ts orders the phases, cli/run/ holds one module per phase. Every other
// subcommand is one file, cli/commands/<command>.ts (bundle, verify-bundle, attach, notify), that
// exports `register(program)` and is only imported when its command is used (or for --help), so
// the common paths stay fast. Errors are one line on stderr with the exit code the error carries
// (helpers/errors.ts); set DEBUG=runbooks for stacks.
import { existsSync, readdirSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { findRunbook, loadCatalog, type Runbook, type RunbookOption } from '../helpers/catalog.js';
import { EXIT, RunbookError, UsageError, errorMessage } from '../helpers/errors.js';
import { checkRunInput } from '../helpers/input.js';
import { MIN_SECRET_LENGTH, redact, redactStream, registerSecret } from '../helpers/redact.js';
import { suiteGitSha, suiteVersion } from '../helpers/suite-version.js';
import { VERBOSITY_ENV, type Verbosity } from './verbosity.js';

/** The contract for modules in cli/commands/: add a subcommand to the program. */
export interface CommandModule {
  register(program: Command): void;
}

// Node >= 22.1 (the container image): cache V8 code for Vitest, Vite and Allure between runs; their
// import is most of the runner's start-up. Best effort: an unwritable tmpdir just means no cache.
try {
  (nodeModule as { enableCompileCache?: (dir?: string) => unknown }).enableCompileCache?.(
    process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'cordum-runbooks-compile-cache'),
  );
} catch {
  // no cache
}

const COMMANDS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'commands');
/** `.js` when this runs compiled (dist/<build>/cli, see bin/build.mjs), `.ts` when it runs from the sources. */
const MODULE_EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const debug = () => !!process.env.DEBUG?.includes('runbooks');

function extensionCommands(): string[] {
  if (!existsSync(COMMANDS_DIR)) return [];
  return readdirSync(COMMANDS_DIR)
    .filter((f) => f.endsWith(MODULE_EXT) && /^[a-z][a-z0-9-]*$/.test(f.slice(0, -MODULE_EXT.length)))
    .map((f) => f.slice(0, -MODULE_EXT.length))
    .sort();
}

async function loadExtensions(program: Command, argv: string[]): Promise<void> {
  const names = extensionCommands();
  const first = argv.find((a) => !a.startsWith('-'));
  const wantsHelp = argv.length === 0 || argv.includes('--help') || argv.includes('-h') || first === 'help';
  const toLoad = wantsHelp ? names : names.filter((n) => n === first);
  for (const name of toLoad) {
    const mod = (await import(pathToFileURL(join(COMMANDS_DIR, `${name}${MODULE_EXT}`)).href)) as Partial<CommandModule>;
    if (typeof mod.register !== 'function') throw new Error(`cli/commands/${name}.ts does not export register(program)`);
    mod.register(program);
  }
}

/** Root options that take a value: the token after them is not the runbook's name. */
const ROOT_VALUE_OPTIONS = new Set(['--target', '--ticket', '--only-failed', '-o', '--output']);

/** Formats of `list` and `--plan`: text for people, json for scripts (stable field names, snake_case). */
const OUTPUT_FORMATS = ['text', 'json'] as const;
type OutputFormat = (typeof OUTPUT_FORMATS)[number];
const outputOption = () =>
  new Option('-o, --output <format>', 'output format of `list` and `--plan`: text or json').choices(OUTPUT_FORMATS).default('text');

/** One runbook as `list -o json` gives it. */
export function runbookListEntry(r: Runbook): Record<string, unknown> {
  return {
    name: r.name,
    title: r.title,
    summary: r.summary,
    tags: r.tags,
    destructive: r.destructive,
    needs: r.needs,
    time_budget_s: Math.round(r.timeBudgetMs / 1000),
    owner: r.owner || null,
    creates: r.creates,
    options: r.options,
    page: r.file,
  };
}

/** The runbook named on the command line (the first operand), if any. */
export function runbookNameIn(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return argv[i + 1];
    if (a.startsWith('-')) {
      if (ROOT_VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    return a;
  }
  return undefined;
}

/** commander's flag and property name for a declared runbook option. */
function runbookOption(o: RunbookOption): Option {
  return new Option(o.type === 'boolean' ? `--${o.name}` : `--${o.name} <value>`, `${o.description} (runbook option)`);
}

/**
 * A runbook's front matter may declare `options:`; exactly those are accepted after its name
 * (commander rejects anything else with exit 2). An unknown runbook adds nothing: the action names it.
 */
export function addRunbookOptions(program: Command, argv: string[]): void {
  const name = runbookNameIn(argv);
  if (!name || name === 'help' || program.commands.some((c) => c.name() === name || c.aliases().includes(name))) return;
  let declared: RunbookOption[];
  try {
    declared = findRunbook(name).options;
  } catch (err) {
    if (err instanceof UsageError) return; // unknown runbook: the action reports it in one line
    throw err; // malformed front matter: name the file and field now
  }
  for (const o of declared) program.addOption(runbookOption(o));
  DECLARED.set(program, declared);
}

const DECLARED = new WeakMap<Command, RunbookOption[]>();

/** The declared options as given: booleans are always present (false when absent), strings only when given. */
function givenOptions(declared: RunbookOption[], opts: Record<string, unknown>): Record<string, string | boolean> {
  const given: Record<string, string | boolean> = {};
  for (const o of declared) {
    const v = opts[runbookOption(o).attributeName()];
    if (o.type === 'boolean') given[o.name] = v === true;
    else if (typeof v === 'string') given[o.name] = v;
  }
  return given;
}

export function buildProgram(): Command {
  const program = new Command('runbook')
    .description('Executable runbooks for Cordum: a verdict in seconds and an Allure report for the change ticket.')
    // The runner's own options belong to it only before a subcommand: `runbook bundle <dir> --ticket X`
    // is the bundle command's --ticket, not the runner's.
    .enablePositionalOptions()
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str.split('\n')[0] + '\n') });

  // Computed only when asked: git is not run on every start.
  program.option('-V, --version', 'print the suite version (package version and git commit) and exit');
  program.on('option:version', () => {
    process.stdout.write(`cordum-runbooks ${suiteVersion()} (${suiteGitSha()})\n`);
    throw new CommanderError(0, 'commander.version', 'version printed');
  });

  program
    .command('list')
    .description('every runbook with its summary, tags and whether it is destructive')
    .addOption(outputOption())
    .action((opts: { output: OutputFormat }) => {
      const rows = loadCatalog();
      if (opts.output === 'json') {
        process.stdout.write(JSON.stringify(rows.map(runbookListEntry), null, 2) + '\n');
        return;
      }
      if (rows.length === 0) {
        process.stdout.write('no runbooks found\n');
        return;
      }
      const width = Math.max(...rows.map((r) => r.name.length));
      for (const r of rows) {
        const tags = r.tags.length ? ` [${r.tags.join(', ')}]` : '';
        const destructive = r.destructive ? ' (DESTRUCTIVE)' : '';
        process.stdout.write(`${r.name.padEnd(width)}  ${r.summary}${tags}${destructive}\n`);
      }
    });

  program
    .argument('[runbook]', 'the runbook to run (see `list`)')
    .option('--target <profile>', 'target profile name (targets/<name>.yaml) or path; default: start the sandbox')
    .option('--plan', 'print the steps, target, what would be created and whether it is destructive; run nothing')
    .option('--ticket <id>', "change ticket id recorded in the report: 1-64 letters, digits, '.', '_' or '-' (e.g. CHG-1234)")
    .addOption(new Option('--only-failed <report dir>', 'rerun only the scenario files with failed steps in that report'))
    .option('--fail-on-new', 'exit 1 only for steps that passed in the previous run of this runbook on this target; other failures are reported, exit 0')
    .addOption(outputOption())
    .addOption(new Option('-q, --quiet', 'print only failed steps, the verdict and the report path').conflicts('verbose'))
    .addOption(new Option('-v, --verbose', "also print a failed step's last evidence (what the target answered, redacted) and the runner's phases"))
    .action(async (name: string | undefined, opts: { target?: string; plan?: boolean; ticket?: string; onlyFailed?: string; failOnNew?: boolean; output: OutputFormat; quiet?: boolean; verbose?: boolean } & Record<string, unknown>) => {
      if (!name) {
        program.outputHelp();
        process.exitCode = EXIT.USAGE;
        return;
      }
      if (opts.output === 'json' && !opts.plan) {
        throw new UsageError(`-o json applies to \`list\` and \`--plan\`; a run's machine-readable result is reports/<run-id>/summary.json`);
      }
      const verbosity: Verbosity = opts.quiet ? 'quiet' : opts.verbose ? 'verbose' : 'normal';
      // Read by the runner's log, the progress reporter and any worker it starts.
      process.env[VERBOSITY_ENV] = verbosity;
      const options = givenOptions(DECLARED.get(program) ?? [], opts);
      // Before anything starts: values that reach the webhook, Jira and summary.md are checked here.
      checkRunInput({ ticket: opts.ticket, options });
      const { runRunbook } = await import('./run.js');
      process.exitCode = await runRunbook({
        name,
        target: opts.target,
        plan: opts.plan,
        output: opts.output,
        ticket: opts.ticket,
        onlyFailed: opts.onlyFailed,
        failOnNew: opts.failOnNew,
        options,
      });
    });
  return program;
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  // Every line this process prints (progress, errors, worker output) passes the redaction of the
  // secrets registered so far: the profile's, once it is loaded.
  redactStream(process.stdout);
  redactStream(process.stderr);
  try {
    const program = buildProgram();
    await loadExtensions(program, argv);
    addRunbookOptions(program, argv);
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.PASSED;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its one-line message; help/version are not errors.
      return err.exitCode === 0 ? EXIT.PASSED : EXIT.USAGE;
    }
    if (err instanceof RunbookError) {
      // One line, whatever the message holds (a value quoted in it may carry a newline).
      process.stderr.write(`runbook: ${redactSecrets(err.message).replace(/\s*[\r\n]+\s*/g, ' ')}\n`);
      if (debug()) process.stderr.write(`${err.stack}\n`);
      return err.exitCode;
    }
    process.stderr.write(`runbook: internal error: ${redactSecrets(errorMessage(err).split('\n')[0] ?? '')} (set DEBUG=runbooks for details)\n`);
    if (debug()) process.stderr.write(`${(err as Error)?.stack ?? err}\n`);
    return EXIT.CHECK_FAILED;
  }
}

/** Env var names whose values are secrets even when no profile has been read yet. */
const SECRET_ENV_NAME = /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH)$/i;

/**
 * The last line on stderr must not carry a secret either: a malformed profile can quote the value an
 * operator pasted where an env var NAME belongs. Redacts registered secrets and the values of
 * secret-looking environment variables.
 */
function redactSecrets(message: string): string {
  for (const [name, value] of Object.entries(process.env)) {
    if (value && value.length >= MIN_SECRET_LENGTH && SECRET_ENV_NAME.test(name)) registerSecret(value);
  }
  return redact(message);
}

/**
 * Run as the `runbook` process: main(), then exit with its code. bin/runbook.mjs (what `pnpm
 * runbook` starts) calls this on the compiled CLI; `node --import tsx cli/runbook.ts` still works.
 */
export function runAsProgram(): void {
  main().then(
    (code) => {
      // The run is over and its exit code decided: a late Ctrl-C must not turn it into "killed by
      // SIGINT" while stdout is flushed.
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => {});
      // Workers, sockets or a sandbox handle must not keep a finished run alive; flush stdout first
      // so the report path (the last line) is never cut off in a pipe.
      process.stdout.write('', () => process.exit(code));
    },
    (err: unknown) => {
      process.stderr.write(`runbook: internal error: ${errorMessage(err)}\n`);
      process.exit(EXIT.CHECK_FAILED);
    },
  );
}

const invokedDirectly = process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) runAsProgram();
