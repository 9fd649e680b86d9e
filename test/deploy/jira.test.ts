import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, EXIT, UsageError } from '../../helpers/errors.js';
import { attachToJiraIssue } from '../../helpers/ticket/jira.js';
import { parseMultipart, startServer, type TestServer } from './http-fixture.js';

const TOKEN = 'jira-token-s3cr3t-value';
let server: TestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function bundleFile(): Promise<{ path: string; bytes: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'jira-'));
  const path = join(dir, 'CHG-1-20250301T021500Z-smoke-staging.tar.gz');
  const bytes = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x2d, 0x2d, 0x42]); // incl. CRLF and "--"
  await writeFile(path, bytes);
  return { path, bytes };
}

describe('Jira attachment upload', () => {
  it('posts the bundle as multipart field "file" with the XSRF header and a Bearer token', async () => {
    server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify([{ id: '10001', filename: 'CHG-1-20250301T021500Z-smoke-staging.tar.gz', size: 11 }]));
    });
    const { path, bytes } = await bundleFile();
    const attachments = await attachToJiraIssue({
      issueKey: 'OPS-42',
      archive: path,
      env: { JIRA_BASE_URL: `${server.url}/jira/`, JIRA_TOKEN: TOKEN },
    });
    expect(attachments).toEqual([{ id: '10001', filename: 'CHG-1-20250301T021500Z-smoke-staging.tar.gz', size: 11 }]);

    const [req] = server.requests;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/jira/rest/api/2/issue/OPS-42/attachments');
    expect(req.headers['x-atlassian-token']).toBe('no-check');
    expect(req.headers.authorization).toBe(`Bearer ${TOKEN}`);
    const parts = parseMultipart(req.body, String(req.headers['content-type']));
    expect(parts).toHaveLength(1);
    expect(parts[0].name).toBe('file');
    expect(parts[0].filename).toBe('CHG-1-20250301T021500Z-smoke-staging.tar.gz');
    expect(parts[0].data).toEqual(bytes);
  });

  it('uses Basic auth when JIRA_USER is set (Jira Cloud API tokens)', async () => {
    server = await startServer((_req, res) => res.writeHead(200).end('[]'));
    const { path } = await bundleFile();
    await attachToJiraIssue({
      issueKey: 'OPS-42',
      archive: path,
      env: { JIRA_BASE_URL: server.url, JIRA_TOKEN: TOKEN, JIRA_USER: 'oncall@example.com' },
    });
    const expected = Buffer.from(`oncall@example.com:${TOKEN}`).toString('base64');
    expect(server.requests[0].headers.authorization).toBe(`Basic ${expected}`);
  });

  it('turns a rejection into one line without the token, even when Jira echoes it', async () => {
    server = await startServer((req, res) => {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end(`forbidden for\n${String(req.headers.authorization)}\n`);
    });
    const { path } = await bundleFile();
    const err = (await attachToJiraIssue({
      issueKey: 'OPS-42',
      archive: path,
      env: { JIRA_BASE_URL: server.url, JIRA_TOKEN: TOKEN },
    }).catch((e: unknown) => e)) as Error & { exitCode: number };
    expect(err.message).toMatch(/HTTP 403/);
    expect(err.message).not.toContain('\n');
    expect(err.message).not.toContain(TOKEN);
    expect(err.exitCode).toBe(EXIT.UNREACHABLE);
  });

  it('gives up after the deadline when Jira never answers', async () => {
    server = await startServer(() => {
      /* never answer */
    });
    const { path } = await bundleFile();
    await expect(
      attachToJiraIssue({ issueKey: 'OPS-42', archive: path, timeoutMs: 300, env: { JIRA_BASE_URL: server.url, JIRA_TOKEN: TOKEN } }),
    ).rejects.toThrow(/no answer within 300 ms/);
  });

  it('reads connection settings from the environment only and checks them first', async () => {
    const { path } = await bundleFile();
    await expect(attachToJiraIssue({ issueKey: 'OPS-42', archive: path, env: {} })).rejects.toBeInstanceOf(ConfigError);
    await expect(
      attachToJiraIssue({ issueKey: 'OPS-42', archive: path, env: { JIRA_BASE_URL: 'https://u:p@jira.example.com', JIRA_TOKEN: TOKEN } }),
    ).rejects.toThrow(/must not carry credentials/);
    await expect(
      attachToJiraIssue({ issueKey: 'not a key', archive: path, env: { JIRA_BASE_URL: 'https://jira.example.com', JIRA_TOKEN: TOKEN } }),
    ).rejects.toBeInstanceOf(UsageError);
  });
});
