import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { currentBuild } from '../../bin/build.mjs';
import { ConfigError, EXIT } from '../../helpers/errors.js';
import { loadProfile, PRECOMPILED_VALIDATOR, secretValues, TARGETS_DIR } from '../../helpers/target.js';

const dir = mkdtempSync(join(tmpdir(), 'rb-target-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** Write a profile file into the temp dir and return its name relative to it. */
function profileFile(text: string): string {
  const name = `p${++n}.yaml`;
  writeFileSync(join(dir, name), text);
  return name;
}

function loadError(text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  const file = profileFile(text);
  try {
    loadProfile(file, { cwd: dir, env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).exitCode).toBe(EXIT.USAGE);
    const msg = (err as Error).message;
    expect(msg.startsWith(`${file}`), msg).toBe(true);
    expect(msg).not.toContain('\n');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadProfile', () => {
  it('run compiled, the build\'s precompiled schema validator finds what the run-time compiled one finds, in the same words', async () => {
    const { dir: build } = await currentBuild();
    const compiled = (await import(pathToFileURL(join(build, 'helpers/target.js')).href)) as typeof import('../../helpers/target.js');
    expect(compiled.PRECOMPILED_VALIDATOR).toBe(PRECOMPILED_VALIDATOR);
    const texts = [
      'gateway:\n  url: http://127.0.0.1:8081/\n',
      'gateway:\n  url: 42\n',
      'description: x\n',
      'gateway:\n  url: http://h:1\n  urll: x\n',
      'gateway:\n  url: http://h:1\n  connect_timeout_ms: -5\n',
      'gateway:\n  url: http://h:1\n  api_key_env: "my key"\n',
      'gateway:\n  url: http://h:1\npolicy:\n  case_files: [1]\n',
      'gateway:\n  url: http://h:1\nnats: {}\n',
      'gateway:\n  url: http://h:1\ndestructive:\n  allowed: "yes"\n',
      'gateway:\n  url: http://h:1\nkube:\n  context: x\n',
    ];
    const outcome = (load: typeof loadProfile, file: string) => {
      try {
        return `ok: ${load(file, { cwd: dir, env: {} }).gateway.url}`;
      } catch (err) {
        return `${(err as Error).name}: ${(err as Error).message}`;
      }
    };
    for (const text of texts) {
      const file = profileFile(text);
      expect(outcome(compiled.loadProfile, file)).toBe(outcome(loadProfile, file));
    }
  }, 60_000);


  it('applies defaults and resolves case files relative to the profile file', () => {
    const file = profileFile('gateway:\n  url: http://127.0.0.1:8081/\npolicy:\n  case_files: [cases/a.yaml]\n');
    const p = loadProfile(file, { cwd: dir, env: {} });
    expect(p.name).toBe(file.replace('.yaml', ''));
    expect(p.source).toBe(file);
    expect(p.gateway).toEqual({ url: 'http://127.0.0.1:8081', connect_timeout_ms: 3000, request_timeout_ms: 10000 });
    expect(p.routing).toEqual({ pool: 'default', mapped_topic: 'job.default', unmapped_topic: 'job.runbook.unmapped' });
    expect(p.policy).toEqual({ reload_interval_ms: 30000, case_files: [join(dir, 'cases/a.yaml')] });
    expect(p.destructive).toEqual({ allowed: false });
  });

  it('loads the shipped compose profile by name', () => {
    const p = loadProfile('compose', { env: {} });
    expect(p.source).toBe('targets/compose.yaml');
    expect(p.gateway.url).toBe('http://localhost:8081');
    expect(p.gateway.api_key_env).toBe('CORDUM_API_KEY');
    expect(p.metrics).toEqual({ gateway: 'http://localhost:9092/metrics', scheduler: 'http://localhost:9090/metrics' });
    expect(p.workflow_engine?.health_url).toBe('http://localhost:9093/health');
    expect(p.nats?.url).toBe('nats://localhost:4222');
    expect(p.redis?.url).toBe('redis://localhost:6379');
    expect(p.destructive.allowed).toBe(false);
  });

  it('loads the cluster example, with ${VAR:-default} and relative case files', () => {
    const p = loadProfile('cluster.example', { env: { CORDUM_GATEWAY_URL: 'https://gw.test' } });
    expect(p.gateway.url).toBe('https://gw.test');
    expect(p.kube).toMatchObject({ context: 'staging-admin', namespace: 'cordum' });
    expect(p.nats?.port_forward).toEqual({ service: 'nats', port: 4222 });
    expect(p.nats?.tls?.secret).toBe('nats-client-tls');
    expect(p.policy.case_files).toEqual([join(TARGETS_DIR, 'policy-cases/staging.yaml')]);
    expect(p.destructive.allowed).toBe(false);
    const withDefault = loadProfile('cluster.example', { env: {} });
    expect(withDefault.gateway.url).toBe('https://cordum.staging.example.internal');
  });

  it('names file, field and expectation for a wrong type', () => {
    const err = loadError('gateway:\n  url: 42\n');
    expect(err.message).toMatch(/^p\d+\.yaml: gateway\.url: expected a URL like http:\/\/host:8081, got 42$/);
  });

  it('names file, field and expectation for every kind of schema error', () => {
    expect(loadError('description: x\n').message).toMatch(/: gateway: required field is missing \(expected a mapping with url/);
    expect(loadError('gateway:\n  url: http://h:1\n  urll: x\n').message).toMatch(/: gateway\.urll: unknown field \(allowed here: url, api_key_env/);
    expect(loadError('gateway:\n  url: http://h:1\n  connect_timeout_ms: -5\n').message).toMatch(
      /: gateway\.connect_timeout_ms: expected a whole number of milliseconds between 1 and 600000, got -5$/,
    );
    expect(loadError('gateway:\n  url: http://h:1\n  api_key_env: "my key"\n').message).toMatch(/: gateway\.api_key_env: expected the NAME of an environment variable/);
    expect(loadError('gateway:\n  url: http://h:1\npolicy:\n  case_files: [1]\n').message).toMatch(/: policy\.case_files\[0\]: expected a file path, got 1$/);
    expect(loadError('gateway:\n  url: http://h:1\nredis:\n  url: http://h:6379\n').message).toMatch(/: redis\.url: expected a URL like redis:\/\/host:6379\/0, got "http:\/\/h:6379"$/);
    expect(loadError('gateway:\n  url: http://h:1\nnats: {}\n').message).toMatch(/: nats: expected url or port_forward, got neither$/);
    expect(loadError('gateway:\n  url: http://h:1\ndestructive:\n  allowed: "yes"\n').message).toMatch(/: destructive\.allowed: expected true or false, got "yes"$/);
    expect(loadError('gateway:\n  url: http://h:1\nkube:\n  context: x\n').message).toMatch(/: kube\.namespace: required field is missing/);
    expect(loadError('- a\n- b\n').message).toMatch(/: expected a mapping at the top level, got a list/);
    expect(loadError('').message).toMatch(/: file is empty/);
    expect(loadError('gateway:\n  url: ${NOPE}\n').message).toMatch(/: gateway\.url: environment variable NOPE is not set/);
  });

  it('reports YAML syntax errors with file:line', () => {
    const err = loadError('gateway:\n  url: http://h:1\n  bad: [unclosed\nnats:\n');
    expect(err.message).toMatch(/^p\d+\.yaml:\d+: YAML parse error: /);
    const dup = loadError('gateway:\n  url: http://h:1\ngateway:\n  url: http://h:2\n');
    expect(dup.message).toMatch(/^p\d+\.yaml:3: YAML parse error: .*[Uu]nique|duplicate/i);
  });

  it('rejects inline secrets with a pointer to the *_env field', () => {
    expect(loadError('gateway:\n  url: http://h:1\n  api_key: abc\n').message).toMatch(
      /: gateway\.api_key: inline secrets are not allowed; .*gateway\.api_key_env/,
    );
    expect(loadError('gateway:\n  url: http://h:1\nredis:\n  url: redis://h:6379\n  password: hunter2\n').message).toMatch(/: redis\.password: inline secrets.*password_env/);
    expect(loadError('gateway:\n  url: http://h:1\nnats:\n  url: nats://h:4222\n  token: t0k3n\n').message).toMatch(/: nats\.token: inline secrets.*token_env/);
    expect(loadError('gateway:\n  url: http://h:1\nredis:\n  url: redis://:hunter2@h:6379\n').message).toMatch(/: redis\.url: URL contains an inline password/);
    expect(loadError('gateway:\n  url: http://admin:pw@h:1\n').message).toMatch(/: gateway\.url: URL contains an inline password/);
    // A fake PEM block, assembled at run time so no key marker is committed to the repo.
    const pem = ['-----BEGIN', 'RSA PRIVATE KEY-----\\nMIIE\\n-----END', 'RSA PRIVATE KEY-----'].join(' ');
    expect(loadError(`gateway:\n  url: http://h:1\nlabels:\n  note: "${pem}"\n`).message).toMatch(/: labels\.note: looks like an inline PEM key/);
    // A secret smuggled in through ${VAR} is caught after expansion.
    expect(loadError('gateway:\n  url: http://h:1\nredis:\n  url: redis://:${PW}@h:6379\n', { PW: 'pw' }).message).toMatch(/inline password/);
  });

  it('rejects files over 1 MiB', () => {
    const err = loadError(`gateway:\n  url: http://h:1\ndescription: "${'x'.repeat(1024 * 1024)}"\n`);
    expect(err.message).toMatch(/: target profile is \d+ bytes; at most 1 MiB is accepted$/);
  });

  it('names the available targets for an unknown name', () => {
    expect(() => loadProfile('nope-no-such')).toThrow(/unknown target "nope-no-such": targets\/nope-no-such\.yaml does not exist \(available: .*compose/);
  });

  it('refuses a referenced secret too short to redact, naming field and variable but not the value', () => {
    const file = profileFile('gateway:\n  url: http://h:1\n  api_key_env: K\nnats:\n  url: nats://h:4222\n  token_env: T\n');
    expect(() => loadProfile(file, { cwd: dir, env: { K: 'long-enough-key', T: 'tok7890' } })).toThrow(
      /: nats\.token_env: the secret in T is 7 characters; secrets shorter than 8 cannot be redacted safely from output and reports \(use a longer one\)$/,
    );
    expect(loadProfile(file, { cwd: dir, env: { K: 'long-enough-key', T: 'tok78901' } }).nats?.token_env).toBe('T');
  });

  it('secretValues returns the values of every referenced env var', () => {
    const file = profileFile(
      'gateway:\n  url: http://h:1\n  api_key_env: K\nnats:\n  url: nats://h:4222\n  token_env: T\nredis:\n  url: redis://h:6379\n  password_env: P\n',
    );
    const p = loadProfile(file, { cwd: dir, env: {} });
    expect(secretValues(p, { K: 'key-1', T: 'tok-2', P: 'pw-3', OTHER: 'x' }).sort()).toEqual(['key-1', 'pw-3', 'tok-2']);
    expect(secretValues(p, {})).toEqual([]);
  });
});
