// The HTML report says nothing of the checkout the runner was started from, and never a credential
// from a repository URL: Allure's CI detection reads `git remote get-url origin` of the current
// directory (off CI) and GIT_URL (Jenkins) into every report (helpers/report/allure.ts).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentBuild } from '../../bin/build.mjs';
import { withoutUserinfo } from '../../helpers/report/allure.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TOKEN = 'glpat-Xq7TOKENvalue';

let dir: string;
let gitLog: string;
let bin: string;
/** helpers/report/allure.js of the current build, which loads Allure's bundled engine (bin/vendor.mjs). */
let compiled: string;

beforeAll(async () => {
  compiled = join((await currentBuild()).dir, 'helpers/report/allure.js');
  dir = mkdtempSync(join(tmpdir(), 'allure-ci-'));
  // The directory the runner is started from: a clone whose remote carries a token.
  const checkout = join(dir, 'checkout');
  mkdirSync(checkout);
  const git = (...args: string[]) => spawnSync('git', args, { cwd: checkout, stdio: 'ignore' });
  git('init', '-q');
  git('remote', 'add', 'origin', `https://alice:${TOKEN}@github.com/acme/ops-runbooks.git`);
  // A `git` first on PATH that notes each call and then runs the real one.
  bin = join(dir, 'bin');
  mkdirSync(bin);
  gitLog = join(dir, 'git-calls.log');
  const realGit = spawnSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).stdout.trim();
  writeFileSync(join(bin, 'git'), `#!/bin/sh\necho "$*" >> '${gitLog}'\nexec '${realGit}' "$@"\n`);
  chmodSync(join(bin, 'git'), 0o755);
  // One passed test result, as allure-vitest writes them.
  const results = join(dir, 'results');
  mkdirSync(results);
  const now = Date.now();
  writeFileSync(
    join(results, '0b1c2d3e-0000-4000-8000-000000000001-result.json'),
    JSON.stringify({ uuid: '0b1c2d3e-0000-4000-8000-000000000001', name: 'step one', fullName: 'x#step one', historyId: 'h1', status: 'passed', stage: 'finished', start: now, stop: now + 5, labels: [], steps: [], attachments: [], parameters: [], links: [] }),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The report engine as the runner loads it (bundled, from the build) and as the sources load it
 * (from node_modules): both must scrub the same way.
 */
const ENGINES = [
  { engine: 'bundled in the build', module: () => compiled, loader: [] as string[] },
  { engine: 'from node_modules', module: () => join(ROOT, 'helpers/report/allure.ts'), loader: ['--import', import.meta.resolve('tsx')] },
];

/** generateHtml in a child started in the checkout (a worker thread cannot chdir), with `env` on top of a CI-free environment. */
async function reportFrom(engine: (typeof ENGINES)[number], name: string, env: Record<string, string>): Promise<string> {
  const out = join(dir, `${name}-${engine.loader.length}`);
  const script = [
    `const { generateHtml } = await import(${JSON.stringify(pathToFileURL(engine.module()).href)});`,
    `const r = await generateHtml({ resultsDir: ${JSON.stringify(join(dir, 'results'))}, outputDir: ${JSON.stringify(join(out, 'html'))}, stagingDir: ${JSON.stringify(join(out, 'staging'))}, reportName: 'ci check', history: [] });`,
    'console.log(r.index);',
  ].join('\n');
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !CI_VARIABLES.test(k)));
  const child = spawn(process.execPath, [...engine.loader, '--input-type=module', '-e', script], {
    cwd: join(dir, 'checkout'),
    env: { ...base, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  expect(code, stderr).toBe(0);
  return readFileSync(stdout.trim().split('\n').at(-1)!, 'utf8');
}

/** What @allurereport/ci's detectors look at to decide they run on a CI. */
const CI_VARIABLES = /^(CI|GITHUB_ACTIONS|GITLAB_CI|JENKINS_URL|BUILD_NUMBER|CIRCLECI|DRONE|BITBUCKET_.*|CODEBUILD_.*|TF_BUILD|SYSTEM_.*|BUILD_.*|GIT_URL)$/;

describe.each(ENGINES)('the HTML report and the runner’s own checkout (Allure $engine)', (engine) => {
  it('off CI: no repository, branch or remote of the current directory in the report, and no git run for it', async () => {
    rmSync(gitLog, { force: true });
    const html = await reportFrom(engine, 'local', {});
    expect(html).toContain('ci check'); // the report itself is there
    expect(html).not.toContain(TOKEN);
    expect(html).not.toContain('ops-runbooks');
    expect(existsSync(gitLog) ? readFileSync(gitLog, 'utf8') : '').toBe('');
  }, 60_000);

  it('on Jenkins: the job’s repository is named, without the credentials in GIT_URL', async () => {
    const html = await reportFrom(engine, 'jenkins', {
      JENKINS_URL: 'https://jenkins.example.test/',
      BUILD_URL: 'https://jenkins.example.test/job/runbooks/7/',
      GIT_URL: `https://bob:${TOKEN}@github.com/acme/ops-runbooks.git`,
    });
    expect(html).not.toContain(TOKEN);
    expect(html).not.toContain('bob:');
    expect(html).toContain('github.com/acme/ops-runbooks');
  }, 60_000);
});

describe('URLs in a CI description', () => {
  it('user-info is cut from URLs, nothing else', () => {
    expect(withoutUserinfo('https://u:p@host.example/x?y=1')).toBe('https://host.example/x?y=1');
    expect(withoutUserinfo({ slug: 'a/b', url: 'ssh://git@host/a/b' })).toEqual({ slug: 'a/b', url: 'ssh://host/a/b' });
    expect(withoutUserinfo('main')).toBe('main');
    expect(withoutUserinfo('https://host.example/a@b')).toBe('https://host.example/a@b');
    expect(withoutUserinfo(undefined)).toBeUndefined();
  });
});
