// Preconditions the runner checks before anything is created: a missing redis-server or
// nats-server for the sandbox is exit 3 with one line naming the binary, the apt package and the
// REDIS_SERVER_BIN / NATS_SERVER_BIN override, proven through the CLI as an operator meets it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { expectCalm, expectOneLine } from './support/checks.js';
import { Workspace } from './support/harness.js';

let ws: Workspace;

beforeAll(() => {
  // No --target: the runner starts the sandbox, which needs both servers.
  ws = new Workspace(() => 'http://127.0.0.1:9');
});

afterAll(() => {
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

const runDirs = () => (existsSync(ws.reports) ? readdirSync(ws.reports).filter((d) => !d.startsWith('.')) : []);

describe('a missing server binary', () => {
  it.each([
    ['REDIS_SERVER_BIN', 'redis-server'],
    ['NATS_SERVER_BIN', 'nats-server'],
  ] as const)('%s pointing at nothing: exit 3, one line naming %s, its apt package and the override', async (env, binary) => {
    const missing = `${ws.dir}/no-such-dir/${binary}`;
    const r = await ws.cli(['hold'], { env: { [env]: missing } });
    expectCalm(ws, r, 3);
    expectOneLine(r, new RegExp(`^runbook: ${binary} not found: ${env}=${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} does not exist; point ${env} at the ${binary} binary or unset it \\(install: apt-get install ${binary}\\)$`));
    expect(r.stderr).not.toMatch(/internal error/);
    expect(runDirs()).toEqual([]);
  }, 240_000);
});
