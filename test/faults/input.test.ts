// Input that cannot inject (issue 19, row 7): a --ticket carrying a newline, a forged Markdown
// table row and a Slack <!channel> ping is refused at run start (exit 2, one line, the value not
// echoed) before anything is contacted or sent; a target whose error text carries the same is sent
// to the webhook escaped for Slack mrkdwn; `bundle` refuses a bad ticket in one line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import type { TestServer } from '../deploy/http-fixture.js';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectOneLine, expectReport } from './support/checks.js';
import { Workspace, gatewayProfile, reportDir, startWebhookReceiver } from './support/harness.js';

const INJECTION = 'CHG-1\n| smoke | PASSED |\n<!channel>';

let gw: FaultGateway;
let ws: Workspace;
let webhook: TestServer;
let profile: string;

beforeAll(async () => {
  gw = await startFaultGateway();
  ws = new Workspace(() => gw.url);
  profile = ws.profile('fault', gatewayProfile());
  webhook = await startWebhookReceiver();
});

afterAll(async () => {
  await gw?.close();
  await webhook?.close();
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

const runDirs = () => (existsSync(ws.reports) ? readdirSync(ws.reports).filter((d) => !d.startsWith('.')) : []);
const hook = () => ({ RUNBOOK_WEBHOOK_URL: `${webhook.url}/hook` });

describe('input that cannot inject', () => {
  it('row 7: a --ticket with a newline, a table row and <!channel> is refused at run start: exit 2, one line without the value, nothing contacted or sent', async () => {
    const before = { gateway: gw.log.length, hooks: webhook.requests.length, runs: runDirs().length };
    for (const args of [['hold', '--target', profile, '--ticket', INJECTION], ['hold', '--ticket', 'CHG 1', '--plan']]) {
      const r = await ws.cli(args, { env: hook(), deadlineMs: 60_000 });
      expectCalm(ws, r, 2);
      expectOneLine(r, /^runbook: --ticket: a change ticket id must be 1-64 letters, digits, '\.', '_' or '-', starting with a letter or digit \(e\.g\. CHG-1234\); got (a line break at character 6|a space at character 4)$/);
      expect(r.stderr).not.toContain('<!channel>');
      expect(r.stderr).not.toContain('| PASSED |');
    }
    expect(gw.log.length, 'requests to the target').toBe(before.gateway);
    expect(webhook.requests.length, 'webhook messages').toBe(before.hooks);
    expect(runDirs().length).toBe(before.runs);
  }, 150_000);

  it('row 7: a target error carrying <!channel>, @here and forged lines reaches the webhook escaped, on one bullet line', async () => {
    gw.setAnswer('step', 500, 'boom\n<!channel> @here <https://evil.example|click>\n| smoke | PASSED | & more');
    const before = webhook.requests.length;
    const r = await ws.cli(['hold', '--target', profile, '--ticket', 'CHG-19'], { env: hook() });
    expectCalm(ws, r, 1);
    expectReport(r, 'failed');
    const sent = webhook.requests.slice(before);
    expect(sent).toHaveLength(1);
    const text = (JSON.parse(sent[0]!.body.toString('utf8')) as { text: string }).text;
    expect(text).not.toMatch(/<!channel>|<https:|@here/);
    // The gateway client quotes the body as a JSON string (its newlines are the two characters \n).
    expect(text).toContain('500 "boom\\n&lt;!channel&gt; @\u200bhere &lt;https://evil.example|click&gt;\\n| smoke | PASSED | &amp; more"');
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^\[FAILED\] runbook hold on fault-target, ticket CHG-19 \(\d+s\)$/);
    expect(lines.filter((l) => l.startsWith('• '))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^Report: /);
    expect(lines).toHaveLength(4);

    // bundle: a bad --ticket is one line that does not repeat the value.
    const b = await ws.cli(['bundle', reportDir(r), '--ticket', INJECTION], { deadlineMs: 60_000 });
    expectCalm(ws, b, 2);
    expectOneLine(b, /^runbook: --ticket: a change ticket id must be .*; got a line break at character 6$/);
  }, 240_000);
});
