// Property: for any key the profile may hold (8+ characters of printable ASCII, regex
// metacharacters, quotes, backslash, < & >, non-ASCII and astral characters) and any encoding a
// server or a library produces (support/secret-scan.ts names them; here each wraps the key in a
// random window before encoding, as a JSON body or a Basic header would), no sink the runner writes
// to holds the key in any encoding: the CLI's stdout/stderr stream, an attachment transcript, every
// report file after the scrub (which must still parse as JSON where it was JSON), the run history,
// the webhook message and a Jira error. fast-check shrinks a failure to the smallest key and window.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { transcript } from '../../helpers/evidence.js';
import { appendRunHistory, historyFile } from '../../helpers/history.js';
import { buildWebhookPayload } from '../../helpers/notify/webhook.js';
import { clearSecrets, redactStream, registerSecret } from '../../helpers/redact.js';
import { listFiles } from '../../helpers/report/manifest.js';
import { writeJunit } from '../../helpers/report/junit.js';
import { scrubSecrets } from '../../helpers/report/secrets.js';
import { writeSummaries, type RunSummary } from '../../helpers/report/summary.js';
import { attachToJiraIssue } from '../../helpers/ticket/jira.js';
import { startServer, type TestServer } from '../deploy/http-fixture.js';
import { findSecret } from './support/secret-scan.js';

const PRINTABLE = Array.from({ length: 0x7e - 0x20 + 1 }, (_, i) => String.fromCharCode(0x20 + i));
const KEY_CHARS = [...PRINTABLE, 'é', 'ß', '€', '中', '😀'];
const key = fc
  .array(fc.constantFrom(...KEY_CHARS), { minLength: 8, maxLength: 40 })
  .map((cs) => cs.join(''))
  .filter((k) => k.length >= 8 && k.trim() === k);
/** What surrounds the key in the server's value (a JSON body, `user:`…). */
const context = fc.string({ maxLength: 24 });

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const goEscape = (s: string) => s.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
const queryEscape = (s: string) =>
  [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
const html = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** How a server echoes the key inside a larger value: [name, (key, before, after) => text]. */
const ENCODINGS: [string, (k: string, a: string, z: string) => string][] = [
  ['raw', (k, a, z) => `${a}${k}${z}`],
  ['json', (k, a, z) => JSON.stringify({ a, key: k, z })],
  ['go json', (k, a, z) => goEscape(JSON.stringify({ a, key: k, z }))],
  ['json in json', (k, a, z) => JSON.stringify(JSON.stringify({ a, key: k, z }))],
  ['\\u escapes', (k, a, z) => `${a}${Array.from({ length: k.length }, (_, i) => `\\u${k.charCodeAt(i).toString(16).padStart(4, '0')}`).join('')}${z}`],
  ['percent', (k, a, z) => `q=${encodeURIComponent(a + k + z)}`],
  ['percent lower', (k, a, z) => `q=${queryEscape(a + k + z).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())}`],
  ['hex', (k, a, z) => Buffer.from(a + k + z, 'utf8').toString('hex')],
  ['hex upper', (k, a, z) => Buffer.from(a + k + z, 'utf8').toString('hex').toUpperCase()],
  ['html', (k, a, z) => `<p>${html(a + k + z)}</p>`],
  ['base64 window', (k, a, z) => b64(a + k + z)],
  ['base64url window', (k, a, z) => Buffer.from(a + k + z, 'utf8').toString('base64url')],
  ['Basic auth', (k, a) => `Authorization: Basic ${b64(`${a || 'ops'}:${k}`)}`],
  ['base64 of go json', (k, a, z) => b64(goEscape(JSON.stringify({ auth: { 'x-api-key': k }, a, z })))],
  ['base64 in a query', (k, a, z) => `?token=${encodeURIComponent(b64(a + k + z))}`],
  ['base64 of base64', (k, a, z) => b64(`${a}${b64(k)}${z}`)],
];

let work: string;
let jira: TestServer;
let jiraBody = '';

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'secrets-property-'));
  jira = await startServer((_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(jiraBody);
  });
});

afterEach(() => clearSecrets());

afterAll(async () => {
  await jira?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

function summaryWith(text: string): RunSummary {
  return {
    run_id: '20260101-000000-prop-0000',
    runbook: 'prop',
    title: 'property',
    target: 'prop-target',
    target_source: 'prop.yaml',
    gateway: 'http://127.0.0.1:1',
    ticket: null,
    status: 'failed',
    exit_code: 1,
    start: '2026-01-01T00:00:00.000Z',
    end: '2026-01-01T00:00:01.000Z',
    duration_ms: 1000,
    counts: { total: 1, passed: 0, failed: 1, skipped: 0 },
    steps: [{ scenario: 'prop', file: 'prop.ts', name: 'echo', status: 'failed', duration_ms: 1, error: `GET /x → 500 ${JSON.stringify(text)}`, error_type: 'GatewayError', exit_code: 1 }],
    findings: [{ id: 'prop.f', severity: 'warn', title: 'echo', detail: text }],
    teardown: { removed_by_steps: [], removed_by_runner: [], left_behind: [{ label: 'thing', error: text }], earlier_runs: [] },
    errors: [text],
    environment: {},
    options: {},
    sections: [{ scenario: 'prop', step: 'echo', markdown: text }],
  };
}

/** Each sink: what ends up written when the text reaches it. */
const SINKS: [string, (text: string, n: number) => Promise<string[]>][] = [
  [
    'stdout/stderr',
    async (text, n) => {
      const written: string[] = [];
      const stream = new Writable({ write: (c, _e, cb) => (written.push(Buffer.from(c).toString('utf8')), cb()) });
      redactStream(stream);
      stream.write(n % 2 ? text : Buffer.from(text, 'utf8'));
      return written;
    },
  ],
  ['attachment transcript', async (text) => [transcript({ method: 'GET', url: 'http://gw/x', requestHeaders: {}, status: 500, responseHeaders: {}, responseBody: text, durationMs: 1 })]],
  [
    'report files',
    async (text, n) => {
      const runDir = join(work, `run-${n}`);
      mkdirSync(join(runDir, 'allure-results'), { recursive: true });
      mkdirSync(join(runDir, 'artifacts'), { recursive: true });
      const s = summaryWith(text);
      await writeSummaries(runDir, s);
      await writeJunit(runDir, s);
      writeFileSync(join(runDir, 'allure-results', 'x-result.json'), JSON.stringify({ name: 'echo', statusDetails: { message: text } }));
      writeFileSync(join(runDir, 'allure-results', 'x-attachment.txt'), text);
      writeFileSync(join(runDir, 'artifacts', 'body.txt'), text);
      writeFileSync(join(runDir, 'findings.jsonl'), JSON.stringify(s.findings[0]) + '\n');
      scrubSecrets(runDir);
      const files = listFiles(runDir);
      for (const f of files.filter((x) => /\.json$/.test(x))) expect(() => JSON.parse(readFileSync(f, 'utf8')), `${f} still parses`).not.toThrow();
      JSON.parse(readFileSync(join(runDir, 'findings.jsonl'), 'utf8'));
      const out = files.map((f) => readFileSync(f, 'utf8'));
      rmSync(runDir, { recursive: true, force: true });
      return out;
    },
  ],
  [
    'history',
    async (text, n) => {
      const reports = join(work, `reports-${n}`);
      await appendRunHistory(reports, summaryWith(text));
      const line = readFileSync(historyFile(reports, 'prop-target'), 'utf8');
      JSON.parse(line);
      rmSync(reports, { recursive: true, force: true });
      return [line];
    },
  ],
  ['webhook', async (text) => [buildWebhookPayload(summaryWith(text), `/reports/${text}`).text]],
  [
    'jira error',
    async (text, n) => {
      jiraBody = text;
      const archive = join(work, `bundle-${n}.tar.gz`);
      writeFileSync(archive, 'not really a bundle');
      try {
        await attachToJiraIssue({ issueKey: 'OPS-1', archive, env: { JIRA_BASE_URL: jira.url, JIRA_TOKEN: 'jira-token-for-the-property-test' }, timeoutMs: 5000 });
        return ['(no error)'];
      } catch (err) {
        return [(err as Error).message];
      } finally {
        rmSync(archive, { force: true });
      }
    },
  ],
];

describe('no sink holds a registered secret in any encoding (property)', () => {
  it('for generated keys, encodings, windows and sinks', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(key, fc.constantFrom(...ENCODINGS), context, context, fc.constantFrom(...SINKS), async (k, [, encode], before, after, [, sink]) => {
        clearSecrets();
        registerSecret(k);
        const leaked = `upstream said: ${encode(k, before, after)} (end)`;
        // The generated text must really hold the key, or the property proves nothing.
        expect(findSecret(leaked, k), 'the scan finds the key before redaction').toBeDefined();
        for (const written of await sink(leaked, n++)) {
          expect(findSecret(written, k), `key ${JSON.stringify(k)} in ${JSON.stringify(written.slice(0, 400))}`).toBeUndefined();
        }
      }),
      { numRuns: 400 },
    );
  }, 120_000);
});
