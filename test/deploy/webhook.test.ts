import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { notifyCommand } from '../../cli/commands/notify.js';
import { buildWebhookPayload, notifyRun } from '../../helpers/notify/webhook.js';
import { startServer, type TestServer } from './http-fixture.js';
import { makeSummary } from './report-fixture.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const failed = makeSummary({
  status: 'failed',
  ticket: 'CHG-7',
  steps: [
    { name: 'gateway is healthy', status: 'passed', duration_ms: 5, error: null },
    { name: 'job reaches succeeded', status: 'failed', duration_ms: 30_000, error: 'deadline 30s passed;\nlast status "running"' },
    { name: 'approval recorded', status: 'skipped', duration_ms: 0, error: null },
  ],
});

describe('webhook notification', () => {
  it('sends one Slack-compatible message with status, failing steps and the report location', async () => {
    server = await startServer((_req, res) => res.writeHead(200).end('ok'));
    const result = await notifyRun(failed, { url: `${server.url}/hooks/T0/B0/secret`, reportLocation: 'reports/run-1/index.html' });
    expect(result).toEqual({ sent: true, skipped: false, attempts: 1, status: 200 });
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0].headers['content-type']).toBe('application/json');
    const payload = JSON.parse(server.requests[0].body.toString('utf8')) as { text: string };
    expect(payload).toEqual(buildWebhookPayload(failed, 'reports/run-1/index.html'));
    expect(payload.text).toContain('[FAILED] runbook smoke on staging, ticket CHG-7');
    expect(payload.text).toContain('• job reaches succeeded: deadline 30s passed; last status "running"');
    expect(payload.text).not.toContain('approval recorded');
    expect(payload.text).toContain('Report: reports/run-1/index.html');
  });

  it('retries a 500 and stops at the first success', async () => {
    server = await startServer((_req, res, index) => res.writeHead(index === 0 ? 500 : 200).end());
    const result = await notifyRun(failed, { url: server.url, reportLocation: 'x', backoffMs: 0 });
    expect(result).toMatchObject({ sent: true, attempts: 2, status: 200 });
    expect(server.requests).toHaveLength(2);
  });

  it('does not retry a 4xx, which retrying cannot fix', async () => {
    server = await startServer((_req, res) => res.writeHead(404).end());
    const result = await notifyRun(failed, { url: server.url, reportLocation: 'x', backoffMs: 0 });
    expect(result).toMatchObject({ sent: false, attempts: 1, status: 404 });
  });

  it('is bounded when the webhook never answers, and never leaks the URL path', async () => {
    server = await startServer(() => {
      /* never answer */
    });
    const result = await notifyRun(failed, {
      url: `${server.url}/services/T0/B0/very-secret-path`,
      reportLocation: 'x',
      timeoutMs: 200,
      retries: 1,
      backoffMs: 0,
    });
    expect(result.sent).toBe(false);
    expect(result.attempts).toBe(2);
    expect(result.error).toMatch(/did not answer within 200 ms after 2 attempt/);
    expect(result.error).not.toContain('very-secret-path');
    expect(server.requests).toHaveLength(2);
  });

  it('does nothing without a URL and never throws, even on a malformed summary', async () => {
    expect(await notifyRun(failed, { env: {}, reportLocation: 'x' })).toEqual({ sent: false, skipped: true, attempts: 0 });
    const broken = { runbook: 'smoke' } as unknown as typeof failed;
    const result = await notifyRun(broken, { url: 'http://127.0.0.1:9/', reportLocation: 'x', retries: 0 });
    expect(result.sent).toBe(false);
    expect(result.error).toBeTruthy();
  });

  it('notify command reads summary.json from the report folder', async () => {
    server = await startServer((_req, res) => res.writeHead(204).end());
    const dir = join(await mkdtemp(join(tmpdir(), 'notify-')), 'run-9');
    await mkdir(dir);
    await writeFile(join(dir, 'summary.json'), JSON.stringify(failed));
    const lines: string[] = [];
    const result = await notifyCommand(dir, {
      env: { RUNBOOK_WEBHOOK_URL: server.url, RUNBOOK_REPORT_URL: 'https://ci.example.com/run/9' },
      log: (l) => lines.push(l),
    });
    expect(result.sent).toBe(true);
    expect(JSON.parse(server.requests[0].body.toString()).text).toContain('Report: https://ci.example.com/run/9');
    expect(lines).toEqual(['notify: sent (HTTP 204, 1 attempt(s))']);
  });
});
