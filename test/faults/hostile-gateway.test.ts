// The runner against a hostile gateway on loopback: a body that trickles a byte at a time, a body
// without end (slow and fast), and 200 answers that are not the documented JSON (HTML, invalid
// JSON, null). Every read has one deadline for the whole answer and a cap on its size: the run
// ends on time with exit 3 ("the target answered too slowly" or without end), and the server sees
// the client hang up at the deadline, not later. A body that is not JSON is named as such (exit 1).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { MAX_BODY_BYTES } from '../../helpers/gateway.js';
import { startFaultGateway, type FaultGateway, type Served } from './support/fault-gateway.js';
import { expectCalm, expectOneLine, expectReport } from './support/checks.js';
import { CONNECT_TIMEOUT_MS, HANGUP_GRACE_MS, REQUEST_TIMEOUT_MS, Workspace, gatewayProfile } from './support/harness.js';

let gw: FaultGateway;
let ws: Workspace;
let profile: string;

/** The preflight's health deadline for gatewayProfile(): its connect timeout plus 0.5 s. */
const HEALTH_DEADLINE_MS = CONNECT_TIMEOUT_MS + 500;
/** What the kernel and undici may buffer beyond what the client read before it hung up. */
const SOCKET_SLACK_BYTES = 16 * 1024 * 1024;

beforeAll(async () => {
  gw = await startFaultGateway();
  ws = new Workspace(() => gw.url);
  profile = ws.profile('fault', gatewayProfile());
});

afterEach(() => {
  gw.answers.health = 'ok';
  gw.answers.status = 'ok';
});

afterAll(async () => {
  await gw?.close();
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

const runDirs = () => (existsSync(ws.reports) ? readdirSync(ws.reports).filter((d) => !d.startsWith('.')) : []);

/** Answers to `line` served since index `from`; each must have been hung up on. */
function answers(line: string, from: number): Served[] {
  const found = gw.served.slice(from).filter((s) => s.line === line);
  expect(found.length, `requests for ${line}`).toBeGreaterThan(0);
  for (const s of found) expect(s.closedAt, `${line} still open`).toBeDefined();
  return found;
}

function openFor(s: Served): number {
  return s.closedAt! - s.openedAt;
}

describe('a hostile gateway', () => {
  it('/health answers 200 and trickles its body: the preflight hangs up at its deadline, exit 3 in one line', async () => {
    gw.answers.health = 'trickle';
    const from = gw.served.length;
    const before = runDirs().length;
    const created = gw.count('POST /api/v1/things');
    const r = await ws.cli(['hold', '--target', profile]);
    expectCalm(ws, r, 3);
    expectOneLine(r, new RegExp(`^runbook: gateway of target 'fault-target' at .* answered its health check too slowly: no complete answer within ${HEALTH_DEADLINE_MS} ms`));
    for (const s of answers('GET /health', from)) expect(openFor(s)).toBeLessThanOrEqual(HEALTH_DEADLINE_MS + HANGUP_GRACE_MS);
    expect(gw.count('POST /api/v1/things')).toBe(created);
    expect(runDirs().length).toBe(before);
  }, 240_000);

  it('a step whose answer trickles fails at the request timeout (exit 3) and teardown does not wait for it', async () => {
    gw.setFault('trickle', 'trickle');
    const from = gw.served.length;
    const r = await ws.cli(['gw-trickle', '--target', profile]);
    expectCalm(ws, r, 3);
    const s = expectReport(r, 'unreachable');
    expect(s.steps[1]).toMatchObject({ status: 'failed', exit_code: 3, error_code: 'RB_TARGET_TIMEOUT' });
    expect(s.steps[1].error).toMatch(new RegExp(`no complete response within the request timeout of ${REQUEST_TIMEOUT_MS} ms`));
    for (const a of answers('GET /api/v1/probe/trickle', from)) expect(openFor(a)).toBeLessThanOrEqual(REQUEST_TIMEOUT_MS + HANGUP_GRACE_MS);
    expect(s.steps.at(-1)).toMatchObject({ name: 'Teardown: remove what this run created', status: 'passed' });
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('/api/v1/status streams without end: preflight and the step stop at the request timeout, exit 3, the body is never buffered whole', async () => {
    gw.answers.status = 'endless';
    const from = gw.served.length;
    const r = await ws.cli(['gw-status', '--target', profile]);
    expectCalm(ws, r, 3);
    const s = expectReport(r, 'unreachable');
    expect(s.steps[1]).toMatchObject({ name: 'Read the gateway status', status: 'failed', exit_code: 3, error_code: 'RB_TARGET_TIMEOUT' });
    expect(s.steps[1].error).toMatch(/GET .*\/api\/v1\/status: no complete response within the request timeout of 1500 ms/);
    // Preflight asked too (for the build version) and gave up the same way.
    const served = answers('GET /api/v1/status', from);
    expect(served.length).toBeGreaterThanOrEqual(2);
    for (const a of served) {
      expect(openFor(a)).toBeLessThanOrEqual(REQUEST_TIMEOUT_MS + HANGUP_GRACE_MS);
      expect(a.bytes).toBeLessThanOrEqual(MAX_BODY_BYTES + SOCKET_SLACK_BYTES);
    }
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('/api/v1/status floods faster than any deadline: the body cap stops the read, exit 3 naming the cap', async () => {
    gw.answers.status = 'flood';
    // A generous request timeout, so it is the cap (not the clock) that stops the read.
    const slowProfile = ws.profile('fault-patient', gatewayProfile('', '  request_timeout_ms: 60000').replace('  request_timeout_ms: 1500\n', ''));
    const from = gw.served.length;
    const r = await ws.cli(['gw-status', '--target', slowProfile]);
    expectCalm(ws, r, 3);
    const s = expectReport(r, 'unreachable');
    expect(s.steps[1]).toMatchObject({ status: 'failed', exit_code: 3, error_code: 'RB_RESPONSE_TOO_LARGE' });
    expect(s.steps[1].error).toMatch(new RegExp(`answer too large: GET .*/api/v1/status: the body exceeds ${MAX_BODY_BYTES / 1024} KiB; stopped reading`));
    for (const a of answers('GET /api/v1/status', from)) expect(a.bytes).toBeLessThanOrEqual(MAX_BODY_BYTES + SOCKET_SLACK_BYTES);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it.each([
    ['html', /GET \/api\/v1\/status answered 200 with text\/html, expected JSON: "<!doctype html>/],
    ['invalid-json', /GET \/api\/v1\/status answered 200 with application\/json that does not parse, expected JSON/],
    ['null', /GET \/api\/v1\/status answered 200 with JSON null, expected a JSON object/],
  ] as const)('/api/v1/status answers 200 with %s: the step names the endpoint and what came back, exit 1', async (answer, message) => {
    gw.answers.status = answer;
    const r = await ws.cli(['gw-status', '--target', profile]);
    expectCalm(ws, r, 1);
    const s = expectReport(r, 'failed');
    expect(s.steps[1]).toMatchObject({ name: 'Read the gateway status', status: 'failed', exit_code: 1, error_type: 'UnexpectedBodyError' });
    expect(s.steps[1].error).toMatch(message);
    expect(s.steps[1].error).not.toMatch(/Cannot read properties/);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);
});
