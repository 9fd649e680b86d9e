// Which version of this suite ran: the package version and the git commit, for `runbook --version`
// and the report's environment (suite_git_sha). A checkout reads HEAD from .git's files, and asks git
// when they are not the plain kind (headFromFiles). The container image has no .git:
// its build writes the commit into SUITE_GIT_SHA at the repository root (deploy/Dockerfile, build arg
// SUITE_GIT_SHA), and that file is read instead. RUNBOOK_SUITE_GIT_SHA overrides both.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from './catalog.js';
import { KiB, MiB, readUserFile } from './files.js';

/** The file the image build writes (one line: the commit, short or full). */
export const SUITE_GIT_SHA_FILE = 'SUITE_GIT_SHA';

const SHA = /^[0-9a-f]{7,64}$/;

/** The suite's commit (12 hex characters when known), or 'unknown'. Never throws, never waits more than 2 s. */
export function suiteGitSha(root = REPO_ROOT, env: NodeJS.ProcessEnv = process.env): string {
  const given = fromEnvironment(env);
  if (given) return given;
  if (existsSync(join(root, '.git'))) {
    const head = headFromFiles(root);
    if (head) return head;
    try {
      const sha = execFileSync('git', GIT_ARGS, { cwd: root, stdio: ['ignore', 'pipe', 'ignore'], timeout: GIT_TIMEOUT_MS }).toString().trim();
      if (SHA.test(sha)) return sha;
    } catch {
      // no git binary, or not a repository after all: try the baked file
    }
  }
  return baked(root);
}

let ours: Promise<string> | undefined;

/**
 * suiteGitSha without holding the thread while git runs (~40 ms of a run's start-up): the runner
 * starts it early and awaits it when the report's environment is written. Asked once per process.
 */
export function suiteGitShaSoon(): Promise<string> {
  ours ??= suiteGitShaAsync();
  return ours;
}

/** suiteGitSha, with git run asynchronously. */
export async function suiteGitShaAsync(root = REPO_ROOT, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const given = fromEnvironment(env);
  if (given) return given;
  if (existsSync(join(root, '.git'))) {
    const head = headFromFiles(root);
    if (head) return head;
    const sha = await new Promise<string>((resolve) =>
      execFile('git', GIT_ARGS, { cwd: root, timeout: GIT_TIMEOUT_MS }, (err, stdout) => resolve(err ? '' : String(stdout).trim())),
    );
    if (SHA.test(sha)) return sha;
  }
  return baked(root);
}

const GIT_ARGS = ['rev-parse', '--short=12', 'HEAD'];

const FULL_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * The commit HEAD names (12 hex characters), read from .git's files as git keeps them: HEAD holds a
 * commit (detached) or names a branch, whose commit is in a loose ref file or in packed-refs; a
 * worktree's or submodule's `.git` is a file naming its git folder, whose `commondir` names the
 * folder with the branches. Starting git from the runner's large process holds its thread ~10 ms
 * at start-up, while this is four small reads. Anything else (a reftable repository, a symbolic
 * ref to a symbolic ref, a file too large or unreadable) gives undefined, and git is asked.
 */
export function headFromFiles(root: string): string | undefined {
  const read = (file: string, maxBytes = 4 * KiB) => readUserFile(file, { what: 'git file', maxBytes }).trim();
  try {
    let gitDir = join(root, '.git');
    if (statSync(gitDir).isFile()) {
      const pointer = /^gitdir: (.+)$/m.exec(read(gitDir))?.[1];
      if (!pointer) return undefined;
      gitDir = resolve(root, pointer.trim());
    }
    const head = read(join(gitDir, 'HEAD'));
    if (FULL_SHA.test(head)) return head.slice(0, 12);
    const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
    if (!ref || ref.split('/').includes('..')) return undefined;
    const common = existsSync(join(gitDir, 'commondir')) ? resolve(gitDir, read(join(gitDir, 'commondir'))) : gitDir;
    // Branches are shared by all worktrees (the common folder); a loose ref wins over packed-refs.
    const loose = join(common, ref);
    if (existsSync(loose)) {
      const sha = read(loose);
      return FULL_SHA.test(sha) ? sha.slice(0, 12) : undefined;
    }
    const packed = join(common, 'packed-refs');
    if (!existsSync(packed)) return undefined;
    for (const line of read(packed, 8 * MiB).split('\n')) {
      const [sha, name] = line.split(' ');
      if (name === ref && sha && FULL_SHA.test(sha)) return sha.slice(0, 12);
    }
  } catch {
    // unreadable or not what this reads: git answers
  }
  return undefined;
}
const GIT_TIMEOUT_MS = 2000;

function fromEnvironment(env: NodeJS.ProcessEnv): string | undefined {
  const given = env.RUNBOOK_SUITE_GIT_SHA?.trim().toLowerCase();
  return given && SHA.test(given) ? given.slice(0, 12) : undefined;
}

/** The commit the image build wrote, or 'unknown'. */
function baked(root: string): string {
  try {
    // A few bytes at most: the build writes one line.
    const sha = readFileSync(join(root, SUITE_GIT_SHA_FILE), 'utf8').slice(0, 128).trim().toLowerCase();
    if (SHA.test(sha)) return sha.slice(0, 12);
  } catch {
    // not an image build either
  }
  return 'unknown';
}

/** package.json's version. */
export function suiteVersion(root = REPO_ROOT): string {
  try {
    const v = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}
