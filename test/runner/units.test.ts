// Pure pieces of the runner: journal bookkeeping, manifest verification, analytics stripping,
// catalog validation and run ids.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRunbook } from '../../helpers/catalog.js';
import { stripAnalytics } from '../../helpers/report/allure.js';
import { renderJunit } from '../../helpers/report/junit.js';
import type { RunSummary } from '../../helpers/report/summary.js';
import { runbookNameIn } from '../../cli/runbook.js';
import { verifyManifest, writeManifest } from '../../helpers/report/manifest.js';
import { newRunId, runPrefix } from '../../helpers/report/run-contract.js';
import { TeardownRegistry, pendingFromJournal, replayJournal, type TeardownExecutor } from '../../helpers/teardown.js';

describe('teardown journal', () => {
  it('lists what is still pending and replays it newest first', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-'));
    try {
      const path = join(dir, 'run.jsonl');
      const reg = new TeardownRegistry('a.test.ts', path);
      reg.add('one', { kind: 'http', method: 'DELETE', path: '/x/1' });
      reg.add('two', { kind: 'redis', command: ['DEL', 'k'] });
      reg.add('three', { kind: 'http', method: 'DELETE', path: '/x/3' });
      reg.forget('two');
      const seen: string[] = [];
      const exec: TeardownExecutor = {
        http: async (a) => {
          seen.push(a.path);
          if (a.path === '/x/1') throw new Error('500 from gateway');
        },
        redis: async () => {},
      };
      const outcome = await replayJournal(path, exec);
      expect(seen).toEqual(['/x/3', '/x/1']);
      expect(outcome.removed).toEqual(['three (DELETE /x/3)']);
      expect(outcome.leftovers).toEqual([{ label: 'one (DELETE /x/1)', error: '500 from gateway' }]);
      const { readFileSync } = await import('node:fs');
      expect(pendingFromJournal(readFileSync(path, 'utf8')).map((p) => p.label)).toEqual(['one']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ignores a torn last line', () => {
    const line = JSON.stringify({ op: 'add', scope: 's', label: 'a', action: { kind: 'redis', command: ['DEL', 'a'] }, at: '' });
    expect(pendingFromJournal(`${line}\n{"op":"do`).map((p) => p.label)).toEqual(['a']);
  });
});

describe('report pieces', () => {
  it('manifest verification notices changed and unlisted files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'manifest-'));
    try {
      writeFileSync(join(dir, 'a.txt'), 'a');
      await writeManifest(dir);
      expect(verifyManifest(dir)).toEqual([]);
      writeFileSync(join(dir, 'a.txt'), 'b');
      writeFileSync(join(dir, 'new.txt'), 'n');
      expect(verifyManifest(dir)).toEqual(['changed: a.txt', 'not in manifest: new.txt']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('strips the Allure analytics tag and refuses other network references', () => {
    const html =
      '<html><body><div id="app"></div>\n<script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>\n' +
      "<script>\n window.dataLayer = window.dataLayer || [];\n function gtag(){dataLayer.push(arguments);}\n gtag('js', new Date());\n</script>\n" +
      '<script>window.allure = {}</script></body></html>';
    const out = stripAnalytics(html).toString();
    expect(out).not.toMatch(/googletagmanager|gtag/);
    expect(out).toContain('window.allure = {}');
    expect(() => stripAnalytics('<script src="https://cdn.example.com/x.js"></script>')).toThrow(/network/);
  });

  it('leaves data: URIs byte for byte and edits the markup around them, whatever its characters', () => {
    const app = `"data:text/javascript;base64,${Buffer.from('gtag("x"); fetch("https://evil.example/")').toString('base64')}"`;
    const html = `<p>é中😀</p><script src=${app}></script><script>gtag('js')</script><a href='data:text/plain,it"s'>x</a><b>'data:a"</b>`;
    const out = stripAnalytics(Buffer.from(html)).toString();
    expect(out).toBe(`<p>é中😀</p><script src=${app}></script><a href='data:text/plain,it"s'>x</a><b>'data:a"</b>`);
    // A reference to the network is found in markup next to a data: URI, and one written like a
    // data: URI but closed by the other quote is markup, not a URI.
    expect(() => stripAnalytics(`<img src="data:image/png;base64,AA"><img src="https://cdn.example/x.png">`)).toThrow(/network/);
    expect(() => stripAnalytics(`<x y='data:a"><script src="https://cdn.example/x.js"></script>'>`)).toThrow(/network/);
    // HTML holding a NUL (the placeholders' delimiter) is edited whole.
    expect(stripAnalytics('a\u0000b<script>gtag(1)</script>').toString()).toBe('a\u0000b');
  });

  it('run ids sort by time and name the runbook; prefixes are short and DNS-safe', () => {
    const id = newRunId('smoke', new Date(2026, 10, 27, 11, 30, 0));
    expect(id).toMatch(/^20261127-113000-smoke-[0-9a-f]{4}$/);
    expect(runPrefix(id)).toMatch(/^rb-113000[0-9a-f]{4}$/);
  });
});

describe('catalog', () => {
  it('names the file and field of a bad front matter value', () => {
    const dir = mkdtempSync(join(tmpdir(), 'catalog-'));
    try {
      const file = join(dir, 'x.md');
      writeFileSync(file, '---\ntitle: X\nsummary: s\nscenarios: [test/fixtures/scenarios/pass]\nneeds: [gateway, toaster]\n---\n');
      expect(() => parseRunbook(file)).toThrow(/x\.md: field 'needs' must only contain gateway, bus, redis, kube/);
      writeFileSync(file, '---\ntitle: X\nsummary: s\nscenarios: [test/fixtures/scenarios/pass]\ntime_budget: soon\n---\n');
      expect(() => parseRunbook(file)).toThrow(/field 'time_budget'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('runbook options', () => {
  const write = (dir: string, options: string) => {
    const file = join(dir, 'x.md');
    writeFileSync(file, `---\ntitle: X\nsummary: s\nscenarios: [test/fixtures/scenarios/pass]\noptions:\n${options}\n---\n`);
    return file;
  };

  it('parses declared options and rejects malformed ones naming the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'catalog-'));
    try {
      const ok = write(dir, '  - {name: in-place, type: boolean, description: restore in place}\n  - {name: archive, type: string, description: where}');
      expect(parseRunbook(ok).options).toEqual([
        { name: 'in-place', type: 'boolean', description: 'restore in place' },
        { name: 'archive', type: 'string', description: 'where' },
      ]);
      expect(() => parseRunbook(write(dir, '  - {name: target, type: string, description: d}'))).toThrow(/x\.md: field 'options' .*'target' is one of the runner's own options/);
      expect(() => parseRunbook(write(dir, '  - {name: n, type: number, description: d}'))).toThrow(/options\[0\]\.type must be boolean or string/);
      expect(() => parseRunbook(write(dir, '  - {name: In_Place, type: boolean, description: d}'))).toThrow(/kebab-case/);
      expect(() => parseRunbook(write(dir, '  - {name: a, type: boolean, description: d}\n  - {name: a, type: string, description: d}'))).toThrow(/declared twice/);
      expect(() => parseRunbook(write(dir, '  - {name: a, type: boolean, description: d, default: x}'))).toThrow(/unknown field 'default'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finds the runbook name on a command line', () => {
    expect(runbookNameIn(['--target', 'compose', 'backup-restore', '--in-place'])).toBe('backup-restore');
    expect(runbookNameIn(['--plan', 'smoke'])).toBe('smoke');
    expect(runbookNameIn(['--fail-on-new'])).toBeUndefined();
  });
});

describe('junit.xml', () => {
  it('escapes markup and control characters and groups steps by scenario file', () => {
    const s = {
      runbook: 'r', target: 't<x>', start: '2026-01-01T00:00:00.000Z', errors: ['boom & bust'],
      steps: [
        { scenario: 'A "one"', file: 'a.ts', name: 'ok', status: 'passed', duration_ms: 10 },
        { scenario: 'A "one"', file: 'a.ts', name: 'bad <step>', status: 'failed', duration_ms: 5, error: 'expected 1\n\x1b[31mgot\x00 2', error_type: 'AssertionError' },
        { scenario: 'B', file: 'b.ts', name: 'later', status: 'skipped', duration_ms: 0, skip_reason: "skipped because 'x' failed" },
      ],
    } as unknown as RunSummary;
    const xml = renderJunit(s);
    expect(xml).toContain('<testsuites name="runbook r on t&lt;x&gt;" tests="4" failures="1" errors="1" skipped="1"');
    expect(xml).toContain('<testsuite name="A &quot;one&quot;" file="a.ts" tests="2" failures="1"');
    expect(xml).toContain('<failure message="expected 1" type="AssertionError">expected 1\ngot 2</failure>');
    expect(xml).toContain('<skipped message="skipped because \'x\' failed"/>');
    expect(xml).toContain('<error message="boom &amp; bust">');
  });
});
