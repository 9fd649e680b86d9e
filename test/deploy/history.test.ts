import { appendFile, mkdir, mkdtemp, open, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allureHistory, appendRunHistory, historyFile, linesFromEnd, newFailures, previousRun, readRunHistory, type Summary } from '../../helpers/history.js';
import type { RunSummary } from '../../helpers/report/summary.js';
import { makeSummary } from './report-fixture.js';

const step = (name: string, status: string) => ({ name, status, duration_ms: 1, error: status === 'passed' ? null : 'boom' });

describe('run history', () => {
  it('appends one line per run under reports/.history/<target>.runs.jsonl', async () => {
    const reports = await mkdtemp(join(tmpdir(), 'history-'));
    const file = await appendRunHistory(reports, makeSummary({ target: 'prod/eu' }));
    await appendRunHistory(reports, makeSummary({ target: 'prod/eu', status: 'failed' }));
    expect(file).toBe(join(reports, '.history', 'prod_eu.runs.jsonl'));
    expect(historyFile(reports, '../x')).toBe(join(reports, '.history', '__x.runs.jsonl'));
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]).status).toBe('failed');
  });

  it('keeps every line when runs append concurrently, and skips a torn last line', async () => {
    const reports = await mkdtemp(join(tmpdir(), 'history-'));
    await Promise.all(Array.from({ length: 20 }, (_, i) => appendRunHistory(reports, makeSummary({ start: `run-${i}` }))));
    await appendFile(historyFile(reports, 'staging'), '{"runbook":"smoke","tar'); // crash mid-write
    const runs = await readRunHistory(reports, 'staging');
    expect(runs).toHaveLength(20);
    expect(new Set(runs.map((r) => r.start)).size).toBe(20);
  });

  it('finds the previous run of the same runbook on the same target', async () => {
    const reports = await mkdtemp(join(tmpdir(), 'history-'));
    expect(await previousRun(reports, 'staging', 'smoke')).toBeUndefined();
    await appendRunHistory(reports, makeSummary({ start: 'a' }));
    await appendRunHistory(reports, makeSummary({ runbook: 'policy', start: 'b' }));
    await appendRunHistory(reports, makeSummary({ target: 'prod', start: 'c' }));
    expect((await previousRun(reports, 'staging', 'smoke'))?.start).toBe('a');
    expect((await previousRun(reports, 'staging', 'policy'))?.start).toBe('b');
  });
});

describe('reading the history from its end', () => {
  it('gives every line, last first, whatever the chunk size: lines across chunks, multi-byte characters, blank and unterminated lines', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'history-tail-'));
    const text = '{"a":1}\n\n{"b":"ünïcødé → ✓"}\n{"c":"' + 'x'.repeat(300) + '"}\n\n{"torn":';
    await writeFile(join(dir, 'f'), text);
    const expected = text.split('\n').filter((l) => l).reverse();
    for (const chunk of [1, 2, 3, 7, 64, 1024]) {
      const got: string[] = [];
      for await (const line of linesFromEnd(await open(join(dir, 'f'), 'r'), chunk)) got.push(line);
      expect(got, `chunk ${chunk}`).toEqual(expected);
    }
    // A line over the cap (a damaged file) is skipped, and the lines around it are still read.
    const long = '{"a":1}\n' + 'y'.repeat(100) + '\n{"b":2}\n' + 'z'.repeat(40) + '\n{"c":3}';
    await writeFile(join(dir, 'l'), long);
    for (const chunk of [1, 3, 16, 1024]) {
      const got: string[] = [];
      for await (const line of linesFromEnd(await open(join(dir, 'l'), 'r'), chunk, 50)) got.push(line);
      expect(got, `chunk ${chunk}`).toEqual(['{"c":3}', 'z'.repeat(40), '{"b":2}', '{"a":1}']);
    }
    const empty: string[] = [];
    await writeFile(join(dir, 'e'), '');
    for await (const line of linesFromEnd(await open(join(dir, 'e'), 'r'), 4)) empty.push(line);
    expect(empty).toEqual([]);
  });

  it("Allure's trend points are the last `limit` runs', oldest first, topped up from the legacy file; the baseline is the newest matching run", async () => {
    const reports = await mkdtemp(join(tmpdir(), 'history-tail-'));
    // More than one 64 KB chunk of history, with a torn last line.
    for (let i = 0; i < 300; i++) {
      await appendRunHistory(reports, { ...makeSummary({ start: `run-${i}`, runbook: i % 3 === 0 ? 'policy' : 'smoke' }), allure_history: { uuid: `p${i}` } } as Summary);
    }
    await appendFile(historyFile(reports, 'staging'), '{"runbook":"smoke","tar');
    const points = (await allureHistory(reports, 'staging', 50)) as { uuid: string }[];
    expect(points.map((p) => p.uuid)).toEqual(Array.from({ length: 50 }, (_, i) => `p${250 + i}`));
    expect((await previousRun(reports, 'staging', 'policy'))?.start).toBe('run-297');
    expect((await previousRun(reports, 'staging', 'smoke'))?.start).toBe('run-299');
    expect(await previousRun(reports, 'staging', 'dlq-retry')).toBeUndefined();

    // A target with two runs and Allure's older file: its newest points fill up to the limit.
    await mkdir(join(reports, '.history'), { recursive: true });
    await writeFile(join(reports, '.history', 'prod.jsonl'), ['{"uuid":"old-1"}', '{"uuid":"old-2"}', '{"uuid":"old-3"}', ''].join('\n'));
    for (const uuid of ['new-1', 'new-2']) await appendRunHistory(reports, { ...makeSummary({ target: 'prod' }), allure_history: { uuid } } as Summary);
    expect(((await allureHistory(reports, 'prod', 4)) as { uuid: string }[]).map((p) => p.uuid)).toEqual(['old-2', 'old-3', 'new-1', 'new-2']);
    expect(((await allureHistory(reports, 'prod', 2)) as { uuid: string }[]).map((p) => p.uuid)).toEqual(['new-1', 'new-2']);
    expect(await allureHistory(reports, 'nowhere', 50)).toEqual([]);
  });
});

describe('newFailures (--fail-on-new)', () => {
  const previous = makeSummary({
    steps: [step('a', 'passed'), step('b', 'failed'), step('c', 'passed'), step('d', 'skipped')],
  });

  it('lists only steps that passed last time and fail or break now', () => {
    const current = makeSummary({
      steps: [step('a', 'failed'), step('b', 'failed'), step('c', 'broken'), step('d', 'failed'), step('e', 'failed')],
    });
    expect(newFailures(previous, current)).toEqual(['a', 'c']);
  });

  it('has no baseline without a previous run, or for another runbook or target', () => {
    const current = makeSummary({ steps: [step('a', 'failed')] });
    expect(newFailures(undefined, current)).toEqual([]);
    expect(newFailures({ ...previous, runbook: 'policy' }, current)).toEqual([]);
    expect(newFailures({ ...previous, target: 'prod' }, current)).toEqual([]);
  });

  it('keys steps by scenario when the summary names it', () => {
    const prev = makeSummary({ steps: [{ scenario: 'smoke', name: 'gateway up', status: 'passed' }, { scenario: 'dlq', name: 'gateway up', status: 'failed' }] });
    const cur = makeSummary({ steps: [{ scenario: 'smoke', name: 'gateway up', status: 'passed' }, { scenario: 'dlq', name: 'gateway up', status: 'failed' }] });
    expect(newFailures(prev, cur)).toEqual([]);
    cur.steps[0].status = 'failed';
    expect(newFailures(prev, cur)).toEqual(['smoke › gateway up']);
  });

  it("accepts the runner's summary.json type as is", () => {
    // Compile-time check: the runner's RunSummary can be passed straight in.
    const fromRunner = (s: RunSummary): Summary => s;
    expect(typeof fromRunner).toBe('function');
  });

  it('is empty when everything that passed still passes', () => {
    expect(newFailures(previous, makeSummary({ steps: [step('a', 'passed'), step('b', 'failed')] }))).toEqual([]);
  });
});
