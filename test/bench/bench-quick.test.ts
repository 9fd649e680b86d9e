// The pure pieces of `pnpm bench`: statistics, formatting, goal verdicts, argument parsing, the
// markdown writer, the generated Redis data and the fixture replication. No timings are asserted.
import { describe, expect, it } from 'vitest';
import { isLoaded, mergeMarkdown, renderMarkdown, type MachineInfo, type RunInfo } from '../../bench/markdown.js';
import { COMPLIANT_DIR, replicate } from '../../bench/readiness.js';
import { keyCommands, respCommand } from '../../bench/resp.js';
import { parsePhaseLine } from '../../bench/smoke.js';
import {
  figureLine,
  fmtNum,
  goalBelow,
  goalFlatMemory,
  goalLinear,
  goalRatioAtLeast,
  median,
  parseArgs,
  parseTimeV,
  stat,
  type BenchResult,
} from '../../bench/stats.js';
import { loadManifestDir } from '../../helpers/readiness/manifests.js';
import { runAudit } from '../../helpers/readiness/audit.js';
import type { AuditReport } from '../../helpers/readiness/model.js';

const machine = (load: number): MachineInfo => ({
  cpuModel: 'Test CPU',
  cores: 2,
  memoryBytes: 8 * 1024 ** 3,
  node: 'v20.0.0',
  redisServer: 'v=7.0.15',
  natsServer: 'nats-server: v2.9.10',
  os: 'TestOS',
  loadAvg: [load, 0.5, 0.25],
});
const run = (quick: boolean): RunInfo => ({ quick, startedAt: '2026-01-01T00:00:00.000Z', durationMs: 1000, reps: { slow: 3, fast: 5 }, command: 'pnpm bench' });

describe('statistics', () => {
  it('median of odd and even counts, stat ignores non-finite values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
    expect(stat([5, NaN, 1, 9])).toEqual({ n: 3, median: 5, min: 1, max: 9 });
    expect(stat([]).n).toBe(0);
  });

  it('formats numbers by magnitude', () => {
    expect(fmtNum(123456.7)).toBe('123,457');
    expect(fmtNum(12.345)).toBe('12.3');
    expect(fmtNum(1.234)).toBe('1.23');
    expect(fmtNum(0.01234)).toBe('0.0123');
    expect(fmtNum(NaN)).toBe('n/a');
  });

  it('prints one line per figure with median, min, max, n and peak RSS', () => {
    const line = figureLine({ bench: 'redis', name: 'backup, 1M keys', unit: 'keys/s', values: [100, 300, 200], rssBytes: [50 * 1024 * 1024] });
    expect(line).toContain('backup, 1M keys: median 200 keys/s (min 100, max 300, n=3)');
    expect(line).toContain('peak RSS 50.0 MB');
    expect(line.split('\n')).toHaveLength(1);
  });
});

describe('goals', () => {
  it('below / ratio / not judged without a figure', () => {
    expect(goalBelow('x', 1.2, 1.5, 's').met).toBe(true);
    expect(goalBelow('x', 1.6, 1.5, 's').met).toBe(false);
    expect(goalBelow('x', NaN, 1.5, 's').met).toBeNull();
    expect(goalRatioAtLeast('x', 80, 100, 0.8).met).toBe(true);
    expect(goalRatioAtLeast('x', 79, 100, 0.8).met).toBe(false);
    expect(goalRatioAtLeast('x', 79, NaN, 0.8).met).toBeNull();
  });

  it('linear: constant or falling ms/object passes, a rising step fails', () => {
    expect(goalLinear('l', [{ size: 100, msPerObject: 0.5 }, { size: 1000, msPerObject: 0.2 }, { size: 10000, msPerObject: 0.21 }]).met).toBe(true);
    const bad = goalLinear('l', [{ size: 100, msPerObject: 0.2 }, { size: 1000, msPerObject: 0.2 }, { size: 10000, msPerObject: 2 }]);
    expect(bad.met).toBe(false);
    expect(bad.detail).toContain('1,000 → 10,000');
    expect(goalLinear('l', [{ size: 100, msPerObject: 1 }]).met).toBeNull();
  });

  it('flat memory compares the largest size with the smallest', () => {
    expect(goalFlatMemory('m', [{ size: 1e6, bytes: 140 }, { size: 1e5, bytes: 100 }]).met).toBe(true);
    expect(goalFlatMemory('m', [{ size: 1e6, bytes: 400 }, { size: 1e5, bytes: 100 }]).met).toBe(false);
  });
});

describe('parsing', () => {
  it('GNU time -v output', () => {
    const out = '\tMaximum resident set size (kbytes): 2048\n\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02.50\n';
    expect(parseTimeV(out)).toEqual({ maxRssBytes: 2048 * 1024, wallMs: 62_500 });
    expect(parseTimeV('nothing')).toEqual({});
  });

  it('command line', () => {
    expect(parseArgs(['--quick', '--only', 'redis'])).toMatchObject({ quick: true, only: 'redis', write: false });
    expect(parseArgs(['--', '--write', '--out=x.md'])).toMatchObject({ write: true, out: 'x.md' });
    expect(() => parseArgs(['--only'])).toThrow(/needs a value/);
    expect(() => parseArgs(['--bogus'])).toThrow(/unknown argument/);
    expect(() => parseArgs(['--reps', '0'])).toThrow(/positive/);
  });

  it("the runner's DEBUG=runbooks phase lines", () => {
    expect(parsePhaseLine('[runbook +1234 ms] vitest created')).toBe('vitest created');
    expect(parsePhaseLine('  ✓ a step (12 ms)')).toBeUndefined();
  });
});

describe('markdown writer', () => {
  const results: BenchResult[] = [
    {
      name: 'dlq',
      title: 'DLQ detection latency',
      method: ['Inject and watch.'],
      figures: [{ bench: 'dlq', name: 'over platform', unit: 'ms', values: [10, 30, 20], rssBytes: [100 * 1024 * 1024] }],
      goals: [goalBelow('under 100 ms', 20, 100, 'ms'), goalBelow('under 10 ms', 20, 10, 'ms')],
      notes: ['a note'],
      durationMs: 2000,
    },
    { name: 'redis', title: 'Redis', method: [], figures: [], goals: [], notes: [], error: 'redis-server | missing', durationMs: 1 },
  ];

  it('has machine, method, figures with median/min/max/RSS and honest goal verdicts', () => {
    const md = renderMarkdown(machine(0.5), run(false), results);
    expect(md).toContain('## Machine');
    expect(md).toContain('| CPU | Test CPU |');
    expect(md).toContain('## Method');
    expect(md).toContain('| over platform | 20.0 ms | 10.0 | 30.0 | 3 | 100 MB |');
    expect(md).toMatch(/under 100 ms \| \*\*met\*\*/);
    expect(md).toMatch(/under 10 ms \| \*\*NOT met\*\*/);
    expect(md).toContain('benchmark failed: redis-server \\| missing');
    expect(md).not.toContain('loaded machine');
    expect(md).not.toContain('Quick run');
  });

  it('a partial run replaces only its own section and goal rows, and says which run made them', () => {
    const full = renderMarkdown(machine(0.5), run(false), [
      results[0]!,
      { name: 'redis', title: 'Redis', method: ['Old method.'], figures: [{ bench: 'redis', name: 'old figure', unit: 'keys/s', values: [1] }], goals: [goalBelow('old goal', 1, 2, 's')], notes: [], durationMs: 5 },
      { name: 'readiness', title: 'Readiness', method: ['Static.'], figures: [], goals: [goalBelow('linear', 1, 2, 'x')], notes: [], durationMs: 5 },
    ]);
    const redis: BenchResult = {
      name: 'redis',
      title: 'Redis',
      method: ['New method.'],
      figures: [{ bench: 'redis', name: 'new figure', unit: 'keys/s', values: [7] }],
      goals: [goalBelow('new goal A', 1, 2, 's'), goalBelow('new goal B', 3, 2, 's')],
      notes: [],
      durationMs: 9,
    };
    const partial: RunInfo = { ...run(false), startedAt: '2026-02-02T00:00:00.000Z', only: 'redis', command: 'pnpm bench --only redis --write' };
    const merged = mergeMarkdown(full, machine(3), partial, [redis]);
    // Untouched: the header, the other sections and their goal rows.
    expect(merged.split('\n').slice(0, 3)).toEqual(full.split('\n').slice(0, 3));
    expect(merged).toContain('| over platform | 20.0 ms | 10.0 | 30.0 | 3 | 100 MB |');
    expect(merged).toContain('## Readiness\n\nStatic.');
    const goals = merged.slice(merged.indexOf('## Goals'), merged.indexOf('## DLQ'));
    expect(goals.split('\n').filter((l) => l.startsWith('| ')).map((l) => l.split(' | ')[1])).toEqual(['Goal', '---', 'under 100 ms', 'under 10 ms', 'new goal A', 'new goal B', 'linear']);
    // Replaced: the Redis section, with its provenance, and nothing of the old one left.
    expect(merged).not.toMatch(/old figure|old goal|Old method/);
    expect(merged).toMatch(/## Redis\n\n_This section and its rows in Goals come from `pnpm bench --only redis --write` on 2026-02-02T00:00:00.000Z, load average at start 3.00 \/ 0.50 \/ 0.25 on 2 cores \(loaded: > 1 per core\); the rest of the page is from the run named at the top._\n\nNew method.\n/);
    expect(merged).toContain('| new figure | 7.00 keys/s |');
    expect(merged.indexOf('## Redis')).toBeLessThan(merged.indexOf('## Readiness'));
    // A section the page did not have is added at the end.
    const added = mergeMarkdown(full, machine(0.5), partial, [{ ...redis, name: 'jetstream', title: 'JetStream' }]);
    expect(added.lastIndexOf('## ')).toBe(added.indexOf('## JetStream'));
    expect(added.trimEnd()).toMatch(/\| new figure \| 7\.00 keys\/s \| 7\.00 \| 7\.00 \| 1 \| – \|\n\n_Benchmark time: [^_]+ s\._$/);
    expect(added).toContain('| jetstream | new goal A |');
  });

  it('flags a loaded machine (load > 1 per core) and a quick run', () => {
    expect(isLoaded(machine(2.5))).toBe(true);
    expect(isLoaded(machine(1.9))).toBe(false);
    const md = renderMarkdown(machine(2.5), run(true), results);
    expect(md).toMatch(/figures taken on a loaded machine/i);
    expect(md).toContain('**Quick run**');
  });
});

describe('generated data', () => {
  it('RESP encoding counts bytes, not characters', () => {
    expect(respCommand(['SET', 'k', 'é'])).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n');
  });

  it('keys cycle through five types, every 10th with a TTL, deterministically', () => {
    const first = [0, 1, 2, 3, 4].map((i) => keyCommands(i)[0]![0]);
    expect(first).toEqual(['SET', 'HSET', 'RPUSH', 'SADD', 'ZADD']);
    expect(keyCommands(10).map((c) => c[0])).toEqual(['SET', 'PEXPIRE']);
    expect(keyCommands(11)).toHaveLength(1);
    expect(keyCommands(7)).toEqual(keyCommands(7));
    expect(keyCommands(5)[0]![2]).not.toBe(keyCommands(0)[0]![2]);
  });

  it('replicates the compliant fixture into exactly N renamed, unique objects', () => {
    const base = loadManifestDir(COMPLIANT_DIR).objects;
    const objs = replicate(base, base.length * 2 + 3);
    expect(objs).toHaveLength(base.length * 2 + 3);
    const keys = new Set(objs.map((o) => `${o.kind}/${o.metadata.name}`));
    expect(keys.size).toBe(objs.length);
    expect(objs[base.length]!.metadata.name).toBe(`${base[0]!.metadata.name}-r1`);
    expect(base[0]!.metadata.name).not.toMatch(/-r\d+$/); // the base set is not modified
  });

  it('replicated copies audit as the compliant fixture does: they select, mount and probe their own objects', async () => {
    const base = loadManifestDir(COMPLIANT_DIR).objects;
    const now = new Date('2026-03-01T00:00:00Z');
    const verdicts = (r: AuditReport) => r.results.map((x) => `${x.id} ${x.status}`);
    const alone = await runAudit({ mode: 'static', objects: base, now });
    const copies = replicate(base, base.length * 4);
    expect(verdicts(await runAudit({ mode: 'static', objects: copies, now }))).toEqual(verdicts(alone));
    // Each copy's backup jobs write its own claim: no ReadWriteOnce claim is shared between copies.
    const claims = copies.filter((o) => o.kind === 'CronJob').map((o) => o.spec.jobTemplate.spec.template.spec.volumes.find((v: { persistentVolumeClaim?: unknown }) => v.persistentVolumeClaim).persistentVolumeClaim.claimName);
    expect(new Set(claims).size).toBe(4);
  });
});
