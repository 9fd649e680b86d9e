// Bad input: unknown runbook or flag, malformed and hostile profiles, malformed case and waiver
// files, and a report directory that cannot be written. Each is refused with the documented exit
// code and one line naming the cause, before anything is created, and never echoes a secret.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectOneLine, expectReport } from './support/checks.js';
import { CONNECT_TIMEOUT_MS, SECRET, Workspace, gatewayProfile, type CliResult } from './support/harness.js';
import { canMount, mountTmpfs, noMountReason, readOnlyPrefix } from '../support/mounts.js';

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

let gw: FaultGateway;
let ws: Workspace;

beforeAll(async () => {
  gw = await startFaultGateway();
  ws = new Workspace(() => gw.url);
});

afterAll(async () => {
  await gw?.close();
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

/** Run a few CLI invocations at a time (they are short; the machine is small). */
async function runAll<T>(items: T[], fn: (item: T) => Promise<CliResult>, width = 2): Promise<CliResult[]> {
  const out: CliResult[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const noRunDirs = () => (existsSync(ws.reports) ? readdirSync(ws.reports).filter((d) => !d.startsWith('.')) : []);

describe('bad input', () => {
  it('unknown runbook and unknown flags: exit 2, one line, nothing contacted', async () => {
    const before = gw.log.length;
    const [unknown, flag, noValue] = await runAll(
      [['nope'], ['hold', '--bogus'], ['hold', '--target']],
      (args) => ws.cli(args),
    );
    expectCalm(ws, unknown!, 2);
    expectOneLine(unknown!, /^runbook: unknown runbook 'nope'; known runbooks: .*\bhold\b/);
    expectCalm(ws, flag!, 2);
    expectOneLine(flag!, /unknown option '--bogus'/);
    expectCalm(ws, noValue!, 2);
    expectOneLine(noValue!, /option '--target <profile>' argument missing/);
    expect(gw.log.length).toBe(before);
  }, 240_000);

  it('malformed and hostile profiles: exit 2 naming file and field, no secret echoed, nothing created', async () => {
    const huge = join(ws.dir, 'huge.yaml');
    writeFileSync(huge, gatewayProfile() + `description: "${'x'.repeat(2 * 1024 * 1024)}"\n`);
    mkdirSync(join(ws.dir, 'dir.yaml'), { recursive: true });
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]', 'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]', 'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]'].join('\n');
    const cases: [string, string, RegExp][] = [
      ['inline-key', gatewayProfile('', `  api_key: ${SECRET}`), /inline-key\.yaml: gateway\.api_key: inline secrets are not allowed/],
      ['url-password', gatewayProfile().replace('${FAULT_GATEWAY_URL}', `http://ops:${SECRET}@127.0.0.1:9`), /url-password\.yaml: gateway\.url: URL contains an inline password/],
      ['key-as-env-name', gatewayProfile().replace('api_key_env: FAULT_API_KEY', `api_key_env: ${SECRET}`), /key-as-env-name\.yaml: gateway\.api_key_env: expected the NAME of an environment variable .*\(value not shown: it may be a secret\)$/],
      ['wrong-type', gatewayProfile().replace(`connect_timeout_ms: ${CONNECT_TIMEOUT_MS}`, 'connect_timeout_ms: soon'), /wrong-type\.yaml: gateway\.connect_timeout_ms: expected/],
      ['list-gateway', 'name: x\ngateway: [a, b]\n', /list-gateway\.yaml: gateway: expected/],
      ['not-yaml', 'gateway: {url: [\n', /not-yaml\.yaml(:\d+)?: YAML parse error/],
      ['alias-bomb', bomb, /alias-bomb\.yaml: YAML parse error: Excessive alias count/],
    ];
    const paths = cases.map(([name, yaml]) => ws.profile(name, yaml));
    const extra: [string, RegExp][] = [
      [huge, /huge\.yaml: target profile is \d+ bytes; at most 1 MiB is accepted$/],
      [join(ws.dir, 'dir.yaml'), /dir\.yaml: target profile is a directory, expected a regular file$/],
      [join(ws.dir, 'missing.yaml'), /missing\.yaml: profile file does not exist$/],
    ];
    const all: [string, RegExp][] = [...cases.map(([, , re], i) => [paths[i]!, re] as [string, RegExp]), ...extra];
    const results = await runAll(all, ([p]) => ws.cli(['hold', '--target', p], { deadlineMs: 120_000 }));
    results.forEach((r, i) => {
      const [p, re] = all[i]!;
      expectCalm(ws, r, 2);
      expectOneLine(r, re);
      expect(r.stderr, p).not.toContain(SECRET);
    });
    expect(gw.count('POST /api/v1/things')).toBe(0);
    expect(noRunDirs()).toEqual([]);
  }, 240_000);

  it('a report or state directory that cannot be written (ENOTDIR): exit 3 before anything is created', async () => {
    const profile = ws.profile('fault', gatewayProfile());
    const file = join(ws.dir, 'a-file');
    writeFileSync(file, 'not a directory\n');
    const cases: [string, string, string][] = [
      ['RUNBOOK_REPORTS_DIR', 'report directory', join(file, 'reports')],
      ['RUNBOOK_STATE_DIR', 'runner state directory', join(file, 'state')],
    ];
    const health = gw.count('GET /health');
    const results = await runAll(cases, ([env, , dir]) => ws.cli(['hold', '--target', profile], { env: { [env]: dir } }), 2);
    results.forEach((r, i) => {
      const [env, what, dir] = cases[i]!;
      expectCalm(ws, r, 3);
      expectOneLine(r, new RegExp(`^runbook: ${what} \\(${env}\\) ${escapeRe(dir)} is not writable \\(ENOTDIR\\); nothing was run$`));
    });
    // Refused before the preflight: the target was never contacted.
    expect(gw.count('GET /health')).toBe(health);
    expect(gw.count('POST /api/v1/things')).toBe(0);
  }, 240_000);

  it('a report directory on a read-only filesystem (EROFS): exit 3 before anything is created', async (ctx) => {
    const why = noMountReason(true);
    if (why) return ctx.skip(why);
    const profile = ws.profile('fault', gatewayProfile());
    // Root ignores permission bits, so only a read-only mount gives EROFS: one this process mounts,
    // or a read-only bind in bubblewrap's mount namespace around the CLI.
    const ro = join(ws.dir, 'ro');
    mkdirSync(ro);
    const unmount = canMount() ? mountTmpfs(ro, 'ro,size=64k') : undefined;
    const health = gw.count('GET /health');
    try {
      const r = await ws.cli(['hold', '--target', profile], { env: { RUNBOOK_REPORTS_DIR: ro }, prefix: unmount ? undefined : readOnlyPrefix(ro) });
      expectCalm(ws, r, 3);
      expectOneLine(r, new RegExp(`^runbook: report directory \\(RUNBOOK_REPORTS_DIR\\) ${escapeRe(ro)} is not writable \\(EROFS\\); nothing was run$`));
      expect(gw.count('GET /health')).toBe(health);
      expect(gw.count('POST /api/v1/things')).toBe(0);
    } finally {
      unmount?.();
    }
  }, 240_000);

  it('malformed policy case and waiver files: the step names file and line, exit 2, teardown still runs', async () => {
    const cases = join(ws.dir, 'cases.yaml');
    writeFileSync(cases, 'cases:\n  - name: missing the rest\n    request: {topic: job.default}\n');
    const waivers = join(ws.dir, 'readiness.waivers.yaml');
    writeFileSync(waivers, 'waivers:\n  - check: X\n    expires: not-a-date\n');
    const withCases = ws.profile('cases', gatewayProfile(`policy:\n  case_files: [${cases}]`));
    const okCases = join(ws.dir, 'ok-cases.yaml');
    writeFileSync(okCases, 'cases: []\n');
    const withWaivers = ws.profile('waivers', gatewayProfile(`policy:\n  case_files: []`));
    const [r1, r2] = await runAll(
      [
        { profile: withCases, env: {} },
        { profile: withWaivers, env: { FAULT_WAIVERS_FILE: waivers } },
      ],
      (c) => ws.cli(['cases', '--target', c.profile], { env: c.env }),
      2,
    );
    for (const [r, re] of [
      [r1!, /ConfigError: .*cases\.yaml:\d+/],
      [r2!, /ConfigError: .*readiness\.waivers\.yaml:\d+/],
    ] as const) {
      expectCalm(ws, r, 2);
      const s = expectReport(r, 'config_error');
      const failed = s.steps.find((st: any) => st.status === 'failed');
      expect(failed.error).toMatch(re);
      expect(s.steps.at(-1)).toMatchObject({ name: 'Teardown: remove what this run created', status: 'passed' });
    }
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);
});
