// suite_git_sha in reports: a checkout reads HEAD from .git (and asks git what that does not read);
// the container image (no .git) reads the commit its build wrote (deploy/Dockerfile, build arg
// SUITE_GIT_SHA); without either it says 'unknown'.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../helpers/catalog.js';
import { SUITE_GIT_SHA_FILE, headFromFiles, suiteGitSha, suiteGitShaAsync, suiteVersion } from '../../helpers/suite-version.js';
import { RUNTIME_STAGE } from '../deploy/dockerfile.js';

const dirs: string[] = [];
const scratch = () => {
  const d = mkdtempSync(join(tmpdir(), 'suite-sha-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('suite_git_sha', () => {
  it('in a checkout: the commit git names (12 hex characters)', () => {
    expect(suiteGitSha(REPO_ROOT, {})).toMatch(/^[0-9a-f]{12}$/);
  });

  it('without .git (the image): the commit the build wrote into SUITE_GIT_SHA', () => {
    const root = scratch();
    writeFileSync(join(root, SUITE_GIT_SHA_FILE), '0123456789abcdef0123456789abcdef01234567\n');
    expect(suiteGitSha(root, {})).toBe('0123456789ab');
  });

  it("without .git and without the file, or with the build argument's default: 'unknown'", () => {
    expect(suiteGitSha(scratch(), {})).toBe('unknown');
    const root = scratch();
    writeFileSync(join(root, SUITE_GIT_SHA_FILE), 'unknown\n');
    expect(suiteGitSha(root, {})).toBe('unknown');
  });

  it('a .git that git cannot read falls back to the baked file', () => {
    const root = scratch();
    mkdirSync(join(root, '.git'));
    writeFileSync(join(root, SUITE_GIT_SHA_FILE), 'abcdef123456\n');
    expect(suiteGitSha(root, { GIT_CEILING_DIRECTORIES: root })).toBe('abcdef123456');
  });

  it("reads HEAD from .git's files as git does: a branch (loose or packed), a detached HEAD, a worktree", () => {
    const git = (cwd: string, ...args: string[]) =>
      execFileSync('git', args, { cwd, stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' } }).toString().trim();
    const repo = scratch();
    git(repo, 'init', '-q', '-b', 'main');
    const commit = (msg: string) => git(repo, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '--allow-empty', '-m', msg);
    commit('one');
    const asGit = (dir: string) => git(dir, 'rev-parse', '--short=12', 'HEAD');
    expect(headFromFiles(repo)).toBe(asGit(repo));
    git(repo, 'pack-refs', '--all');
    commit('two'); // a loose ref again, newer than the packed one
    expect(headFromFiles(repo)).toBe(asGit(repo));
    git(repo, 'pack-refs', '--all');
    expect(headFromFiles(repo)).toBe(asGit(repo));
    const tree = join(scratch(), 'tree');
    git(repo, 'worktree', 'add', '-q', '-b', 'side', tree);
    commit('three');
    expect(headFromFiles(tree)).toBe(asGit(tree));
    expect(headFromFiles(repo)).toBe(asGit(repo));
    git(repo, 'checkout', '-q', '--detach', 'HEAD~1');
    expect(headFromFiles(repo)).toBe(asGit(repo));
    // What it does not read, git answers: a HEAD naming a symbolic ref.
    git(repo, 'checkout', '-q', 'main');
    git(repo, 'symbolic-ref', 'refs/heads/alias', 'refs/heads/main');
    git(repo, 'symbolic-ref', 'HEAD', 'refs/heads/alias');
    expect(headFromFiles(repo)).toBeUndefined();
    expect(suiteGitSha(repo, {})).toBe(asGit(repo));
  });

  it('RUNBOOK_SUITE_GIT_SHA overrides both; a value that is not a commit is ignored', () => {
    expect(suiteGitSha(scratch(), { RUNBOOK_SUITE_GIT_SHA: 'FEEDFACE1234567' })).toBe('feedface1234');
    expect(suiteGitSha(scratch(), { RUNBOOK_SUITE_GIT_SHA: '$(rm -rf /)' })).toBe('unknown');
  });

  it('the runner’s asynchronous lookup (git not holding the thread) answers as the synchronous one, in each case', async () => {
    const baked = scratch();
    writeFileSync(join(baked, SUITE_GIT_SHA_FILE), '0123456789abcdef\n');
    const unreadable = scratch();
    mkdirSync(join(unreadable, '.git'));
    writeFileSync(join(unreadable, SUITE_GIT_SHA_FILE), 'abcdef123456\n');
    const cases: Array<[string, NodeJS.ProcessEnv]> = [
      [REPO_ROOT, {}],
      [baked, {}],
      [scratch(), {}],
      [unreadable, {}],
      [scratch(), { RUNBOOK_SUITE_GIT_SHA: 'FEEDFACE1234567' }],
    ];
    for (const [root, env] of cases) expect(await suiteGitShaAsync(root, env)).toBe(suiteGitSha(root, env));
    expect(await suiteGitShaAsync(REPO_ROOT, {})).toMatch(/^[0-9a-f]{12}$/);
  });

  it("the image's build writes the file from the build argument after copying the suite", () => {
    const ops = RUNTIME_STAGE.map((i) => `${i.op} ${i.args}`);
    const copy = ops.findIndex((o) => /^COPY \. \.$/.test(o));
    const arg = ops.findIndex((o) => /^ARG SUITE_GIT_SHA(=|$)/.test(o));
    const write = ops.findIndex((o) => o.startsWith('RUN ') && o.includes('$SUITE_GIT_SHA') && o.includes(`/app/${SUITE_GIT_SHA_FILE}`));
    expect(copy).toBeGreaterThanOrEqual(0);
    expect(arg).toBeGreaterThan(copy);
    expect(write).toBeGreaterThan(arg);
  });

  it('the version is package.json\'s', () => {
    expect(suiteVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
