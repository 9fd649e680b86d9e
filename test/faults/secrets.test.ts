// Secrets in every encoding (issue 19, rows 1-3). A gateway echoes the caller's API key in error
// bodies the way servers and libraries do: base64 of a larger value (a JSON blob, `user:key` Basic
// auth, base64url), Go's HTML-safe JSON escapes, percent-encoding in either case, hex, \u escapes,
// HTML entities; /api/v1/status answers 500 with base64 JSON holding the key. Every sink is then
// scanned for the key in every encoding (support/secret-scan.ts): stdout, stderr, every report file
// (summary.json/md, junit.xml, allure-results/*, index.html, artifacts, findings, sections), the
// run history, the runner state, the webhook payload, and a Jira error. A key too short to redact
// safely is refused when the profile is loaded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, type TestServer } from '../deploy/http-fixture.js';
import { ECHOES, startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectOneLine, expectReport } from './support/checks.js';
import { SECRET, Workspace, gatewayProfile, reportDir, startWebhookReceiver, type CliResult } from './support/harness.js';
import { findSecret } from './support/secret-scan.js';

/** Regex metacharacters, a backslash and the three characters Go's JSON escapes. */
const HOSTILE_KEY = 'Zk3y.*+?^$(x)[y]|\\<&>!~';
const JIRA_TOKEN = 'jira-TOKEN-5e1f-77aa-c0de';

let gw: FaultGateway;
let webhook: TestServer;
const workspaces: Workspace[] = [];

beforeAll(async () => {
  gw = await startFaultGateway();
  for (const encoding of Object.keys(ECHOES)) gw.setFault(`echo-${encoding}`, 'echo');
  gw.statusAnswer = { status: 500, body: ECHOES.b64json! };
  webhook = await startWebhookReceiver();
});

afterAll(async () => {
  await gw?.close();
  await webhook?.close();
  for (const ws of workspaces) rmSync(ws.dir, { recursive: true, force: true });
});

async function runEcho(key: string): Promise<{ ws: Workspace; r: CliResult; payloads: string[] }> {
  const ws = new Workspace(() => gw.url, key);
  workspaces.push(ws);
  const profile = ws.profile('fault', gatewayProfile());
  const before = webhook.requests.length;
  const r = await ws.cli(['echo', '--target', profile, '--ticket', 'CHG-19'], { env: { RUNBOOK_WEBHOOK_URL: `${webhook.url}/hook` } });
  return { ws, r, payloads: webhook.requests.slice(before).map((q) => q.body.toString('utf8')) };
}

function stepError(s: Record<string, any>, name: string): string {
  const step = s.steps.find((st: any) => st.name === name);
  expect(step, `step ${name}`).toBeDefined();
  return String(step.error ?? '');
}

/** Every echo step failed with a 500 whose body is in the report, redacted but still readable. */
function expectEchoSteps(s: Record<string, any>): void {
  for (const encoding of Object.keys(ECHOES)) expect(stepError(s, `Echo '${encoding}'`), encoding).toMatch(/→ 500 /);
  expect(stepError(s, 'Gateway status')).toMatch(/500/);
}

describe('secrets in every encoding', () => {
  it('row 1: base64 of a larger value holding the key (JSON blob, Basic auth, base64url, a 500 on /api/v1/status) is redacted in every sink, and the evidence stays readable', async () => {
    const { ws, r, payloads } = await runEcho(SECRET);
    expect(payloads, 'one webhook message').toHaveLength(1);
    expectCalm(ws, r, 1);
    expect(ws.secretHits(r, { webhook: payloads.join('\n') }), 'sinks holding the key in some encoding').toEqual([]);
    const s = expectReport(r, 'failed');
    expectEchoSteps(s);
    // Re-encoded from the redacted text: a reader can still decode what the server said.
    const b64 = /→ 500 "([A-Za-z0-9+/]+={0,2})"/.exec(stepError(s, "Echo 'b64json'"))![1]!;
    expect(Buffer.from(b64, 'base64').toString()).toBe('{"auth":{"x-api-key":"***"}}');
    const basic = /Basic ([A-Za-z0-9+/]+={0,2})/.exec(stepError(s, "Echo 'basic'"))![1]!;
    expect(Buffer.from(basic, 'base64').toString()).toBe('ops:***');
    expect(existsSync(join(reportDir(r), 'index.html'))).toBe(true);
    expect(readdirSync(join(ws.reports, '.history')), 'the run history was written (and scanned)').toHaveLength(1);

    // Jira: a server that echoes the token (raw, Go-escaped JSON, the Basic header) in its refusal.
    const jira = await startServer((req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      const echoed = JSON.stringify({ errorMessages: [`token ${JIRA_TOKEN} <&> rejected`], header: req.headers.authorization }).replace(/</g, '\\u003c').replace(/&/g, '\\u0026');
      res.end(echoed);
    });
    try {
      const up = await ws.cli(['bundle', reportDir(r), '--jira', 'OPS-19'], {
        env: { JIRA_BASE_URL: jira.url, JIRA_USER: 'ops@example.com', JIRA_TOKEN },
        deadlineMs: 60_000,
      });
      expect(jira.requests, 'the upload reached the fake Jira').toHaveLength(1);
      expect(up.code, up.stderr).toBe(3);
      expectOneLine(up, /^runbook: Jira rejected the attachment for OPS-19: HTTP 403 /);
      expect(findSecret(up.stdout + up.stderr, JIRA_TOKEN), 'the Jira token in the output').toBeUndefined();
    } finally {
      await jira.close();
    }
  }, 240_000);

  it("row 2: a key full of regex metacharacters and < & > is redacted in Go's JSON escapes, percent-encoding in either case, hex, \\u escapes and HTML entities", async () => {
    const { ws, r, payloads } = await runEcho(HOSTILE_KEY);
    expect(payloads).toHaveLength(1);
    expectCalm(ws, r, 1);
    expect(ws.secretHits(r, { webhook: payloads.join('\n') }), 'sinks holding the key in some encoding').toEqual([]);
    const s = expectReport(r, 'failed');
    expectEchoSteps(s);
    expect(stepError(s, "Echo 'gojson'")).toMatch(/invalid key \\+"\*\*\*\\+"/);
    expect(stepError(s, "Echo 'pctlower'")).toContain('key=*** failed');
    expect(stepError(s, "Echo 'hex'")).toContain('key bytes ***');
    expect(r.stdout).toContain('key bytes ***');
  }, 240_000);

  it('row 3: a key too short to redact safely is refused when the profile is loaded: exit 2, one line, nothing contacted', async () => {
    const ws = new Workspace(() => gw.url);
    workspaces.push(ws);
    const profile = ws.profile('fault', gatewayProfile());
    const before = gw.log.length;
    const r = await ws.cli(['echo', '--target', profile], { env: { FAULT_API_KEY: 'x3k' } });
    expect(r.hung).toBe(false);
    expect(r.code, r.stderr).toBe(2);
    expectOneLine(r, /^runbook: .*fault\.yaml: gateway\.api_key_env: the secret in FAULT_API_KEY is 3 characters; secrets shorter than 8 cannot be redacted safely from output and reports \(use a longer one\)$/);
    expect(r.stderr + r.stdout).not.toContain('x3k');
    expect(gw.log.length, 'requests to the target').toBe(before);
    expect(existsSync(ws.reports) ? readdirSync(ws.reports) : []).toEqual([]);
  }, 60_000);
});
